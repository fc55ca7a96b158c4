// MQTT ingest benchmark: many devices publishing QoS 1 to TwinFlow's embedded broker, beside the same broker
// (aedes) bare, with one plain subscriber, on the same machine in the same run.
import { fork } from 'node:child_process';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import mqtt, { type MqttClient } from 'mqtt';
import { commitPoints } from '../inventory/commit-log.repo';
import type { CommitDoc } from '../inventory/documents';
import { ingestDbName } from '../inventory/inventory';
import { cpuPerUnit, sampleCpu } from './cpu';

export interface MqttBenchOptions {
  readonly base: string;
  readonly adminKey: string;
  readonly mqttUrl: string;
  readonly mongoUri: string;
  readonly db: string;
  readonly devices: number;
  readonly seconds: number;
  readonly say: (line: string) => void;
  /** Workflow tasks waiting in Temporal: the run waits for the new twins' first tasks before measuring. */
  readonly workflowBacklog?: () => Promise<number>;
  /** Devices already provisioned (another run's): none are provisioned then. */
  readonly creds?: readonly { id: string; key: string }[];
  /**
   * An external broker (mosquitto): it acknowledges a publish on receipt, so TwinFlow's rate is what it
   * stores per second, read from its metrics, with at most one unstored message per device; the bare run is
   * a plain subscriber on a fresh broker at `bareUrl`.
   */
  readonly external?: { readonly bareUrl: string };
}

export interface MqttBenchResult {
  readonly rate: number;
  readonly bareRate: number;
  readonly stored: number;
  readonly acked: number;
  /** Acknowledgement p99 paced at half the sustained rate. */
  readonly halfRateAckP99Ms: number;
  /** Publish to the value readable as the latest value and in the history. */
  readonly visibleP99Ms: number;
  readonly signalsPerSecond: readonly number[];
  readonly creds: readonly { id: string; key: string }[];
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
/** "1.85: twinflow 0.92, ferretdb 0.40, ...": CPU milliseconds per second of the run, as cores. */
const describeCores = (rows: readonly [string, number][]) =>
  rows.length === 0
    ? 'no /proc here'
    : `${fmt(rows.reduce((s, [, ms]) => s + ms, 0) / 1000, 2)}: ${rows.map(([n, ms]) => `${n} ${fmt(ms / 1000, 2)}`).join(', ')}`;
const STALL_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

async function connectAll(url: string, creds: readonly { id: string; key: string }[]): Promise<MqttClient[]> {
  const clients: MqttClient[] = new Array(creds.length);
  await pool(creds, 100, async (c, i) => {
    clients[i] = await new Promise<MqttClient>((resolve, reject) => {
      const client = mqtt.connect(url, {
        username: c.id,
        password: c.key,
        clientId: `bench-${c.id}`,
        reconnectPeriod: 0,
        connectTimeout: 60_000,
        keepalive: 300,
      });
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });
  });
  return clients;
}

const body = (value: number, at: number) =>
  JSON.stringify({ version: '1.0.0', datastreams: [{ id: 'reading', datapoints: [{ value, at }] }] });

/**
 * At most `limit` messages sent and not yet taken by the receiving side: a device waits its turn in a queue that
 * one timer drains as `taken` grows. (Thousands of devices each polling a condition on their own timer kept the
 * benchmark's own event loop busier than the broker.)
 */
class Gate {
  private sent = 0;
  private readonly start: number;
  private readonly waiting: ((go: boolean) => void)[] = [];
  private head = 0;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly limit: number,
    private readonly taken: () => number,
  ) {
    this.start = taken();
    this.timer = setInterval(() => this.pump(), 5);
  }

  private free(): number {
    return this.limit - (this.sent - (this.taken() - this.start));
  }

  private pump(): void {
    for (let free = this.free(); free > 0 && this.head < this.waiting.length; free--) {
      this.sent += 1;
      this.waiting[this.head++]!(true);
    }
    if (this.head > 4_096 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Resolves true when the caller may send one message, false once the gate is closed. */
  acquire(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.head === this.waiting.length && this.free() > 0) {
      this.sent += 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (let i = this.head; i < this.waiting.length; i++) this.waiting[i]!(false);
    this.waiting.length = 0;
    this.head = 0;
  }
}

/** TwinFlow's default TWINFLOW_SNAPSHOT_INTERVAL_MS: how long a twin holds a routine snapshot. */
const SNAPSHOT_INTERVAL_MS = 30_000;

/**
 * Waits for the twins' own work after the sustained run: every twin whose values changed publishes a routine
 * snapshot once its interval has run out, a workflow task and a store write each. The paced runs measure the
 * steady state at their rate, so they start once that is done (the Temporal server under 10% of a core for
 * 3 s in a row), and the wait is printed.
 */
async function twinsCaughtUp(o: MqttBenchOptions, sustainedEnd: number): Promise<void> {
  await sleep(SNAPSHOT_INTERVAL_MS + 2_000 - (performance.now() - sustainedEnd));
  const giveUp = performance.now() + 300_000;
  let before = sampleCpu();
  let quiet = 0;
  while (quiet < 3 && performance.now() < giveUp) {
    await sleep(1_000);
    const after = sampleCpu();
    const temporalMs = cpuPerUnit(before, after, 1).find(([name]) => name.startsWith('temporal'))?.[1] ?? 0;
    quiet = temporalMs < 100 ? quiet + 1 : 0;
    before = after;
  }
  const waited = fmt((performance.now() - sustainedEnd) / 1000, 1);
  o.say(
    quiet >= 3
      ? `  the twins' routine snapshots after the sustained run were done ${waited} s after its end (Temporal under 10% of a core for 3 s)`
      : `  the twins were still busy ${waited} s after the sustained run (Temporal above 10% of a core); the paced runs start anyway`,
  );
}

/**
 * Every device publishes its next message as soon as the last is acknowledged (QoS 1), for `seconds`,
 * optionally paced to `perDeviceHz`. Answers the acknowledged count and the acknowledgement latencies.
 */
async function drive(
  clients: readonly MqttClient[],
  ids: readonly string[],
  seconds: number,
  next: (deviceIndex: number, seq: number) => string,
  perDeviceHz?: number,
  /** When given, a device waits before each publish until this lets it go (or answers false: the run is over). */
  gate?: Gate,
): Promise<{ acked: number; latencies: number[]; elapsed: number }> {
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let acked = 0;
  let lastAck = performance.now();
  const latencies: number[] = [];
  // A store that stops answering would leave every device waiting for its PUBACK: say so instead of hanging.
  let watchdog: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    watchdog = setInterval(() => {
      if (performance.now() - lastAck > STALL_MS) {
        reject(
          new Error(`no acknowledgement for ${STALL_MS / 1000} s after ${acked} messages: ingest stalled`),
        );
      }
    }, 1_000);
  });
  const run = Promise.all(
    clients.map(async (client, i) => {
      const start = performance.now() + (perDeviceHz ? Math.random() * (1000 / perDeviceHz) : 0);
      for (let seq = 0; performance.now() < deadline; seq++) {
        if (perDeviceHz) {
          const due = start + (seq * 1000) / perDeviceHz;
          const wait = due - performance.now();
          if (wait > 0) await sleep(Math.min(wait, deadline - performance.now()));
          if (performance.now() >= deadline) break;
        }
        if (gate && !(await gate.acquire())) break;
        if (performance.now() >= deadline) break;
        const t = performance.now();
        await client.publishAsync(`odm/iot/${ids[i]}`, next(i, seq), { qos: 1 });
        acked += 1;
        lastAck = performance.now();
        if (latencies.length < 200_000) latencies.push(performance.now() - t);
      }
    }),
  );
  const closeGate = gate && setTimeout(() => gate.close(), Math.max(0, deadline - performance.now()));
  try {
    await Promise.race([run, stalled]);
  } finally {
    clearInterval(watchdog);
    clearTimeout(closeGate);
    gate?.close();
  }
  // Publishes still unacknowledged at the deadline are waited for: the rate is over the whole time.
  return { acked, latencies: latencies.sort((a, b) => a - b), elapsed: (performance.now() - started) / 1000 };
}

async function scrape(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(new RegExp(`^${name} ([0-9.e+-]+)`, 'm').exec(text)?.[1] ?? NaN);
}

/**
 * A broker, bare: no login, no storage; one plain subscriber takes everything on odm/iot/+ (QoS 1), in its own
 * process as TwinFlow's broker is. Without `url` the broker is the embedded one's (aedes) in that process;
 * with one, an external broker (mosquitto) the subscriber connects to. A broker acknowledges a publish before
 * it has delivered it, so its acknowledgement rate says nothing; the ceiling is what the subscriber receives
 * per second, from the first publish until it has received every acknowledged message, with at most one
 * undelivered message per device (TwinFlow holds each device's acknowledgement until it has stored).
 */
async function bareBrokerRate(
  devices: number,
  seconds: number,
  say: (l: string) => void,
  url?: string,
): Promise<number> {
  const child = fork(path.join(__dirname, 'bare-broker.ts'), url ? [url] : [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`the bare broker exited (${code})`)));
    });
    let received = 0;
    const poll = setInterval(() => child.send('count'), 20);
    child.on('message', (m) => {
      if (typeof (m as { received?: number }).received === 'number')
        received = (m as { received: number }).received;
    });
    try {
      const { rate, delivered, acked, elapsed } = await windowedRate(
        url ?? `mqtt://127.0.0.1:${port}`,
        Array.from({ length: devices }, (_, i) => ({ id: `bare-${i}`, key: 'x' })),
        seconds,
        () => received,
      );
      say(
        `  bare ${url ? 'mosquitto' : 'broker'}, plain subscriber: ${fmt(rate)} messages/s received (${fmt(delivered)} of ${fmt(acked)} acknowledged in ${fmt(elapsed, 1)} s)`,
      );
      return rate;
    } finally {
      clearInterval(poll);
    }
  } finally {
    child.kill();
  }
}

/**
 * Devices publish as fast as the broker acknowledges, with at most one message per device not yet taken by
 * the receiving side (`taken`); the rate is what that side took per second, from the first publish until it
 * has taken every acknowledged message.
 */
async function windowedRate(
  url: string,
  creds: readonly { id: string; key: string }[],
  seconds: number,
  taken: () => number,
  connected?: readonly MqttClient[],
) {
  const clients = connected ?? (await connectAll(url, creds));
  const ids = creds.map((c) => c.id);
  try {
    const start = taken();
    const t0 = performance.now();
    const run = await drive(
      clients,
      ids,
      seconds,
      (_i, seq) => body(seq, Date.now()),
      undefined,
      new Gate(clients.length, taken),
    );
    let last = taken();
    let lastChange = performance.now();
    while (taken() - start < run.acked && performance.now() - lastChange < 10_000) {
      await sleep(50);
      if (taken() !== last) [last, lastChange] = [taken(), performance.now()];
    }
    const elapsed = (performance.now() - t0) / 1000;
    const delivered = taken() - start;
    return { rate: delivered / elapsed, delivered, acked: run.acked, elapsed, latencies: run.latencies };
  } finally {
    if (!connected) await Promise.all(clients.map((c) => c.endAsync(true)));
  }
}

async function provision(o: MqttBenchOptions): Promise<{ id: string; key: string }[]> {
  if (o.creds) return [...o.creds];
  const ids = Array.from({ length: o.devices }, (_, i) => `mq-${i}`);
  o.say(`  provisioning ${fmt(o.devices)} MQTT devices...`);
  const creds: { id: string; key: string }[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const res = await fetch(`${o.base}/north/v1/devices/bulk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-ApiKey': o.adminKey },
      body: JSON.stringify({
        devices: ids.slice(i, i + 500).map((id) => ({ id, transport: { mqtt: true } })),
      }),
    });
    const out = (await res.json()) as { results: { id: string; apiKey?: string }[] };
    for (const r of out.results) if (r.apiKey) creds.push({ id: r.id, key: r.apiKey });
  }
  // New twins each run a first workflow task; the run measures ingest, not those, so it waits them out.
  if (o.workflowBacklog) {
    const t = performance.now();
    while ((await o.workflowBacklog()) > 0 && performance.now() - t < 600_000) await sleep(1_000);
    o.say(
      `  twins started, their first tasks done ${fmt((performance.now() - t) / 1000, 1)} s after provisioning`,
    );
  }
  return creds;
}

const METRICS = [
  'twinflow_twin_signals_total',
  'twinflow_ingest_writes_total',
  'twinflow_ingest_messages_total',
  'twinflow_ingest_commit_write_seconds_total',
  'twinflow_ingest_history_write_seconds_total',
  'twinflow_ingest_latest_write_seconds_total',
  'twinflow_ingest_latest_pages_total',
  'twinflow_ingest_commit_encode_seconds_total',
  'twinflow_ingest_commit_insert_seconds_total',
] as const;

/** Where the time went during a run: commit inserts on the hot path, history and latest write-back beside it. */
async function measured<T extends { elapsed: number }>(o: MqttBenchOptions, run: () => Promise<T>) {
  const scrapeAll = async () => Promise.all(METRICS.map((n) => scrape(o.base, n)));
  const m0 = await scrapeAll();
  const cpu0 = sampleCpu();
  const result = await run();
  const cpu1 = sampleCpu();
  const m1 = await scrapeAll();
  const [
    signals = 0,
    writes = 0,
    messages = 0,
    commitS = 0,
    historyS = 0,
    latestS = 0,
    pages = 0,
    encodeS = 0,
    insertS = 0,
  ] = m1.map((v, i) => v - m0[i]!);
  o.say(
    `    ${fmt(writes)} group commits of ${fmt(messages / writes, 0)} messages on average, ${fmt((1000 * commitS) / writes, 1)} ms each (encoding ${fmt((1000 * encodeS) / writes, 1)} ms, the insert's round trip ${fmt((1000 * insertS) / writes, 1)} ms; commits under way ${fmt((100 * commitS) / result.elapsed)}% of the time); write-back: history ${fmt(historyS, 1)} s, ${fmt(pages)} latest pages ${fmt(latestS, 1)} s; ${fmt(signals / result.elapsed, 1)} twin signals/s`,
  );
  o.say(`    CPU, cores busy on average: ${describeCores(cpuPerUnit(cpu0, cpu1, result.elapsed))}`);
  return result;
}

/** The sustained rate: as fast as acknowledgements come back (embedded), or as fast as TwinFlow stores (external). */
async function sustained(o: MqttBenchOptions, clients: MqttClient[], creds: { id: string; key: string }[]) {
  const ids = creds.map((c) => c.id);
  if (!o.external) {
    const full = await measured(o, () => drive(clients, ids, o.seconds, (_i, seq) => body(seq, Date.now())));
    const rate = full.acked / full.elapsed;
    o.say(
      `  TwinFlow, QoS 1 as fast as acknowledged: ${fmt(full.acked)} messages in ${fmt(full.elapsed, 1)} s, ${fmt(rate)} messages/s, ack p50 ${fmt(pct(full.latencies, 0.5), 1)} ms, p99 ${fmt(pct(full.latencies, 0.99), 1)} ms`,
    );
    return { rate, acked: full.acked };
  }
  let ingested = await scrape(o.base, 'twinflow_ingest_messages_total');
  const poll = setInterval(() => {
    void scrape(o.base, 'twinflow_ingest_messages_total').then((v) => (ingested = v));
  }, 50);
  try {
    const run = await measured(o, () => windowedRate('', creds, o.seconds, () => ingested, clients));
    o.say(
      `  TwinFlow behind mosquitto, QoS 1, at most one unstored message per device: ${fmt(run.delivered)} of ${fmt(run.acked)} acknowledged stored in ${fmt(run.elapsed, 1)} s, ${fmt(run.rate)} messages/s; broker ack p99 ${fmt(pct(run.latencies, 0.99), 1)} ms`,
    );
    return { rate: run.rate, acked: run.acked };
  } finally {
    clearInterval(poll);
  }
}

async function getJson(o: MqttBenchOptions, url: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${o.base}${url}`, { headers: { 'X-ApiKey': o.adminKey } })).json()) as Record<
    string,
    unknown
  >;
}

/** How soon a sent value is readable in the API, as the latest value and in the history; answers sorted times. */
async function visibility(o: MqttBenchOptions, clients: MqttClient[], ids: string[]) {
  const latest: number[] = [];
  const both: number[] = [];
  for (let n = 0; n < 100; n++) {
    const i = (n * 97) % clients.length;
    const id = ids[i] as string;
    const value = 1_000_000 + n;
    const at = Date.now();
    const t = performance.now();
    await (clients[i] as MqttClient).publishAsync(`odm/iot/${id}`, body(value, at), { qos: 1 });
    let latestAt: number | undefined;
    for (;;) {
      if (latestAt === undefined) {
        const view = await getJson(o, `/north/v1/devices/${id}?twin=snapshot`);
        const ds = view.datastreams as { id: string; value: unknown }[] | undefined;
        if (ds?.some((d) => d.id === 'reading' && d.value === value)) latestAt = performance.now() - t;
      }
      const hist = await getJson(
        o,
        `/north/v1/devices/${id}/datastreams/reading/datapoints?from=${at}&to=${at}`,
      );
      const points = hist.datapoints as { value: unknown }[] | undefined;
      if (latestAt !== undefined && points?.some((p) => p.value === value)) break;
      await sleep(5);
    }
    latest.push(latestAt);
    both.push(performance.now() - t);
  }
  return { latest: latest.sort((a, b) => a - b), both: both.sort((a, b) => a - b) };
}

/** Stored `reading` points with `at` in [from, to]: in the history chunks and in commits not yet written back. */
async function storedSince(o: MqttBenchOptions, from: number, to: number): Promise<number> {
  const mongo = await MongoClient.connect(o.mongoUri);
  try {
    const db = mongo.db(o.db);
    type P = { deviceId?: string; ds?: string; at: number; receivedAt: number; feed: string };
    const keys = new Set<string>();
    const add = (deviceId: string, p: P) => {
      if (p.at >= from && p.at <= to) keys.add(`${deviceId}/${p.feed}/${p.at}/${p.receivedAt}`);
    };
    for (const c of await mongo
      .db(ingestDbName(o.db))
      .collection<CommitDoc>('ingest_commits')
      .find({})
      .toArray())
      for (const p of commitPoints(c) as P[]) if (p.ds === 'reading') add(p.deviceId!, p);
    const chunks = db
      .collection<{ deviceId: string; points?: P[] }>('datapoints')
      .find({ ds: 'reading', level: 0, end: { $gt: from } }, { projection: { deviceId: 1, points: 1 } });
    for await (const c of chunks) for (const p of c.points ?? []) add(c.deviceId, p);
    return keys.size;
  } finally {
    await mongo.close();
  }
}

/** Waits until TwinFlow has stored `count` messages in all, or no more arrive for STALL_MS. */
async function storedAtLeast(o: MqttBenchOptions, count: number): Promise<void> {
  let last = await scrape(o.base, 'twinflow_ingest_messages_total');
  let lastChange = performance.now();
  while (last < count) {
    if (performance.now() - lastChange > STALL_MS)
      throw new Error(`TwinFlow stored no message for ${STALL_MS / 1000} s: ingest stalled`);
    await sleep(50);
    const now = await scrape(o.base, 'twinflow_ingest_messages_total');
    if (now !== last) [last, lastChange] = [now, performance.now()];
  }
}

export async function runMqttBench(o: MqttBenchOptions): Promise<MqttBenchResult> {
  const creds = await provision(o);
  const liveIds = creds.map((c) => c.id);
  const t0 = performance.now();
  const clients = await connectAll(o.mqttUrl, creds);
  o.say(`  ${fmt(clients.length)} devices connected in ${fmt((performance.now() - t0) / 1000, 1)} s`);
  const runFrom = Date.now();

  // 0. Each device's first message: the first lookups of the device and its latest page. Timed apart, so that
  // the sustained rate below is the steady state.
  const storedBefore = o.external ? await scrape(o.base, 'twinflow_ingest_messages_total') : 0;
  const tCold = performance.now();
  await Promise.all(
    clients.map((c, i) => c.publishAsync(`odm/iot/${liveIds[i]}`, body(-1, Date.now()), { qos: 1 })),
  );
  // An external broker acknowledges on receipt: the first messages are TwinFlow's once it has stored them all
  // (else their lookups would run inside the sustained run).
  if (o.external) await storedAtLeast(o, storedBefore + clients.length);
  const coldSeconds = (performance.now() - tCold) / 1000;
  o.say(
    `  first message from each device (cold: device and latest-page lookups): ${fmt(clients.length)} in ${fmt(coldSeconds, 1)} s, ${fmt(clients.length / coldSeconds)} messages/s`,
  );

  // 1. The sustained rate, values changing every message.
  const { rate, acked: fullAcked } = await sustained(o, clients, creds);
  const sustainedEnd = performance.now();

  // 2. Paced at a quarter and at half the sustained rate, the same value over and over: acknowledgement
  // latency, and the Temporal load. Each device first sends that value once, so the twins have it.
  await Promise.all(
    clients.map((c, i) => c.publishAsync(`odm/iot/${liveIds[i]}`, body(42, Date.now()), { qos: 1 })),
  );
  // The twins have it once every device's signal went out (the generic type's delay, then the signal budget).
  const settleBy = performance.now() + 180_000;
  do await sleep(1_000);
  while ((await scrape(o.base, 'twinflow_twin_devices_pending')) > 0 && performance.now() < settleBy);
  await twinsCaughtUp(o, sustainedEnd);
  const signalRates: number[] = [];
  let pacedAcked = 2 * clients.length; // the first message and the value the twins get first
  let halfRateAckP99Ms = NaN;
  for (const factor of [1, 2]) {
    const hz = (0.25 * rate * factor) / clients.length;
    const before = await scrape(o.base, 'twinflow_twin_signals_total');
    const run = await drive(clients, liveIds, o.seconds, () => body(42, Date.now()), hz);
    const after = await scrape(o.base, 'twinflow_twin_signals_total');
    signalRates.push((after - before) / run.elapsed);
    pacedAcked += run.acked;
    if (factor === 2) halfRateAckP99Ms = pct(run.latencies, 0.99);
    o.say(
      `  paced ${fmt(run.acked / run.elapsed)} messages/s (${factor === 1 ? 'a quarter' : 'half'} the sustained rate), repeating a value the twins have: ${fmt((after - before) / run.elapsed, 1)} twin signals/s, ack p50 ${fmt(pct(run.latencies, 0.5), 1)} ms, p99 ${fmt(pct(run.latencies, 0.99), 1)} ms`,
    );
  }

  // 3. How soon a value shows in the API after it is sent: as the latest value, and in the history.
  const visible = await visibility(o, clients, liveIds);
  o.say(
    `  sent to readable: latest value (GET /north/v1/devices/{id}) p50 ${fmt(pct(visible.latest, 0.5), 1)} ms, p99 ${fmt(pct(visible.latest, 0.99), 1)} ms; latest value and history p50 ${fmt(pct(visible.both, 0.5), 1)} ms, p99 ${fmt(pct(visible.both, 0.99), 1)} ms`,
  );
  await Promise.all(clients.map((c) => c.endAsync(true)));

  // Zero loss: every acknowledged message is a stored datapoint. Behind an external broker, the last ones may
  // still be on their way from the broker: wait until TwinFlow has taken as many as were acknowledged.
  const acked = fullAcked + pacedAcked + visible.both.length;
  const runTo = Date.now();
  let stored = await storedSince(o, runFrom, runTo);
  for (let waited = 0; o.external && stored < acked && waited < 30; waited++) {
    await sleep(1_000);
    stored = await storedSince(o, runFrom, runTo);
  }
  o.say(
    `  stored ${fmt(stored)} datapoints for ${fmt(acked)} acknowledged messages (${stored >= acked ? 'none lost' : `${fmt(acked - stored)} LOST`})`,
  );

  const bareRate = await bareBrokerRate(clients.length, o.seconds, o.say, o.external?.bareUrl);
  o.say(`  ratio TwinFlow / bare broker: ${fmt(rate / bareRate, 3)}`);
  return {
    rate,
    bareRate,
    stored,
    acked,
    halfRateAckP99Ms,
    visibleP99Ms: pct(visible.both, 0.99),
    signalsPerSecond: signalRates,
    creds,
  };
}
