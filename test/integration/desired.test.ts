// Desired state on the real stack: a push device (emulated), an MQTT device and a sleepy device that polls each
// get the difference through the twin's own operation and end IN_SYNC once they report the values; a device that
// refuses ends FAILED with the reason; a stale If-Match is refused with 412; a newer version supersedes.
import mqtt, { type MqttClient } from 'mqtt';
import { type DeviceEmulator, startDeviceEmulator } from '../../emulator/device-emulator';
import type { Behavior } from '../../emulator/behaviors';
import {
  type ApiClient,
  type TwinflowProcess,
  apiClient,
  collectBody,
  eventually,
  startTwinflow,
  uniqueName,
} from './harness';

let clock = 1_700_000_000_000;

describe('desired state', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let emulator: DeviceEmulator;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    emulator = await startDeviceEmulator({ twinflowUrl: tf.baseUrl });
  });
  afterAll(async () => {
    if (process.env.TWINFLOW_IT_SHOW_OUTPUT) console.log(tf?.output());
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await emulator?.close();
    await tf?.stop();
  });

  /** Provisions a device the emulator plays; answers its id and a client with its key. */
  async function emulated(behavior: Behavior, type = 'electricity-meter') {
    const id = uniqueName('dsr').replace(/_/g, '-');
    const sleepy = behavior.kind === 'sleepy';
    const res = await admin.post('/north/v1/devices', {
      id,
      type,
      transport: sleepy ? { sleepy: true } : { http: { operationUrl: emulator.operationUrl(id) } },
    });
    expect(res.status).toBe(201);
    const key = res.body.apiKey as string;
    emulator.addDevice({ id, apiKey: key, behavior });
    return { id, device: apiClient(tf.baseUrl, key) };
  }

  const report = async (device: ApiClient, id: string, values: Record<string, unknown>) => {
    clock += 1_000;
    const body = collectBody(
      Object.entries(values).map(([ds, value]) => ({ id: ds, datapoints: [{ value, at: clock }] })),
    );
    expect((await device.post(`/south/v80/devices/${id}/collect/iot`, body)).status).toBe(201);
  };

  const desiredBecomes = (id: string, status: string, timeoutMs = 30_000) =>
    eventually(async () => {
      const res = await admin.get(`/north/v1/devices/${id}/desired`);
      return res.status === 200 && res.body.status === status ? res.body : undefined;
    }, timeoutMs);

  const patch = (id: string, body: unknown, ifMatch?: string) =>
    admin.request('PATCH', `/north/v1/devices/${id}/desired`, body, ifMatch ? { 'If-Match': ifMatch } : {});

  it('reaches a push device: SET_DEVICE_PARAMETERS once, then IN_SYNC when it reports', async () => {
    const { id, device } = await emulated({ kind: 'sync' });
    await report(device, id, { reportingIntervalS: 900 });
    const before = await admin.get(`/north/v1/devices/${id}/desired`);
    expect(before.status).toBe(200);
    expect(before.headers.get('etag')).toBe('"0"');
    expect(before.body).toMatchObject({ version: 0, status: 'IN_SYNC', values: {} });

    const changed = await patch(id, { reportingIntervalS: 60 }, '"0"');
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).toBe('"1"');
    expect(changed.body).toMatchObject({ version: 1, status: 'PENDING', attempt: 1 });
    expect(changed.body.keys.reportingIntervalS).toEqual({ desired: 60, reported: 900, status: 'PENDING' });

    const got = await eventually(async () => {
      const r = emulator.received(id).filter((x) => x.name === 'SET_DEVICE_PARAMETERS');
      return r.length === 1 ? r[0] : undefined;
    });
    expect(got.parameters).toEqual({
      variableList: [{ variableName: 'reportingIntervalS', variableValue: 60 }],
    });
    const ops = (await admin.get(`/north/v1/devices/${id}/operations`)).body.items;
    expect(ops).toHaveLength(1);
    expect(ops[0]).toMatchObject({ requestedBy: 'desired-state', name: 'SET_DEVICE_PARAMETERS' });
    // The device applies it and reports the new value.
    await report(device, id, { reportingIntervalS: 60 });
    const synced = await desiredBecomes(id, 'IN_SYNC');
    expect(synced.keys.reportingIntervalS).toEqual({ desired: 60, reported: 60, status: 'IN_SYNC' });
    // The stale version is refused; the current one is taken.
    const stale = await patch(id, { reportingIntervalS: 120 }, '"0"');
    expect(stale.status).toBe(412);
    expect(stale.body.error.code).toBe('PRECONDITION_FAILED');
    const bad = await patch(id, { reportingIntervalS: 1 });
    expect(bad.status).toBe(400);
    const audit = await admin.get('/north/v1/audit?limit=50&action=device.desired');
    expect(audit.body.entries.map((e: any) => e.resource)).toContain(`devices/${id}/desired`);
  });

  it('ends FAILED with the reason when the device refuses', async () => {
    const { id, device } = await emulated({ kind: 'sync', resultCode: 'ERROR_PROCESSING' });
    await report(device, id, { reportingIntervalS: 900 });
    expect((await patch(id, { reportingIntervalS: 60 })).status).toBe(200);
    const failed = await desiredBecomes(id, 'FAILED');
    expect(failed.reason).toMatch(/^the device refused: FAILED ERROR_PROCESSING/);
    expect(failed.keys.reportingIntervalS.status).toBe('FAILED');
    expect(emulator.received(id).filter((x) => x.name === 'SET_DEVICE_PARAMETERS')).toHaveLength(1);
  });

  it('reaches a sleepy device on its next poll', async () => {
    const { id, device } = await emulated({
      kind: 'sleepy',
      pollIntervalMs: 1_500,
      answer: { kind: 'sync' },
    });
    await report(device, id, { tariff: 'flat' });
    const changed = await patch(id, { tariff: 'night' });
    expect(changed.body.status).toBe('PENDING');
    const got = await eventually(async () => {
      const r = emulator.received(id).filter((x) => x.name === 'SET_DEVICE_PARAMETERS');
      return r.length === 1 ? r[0] : undefined;
    });
    expect(got.via).toBe('poll');
    await report(device, id, { tariff: 'night' });
    await desiredBecomes(id, 'IN_SYNC');
  });

  it('reaches an MQTT device that listens, and a newer version supersedes the first', async () => {
    const id = uniqueName('dsr-mq').replace(/_/g, '-');
    const res = await admin.post('/north/v1/devices', {
      id,
      type: 'electricity-meter',
      transport: { mqtt: true },
    });
    expect(res.status).toBe(201);
    const key = res.body.apiKey as string;
    const client = await new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(tf.mqttUrl, {
        username: id,
        password: key,
        clientId: uniqueName('c'),
        reconnectPeriod: 0,
      });
      clients.push(c);
      c.once('connect', () => resolve(c));
      c.once('error', reject);
    });
    const requests: any[] = [];
    client.on('message', (topic, payload) => {
      if (topic === `odm/request/${id}`) requests.push(JSON.parse(payload.toString()).operation.request);
    });
    await client.subscribeAsync(`odm/request/${id}`, { qos: 1 });
    const send = (topic: string, body: unknown) =>
      client.publishAsync(topic, JSON.stringify(body), { qos: 1 });
    await send(`odm/iot/${id}`, {
      version: '1.0.0',
      datastreams: [{ id: 'tariff', datapoints: [{ value: 'day', at: ++clock }] }],
    });

    expect((await patch(id, { tariff: 'night' })).status).toBe(200);
    const first = await eventually(async () => requests[0]);
    expect(first).toMatchObject({ name: 'SET_DEVICE_PARAMETERS' });
    // Before the device answers, the operator changes it again: the first attempt is cancelled.
    const second = await patch(id, { tariff: 'peak' }, '"1"');
    expect(second.status).toBe(200);
    expect(second.body.version).toBe(2);
    const next = await eventually(async () => requests.find((r) => r.id !== first.id));
    expect(next.parameters).toEqual({ variableList: [{ variableName: 'tariff', variableValue: 'peak' }] });
    await send(`odm/response/${id}`, {
      version: '8.0',
      operation: { response: { id: next.id, name: next.name, resultCode: 'SUCCESSFUL' } },
    });
    await send(`odm/iot/${id}`, {
      version: '1.0.0',
      datastreams: [{ id: 'tariff', datapoints: [{ value: 'peak', at: ++clock }] }],
    });
    const synced = await desiredBecomes(id, 'IN_SYNC');
    expect(synced.values).toEqual({ tariff: 'peak' });
    await eventually(async () => {
      const op = (await admin.get(`/north/v1/operations/${first.id}`)).body;
      return op.status === 'CANCELLED' ? true : undefined;
    });
  });
});
