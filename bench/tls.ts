// What TLS costs: MQTT ingest (QoS 1, acknowledged once stored) and collect requests per second over TLS with
// device certificates beside plain with device keys, in the same run on the same devices; and connection
// setup time (TCP + TLS handshake with a client certificate + login) beside a plain connection with a key.
import http from 'node:http';
import https from 'node:https';
import mqtt, { type MqttClient } from 'mqtt';
import { createAuthority, createClientCertificate, type KeyPair } from '../access/pki';

export interface TlsBenchOptions {
  readonly base: string;
  readonly httpsBase: string;
  readonly mqttUrl: string;
  readonly mqttsUrl: string;
  /** The server's CA (the local one TwinFlow made). */
  readonly caPem: string;
  readonly adminKey: string;
  readonly devices: number;
  readonly seconds: number;
  readonly say: (line: string) => void;
}

interface Device {
  readonly id: string;
  readonly key: string;
  readonly cert: KeyPair;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const body = (value: number) =>
  JSON.stringify({ version: '1.0.0', datastreams: [{ id: 'temperature', datapoints: [{ value }] }] });
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function provision(o: TlsBenchOptions): Promise<Device[]> {
  const ca = await createAuthority('Bench fleet', 30);
  const headers = { 'content-type': 'application/json', 'X-ApiKey': o.adminKey };
  const registered = await fetch(`${o.base}/north/v1/certificate-authorities`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name: 'bench', certificate: ca.certPem }),
  });
  if (registered.status !== 201) throw new Error(`registering the CA answered ${registered.status}`);
  const ids = Array.from({ length: o.devices }, (_, i) => `tls-${i}`);
  const res = await fetch(`${o.base}/north/v1/devices/bulk`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ devices: ids.map((id) => ({ id, transport: { mqtt: true } })) }),
  });
  const out = (await res.json()) as { results: { id: string; apiKey?: string }[] };
  const devices: Device[] = [];
  for (const r of out.results)
    if (r.apiKey) devices.push({ id: r.id, key: r.apiKey, cert: await createClientCertificate(ca, r.id) });
  return devices;
}

function connectDevice(o: TlsBenchOptions, d: Device, secure: boolean): Promise<MqttClient> {
  const login = secure
    ? { ca: o.caPem, cert: d.cert.certPem, key: d.cert.keyPem }
    : { username: d.id, password: d.key };
  return mqtt.connectAsync(secure ? o.mqttsUrl : o.mqttUrl, {
    ...login,
    clientId: `${d.id}-${secure ? 's' : 'p'}-${Math.random().toString(36).slice(2, 8)}`,
    reconnectPeriod: 0,
  });
}

/** Each device publishes one QoS 1 message at a time for `seconds`; answers acknowledged messages per second. */
async function mqttRate(o: TlsBenchOptions, devices: Device[], secure: boolean): Promise<number> {
  const clients = await Promise.all(devices.map((d) => connectDevice(o, d, secure)));
  await Promise.all(clients.map((c, i) => c.publishAsync(`odm/iot/${devices[i]?.id}`, body(0), { qos: 1 })));
  let acked = 0;
  const until = performance.now() + o.seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c, i) => {
      while (performance.now() < until) {
        await c.publishAsync(`odm/iot/${devices[i]?.id}`, body(acked), { qos: 1 });
        acked += 1;
      }
    }),
  );
  const rate = acked / ((performance.now() - t0) / 1000);
  await Promise.all(clients.map((c) => c.endAsync()));
  return rate;
}

function collectOnce(o: TlsBenchOptions, d: Device, secure: boolean, agent: http.Agent): Promise<void> {
  const url = `${secure ? o.httpsBase : o.base}/south/v80/devices/${d.id}/collect/iot`;
  const headers = { 'content-type': 'application/json', ...(secure ? {} : { 'X-ApiKey': d.key }) };
  const tls = secure ? { ca: o.caPem, cert: d.cert.certPem, key: d.cert.keyPem } : {};
  const request = secure ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, agent, ...tls }, (res) => {
      res.resume();
      res.on('end', () =>
        (res.statusCode ?? 500) < 300 ? resolve() : reject(new Error(`collect answered ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
    req.end(body(1));
  });
}

/** Collect requests per second, one keep-alive connection per device, all devices at once. */
async function collectRate(o: TlsBenchOptions, devices: Device[], secure: boolean): Promise<number> {
  const agents = devices.map(() =>
    secure
      ? new https.Agent({ keepAlive: true, maxSockets: 1 })
      : new http.Agent({ keepAlive: true, maxSockets: 1 }),
  );
  await Promise.all(devices.map((d, i) => collectOnce(o, d, secure, agents[i] as http.Agent)));
  let done = 0;
  const until = performance.now() + o.seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    devices.map(async (d, i) => {
      while (performance.now() < until) {
        await collectOnce(o, d, secure, agents[i] as http.Agent);
        done += 1;
      }
    }),
  );
  for (const a of agents) a.destroy();
  return done / ((performance.now() - t0) / 1000);
}

/** Time from opening a connection to the broker's CONNACK, one at a time. */
async function connectTimes(o: TlsBenchOptions, devices: Device[], secure: boolean): Promise<number[]> {
  const times: number[] = [];
  for (const d of devices) {
    const t = performance.now();
    const client = await connectDevice(o, d, secure);
    times.push(performance.now() - t);
    await client.endAsync();
  }
  return times;
}

export interface TlsBenchResult {
  readonly mqttPlain: number;
  readonly mqttTls: number;
  readonly collectPlain: number;
  readonly collectTls: number;
  readonly connectPlainMs: number;
  readonly connectTlsMs: number;
}

export async function runTlsBench(o: TlsBenchOptions): Promise<TlsBenchResult> {
  const devices = await provision(o);
  o.say(`  ${devices.length} devices, each with an API key and a certificate from a registered CA`);
  const connectPlainMs = p50(await connectTimes(o, devices, false));
  const connectTlsMs = p50(await connectTimes(o, devices, true));
  o.say(
    `  MQTT connection setup p50: plain with a key ${fmt(connectPlainMs, 1)} ms, TLS with a client certificate ${fmt(connectTlsMs, 1)} ms`,
  );
  // Plain, TLS, plain, TLS: the better of each pair, so that warming up the store favours neither.
  const rates = { plain: 0, tls: 0 };
  for (let round = 0; round < 2; round++) {
    rates.plain = Math.max(rates.plain, await mqttRate(o, devices, false));
    rates.tls = Math.max(rates.tls, await mqttRate(o, devices, true));
  }
  const { plain: mqttPlain, tls: mqttTls } = rates;
  o.say(
    `  MQTT ingest: plain ${fmt(mqttPlain)} msg/s, TLS ${fmt(mqttTls)} msg/s (better of two ${fmt(o.seconds)} s runs each)`,
  );
  const labelled = (secure: boolean) =>
    collectRate(o, devices, secure).catch((err: Error) => {
      throw new Error(`collect over ${secure ? 'HTTPS' : 'HTTP'}: ${err.message}`);
    });
  const collects = { plain: 0, tls: 0 };
  for (let round = 0; round < 2; round++) {
    collects.plain = Math.max(collects.plain, await labelled(false));
    collects.tls = Math.max(collects.tls, await labelled(true));
  }
  const { plain: collectPlain, tls: collectTls } = collects;
  o.say(
    `  collect: HTTP with a key ${fmt(collectPlain)} req/s, HTTPS with a certificate ${fmt(collectTls)} req/s`,
  );
  return { mqttPlain, mqttTls, collectPlain, collectTls, connectPlainMs, connectTlsMs };
}
