// The composition root builds the whole API in-process: createServices on the test servers, createApp, and
// requests through app.request() with no HTTP server, exactly as the process entry wires them.
import pino from 'pino';
import { createApp } from '../../api/app';
import { type Inventory, openInventory } from '../../inventory/inventory';
import { loadConfig } from '../../worker/config';
import { type BuiltServices, createServices } from '../../worker/services';
import { collectBody, itEnv, uniqueName } from './harness';

describe('the API built in-process by the composition root', () => {
  const adminKey = `it-admin-${uniqueName('k')}`;
  let inventory: Inventory;
  let built: BuiltServices;
  let app: ReturnType<typeof createApp>;

  const call = async (method: string, path: string, key: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      headers: { 'X-ApiKey': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  };

  beforeAll(async () => {
    const config = loadConfig({
      TEMPORAL_ADDRESS: itEnv('TWINFLOW_IT_TEMPORAL_ADDRESS'),
      MONGODB_URI: itEnv('TWINFLOW_IT_MONGODB_URI'),
      MONGODB_DB: uniqueName('inproc'),
      TWINFLOW_TASK_QUEUE: uniqueName('tq'),
      TWINFLOW_MQTT: 'off',
    });
    inventory = await openInventory(config.mongo.uri!, config.mongo.db);
    built = await createServices(config, inventory, config.temporal.address!, pino({ level: 'silent' }));
    await built.services.keys.bootstrap(adminKey, new Date());
    app = createApp(built.services);
  });

  afterAll(async () => {
    await built?.close();
    await inventory?.close();
  });

  it('answers readiness from the real Temporal and MongoDB', async () => {
    const res = await call('GET', '/readyz', adminKey);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ checks: { temporal: { ok: true }, mongodb: { ok: true } } });
  });

  it('provisions a device, stores its data and shows it, through the services it built', async () => {
    const created = await call('POST', '/north/v1/devices', adminKey, { id: 'inproc-1' });
    expect(created.status).toBe(201);
    const deviceKey = created.body.apiKey as string;
    const stored = await call(
      'POST',
      '/south/v80/devices/inproc-1/collect/iot',
      deviceKey,
      collectBody([{ id: 'temperature', datapoints: [{ value: 21.5, at: 1_700_000_000_000 }] }]),
    );
    expect(stored.status).toBe(201);
    const view = await call('GET', '/north/v1/devices/inproc-1?twin=snapshot', adminKey);
    expect(view.status).toBe(200);
    expect(view.body.datastreams).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: 'temperature', value: 21.5 })]),
    );
  });

  it('maps an ingest refusal to its status: data for an unknown device is 404 and stores nothing', async () => {
    const res = await call(
      'POST',
      '/south/v80/devices/nobody/collect/iot',
      adminKey,
      collectBody([{ id: 'temperature', datapoints: [{ value: 1 }] }]),
    );
    expect(res.status).toBe(404);
    expect(res.body.error).toMatchObject({ code: 'NOT_FOUND', message: 'device nobody is not provisioned' });
  });
});
