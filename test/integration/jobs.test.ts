// Jobs on the real stack: one operation over an emulated fleet, exactly once per device, with the rollout controls.
import type { MongoClient } from 'mongodb';
import {
  type Behavior,
  type DeviceEmulator,
  startDeviceEmulator,
} from '../../emulator/device-emulator';
import { fleetBehaviors } from '../../emulator/behaviors';
import { provisionFleet } from '../../emulator/main';
import {
  type ApiClient,
  type TwinflowProcess,
  apiClient,
  eventually,
  mongoClient,
  startTwinflow,
  uniqueName,
} from './harness';

const FINAL_JOB = ['COMPLETED', 'STOPPED', 'ABORTED', 'CANCELLED'];
/** The fleet of the first test (JOBS_IT_DEVICES makes it smaller while debugging). */
const FLEET = Number(process.env.JOBS_IT_DEVICES ?? 1_000);
const debug = (...args: unknown[]) => {
  if (process.env.JOBS_IT_DEBUG) console.log(new Date().toISOString(), ...args);
};

describe('jobs', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let emulator: DeviceEmulator;
  let mongo: MongoClient;

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    emulator = await startDeviceEmulator({ twinflowUrl: tf.baseUrl, maxConcurrentRequests: 256 });
    mongo = await mongoClient();
  });
  afterAll(async () => {
    if (process.env.TWINFLOW_IT_SHOW_OUTPUT) console.log(tf?.output());
    await emulator?.close();
    await mongo?.close();
    await tf?.stop();
  });

  /** Provisions devices played by the emulator (sleepy ones poll); answers their ids. */
  async function fleet(prefix: string, behaviors: readonly Behavior[], type?: string): Promise<string[]> {
    const ids = behaviors.map((_, i) => `${prefix}-${String(i).padStart(5, '0')}`);
    const kinds = new Map(ids.map((id, i) => [id, behaviors[i]!]));
    const report = await provisionFleet(tf.baseUrl, tf.adminKey, ids, (id) =>
      kinds.get(id)!.kind === 'sleepy'
        ? { sleepy: true }
        : { http: { operationUrl: emulator.operationUrl(id) } },
    );
    expect(report.failed).toEqual([]);
    for (const id of ids) emulator.addDevice({ id, apiKey: report.created.get(id)!, behavior: kinds.get(id)! });
    if (type) {
      // Types and tags come through a profile change: tag the fleet so filters can find it.
      await Promise.all(
        ids.map((id) => admin.patch(`/north/v1/devices/${id}`, { tags: [prefix] })),
      );
    }
    return ids;
  }

  const job = (id: string) => admin.get(`/north/v1/jobs/${id}`);
  const untilStatus = (id: string, statuses: string[], timeoutMs = 60_000) =>
    eventually(async () => {
      const res = await job(id);
      debug(res.status, res.body.status, res.body.counts, res.body.reason);
      return statuses.includes(res.body.status) ? res.body : undefined;
    }, timeoutMs, 250);

  async function executions(id: string, status?: string): Promise<any[]> {
    const out: any[] = [];
    let cursor: number | null = null;
    do {
      const q = new URLSearchParams({ limit: '1000' });
      if (status) q.set('status', status);
      if (cursor !== null) q.set('cursor', String(cursor));
      const res = await admin.get(`/north/v1/jobs/${id}/executions?${q}`);
      expect(res.status).toBe(200);
      out.push(...res.body.items);
      cursor = res.body.nextCursor;
    } while (cursor !== null);
    return out;
  }

  it('runs one operation on each of 1,000 devices exactly once', async () => {
    const ids = await fleet(uniqueName('k').replace(/_/g, '-'), fleetBehaviors({ succeed: 1 }, FLEET));
    debug('provisioned');
    const before = emulator.stats().requests;
    const res = await admin.post('/north/v1/jobs', {
      operation: { name: 'REBOOT_EQUIPMENT', parameters: { type: 'SOFTWARE' } },
      target: { deviceIds: ids },
      rollout: { maxInFlight: 200 },
      pollMs: 200,
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`/north/v1/jobs/${res.body.id}`);
    expect(res.body).toMatchObject({ status: 'RUNNING', total: FLEET, requestedBy: expect.any(String) });
    const done = await untilStatus(res.body.id, FINAL_JOB, 240_000);
    expect(done.status).toBe('COMPLETED');
    expect(done.counts).toMatchObject({ SUCCESSFUL: FLEET, PENDING: 0, STARTED: 0, FAILED: 0 });
    // Every device was asked once, and holds one record of the job's operation.
    expect(emulator.stats().requests - before).toBe(FLEET);
    for (const id of ids.slice(0, 50)) expect(emulator.received(id)).toHaveLength(1);
    const execs = await executions(res.body.id);
    expect(execs).toHaveLength(FLEET);
    expect(new Set(execs.map((e) => e.deviceId)).size).toBe(FLEET);
    expect(execs.every((e) => e.status === 'SUCCESSFUL' && e.operationStatus === 'SUCCESSFUL')).toBe(true);
    const opIds = execs.map((e) => e.operationId as string);
    expect(new Set(opIds).size).toBe(FLEET);
    const op = await admin.get(`/north/v1/operations/${opIds[0]}`);
    expect(op.body).toMatchObject({ status: 'SUCCESSFUL', deviceId: execs[0].deviceId, name: 'REBOOT_EQUIPMENT' });
    // The list shows it, and a finished job refuses controls.
    const list = await admin.get('/north/v1/jobs?operation=REBOOT_EQUIPMENT&status=COMPLETED');
    expect(list.body.items.map((j: { id: string }) => j.id)).toContain(res.body.id);
    const late = await admin.post(`/north/v1/jobs/${res.body.id}/pause`, {});
    expect(late.status).toBe(409);
  }, 300_000);
});
