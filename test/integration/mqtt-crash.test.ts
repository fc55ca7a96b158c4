// The process running the MQTT broker is SIGKILLed while devices publish with QoS 1, before its write-back has
// run. After it starts again, every message whose PUBACK a device received is stored, readable through the API
// (history and latest value) and, after a clean stop, written back into the history chunks and latest pages;
// redelivered duplicates are counted.
import type { MongoClient } from 'mongodb';
import mqtt, { type MqttClient } from 'mqtt';
import { getFreePort } from '../../worker/local-stack';
import { ingestDbName } from '../../inventory/inventory';
import {
  apiClient,
  eventually,
  mongoClient,
  startTwinflow,
  storedPoints,
  uniqueName,
  writtenBack,
} from './harness';

jest.setTimeout(180_000);

const DEVICES = 10;

const chunkCount = (mongo: MongoClient, db: string) =>
  mongo.db(db).collection('datapoints').countDocuments({ level: 0 });
const latestPageCount = (mongo: MongoClient, db: string) =>
  mongo.db(db).collection('latest').countDocuments({});

describe('MQTT ingest through a crash', () => {
  let mongo: MongoClient;
  beforeAll(async () => {
    mongo = await mongoClient();
  });
  afterAll(async () => {
    await mongo?.close();
  });

  it('keeps every acknowledged message across a SIGKILL', async () => {
    const db = uniqueName('mqcrash');
    const taskQueue = uniqueName('tq');
    const mqttPort = await getFreePort();
    // No write-back before the kill: what was acknowledged lives only in the commit log.
    // The same instance name before and after: a restart, which reads back its earlier start's commits at once.
    const env = {
      TWINFLOW_MQTT_PORT: String(mqttPort),
      TWINFLOW_WRITEBACK_HISTORY_MS: '600000',
      TWINFLOW_WRITEBACK_LATEST_MS: '600000',
      TWINFLOW_INSTANCE: uniqueName('broker'),
    };
    let tf = await startTwinflow({ db, taskQueue, env });
    const admin = () => apiClient(tf.baseUrl, tf.adminKey);
    const devices: { id: string; key: string }[] = [];
    const res = await admin().post('/north/v1/devices/bulk', {
      devices: Array.from({ length: DEVICES }, (_, i) => ({ id: `crash-${i}`, transport: { mqtt: true } })),
    });
    expect(res.body.created).toBe(DEVICES);
    for (const r of res.body.results as { id: string; apiKey: string }[])
      devices.push({ id: r.id, key: r.apiKey });

    const acked = new Set<string>();
    let sent = 0;
    let stop = false;
    const clients: MqttClient[] = devices.map((d) =>
      mqtt.connect(tf.mqttUrl, {
        username: d.id,
        password: d.key,
        clientId: `crash-client-${d.id}`,
        clean: false,
        reconnectPeriod: 200,
        connectTimeout: 5_000,
      }),
    );
    // Each device publishes its own sequence: `at` is the message number, so every message is one datapoint.
    const loops = clients.map(async (client, i) => {
      const id = devices[i]?.id as string;
      for (let seq = 1; !stop; seq++) {
        if (!client.connected) {
          await new Promise((r) => setTimeout(r, 50));
          seq -= 1;
          continue;
        }
        sent += 1;
        const body = {
          version: '1.0.0',
          datastreams: [{ id: 'seq', datapoints: [{ value: seq, at: seq }] }],
        };
        try {
          await client.publishAsync(`odm/iot/${id}`, JSON.stringify(body), { qos: 1 });
          acked.add(`${id}/${seq}`);
        } catch {
          // Not acknowledged (the connection went away): the device may resend it; no promise was made.
        }
      }
    });

    await eventually(async () => (acked.size >= 200 ? true : undefined), 30_000);
    await tf.kill();
    expect(await chunkCount(mongo, db)).toBe(0);
    expect(await latestPageCount(mongo, db)).toBe(0);
    const ackedAtKill = acked.size;
    // Restart only once every client has noticed the broker is gone, so each really reconnects.
    await eventually(async () => (clients.every((c) => !c.connected) ? true : undefined));
    tf = await startTwinflow({ db, taskQueue, env, adminKey: tf.adminKey });
    // Devices reconnect on their own and go on.
    await eventually(async () => (acked.size >= ackedAtKill + 200 ? true : undefined), 60_000);
    stop = true;
    await Promise.all(loops);
    await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)));

    const docs = await storedPoints(mongo, db);
    const storedKeys = new Set(docs.map((d) => `${d.deviceId}/${d.at}`));
    const missing = [...acked].filter((k) => !storedKeys.has(k));
    const duplicates = docs.length - storedKeys.size;
    console.log(
      `MQTT crash run: ${sent} published, ${acked.size} acknowledged (${ackedAtKill} before the kill), ${storedKeys.size} stored, ${duplicates} duplicates from redelivery`,
    );
    expect(missing).toEqual([]);
    // The newest stored message of each device (acknowledged or not: it may have been stored just before
    // the kill) is its latest value.
    const newest = new Map<string, number>();
    for (const d of docs) newest.set(d.deviceId, Math.max(newest.get(d.deviceId) ?? 0, d.at));

    // Through the API, before any write-back: the restarted process read the commits back.
    for (const { id } of devices) {
      const view = (await admin().get(`/north/v1/devices/${id}`)).body;
      expect(view.datastreams).toEqual([expect.objectContaining({ id: 'seq', value: newest.get(id) })]);
      const history = await admin().get(`/north/v1/devices/${id}/datastreams/seq/datapoints?limit=10000`);
      const ats = new Set((history.body.datapoints as { at: number }[]).map((p) => p.at));
      expect([...acked].filter((k) => k.startsWith(`${id}/`) && !ats.has(Number(k.split('/')[1])))).toEqual(
        [],
      );
    }

    // A clean stop writes everything back: the chunks and latest pages alone now hold it all.
    expect(await tf.stop()).toBe(0);
    expect(await mongo.db(ingestDbName(db)).collection('ingest_commits').countDocuments({})).toBe(0);
    const chunked = new Set((await storedPoints(mongo, db)).map((d) => `${d.deviceId}/${d.at}`));
    expect([...acked].filter((k) => !chunked.has(k))).toEqual([]);
    const pages = await mongo
      .db(db)
      .collection<{ devices: Record<string, { values: Record<string, { value: unknown }> }> }>('latest')
      .find({})
      .toArray();
    const latestStored = new Map(
      pages.flatMap((p) => Object.entries(p.devices).map(([id, e]) => [id, e.values['seq|default']?.value])),
    );
    for (const { id } of devices) expect(latestStored.get(id)).toBe(newest.get(id));
  });

  it("leaves a live process's commits to it, and adopts a killed one's once its lease runs out", async () => {
    const db = uniqueName('adopt');
    const commits = () => mongo.db(ingestDbName(db)).collection<{ _id: string }>('ingest_commits');
    // No write-back in the first process: what it acknowledges stays in its commits.
    const quiet = { TWINFLOW_WRITEBACK_HISTORY_MS: '600000', TWINFLOW_WRITEBACK_LATEST_MS: '600000' };
    const lease = { TWINFLOW_INGEST_LEASE_MS: '3000' };
    const a = await startTwinflow({ db, env: { ...quiet, ...lease, TWINFLOW_INSTANCE: 'ingest-a' } });
    const admin = apiClient(a.baseUrl, a.adminKey);
    const created = await admin.post('/north/v1/devices', { id: 'adopted-1' });
    const device = apiClient(a.baseUrl, created.body.apiKey);
    for (let i = 1; i <= 5; i++) {
      const res = await device.post('/south/v80/devices/adopted-1/collect/iot', {
        version: '1.0.0',
        datastreams: [{ id: 'seq', datapoints: [{ value: i, at: 1_700_000_000_000 + i }] }],
      });
      expect(res.status).toBe(201);
    }
    const ofA = await commits().find({}).toArray();
    expect(ofA.length).toBeGreaterThan(0);
    expect(ofA.every((c) => c._id.startsWith('ingest-a/'))).toBe(true);

    // A second process on the same store, started while the first beats, takes none of its commits.
    const b = await startTwinflow({
      db,
      roles: 'api',
      taskQueue: a.env.TWINFLOW_TASK_QUEUE,
      adminKey: a.adminKey,
      env: { ...lease, TWINFLOW_INSTANCE: 'ingest-b', TWINFLOW_WRITEBACK_HISTORY_MS: '200' },
    });
    const adopted = async () => {
      const page = await (await fetch(`${b.baseUrl}/metrics`)).text();
      return Number(/^twinflow_ingest_adopted_commits_total (\d+)/m.exec(page)?.[1] ?? NaN);
    };
    await new Promise((r) => setTimeout(r, 4_000));
    expect(await adopted()).toBe(0);
    expect(await commits().countDocuments({})).toBe(ofA.length);

    // Killed, it beats no more: after the lease, the second process adopts its commits and writes them back.
    await a.kill();
    await eventually(async () => ((await adopted()) === ofA.length ? true : undefined), 30_000);
    await eventually(async () => ((await commits().countDocuments({})) === 0 ? true : undefined), 30_000);
    expect(await b.stop()).toBe(0);
    const points = await storedPoints(mongo, db, { deviceId: 'adopted-1' });
    // Every point once: adopted by one process only, written back once.
    expect(points.map((p) => p.at).sort()).toEqual([1, 2, 3, 4, 5].map((i) => 1_700_000_000_000 + i));
    const owners = mongo.db(ingestDbName(db)).collection<{ _id: string }>('ingest_owners');
    expect(await owners.countDocuments({ _id: 'ingest-a' })).toBe(0);
  });
  it('moves the commit log an earlier release kept in the inventory database, and writes it back', async () => {
    const db = uniqueName('legacy');
    let tf = await startTwinflow({ db });
    const created = await apiClient(tf.baseUrl, tf.adminKey).post('/north/v1/devices', { id: 'legacy-1' });
    expect(created.status).toBe(201);
    const doc = await mongo
      .db(db)
      .collection<{ id: string; org: string }>('devices')
      .findOne({ id: 'legacy-1' });
    const org = doc!.org;
    expect(await tf.stop()).toBe(0);

    // What an earlier release left behind when it was killed: commits in the inventory's own database (one in
    // the plain JSON of older commits), and its owner record, silent since long ago.
    const at = (i: number) => 1_700_000_000_000 + i;
    const point = (i: number) => ({
      org,
      deviceId: 'legacy-1',
      ds: 'seq',
      feed: 'default',
      at: at(i),
      value: i,
      receivedAt: at(i),
    });
    const legacy = mongo.db(db);
    await legacy
      .collection<{ _id: string }>('ingest_owners')
      .insertOne({ _id: 'old-release', incarnation: 'a1b2c3d4', heartbeatAt: 1 } as never);
    await legacy.collection<{ _id: string }>('ingest_commits').insertMany([
      { _id: 'old-release/a1b2c3d4/00000000', at: at(2), points: JSON.stringify([point(1), point(2)]) },
      { _id: 'old-release/a1b2c3d4/00000001', at: at(3), points: JSON.stringify([point(3)]) },
    ] as never[]);

    tf = await startTwinflow({ db, adminKey: tf.adminKey, env: { TWINFLOW_WRITEBACK_HISTORY_MS: '200' } });
    try {
      await writtenBack(mongo, db);
      expect(await legacy.collection('ingest_commits').countDocuments({})).toBe(0);
      expect(await legacy.collection('ingest_owners').countDocuments({})).toBe(0);
      const points = await storedPoints(mongo, db, { deviceId: 'legacy-1' });
      expect(points.map((p) => p.at).sort()).toEqual([1, 2, 3].map(at));
      const read = await apiClient(tf.baseUrl, tf.adminKey).get(
        `/north/v1/devices/legacy-1/datastreams/seq/datapoints?from=${at(0)}&to=${at(9)}`,
      );
      expect(read.status).toBe(200);
      expect(read.body.datapoints.map((p: { value: number }) => p.value)).toEqual([3, 2, 1]);
    } finally {
      expect(await tf.stop()).toBe(0);
    }
  });
});
