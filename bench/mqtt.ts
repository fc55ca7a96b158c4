// MQTT ingest benchmark: many devices publishing QoS 1 to TwinFlow's embedded broker, beside the same broker
// (aedes) bare, with one plain subscriber, on the same machine in the same run.
import { fork } from 'node:child_process';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import mqtt, { type MqttClient } from 'mqtt';

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
}

export interface MqttBenchResult {
  readonly rate: number;
  readonly bareRate: number;
  readonly stored: number;
  readonly acked: number;
  readonly visibleP99Ms: number;
  readonly signalsPerSecond: readonly number[];
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
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
 * Every device publishes its next message as soon as the last is acknowledged (QoS 1), for `seconds`,
 * optionally paced to `perDeviceHz`. Answers the acknowledged count and the acknowledgement latencies.
 */
async function drive(
  clients: readonly MqttClient[],
  ids: readonly string[],
  seconds: number,
  next: (deviceIndex: number, seq: number) => string,
  perDeviceHz?: number,
  /** When given, a device waits before each publish until this answers true. */
  mayPublish?: () => boolean,
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
        while (mayPublish && !mayPublish() && performance.now() < deadline) await sleep(2);
        if (performance.now() >= deadline) break;
        const t = performance.now();
        await client.publishAsync(`odm/iot/${ids[i]}`, next(i, seq), { qos: 1 });
        acked += 1;
        lastAck = performance.now();
        if (latencies.length < 200_000) latencies.push(performance.now() - t);
      }
    }),
  );
  try {
    await Promise.race([run, stalled]);
  } finally {
    clearInterval(watchdog);
  }
  // Publishes still unacknowledged at the deadline are waited for: the rate is over the whole time.
  return { acked, latencies: latencies.sort((a, b) => a - b), elapsed: (performance.now() - started) / 1000 };
}

async function scrape(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(new RegExp(`^${name} ([0-9.e+-]+)`, 'm').exec(text)?.[1] ?? NaN);
}

/**
 * The same broker, bare: no login, no storage; one plain subscriber takes everything on odm/iot/+ (QoS 1).
 * It runs in its own process, as TwinFlow's broker does. The bare broker acknowledges a publish before it
 * has delivered it, so its acknowledgement rate says nothing; the ceiling is what the subscriber receives
 * per second, from the first publish until it has received every acknowledged message, with at most one
 * undelivered message per device (TwinFlow holds each device's acknowledgement until it has stored).
 */
async function bareBrokerRate(devices: number, seconds: number, say: (l: string) => void): Promise<number> {
  const child = fork(path.join(__dirname, 'bare-broker.ts'), [], {
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
    const url = `mqtt://127.0.0.1:${port}`;
    const ids = Array.from({ length: devices }, (_, i) => `bare-${i}`);
    const clients = await connectAll(
      url,
      ids.map((id) => ({ id, key: 'x' })),
    );
    try {
      const t0 = performance.now();
      let sent = 0;
      const run = await drive(
        clients,
        ids,
        seconds,
        (i, seq) => (sent++, body(seq, Date.now())),
        undefined,
        () => sent - received < devices,
      );
      // Let the subscriber catch up with everything the broker acknowledged.
      let last = received;
      let lastChange = performance.now();
      while (received < run.acked && performance.now() - lastChange < 10_000) {
        await sleep(50);
        if (received !== last) [last, lastChange] = [received, performance.now()];
      }
      const elapsed = (performance.now() - t0) / 1000;
      const rate = received / elapsed;
      say(
        `  bare broker, plain subscriber: ${fmt(rate)} messages/s received (${fmt(received)} of ${fmt(run.acked)} acknowledged in ${fmt(elapsed, 1)} s)`,
      );
      return rate;
    } finally {
      clearInterval(poll);
      await Promise.all(clients.map((c) => c.endAsync(true)));
    }
  } finally {
    child.kill();
  }
}

export async function runMqttBench(o: MqttBenchOptions): Promise<MqttBenchResult> {
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
  const t0 = performance.now();
  const clients = await connectAll(o.mqttUrl, creds);
  o.say(`  ${fmt(clients.length)} devices connected in ${fmt((performance.now() - t0) / 1000, 1)} s`);
  const liveIds = creds.map((c) => c.id);

  // 0. Each device's first message: the first lookups of the device and its latest page, the first history
  // markers of its series. Timed apart, so that the sustained rate below is the steady state.
  const tCold = performance.now();
  await Promise.all(
    clients.map((c, i) => c.publishAsync(`odm/iot/${liveIds[i]}`, body(-1, Date.now()), { qos: 1 })),
  );
  const coldSeconds = (performance.now() - tCold) / 1000;
  o.say(
    `  first message from each device (cold: lookups, first history markers): ${fmt(clients.length)} in ${fmt(coldSeconds, 1)} s, ${fmt(clients.length / coldSeconds)} messages/s`,
  );

  // 1. As fast as acknowledgements come back, values changing every message.
  const names = [
    'twinflow_twin_signals_total',
    'twinflow_ingest_writes_total',
    'twinflow_ingest_messages_total',
    'twinflow_ingest_history_write_seconds_total',
    'twinflow_ingest_latest_write_seconds_total',
  ] as const;
  const scrapeAll = async () => Promise.all(names.map((n) => scrape(o.base, n)));
  const m0 = await scrapeAll();
  const full = await drive(clients, liveIds, o.seconds, (i, seq) => body(seq, Date.now()));
  const m1 = await scrapeAll();
  const [signals = 0, writes = 0, messages = 0, historyS = 0, latestS = 0] = m1.map((v, i) => v - m0[i]!);
  const rate = full.acked / full.elapsed;
  o.say(
    `  TwinFlow, QoS 1 as fast as acknowledged: ${fmt(full.acked)} messages in ${fmt(full.elapsed, 1)} s, ${fmt(rate)} messages/s, ack p50 ${fmt(pct(full.latencies, 0.5), 1)} ms, p99 ${fmt(pct(full.latencies, 0.99), 1)} ms; ${fmt(signals / full.elapsed, 1)} twin signals/s`,
  );
  o.say(
    `    ${fmt(writes)} group-commit writes of ${fmt(messages / writes, 0)} messages on average: ${fmt((1000 * historyS) / writes, 1)} ms history, ${fmt((1000 * latestS) / writes, 1)} ms latest values per write`,
  );

  // 2. Temporal load at a paced rate and at twice that rate, with the same value over and over. Each device
  // first sends that value once, so the twins have it; what follows repeats it and changes nothing.
  await Promise.all(
    clients.map((c, i) => c.publishAsync(`odm/iot/${liveIds[i]}`, body(42, Date.now()), { qos: 1 })),
  );
  // The twins have it once every device's signal went out (the generic type's delay, then the signal budget).
  const settleBy = performance.now() + 180_000;
  do await sleep(1_000);
  while ((await scrape(o.base, 'twinflow_twin_devices_pending')) > 0 && performance.now() < settleBy);
  const signalRates: number[] = [];
  let pacedAcked = 2 * clients.length; // the first message and the value the twins get first
  for (const factor of [1, 2]) {
    const hz = (0.25 * rate * factor) / clients.length;
    const before = await scrape(o.base, 'twinflow_twin_signals_total');
    const run = await drive(clients, liveIds, o.seconds, () => body(42, Date.now()), hz);
    const after = await scrape(o.base, 'twinflow_twin_signals_total');
    signalRates.push((after - before) / run.elapsed);
    pacedAcked += run.acked;
    o.say(
      `  paced ${fmt(run.acked / run.elapsed)} messages/s, repeating a value the twins have: ${fmt((after - before) / run.elapsed, 1)} twin signals/s, ack p99 ${fmt(pct(run.latencies, 0.99), 1)} ms`,
    );
  }

  // 3. How soon a value shows in the API after it is sent.
  const visible: number[] = [];
  for (let n = 0; n < 100; n++) {
    const i = n % clients.length;
    const client = clients[i] as MqttClient;
    const id = liveIds[i] as string;
    const value = 1_000_000 + n;
    const t = performance.now();
    await client.publishAsync(`odm/iot/${id}`, body(value, Date.now()), { qos: 1 });
    for (;;) {
      const view = (await (
        await fetch(`${o.base}/north/v1/devices/${id}?twin=snapshot`, { headers: { 'X-ApiKey': o.adminKey } })
      ).json()) as {
        datastreams?: { id: string; value: unknown }[];
      };
      if (view.datastreams?.some((d) => d.id === 'reading' && d.value === value)) break;
      await sleep(5);
    }
    visible.push(performance.now() - t);
  }
  visible.sort((a, b) => a - b);
  o.say(
    `  sent to visible in GET /north/v1/devices/{id}?twin=snapshot: p50 ${fmt(pct(visible, 0.5), 1)} ms, p99 ${fmt(pct(visible, 0.99), 1)} ms`,
  );

  // Zero loss: every acknowledged message is a stored datapoint.
  const mongo = await MongoClient.connect(o.mongoUri);
  const chunks = await mongo
    .db(o.db)
    .collection<{ points?: unknown[] }>('datapoints')
    .find({ ds: 'reading', level: 0 }, { projection: { points: 1 } })
    .toArray();
  const stored = chunks.reduce((n, c) => n + (c.points?.length ?? 0), 0);
  await mongo.close();
  const acked = full.acked + pacedAcked + visible.length;
  o.say(
    `  stored ${fmt(stored)} datapoints for ${fmt(acked)} acknowledged messages (${stored >= acked ? 'none lost' : `${fmt(acked - stored)} LOST`})`,
  );
  await Promise.all(clients.map((c) => c.endAsync(true)));

  const bareRate = await bareBrokerRate(clients.length, o.seconds, o.say);
  o.say(`  ratio TwinFlow / bare broker: ${fmt(rate / bareRate, 3)}`);
  return { rate, bareRate, stored, acked, visibleP99Ms: pct(visible, 0.99), signalsPerSecond: signalRates };
}
