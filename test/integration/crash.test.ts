// Crashes and restarts: a worker killed with SIGKILL, and the whole embedded stack stopped, killed and started again.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getFreePort } from '../../worker/local-stack';
import { isAlive } from '../../worker/tools';
import { type ApiClient, apiClient, collectBody, eventually, startTwinflow, uniqueName } from './harness';

const deviceView = async (admin: ApiClient, id: string, status: number = 200) => {
  const res = await admin.get(`/north/v1/devices/${id}`);
  expect(res.status).toBe(status);
  return res.body;
};

describe('a worker killed with SIGKILL', () => {
  it('loses no twin state: data sent while it was down reaches the twin after the restart', async () => {
    const db = uniqueName('crash');
    const taskQueue = uniqueName('tq');
    const api = await startTwinflow({ roles: 'api', db, taskQueue });
    let worker = await startTwinflow({ roles: 'worker', db, taskQueue, adminKey: api.adminKey });
    try {
      const admin = apiClient(api.baseUrl, api.adminKey);
      const key = (await admin.post('/north/v1/devices', { id: 'pump-1', type: 'electricity-meter' })).body
        .apiKey;
      const device = apiClient(api.baseUrl, key);
      const send = (n: number) =>
        device.post(
          '/south/v80/devices/pump-1/collect/iot',
          collectBody([{ id: `reading-${n}`, datapoints: [{ value: n, at: 1_700_000_000_000 + n }] }]),
        );

      for (let n = 0; n < 5; n++) expect((await send(n)).status).toBe(201);
      // Lists read only the read model: wait until the twin's snapshot of all five is there.
      await eventually(async () => {
        const list = await admin.get('/north/v1/devices');
        return list.body.items[0]?.twin?.counters.datapoints === 5 ? true : undefined;
      });

      await worker.kill();
      // Data keep being accepted and stored while no worker runs; the API falls back to the snapshot.
      for (let n = 5; n < 10; n++) expect((await send(n)).status).toBe(201);
      const during = await deviceView(admin, 'pump-1');
      expect(during.datastreams).toHaveLength(10);
      expect(during.twin.source).toBe('snapshot');

      worker = await startTwinflow({ roles: 'worker', db, taskQueue, adminKey: api.adminKey });
      const after = await eventually(async () => {
        const view = await deviceView(admin, 'pump-1');
        return view.twin?.source === 'live' && view.twin.counters.datapoints === 10 ? view : undefined;
      }, 30_000);
      expect(after.twin.reported.map((r: { id: string }) => r.id).sort()).toEqual(
        Array.from({ length: 10 }, (_, n) => `reading-${n}`).sort(),
      );
      expect(after.twin.counters.batches).toBeGreaterThanOrEqual(2);
    } finally {
      await worker.stop();
      await api.stop();
    }
  });
});

describe('the embedded stack', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-stack-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps every twin and record across a clean restart and a SIGKILL', async () => {
    const env = {
      TWINFLOW_DATA_DIR: dataDir,
      TWINFLOW_TEMPORAL_PORT: String(await getFreePort()),
      TWINFLOW_MONGODB_PORT: String(await getFreePort()),
      TWINFLOW_TEMPORAL_UI: 'off',
      // No write-back while running: what a SIGKILL interrupts lives only in the ingest commit log.
      TWINFLOW_WRITEBACK_HISTORY_MS: '600000',
      TWINFLOW_WRITEBACK_LATEST_MS: '600000',
    };
    const adminKey = 'stack-admin-key-0123456789';
    let tf = await startTwinflow({ embedded: true, env, adminKey, db: 'twinflow', taskQueue: 'twinflow' });
    let admin = apiClient(tf.baseUrl, adminKey);
    const key = (await admin.post('/north/v1/devices', { id: 'kept', name: 'Kept' })).body.apiKey;
    expect(
      (
        await apiClient(tf.baseUrl, key).post(
          '/south/v80/devices/kept/collect/iot',
          collectBody([{ id: 'device.model', datapoints: [{ value: { name: 'M' } }] }]),
        )
      ).status,
    ).toBe(201);
    await eventually(async () =>
      (await deviceView(admin, 'kept')).twin?.counters.datapoints === 1 ? true : undefined,
    );

    // A clean stop ends every server it started.
    expect(await tf.stop()).toBe(0);
    const pidFiles = readdirSync(path.join(dataDir, 'run')).filter((f) => f.endsWith('.pid'));
    expect(pidFiles).toEqual([]);

    tf = await startTwinflow({ embedded: true, env, adminKey, db: 'twinflow', taskQueue: 'twinflow' });
    admin = apiClient(tf.baseUrl, adminKey);
    const restarted = await deviceView(admin, 'kept');
    expect(restarted.name).toBe('Kept');
    expect(restarted.datastreams).toEqual([
      expect.objectContaining({ id: 'device.model', value: { name: 'M' } }),
    ]);
    expect(restarted.twin).toMatchObject({
      source: 'live',
      counters: expect.objectContaining({ datapoints: 1 }),
    });

    // SIGKILL leaves the servers orphaned; the next start stops them and carries on with the same data.
    const orphanPids = readdirSync(path.join(dataDir, 'run'))
      .filter((f) => f.endsWith('.pid'))
      .map((f) => Number(require('node:fs').readFileSync(path.join(dataDir, 'run', f), 'utf8')));
    expect(orphanPids).toHaveLength(2);
    // Acknowledged just before the kill, never written back: read back from the commit log on restart.
    const sent = await apiClient(tf.baseUrl, key).post(
      '/south/v80/devices/kept/collect/iot',
      collectBody([{ id: 'pressure', datapoints: [{ value: 7, at: 1_700_000_000_000 }] }]),
    );
    expect(sent.status).toBe(201);
    await eventually(async () =>
      (await deviceView(admin, 'kept')).twin?.counters.datapoints === 2 ? true : undefined,
    );
    await tf.kill();
    expect(orphanPids.every(isAlive)).toBe(true);
    tf = await startTwinflow({ embedded: true, env, adminKey, db: 'twinflow', taskQueue: 'twinflow' });
    try {
      expect(orphanPids.some(isAlive)).toBe(false);
      admin = apiClient(tf.baseUrl, adminKey);
      expect(
        (
          await apiClient(tf.baseUrl, key).post(
            '/south/v80/devices/kept/collect/iot',
            collectBody([{ id: 'temperature', datapoints: [{ value: 3 }] }]),
          )
        ).status,
      ).toBe(201);
      const view = await eventually(async () => {
        const v = await deviceView(admin, 'kept');
        return v.twin?.counters.datapoints === 3 ? v : undefined;
      });
      expect(view.datastreams.map((d: { id: string }) => d.id)).toEqual([
        'device.model',
        'pressure',
        'temperature',
      ]);
      expect(view.datastreams[1]).toMatchObject({ value: 7, at: 1_700_000_000_000 });
      const history = await admin.get('/north/v1/devices/kept/datastreams/pressure/datapoints');
      expect(history.body.datapoints).toEqual([{ feed: 'default', value: 7, at: 1_700_000_000_000 }]);
    } finally {
      expect(await tf.stop()).toBe(0);
    }
  });
});
