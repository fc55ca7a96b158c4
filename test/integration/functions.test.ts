// Connector functions against a running TwinFlow: CRUD and versions, test mode that stores nothing, production
// translation of vendor JSON, CSV and hex into datapoints, a hostile function answering 422 while others flow.
import type { MongoClient } from 'mongodb';
import {
  type ApiClient,
  apiClient,
  eventually,
  mongoClient,
  startTwinflow,
  type TwinflowProcess,
  storedPoints,
} from './harness';

jest.setTimeout(120_000);

const VENDOR_JSON = `// Acme sensors: { "serial": "...", "readings": { "tC": 21.5, "rh": 40 }, "ts": 1700000000000 }
function transform(payload, context) {
  const r = payload.readings;
  return [
    { id: 'temperature', value: r.tC, at: payload.ts },
    { id: 'humidity', value: r.rh, at: payload.ts },
    { id: 'device.serialNumber', value: payload.serial },
  ];
}`;
const CSV = `// "temperature,humidity" lines, one reading per line
function transform(text) {
  return text.trim().split('\\n').map((line) => line.split(',').map(Number))
    .flatMap(([t, h]) => [{ id: 'temperature', value: t }, { id: 'humidity', value: h }]);
}`;
const HEX = `// 2 bytes signed temperature in tenths, 1 byte battery percent
function transform(hex) {
  const raw = parseInt(hex.slice(0, 4), 16);
  return [
    { id: 'temperature', value: (raw > 0x7fff ? raw - 0x10000 : raw) / 10 },
    { id: 'battery', value: parseInt(hex.slice(4, 6), 16) },
  ];
}`;

describe('connector functions', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let mongo: MongoClient;
  const devices: Record<string, string> = {};

  const send = (deviceId: string, suffix: string, body: string, contentType: string) =>
    fetch(`${tf.baseUrl}/south/v80/devices/${deviceId}/collect/${suffix}`, {
      method: 'POST',
      headers: { 'X-ApiKey': devices[deviceId] as string, 'content-type': contentType },
      body,
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as any }));
  const latest = async (deviceId: string) =>
    Object.fromEntries(
      (
        (await admin.get(`/north/v1/devices/${deviceId}`)).body.datastreams as {
          id: string;
          value: unknown;
        }[]
      ).map((d) => [d.id, d.value]),
    );
  const datapointCount = async () => (await storedPoints(mongo, tf.env.MONGODB_DB as string)).length;

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    mongo = await mongoClient();
    for (const id of ['acme-1', 'csv-1', 'hex-1', 'plain-1', 'bomb-1']) {
      const res = await admin.post('/north/v1/devices', {
        id,
        type: id === 'acme-1' ? 'electricity-meter' : 'generic',
        transport: { sleepy: true },
      });
      expect(res.status).toBe(201);
      devices[id] = res.body.apiKey;
    }
  });

  afterAll(async () => {
    await mongo?.close();
    await tf?.stop();
  });

  it('creates, lists, reads, versions, exports, imports and deletes a function, auditing each change', async () => {
    const created = await admin.post('/north/v1/functions', {
      name: 'crud-fn',
      description: 'first',
      source: VENDOR_JSON,
      criteria: { httpPath: 'crud', deviceType: 'electricity-meter' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'crud-fn',
      mode: 'TEST',
      version: 1,
      stats: { calls: 0, failures: 0 },
    });
    expect(
      (
        await admin.post('/north/v1/functions', {
          name: 'crud-fn',
          source: VENDOR_JSON,
          criteria: { httpPath: 'x' },
        })
      ).status,
    ).toBe(409);

    const list = await admin.get('/north/v1/functions');
    expect(list.body.functions.map((f: { name: string }) => f.name)).toContain('crud-fn');
    expect(list.body.functions[0].source).toBeUndefined();

    const updated = await admin.request('PUT', '/north/v1/functions/crud-fn', {
      source: CSV,
      criteria: { httpPath: 'crud2' },
      mode: 'DISABLED',
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({
      version: 2,
      mode: 'DISABLED',
      criteria: { httpPath: 'crud2' },
      source: CSV,
    });
    expect(updated.body.description).toBeUndefined();

    const exported = await admin.get('/north/v1/functions/crud-fn/export');
    expect(exported.status).toBe(200);
    expect(exported.body).toMatchObject({
      kind: 'twinflow.connector-function',
      formatVersion: 1,
      name: 'crud-fn',
      source: CSV,
    });

    expect((await admin.post('/north/v1/functions/import', exported.body)).status).toBe(409);
    const replaced = await admin.post('/north/v1/functions/import?replace=true', exported.body);
    expect(replaced.status).toBe(200);
    expect(replaced.body.version).toBe(3);
    const copy = await admin.post('/north/v1/functions/import', { ...exported.body, name: 'crud-copy' });
    expect(copy.status).toBe(201);
    expect(copy.body).toMatchObject({ name: 'crud-copy', version: 1, source: CSV });

    expect((await admin.delete('/north/v1/functions/crud-fn')).status).toBe(200);
    expect((await admin.get('/north/v1/functions/crud-fn')).status).toBe(404);
    expect((await admin.delete('/north/v1/functions/crud-copy')).status).toBe(200);

    const auditLog = await admin.get('/north/v1/audit?limit=50');
    const actions = (auditLog.body.entries as { action: string; resource: string }[])
      .filter((e) => e.resource === 'functions/crud-fn')
      .map((e) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining(['function.create', 'function.update', 'function.import', 'function.delete']),
    );
  });

  it('answers a syntax error with 400 and its message, and stores nothing', async () => {
    const res = await admin.post('/north/v1/functions', {
      name: 'broken',
      source: 'function transform(p) { return [ }',
      criteria: { httpPath: 'broken' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/does not compile: SyntaxError/);
    expect((await admin.get('/north/v1/functions/broken')).status).toBe(404);
    const bad = await admin.post('/north/v1/functions', {
      name: 'no-criteria',
      source: VENDOR_JSON,
      criteria: {},
    });
    expect(bad.status).toBe(400);
  });

  it('runs a sample on the test endpoint and on live traffic in TEST mode, storing nothing', async () => {
    expect(
      (
        await admin.post('/north/v1/functions', {
          name: 'acme-trial',
          source: VENDOR_JSON,
          criteria: { httpPath: 'acme', deviceType: 'electricity-meter' },
          mode: 'TEST',
        })
      ).status,
    ).toBe(201);
    const before = await datapointCount();
    const sample = await admin.post('/north/v1/functions/acme-trial/test', {
      payload: { serial: 'SN-1', readings: { tC: 19, rh: 35 }, ts: 1_700_000_000_000 },
      deviceId: 'acme-1',
    });
    expect(sample.status).toBe(200);
    expect(sample.body).toMatchObject({
      ok: true,
      stored: 0,
      datapoints: [
        { id: 'temperature', value: 19, at: 1_700_000_000_000 },
        { id: 'humidity', value: 35, at: 1_700_000_000_000 },
        { id: 'device.serialNumber', value: 'SN-1' },
      ],
    });
    const failing = await admin.post('/north/v1/functions/acme-trial/test', { payload: 'not json at all' });
    expect(failing.body).toMatchObject({ ok: false, kind: 'thrown' });

    // Live traffic: the TEST function runs and keeps its output; no PRODUCTION function, so 404 and nothing stored.
    const live = await send(
      'acme-1',
      'acme',
      JSON.stringify({ serial: 'SN-1', readings: { tC: 20, rh: 36 }, ts: 1_700_000_000_500 }),
      'application/json',
    );
    expect(live.status).toBe(404);
    expect(live.body.error.message).toMatch(/no connector function in PRODUCTION.*1 in TEST mode ran/);
    const fn = await admin.get('/north/v1/functions/acme-trial');
    expect(fn.body.stats).toMatchObject({ calls: 1, failures: 0 });
    expect(fn.body.stats.testResults[0]).toMatchObject({
      ok: true,
      deviceId: 'acme-1',
      datapoints: expect.arrayContaining([{ id: 'temperature', value: 20, at: 1_700_000_000_500 }]),
    });
    expect(await datapointCount()).toBe(before);
    expect(await latest('acme-1')).toEqual({});
  });

  it('translates vendor JSON, a CSV line and a hex string into stored datapoints in PRODUCTION', async () => {
    const create = (name: string, source: string, criteria: object) =>
      admin.post('/north/v1/functions', { name, source, criteria, mode: 'PRODUCTION' });
    expect(
      (await create('acme-json', VENDOR_JSON, { httpPath: 'acme', deviceType: 'electricity-meter' })).status,
    ).toBe(201);
    expect((await create('csv-lines', CSV, { httpPath: 'csv' })).status).toBe(201);
    expect((await create('hex-frames', HEX, { httpPath: 'hex', deviceIds: ['hex-1'] })).status).toBe(201);

    const json = await send(
      'acme-1',
      'acme',
      JSON.stringify({ serial: 'SN-9', readings: { tC: 22.5, rh: 41 }, ts: 1_700_000_001_000 }),
      'application/json',
    );
    expect(json).toEqual({ status: 201, body: { function: 'acme-json', version: 1, stored: 3 } });
    const csv = await send('csv-1', 'csv', '21.5,40\n', 'text/csv');
    expect(csv).toEqual({ status: 201, body: { function: 'csv-lines', version: 1, stored: 2 } });
    const hex = await send('hex-1', 'hex', 'ff9c5a', 'text/plain');
    expect(hex).toEqual({ status: 201, body: { function: 'hex-frames', version: 1, stored: 2 } });

    expect(await latest('acme-1')).toEqual({
      temperature: 22.5,
      humidity: 41,
      'device.serialNumber': 'SN-9',
    });
    expect(await latest('csv-1')).toEqual({ temperature: 21.5, humidity: 40 });
    expect(await latest('hex-1')).toEqual({ temperature: -10, battery: 90 });
    const history = await admin.get('/north/v1/devices/acme-1/datastreams/temperature/datapoints?from=0');
    expect(history.status).toBe(200);
    // The twin hears about the data as with OpenGate collect.
    await eventually(async () => {
      const res = await admin.get('/north/v1/devices/acme-1');
      return res.body.twin?.counters?.datapoints > 0 || res.body.twin?.connectivity ? true : undefined;
    });

    // A device no function is meant for, and a path no function claims: 404, nothing stored.
    expect((await send('hex-1', 'csv', '1,2', 'text/csv')).status).toBe(201);
    expect((await send('plain-1', 'hex', 'ff9c5a', 'text/plain')).status).toBe(404);
    expect((await send('plain-1', 'nothing-here', '{}', 'application/json')).status).toBe(404);
    expect((await send('acme-1', 'acme', '{"broken', 'application/json')).status).toBe(400);
    const stats = (await admin.get('/north/v1/functions/acme-json')).body.stats;
    expect(stats).toMatchObject({ calls: 1, failures: 0 });
  });

  it('answers 422 for a hostile function, counts its failures, and keeps other devices flowing', async () => {
    expect(
      (
        await admin.post('/north/v1/functions', {
          name: 'bomb',
          source:
            'function transform(p) { if (p === "loop") { while (true) {} } const a = []; for (;;) a.push("x".repeat(1000) + a.length); }',
          criteria: { httpPath: 'bomb' },
          mode: 'PRODUCTION',
        })
      ).status,
    ).toBe(201);
    const before = await datapointCount();
    const loop = await send('bomb-1', 'bomb', 'loop', 'text/plain');
    expect(loop.status).toBe(422);
    expect(loop.body.error).toMatchObject({ code: 'UNPROCESSABLE' });
    expect(loop.body.error.message).toMatch(
      /connector function bomb .*failed; nothing was stored: .*CPU deadline/,
    );
    const bomb = await send('bomb-1', 'bomb', 'grow', 'text/plain');
    expect(bomb.status).toBe(422);
    // Other devices keep flowing through their functions.
    const csv = await send('csv-1', 'csv', '30,50', 'text/csv');
    expect(csv.status).toBe(201);
    expect(await latest('csv-1')).toEqual({ temperature: 30, humidity: 50 });
    expect(await datapointCount()).toBe(before + 2);
    const stats = (await admin.get('/north/v1/functions/bomb')).body.stats;
    expect(stats).toMatchObject({ calls: 2, failures: 2 });
    expect(stats.lastErrors).toHaveLength(2);
    expect(stats.lastErrors[0]).toMatchObject({ kind: 'timeout', version: 1 });
    expect(typeof stats.lastErrors[0].at).toBe('number');
    expect(await latest('bomb-1')).toEqual({});
  });

  it("hides an organization's functions from another organization", async () => {
    const orgB = `fn-org-${Date.now().toString(36)}`;
    const email = `admin@${orgB}.example`;
    const password = 'correct horse battery staple';
    expect(
      (await admin.post('/north/v1/organizations', { id: orgB, name: 'B', admin: { email, password } }))
        .status,
    ).toBe(201);
    const login = await apiClient(tf.baseUrl).post('/north/v1/auth/login', { email, password });
    const b = apiClient(tf.baseUrl);
    const h = { authorization: `Bearer ${login.body.accessToken}` };
    expect((await b.get('/north/v1/functions/acme-json', h)).status).toBe(404);
    expect((await b.get('/north/v1/functions/acme-json/export', h)).status).toBe(404);
    expect(
      (
        await b.request(
          'PUT',
          '/north/v1/functions/acme-json',
          { source: CSV, criteria: { httpPath: 'x' }, mode: 'TEST' },
          h,
        )
      ).status,
    ).toBe(404);
    expect((await b.post('/north/v1/functions/acme-json/test', { payload: {} }, h)).status).toBe(404);
    expect((await b.delete('/north/v1/functions/acme-json', h)).status).toBe(404);
    expect((await b.get('/north/v1/functions', h)).body).toEqual({ functions: [] });
    // The same name is free in org B and its devices are not translated by org A's function.
    const own = await b.post(
      '/north/v1/functions',
      { name: 'acme-json', source: HEX, criteria: { httpPath: 'acme' }, mode: 'PRODUCTION' },
      h,
    );
    expect(own.status).toBe(201);
    expect((await admin.get('/north/v1/functions/acme-json')).body.source).toBe(VENDOR_JSON);
  });
});
