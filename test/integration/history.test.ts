// Datapoint history through the real API: ranges, limits, time buckets, bad queries, tenancy, and retention.
import { EventRepository } from '../../inventory/events.repo';
import { openInventory } from '../../inventory/inventory';
import type { MongoClient } from 'mongodb';
import { retentionScheduleId } from '../../worker/retention-schedule';
import {
  type ApiClient,
  type TwinflowProcess,
  apiClient,
  collectBody,
  eventually,
  itEnv,
  mongoClient,
  startTwinflow,
  temporalClient,
  writtenBack,
} from './harness';

const T0 = 1_700_000_000_000; // an exact minute
const MIN = 60_000;
const HOUR = 3_600_000;

describe('datapoint history', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let device: ApiClient;
  let mongo: MongoClient;
  const history = (query: string, id = 'probe', ds = 'temp') =>
    admin.get(`/north/v1/devices/${id}/datastreams/${encodeURIComponent(ds)}/datapoints${query}`);

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    mongo = await mongoClient();
    const created = await admin.post('/north/v1/devices', { id: 'probe' });
    device = apiClient(tf.baseUrl, created.body.apiKey);
    // temp: one value a minute for three hours (across hour chunks), written in two messages per hour.
    for (let h = 0; h < 3; h++) {
      for (const half of [0, 1]) {
        const points = Array.from({ length: 30 }, (_, i) => {
          const m = h * 60 + half * 30 + i;
          return { value: m, at: T0 + m * MIN };
        });
        const res = await device.post(
          '/south/v80/devices/probe/collect/iot',
          collectBody([{ id: 'temp', datapoints: points }]),
        );
        expect(res.status).toBe(201);
      }
    }
    const mixed = await device.post(
      '/south/v80/devices/probe/collect/iot',
      collectBody([
        {
          id: 'mixed.values/a',
          feed: 'f1',
          datapoints: [
            { value: 1, at: T0 },
            { value: 'on', at: T0 + 1 },
            { value: { 'odd.key': true }, at: T0 + 2 },
            { value: 5, at: T0 + MIN },
          ],
        },
        { id: 'mixed.values/a', feed: 'f2', datapoints: [{ value: 3, at: T0 + 3 }] },
      ]),
    );
    expect(mixed.status).toBe(201);
  });

  afterAll(async () => {
    await mongo?.close();
    await tf?.stop();
  });

  it('answers a range newest first, with both ends included, across hours and messages', async () => {
    const res = await history(`?from=${T0 + 50 * MIN}&to=${T0 + 70 * MIN}`);
    expect(res.status).toBe(200);
    expect(res.body.datapoints.map((d: { value: number }) => d.value)).toEqual(
      Array.from({ length: 21 }, (_, i) => 70 - i),
    );
    expect(res.body.datapoints[0]).toEqual({ feed: 'default', value: 70, at: T0 + 70 * MIN });
  });

  it('keeps the newest points within the limit', async () => {
    const res = await history(`?limit=5`);
    expect(res.body.datapoints.map((d: { value: number }) => d.value)).toEqual([179, 178, 177, 176, 175]);
    const all = await history('?limit=10000');
    expect(all.body.datapoints).toHaveLength(180);
    expect((await history(`?from=${T0 + 181 * MIN}`)).body.datapoints).toEqual([]);
    expect((await history('', 'probe', 'never-written')).body.datapoints).toEqual([]);
  });

  it('keeps every feed and value as sent, including values with odd field names', async () => {
    const res = await history('', 'probe', 'mixed.values/a');
    expect(res.body.datapoints).toEqual([
      { feed: 'f1', value: 5, at: T0 + MIN },
      { feed: 'f2', value: 3, at: T0 + 3 },
      { feed: 'f1', value: { 'odd.key': true }, at: T0 + 2 },
      { feed: 'f1', value: 'on', at: T0 + 1 },
      { feed: 'f1', value: 1, at: T0 },
    ]);
  });

  it.each([
    ['avg', [14.5, 44.5]],
    ['min', [0, 30]],
    ['max', [29, 59]],
    ['sum', [435, 1335]],
    ['count', [30, 30]],
  ])('aggregates buckets with %s over [from, to)', async (agg, values) => {
    const res = await history(`?from=${T0}&to=${T0 + 60 * MIN}&bucket=30m&agg=${agg}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ from: T0, to: T0 + 60 * MIN, bucket: 30 * MIN, agg });
    expect(res.body.buckets).toEqual([
      { start: T0, end: T0 + 30 * MIN, value: values[0], count: 30 },
      { start: T0 + 30 * MIN, end: T0 + 60 * MIN, value: values[1], count: 30 },
    ]);
  });

  it('leaves out empty buckets, counts non-numbers only for count, and accepts milliseconds', async () => {
    const q = `?from=${T0}&to=${T0 + 3 * MIN}&bucket=${MIN}`;
    const avg = await history(`${q}&agg=avg`, 'probe', 'mixed.values/a');
    expect(avg.body.buckets).toEqual([
      { start: T0, end: T0 + MIN, value: 2, count: 2 },
      { start: T0 + MIN, end: T0 + 2 * MIN, value: 5, count: 1 },
    ]);
    const count = await history(`${q}&agg=count`, 'probe', 'mixed.values/a');
    expect(count.body.buckets.map((b: { value: number }) => b.value)).toEqual([4, 1]);
    const byDefault = await history(`?from=${T0 + 170 * MIN}&to=${T0 + 190 * MIN}&bucket=1h`);
    expect(byDefault.body).toMatchObject({ agg: 'avg', buckets: [{ value: 174.5, count: 10 }] });
  });

  it.each([
    ['an unknown parameter', '?foo=1'],
    ['a negative from', '?from=-1'],
    ['from after to', `?from=${T0 + 1}&to=${T0}`],
    ['a zero limit', '?limit=0'],
    ['a limit too high', '?limit=10001'],
    ['a bad bucket', '?from=0&to=1000&bucket=5w'],
    ['a zero bucket', '?from=0&to=1000&bucket=0'],
    ['an unknown agg', `?from=${T0}&to=${T0 + HOUR}&bucket=1m&agg=median`],
    ['agg without bucket', '?agg=avg'],
    ['limit with bucket', `?from=${T0}&to=${T0 + HOUR}&bucket=1m&limit=5`],
    ['too many buckets', `?from=0&to=${T0}&bucket=1s`],
    ['an empty bucket range', `?from=${T0}&to=${T0}&bucket=1s`],
  ])('refuses %s with 400', async (_what, query) => {
    const res = await history(query);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_ARGUMENT');
  });

  it('answers 404 for an unknown device and for another organization', async () => {
    expect((await history('', 'ghost')).status).toBe(404);
    const org = await admin.post('/north/v1/organizations', {
      id: 'history-other',
      name: 'Other',
      admin: { email: 'admin@history-other.example', password: 'a long enough passphrase' },
    });
    expect(org.status).toBe(201);
    const login = await apiClient(tf.baseUrl).post('/north/v1/auth/login', {
      email: 'admin@history-other.example',
      password: 'a long enough passphrase',
    });
    const other = apiClient(tf.baseUrl);
    const res = await other.get('/north/v1/devices/probe/datastreams/temp/datapoints', {
      authorization: `Bearer ${login.body.accessToken}`,
    });
    expect(res.status).toBe(404);
  });

  it('writes history back as chunks of one series hour, addressed by _id', async () => {
    await writtenBack(mongo, tf.env.MONGODB_DB as string);
    const db = mongo.db(tf.env.MONGODB_DB);
    const chunks = await db
      .collection<{ _id: string; start: number; end: number; points: { at: number }[] }>('datapoints')
      .find({ deviceId: 'probe', ds: 'temp', level: 0 })
      .toArray();
    // Six messages of 30 minutes each; T0 is not on the hour, so the three hours of data touch four hours.
    // The write-back writes one chunk per hour and write-back, so never more than one per message and hour.
    const hours = new Set(Array.from({ length: 180 }, (_, m) => Math.floor((T0 + m * MIN) / HOUR)));
    expect(new Set(chunks.map((c) => c.start / HOUR))).toEqual(hours);
    expect(chunks.length).toBeLessThanOrEqual(9);
    expect(chunks.flatMap((c) => c.points.map((p) => p.at)).sort()).toEqual(
      Array.from({ length: 180 }, (_, m) => T0 + m * MIN).sort(),
    );
    for (const c of chunks) {
      expect(c._id).toMatch(/^default\/probe\/temp\/h[0-9a-z]{8}\/[0-9a-z]{4}$/);
      expect(c.end - c.start).toBe(HOUR);
      expect(c.points.every((p) => p.at >= c.start && p.at < c.end)).toBe(true);
    }
  });
});

describe('datapoint retention', () => {
  it('runs on a Temporal Schedule that deletes old datapoints and keeps recent ones', async () => {
    const tf = await startTwinflow({
      env: { TWINFLOW_DATAPOINT_RETENTION_DAYS: '1', TWINFLOW_EVENT_RETENTION_DAYS: '1' },
    });
    const temporal = await temporalClient();
    const admin = apiClient(tf.baseUrl, tf.adminKey);
    const handle = temporal.client.schedule.getHandle(retentionScheduleId(tf.env.TWINFLOW_TASK_QUEUE!));
    try {
      const created = await admin.post('/north/v1/devices', { id: 'aging' });
      const device = apiClient(tf.baseUrl, created.body.apiKey);
      const now = Date.now();
      const old = [now - 5 * 86_400_000, now - 3 * 86_400_000];
      const res = await device.post(
        '/south/v80/devices/aging/collect/iot',
        collectBody([
          {
            id: 'level',
            datapoints: [...old.map((at) => ({ value: 'old', at })), { value: 'new', at: now }],
          },
        ]),
      );
      expect(res.status).toBe(201);
      const read = () => admin.get('/north/v1/devices/aging/datastreams/level/datapoints');
      expect((await read()).body.datapoints.map((d: { value: string }) => d.value)).toEqual([
        'new',
        'old',
        'old',
      ]);

      // Retention deletes stored history: wait for the write-back to store what was just sent.
      const mongo = await mongoClient();
      await writtenBack(mongo, tf.env.MONGODB_DB as string).finally(() => mongo.close());
      // An event logged two days ago goes; the device's provisioning stays.
      const inventory = await openInventory(itEnv('TWINFLOW_IT_MONGODB_URI'), tf.env.MONGODB_DB as string);
      const log = new EventRepository(inventory.collections);
      const org = (await admin.get('/north/v1/me')).body.org as string;
      await log.append(org, [
        { type: 'device.changed', deviceId: 'aging', at: now - 2 * 86_400_000, body: { old: true } },
      ]);
      const described = await handle.describe();
      expect(described.action).toMatchObject({
        type: 'startWorkflow',
        workflowType: 'retentionWorkflow',
        args: [{ retentionMs: 86_400_000, eventRetentionMs: 86_400_000 }],
      });
      expect(described.spec.intervals?.[0]?.every).toBe(3_600_000);
      await handle.trigger();
      const after = await eventually(async () => {
        const r = await read();
        return r.body.datapoints.length === 1 ? r.body.datapoints : undefined;
      }, 30_000);
      expect(after).toEqual([{ feed: 'default', value: 'new', at: now }]);
      const kept = await eventually(async () => {
        const items = (await admin.get('/north/v1/events?deviceId=aging')).body.items as { type: string }[];
        return items.length === 1 ? items : undefined;
      }, 30_000);
      expect(kept.map((e) => e.type)).toEqual(['device.provisioned']);
      await inventory.close();
      const runs = (await handle.describe()).info.recentActions;
      expect(runs.length).toBeGreaterThanOrEqual(1);

      // A restart updates the schedule in place; retention 0 removes it.
      await tf.stop();
      const again = await startTwinflow({
        db: tf.env.MONGODB_DB,
        taskQueue: tf.env.TWINFLOW_TASK_QUEUE,
        adminKey: tf.adminKey,
        env: { TWINFLOW_DATAPOINT_RETENTION_DAYS: '2', TWINFLOW_DATAPOINT_RETENTION_EVERY_S: '600' },
      });
      try {
        const updated = await handle.describe();
        expect(updated.spec.intervals?.[0]?.every).toBe(600_000);
        expect(updated.action).toMatchObject({ args: [{ retentionMs: 2 * 86_400_000 }] });
      } finally {
        await again.stop();
      }
      const off = await startTwinflow({
        db: tf.env.MONGODB_DB,
        taskQueue: tf.env.TWINFLOW_TASK_QUEUE,
        adminKey: tf.adminKey,
      });
      await off.stop();
      await expect(handle.describe()).rejects.toThrow();
    } finally {
      await tf.stop();
      await handle.delete().catch(() => undefined);
      await temporal.close();
    }
  });
});
