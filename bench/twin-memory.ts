// Twin memory: what a fleet of live twins costs the worker (RSS, V8 heap, sticky cache) and how often the worker
// has to rebuild a twin from its history (a replay) at rest and under light telemetry touching every twin.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { twinWorkflowId } from '../workflows/ids';
import { reportTelemetrySignal } from '../workflows/twin.messages';

export interface TwinMemoryOptions {
  readonly base: string;
  readonly adminKey: string;
  readonly say: (line: string) => void;
  readonly devices: number;
  /** The TwinFlow process (API and worker): its RSS is read from /proc. */
  readonly stackPid: number;
  /** The SDK's Prometheus endpoint (TWINFLOW_WORKER_METRICS_PORT). */
  readonly sdkMetricsUrl: string;
  /** The stack's Temporal server: the telemetry signals go straight to the twins. */
  readonly temporalAddress: string;
  /** Longest wait for provisioning's workflow tasks to finish before measuring. */
  readonly settleMs: number;
  readonly restSeconds: number;
  /** Telemetry signals per second while touching every twin once (TwinFlow's own signal budget is 200/s). */
  readonly loadRate: number;
}

export interface MemorySample {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** Twins (and other workflows) the worker holds. */
  readonly cached: number;
  /** Workflow tasks for a workflow the worker no longer held: each one replayed its history. */
  readonly replays: number;
  readonly evictions: number;
  /** Workflow tasks for a workflow the worker held. */
  readonly hits: number;
}

export interface TwinMemoryResult {
  readonly devices: number;
  readonly provisioned: number;
  readonly before: MemorySample;
  readonly settled: MemorySample;
  readonly rested: MemorySample;
  readonly afterLoad: MemorySample;
  readonly restReplaysPerSecond: number;
  readonly loadReplaysPerSecond: number;
  readonly loadSeconds: number;
  readonly loadStored: number;
}

const MiB = 2 ** 20;
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sum of one metric over all its label sets, from a Prometheus text page; 0 when absent. */
export function metricSum(page: string, name: string): number {
  let sum = 0;
  for (const line of page.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(rest.slice(rest.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return kb ? Number(kb[1]) * 1024 : NaN;
}

async function text(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return res.text();
}

async function sample(o: TwinMemoryOptions): Promise<MemorySample> {
  const [api, sdk] = await Promise.all([text(`${o.base}/metrics`), text(o.sdkMetricsUrl)]);
  return {
    rssBytes: rssOf(o.stackPid),
    heapUsedBytes: metricSum(api, 'twinflow_nodejs_heap_size_used_bytes'),
    cached: metricSum(sdk, 'temporal_sticky_cache_size'),
    replays: metricSum(sdk, 'temporal_sticky_cache_miss'),
    evictions: metricSum(sdk, 'temporal_sticky_cache_total_forced_eviction'),
    hits: metricSum(sdk, 'temporal_sticky_cache_hit'),
  };
}

async function provision(o: TwinMemoryOptions): Promise<{ id: string; key: string }[]> {
  const keys: { id: string; key: string }[] = [];
  const chunks = Math.ceil(o.devices / 500);
  let next = 0;
  const one = async () => {
    while (next < chunks) {
      const chunk = next++;
      const devices = Array.from({ length: Math.min(500, o.devices - chunk * 500) }, (_, i) => ({
        id: `memory-${chunk * 500 + i}`,
        type: (chunk * 500 + i) % 2 ? 'electricity-meter' : 'generic',
      }));
      const res = await fetch(`${o.base}/north/v1/devices/bulk`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'X-ApiKey': o.adminKey },
        body: JSON.stringify({ devices }),
      });
      if (res.status !== 200)
        throw new Error(`bulk provisioning answered ${res.status}: ${await res.text()}`);
      const body = (await res.json()) as { results: { id: string; apiKey?: string }[] };
      for (const r of body.results) if (r.apiKey) keys.push({ id: r.id, key: r.apiKey });
    }
  };
  await Promise.all([one(), one()]);
  return keys;
}

/** Workflow and activity tasks waiting on TwinFlow's task queue (Temporal's approximate count). */
async function backlog(connection: Connection): Promise<number> {
  let total = 0;
  for (const type of [
    temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  ]) {
    const res = await connection.workflowService.describeTaskQueue({
      namespace: 'default',
      taskQueue: { name: 'twinflow' },
      taskQueueType: type,
      reportStats: true,
    });
    total += Number(res.stats?.approximateBacklogCount ?? 0);
  }
  return total;
}

/**
 * Waits until nothing waits on the task queue and the worker has run no workflow task for 5 s (provisioning's
 * first tasks and snapshots, or the signals' tasks, are done).
 */
async function settle(o: TwinMemoryOptions): Promise<void> {
  const connection = await Connection.connect({ address: o.temporalAddress });
  try {
    await settleOn(o, connection);
  } finally {
    await connection.close();
  }
}

async function settleOn(o: TwinMemoryOptions, connection: Connection): Promise<void> {
  const deadline = Date.now() + o.settleMs;
  let last = '';
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    const s = await sample(o);
    const now = `${s.cached}/${s.hits}/${s.replays}/${await backlog(connection)}`;
    if (now !== last || !now.endsWith('/0')) {
      last = now;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= 5_000) return;
    await sleep(1_000);
  }
  o.say(
    `  (not settled after ${o.settleMs / 1000} s: ${last} cached/hits/replays/backlog; measuring anyway)`,
  );
}

/**
 * One telemetry signal per twin, paced at `rate` a second: the signal the ingest path sends after storing a
 * report, sent straight to the twin so that the embedded store's write speed does not bound the load. Answers
 * how many signals were accepted.
 */
async function touchEveryTwin(o: TwinMemoryOptions, ids: readonly string[]): Promise<number> {
  const connection = await Connection.connect({ address: o.temporalAddress });
  const client = new Client({ connection });
  let next = 0;
  let sent = 0;
  const start = performance.now();
  const one = async () => {
    while (next < ids.length) {
      const i = next++;
      const due = start + (i / o.loadRate) * 1000;
      if (due > performance.now()) await sleep(due - performance.now());
      const now = Date.now();
      await client.workflow.getHandle(twinWorkflowId('default', ids[i]!)).signal(reportTelemetrySignal, {
        batchId: `memory-${i}-${randomBytes(3).toString('hex')}`,
        channel: 'http',
        receivedAt: now,
        datapoints: [{ datastreamId: 'voltage', feed: '', value: 230, at: now }],
        storedCount: 1,
      });
      sent++;
    }
  };
  try {
    await Promise.all(Array.from({ length: 16 }, one));
  } finally {
    await connection.close();
  }
  return sent;
}

export async function runTwinMemoryBench(o: TwinMemoryOptions): Promise<TwinMemoryResult> {
  const before = await sample(o);
  o.say(`  before: RSS ${fmt(before.rssBytes / MiB)} MiB, heap ${fmt(before.heapUsedBytes / MiB)} MiB`);
  const keys = await provision(o);
  o.say(`  provisioned ${fmt(keys.length)} devices; waiting for the worker to settle...`);
  await settle(o);
  const settled = await sample(o);
  o.say(
    `  settled: RSS ${fmt(settled.rssBytes / MiB)} MiB, heap ${fmt(settled.heapUsedBytes / MiB)} MiB, ${fmt(settled.cached)} cached, ${fmt(settled.evictions)} evictions`,
  );
  await sleep(o.restSeconds * 1000);
  const rested = await sample(o);
  const restReplaysPerSecond = (rested.replays - settled.replays) / o.restSeconds;
  o.say(`  at rest for ${o.restSeconds} s: ${fmt(rested.replays - settled.replays)} replays`);
  const t0 = performance.now();
  const loadStored = await touchEveryTwin(
    o,
    keys.map((k) => k.id),
  );
  const loadSeconds = (performance.now() - t0) / 1000;
  await settle(o);
  // Replays go on after the last signal while the worker catches up: counted over the whole time to settle.
  const afterLoad = await sample(o);
  const loadReplaysPerSecond = (afterLoad.replays - rested.replays) / ((performance.now() - t0) / 1000);
  o.say(
    `  telemetry to every twin (${fmt(loadStored)} signals in ${fmt(loadSeconds, 1)} s): ${fmt(afterLoad.replays - rested.replays)} replays, ${fmt(afterLoad.evictions - rested.evictions)} evictions`,
  );
  return {
    devices: o.devices,
    provisioned: keys.length,
    before,
    settled,
    rested,
    afterLoad,
    restReplaysPerSecond,
    loadReplaysPerSecond,
    loadSeconds,
    loadStored,
  };
}

/** The summary lines: per-twin memory, cache, replays. */
export function summarizeTwinMemory(r: TwinMemoryResult): string[] {
  const perTwin = (a: number, b: number) => (r.provisioned > 0 ? (b - a) / r.provisioned / 1024 : NaN);
  return [
    `  twin memory           RSS ${fmt(r.before.rssBytes / MiB)} -> ${fmt(r.settled.rssBytes / MiB)} MiB (${fmt(perTwin(r.before.rssBytes, r.settled.rssBytes), 1)} KiB a twin; ${fmt(r.afterLoad.rssBytes / MiB)} MiB after telemetry), main-thread heap ${fmt(r.before.heapUsedBytes / MiB)} -> ${fmt(r.settled.heapUsedBytes / MiB)} MiB (${fmt(perTwin(r.before.heapUsedBytes, r.settled.heapUsedBytes), 1)} KiB a twin)`,
    `  twin cache            ${fmt(r.afterLoad.cached)} workflows cached for ${fmt(r.provisioned)} twins, ${fmt(r.afterLoad.evictions)} forced evictions`,
    `  replays               ${fmt(r.restReplaysPerSecond, 2)}/s at rest, ${fmt(r.loadReplaysPerSecond, 1)}/s while telemetry reached every twin (${fmt(r.loadStored / r.loadSeconds)} signals/s), ${fmt(r.afterLoad.evictions - r.rested.evictions)} evictions meanwhile`,
  ];
}
