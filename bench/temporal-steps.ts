// Bench section: what each internal Temporal step costs on the dev server, on its defaults and on TwinFlow's config.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { DEV_SERVER_DYNAMIC_CONFIG, type DynamicConfig } from '../worker/dev-server-config';
import { getFreePort, startTemporalDevServer } from '../worker/local-stack';
import { ensureTemporalCli } from '../worker/tools';
import {
  type StepActivities,
  bumpCounterSignal,
  readCounterQuery,
  returnNowUpdate,
  runActivityUpdate,
  runChildUpdate,
  runLocalActivityUpdate,
  runTimerUpdate,
  stopSignal,
} from './temporal-steps.workflows';

export interface StepFigures {
  readonly p50: number;
  readonly p99: number;
  /** Operations a second at the throughput concurrency. */
  readonly rate: number;
  readonly errors: number;
}

export interface TemporalStepsRow {
  readonly step: string;
  readonly byConfig: Readonly<Record<string, StepFigures>>;
}

export interface TemporalStepsOptions {
  readonly say: (line: string) => void;
  /** Operations one at a time per step, for p50 and p99. */
  readonly iterations: number;
  /** Concurrent clients and seconds of the throughput run per step. */
  readonly concurrency: number;
  readonly seconds: number;
  /** Keys to leave out of TwinFlow's config in a third run, to see what each is worth. */
  readonly without?: readonly string[];
}

export interface TemporalStepsResult {
  readonly configs: readonly string[];
  readonly rows: readonly TemporalStepsRow[];
  readonly seconds: number;
}

interface NamedConfig {
  readonly name: string;
  readonly config: DynamicConfig;
}

/** The dev server's own defaults (`{}`), TwinFlow's config, and TwinFlow's config without some keys if asked. */
function configs(without: readonly string[] = []): NamedConfig[] {
  const list = [
    { name: 'default', config: {} },
    { name: 'tuned', config: DEV_SERVER_DYNAMIC_CONFIG },
  ];
  if (without.length === 0) return list;
  const config = Object.fromEntries(
    Object.entries(DEV_SERVER_DYNAMIC_CONFIG).filter(([k]) => !without.includes(k)),
  );
  return [...list, { name: 'without', config }];
}

interface Lane {
  readonly client: Client;
  readonly taskQueue: string;
  readonly handle: WorkflowHandle;
  next: number;
}

/** One measured step: an operation a lane repeats, on the lane's own long-lived workflow. */
interface Step {
  readonly name: string;
  /** Fewer one-at-a-time iterations for a step that costs a second on the dev server's defaults. */
  readonly maxIterations?: number;
  run(lane: Lane): Promise<void>;
}

const STEPS: readonly Step[] = [
  {
    name: 'update, returns at once',
    run: async (l) => void (await l.handle.executeUpdate(returnNowUpdate, { args: [l.next++] })),
  },
  {
    name: 'update + local activity',
    run: async (l) => void (await l.handle.executeUpdate(runLocalActivityUpdate, { args: [l.next++] })),
  },
  {
    name: 'update + activity',
    run: async (l) => void (await l.handle.executeUpdate(runActivityUpdate, { args: [l.next++] })),
  },
  {
    name: 'update + child workflow',
    run: async (l) => void (await l.handle.executeUpdate(runChildUpdate, { args: [l.next++] })),
  },
  {
    name: 'update + 1 ms timer',
    maxIterations: 30,
    run: async (l) => void (await l.handle.executeUpdate(runTimerUpdate, { args: [l.next++] })),
  },
  {
    name: 'signal, query until seen',
    run: async (l) => {
      const want = ++l.next;
      await l.handle.signal(bumpCounterSignal);
      while ((await l.handle.query(readCounterQuery)) < want) await new Promise((r) => setTimeout(r, 1));
    },
  },
  {
    name: 'workflow start to result',
    run: async (l) => {
      const n = l.next++;
      await l.client.workflow.execute('emptyWorkflow', {
        taskQueue: l.taskQueue,
        workflowId: `${l.handle.workflowId}-start-${n}`,
        args: [n],
      });
    },
  },
  {
    // What operators and tests wait for when they list workflows (the Web UI, `temporal workflow list`).
    name: 'start, list until visible',
    run: async (l) => {
      const workflowId = `${l.handle.workflowId}-listed-${l.next++}`;
      await l.client.workflow.start('emptyWorkflow', { taskQueue: l.taskQueue, workflowId, args: [0] });
      while ((await l.client.workflow.count(`WorkflowId = '${workflowId}'`)).count < 1)
        await new Promise((r) => setTimeout(r, 1));
    },
  },
];

const stepActivities: StepActivities = { echo: async (n) => n };

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function openLanes(client: Client, taskQueue: string, prefix: string, count: number): Promise<Lane[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const handle = await client.workflow.start('stepsWorkflow', {
        taskQueue,
        workflowId: `${prefix}-${i}`,
      });
      // Wait out the first workflow task, so the first measured operation does not pay for it.
      await handle.query(readCounterQuery);
      return { client, taskQueue, handle, next: 0 };
    }),
  );
}

/** p50/p99 one at a time, then the rate at `concurrency` for `seconds`, each on fresh workflows. */
async function measureStep(
  step: Step,
  client: Client,
  taskQueue: string,
  o: TemporalStepsOptions,
  id: string,
): Promise<StepFigures> {
  const [single] = await openLanes(client, taskQueue, `${id}-c1`, 1);
  for (let i = 0; i < 5; i++) await step.run(single!); // warm-up: connections, sticky cache
  const latencies: number[] = [];
  for (let i = 0; i < Math.min(o.iterations, step.maxIterations ?? Infinity); i++) {
    const start = performance.now();
    await step.run(single!);
    latencies.push(performance.now() - start);
  }
  latencies.sort((a, b) => a - b);
  const lanes = await openLanes(client, taskQueue, `${id}-c${o.concurrency}`, o.concurrency);
  let done = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + o.seconds * 1000;
  await Promise.all(
    lanes.map(async (lane) => {
      while (performance.now() < deadline) {
        await step.run(lane).then(
          () => done++,
          () => errors++,
        );
      }
    }),
  );
  const rate = done / ((performance.now() - started) / 1000);
  await Promise.all([single!, ...lanes].map((l) => l.handle.signal(stopSignal).catch(() => undefined)));
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rate, errors };
}

/** Starts a dev server with `config`, an in-process worker and a client, and measures every step on it. */
async function measureConfig(
  bin: string,
  workflowCode: string,
  name: string,
  config: DynamicConfig,
  o: TemporalStepsOptions,
): Promise<Record<string, StepFigures>> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `twinflow-steps-${name}-`));
  const server = await startTemporalDevServer({
    bin,
    port: await getFreePort(),
    uiPort: 0,
    ui: false,
    dataDir,
    namespace: 'default',
    baseDynamicConfig: config,
  });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const connection = await Connection.connect({ address: server.address });
  const taskQueue = `steps-${name}`;
  try {
    const worker = await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowBundle: { code: workflowCode },
      activities: stepActivities,
    });
    const client = new Client({ connection });
    const out: Record<string, StepFigures> = {};
    await worker.runUntil(async () => {
      for (const [i, step] of STEPS.entries()) {
        out[step.name] = await measureStep(step, client, taskQueue, o, `steps-${i}`);
        o.say(`   ${name.padEnd(8)} ${describe(step.name, out[step.name]!, o.concurrency)}`);
      }
    });
    return out;
  } finally {
    await connection.close();
    await nativeConnection.close();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const describe = (step: string, f: StepFigures, concurrency: number) =>
  `${step.padEnd(26)} p50 ${fmt(f.p50, 1).padStart(6)} ms, p99 ${fmt(f.p99, 1).padStart(6)} ms; ${fmt(f.rate).padStart(5)}/s at ${concurrency}${f.errors ? `, ${f.errors} errors` : ''}`;

export async function runTemporalStepsBench(o: TemporalStepsOptions): Promise<TemporalStepsResult> {
  const started = performance.now();
  // The worker's state changes at INFO would interleave with the figures.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const bin = await ensureTemporalCli(process.env, o.say);
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('./temporal-steps.workflows'),
    logger: {
      log: () => undefined,
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (m) => o.say(m),
    },
  });
  const byConfig: Record<string, Record<string, StepFigures>> = {};
  const compared = configs(o.without);
  for (const { name, config } of compared) {
    o.say(`  dev server with ${name} config ${JSON.stringify(config)}`);
    byConfig[name] = await measureConfig(bin, code, name, config, o);
  }
  const rows = STEPS.map((s) => ({
    step: s.name,
    byConfig: Object.fromEntries(compared.map(({ name }) => [name, byConfig[name]![s.name]!])),
  }));
  return { configs: compared.map((c) => c.name), rows, seconds: (performance.now() - started) / 1000 };
}

/** The summary table: per step, p50/p99 one at a time and the rate at the throughput concurrency, per config. */
export function summarizeTemporalSteps(r: TemporalStepsResult, concurrency: number): string[] {
  const head = r.configs.map((c) => `${c}: p50 / p99 ms, ops/s at ${concurrency}`.padEnd(36)).join(' | ');
  const lines = [`  ${'step'.padEnd(26)} ${head}`];
  for (const row of r.rows) {
    const cells = r.configs.map((c) => {
      const f = row.byConfig[c]!;
      return `${fmt(f.p50, 1).padStart(6)} / ${fmt(f.p99, 1).padStart(6)}, ${fmt(f.rate).padStart(5)}/s`.padEnd(
        36,
      );
    });
    lines.push(`  ${row.step.padEnd(26)} ${cells.join(' | ')}`);
  }
  lines.push(`  (${fmt(r.seconds)} s in all, servers included)`);
  return lines;
}
