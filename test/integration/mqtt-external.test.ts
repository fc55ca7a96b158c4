// TwinFlow against an external MQTT broker (a plain broker in a child process): data stored through the
// adapter, operations over MQTT, a persistent session that keeps what arrived while TwinFlow was down, and the
// HTTP hooks a broker calls to check device logins and topic rights.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { MongoClient } from 'mongodb';
import mqtt, { type MqttClient } from 'mqtt';
import { getFreePort } from '../../worker/local-stack';
import {
  type ApiClient,
  apiClient,
  eventually,
  mongoClient,
  startTwinflow,
  storedPoints,
  type TwinflowProcess,
  uniqueName,
} from './harness';

jest.setTimeout(120_000);

async function startBareBroker(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'support', 'bare-broker.ts'), String(port)],
    {
      cwd: path.resolve(__dirname, '..', '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the broker exited (${code})`)));
  });
  return child;
}

describe('an external MQTT broker', () => {
  let broker: ChildProcess;
  let brokerUrl: string;
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let mongo: MongoClient;
  let device: MqttClient;
  const db = uniqueName('mqext');
  const taskQueue = uniqueName('tq');
  const env = () => ({
    MQTT_URL: brokerUrl,
    TWINFLOW_MQTT_CLIENT_ID: `twinflow-${db}`,
    TWINFLOW_MQTT_SHARED: 'off',
  });
  const points = async () => (await storedPoints(mongo, db, { deviceId: 'ext-1' })).length;
  const collect = (value: number, at: number) =>
    JSON.stringify({ version: '1.0.0', datastreams: [{ id: 'temperature', datapoints: [{ value, at }] }] });

  beforeAll(async () => {
    const port = await getFreePort();
    brokerUrl = `mqtt://127.0.0.1:${port}`;
    broker = await startBareBroker(port);
    tf = await startTwinflow({ db, taskQueue, env: env() });
    admin = apiClient(tf.baseUrl, tf.adminKey);
    mongo = await mongoClient();
    expect((await admin.post('/north/v1/devices', { id: 'ext-1', transport: { mqtt: true } })).status).toBe(
      201,
    );
    device = mqtt.connect(brokerUrl, { clientId: 'ext-1', clean: false, reconnectPeriod: 200 });
    await new Promise((r) => device.once('connect', r));
    await device.subscribeAsync('odm/request/ext-1', { qos: 1 });
  });

  afterAll(async () => {
    await device?.endAsync(true);
    await mongo?.close();
    await tf?.stop();
    broker?.kill('SIGTERM');
  });

  it('stores what devices publish through the adapter', async () => {
    await device.publishAsync('odm/iot/ext-1', collect(21, 1_700_000_000_000), { qos: 1 });
    expect(await eventually(async () => ((await points()) === 1 ? 1 : undefined))).toBe(1);
  });

  it('sends operations over the broker and takes the answers', async () => {
    const requests: any[] = [];
    device.on('message', (topic, payload) => {
      if (topic === 'odm/request/ext-1') requests.push(JSON.parse(payload.toString()));
    });
    const op = await admin.post('/north/v1/devices/ext-1/operations', { name: 'REFRESH_INFO' });
    const request = await eventually(async () => requests[0]);
    expect(request.operation.request).toMatchObject({ id: op.body.id, name: 'REFRESH_INFO' });
    await device.publishAsync(
      'odm/response/ext-1',
      JSON.stringify({
        operation: { response: { id: op.body.id, name: 'REFRESH_INFO', resultCode: 'SUCCESSFUL' } },
      }),
      { qos: 1 },
    );
    expect((await admin.get(`/north/v1/operations/${op.body.id}?waitMs=10000`)).body.status).toBe(
      'SUCCESSFUL',
    );
  });

  it('resumes its session after a SIGKILL: what arrived meanwhile is stored', async () => {
    const before = await points();
    await tf.kill();
    for (let i = 0; i < 20; i++)
      await device.publishAsync('odm/iot/ext-1', collect(i, 1_700_000_100_000 + i), { qos: 1 });
    tf = await startTwinflow({ db, taskQueue, env: env(), adminKey: tf.adminKey });
    admin = apiClient(tf.baseUrl, tf.adminKey);
    expect(
      await eventually(async () => ((await points()) >= before + 20 ? await points() : undefined), 30_000),
    ).toBe(before + 20);
  });

  it('answers the broker hooks for logins and topic rights', async () => {
    const created = await admin.post('/north/v1/devices', { id: 'ext-2', transport: { mqtt: true } });
    const hooks = apiClient(tf.baseUrl);
    const auth = (username: string, password: string) =>
      hooks.post('/south/v80/mqtt/auth', { username, password }).then((r) => r.body.result);
    const acl = (username: string, topic: string, action: string) =>
      hooks.post('/south/v80/mqtt/acl', { username, topic, action }).then((r) => r.body.result);
    expect(await auth('ext-2', created.body.apiKey)).toBe('allow');
    expect(await auth('ext-1', created.body.apiKey)).toBe('deny');
    expect(await auth('ext-2', `tfk_00000000_${'A'.repeat(43)}`)).toBe('deny');
    expect(await auth('ext-2', tf.adminKey)).toBe('deny');
    expect(await acl('ext-2', 'odm/iot/ext-2', 'publish')).toBe('allow');
    expect(await acl('ext-2', 'odm/response/ext-2', 'publish')).toBe('allow');
    expect(await acl('ext-2', 'odm/iot/ext-1', 'publish')).toBe('deny');
    expect(await acl('ext-2', 'odm/request/ext-2', 'subscribe')).toBe('allow');
    expect(await acl('ext-2', 'odm/request/#', 'subscribe')).toBe('deny');
    expect(await acl('ext-2', 'odm/request/ext-2', 'publish')).toBe('deny');
    expect(
      (await hooks.post('/south/v80/mqtt/acl', { username: 'x', topic: 't', action: 'delete' })).status,
    ).toBe(400);
  });
});
