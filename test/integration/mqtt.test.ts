// MQTT devices against the embedded broker with real MQTT clients: data acknowledged only once stored,
// credentials and topic rights, operations over MQTT (live and waiting for a connection), revocation,
// and two organizations' devices with the same id kept apart.
import type { MongoClient } from 'mongodb';
import mqtt, { type MqttClient } from 'mqtt';
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

const clients: MqttClient[] = [];

/** Connects as a device; resolves once connected, rejects with the broker's refusal. */
function connect(
  url: string,
  username: string,
  password: string,
  clientId = uniqueName('c'),
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      username,
      password,
      clientId,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    clients.push(client);
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

const publish = (client: MqttClient, topic: string, payload: unknown) =>
  client.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });

const collect = (value: number, at = Date.now()) => ({
  version: '1.0.0',
  datastreams: [{ id: 'temperature', datapoints: [{ value, at }] }],
});

/** Collects messages on one topic. */
function inbox(client: MqttClient, topic: string): { messages: { topic: string; body: any }[] } {
  const box = { messages: [] as { topic: string; body: any }[] };
  client.on('message', (t, payload) => {
    if (t === topic) box.messages.push({ topic: t, body: JSON.parse(payload.toString()) });
  });
  return box;
}

describe('MQTT devices', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let mongo: MongoClient;
  const provision = async (
    id: string,
    transport: Record<string, unknown> = { mqtt: true },
    client = admin,
  ) => {
    const res = await client.post('/north/v1/devices', { id, transport });
    expect(res.status).toBe(201);
    return res.body.apiKey as string;
  };
  const stored = (deviceId: string) =>
    storedPoints(mongo, tf.env.MONGODB_DB as string, { deviceId }).then((points) => points.length);

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    mongo = await mongoClient();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  });

  afterAll(async () => {
    await mongo?.close();
    await tf?.stop();
  });

  it('stores data before acknowledging it, and shows it in the API', async () => {
    const key = await provision('mq-data');
    const device = await connect(tf.mqttUrl, 'mq-data', key);
    for (let i = 0; i < 5; i++)
      await publish(device, 'odm/iot/mq-data', collect(20 + i, 1_700_000_000_000 + i));
    // Every PUBACK has come back: all five are stored already, no waiting.
    expect(await stored('mq-data')).toBe(5);
    const view = await admin.get('/north/v1/devices/mq-data');
    expect(view.body.datastreams).toEqual([
      { id: 'temperature', feed: 'default', value: 24, at: 1_700_000_000_004 },
    ]);
    // The twin heard of it, over MQTT.
    const live = await eventually(async () => {
      const v = await admin.get('/north/v1/devices/mq-data');
      return v.body.twin?.connectivity?.channel === 'mqtt' ? v.body.twin : undefined;
    });
    expect(live.connectivity.channel).toBe('mqtt');
  });

  it('refuses wrong credentials', async () => {
    const key = await provision('mq-creds');
    const other = await provision('mq-creds-other');
    await expect(connect(tf.mqttUrl, 'mq-creds', 'tfk_00000000_' + 'A'.repeat(43))).rejects.toThrow(
      /Bad username or password/i,
    );
    await expect(connect(tf.mqttUrl, 'mq-creds', other)).rejects.toThrow(/Bad username or password/i);
    await expect(connect(tf.mqttUrl, 'nobody', key)).rejects.toThrow(/Bad username or password/i);
    await expect(connect(tf.mqttUrl, 'mq-creds', tf.adminKey)).rejects.toThrow(/Bad username or password/i);
    expect((await connect(tf.mqttUrl, 'mq-creds', key)).connected).toBe(true);
  });

  it("refuses another device's topics: publishing closes the connection, subscribing is refused", async () => {
    const key = await provision('mq-topics');
    await provision('mq-topics-victim');
    const device = await connect(tf.mqttUrl, 'mq-topics', key);
    // Each refused in its SUBACK (0x80), the device's own granted.
    for (const topic of ['odm/request/mq-topics-victim', 'odm/request/#', 'odm/iot/mq-topics']) {
      await expect(device.subscribeAsync(topic, { qos: 1 })).rejects.toThrow(/Subscribe error/);
    }
    expect((await device.subscribeAsync('odm/request/mq-topics', { qos: 1 })).map((g) => g.qos)).toEqual([1]);

    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    device.publish('odm/iot/mq-topics-victim', JSON.stringify(collect(1)), { qos: 1 });
    await closed;
    expect(await stored('mq-topics-victim')).toBe(0);
  });

  it('acknowledges a malformed message without storing it, and keeps the connection', async () => {
    const key = await provision('mq-bad');
    const device = await connect(tf.mqttUrl, 'mq-bad', key);
    await publish(device, 'odm/iot/mq-bad', '{not json');
    await publish(device, 'odm/iot/mq-bad', { datastreams: 'nope' });
    expect(device.connected).toBe(true);
    await publish(device, 'odm/iot/mq-bad', collect(7));
    expect(await stored('mq-bad')).toBe(1);
  });

  it('runs an operation over MQTT: request on odm/request, partial and final responses on odm/response', async () => {
    const key = await provision('mq-op');
    const device = await connect(tf.mqttUrl, 'mq-op', key);
    const box = inbox(device, 'odm/request/mq-op');
    await device.subscribeAsync('odm/request/mq-op', { qos: 1 });

    const created = await admin.post('/north/v1/devices/mq-op/operations', {
      name: 'REBOOT_EQUIPMENT',
      parameters: { type: 'SOFTWARE' },
    });
    expect(created.status).toBe(202);
    const request = await eventually(async () => box.messages[0]);
    expect(request.body.operation.request).toMatchObject({
      id: created.body.id,
      name: 'REBOOT_EQUIPMENT',
      deviceId: 'mq-op',
    });

    const id = created.body.id as string;
    await publish(device, 'odm/response/mq-op', {
      version: '8.0',
      operation: {
        response: {
          id,
          name: 'REBOOT_EQUIPMENT',
          steps: [{ name: 'REBOOT', result: 'SUCCESSFUL', timestamp: Date.now() }],
        },
      },
    });
    await publish(device, 'odm/response/mq-op', {
      version: '8.0',
      operation: {
        response: { id, name: 'REBOOT_EQUIPMENT', resultCode: 'SUCCESSFUL', resultDescription: 'rebooted' },
      },
    });
    const final = await admin.get(`/north/v1/operations/${id}?waitMs=10000`);
    expect(final.body).toMatchObject({ status: 'SUCCESSFUL', resultCode: 'SUCCESSFUL' });
    expect(final.body.steps.map((s: { name: string }) => s.name)).toContain('REBOOT');
  });

  it("sends a job's operation to a listening device at once, and the job ends with its answer", async () => {
    const key = await provision('mq-job');
    const device = await connect(tf.mqttUrl, 'mq-job', key);
    const box = inbox(device, 'odm/request/mq-job');
    await device.subscribeAsync('odm/request/mq-job', { qos: 1 });

    const created = await admin.post('/north/v1/jobs', {
      operation: { name: 'REFRESH_INFO' },
      target: { deviceIds: ['mq-job'] },
      pollMs: 200,
    });
    expect(created.status).toBe(202);
    // The job runs in the worker: its request goes out on the listening connection, with no resubscribe.
    const request = await eventually(async () => box.messages[0], 15_000);
    expect(request.body.operation.request).toMatchObject({ name: 'REFRESH_INFO', deviceId: 'mq-job' });
    await publish(device, 'odm/response/mq-job', {
      version: '8.0',
      operation: {
        response: {
          id: request.body.operation.request.id,
          name: 'REFRESH_INFO',
          resultCode: 'SUCCESSFUL',
        },
      },
    });
    const ended = await eventually(async () => {
      const res = await admin.get(`/north/v1/jobs/${created.body.id}`);
      return res.body.status === 'COMPLETED' ? res.body : undefined;
    }, 30_000);
    expect(ended.counts).toMatchObject({ SUCCESSFUL: 1 });
    expect(box.messages).toHaveLength(1);
  });

  it('holds operations for a device that is not connected, and sends them when it subscribes', async () => {
    const key = await provision('mq-offline');
    const first = await admin.post('/north/v1/devices/mq-offline/operations', { name: 'REFRESH_INFO' });
    const second = await admin.post('/north/v1/devices/mq-offline/operations', {
      name: 'REBOOT_EQUIPMENT',
      parameters: { type: 'HARDWARE' },
    });
    expect([first.body.status, second.body.status]).toEqual([
      'WAITING_FOR_CONNECTION',
      'WAITING_FOR_CONNECTION',
    ]);

    const device = await connect(tf.mqttUrl, 'mq-offline', key);
    const box = inbox(device, 'odm/request/mq-offline');
    await device.subscribeAsync('odm/request/mq-offline', { qos: 1 });
    await eventually(async () => (box.messages.length === 2 ? true : undefined));
    expect(box.messages.map((m) => m.body.operation.request.id)).toEqual([first.body.id, second.body.id]);
    for (const m of box.messages) {
      const { id, name } = m.body.operation.request;
      await publish(device, 'odm/response/mq-offline', {
        operation: { response: { id, name, resultCode: 'SUCCESSFUL' } },
      });
    }
    for (const op of [first, second]) {
      expect((await admin.get(`/north/v1/operations/${op.body.id}?waitMs=10000`)).body.status).toBe(
        'SUCCESSFUL',
      );
    }
  });

  it('closes the connection of a revoked key at once, and refuses it after', async () => {
    const key = await provision('mq-revoke');
    const device = await connect(tf.mqttUrl, 'mq-revoke', key);
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    const keys = await admin.get('/north/v1/keys?kind=device&deviceId=mq-revoke');
    expect((await admin.delete(`/north/v1/keys/${keys.body.keys[0].keyId}`)).status).toBe(200);
    await closed;
    await expect(connect(tf.mqttUrl, 'mq-revoke', key)).rejects.toThrow(/Bad username or password/i);
  });

  describe('with a second API process on the same inventory', () => {
    let second: TwinflowProcess;
    const postCollect = (baseUrl: string, id: string, key: string, value: number) =>
      apiClient(baseUrl, key).post(`/south/v80/devices/${id}/collect/iot`, collect(value));
    /** Connects to the second process, proves the key works there, and lets its short trust run out. */
    const connectThere = async (id: string) => {
      const key = await provision(id);
      const device = await connect(second.mqttUrl, id, key);
      expect((await postCollect(second.baseUrl, id, key, 1)).status).toBe(201);
      // Past the 5 s a cached key is trusted on its own: the second process now trusts it through the feed.
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      expect((await postCollect(second.baseUrl, id, key, 2)).status).toBe(201);
      const closed = new Promise<number>((resolve) => device.once('close', () => resolve(Date.now())));
      return { key, closed };
    };

    beforeAll(async () => {
      second = await startTwinflow({
        roles: 'api',
        db: tf.env.MONGODB_DB,
        taskQueue: tf.env.TWINFLOW_TASK_QUEUE,
        adminKey: tf.adminKey,
      });
    });

    afterAll(async () => {
      await second?.stop();
    });

    it('closes there the connection of a key revoked here, and refuses the key there, within 5 s', async () => {
      const { key, closed } = await connectThere('mq-revoke-there');
      const keys = await admin.get('/north/v1/keys?kind=device&deviceId=mq-revoke-there');
      const revokedAt = Date.now();
      expect((await admin.delete(`/north/v1/keys/${keys.body.keys[0].keyId}`)).status).toBe(200);
      expect((await closed) - revokedAt).toBeLessThan(5_000);
      expect((await postCollect(second.baseUrl, 'mq-revoke-there', key, 3)).status).toBe(401);
      await expect(connect(second.mqttUrl, 'mq-revoke-there', key)).rejects.toThrow(
        /Bad username or password/i,
      );
    });

    it('refuses there the keys of a device set here to use certificates only, within 5 s', async () => {
      const { key, closed } = await connectThere('mq-policy-there');
      const changedAt = Date.now();
      const policy = await admin.request('PUT', '/north/v1/devices/mq-policy-there/credential-policy', {
        certificatesOnly: true,
      });
      expect(policy.status).toBe(200);
      expect((await closed) - changedAt).toBeLessThan(5_000);
      expect((await postCollect(second.baseUrl, 'mq-policy-there', key, 3)).status).toBe(401);
      await expect(connect(second.mqttUrl, 'mq-policy-there', key)).rejects.toThrow(
        /Bad username or password/i,
      );
      expect(await stored('mq-policy-there')).toBe(2);
    });
  });

  it("keeps two organizations' devices with the same id apart", async () => {
    const orgB = `mq-org-${Date.now().toString(36)}`;
    const created = await admin.post('/north/v1/organizations', {
      id: orgB,
      name: 'B',
      admin: { email: `admin@${orgB}.example`, password: 'a long enough password' },
    });
    expect(created.status).toBe(201);
    const login = await apiClient(tf.baseUrl).post('/north/v1/auth/login', {
      email: `admin@${orgB}.example`,
      password: 'a long enough password',
    });
    const adminB = apiClient(tf.baseUrl);
    const asB = {
      post: (p: string, b: unknown) =>
        adminB.post(p, b, { authorization: `Bearer ${login.body.accessToken}` }),
    } as unknown as ApiClient;
    const keyA = await provision('twin-name');
    const keyB = await provision('twin-name', { mqtt: true }, asB);
    const deviceA = await connect(tf.mqttUrl, 'twin-name', keyA);
    const deviceB = await connect(tf.mqttUrl, 'twin-name', keyB);
    const boxA = inbox(deviceA, 'odm/request/twin-name');
    const boxB = inbox(deviceB, 'odm/request/twin-name');
    await deviceA.subscribeAsync('odm/request/twin-name', { qos: 1 });
    await deviceB.subscribeAsync('odm/request/twin-name', { qos: 1 });

    const op = await admin.post('/north/v1/devices/twin-name/operations', { name: 'REFRESH_INFO' });
    await eventually(async () => boxA.messages[0]);
    await publish(deviceB, 'odm/iot/twin-name', collect(99));
    // B's data went to B's device record; A's request reached A alone.
    expect(boxA.messages.map((m) => m.body.operation.request.id)).toEqual([op.body.id]);
    expect(boxB.messages).toEqual([]);
    const points = await storedPoints(mongo, tf.env.MONGODB_DB as string, { deviceId: 'twin-name' });
    expect(points.map((p) => p.org)).toEqual([orgB]);
  });

  it('translates a vendor payload on a custom topic with a connector function, and refuses one nobody translates', async () => {
    const fn = await admin.post('/north/v1/functions', {
      name: 'mqtt-vendor',
      mode: 'PRODUCTION',
      source: `function transform(payload) {
        const parts = Object.fromEntries(String(payload).split(';').map((kv) => kv.split('=')));
        return [{ id: 'temperature', value: Number(parts.t) }, { id: 'humidity', value: Number(parts.h) }];
      }`,
      criteria: { mqttTopic: 'odm/iot/+/vendor' },
    });
    expect(fn.status).toBe(201);
    const key = await provision('mq-vendor');
    const device = await connect(tf.mqttUrl, 'mq-vendor', key);
    await publish(device, 'odm/iot/mq-vendor/vendor', 't=21.5;h=40');
    expect(await stored('mq-vendor')).toBe(2);
    const view = await admin.get('/north/v1/devices/mq-vendor');
    expect(view.body.datastreams.map((d: { id: string; value: unknown }) => [d.id, d.value])).toEqual([
      ['humidity', 40],
      ['temperature', 21.5],
    ]);
    // No function for this sub-topic: acknowledged, not stored.
    await publish(device, 'odm/iot/mq-vendor/other', 't=1;h=1');
    expect(await stored('mq-vendor')).toBe(2);
    expect(device.connected).toBe(true);
  });

  it('counts what came in, on GET /metrics', async () => {
    const scrape = async () => {
      const res = await fetch(`${tf.baseUrl}/metrics`);
      expect(res.status).toBe(200);
      return res.text();
    };
    const metric = (text: string, name: string) =>
      Number(new RegExp(`^${name} ([0-9.e+-]+)`, 'm').exec(text)?.[1] ?? NaN);
    // Latest values are written back in rounds (every TWINFLOW_WRITEBACK_LATEST_MS): wait for the first one.
    const text = await eventually(async () => {
      const t = await scrape();
      return metric(t, 'twinflow_ingest_latest_write_seconds_total') > 0 ? t : undefined;
    }, 20_000);
    const value = (name: string) => metric(text, name);
    expect(value('twinflow_mqtt_accepted_total')).toBeGreaterThan(5);
    expect(value('twinflow_mqtt_refused_logins_total')).toBeGreaterThanOrEqual(4);
    expect(value('twinflow_mqtt_rejected_total')).toBeGreaterThanOrEqual(2);
    expect(value('twinflow_ingest_messages_total')).toBeGreaterThan(5);
    expect(value('twinflow_ingest_writes_total')).toBeGreaterThan(0);
    expect(value('twinflow_ingest_history_write_seconds_total')).toBeGreaterThan(0);
    expect(value('twinflow_ingest_latest_write_seconds_total')).toBeGreaterThan(0);
    expect(value('twinflow_device_directory_lookups_total')).toBeGreaterThan(0);
    expect(value('twinflow_device_directory_entries')).toBeGreaterThan(0);
    expect(value('twinflow_pending_view_devices')).toBeGreaterThanOrEqual(0);
    expect(value('twinflow_twin_devices_pending')).toBeGreaterThanOrEqual(0);
  });
});
