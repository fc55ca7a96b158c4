// A job survives its worker: SIGKILLed mid-rollout and started again, it finishes with each device targeted once.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { type DeviceEmulator, startDeviceEmulator } from '../../emulator/device-emulator';
import { getFreePort } from '../../worker/local-stack';
import { isAlive } from '../../worker/tools';
import { type ApiClient, apiClient, eventually, mongoClient, startTwinflow, uniqueName } from './harness';

/** Provisions synchronous devices played by the emulator. */
async function syncFleet(admin: ApiClient, emulator: DeviceEmulator, ids: string[]): Promise<void> {
  const res = await admin.post('/north/v1/devices/bulk', {
    devices: ids.map((id) => ({ id, transport: { http: { operationUrl: emulator.operationUrl(id) } } })),
  });
  expect(res.status).toBe(200);
  for (const [k, r] of (res.body.results as { apiKey: string }[]).entries())
    emulator.addDevice({ id: ids[k]!, apiKey: r.apiKey, behavior: { kind: 'sync', delayMs: 100 } });
}

const DEVICES = 200;

describe('a job when its worker is killed', () => {
  it('finishes after a SIGKILL mid-rollout with one operation per device', async () => {
    const db = uniqueName('jobcrash');
    const taskQueue = uniqueName('tq');
    const api = await startTwinflow({ roles: 'api', db, taskQueue });
    let worker = await startTwinflow({ roles: 'worker', db, taskQueue, adminKey: api.adminKey });
    const emulator = await startDeviceEmulator({ twinflowUrl: api.baseUrl });
    const mongo = await mongoClient();
    try {
      const admin = apiClient(api.baseUrl, api.adminKey);
      const ids = Array.from({ length: DEVICES }, (_, i) => `crash-${String(i).padStart(4, '0')}`);
      const res = await admin.post('/north/v1/devices/bulk', {
        devices: ids.map((id) => ({ id, transport: { http: { operationUrl: emulator.operationUrl(id) } } })),
      });
      expect(res.status).toBe(200);
      for (const [k, r] of (res.body.results as { apiKey: string }[]).entries())
        emulator.addDevice({ id: ids[k]!, apiKey: r.apiKey, behavior: { kind: 'sync', delayMs: 100 } });

      const created = await admin.post('/north/v1/jobs', {
        operation: { name: 'REBOOT_EQUIPMENT' },
        target: { deviceIds: ids },
        rollout: { maxInFlight: 10 },
        pollMs: 200,
      });
      expect(created.status).toBe(202);
      const jobId = created.body.id as string;
      const successful = async () =>
        (await admin.get(`/north/v1/jobs/${jobId}`)).body.counts?.SUCCESSFUL ?? 0;
      await eventually(async () => ((await successful()) >= 30 ? true : undefined), 60_000, 100);
      await worker.kill();
      const atKill = await successful();
      expect(atKill).toBeLessThan(DEVICES);
      worker = await startTwinflow({ roles: 'worker', db, taskQueue, adminKey: api.adminKey });

      const done = await eventually(
        async () => {
          const view = (await admin.get(`/north/v1/jobs/${jobId}`)).body;
          return view.status === 'COMPLETED' ? view : undefined;
        },
        180_000,
        500,
      );
      expect(done.counts).toMatchObject({ SUCCESSFUL: DEVICES, PENDING: 0, STARTED: 0 });
      // One operation per device: every request a device received carries the same operation id, and the store
      // holds exactly one operation of each device.
      for (const id of ids) {
        const got = emulator.received(id);
        expect(got.length).toBeGreaterThanOrEqual(1);
        expect(new Set(got.map((r) => r.operationId)).size).toBe(1);
      }
      const perDevice = await mongo
        .db(db)
        .collection('operations')
        .aggregate([{ $group: { _id: '$deviceId', n: { $sum: 1 } } }])
        .toArray();
      expect(perDevice).toHaveLength(DEVICES);
      expect(perDevice.every((d) => d.n === 1)).toBe(true);
      const pushes = ids.reduce((n, id) => n + emulator.received(id).length, 0);
      console.log(
        `job crash test: ${atKill} successful at the kill; ${pushes} pushes for ${DEVICES} devices`,
      );
    } finally {
      await emulator.close();
      await mongo.close();
      await worker.stop();
      await api.stop();
    }
  }, 300_000);
});

describe('a job when the Temporal server dies', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-jobstack-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('finishes after the server and TwinFlow are killed mid-rollout, one operation per device', async () => {
    const mongoPort = await getFreePort();
    const env = {
      TWINFLOW_DATA_DIR: dataDir,
      TWINFLOW_TEMPORAL_PORT: String(await getFreePort()),
      TWINFLOW_MONGODB_PORT: String(mongoPort),
      TWINFLOW_TEMPORAL_UI: 'off',
    };
    const adminKey = 'jobstack-admin-key-0123456789';
    const start = () =>
      startTwinflow({ embedded: true, env, adminKey, db: 'twinflow', taskQueue: 'twinflow' });
    let tf = await start();
    const emulator = await startDeviceEmulator({ twinflowUrl: tf.baseUrl });
    const devices = 100;
    try {
      let admin = apiClient(tf.baseUrl, adminKey);
      const ids = Array.from({ length: devices }, (_, i) => `srv-${String(i).padStart(4, '0')}`);
      await syncFleet(admin, emulator, ids);
      const created = await admin.post('/north/v1/jobs', {
        operation: { name: 'REBOOT_EQUIPMENT' },
        target: { deviceIds: ids },
        rollout: { maxInFlight: 5 },
        pollMs: 200,
      });
      expect(created.status).toBe(202);
      const jobId = created.body.id as string;
      await eventually(
        async () =>
          ((await admin.get(`/north/v1/jobs/${jobId}`)).body.counts?.SUCCESSFUL ?? 0) >= 10
            ? true
            : undefined,
        60_000,
        100,
      );
      const temporalPid = readdirSync(path.join(dataDir, 'run'))
        .filter((f) => f.startsWith('temporal') && f.endsWith('.pid'))
        .map((f) => Number(readFileSync(path.join(dataDir, 'run', f), 'utf8')))[0];
      expect(temporalPid).toBeGreaterThan(0);
      process.kill(temporalPid!, 'SIGKILL');
      await eventually(async () => (isAlive(temporalPid!) ? undefined : true));
      await tf.kill();
      tf = await start();
      admin = apiClient(tf.baseUrl, adminKey);
      const done = await eventually(
        async () => {
          const view = (await admin.get(`/north/v1/jobs/${jobId}`)).body;
          return view.status === 'COMPLETED' ? view : undefined;
        },
        180_000,
        500,
      );
      expect(done.counts).toMatchObject({ SUCCESSFUL: devices, PENDING: 0, STARTED: 0 });
      for (const id of ids) expect(new Set(emulator.received(id).map((r) => r.operationId)).size).toBe(1);
      const mongo = await MongoClient.connect(`mongodb://127.0.0.1:${mongoPort}/`);
      try {
        const perDevice = await mongo
          .db('twinflow')
          .collection('operations')
          .aggregate([{ $group: { _id: '$deviceId', n: { $sum: 1 } } }])
          .toArray();
        expect(perDevice).toHaveLength(devices);
        expect(perDevice.every((d) => d.n === 1)).toBe(true);
      } finally {
        await mongo.close();
      }
    } finally {
      await emulator.close();
      if (process.env.TWINFLOW_IT_SHOW_OUTPUT) console.log(tf.output());
      expect(await tf.stop()).toBe(0);
    }
  }, 300_000);
});
