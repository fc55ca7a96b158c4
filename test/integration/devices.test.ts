// The foundation flow against real servers: provision, collect over the OpenGate API, read back, change, decommission.
import {
  type ApiClient,
  type TwinflowProcess,
  apiClient,
  collectBody,
  eventually,
  startTwinflow,
  temporalClient,
} from './harness';
import type { Client } from '@temporalio/client';
import { getTwinStateQuery } from '../../workflows/twin.messages';

describe('devices over the north and south APIs', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let temporal: { client: Client; close(): Promise<void> };

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    temporal = await temporalClient();
  });
  afterAll(async () => {
    await temporal?.close();
    await tf?.stop();
  });

  it('reports ready when Temporal and MongoDB answer', async () => {
    const res = await apiClient(tf.baseUrl).get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body.checks).toEqual({ temporal: { ok: true }, mongodb: { ok: true } });
  });

  it('provisions a device, answers its key once, and starts its twin', async () => {
    const res = await admin.post('/north/v1/devices', {
      id: 'meter-1',
      type: 'electricity-meter',
      name: 'Meter 1',
      tags: ['site-a'],
    });
    expect(res.status).toBe(201);
    expect(res.body.apiKey).toMatch(/^tfk_[0-9a-f]{8}_/);
    expect(res.body).toMatchObject({
      id: 'meter-1',
      type: 'electricity-meter',
      lifecycle: 'ACTIVE',
      tags: ['site-a'],
    });

    const again = await admin.post('/north/v1/devices', { id: 'meter-1' });
    expect(again.status).toBe(409);
    expect(again.body.apiKey).toBeUndefined();

    const state = await temporal.client.workflow.getHandle(`twin/default/meter-1`).query(getTwinStateQuery);
    expect(state.identity).toEqual({ org: 'default', deviceId: 'meter-1', twinType: 'electricity-meter' });
  });

  it('stores an OpenGate collect body and shows the values in the API and the twin', async () => {
    const created = await admin.post('/north/v1/devices', { id: 'sensor-7' });
    const device = apiClient(tf.baseUrl, created.body.apiKey);
    const before = Date.now();
    const res = await device.post(
      '/south/v80/devices/sensor-7/collect/iot',
      collectBody([
        { id: 'device.model', datapoints: [{ value: { name: 'X', manufacturer: 'Y' } }] },
        {
          id: 'temperature',
          feed: 'room',
          datapoints: [
            { value: 20.5, at: 1_700_000_000_000 },
            { value: 21.5, at: 1_700_000_060_000 },
          ],
        },
      ]),
    );
    expect(res.status).toBe(201);

    // The API shows stored values at once, before the twin hears of them.
    const view = await admin.get('/north/v1/devices/sensor-7');
    expect(view.status).toBe(200);
    const model = view.body.datastreams.find((d: { id: string }) => d.id === 'device.model');
    expect(model.value).toEqual({ name: 'X', manufacturer: 'Y' });
    expect(model.at).toBeGreaterThanOrEqual(before);
    expect(view.body.datastreams.find((d: { id: string }) => d.id === 'temperature')).toMatchObject({
      feed: 'room',
      value: 21.5,
      at: 1_700_000_060_000,
    });

    const state = await eventually(async () => {
      const s = await temporal.client.workflow.getHandle('twin/default/sensor-7').query(getTwinStateQuery);
      return s.counters.datapoints === 3 ? s : undefined;
    });
    expect(state.reported).toEqual([
      { id: 'device.model', feed: 'default', value: { name: 'X', manufacturer: 'Y' }, at: model.at },
      { id: 'temperature', feed: 'room', value: 21.5, at: 1_700_000_060_000 },
    ]);
    expect(state.connectivity.channel).toBe('http');

    // From the read model alone: the same values, the twin as its last snapshot.
    const snapshotView = await admin.get('/north/v1/devices/sensor-7?twin=snapshot');
    expect(snapshotView.status).toBe(200);
    expect(snapshotView.body.datastreams).toEqual(view.body.datastreams);
    expect(snapshotView.body.twin.source).toBe('snapshot');
    expect((await admin.get('/north/v1/devices/sensor-7?twin=maybe')).status).toBe(400);

    const history = await admin.get('/north/v1/devices/sensor-7/datastreams/temperature/datapoints');
    expect(history.body.datapoints.map((d: { value: number }) => d.value)).toEqual([21.5, 20.5]);
  });

  it('keeps the latest values of many devices apart in their shared pages, dotted ids included, in gets and lists', async () => {
    // 150 devices over 64 pages: every page holds several; ids with dots are field names once encoded.
    const ids = Array.from({ length: 150 }, (_, i) => (i % 3 === 0 ? `page.dev.${i}` : `page-dev-${i}`));
    const created = await admin.post('/north/v1/devices/bulk', { devices: ids.map((id) => ({ id })) });
    expect(created.status).toBe(200);
    const keys = new Map<string, string>(
      created.body.results.map((r: { id: string; apiKey: string }) => [r.id, r.apiKey]),
    );
    const before = Date.now();
    await Promise.all(
      ids.map(async (id, i) => {
        const res = await apiClient(tf.baseUrl, keys.get(id)).post(
          `/south/v80/devices/${id}/collect/iot`,
          collectBody([{ id: 'reading', datapoints: [{ value: i }] }]),
        );
        expect(res.status).toBe(201);
      }),
    );
    for (const [i, id] of ids.entries()) {
      const view = await admin.get(`/north/v1/devices/${id}`);
      expect(view.body.datastreams).toEqual([expect.objectContaining({ id: 'reading', value: i })]);
      expect(view.body.lastSeenAt).toBeGreaterThanOrEqual(before);
    }
    const listed = await admin.get('/north/v1/devices?q=page&limit=200');
    expect(listed.body.items).toHaveLength(150);
    for (const item of listed.body.items as { id: string; datastreams: { value: number }[] }[]) {
      expect(item.datastreams.map((d) => d.value)).toEqual([ids.indexOf(item.id)]);
    }
  });

  it('accepts the device key in the X-ApiKey query parameter, as OpenGate devices send it', async () => {
    const created = await admin.post('/north/v1/devices', { id: 'query-key' });
    const res = await apiClient(tf.baseUrl).post(
      `/south/v80/devices/query-key/collect/iot?X-ApiKey=${encodeURIComponent(created.body.apiKey)}`,
      collectBody([{ id: 'x', datapoints: [{ value: 1 }] }]),
    );
    expect(res.status).toBe(201);
  });

  it('derives the twin status from data and finds the twin by its search attributes', async () => {
    const created = await admin.post('/north/v1/devices', { id: 'meter-2', type: 'electricity-meter' });
    const device = apiClient(tf.baseUrl, created.body.apiKey);
    await device.post(
      '/south/v80/devices/meter-2/collect/iot',
      collectBody([{ id: 'voltage', datapoints: [{ value: 150 }] }]),
    );
    await eventually(async () => {
      const view = await admin.get('/north/v1/devices/meter-2');
      return view.body.twin?.status === 'VOLTAGE_ALARM' ? view : undefined;
    });
    // The snapshot reaches the read model, so lists filter by the twin's status.
    const listed = await eventually(async () => {
      const list = await admin.get('/north/v1/devices?status=VOLTAGE_ALARM');
      return list.body.items.length === 1 ? list : undefined;
    });
    expect(listed.body.items[0].id).toBe('meter-2');
    const found = await eventually(async () => {
      const ids: string[] = [];
      for await (const wf of temporal.client.workflow.list({
        query: `TwinflowOrg = 'default' AND TwinflowDeviceId = 'meter-2' AND TwinflowStatus = 'VOLTAGE_ALARM' AND TwinflowTwinType = 'electricity-meter'`,
      })) {
        ids.push(wf.workflowId);
      }
      return ids.length === 1 ? ids : undefined;
    });
    expect(found).toEqual(['twin/default/meter-2']);
  });

  it('lists devices with filters and a cursor', async () => {
    const bulk = await admin.post('/north/v1/devices/bulk', {
      devices: Array.from({ length: 25 }, (_, i) => ({
        id: `list-${String(i).padStart(2, '0')}`,
        tags: i % 2 ? ['odd'] : ['even'],
        name: `Lister ${i}`,
      })),
    });
    expect(bulk.status).toBe(200);
    expect(bulk.body.created).toBe(25);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { status: number; body: { items: { id: string }[]; nextCursor: string | null } } =
        await admin.get(`/north/v1/devices?tag=odd&limit=5${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((d) => d.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => `list-${String(2 * i + 1).padStart(2, '0')}`));
    const q = await admin.get('/north/v1/devices?q=lister%2024');
    expect(q.body.items.map((d: { id: string }) => d.id)).toEqual(['list-24']);
  });

  it('reports per-item results in bulk provisioning', async () => {
    const res = await admin.post('/north/v1/devices/bulk', {
      devices: [
        { id: 'bulk-a' },
        { id: 'bulk-b', type: 'no-such-type' },
        { id: 'bad id' },
        { id: 'meter-1' },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: { id: string; status: number }) => [r.id, r.status])).toEqual([
      ['bulk-a', 201],
      ['bulk-b', 400],
      ['bad id', 400],
      ['meter-1', 409],
    ]);
    expect(res.body.results[0].apiKey).toMatch(/^tfk_/);
    expect((await admin.get('/north/v1/devices/bulk-b')).status).toBe(404);
  });

  it('changes attributes through the twin and keeps the record in step', async () => {
    await admin.post('/north/v1/devices', { id: 'patched', attributes: { floor: 1, room: 'a' } });
    const res = await admin.patch('/north/v1/devices/patched', {
      name: 'Renamed',
      attributes: { floor: 2, room: null, zone: 'north' },
      tags: ['x', 'x', 'y'],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      name: 'Renamed',
      attributes: { floor: 2, zone: 'north' },
      tags: ['x', 'y'],
    });
    const state = await temporal.client.workflow.getHandle('twin/default/patched').query(getTwinStateQuery);
    expect(state.profile).toEqual({
      name: 'Renamed',
      tags: ['x', 'y'],
      attributes: { floor: 2, zone: 'north' },
    });
    const bad = await admin.patch('/north/v1/devices/patched', { attributes: { 'bad key': 1 } });
    expect(bad.status).toBe(400);
    expect((await admin.get('/north/v1/devices/patched')).body.attributes).toEqual({
      floor: 2,
      zone: 'north',
    });
  });

  it('answers concurrent decommissions of one device alike, each with the decommissioned record', async () => {
    expect((await admin.post('/north/v1/devices', { id: 'retired-twice' })).status).toBe(201);
    const answers = await Promise.all(
      [1, 2, 3, 4].map(() => admin.delete('/north/v1/devices/retired-twice')),
    );
    expect(answers.map((a) => [a.status, a.body.lifecycle])).toEqual(Array(4).fill([200, 'DECOMMISSIONED']));
  });

  it('decommissions a device: the twin ends, the key stops working, the record stays marked', async () => {
    const created = await admin.post('/north/v1/devices', { id: 'retired' });
    const device = apiClient(tf.baseUrl, created.body.apiKey);
    expect(
      (
        await device.post(
          '/south/v80/devices/retired/collect/iot',
          collectBody([{ id: 'x', datapoints: [{ value: 1 }] }]),
        )
      ).status,
    ).toBe(201);
    const res = await admin.delete('/north/v1/devices/retired');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: 'retired', lifecycle: 'DECOMMISSIONED', status: 'DECOMMISSIONED' });
    expect(typeof res.body.decommissionedAt).toBe('number');

    const handle = temporal.client.workflow.getHandle('twin/default/retired');
    const result = await handle.result();
    expect(result.lifecycle).toBe('DECOMMISSIONED');
    expect(
      (
        await device.post(
          '/south/v80/devices/retired/collect/iot',
          collectBody([{ id: 'x', datapoints: [{ value: 2 }] }]),
        )
      ).status,
    ).toBe(401);
    const view = await admin.get('/north/v1/devices/retired');
    expect(view.status).toBe(200);
    expect(view.body.lifecycle).toBe('DECOMMISSIONED');
    expect((await admin.delete('/north/v1/devices/retired')).status).toBe(200);
    expect((await admin.patch('/north/v1/devices/retired', { name: 'x' })).status).toBe(409);
  });
});
