// `npm run bench`: operations against the bare HTTP round trip, provisioning against a bare Temporal start loop,
// collect throughput, and identity (login, authentication overhead), on the embedded stack; and what each internal
// Temporal step costs on the dev server's defaults and on TwinFlow's config (temporal-steps, its own servers).
// twin-memory (worker memory and replays with 10,000 live twins) runs on a stack of its own.
// behaviours (10,000 twins holding timers at rest, threshold datapoint to alarm) runs on a stack of its own too.
// BENCH_ONLY=temporal-steps,twin-memory,behaviours,identity,mqtt,tls,operations,jobs,events,forwarders,provisioning,collect picks
// sections.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowIdConflictPolicy } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { getFreePort } from '../worker/local-stack';
import { postgresUnreachable, startPostgresTemporal } from '../worker/postgres-temporal';
import { TEMPORAL_SERVER_VERSION, type TemporalServerTools, ensureTemporalServer } from '../worker/tools';
import { SHARED_WORKFLOW_MODULES } from '../worker/workflow-bundle';
import { runIdentityBench } from './identity';
import { runEventsBench } from './events';
import { runForwardersBench } from './forwarders';
import { startBareHttp } from './bare-http-child';
import { type JobsBenchResult, runJobsBench } from './jobs';
import { mosquittoInstalled, startMosquitto } from './mosquitto';
import { type MqttBenchOptions, type MqttBenchResult, runMqttBench } from './mqtt';
import { processNames } from './cpu';
import { type OperationsBenchResult, runOperationsBench, summarizeOperations } from './operations';
import { runTlsBench } from './tls';
import { type TemporalStepsResult, runTemporalStepsBench, summarizeTemporalSteps } from './temporal-steps';
import { type BehavioursBenchResult, runBehavioursBench, summarizeBehaviours } from './behaviours';
import { type TwinHeapResult, runTwinHeapBench } from './twin-heap';
import { type TwinMemoryResult, runTwinMemoryBench, summarizeTwinMemory } from './twin-memory';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 10_000);
const BULK_SIZE = 500;
const BULK_CONCURRENCY = 2;
/** The API starts twins 32 at a time per bulk request; the bare loop gets the same total concurrency. */
const START_CONCURRENCY = 32 * BULK_CONCURRENCY;
const COLLECT_SECONDS = Number(process.env.BENCH_COLLECT_SECONDS ?? 15);
const COLLECT_CONCURRENCY = 32;
const COLLECT_DEVICES = Number(process.env.BENCH_COLLECT_DEVICES ?? 10_000);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 10_000);
const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';
const SECTIONS = new Set(
  (
    process.env.BENCH_ONLY ??
    'temporal-steps,twin-memory,behaviours,identity,mqtt,tls,operations,jobs,events,forwarders,provisioning,collect'
  )
    .split(',')
    .map((s) => s.trim()),
);
const STEPS_CONCURRENCY = 8;
const OPERATIONS = Number(process.env.BENCH_OPERATIONS ?? 1_000);
const OPERATION_DEVICES = Number(process.env.BENCH_OPERATION_DEVICES ?? 200);

const say = (line: string) => process.stdout.write(`${line}\n`);

/**
 * The MQTT run again through an external mosquitto: a second TwinFlow API process (on the same Temporal and
 * store) reads it through its adapter, beside a plain subscriber on a second mosquitto.
 */
async function externalMqtt(
  dataDir: string,
  ports: { temporal: number; mongo: number },
  options: Omit<MqttBenchOptions, 'base' | 'mqttUrl' | 'external'>,
): Promise<MqttBenchResult | undefined> {
  if (!mosquittoInstalled()) {
    say('\nMQTT ingest through mosquitto: skipped (no mosquitto at /usr/sbin/mosquitto or BENCH_MOSQUITTO)');
    return undefined;
  }
  say(
    `\nMQTT ingest: ${fmt(options.devices)} devices publishing QoS 1 to an external mosquitto, TwinFlow reading it through its adapter, beside a plain subscriber on another mosquitto`,
  );
  const broker = await startMosquitto();
  const bare = await startMosquitto();
  const api = await getFreePort();
  const adapter = await startStack(
    mkdtempSync(path.join(dataDir, 'adapter-')),
    {
      api,
      temporal: ports.temporal,
      mongo: ports.mongo,
      mqtt: await getFreePort(),
      https: await getFreePort(),
      mqtts: await getFreePort(),
    },
    {
      TWINFLOW_ROLES: 'api',
      TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
      MONGODB_URI: `mongodb://127.0.0.1:${ports.mongo}/`,
      MQTT_URL: broker.url,
    },
  );
  if (adapter.pid !== undefined) processNames.set(adapter.pid, 'adapter');
  try {
    return await runMqttBench({
      ...options,
      base: `http://127.0.0.1:${api}`,
      mqttUrl: broker.url,
      external: { bareUrl: bare.url },
    });
  } catch (err) {
    say(`  MQTT ingest through mosquitto did not finish: ${(err as Error).message}`);
    return undefined;
  } finally {
    adapter.kill('SIGTERM');
    await new Promise((r) => adapter.once('exit', r));
    await Promise.all([broker.stop(), bare.stop()]);
  }
}
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runPool(total: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await fn(next++);
    }),
  );
}

async function startStack(
  dataDir: string,
  ports: { api: number; temporal: number; mongo: number; mqtt: number; https: number; mqtts: number },
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<ChildProcess> {
  // BENCH_STACK_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": Node options for the stack's process.
  const nodeArgs = (process.env.BENCH_STACK_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'worker/main.ts'], {
    cwd: path.resolve(__dirname, '..'),
    env: {
      ...process.env,
      PORT: String(ports.api),
      TWINFLOW_DATA_DIR: dataDir,
      TWINFLOW_TEMPORAL_PORT: String(ports.temporal),
      TWINFLOW_MONGODB_PORT: String(ports.mongo),
      TWINFLOW_MQTT_PORT: String(ports.mqtt),
      TWINFLOW_HTTPS_PORT: String(ports.https),
      TWINFLOW_MQTTS_PORT: String(ports.mqtts),
      TWINFLOW_TEMPORAL_UI: 'off',
      TWINFLOW_BOOTSTRAP_API_KEY: ADMIN_KEY,
      LOG_LEVEL: process.env.BENCH_STACK_LOG_LEVEL ?? 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('TwinFlow is running.')) resolve();
      if (process.env.BENCH_SHOW_STACK) process.stdout.write(d);
    });
    child.once('exit', (code) => reject(new Error(`TwinFlow exited (${code}) before it was ready:\n${out}`)));
  });
  return child;
}

interface CollectRun {
  readonly rate: number;
  readonly errors: number;
  /** Sorted, of the requests answered 201. */
  readonly latencies: number[];
}

/** COLLECT_CONCURRENCY connections POST a 3-datapoint collect body for COLLECT_SECONDS, device after device. */
async function collectLoop(
  urlOf: (d: { id: string }) => string,
  devices: readonly { id: string; key: string }[],
): Promise<CollectRun> {
  let errors = 0;
  let n = 0;
  const latencies: number[] = [];
  const deadline = performance.now() + COLLECT_SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: COLLECT_CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const d = devices[n++ % devices.length]!;
        const body = {
          version: '1.0.0',
          datastreams: [
            { id: 'voltage', datapoints: [{ value: 229 + Math.random() * 2 }] },
            { id: 'power.active', datapoints: [{ value: Math.round(Math.random() * 5000) }] },
            { id: 'energy.import', datapoints: [{ value: n }] },
          ],
        };
        const start = performance.now();
        const res = await post(urlOf(d), body, d.key);
        await res.arrayBuffer();
        if (res.status === 201) latencies.push(performance.now() - start);
        else errors++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { rate: latencies.length / seconds, errors, latencies: latencies.sort((a, b) => a - b) };
}

/** The same loop against a bare HTTP POST server in its own process. */
async function bareHttpCollect(devices: readonly { id: string; key: string }[]): Promise<CollectRun> {
  const bare = await startBareHttp();
  try {
    return await collectLoop(
      (d) => `http://127.0.0.1:${bare.port}/south/v80/devices/${d.id}/collect/iot`,
      devices,
    );
  } finally {
    bare.stop();
  }
}

/** Workflow tasks waiting on TwinFlow's task queue (Temporal's approximate count). */
async function workflowBacklog(connection: Connection): Promise<number> {
  const res = await connection.workflowService.describeTaskQueue({
    namespace: 'default',
    taskQueue: { name: 'twinflow' },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    reportStats: true,
  });
  return Number(res.stats?.approximateBacklogCount ?? 0);
}

async function post(url: string, body: unknown, key: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-ApiKey': key },
    body: JSON.stringify(body),
  });
}

/** Runs before the stack starts: it starts its own dev servers, two in turn, and would compete with the stack. */
async function temporalSteps(): Promise<TemporalStepsResult | undefined> {
  if (!SECTIONS.has('temporal-steps')) return undefined;
  const iterations = Number(process.env.BENCH_STEPS_ITERATIONS ?? 200);
  const seconds = Number(process.env.BENCH_STEPS_SECONDS ?? 5);
  say(
    `\nTemporal steps: dev server defaults against TwinFlow's config, ${iterations} of each step one at a time, then ${seconds} s at ${STEPS_CONCURRENCY} at once`,
  );
  // BENCH_STEPS_WITHOUT=key,key adds a run on TwinFlow's config without those keys.
  const without = (process.env.BENCH_STEPS_WITHOUT ?? '').split(',').filter(Boolean);
  return runTemporalStepsBench({ say, iterations, concurrency: STEPS_CONCURRENCY, seconds, without });
}

/** Free ports for one stack's listeners. */
async function stackPorts() {
  return {
    api: await getFreePort(),
    temporal: await getFreePort(),
    mongo: await getFreePort(),
    mqtt: await getFreePort(),
    https: await getFreePort(),
    mqtts: await getFreePort(),
  };
}

/** A stack of its own, stopped (and its data removed) when `fn` is done or the benchmark is interrupted. */
async function withStack<T>(
  extraEnv: NodeJS.ProcessEnv,
  fn: (stack: { base: string; pid: number; temporalAddress: string; mongoUri: string }) => Promise<T>,
): Promise<T> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-bench-'));
  const ports = await stackPorts();
  const stack = await startStack(dataDir, ports, extraEnv);
  const interrupted = () => {
    stack.once('exit', () => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(130);
    });
    stack.kill('SIGTERM');
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    return await fn({
      base: `http://127.0.0.1:${ports.api}`,
      pid: stack.pid!,
      temporalAddress: extraEnv.TEMPORAL_ADDRESS ?? `127.0.0.1:${ports.temporal}`,
      mongoUri: `mongodb://127.0.0.1:${ports.mongo}/`,
    });
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    stack.kill('SIGTERM');
    await new Promise((r) => stack.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The retained heap a cached twin costs, weighed in this process (bench/twin-heap.ts). */
async function twinHeap(): Promise<{ shared: TwinHeapResult; unshared?: TwinHeapResult } | undefined> {
  const twins = Number(process.env.BENCH_TWIN_HEAP_TWINS ?? 2_000);
  if (twins <= 0) return undefined;
  say(
    `\nTwin heap: ${fmt(twins)} twins cached by a worker in this process, heap weighed after full collections`,
  );
  const weigh = async (label: string, modules: readonly string[]) => {
    const r = await runTwinHeapBench(twins, say, modules);
    say(
      `  ${label}: ${fmt(r.heapKiBPerTwin, 1)} KiB of V8 heap a twin, ${fmt(r.rssKiBPerTwin, 1)} KiB of RSS`,
    );
    return r;
  };
  try {
    const shared = await weigh(
      `sharing zod and the ${SHARED_WORKFLOW_MODULES.length - 1} pure twin modules (TwinFlow's worker)`,
      SHARED_WORKFLOW_MODULES,
    );
    const unshared = await weigh('every module per twin (the SDK default)', []).catch((err: unknown) => {
      say(`  the unshared run did not finish: ${(err as Error).message}`);
      return undefined;
    });
    return { shared, unshared };
  } catch (err) {
    say(`  Twin heap did not finish: ${(err as Error).message}`);
    return undefined;
  }
}

/** Runs on a fresh stack of its own, so that its "before" figures are an empty worker's. */
async function twinMemory(): Promise<
  { stack?: TwinMemoryResult; heap?: Awaited<ReturnType<typeof twinHeap>> } | undefined
> {
  if (!SECTIONS.has('twin-memory')) return undefined;
  const heap = await twinHeap();
  const devices = Number(process.env.BENCH_TWIN_DEVICES ?? 10_000);
  const loadRate = Number(process.env.BENCH_TWIN_LOAD_RATE ?? 200);
  say(
    `\nTwin memory: ${fmt(devices)} live twins on one worker, then a telemetry signal to each twin at ${loadRate}/s`,
  );
  const metricsPort = await getFreePort();
  try {
    const stack = await withStack(
      { TWINFLOW_WORKER_METRICS_PORT: String(metricsPort) },
      ({ base, pid, temporalAddress }) =>
        runTwinMemoryBench({
          temporalAddress,
          base,
          adminKey: ADMIN_KEY,
          say,
          devices,
          stackPid: pid,
          sdkMetricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
          settleMs: Number(process.env.BENCH_TWIN_SETTLE_MS ?? 120_000),
          restSeconds: Number(process.env.BENCH_TWIN_REST_SECONDS ?? 20),
          loadRate,
        }),
    );
    return { stack, heap };
  } catch (err) {
    say(`  Twin memory did not finish: ${(err as Error).message}`);
    return { heap };
  }
}

/**
 * Behaviours (BENCH_BEHAVIOUR_DEVICES twins, default 10,000): workflow tasks at rest with every twin holding an
 * offline timer and a pending reaction, then threshold datapoint to visible alarm. On a fresh stack of its own.
 */
async function behaviours(): Promise<BehavioursBenchResult | undefined> {
  if (!SECTIONS.has('behaviours')) return undefined;
  const devices = Number(process.env.BENCH_BEHAVIOUR_DEVICES ?? 10_000);
  say(`\nBehaviours: ${fmt(devices)} meters whose twins each hold an offline timer and a pending reaction`);
  const metricsPort = await getFreePort();
  try {
    return await withStack(
      { TWINFLOW_WORKER_METRICS_PORT: String(metricsPort) },
      ({ base, temporalAddress }) =>
        runBehavioursBench({
          base,
          adminKey: ADMIN_KEY,
          say,
          devices,
          temporalAddress,
          sdkMetricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
          restSeconds: Number(process.env.BENCH_BEHAVIOUR_REST_SECONDS ?? 30),
          latencySamples: Number(process.env.BENCH_BEHAVIOUR_LATENCY_SAMPLES ?? 100),
          armRate: Number(process.env.BENCH_BEHAVIOUR_ARM_RATE ?? 200),
        }),
    );
  } catch (err) {
    say(`  Behaviours did not finish: ${(err as Error).message}`);
    return undefined;
  }
}

const OPERATIONS_OPTIONS = {
  adminKey: ADMIN_KEY,
  say,
  devices: OPERATION_DEVICES,
  operations: OPERATIONS,
  latencyConcurrency: 8,
  throughputConcurrency: 64,
  pollDevices: 100,
  pollRounds: 5,
};

/**
 * BENCH_TEMPORAL=postgres: the operations section again, on a Temporal server (the release the dev server embeds)
 * that keeps its history in PostgreSQL (BENCH_PG_HOST, BENCH_PG_PORT, BENCH_PG_USER, BENCH_PG_PASSWORD; default
 * 127.0.0.1:5432, user postgres). Skipped, saying why, when PostgreSQL does not answer or the server cannot be built.
 */
async function postgresOperations(): Promise<OperationsBenchResult | undefined> {
  if (process.env.BENCH_TEMPORAL !== 'postgres' || !SECTIONS.has('operations')) return undefined;
  const pg = {
    host: process.env.BENCH_PG_HOST ?? '127.0.0.1',
    port: Number(process.env.BENCH_PG_PORT ?? 5432),
    user: process.env.BENCH_PG_USER ?? 'postgres',
    password: process.env.BENCH_PG_PASSWORD,
  };
  const unreachable = await postgresUnreachable(pg);
  if (unreachable) {
    say(`\nOperations on Temporal with PostgreSQL: skipped, PostgreSQL does not answer (${unreachable}).`);
    return undefined;
  }
  let tools: TemporalServerTools;
  try {
    tools = await ensureTemporalServer(process.env, say);
  } catch (err) {
    say(`\nOperations on Temporal with PostgreSQL: skipped, ${(err as Error).message}`);
    return undefined;
  }
  say(
    `\nOperations on Temporal ${TEMPORAL_SERVER_VERSION} with PostgreSQL at ${pg.host}:${pg.port}: ${fmt(OPERATIONS)} synchronous operations on ${OPERATION_DEVICES} emulated devices`,
  );
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-bench-pg-'));
  const runId = `bench_${Date.now().toString(36)}_${process.pid}`;
  const server = await startPostgresTemporal({ tools, pg, runDir, runId, namespace: 'default' });
  say(
    `  Temporal on PostgreSQL at ${server.address} (databases ${server.databases.main}, ${server.databases.visibility})`,
  );
  try {
    return await withStack({ TEMPORAL_ADDRESS: server.address }, ({ base, temporalAddress, mongoUri }) =>
      runOperationsBench({ base, temporalAddress, mongoUri, ...OPERATIONS_OPTIONS }),
    );
  } finally {
    await server
      .stopAndDrop()
      .catch((err: unknown) => say(`  could not drop the run's databases: ${String(err)}`));
    rmSync(runDir, { recursive: true, force: true });
  }
}

const SHARED_STACK_SECTIONS = [
  'events',
  'forwarders',
  'identity',
  'mqtt',
  'tls',
  'operations',
  'jobs',
  'provisioning',
  'collect',
];
const JOB_DEVICES = Number(process.env.BENCH_JOB_DEVICES ?? 10_000);
const JOB_CONCURRENCY = Number(process.env.BENCH_JOB_CONCURRENCY ?? 32);
const EVENT_STREAMS = Number(process.env.BENCH_EVENT_STREAMS ?? 100);

async function main(): Promise<void> {
  const steps = await temporalSteps();
  const memory = await twinMemory();
  const behaving = await behaviours();
  const onPostgres = await postgresOperations().catch((err: unknown) => {
    say(`  Operations on Temporal with PostgreSQL did not finish: ${(err as Error).message}`);
    return undefined;
  });
  const stepsSummary = () => {
    if (steps)
      for (const line of ['  Temporal steps', ...summarizeTemporalSteps(steps, STEPS_CONCURRENCY)]) say(line);
    if (memory?.heap) {
      const { shared, unshared } = memory.heap;
      say(
        `  twin heap             ${fmt(shared.heapKiBPerTwin, 1)} KiB of V8 heap a cached twin (${fmt(shared.rssKiBPerTwin, 1)} KiB of RSS), ${fmt(shared.twins)} twins weighed in-process`,
      );
      if (unshared)
        say(
          `                        ${fmt(unshared.heapKiBPerTwin, 1)} KiB (${fmt(unshared.rssKiBPerTwin, 1)} KiB of RSS) when every twin evaluates every module itself`,
        );
    }
    if (memory?.stack) for (const line of summarizeTwinMemory(memory.stack)) say(line);
    if (behaving) for (const line of summarizeBehaviours(behaving)) say(line);
    if (onPostgres) {
      say('  On Temporal with PostgreSQL (BENCH_TEMPORAL=postgres):');
      for (const line of summarizeOperations(onPostgres)) say(line);
    }
  };
  if (!SHARED_STACK_SECTIONS.some((s) => SECTIONS.has(s))) {
    say('\nSummary');
    stepsSummary();
    return;
  }
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-bench-'));
  const ports = await stackPorts();
  say(
    `TwinFlow benchmark: ${os.cpus().length} cores, ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, Node ${process.version}`,
  );
  say('Starting the embedded stack (Temporal dev server, MongoDB-compatible server, worker, API)...');
  const stack = await startStack(dataDir, ports);
  // Stopped or interrupted: the stack goes too, rather than running on without its benchmark.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      say(`\n${signal}: stopping the stack...`);
      stack.once('exit', () => {
        rmSync(dataDir, { recursive: true, force: true });
        process.exit(130);
      });
      stack.kill('SIGTERM');
    });
  }
  const base = `http://127.0.0.1:${ports.api}`;
  const connection = await Connection.connect({ address: `127.0.0.1:${ports.temporal}` });
  const client = new Client({ connection });
  let ops: OperationsBenchResult | undefined;
  let jobs: JobsBenchResult | undefined;
  let provisionRate = NaN;
  let bareRate = NaN;
  let collectRate = NaN;
  let bareCollect: CollectRun | undefined;
  let mqtt: MqttBenchResult | undefined;
  let mqttExternal: MqttBenchResult | undefined;
  const latencies: number[] = [];
  try {
    if (SECTIONS.has('identity')) {
      say('\nIdentity: login latency, and what authentication adds to a request');
      await runIdentityBench({ base, adminKey: ADMIN_KEY, say, logins: 50, requests: 2_000 });
    }
    if (SECTIONS.has('mqtt')) {
      const devices = Number(process.env.BENCH_MQTT_DEVICES ?? 10_000);
      const external = process.env.BENCH_MQTT_EXTERNAL ?? 'on';
      const options = {
        adminKey: ADMIN_KEY,
        mongoUri: `mongodb://127.0.0.1:${ports.mongo}/`,
        db: 'twinflow',
        devices,
        seconds: Number(process.env.BENCH_MQTT_SECONDS ?? 20),
        say,
        workflowBacklog: () => workflowBacklog(connection),
      };
      try {
        // `only`: the external broker's run alone, on devices it provisions itself (a quicker look at it).
        if (external !== 'only') {
          say(
            `\nMQTT ingest: ${fmt(devices)} devices publishing QoS 1 to the embedded broker, beside the same broker bare`,
          );
          mqtt = await runMqttBench({ ...options, base, mqttUrl: `mqtt://127.0.0.1:${ports.mqtt}` });
        }
      } catch (err) {
        say(`  MQTT ingest did not finish: ${(err as Error).message}`);
      }
      if (external !== 'off')
        mqttExternal = await externalMqtt(dataDir, ports, { ...options, creds: mqtt?.creds });
    }
    if (SECTIONS.has('tls')) {
      const devices = Number(process.env.BENCH_TLS_DEVICES ?? 50);
      say(`\nTLS: ${devices} devices, plain with keys beside TLS with client certificates, in turn`);
      await runTlsBench({
        base,
        httpsBase: `https://127.0.0.1:${ports.https}`,
        mqttUrl: `mqtt://127.0.0.1:${ports.mqtt}`,
        mqttsUrl: `mqtts://127.0.0.1:${ports.mqtts}`,
        caPem: readFileSync(path.join(dataDir, 'tls', 'ca.pem'), 'utf8'),
        adminKey: ADMIN_KEY,
        devices,
        seconds: Number(process.env.BENCH_TLS_SECONDS ?? 10),
        say,
      }).catch((err: unknown) => say(`  TLS did not finish: ${(err as Error).message}`));
    }
    if (SECTIONS.has('operations')) {
      say(
        `\nOperations: ${fmt(OPERATIONS)} synchronous operations on ${OPERATION_DEVICES} emulated devices, each run beside the bare HTTP round trip`,
      );
      ops = await runOperationsBench({
        base,
        temporalAddress: `127.0.0.1:${ports.temporal}`,
        mongoUri: `mongodb://127.0.0.1:${ports.mongo}/`,
        ...OPERATIONS_OPTIONS,
      });
    }
    if (SECTIONS.has('jobs')) {
      say(
        `\nJobs: one job over ${fmt(JOB_DEVICES)} emulated synchronous devices beside as many single operations requested in a loop, ${JOB_CONCURRENCY} at once`,
      );
      jobs = await runJobsBench({
        base,
        adminKey: ADMIN_KEY,
        say,
        devices: JOB_DEVICES,
        concurrency: JOB_CONCURRENCY,
      }).catch((err: unknown) => {
        say(`  Jobs did not finish: ${(err as Error).message}`);
        return undefined;
      });
    }
    if (SECTIONS.has('events')) {
      say(`\nEvents: alarm raised to a live stream and to a webhook, with ${EVENT_STREAMS} streams open`);
      await runEventsBench({
        base,
        adminKey: ADMIN_KEY,
        streams: EVENT_STREAMS,
        meters: Number(process.env.BENCH_EVENT_METERS ?? 10),
        rounds: Number(process.env.BENCH_EVENT_ROUNDS ?? 10),
        say,
      }).catch((err: unknown) => say(`  Events did not finish: ${(err as Error).message}`));
    }
    if (SECTIONS.has('forwarders')) {
      const events = Number(process.env.BENCH_FORWARDER_EVENTS ?? 5_000);
      say(`\nForwarders: ${fmt(events)} logged events to a local webhook receiver, beside bare POSTs to it`);
      await runForwardersBench({
        base,
        adminKey: ADMIN_KEY,
        mongoUri: `mongodb://127.0.0.1:${ports.mongo}/`,
        db: 'twinflow',
        events,
        devices: Number(process.env.BENCH_FORWARDER_DEVICES ?? 100),
        concurrency: 8,
        say,
      }).catch((err: unknown) => say(`  Forwarders did not finish: ${(err as Error).message}`));
    }
    if (!SECTIONS.has('provisioning') && !SECTIONS.has('collect')) return;
    const devicesToProvision = SECTIONS.has('provisioning') ? DEVICES : COLLECT_DEVICES;
    // 1. Provisioning through the API: records, keys and twins.
    say(
      `\n1. Provisioning ${fmt(devicesToProvision)} devices through POST /north/v1/devices/bulk (${BULK_SIZE} a request, ${BULK_CONCURRENCY} at once)...`,
    );
    const deviceKeys: { id: string; key: string }[] = [];
    let failed = 0;
    const t0 = performance.now();
    await runPool(Math.ceil(devicesToProvision / BULK_SIZE), BULK_CONCURRENCY, async (chunk) => {
      const devices = Array.from(
        { length: Math.min(BULK_SIZE, devicesToProvision - chunk * BULK_SIZE) },
        (_, i) => ({
          id: `bench-${chunk * BULK_SIZE + i}`,
          type: (chunk * BULK_SIZE + i) % 2 ? 'electricity-meter' : 'generic',
          tags: ['bench'],
        }),
      );
      const res = await post(`${base}/north/v1/devices/bulk`, { devices }, ADMIN_KEY);
      if (res.status !== 200)
        throw new Error(`bulk provisioning answered ${res.status}: ${await res.text()}`);
      const body = (await res.json()) as { failed: number; results: { id: string; apiKey?: string }[] };
      failed += body.failed;
      for (const r of body.results)
        if (r.apiKey && deviceKeys.length < COLLECT_DEVICES) deviceKeys.push({ id: r.id, key: r.apiKey });
      process.stdout.write('.');
    });
    const provisionSeconds = (performance.now() - t0) / 1000;
    provisionRate = devicesToProvision / provisionSeconds;
    say(
      `\n   ${fmt(devicesToProvision - failed)} provisioned, ${failed} failed, in ${fmt(provisionSeconds, 1)} s: ${fmt(provisionRate)} devices/s`,
    );

    // Let the stack finish what provisioning started (first workflow tasks) before measuring collect.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    if (SECTIONS.has('collect')) {
      // 2. Collect throughput over HTTP.
      say(
        `\n3. Collect: POST /south/v80/devices/{id}/collect/iot for ${COLLECT_SECONDS} s, ${COLLECT_CONCURRENCY} connections, ${deviceKeys.length} devices, 3 datapoints each...`,
      );
      const twinflow = await collectLoop((d) => `${base}/south/v80/devices/${d.id}/collect/iot`, deviceKeys);
      latencies.push(...twinflow.latencies);
      collectRate = twinflow.rate;
      say(
        `   TwinFlow: ${fmt(twinflow.latencies.length)} stored (201), ${twinflow.errors} errors: ${fmt(collectRate)} requests/s, ${fmt(collectRate * 3)} datapoints/s; latency p50 ${fmt(percentile(latencies, 50), 1)} ms, p99 ${fmt(percentile(latencies, 99), 1)} ms`,
      );
      bareCollect = await bareHttpCollect(deviceKeys);
      say(
        `   bare HTTP POST server: ${fmt(bareCollect.rate)} requests/s, latency p50 ${fmt(percentile(bareCollect.latencies, 50), 1)} ms, p99 ${fmt(percentile(bareCollect.latencies, 99), 1)} ms; ratio ${fmt(collectRate / bareCollect.rate, 3)}`,
      );
    }
    if (SECTIONS.has('provisioning')) {
      // 3. The bare Temporal loop: the same number of workflow starts, same concurrency, nothing else.
      say(
        `\n2. Bare Temporal loop: ${fmt(DEVICES)} workflow starts with the client, ${START_CONCURRENCY} at once...`,
      );
      const t1 = performance.now();
      await runPool(DEVICES, START_CONCURRENCY, async (i) => {
        await client.workflow.start('twinWorkflow', {
          workflowId: `twin/bare/bench-${i}`,
          taskQueue: 'twinflow',
          args: [
            {
              identity: { org: 'bare', deviceId: `bench-${i}`, twinType: 'generic' },
              profile: { tags: [], attributes: {} },
            },
          ],
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        });
        if (i % 500 === 0) process.stdout.write('.');
      });
      const bareSeconds = (performance.now() - t1) / 1000;
      bareRate = DEVICES / bareSeconds;
      say(`\n   ${fmt(DEVICES)} started in ${fmt(bareSeconds, 1)} s: ${fmt(bareRate)} starts/s`);
    }
  } finally {
    say('\nSummary');
    stepsSummary();
    for (const [name, m] of [
      ['MQTT ingest (embedded)', mqtt],
      ['MQTT via mosquitto   ', mqttExternal],
    ] as const) {
      if (!m) continue;
      say(
        `  ${name} ${fmt(m.rate).padStart(8)} messages/s, bare broker ${fmt(m.bareRate)}/s, ratio ${fmt(m.rate / m.bareRate, 3)} (aim: 0.25, 0.5)`,
      );
      say(
        `                         ack p99 at half rate ${fmt(m.halfRateAckP99Ms)} ms (aim: 1,000${m === mqttExternal ? "; the broker's ack" : ''}); visible p99 ${fmt(m.visibleP99Ms)} ms (aim: 1,000); lost ${fmt(Math.max(0, m.acked - m.stored))} (stored ${fmt(m.stored)} of ${fmt(m.acked)} acknowledged)`,
      );
      say(
        `                         twin signals ${m.signalsPerSecond.map((r) => fmt(r, 1)).join(' then ')} /s as the rate doubled`,
      );
    }
    if (ops) for (const line of summarizeOperations(ops)) say(line);
    if (jobs)
      say(
        `  jobs                  ${fmt(jobs.jobRate, 1).padStart(8)} operations/s through one job, ${fmt(jobs.loopRate, 1)}/s as single operations, ratio ${fmt(jobs.jobRate / jobs.loopRate, 2)} (aim: 1 or better), ${fmt(jobs.devices)} devices; create to first start ${fmt(jobs.firstStartMs)} ms`,
      );
    if (SECTIONS.has('provisioning') && Number.isFinite(bareRate)) {
      say(`  provisioning          ${fmt(provisionRate).padStart(8)} devices/s`);
      say(`  bare Temporal starts  ${fmt(bareRate).padStart(8)} starts/s`);
      say(`  ratio                 ${fmt(provisionRate / bareRate, 2).padStart(8)}   (aim: 0.70 or better)`);
    }
    if (SECTIONS.has('collect') && Number.isFinite(collectRate)) {
      say(
        `  collect               ${fmt(collectRate).padStart(8)} requests/s (p50 ${fmt(percentile(latencies, 50), 1)} ms, p99 ${fmt(percentile(latencies, 99), 1)} ms), ${fmt(COLLECT_DEVICES)} devices`,
      );
      if (bareCollect)
        say(
          `  bare HTTP POST        ${fmt(bareCollect.rate).padStart(8)} requests/s (p50 ${fmt(percentile(bareCollect.latencies, 50), 1)} ms, p99 ${fmt(percentile(bareCollect.latencies, 99), 1)} ms); ratio ${fmt(collectRate / bareCollect.rate, 3)}`,
        );
    }
    await connection.close();
    stack.kill('SIGTERM');
    await new Promise((r) => stack.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
