// Operations survive crashes: a worker SIGKILLed in the middle of a multi-step operation, and the Temporal
// server killed while operations wait for a sleepy device.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDeviceEmulator } from '../../emulator/device-emulator';
import { getFreePort } from '../../worker/local-stack';
import { isAlive } from '../../worker/tools';
import { type ApiClient, apiClient, eventually, startTwinflow, uniqueName } from './harness';

const statusOf = async (admin: ApiClient, id: string) => (await admin.get(`/north/v1/operations/${id}`)).body;

describe('an operation when its worker is killed', () => {
  it('finishes exactly once with every step after a SIGKILL in the middle of a firmware update', async () => {
    const db = uniqueName('opcrash');
    const taskQueue = uniqueName('tq');
    const api = await startTwinflow({ roles: 'api', db, taskQueue });
    let worker = await startTwinflow({ roles: 'worker', db, taskQueue, adminKey: api.adminKey });
    const emulator = await startDeviceEmulator({ twinflowUrl: api.baseUrl });
    try {
      const admin = apiClient(api.baseUrl, api.adminKey);
      const created = await admin.post('/north/v1/devices', {
        id: 'meter-fw',
        type: 'electricity-meter',
        transport: { http: { operationUrl: emulator.operationUrl('meter-fw') } },
      });
      emulator.addDevice({
        id: 'meter-fw',
        apiKey: created.body.apiKey,
        behavior: { kind: 'firmware', intervalMs: 400 },
      });
      const op = await admin.post('/north/v1/devices/meter-fw/operations', {
        name: 'UPDATE',
        parameters: {
          deploymentElements: [
            { name: 'fw', version: '3.0.0', downloadUrl: 'https://fw.example.com/3.0.0.bin' },
          ],
        },
        timeoutMs: 60_000,
      });
      expect(op.status).toBe(202);
      // Kill the worker once the device has reported its first step.
      await eventually(async () =>
        (await statusOf(admin, op.body.id)).status === 'IN_PROGRESS' ? true : undefined,
      );
      const postedAtKill = emulator.stats().responsesPosted;
      await worker.kill();
      // The device goes on reporting while no worker runs; the API still takes its responses.
      await eventually(async () => (emulator.stats().responsesPosted > postedAtKill ? true : undefined));
      worker = await startTwinflow({ roles: 'worker', db, taskQueue, adminKey: api.adminKey });

      const done = await eventually(async () => {
        const view = await statusOf(admin, op.body.id);
        return view.status === 'SUCCESSFUL' ? view : undefined;
      }, 60_000);
      expect(done.steps.map((s: { name: string }) => s.name)).toEqual([
        'BEGINUPDATE',
        'DOWNLOADFILE',
        'ENDINSTALL',
        'ENDUPDATE',
      ]);
      expect(done.attempts).toHaveLength(1);
      expect(done.lateResponses).toBe(0);
      // Delivered once: the device never saw the request twice.
      expect(emulator.received('meter-fw')).toHaveLength(1);
      const list = await admin.get('/north/v1/devices/meter-fw/operations');
      expect(list.body.items).toHaveLength(1);
    } finally {
      await emulator.close();
      await worker.stop();
      await api.stop();
    }
  });
});

describe('operations waiting for a sleepy device when the Temporal server dies', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-opstack-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('are still pending after a restart, and are delivered once', async () => {
    const env = {
      TWINFLOW_DATA_DIR: dataDir,
      TWINFLOW_TEMPORAL_PORT: String(await getFreePort()),
      TWINFLOW_MONGODB_PORT: String(await getFreePort()),
      TWINFLOW_TEMPORAL_UI: 'off',
    };
    const adminKey = 'opstack-admin-key-0123456789';
    const start = () =>
      startTwinflow({ embedded: true, env, adminKey, db: 'twinflow', taskQueue: 'twinflow' });
    let tf = await start();
    try {
      let admin = apiClient(tf.baseUrl, adminKey);
      const key = (await admin.post('/north/v1/devices', { id: 'sleeper', transport: { sleepy: true } })).body
        .apiKey as string;
      const ids: string[] = [];
      for (const name of ['REFRESH_INFO', 'REBOOT_EQUIPMENT']) {
        const res = await admin.post('/north/v1/devices/sleeper/operations', { name });
        expect(res.body.status).toBe('WAITING_FOR_CONNECTION');
        ids.push(res.body.id);
      }

      // SIGKILL the Temporal server under TwinFlow, then TwinFlow itself; start everything again.
      const temporalPid = readdirSync(path.join(dataDir, 'run'))
        .filter((f) => f.startsWith('temporal') && f.endsWith('.pid'))
        .map((f) => Number(readFileSync(path.join(dataDir, 'run', f), 'utf8')))[0];
      expect(temporalPid).toBeGreaterThan(0);
      process.kill(temporalPid!, 'SIGKILL');
      await eventually(async () => (isAlive(temporalPid!) ? undefined : true));
      await tf.kill();
      tf = await start();
      admin = apiClient(tf.baseUrl, adminKey);

      for (const id of ids) expect((await statusOf(admin, id)).status).toBe('WAITING_FOR_CONNECTION');
      const device = apiClient(tf.baseUrl, key);
      const polled = await device.get('/south/v80/devices/sleeper/operation/pending');
      expect(polled.status).toBe(200);
      expect(polled.body.map((e: any) => e.operation.request.id)).toEqual(ids);
      expect((await device.get('/south/v80/devices/sleeper/operation/pending')).body).toEqual([]);
      for (const id of ids) {
        const answered = await device.post('/south/v80/devices/sleeper/operation/response', {
          operation: { response: { id, resultCode: 'SUCCESSFUL' } },
        });
        expect(answered.status).toBe(201);
      }
      for (const id of ids) {
        const done = await eventually(async () => {
          const view = await statusOf(admin, id);
          return view.status === 'SUCCESSFUL' ? view : undefined;
        }, 30_000);
        expect(done.attempts).toHaveLength(1);
      }
    } finally {
      if (process.env.TWINFLOW_IT_SHOW_OUTPUT) console.log(tf.output());
      expect(await tf.stop()).toBe(0);
    }
  });
});
