// Twin behaviours at scale: N meters whose twins each hold two durable timers (the offline check and a pending
// overload reaction), then the worker's workflow tasks per second at rest (they should be none: a timer is a sleep
// inside the workflow, not a poll), and the time from a threshold-crossing datapoint sent to the south API to its
// alarm being visible in the north API (p50/p99).
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { twinWorkflowId } from '../workflows/ids';
import { getTwinStateQuery, reportTelemetrySignal } from '../workflows/twin.messages';
import { metricSum } from './twin-memory';

export interface BehavioursBenchOptions {
  readonly base: string;
  readonly adminKey: string;
  readonly say: (line: string) => void;
  readonly devices: number;
  readonly temporalAddress: string;
  /** The SDK's Prometheus endpoint (TWINFLOW_WORKER_METRICS_PORT). */
  readonly sdkMetricsUrl: string;
  readonly restSeconds: number;
  readonly latencySamples: number;
  /** Telemetry signals a second while arming the timers. */
  readonly armRate: number;
}

export interface BehavioursBenchResult {
  readonly devices: number;
  readonly armed: number;
  readonly restSeconds: number;
  readonly restWorkflowTasksPerSecond: number;
  readonly restWorkflowTasks: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencySamples: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** Workflow tasks the worker has been handed (sticky and normal queues). */
async function workflowTasks(url: string): Promise<number> {
  const page = await (await fetch(url)).text();
  return metricSum(page, 'temporal_workflow_task_queue_poll_succeed');
}

async function post(o: BehavioursBenchOptions, path: string, body: unknown, key = o.adminKey) {
  const res = await fetch(`${o.base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-ApiKey': key },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
}

/** Meters whose offline delay and overload hold outlast the run: each twin keeps both timers armed. */
async function provision(o: BehavioursBenchOptions, prefix: string, count: number, attributes: object) {
  const keys: { id: string; key: string }[] = [];
  for (let start = 0; start < count; start += 500) {
    const devices = Array.from({ length: Math.min(500, count - start) }, (_, i) => ({
      id: `${prefix}-${start + i}`,
      type: 'electricity-meter',
      attributes,
    }));
    const res = await post(o, '/north/v1/devices/bulk', { devices });
    if (res.status !== 200) throw new Error(`bulk provisioning answered ${res.status}`);
    for (const r of res.body.results as { id: string; apiKey?: string }[])
      if (r.apiKey) keys.push({ id: r.id, key: r.apiKey });
  }
  return keys;
}

export async function runBehavioursBench(o: BehavioursBenchOptions): Promise<BehavioursBenchResult> {
  const hour = 3_600_000;
  const fleet = await provision(o, 'beh', o.devices, { offlineAfterMs: hour, overloadHoldMs: hour });
  o.say(
    `  provisioned ${fmt(fleet.length)} meters (offline after 1 h, overload held 1 h before the breaker)`,
  );
  const connection = await Connection.connect({ address: o.temporalAddress });
  const client = new Client({ connection });
  const page = await (await fetch(o.sdkMetricsUrl)).text();
  if (!page.includes('temporal_workflow_task_queue_poll_succeed'))
    throw new Error(
      'the SDK metrics have no temporal_workflow_task_queue_poll_succeed: cannot count workflow tasks',
    );
  const atStart = await workflowTasks(o.sdkMetricsUrl);
  try {
    // One overload reading each, straight to the twins: the first data arms the offline timer, the overload
    // starts the reaction's hold (a second timer).
    let next = 0;
    const t0 = performance.now();
    const arm = async () => {
      while (next < fleet.length) {
        const i = next++;
        const due = t0 + (i / o.armRate) * 1000;
        if (due > performance.now()) await sleep(due - performance.now());
        const now = Date.now();
        const batchId = `beh-${i}-${randomBytes(3).toString('hex')}`;
        // A busy server may refuse a signal for a while: try again (the twin drops a repeated batch id).
        for (let attempt = 1; ; attempt++) {
          try {
            await client.workflow
              .getHandle(twinWorkflowId('default', fleet[i]!.id))
              .signal(reportTelemetrySignal, {
                batchId,
                channel: 'http',
                receivedAt: now,
                datapoints: [{ datastreamId: 'power.active', feed: '', value: 12_000, at: now }],
                storedCount: 1,
              });
            break;
          } catch (err) {
            if (attempt >= 5) throw err;
            await sleep(1_000 * attempt);
          }
        }
      }
    };
    // Every arming loop ends before the connection closes, also when one fails.
    const arming = await Promise.allSettled(Array.from({ length: 16 }, arm));
    const failed = arming.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    // Every twin holds its pending condition (its timers are armed): check a sample, then wait for quiet.
    let armed = 0;
    for (const { id } of fleet.filter((_, i) => i % Math.max(1, Math.floor(fleet.length / 50)) === 0)) {
      // A busy worker may not answer a query in time: ask again.
      for (let tries = 0; tries < 120; tries++) {
        const s = await client.workflow
          .getHandle(twinWorkflowId('default', id))
          .query(getTwinStateQuery)
          .catch(() => undefined);
        if (s?.behaviour?.conditions['reaction:overload-breaker']) {
          armed++;
          break;
        }
        await sleep(500);
      }
    }
    o.say(`  timers armed (checked ${armed} sampled twins); waiting for the worker to go quiet...`);
    let last = await workflowTasks(o.sdkMetricsUrl);
    for (let quiet = 0, waited = 0; quiet < 5 && waited < 300; waited++) {
      await sleep(1_000);
      const now = await workflowTasks(o.sdkMetricsUrl);
      quiet = now === last ? quiet + 1 : 0;
      last = now;
    }
    const before = await workflowTasks(o.sdkMetricsUrl);
    o.say(`  provisioning and arming took ${fmt(before - atStart)} workflow tasks (the counter works)`);
    await sleep(o.restSeconds * 1000);
    const restWorkflowTasks = (await workflowTasks(o.sdkMetricsUrl)) - before;
    o.say(
      `  at rest for ${o.restSeconds} s with ${fmt(fleet.length)} twins holding 2 timers each: ${fmt(restWorkflowTasks)} workflow tasks`,
    );

    // Latency: a voltage out of tolerance, sent as a device sends it, until the VOLTAGE alarm is in the API.
    const probes = await provision(o, 'beh-probe', o.latencySamples, { voltageHoldMs: 0 });
    const latencies: number[] = [];
    for (const [i, p] of probes.entries()) {
      const at = Date.now();
      const collect = (value: number, t: number) => ({
        version: '1.0.0',
        datastreams: [{ id: 'voltage', datapoints: [{ value, at: t }] }],
      });
      // A first, normal reading, so that the twin knows the device before the crossing.
      await post(o, `/south/v80/devices/${p.id}/collect/iot`, collect(230, at - 1_000), p.key);
      await sleep(300);
      const start = performance.now();
      const sent = await post(o, `/south/v80/devices/${p.id}/collect/iot`, collect(300 + (i % 5), at), p.key);
      if (sent.status !== 201) throw new Error(`collect answered ${sent.status}`);
      for (;;) {
        const res = await fetch(`${o.base}/north/v1/devices/${p.id}/alarms`, {
          headers: { 'X-ApiKey': o.adminKey },
        });
        const items = ((await res.json()) as { items: { name: string; status: string }[] }).items;
        if (items.some((a) => a.name === 'VOLTAGE' && a.status === 'ACTIVE')) break;
        if (performance.now() - start > 30_000) throw new Error(`no alarm for ${p.id} within 30 s`);
        await sleep(5);
      }
      latencies.push(performance.now() - start);
    }
    latencies.sort((a, b) => a - b);
    const result: BehavioursBenchResult = {
      devices: o.devices,
      armed: fleet.length,
      restSeconds: o.restSeconds,
      restWorkflowTasks,
      restWorkflowTasksPerSecond: restWorkflowTasks / o.restSeconds,
      latencyP50Ms: percentile(latencies, 50),
      latencyP99Ms: percentile(latencies, 99),
      latencySamples: latencies.length,
    };
    o.say(
      `  threshold datapoint -> alarm visible in the API: p50 ${fmt(result.latencyP50Ms)} ms, p99 ${fmt(result.latencyP99Ms)} ms (${latencies.length} devices)`,
    );
    return result;
  } finally {
    await connection.close();
  }
}

export function summarizeBehaviours(r: BehavioursBenchResult): string[] {
  return [
    `  behaviours at rest    ${fmt(r.restWorkflowTasksPerSecond, 2)} workflow tasks/s with ${fmt(r.armed)} twins holding an offline timer and a pending reaction (${fmt(r.restWorkflowTasks)} in ${r.restSeconds} s)`,
    `  datapoint -> alarm    p50 ${fmt(r.latencyP50Ms)} ms, p99 ${fmt(r.latencyP99Ms)} ms (${r.latencySamples} devices, south API to north API)`,
  ];
}
