// Operations benchmark: synchronous round trips through TwinFlow against the bare HTTP round trip to the same
// emulated devices, throughput, and pending-poll latency for sleepy devices.
import { randomUUID } from 'node:crypto';
import { type DeviceEmulator, startDeviceEmulator } from '../emulator/device-emulator';

export interface OperationsBenchOptions {
  readonly base: string;
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
  readonly bareLatency: Figures;
  readonly syncLatency: Figures;
  readonly bareThroughput: Figures;
  readonly syncThroughput: Figures;
  readonly pollWithOperation: Figures;
  readonly pollEmpty: Figures;
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

export async function runOperationsBench(o: OperationsBenchOptions): Promise<OperationsBenchResult> {
  const emulator: DeviceEmulator = await startDeviceEmulator({ twinflowUrl: o.base });
  try {
    const run = randomUUID().slice(0, 8);
    const ids = Array.from({ length: o.devices }, (_, i) => `op-${run}-${i}`);
    o.say(`   provisioning ${o.devices} emulated synchronous devices...`);
    const keys = await provision(o, ids, (id) => ({ http: { operationUrl: emulator.operationUrl(id) } }));
    for (const id of ids) emulator.addDevice({ id, apiKey: keys.get(id)!, behavior: { kind: 'sync' } });

    const device = (worker: number, i: number, concurrency: number) =>
      ids[(worker + concurrency * Math.floor(i / concurrency)) % ids.length]!;
    const bare = (concurrency: number) => (worker: number, i: number) =>
      call('POST', emulator.operationUrl(device(worker, i, concurrency)), undefined, {
        operation: {
          request: {
            id: randomUUID(),
            deviceId: device(worker, i, concurrency),
            name: 'REFRESH_INFO',
            timestamp: Date.now(),
            parameters: {},
          },
        },
      }).then((r) => r.status === 200 && r.json?.operation?.response?.resultCode === 'SUCCESSFUL');
    const viaTwinflow = (concurrency: number) => async (worker: number, i: number) => {
      const created = await call(
        'POST',
        `${o.base}/north/v1/devices/${device(worker, i, concurrency)}/operations`,
        o.adminKey,
        { name: 'REFRESH_INFO', timeoutMs: 10_000 },
      );
      if (created.status !== 202) return false;
      if (created.json.status === 'SUCCESSFUL') return true;
      const done = await call(
        'GET',
        `${o.base}/north/v1/operations/${created.json.id}?waitMs=10000`,
        o.adminKey,
      );
      return done.status === 200 && done.json.status === 'SUCCESSFUL';
    };

    o.say('   warming up...');
    await timedPool(Math.min(200, o.operations), o.latencyConcurrency, viaTwinflow(o.latencyConcurrency));
    await timedPool(200, o.latencyConcurrency, bare(o.latencyConcurrency));

    const c1 = o.latencyConcurrency;
    const bareLatency = await timedPool(o.operations, c1, bare(c1));
    o.say(
      `   bare HTTP round trip to the emulator, ${c1} at once:  ${describeFigures(bareLatency, 'requests')}`,
    );
    const syncLatency = await timedPool(o.operations, c1, viaTwinflow(c1));
    o.say(
      `   operation request to final state, ${c1} at once:      ${describeFigures(syncLatency, 'operations')}`,
    );
    const c2 = o.throughputConcurrency;
    const bareThroughput = await timedPool(o.operations, c2, bare(c2));
    o.say(
      `   bare HTTP round trip, ${c2} at once:                   ${describeFigures(bareThroughput, 'requests')}`,
    );
    const syncThroughput = await timedPool(o.operations, c2, viaTwinflow(c2));
    o.say(
      `   operation request to final state, ${c2} at once:      ${describeFigures(syncThroughput, 'operations')}`,
    );

    // Sleepy devices: each round queues one operation per device, then every device polls once.
    o.say(`   provisioning ${o.pollDevices} sleepy devices; ${o.pollRounds} rounds of queue-then-poll...`);
    const sleepy = Array.from({ length: o.pollDevices }, (_, i) => `sleepy-${run}-${i}`);
    const sleepyKeys = await provision(o, sleepy, () => ({ sleepy: true }));
    const withOp: number[] = [];
    const empty: number[] = [];
    let pollErrors = 0;
    let pollSeconds = 0;
    for (let round = 0; round < o.pollRounds; round++) {
      await Promise.all(
        sleepy.map((id) =>
          call('POST', `${o.base}/north/v1/devices/${id}/operations`, o.adminKey, { name: 'REFRESH_INFO' }),
        ),
      );
      const t0 = performance.now();
      await Promise.all(
        sleepy.map(async (id) => {
          const key = sleepyKeys.get(id)!;
          const start = performance.now();
          const got = await call('GET', `${o.base}/south/v80/devices/${id}/operation/pending`, key);
          const took = performance.now() - start;
          if (got.status !== 200 || !Array.isArray(got.json) || got.json.length !== 1) {
            pollErrors++;
            return;
          }
          withOp.push(took);
          const opId = got.json[0].operation.request.id as string;
          await call('POST', `${o.base}/south/v80/devices/${id}/operation/response`, key, {
            operation: { response: { id: opId, resultCode: 'SUCCESSFUL' } },
          });
          const start2 = performance.now();
          const again = await call('GET', `${o.base}/south/v80/devices/${id}/operation/pending`, key);
          if (again.status === 200 && Array.isArray(again.json) && again.json.length === 0) {
            empty.push(performance.now() - start2);
          } else {
            pollErrors++;
          }
        }),
      );
      pollSeconds += (performance.now() - t0) / 1000;
    }
    const pollWithOperation = figures(withOp, pollSeconds, pollErrors);
    const pollEmpty = figures(empty, pollSeconds, 0);
    o.say(
      `   poll that hands over an operation, ${o.pollDevices} devices at once: ${describeFigures(pollWithOperation, 'polls')}`,
    );
    o.say(`   poll with nothing waiting:                        ${describeFigures(pollEmpty, 'polls')}`);
    return { bareLatency, syncLatency, bareThroughput, syncThroughput, pollWithOperation, pollEmpty };
  } finally {
    await emulator.close();
  }
}
