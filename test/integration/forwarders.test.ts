// Forwarders on the real stack: a webhook receiver that is down for a while, refusals into dead letters and back,
// pausing and resuming, signatures, an external MQTT broker, a SIGKILLed worker, organizations kept apart, and
// bad input on every forwarder route.
import http from 'node:http';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { connectAsync } from 'mqtt';
import type { NewEvent } from '../../events/event-types';
import { verifySignature } from '../../forwarders/signing';
import { EventRepository } from '../../inventory/events.repo';
import { type Inventory, openInventory } from '../../inventory/inventory';
import { getFreePort } from '../../worker/local-stack';
import {
  type ApiClient,
  apiClient,
  eventually,
  itEnv,
  startTwinflow,
  type TwinflowProcess,
  uniqueName,
} from './harness';

const SECRET = 'a-webhook-secret-of-some-length';
const FAST = {
  TWINFLOW_FORWARDER_POLL_MS: '2000',
  TWINFLOW_FORWARDER_PAUSE_AFTER: '8',
  TWINFLOW_FORWARDER_TIMEOUT_MS: '2000',
  TWINFLOW_FORWARDER_HEARTBEAT_MS: '3000',
  TWINFLOW_FORWARDER_RETRY_INITIAL_MS: '200',
  TWINFLOW_FORWARDER_RETRY_MAX_MS: '1000',
};

interface Received {
  readonly key: string;
  readonly eventId: string;
  readonly signature: string;
  readonly raw: string;
  readonly body: { id: string; type: string; deviceId?: string; body: Record<string, unknown> };
}

/** A webhook receiver on a fixed port that can be stopped and started, answering what `answer` says. */
class Receiver {
  readonly got: Received[] = [];
  answer: (r: Received) => number = () => 200;
  /** How long each answer takes (ms). */
  delayMs = 0;
  private server: http.Server | undefined;
  constructor(readonly port: number) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }
  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d.toString()));
      req.on('end', () => {
        const r: Received = {
          key: String(req.headers['idempotency-key']),
          eventId: String(req.headers['x-twinflow-event-id']),
          signature: String(req.headers['x-twinflow-signature']),
          raw,
          body: JSON.parse(raw) as Received['body'],
        };
        const status = this.answer(r);
        if (status < 300) this.got.push(r);
        const reply = () =>
          res
            .writeHead(status, { 'content-type': 'application/json' })
            .end(JSON.stringify({ ok: status < 300 }));
        if (this.delayMs > 0) setTimeout(reply, this.delayMs);
        else reply();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
  }
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()).closeAllConnections());
  }
  /** Distinct event ids received, in first-arrival order. */
  ids(): string[] {
    return [...new Set(this.got.map((g) => g.eventId))];
  }
}

/** A plain MQTT broker in its own process, standing in for an external one. */
async function startBareBroker(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'support', 'bare-broker.ts'), String(port)],
    { cwd: path.resolve(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the broker exited (${code})`)));
  });
  return child;
}

const deviceEvents = (n: number, devices: number, extra: Record<string, unknown> = {}): NewEvent[] =>
  Array.from({ length: n }, (_, i) => ({
    type: 'device.changed',
    deviceId: `dev-${i % devices}`,
    at: Date.now(),
    body: { n: i, ...extra },
  }));

const webhook = (url: string) => ({ kind: 'webhook', url, secret: SECRET, headers: { 'X-Tenant': 'acme' } });

/** Checks per-device order: each device's first arrivals come in increasing log order. */
function expectDeviceOrder(got: readonly Received[]): void {
  const seen = new Set<string>();
  const lastByDevice = new Map<string, number>();
  for (const g of got) {
    if (seen.has(g.eventId)) continue;
    seen.add(g.eventId);
    const dev = g.body.deviceId ?? '';
    expect(Number(g.eventId)).toBeGreaterThan(lastByDevice.get(dev) ?? 0);
    lastByDevice.set(dev, Number(g.eventId));
  }
}

/** Every duplicate carries the same idempotency key (and the same body) as the first copy. */
function expectDuplicatesKeyed(got: readonly Received[]): void {
  const byId = new Map<string, Received>();
  for (const g of got) {
    const first = byId.get(g.eventId);
    if (first) expect({ key: g.key, raw: g.raw }).toEqual({ key: first.key, raw: first.raw });
    else byId.set(g.eventId, g);
  }
}

describe('forwarders', () => {
  let tf: TwinflowProcess;
  let api: ApiClient;
  let inventory: Inventory;
  let log: EventRepository;
  let org: string;
  const db = uniqueName('it_fwd');

  beforeAll(async () => {
    tf = await startTwinflow({ db, env: FAST });
    api = apiClient(tf.baseUrl, tf.adminKey);
    inventory = await openInventory(itEnv('TWINFLOW_IT_MONGODB_URI'), db);
    log = new EventRepository(inventory.collections);
    org = (await api.get('/north/v1/me')).body.org as string;
  });
  afterAll(async () => {
    await tf?.stop();
    await inventory?.close();
  });

  const create = async (body: Record<string, unknown>) => {
    const res = await api.post('/north/v1/forwarders', body);
    expect(res.status).toBe(201);
    return res.body as { id: string; destination: Record<string, unknown> };
  };

  it('delivers every event to a receiver that was down for a while, signed, in order per device', async () => {
    const receiver = new Receiver(await getFreePort());
    const fwd = await create({ name: 'down', destination: webhook(receiver.url), subscription: {} });
    expect(fwd.destination).toEqual({
      kind: 'webhook',
      url: receiver.url,
      headerNames: ['X-Tenant'],
      hasSecret: true,
    });
    expect(JSON.stringify(fwd)).not.toContain(SECRET);
    await log.append(org, deviceEvents(30, 3));
    await new Promise((r) => setTimeout(r, 2_500));
    await receiver.start();
    try {
      await eventually(async () => (receiver.ids().length >= 30 ? true : undefined), 30_000);
      expect(receiver.ids()).toHaveLength(30);
      expectDeviceOrder(receiver.got);
      expectDuplicatesKeyed(receiver.got);
      for (const g of receiver.got) {
        expect(verifySignature(SECRET, g.signature, g.raw)).toBe(true);
        // What the receiver's check catches: another secret, a changed body, an old signature.
        expect(verifySignature('another-secret-entirely', g.signature, g.raw)).toBe(false);
        expect(verifySignature(SECRET, g.signature, g.raw.replace('"n":', '"n": '))).toBe(false);
        expect(verifySignature(SECRET, g.signature, g.raw, { now: Date.now() + 3_600_000 })).toBe(false);
      }
      const view = (await api.get(`/north/v1/forwarders/${fwd.id}`)).body;
      expect(view).toMatchObject({ status: 'active' });
      expect(view.delivered).toBeGreaterThanOrEqual(30);
    } finally {
      await receiver.stop();
      await api.delete(`/north/v1/forwarders/${fwd.id}`);
    }
  });

  it('forwards what the fleet does: a device provisioned, its data in batches of the chosen datastream', async () => {
    const receiver = new Receiver(await getFreePort());
    await receiver.start();
    try {
      const lifeHook = await create({
        name: 'life',
        destination: webhook(receiver.url),
        subscription: { types: ['device.provisioned'] },
      });
      const pointsHook = await create({
        name: 'points',
        destination: webhook(receiver.url),
        subscription: { datastreams: ['temperature'] },
      });
      const id = uniqueName('fwd-dev').replace(/_/g, '-');
      const made = await api.post('/north/v1/devices', { id, transport: { sleepy: true } });
      expect(made.status).toBe(201);
      const device = apiClient(tf.baseUrl, made.body.apiKey as string);
      const at = Date.now();
      const sent = await device.post(`/south/v80/devices/${id}/collect/iot`, {
        version: '1.0.0',
        datastreams: [
          { id: 'temperature', datapoints: [{ value: 21.5, at }] },
          { id: 'humidity', datapoints: [{ value: 40, at }] },
        ],
      });
      expect(sent.status).toBe(201);
      const points = await eventually(async () => {
        const batch = receiver.got.find((g) => g.body.type === 'datapoints');
        return batch ? (batch.body.body.points as unknown[]) : undefined;
      }, 30_000);
      expect(points).toEqual([
        { deviceId: id, datastreamId: 'temperature', feed: 'default', at, value: 21.5 },
      ]);
      const provisioned = receiver.got.find(
        (g) => g.body.type === 'device.provisioned' && g.body.deviceId === id,
      );
      expect(provisioned).toBeDefined();
      expect(
        receiver.got.filter((g) => g.body.type === 'device.provisioned' && g.body.deviceId === id),
      ).toHaveLength(1);
      await api.delete(`/north/v1/forwarders/${lifeHook.id}`);
      await api.delete(`/north/v1/forwarders/${pointsHook.id}`);
    } finally {
      await receiver.stop();
    }
  });

  it('puts refused events in dead letters and replays them from there', async () => {
    const receiver = new Receiver(await getFreePort());
    receiver.answer = (r) => (r.body.body.bad === true ? 422 : 200);
    await receiver.start();
    try {
      const fwd = await create({
        name: 'refusing',
        destination: webhook(receiver.url),
        subscription: { types: ['device.changed'] },
      });
      await log.append(org, [
        ...deviceEvents(3, 1),
        ...deviceEvents(2, 1, { bad: true }),
        ...deviceEvents(3, 1),
      ]);
      const letters = await eventually(async () => {
        const res = await api.get(`/north/v1/forwarders/${fwd.id}/dead-letters`);
        return res.body.deadLetters.length === 2 && receiver.ids().length === 6
          ? res.body.deadLetters
          : undefined;
      }, 30_000);
      expect(letters[0]).toMatchObject({ attempts: 1, lastError: expect.stringContaining('HTTP 422') });
      expect(letters[0].event.body.bad).toBe(true);
      receiver.answer = () => 200;
      const replay = await api.post(`/north/v1/forwarders/${fwd.id}/dead-letters/replay`, {});
      expect(replay.status).toBe(200);
      expect(replay.body.results.map((r: { delivered: boolean }) => r.delivered)).toEqual([true, true]);
      expect((await api.get(`/north/v1/forwarders/${fwd.id}/dead-letters`)).body.deadLetters).toEqual([]);
      expect(receiver.ids()).toHaveLength(8);
      expectDuplicatesKeyed(receiver.got);
    } finally {
      await receiver.stop();
    }
  });

  it('pauses a forwarder that keeps failing, logs forwarder.paused, and resumes without loss', async () => {
    const receiver = new Receiver(await getFreePort());
    receiver.answer = () => 503;
    await receiver.start();
    try {
      const fwd = await create({
        name: 'failing',
        destination: webhook(receiver.url),
        subscription: { deviceIds: ['dev-0', 'dev-1'] },
      });
      await log.append(org, deviceEvents(6, 3));
      const paused = await eventually(async () => {
        const v = (await api.get(`/north/v1/forwarders/${fwd.id}`)).body;
        return v.status === 'paused' ? v : undefined;
      }, 30_000);
      expect(paused.pausedReason).toContain('HTTP 503');
      const pausedEvents = await log.list(
        org,
        { types: ['forwarder.paused'] },
        { afterSeq: 0, uptoSeq: 1e9 },
        100,
      );
      expect(pausedEvents.items.some((e) => e.body.forwarderId === fwd.id)).toBe(true);
      receiver.answer = () => 200;
      expect((await api.post(`/north/v1/forwarders/${fwd.id}/resume`)).body.status).toBe('active');
      await eventually(async () => (receiver.ids().length >= 4 ? true : undefined), 30_000);
      expect(receiver.got.map((g) => g.body.deviceId).sort()).toEqual(['dev-0', 'dev-0', 'dev-1', 'dev-1']);
    } finally {
      await receiver.stop();
    }
  });

  it('answers a test send with the status, body and time; shapes bodies with a connector', async () => {
    const receiver = new Receiver(await getFreePort());
    await receiver.start();
    try {
      const fwd = await create({
        name: 'shaped',
        destination: webhook(receiver.url),
        subscription: { types: ['alarm.raised'] },
        connector: 'function transform(e, ctx) { return { kind: e.type, id: e.id, fwd: ctx.forwarderId }; }',
      });
      const res = await api.post(`/north/v1/forwarders/${fwd.id}/test`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ delivered: true, status: 200, body: '{"ok":true}' });
      expect(typeof res.body.durationMs).toBe('number');
      expect(receiver.got[0]?.body).toEqual({ kind: 'forwarder.test', id: '0', fwd: fwd.id });
      const bad = await api.post('/north/v1/forwarders', {
        name: 'bad connector',
        destination: webhook(receiver.url),
        subscription: {},
        connector: 'function transform( {',
      });
      expect(bad.status).toBe(400);
    } finally {
      await receiver.stop();
    }
  });

  it('publishes to a topic on an external MQTT broker', async () => {
    const port = await getFreePort();
    const broker = await startBareBroker(port);
    const sub = await connectAsync(`mqtt://127.0.0.1:${port}`);
    const got: { id: string; body: { points: unknown[] } }[] = [];
    sub.on('message', (_t, payload) => got.push(JSON.parse(payload.toString()) as (typeof got)[number]));
    await sub.subscribeAsync('fleet/points', { qos: 1 });
    try {
      await create({
        name: 'mqtt',
        destination: { kind: 'mqtt', url: `mqtt://127.0.0.1:${port}`, topic: 'fleet/points' },
        subscription: { datastreams: ['temperature'] },
      });
      await log.append(org, [
        {
          type: 'datapoints',
          at: Date.now(),
          body: {
            points: [
              { deviceId: 'dev-0', datastreamId: 'temperature', at: 1, value: 20 },
              { deviceId: 'dev-0', datastreamId: 'humidity', at: 1, value: 50 },
            ],
          },
        },
        ...deviceEvents(2, 1),
      ]);
      await eventually(async () => (got.length >= 1 ? true : undefined), 30_000);
      expect(got[0]?.body.points).toEqual([
        { deviceId: 'dev-0', datastreamId: 'temperature', at: 1, value: 20 },
      ]);
    } finally {
      await sub.endAsync();
      const exited = new Promise((r) => broker.once('exit', r));
      broker.kill('SIGTERM');
      await exited;
    }
  });

  it('keeps organizations apart: no forwarder and no event of another organization', async () => {
    const orgB = uniqueName('orgb').replace('_', '-');
    const email = `admin-${orgB}@b.example`;
    const password = 'correct horse battery staple';
    expect(
      (await api.post('/north/v1/organizations', { id: orgB, name: 'B', admin: { email, password } })).status,
    ).toBe(201);
    const login = await apiClient(tf.baseUrl).post('/north/v1/auth/login', { email, password });
    const b = apiClient(tf.baseUrl);
    const asB = { authorization: `Bearer ${login.body.accessToken as string}` };
    const receiver = new Receiver(await getFreePort());
    await receiver.start();
    try {
      const fwdA = await create({ name: 'a only', destination: webhook(receiver.url), subscription: {} });
      expect((await b.get(`/north/v1/forwarders/${fwdA.id}`, asB)).status).toBe(404);
      expect((await b.get(`/north/v1/forwarders/${fwdA.id}/dead-letters`, asB)).status).toBe(404);
      expect((await b.post(`/north/v1/forwarders/${fwdA.id}/test`, undefined, asB)).status).toBe(404);
      expect((await b.delete(`/north/v1/forwarders/${fwdA.id}`, asB)).status).toBe(404);
      const listB = await b.get('/north/v1/forwarders', asB);
      expect(listB.body.forwarders).toEqual([]);
      await log.append(orgB, deviceEvents(3, 1, { org: 'B' }));
      await log.append(org, deviceEvents(1, 1, { org: 'A' }));
      await eventually(
        async () => (receiver.got.some((g) => g.body.body.org === 'A') ? true : undefined),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 1_000));
      expect(receiver.got.filter((g) => g.body.body.org === 'B')).toEqual([]);
    } finally {
      await receiver.stop();
    }
  });

  it('refuses bad input on every forwarder route', async () => {
    const ok = await create({
      name: 'target',
      destination: webhook('http://127.0.0.1:9/x'),
      subscription: {},
    });
    const base = '/north/v1/forwarders';
    const cases: [string, string, unknown, number][] = [
      ['POST', base, undefined, 400],
      ['POST', base, 'not json', 400],
      ['POST', base, { name: 'x', destination: webhook('ftp://x/y'), subscription: {} }, 400],
      [
        'POST',
        base,
        { name: 'x', destination: { ...webhook('http://x/'), secret: 'short' }, subscription: {} },
        400,
      ],
      [
        'POST',
        base,
        { name: 'x', destination: { kind: 'webhook', url: 'http://x/' }, subscription: {} },
        400,
      ],
      [
        'POST',
        base,
        { name: 'x', destination: { ...webhook('http://x/'), headers: { Host: 'y' } }, subscription: {} },
        400,
      ],
      [
        'POST',
        base,
        {
          name: 'x',
          destination: { ...webhook('http://x/'), headers: { 'X-A': 'a\r\nb' } },
          subscription: {},
        },
        400,
      ],
      [
        'POST',
        base,
        { name: 'x', destination: { kind: 'mqtt', url: 'mqtt://x', topic: 'a/#' }, subscription: {} },
        400,
      ],
      ['POST', base, { name: 'x', destination: { kind: 'smtp', url: 'x' }, subscription: {} }, 400],
      [
        'POST',
        base,
        { name: 'x', destination: webhook('http://x/'), subscription: { types: ['nope'] } },
        400,
      ],
      ['POST', base, { name: 'x', destination: webhook('http://x/'), subscription: { $where: 1 } }, 400],
      ['POST', base, { name: 'x', destination: webhook('http://x/'), subscription: {}, org: 'other' }, 400],
      ['GET', `${base}?limit=0`, undefined, 400],
      ['GET', `${base}?limit[$gt]=1`, undefined, 400],
      ['GET', `${base}/fwd_nothere`, undefined, 404],
      ['GET', `${base}/fwd_000000000000`, undefined, 404],
      ['PATCH', `${base}/${ok.id}`, {}, 400],
      ['PATCH', `${base}/${ok.id}`, { destination: { kind: 'webhook' } }, 400],
      ['PATCH', `${base}/${ok.id}`, { destination: { kind: 'mqtt', url: 'http://x', topic: 't' } }, 400],
      ['PATCH', `${base}/fwd_000000000000`, { name: 'y' }, 404],
      ['DELETE', `${base}/fwd_000000000000`, undefined, 404],
      ['POST', `${base}/fwd_000000000000/pause`, undefined, 404],
      ['POST', `${base}/fwd_000000000000/resume`, undefined, 404],
      ['POST', `${base}/fwd_000000000000/test`, undefined, 404],
      ['GET', `${base}/${ok.id}/dead-letters?after=-1`, undefined, 400],
      ['GET', `${base}/fwd_000000000000/dead-letters`, undefined, 404],
      ['POST', `${base}/${ok.id}/dead-letters/replay`, { seqs: [] }, 400],
      ['POST', `${base}/${ok.id}/dead-letters/replay`, { seqs: ['1'] }, 400],
      ['POST', `${base}/fwd_000000000000/dead-letters/replay`, {}, 404],
      ['DELETE', `${base}/${ok.id}/dead-letters/0`, undefined, 404],
      ['DELETE', `${base}/${ok.id}/dead-letters/12`, undefined, 404],
    ];
    const answers = await Promise.all(
      cases.map(async ([method, path, body]) => {
        const res = await api.request(method, path, body);
        expect(res.body?.error?.code).toEqual(expect.any(String));
        return `${method} ${path} ${JSON.stringify(body)} -> ${res.status}`;
      }),
    );
    expect(answers).toEqual(cases.map(([m, p, b, s]) => `${m} ${p} ${JSON.stringify(b)} -> ${s}`));
    const view = (await api.patch(`${base}/${ok.id}`, { name: 'renamed', connector: null })).body;
    expect(view).toMatchObject({ name: 'renamed', destination: { hasSecret: true } });
    expect((await api.post(`${base}/${ok.id}/pause`)).body.status).toBe('paused');
    expect((await api.delete(`${base}/${ok.id}`)).status).toBe(204);
  });
});

describe('forwarders and a SIGKILLed worker', () => {
  it('loses nothing when the worker dies mid-delivery', async () => {
    const db = uniqueName('it_fwdk');
    const apiProc = await startTwinflow({ db, roles: 'api', env: FAST });
    const shared = { db, taskQueue: apiProc.env.TWINFLOW_TASK_QUEUE, adminKey: apiProc.adminKey, env: FAST };
    let worker = await startTwinflow({ ...shared, roles: 'worker' });
    const inventory = await openInventory(itEnv('TWINFLOW_IT_MONGODB_URI'), db);
    const receiver = new Receiver(await getFreePort());
    // A slow receiver, so the kill lands mid-batch.
    receiver.delayMs = 100;
    await receiver.start();
    try {
      const api = apiClient(apiProc.baseUrl, apiProc.adminKey);
      const org = (await api.get('/north/v1/me')).body.org as string;
      const res = await api.post('/north/v1/forwarders', {
        name: 'kill',
        destination: webhook(receiver.url),
        subscription: {},
      });
      expect(res.status).toBe(201);
      await new EventRepository(inventory.collections).append(org, deviceEvents(40, 2));
      await eventually(async () => (receiver.ids().length >= 5 ? true : undefined), 30_000);
      await worker.kill();
      const before = receiver.ids().length;
      worker = await startTwinflow({ ...shared, roles: 'worker' });
      await eventually(async () => (receiver.ids().length >= 40 ? true : undefined), 60_000);
      expect(before).toBeLessThan(40);
      expect(receiver.ids()).toHaveLength(40);
      expectDeviceOrder(receiver.got);
      expectDuplicatesKeyed(receiver.got);
    } finally {
      await receiver.stop();
      await worker.stop();
      await apiProc.stop();
      await inventory.close();
    }
  });
});
