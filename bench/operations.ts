// Operations benchmark: synchronous round trips through TwinFlow against the bare HTTP round trip to the same
// emulated devices, throughput, and pending-poll latency for sleepy devices.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { type DeviceEmulator, startDeviceEmulator } from '../emulator/device-emulator';
import { type CpuSample, cpuPerUnit, describeCpu, SchedWindows, sampleCpu } from './cpu';
import { startBareHttp } from './bare-http-child';
import { type BareTwins, startBareTwins } from './operations-bare';

export interface OperationsBenchOptions {
  readonly base: string;
  /** The Temporal server TwinFlow runs on: the bare reference runs its workflows there too. */
  readonly temporalAddress: string;
  /** TwinFlow's store (database `twinflow`): the bare poll reference reads it too. */
  readonly mongoUri: string;
  readonly adminKey: string;
  readonly say: (line: string) => void;
  /** Devices answering synchronously. */
  readonly devices: number;
  /** Operations per measured run. */
  readonly operations: number;
  /** Concurrent clients in the latency run and in the throughput run. */
  readonly latencyConcurrency: number;
  readonly throughputConcurrency: number;
  /** Sleepy devices polling, and rounds of one operation each. */
  readonly pollDevices: number;
  readonly pollRounds: number;
}

export interface Figures {
  readonly p50: number;
  readonly p99: number;
  readonly rate: number;
  readonly count: number;
  readonly errors: number;
}

export interface OperationsBenchResult {
  /** The bare HTTP round trip to the emulator. */
  readonly bareLatency: Figures;
  /** A bare Temporal Update running a local activity that POSTs to the emulator. */
  readonly bareUpdate: Figures;
  readonly syncLatency: Figures;
  readonly bareThroughput: Figures;
  readonly bareUpdateThroughput: Figures;
  readonly syncThroughput: Figures;
  readonly pollWithOperation: Figures;
  /** Empty polls made right after the device's own hand-over, while the other devices still hand over. */
  readonly pollEmpty: Figures;
  /** Empty polls with every device polling at once and nothing waiting for any of them. */
  readonly pollEmptyAtOnce: Figures;
  /** The same with the stack at rest (the twins done with the rounds' operations), as the bare GETs run. */
  readonly pollEmptyAtRest: Figures;
  /** How long each process ran and waited for a CPU while those empty polls, and the ones at rest, were answered. */
  readonly pollEmptyAtOnceSched: string;
  readonly pollEmptyAtRestSched: string;
  /** As many GETs at once to a bare HTTP server in its own process: answered at once, and after one `_id` read. */
  readonly bareGetAtOnce: Figures;
  readonly bareGetReadAtOnce: Figures;
  /** A bare no-op Update, as many at once as devices poll. */
  readonly bareNoopUpdate: Figures;
  /** Per synchronous operation, on a sample of twins: workflow tasks and operation workflows started. */
  readonly tasksPerOperation: number;
  readonly childWorkflowsPerOperation: number;
  /** CPU milliseconds a request, by process, at 8 at once: the bare Update + local activity, and TwinFlow's. */
  readonly bareUpdateCpu: readonly [string, number][];
  readonly syncCpu: readonly [string, number][];
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function figures(latencies: number[], seconds: number, errors: number): Figures {
  latencies.sort((a, b) => a - b);
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    rate: latencies.length / seconds,
    count: latencies.length,
    errors,
  };
}

export const describeFigures = (f: Figures, unit: string) =>
  `${fmt(f.count)} ${unit}, ${f.errors} errors: p50 ${fmt(f.p50, 1)} ms, p99 ${fmt(f.p99, 1)} ms, ${fmt(f.rate)}/s`;

async function call(
  method: string,
  url: string,
  key: string | undefined,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  const res = await fetch(url, {
    method,
    headers: {
      ...(key ? { 'X-ApiKey': key } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/**
 * Polls and the bare GETs beside them go out through node:http over kept-alive connections: the same client for
 * both, and one that costs the benchmark's process a fraction of fetch's time a request (100 GETs at once to a
 * server that answers at once measured p99 14 to 20 ms here, against 42 to 49 ms with fetch).
 */
const pollAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function get(url: string, key?: string, retried = false): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: pollAgent, headers: key ? { 'X-ApiKey': key } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      // A kept-alive connection the server closed as the request went out: once more, on a new one (as
      // Node's documentation advises for idempotent requests).
      if (req.reusedSocket && !retried) get(url, key, true).then(resolve, reject);
      else reject(err);
    });
  });
}

async function getJson(url: string, key?: string): Promise<{ status: number; json: any }> {
  const { status, text } = await get(url, key);
  return { status, json: text ? JSON.parse(text) : undefined };
}

/** Runs `total` jobs with `concurrency` workers; worker w only uses devices w, w+concurrency, ... */
async function timedPool(
  total: number,
  concurrency: number,
  job: (worker: number, i: number) => Promise<boolean>,
): Promise<Figures> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (next < total) {
        const i = next++;
        const start = performance.now();
        if (await job(worker, i)) latencies.push(performance.now() - start);
        else errors++;
      }
    }),
  );
  return figures(latencies, (performance.now() - t0) / 1000, errors);
}

async function provision(
  o: OperationsBenchOptions,
  ids: string[],
  transport: (id: string) => Record<string, unknown>,
): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  for (let i = 0; i < ids.length; i += 500) {
    const devices = ids.slice(i, i + 500).map((id) => ({ id, transport: transport(id) }));
    const res = await call('POST', `${o.base}/north/v1/devices/bulk`, o.adminKey, { devices });
    if (res.status !== 200) throw new Error(`bulk provisioning answered ${res.status}`);
    for (const r of res.json.results as { id: string; apiKey?: string }[])
      if (r.apiKey) keys.set(r.id, r.apiKey);
  }
  if (keys.size !== ids.length) throw new Error(`provisioned ${keys.size} of ${ids.length} devices`);
  return keys;
}

/** Workflow tasks and child starts in the histories of the given devices' twins so far. */
async function countTwinTasks(
  client: Client,
  deviceIds: readonly string[],
): Promise<{ tasks: number; children: number }> {
  let tasks = 0;
  let children = 0;
  for (const id of deviceIds) {
    for await (const wf of client.workflow.list({
      query: `WorkflowType = 'twinWorkflow' AND TwinflowDeviceId = '${id}'`,
    })) {
      const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      for (const e of history.events ?? []) {
        if (e.workflowTaskCompletedEventAttributes) tasks++;
        if (e.startChildWorkflowExecutionInitiatedEventAttributes) children++;
      }
    }
  }
  return { tasks, children };
}

const requestBody = (deviceId: string) => ({
  operation: {
    request: { id: randomUUID(), deviceId, name: 'REFRESH_INFO', timestamp: Date.now(), parameters: {} },
  },
});

interface SyncBench {
  readonly ids: readonly string[];
  readonly emulator: DeviceEmulator;
  readonly bareTwins: BareTwins;
}

/** Synchronous operations through TwinFlow, beside the bare HTTP POST and the bare Update + local activity. */
async function runSyncBench(o: OperationsBenchOptions, b: SyncBench, client: Client) {
  const { ids, emulator, bareTwins } = b;
  const device = (worker: number, i: number, concurrency: number) =>
    ids[(worker + concurrency * Math.floor(i / concurrency)) % ids.length]!;
  const bare = (c: number) => (w: number, i: number) =>
    call('POST', emulator.operationUrl(device(w, i, c)), undefined, requestBody(device(w, i, c))).then(
      (r) => r.status === 200 && r.json?.operation?.response?.resultCode === 'SUCCESSFUL',
    );
  const bareUpdate = (c: number) => (w: number, i: number) => {
    const id = device(w, i, c);
    return bareTwins.push(id, emulator.operationUrl(id), requestBody(id));
  };
  // One request: the API answers the final record when the operation ends within waitMs.
  const viaTwinflow = (c: number) => async (w: number, i: number) => {
    const url = `${o.base}/north/v1/devices/${device(w, i, c)}/operations?waitMs=10000`;
    const created = await call('POST', url, o.adminKey, { name: 'REFRESH_INFO', timeoutMs: 10_000 });
    if (created.status !== 200 && created.status !== 202) return false;
    if (created.json.status === 'SUCCESSFUL') return true;
    const done = await call(
      'GET',
      `${o.base}/north/v1/operations/${created.json.id}?waitMs=10000`,
      o.adminKey,
    );
    return done.status === 200 && done.json.status === 'SUCCESSFUL';
  };
  const c1 = o.latencyConcurrency;
  const c2 = o.throughputConcurrency;
  o.say('   warming up...');
  await timedPool(Math.min(200, o.operations), c1, viaTwinflow(c1));
  await timedPool(200, c1, bare(c1));
  await timedPool(200, c1, bareUpdate(c1));
  const line = (what: string, f: Figures, unit: string) =>
    o.say(`   ${what.padEnd(52)} ${describeFigures(f, unit)}`);
  const bareLatency = await timedPool(o.operations, c1, bare(c1));
  line(`bare HTTP POST to the emulator, ${c1} at once:`, bareLatency, 'requests');
  let cpu0: CpuSample = sampleCpu();
  const bareUpdateFigures = await timedPool(o.operations, c1, bareUpdate(c1));
  const bareUpdateCpu = cpuPerUnit(cpu0, sampleCpu(), bareUpdateFigures.count);
  line(`bare Update + local activity POST, ${c1} at once:`, bareUpdateFigures, 'updates');
  o.say(`     CPU an update: ${describeCpu(bareUpdateCpu)}`);
  const sample = ids.slice(0, Math.min(8, ids.length));
  const before = await countTwinTasks(client, sample);
  cpu0 = sampleCpu();
  const syncLatency = await timedPool(o.operations, c1, viaTwinflow(c1));
  const syncCpu = cpuPerUnit(cpu0, sampleCpu(), syncLatency.count);
  const after = await countTwinTasks(client, sample);
  line(`operation request to final state, ${c1} at once:`, syncLatency, 'operations');
  o.say(`     CPU an operation: ${describeCpu(syncCpu)}`);
  // Worker w drives devices w, w + c1, ...: the sampled devices saw operations / ids.length each, in round numbers.
  const opsOnSample = sample.length * (o.operations / ids.length);
  const tasksPerOperation = (after.tasks - before.tasks) / opsOnSample;
  const childWorkflowsPerOperation = (after.children - before.children) / opsOnSample;
  o.say(
    `   per operation on ${sample.length} sampled twins: ${fmt(tasksPerOperation, 2)} workflow tasks, ${fmt(childWorkflowsPerOperation, 2)} operation workflows started`,
  );
  const bareThroughput = await timedPool(o.operations, c2, bare(c2));
  line(`bare HTTP POST, ${c2} at once:`, bareThroughput, 'requests');
  const bareUpdateThroughput = await timedPool(o.operations, c2, bareUpdate(c2));
  line(`bare Update + local activity POST, ${c2} at once:`, bareUpdateThroughput, 'updates');
  const syncThroughput = await timedPool(o.operations, c2, viaTwinflow(c2));
  line(`operation request to final state, ${c2} at once:`, syncThroughput, 'operations');
  return {
    bareLatency,
    bareUpdate: bareUpdateFigures,
    syncLatency,
    bareThroughput,
    bareUpdateThroughput,
    syncThroughput,
    tasksPerOperation,
    childWorkflowsPerOperation,
    bareUpdateCpu,
    syncCpu,
  };
}

/**
 * Sleepy devices: each round queues one operation per device, waits for the stack to be at rest, then every
 * device polls once, all at once, and once more right after its hand-over.
 */
async function runPollBench(o: OperationsBenchOptions, run: string, temporalAddress: string) {
  o.say(`   provisioning ${o.pollDevices} sleepy devices; ${o.pollRounds} rounds of queue-then-poll...`);
  const sleepy = Array.from({ length: o.pollDevices }, (_, i) => `sleepy-${run}-${i}`);
  const sleepyKeys = await provision(o, sleepy, () => ({ sleepy: true }));
  const withOp: number[] = [];
  const empty: number[] = [];
  const emptyAtOnce: number[] = [];
  let pollErrors = 0;
  let emptyErrors = 0;
  let pollSeconds = 0;
  let emptySeconds = 0;
  // How long each process ran, and waited for a CPU, while the empty polls right after a round were answered.
  const afterRoundSched = new SchedWindows();
  const poll = (id: string) =>
    getJson(`${o.base}/south/v80/devices/${id}/operation/pending`, sleepyKeys.get(id));
  const pollOnce = async (id: string) => {
    const key = sleepyKeys.get(id)!;
    const start = performance.now();
    const got = await poll(id);
    const took = performance.now() - start;
    if (got.status !== 200 || !Array.isArray(got.json) || got.json.length !== 1) return void pollErrors++;
    withOp.push(took);
    const opId = got.json[0].operation.request.id as string;
    await call('POST', `${o.base}/south/v80/devices/${id}/operation/response`, key, {
      operation: { response: { id: opId, resultCode: 'SUCCESSFUL' } },
    });
    const start2 = performance.now();
    const again = await poll(id);
    if (again.status === 200 && Array.isArray(again.json) && again.json.length === 0)
      empty.push(performance.now() - start2);
    else pollErrors++;
  };
  for (let round = 0; round < o.pollRounds; round++) {
    await Promise.all(
      sleepy.map((id) =>
        call('POST', `${o.base}/north/v1/devices/${id}/operations`, o.adminKey, { name: 'REFRESH_INFO' }),
      ),
    );
    // A sleepy device polls long after its operation was queued: the polls start with the stack at rest, as the
    // bare Updates they are compared with run.
    await atRest();
    const t0 = performance.now();
    await Promise.all(sleepy.map(pollOnce));
    pollSeconds += (performance.now() - t0) / 1000;
    // Then every device polls at once again, with nothing waiting for any of them.
    const t1 = performance.now();
    await afterRoundSched.measure(() =>
      Promise.all(
        sleepy.map(async (id) => {
          const start = performance.now();
          const got = await poll(id);
          if (got.status === 200 && Array.isArray(got.json) && got.json.length === 0)
            emptyAtOnce.push(performance.now() - start);
          else emptyErrors++;
        }),
      ),
    );
    emptySeconds += (performance.now() - t1) / 1000;
  }
  const atRestSched = new SchedWindows();
  const pollEmptyAtRest = await emptyPollsAtRest(o, sleepy, poll, atRestSched);
  const { bareGetAtOnce, bareGetReadAtOnce } = await bareGets(o, sleepy);
  const pollWithOperation = figures(withOp, pollSeconds, pollErrors);
  const pollEmpty = figures(empty, pollSeconds, 0);
  const pollEmptyAtOnce = figures(emptyAtOnce, emptySeconds, emptyErrors);
  // The bare reference: as many no-op Updates at once, on as many long-lived workflows.
  const bare = await startBareTwins(temporalAddress, sleepy);
  const noop: number[] = [];
  let noopErrors = 0;
  const t0 = performance.now();
  try {
    for (let round = 0; round < o.pollRounds * 2; round++) {
      await Promise.all(
        sleepy.map(async (id) => {
          const start = performance.now();
          if (await bare.noop(id).catch(() => false)) noop.push(performance.now() - start);
          else noopErrors++;
        }),
      );
    }
  } finally {
    await bare.close();
  }
  const bareNoopUpdate = figures(noop, (performance.now() - t0) / 1000, noopErrors);
  const n = o.pollDevices;
  o.say(
    `   ${`poll that hands over an operation, ${n} at once:`.padEnd(52)} ${describeFigures(pollWithOperation, 'polls')}`,
  );
  o.say(
    `   ${'empty poll right after its hand-over, amid others:'.padEnd(52)} ${describeFigures(pollEmpty, 'polls')}`,
  );
  o.say(`   ${`empty polls, ${n} at once:`.padEnd(52)} ${describeFigures(pollEmptyAtOnce, 'polls')}`);
  o.say(`   ${'  the processes meanwhile, all rounds:'.padEnd(52)} ${afterRoundSched.describe()}`);
  o.say(`   ${`empty polls at rest, ${n} at once:`.padEnd(52)} ${describeFigures(pollEmptyAtRest, 'polls')}`);
  o.say(`   ${'  the processes meanwhile, all rounds:'.padEnd(52)} ${atRestSched.describe()}`);
  o.say(`   ${`bare HTTP GET, ${n} at once:`.padEnd(52)} ${describeFigures(bareGetAtOnce, 'requests')}`);
  o.say(
    `   ${`bare HTTP GET reading one _id, ${n} at once:`.padEnd(52)} ${describeFigures(bareGetReadAtOnce, 'requests')}`,
  );
  o.say(`   ${`bare no-op Update, ${n} at once:`.padEnd(52)} ${describeFigures(bareNoopUpdate, 'updates')}`);
  return {
    pollWithOperation,
    pollEmpty,
    pollEmptyAtOnce,
    pollEmptyAtRest,
    bareGetAtOnce,
    bareGetReadAtOnce,
    bareNoopUpdate,
    pollEmptyAtOnceSched: afterRoundSched.describe(),
    pollEmptyAtRestSched: atRestSched.describe(),
  };
}

/** The stack's processes (TwinFlow, Temporal, the store) used under 10% of a core over half a second. */
async function quiet(): Promise<boolean> {
  const before = sampleCpu();
  await new Promise((r) => setTimeout(r, 500));
  const busy = cpuPerUnit(before, sampleCpu(), 1).filter(
    ([name]) => name !== 'elsewhere' && name !== 'bench',
  );
  return busy.reduce((sum, [, ms]) => sum + ms, 0) < 50;
}

/** Waits (up to 60 s) until the stack is at rest (see quiet). */
async function atRest(): Promise<void> {
  const until = performance.now() + 60_000;
  while (performance.now() < until && !(await quiet()));
}

/**
 * Empty polls with the stack at rest, as the bare GETs are measured: once the twins have done with the rounds'
 * operations (up to 60 s), every device polls at once, as many rounds as the polls ran.
 */
async function emptyPollsAtRest(
  o: OperationsBenchOptions,
  ids: readonly string[],
  poll: (id: string) => Promise<{ status: number; json: any }>,
  sched: SchedWindows,
): Promise<Figures> {
  await atRest();
  return sched.measure(() =>
    roundsAtOnce(o.pollRounds, ids, async (id) => {
      const got = await poll(id);
      return got.status === 200 && Array.isArray(got.json) && got.json.length === 0;
    }),
  );
}

/** Every device asks at once, `rounds` times; an answer counts when `ask` finds it right. */
async function roundsAtOnce(
  rounds: number,
  ids: readonly string[],
  ask: (id: string) => Promise<boolean>,
): Promise<Figures> {
  const took: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  for (let round = 0; round < rounds; round++) {
    await Promise.all(
      ids.map(async (id) => {
        const start = performance.now();
        if (await ask(id).catch(() => false)) took.push(performance.now() - start);
        else errors++;
      }),
    );
  }
  return figures(took, (performance.now() - t0) / 1000, errors);
}

/**
 * The floors under an empty poll: every device's GET at once, as many rounds as the polls ran, to a bare HTTP
 * server in its own process that answers an empty list at once, and to one that first reads the device's
 * pending marker by `_id` from the same store.
 */
async function bareGets(o: OperationsBenchOptions, ids: readonly string[]) {
  const bare = await startBareHttp({ BARE_MONGODB_URI: o.mongoUri, BARE_MONGODB_DB: 'twinflow' });
  try {
    const rounds = (query: (id: string) => string) =>
      roundsAtOnce(o.pollRounds, ids, async (id) => {
        const res = await get(`http://127.0.0.1:${bare.port}/poll${query(id)}`);
        return res.status === 200 && res.text === '[]';
      });
    await rounds(() => ''); // the server's first requests, and the client's connections
    const bareGetAtOnce = await rounds(() => '');
    const bareGetReadAtOnce = await rounds((id) => `?read=${encodeURIComponent(`default/${id}`)}`);
    return { bareGetAtOnce, bareGetReadAtOnce };
  } finally {
    bare.stop();
  }
}

export async function runOperationsBench(o: OperationsBenchOptions): Promise<OperationsBenchResult> {
  const emulator: DeviceEmulator = await startDeviceEmulator({ twinflowUrl: o.base });
  const connection = await Connection.connect({ address: o.temporalAddress });
  const client = new Client({ connection });
  let bareTwins: BareTwins | undefined;
  try {
    const run = randomUUID().slice(0, 8);
    const ids = Array.from({ length: o.devices }, (_, i) => `op-${run}-${i}`);
    o.say(`   provisioning ${o.devices} emulated synchronous devices, and as many bare workflows...`);
    const keys = await provision(o, ids, (id) => ({ http: { operationUrl: emulator.operationUrl(id) } }));
    for (const id of ids) emulator.addDevice({ id, apiKey: keys.get(id)!, behavior: { kind: 'sync' } });
    bareTwins = await startBareTwins(o.temporalAddress, ids);
    const sync = await runSyncBench(o, { ids, emulator, bareTwins }, client);
    await bareTwins.close();
    bareTwins = undefined;
    const polls = await runPollBench(o, run, o.temporalAddress);
    return { ...sync, ...polls };
  } finally {
    await bareTwins?.close();
    await connection.close();
    await emulator.close();
  }
}

const ratio = (a: number, b: number) => fmt(a / b, 2);

/** The summary lines: each hot path beside its bare reference from the same run, and the aims. */
export function summarizeOperations(o: OperationsBenchResult): string[] {
  const s = o.syncLatency;
  const u = o.bareUpdate;
  const pollAim = 2 * o.bareNoopUpdate.p99;
  return [
    `  operation round trip  p50 ${fmt(s.p50, 1)} ms, p99 ${fmt(s.p99, 1)} ms, ${fmt(s.rate)}/s at 8 at once; bare Update + local activity p50 ${fmt(u.p50, 1)} ms, p99 ${fmt(u.p99, 1)} ms, ${fmt(u.rate)}/s`,
    `                        p50 ratio ${ratio(s.p50, u.p50)} (aim: 1.5 or less), throughput ratio ${ratio(s.rate, u.rate)} (aim: 0.70 or more); bare HTTP POST p50 ${fmt(o.bareLatency.p50, 1)} ms`,
    `                        ${fmt(o.tasksPerOperation, 2)} workflow tasks and ${fmt(o.childWorkflowsPerOperation, 2)} operation workflows per operation`,
    `                        CPU an operation ${describeCpu(o.syncCpu)}`,
    `                        CPU a bare update ${describeCpu(o.bareUpdateCpu)}`,
    `  operation throughput  ${fmt(o.syncThroughput.rate)} operations/s at 64 at once (p99 ${fmt(o.syncThroughput.p99, 1)} ms); bare Update + local activity ${fmt(o.bareUpdateThroughput.rate)}/s, bare HTTP ${fmt(o.bareThroughput.rate)}/s`,
    `  pending poll          handing over one operation p50 ${fmt(o.pollWithOperation.p50, 1)} ms, p99 ${fmt(o.pollWithOperation.p99, 1)} ms (aim: p99 at most ${fmt(pollAim, 1)} ms, 2x the bare no-op Update's ${fmt(o.bareNoopUpdate.p99, 1)} ms at the same concurrency)`,
    `                        empty polls, every device at once: p50 ${fmt(o.pollEmptyAtOnce.p50, 1)} ms, p99 ${fmt(o.pollEmptyAtOnce.p99, 1)} ms (aim: p99 20 ms or less); at rest p50 ${fmt(o.pollEmptyAtRest.p50, 1)} ms, p99 ${fmt(o.pollEmptyAtRest.p99, 1)} ms; right after a hand-over, amid others handing over, p50 ${fmt(o.pollEmpty.p50, 1)} ms, p99 ${fmt(o.pollEmpty.p99, 1)} ms`,
    `                        as many bare HTTP GETs at once: p99 ${fmt(o.bareGetAtOnce.p99, 1)} ms answered at once, ${fmt(o.bareGetReadAtOnce.p99, 1)} ms after one _id read from the same store`,
    `                        the processes during the empty polls at once, ${o.pollEmptyAtOnceSched}`,
    `                        and at rest, ${o.pollEmptyAtRestSched}`,
  ];
}
