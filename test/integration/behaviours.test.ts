// Twin behaviours on the real stack with emulated devices: the meter's overload held past its duration raises
// OVERLOAD and opens the breaker once, a short spike does neither, OFFLINE after silence and back, a declared
// alarm raised and cleared by its condition, acknowledge and clear through the API, the fleet-wide list with its
// filters, the TwinflowAlarm search attribute, and a duration timer that fires once across a worker SIGKILL.
import type { Client } from '@temporalio/client';
import { type DeviceEmulator, startDeviceEmulator } from '../../emulator/device-emulator';
import { twinWorkflowId } from '../../workflows/ids';
import {
  type ApiClient,
  type TwinflowProcess,
  apiClient,
  collectBody,
  eventually,
  startTwinflow,
  temporalClient,
  uniqueName,
} from './harness';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let clock = 1_700_000_000_000;

interface Meter {
  id: string;
  send(values: Record<string, number>): Promise<void>;
}

/** Provisions a meter played by the emulator (it answers operations at once) with the given attributes. */
async function provisionMeter(
  admin: ApiClient,
  baseUrl: string,
  emulator: DeviceEmulator,
  attributes: Record<string, number>,
  tags: string[] = [],
): Promise<Meter> {
  const id = uniqueName('meter').replace(/_/g, '-');
  const res = await admin.post('/north/v1/devices', {
    id,
    type: 'electricity-meter',
    tags,
    attributes,
    transport: { http: { operationUrl: emulator.operationUrl(id) } },
  });
  expect(res.status).toBe(201);
  const key = res.body.apiKey as string;
  emulator.addDevice({ id, apiKey: key, behavior: { kind: 'sync' } });
  const device = apiClient(baseUrl, key);
  return {
    id,
    async send(values) {
      clock += 1_000;
      const body = collectBody(
        Object.entries(values).map(([ds, value]) => ({ id: ds, datapoints: [{ value, at: clock }] })),
      );
      const sent = await device.post(`/south/v80/devices/${id}/collect/iot`, body);
      expect(sent.status).toBe(201);
    },
  };
}

/** The distinct operation ids of the DISCONNECT_SUPPLY requests the device received. */
const pushedIds = (emulator: DeviceEmulator, id: string): string[] => [
  ...new Set(
    emulator
      .received(id)
      .filter((r) => r.name === 'DISCONNECT_SUPPLY')
      .map((r) => r.operationId),
  ),
];

const alarmsOf = async (admin: ApiClient, id: string): Promise<any[]> => {
  const res = await admin.get(`/north/v1/devices/${id}/alarms`);
  expect(res.status).toBe(200);
  return res.body.items;
};

const operationsOf = async (admin: ApiClient, id: string): Promise<any[]> => {
  const res = await admin.get(`/north/v1/devices/${id}/operations`);
  expect(res.status).toBe(200);
  return res.body.items;
};

const alarmBecomes = (admin: ApiClient, id: string, name: string, status: string, timeoutMs = 30_000) =>
  eventually(async () => {
    const alarm = (await alarmsOf(admin, id)).find((a) => a.name === name);
    return alarm?.status === status ? alarm : undefined;
  }, timeoutMs);

describe('twin behaviours', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let emulator: DeviceEmulator;
  let temporal: { client: Client; close(): Promise<void> };

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    emulator = await startDeviceEmulator({ twinflowUrl: tf.baseUrl });
    temporal = await temporalClient();
  });
  afterAll(async () => {
    if (process.env.TWINFLOW_IT_SHOW_OUTPUT) console.log(tf?.output());
    await emulator?.close();
    await temporal?.close();
    await tf?.stop();
  });

  const meter = (attributes: Record<string, number>, tags: string[] = []) =>
    provisionMeter(admin, tf.baseUrl, emulator, attributes, tags);

  it('an overload held past its duration raises OVERLOAD and opens the breaker once; ack and clear', async () => {
    const tag = uniqueName('site');
    const m = await meter({ overloadHoldMs: 2_000 }, [tag]);
    await m.send({ 'power.active': 5_000, voltage: 230 });
    const start = Date.now();
    await m.send({ 'power.active': 12_000 });
    await sleep(1_000);
    await m.send({ 'power.active': 12_500 });
    const alarm = await alarmBecomes(admin, m.id, 'OVERLOAD', 'ACTIVE');
    // Not before the hold was over.
    expect(alarm.firstRaisedAt - start).toBeGreaterThanOrEqual(1_900);
    expect(alarm).toMatchObject({
      severity: 'MAJOR',
      acknowledged: false,
      reRaises: 0,
      twinType: 'electricity-meter',
    });
    expect(alarm.message).toMatch(/over the limit/);
    const disconnect = await eventually(async () => {
      const ops = (await operationsOf(admin, m.id)).filter((o) => o.name === 'DISCONNECT_SUPPLY');
      return ops.length === 1 && ops[0].status === 'SUCCESSFUL' ? ops[0] : undefined;
    });
    expect(disconnect).toMatchObject({
      requestedBy: 'twin:overload-breaker',
      parameters: { reason: 'overload' },
    });
    const events = await admin.get(`/north/v1/devices/${m.id}/events`);
    expect(events.body.items).toEqual([
      {
        id: expect.any(String),
        name: 'breaker-opened',
        data: { powerW: expect.any(Number), limitW: 10_000 },
        at: expect.any(Number),
      },
    ]);
    // Still overloaded for a while: nothing fires again.
    await m.send({ 'power.active': 13_000 });
    await sleep(3_000);
    expect((await operationsOf(admin, m.id)).filter((o) => o.name === 'DISCONNECT_SUPPLY')).toHaveLength(1);
    // One operation: the device may get its request again with the same id (delivery is at least once).
    expect(pushedIds(emulator, m.id)).toEqual([disconnect.id]);
    expect((await alarmsOf(admin, m.id)).filter((a) => a.name === 'OVERLOAD')).toHaveLength(1);

    // The fleet list finds it by severity, tag and acknowledgement; the device record counts it.
    const open = await admin.get(`/north/v1/alarms?severity=MAJOR&tag=${tag}&acknowledged=false`);
    expect(open.body.items.map((a: any) => [a.deviceId, a.name])).toEqual([[m.id, 'OVERLOAD']]);
    const view = await eventually(async () => {
      const v = (await admin.get(`/north/v1/devices/${m.id}?twin=snapshot`)).body;
      return v.twin?.alarms?.active === 1 ? v : undefined;
    });
    expect(view.twin.alarms).toEqual({ active: 1, unacknowledged: 1, highestSeverity: 'MAJOR' });
    const described = await temporal.client.workflow.getHandle(twinWorkflowId('default', m.id)).describe();
    expect(described.searchAttributes.TwinflowAlarm).toEqual(['MAJOR']);

    const acked = await admin.post(`/north/v1/devices/${m.id}/alarms/OVERLOAD/acknowledge`, {});
    expect(acked.status).toBe(200);
    expect(acked.body).toMatchObject({ status: 'ACTIVE', acknowledged: true });
    expect(acked.body.acknowledgedBy).toMatch(/^key:/);
    expect((await admin.get(`/north/v1/alarms?tag=${tag}&acknowledged=false`)).body.items).toEqual([]);
    expect((await admin.get(`/north/v1/alarms?tag=${tag}&acknowledged=true`)).body.items).toHaveLength(1);

    const cleared = await admin.post(`/north/v1/devices/${m.id}/alarms/OVERLOAD/clear`, {});
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({ status: 'CLEARED', acknowledged: true });
    expect((await admin.get(`/north/v1/alarms?tag=${tag}`)).body.items).toEqual([]);
    expect((await admin.get(`/north/v1/alarms?tag=${tag}&status=CLEARED`)).body.items).toHaveLength(1);
    const again = await admin.post(`/north/v1/devices/${m.id}/alarms/OVERLOAD/clear`, {});
    expect(again.status).toBe(409);
    const unknown = await admin.post(`/north/v1/devices/${m.id}/alarms/NOPE/acknowledge`, {});
    expect(unknown.status).toBe(404);
    await eventually(async () => {
      const d = await temporal.client.workflow.getHandle(twinWorkflowId('default', m.id)).describe();
      return d.searchAttributes.TwinflowAlarm?.[0] === 'NONE' ? true : undefined;
    });
    const audit = await admin.get('/north/v1/audit?limit=50');
    const actions = audit.body.entries.map((e: any) => `${e.action} ${e.resource}`);
    expect(actions).toEqual(
      expect.arrayContaining([
        `alarm.acknowledge devices/${m.id}/alarms/OVERLOAD`,
        `alarm.clear devices/${m.id}/alarms/OVERLOAD`,
      ]),
    );
  });

  it('a spike shorter than the hold raises nothing and sends nothing', async () => {
    const m = await meter({ overloadHoldMs: 3_000 });
    await m.send({ 'power.active': 5_000 });
    await m.send({ 'power.active': 12_000 });
    await sleep(800);
    await m.send({ 'power.active': 6_000 });
    // The twin heard both changes (each crosses the limit, so each is significant).
    await eventually(async () => {
      const v = (await admin.get(`/north/v1/devices/${m.id}`)).body;
      return v.twin?.counters?.batches >= 3 ? true : undefined;
    });
    await sleep(4_000);
    expect(await alarmsOf(admin, m.id)).toEqual([]);
    expect(await operationsOf(admin, m.id)).toEqual([]);
    expect(emulator.received(m.id)).toEqual([]);
  });

  it('a declared alarm is raised and cleared by its condition, and cannot be cleared by hand', async () => {
    const m = await meter({ voltageHoldMs: 0 });
    await m.send({ voltage: 230 });
    await m.send({ voltage: 290 });
    const raised = await alarmBecomes(admin, m.id, 'VOLTAGE', 'ACTIVE');
    expect(raised).toMatchObject({ severity: 'MINOR', clearableByHand: false });
    const byHand = await admin.post(`/north/v1/devices/${m.id}/alarms/VOLTAGE/clear`, {});
    expect(byHand.status).toBe(400);
    await m.send({ voltage: 231 });
    const cleared = await alarmBecomes(admin, m.id, 'VOLTAGE', 'CLEARED');
    expect(cleared.clearedBy).toBe('twin');
    await m.send({ voltage: 180 });
    const reRaised = await alarmBecomes(admin, m.id, 'VOLTAGE', 'ACTIVE');
    expect(reRaised.reRaises).toBe(1);
  });

  it('goes OFFLINE after the silence and back with the next data', async () => {
    const m = await meter({ offlineAfterMs: 1_500 });
    await m.send({ voltage: 230, 'power.active': 100 });
    await eventually(async () => {
      const v = (await admin.get(`/north/v1/devices/${m.id}`)).body;
      return v.status === 'OK' ? true : undefined;
    });
    const off = await eventually(async () => {
      const v = (await admin.get(`/north/v1/devices/${m.id}`)).body;
      return v.status === 'OFFLINE' ? v : undefined;
    });
    expect(off.twin.source).toBe('live');
    await eventually(async () => {
      const listed = await admin.get(`/north/v1/devices?status=OFFLINE&q=${m.id}`);
      return listed.body.items.length === 1 ? true : undefined;
    });
    const d = await temporal.client.workflow.getHandle(twinWorkflowId('default', m.id)).describe();
    expect(d.searchAttributes.TwinflowStatus).toEqual(['OFFLINE']);
    await m.send({ voltage: 231 });
    await eventually(async () => {
      const v = (await admin.get(`/north/v1/devices/${m.id}`)).body;
      return v.status === 'OK' ? true : undefined;
    });
  });

  it('refuses alarm routes to a key without the alarm permissions', async () => {
    const viewer = await admin.post('/north/v1/keys', { name: uniqueName('viewer'), role: 'viewer' });
    expect(viewer.status).toBe(201);
    const v = apiClient(tf.baseUrl, viewer.body.apiKey ?? viewer.body.key);
    expect((await v.get('/north/v1/alarms')).status).toBe(200);
    const m = await meter({});
    expect((await v.post(`/north/v1/devices/${m.id}/alarms/OVERLOAD/acknowledge`, {})).status).toBe(403);
  });
});

describe('a duration timer across a worker SIGKILL', () => {
  it('fires once after the restart: one alarm, one breaker operation', async () => {
    const db = uniqueName('beh');
    const taskQueue = uniqueName('tq');
    const api = await startTwinflow({ roles: 'api', db, taskQueue });
    let worker = await startTwinflow({ roles: 'worker', db, taskQueue, adminKey: api.adminKey });
    const emulator = await startDeviceEmulator({ twinflowUrl: api.baseUrl });
    try {
      const admin = apiClient(api.baseUrl, api.adminKey);
      const m = await provisionMeter(admin, api.baseUrl, emulator, { overloadHoldMs: 6_000 });
      await m.send({ 'power.active': 5_000 });
      await m.send({ 'power.active': 12_000 });
      // The twin holds the pending condition (its timer is armed) before the worker dies.
      await eventually(async () => {
        const v = (await admin.get(`/north/v1/devices/${m.id}`)).body;
        return v.twin?.source === 'live' && v.twin.state.powerW === 12_000 ? true : undefined;
      });
      await worker.kill();
      await sleep(7_000);
      worker = await startTwinflow({ roles: 'worker', db, taskQueue, adminKey: api.adminKey });
      await alarmBecomes(admin, m.id, 'OVERLOAD', 'ACTIVE', 60_000);
      const op = await eventually(async () => {
        const ops = (await operationsOf(admin, m.id)).filter((o) => o.name === 'DISCONNECT_SUPPLY');
        return ops.length === 1 && ops[0].status === 'SUCCESSFUL' ? ops[0] : undefined;
      }, 30_000);
      await sleep(2_000);
      expect((await operationsOf(admin, m.id)).filter((o) => o.name === 'DISCONNECT_SUPPLY')).toHaveLength(1);
      // One operation; a worker that dies (or a workflow task that times out on a busy machine) around the push
      // may push its request again, with the same id, as for any operation.
      expect(pushedIds(emulator, m.id)).toEqual([op.id]);
      const alarms = await alarmsOf(admin, m.id);
      expect(alarms).toHaveLength(1);
      expect(alarms[0]).toMatchObject({ name: 'OVERLOAD', reRaises: 0, rev: 1 });
    } finally {
      await emulator.close();
      await worker.stop();
      await api.stop();
    }
  });
});
