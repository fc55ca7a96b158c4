// Jobs on the real stack: one operation over an emulated fleet, exactly once per device, with the rollout controls.
import type { MongoClient } from 'mongodb';
import { type Behavior, type DeviceEmulator, startDeviceEmulator } from '../../emulator/device-emulator';
import { fleetBehaviors } from '../../emulator/behaviors';
import {
  type ApiClient,
  type TwinflowProcess,
  apiClient,
  eventually,
  mongoClient,
  startTwinflow,
  temporalClient,
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

  /** Provisions devices played by the emulator (sleepy ones poll), tagged with their prefix; answers their ids. */
  async function fleet(prefix: string, behaviors: readonly Behavior[], from = 0): Promise<string[]> {
    const ids = behaviors.map((_, i) => `${prefix}-${String(from + i).padStart(5, '0')}`);
    for (let start = 0; start < ids.length; start += 1_000) {
      const batch = ids.slice(start, start + 1_000);
      const res = await admin.post('/north/v1/devices/bulk', {
        devices: batch.map((id, k) => ({
          id,
          tags: [prefix],
          transport:
            behaviors[start + k]!.kind === 'sleepy'
              ? { sleepy: true }
              : { http: { operationUrl: emulator.operationUrl(id) } },
        })),
      });
      expect(res.status).toBe(200);
      for (const [k, r] of (res.body.results as { status: number; apiKey: string }[]).entries()) {
        expect(r.status).toBe(201);
        emulator.addDevice({ id: batch[k]!, apiKey: r.apiKey, behavior: behaviors[start + k]! });
      }
    }
    return ids;
  }

  const prefix = (p: string) => uniqueName(p).replace(/_/g, '-');

  const job = (id: string) => admin.get(`/north/v1/jobs/${id}`);
  const untilStatus = (id: string, statuses: string[], timeoutMs = 60_000) =>
    eventually(
      async () => {
        const res = await job(id);
        debug(res.status, res.body.status, res.body.counts, res.body.reason);
        return statuses.includes(res.body.status) ? res.body : undefined;
      },
      timeoutMs,
      250,
    );

  async function executions(id: string, status?: string): Promise<any[]> {
    const out: any[] = [];
    let cursor: number | null = null;
    do {
      const q = new URLSearchParams({ limit: '1000' });
      if (status) q.set('status', status);
      if (cursor !== null) q.set('cursor', String(cursor));
      const res = await admin.get(`/north/v1/jobs/${id}/executions?${q.toString()}`);
      expect(res.status).toBe(200);
      out.push(...res.body.items);
      cursor = res.body.nextCursor;
    } while (cursor !== null);
    return out;
  }

  it('runs one operation on each of 1,000 devices exactly once', async () => {
    const ids = await fleet(prefix('k'), fleetBehaviors({ succeed: 1 }, FLEET));
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
    // Every device was asked for one operation (a push the twin repeated after a lost answer carries the same id).
    for (const id of ids) expect(new Set(emulator.received(id).map((r) => r.operationId)).size).toBe(1);
    const pushes = emulator.stats().requests - before;
    expect(pushes).toBeGreaterThanOrEqual(FLEET);
    debug(`${pushes} pushes for ${FLEET} devices`);
    const execs = await executions(res.body.id);
    expect(execs).toHaveLength(FLEET);
    expect(new Set(execs.map((e) => e.deviceId)).size).toBe(FLEET);
    expect(execs.every((e) => e.status === 'SUCCESSFUL' && e.operationStatus === 'SUCCESSFUL')).toBe(true);
    const opIds = execs.map((e) => e.operationId as string);
    expect(new Set(opIds).size).toBe(FLEET);
    const op = await admin.get(`/north/v1/operations/${opIds[0]}`);
    expect(op.body).toMatchObject({
      status: 'SUCCESSFUL',
      deviceId: execs[0].deviceId,
      name: 'REBOOT_EQUIPMENT',
    });
    // The list shows it, and a finished job refuses controls.
    const list = await admin.get('/north/v1/jobs?operation=REBOOT_EQUIPMENT&status=COMPLETED');
    expect(list.body.items.map((j: { id: string }) => j.id)).toContain(res.body.id);
    const late = await admin.post(`/north/v1/jobs/${res.body.id}/pause`, {});
    expect(late.status).toBe(409);
  }, 300_000);

  const create = (body: Record<string, unknown>) => admin.post('/north/v1/jobs', { pollMs: 200, ...body });
  const reboot = { name: 'REBOOT_EQUIPMENT', parameters: { type: 'SOFTWARE' } };

  it('stops a rollout whose first wave misses its success threshold, skipping what had not started', async () => {
    // One device in four fails: the first wave of 8 reaches 75 %, below the 90 % asked for.
    const ids = await fleet(prefix('w'), fleetBehaviors({ succeed: 0.75, fail: 0.25 }, 40));
    const before = emulator.stats().requests;
    const res = await create({
      operation: reboot,
      target: { deviceIds: ids },
      rollout: {
        waves: [{ count: 8 }, { percent: 50 }],
        successThresholdPercent: 90,
        onThresholdMiss: 'stop',
      },
    });
    expect(res.status).toBe(202);
    const done = await untilStatus(res.body.id, FINAL_JOB);
    expect(done).toMatchObject({ status: 'STOPPED', reason: expect.stringMatching(/wave 1: 75.0 %/) });
    expect(done.counts).toMatchObject({ SUCCESSFUL: 6, FAILED: 2, SKIPPED: 32, PENDING: 0 });
    expect(done.waves[0]).toMatchObject({ wave: 1, started: 8, finished: 8, successful: 6 });
    // Eight devices were asked (a push the twin repeated after a lost answer counts once).
    expect(ids.filter((id) => emulator.received(id).length > 0)).toHaveLength(8);
    expect(emulator.stats().requests - before).toBeGreaterThanOrEqual(8);
    await eventually(async () =>
      (await executions(res.body.id, 'SKIPPED')).length === 32 ? true : undefined,
    );
  });

  it('aborts once failures pass the abort rule and cancels what runs', async () => {
    // Half the devices never answer (their operations run until cancelled), half fail at once.
    const ids = await fleet(prefix('a'), fleetBehaviors({ fail: 0.5, timeout: 0.5 }, 30));
    const res = await create({
      operation: { ...reboot, timeoutMs: 600_000 },
      target: { deviceIds: ids },
      rollout: {
        maxInFlight: 10,
        abort: { failureTypes: ['FAILED'], percent: 30, minFinished: 3, cancelRunning: true },
      },
    });
    const done = await untilStatus(res.body.id, FINAL_JOB);
    expect(done.status).toBe('ABORTED');
    expect(done.reason).toMatch(/finished devices failed/);
    // What ran when it aborted was cancelled; the job waits for those ends before it completes.
    const settled = await eventually(async () => {
      const r = (await job(res.body.id)).body;
      return r.counts.STARTED === 0 ? r : undefined;
    }, 60_000);
    expect(settled.counts.CANCELLED).toBeGreaterThan(0);
    expect(settled.counts.SKIPPED).toBeGreaterThan(0);
    expect(settled.counts.SKIPPED + settled.counts.CANCELLED + settled.counts.FAILED).toBe(30);
  });

  it('pauses and resumes: nothing starts while paused', async () => {
    const ids = await fleet(prefix('p'), fleetBehaviors({ succeed: 1 }, 30));
    const res = await create({
      operation: reboot,
      target: { deviceIds: ids },
      rollout: { ratePerMinute: 600, maxInFlight: 2 },
    });
    const paused = await admin.post(`/north/v1/jobs/${res.body.id}/pause`, {});
    expect(paused.status).toBe(200);
    expect(paused.body.status).toBe('PAUSED');
    const startedAtPause = paused.body.counts.PENDING;
    await new Promise((r) => setTimeout(r, 1_500));
    const still = (await job(res.body.id)).body;
    expect(still.status).toBe('PAUSED');
    expect(still.counts.PENDING).toBe(startedAtPause);
    expect(still.counts.PENDING).toBeGreaterThan(0);
    const again = await admin.post(`/north/v1/jobs/${res.body.id}/pause`, {});
    expect(again.status).toBe(200);
    const resumed = await admin.post(`/north/v1/jobs/${res.body.id}/resume`, {});
    expect(resumed.body.status).toBe('RUNNING');
    const faster = await admin.post(`/north/v1/jobs/${res.body.id}/rate`, {
      ratePerMinute: null,
      maxInFlight: 30,
    });
    expect(faster.body.rate).toEqual({ ratePerMinute: null, maxInFlight: 30 });
    const done = await untilStatus(res.body.id, FINAL_JOB);
    expect(done.counts.SUCCESSFUL).toBe(30);
  });

  it('waits for an approval before each wave after the first', async () => {
    const ids = await fleet(prefix('a'), fleetBehaviors({ succeed: 1 }, 5));
    const res = await create({
      operation: reboot,
      target: { deviceIds: ids },
      rollout: { waves: [{ count: 1 }, { count: 2 }], approveWaves: true },
      pollMs: 200,
    });
    const first = await untilStatus(res.body.id, ['WAITING_APPROVAL']);
    expect(first.counts).toMatchObject({ SUCCESSFUL: 1, PENDING: 4 });
    // Nothing of the second wave starts while it waits.
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await job(res.body.id)).body).toMatchObject({
      status: 'WAITING_APPROVAL',
      counts: { PENDING: 4 },
    });
    expect(ids.slice(1).map((id) => emulator.received(id).length)).toEqual([0, 0, 0, 0]);
    const approved = await admin.post(`/north/v1/jobs/${res.body.id}/approve`, {});
    expect(approved.status).toBe(200);
    expect(approved.body.status).toBe('RUNNING');
    const second = await untilStatus(res.body.id, ['WAITING_APPROVAL']);
    expect(second.counts).toMatchObject({ SUCCESSFUL: 3, PENDING: 2 });
    expect((await admin.post(`/north/v1/jobs/${res.body.id}/approve`, {})).status).toBe(200);
    const done = await untilStatus(res.body.id, FINAL_JOB);
    expect(done).toMatchObject({ status: 'COMPLETED', counts: { SUCCESSFUL: 5 } });
    expect(ids.map((id) => emulator.received(id).length)).toEqual([1, 1, 1, 1, 1]);
    expect((await admin.post(`/north/v1/jobs/${res.body.id}/approve`, {})).status).toBe(409);
  });

  it('stops at its stop time: what had not started is skipped, what ran ends', async () => {
    const ids = await fleet(prefix('st'), fleetBehaviors({ succeed: 1 }, 6));
    // One start a minute: the first device starts at once, the stop comes before the second.
    const res = await create({
      operation: reboot,
      target: { deviceIds: ids },
      rollout: { ratePerMinute: 1, stopAfterMs: 3_000 },
      pollMs: 200,
    });
    expect(res.status).toBe(202);
    expect(res.body.rollout.stopAt).toBeGreaterThan(Date.now());
    const done = await untilStatus(res.body.id, FINAL_JOB, 30_000);
    expect(done).toMatchObject({ status: 'STOPPED', counts: { SUCCESSFUL: 1, SKIPPED: 5 } });
    expect(done.reason).toMatch(/stop time passed/);
    expect(done.finishedAt - done.createdAt).toBeGreaterThanOrEqual(3_000);
    expect(ids.slice(1).map((id) => emulator.received(id).length)).toEqual([0, 0, 0, 0, 0]);
    const past = await create({ operation: reboot, target: { deviceIds: ids }, rollout: { stopAt: 1_000 } });
    expect(past.status).toBe(400);
    expect(past.body.error.message).toMatch(/has passed/);
  });

  it('cancels a job with its running operations', async () => {
    const ids = await fleet(prefix('c'), fleetBehaviors({ timeout: 1 }, 10));
    const res = await create({
      operation: { ...reboot, timeoutMs: 600_000 },
      target: { deviceIds: ids },
      rollout: { waves: [{ count: 4 }] },
    });
    await eventually(async () => ((await job(res.body.id)).body.counts?.STARTED === 4 ? true : undefined));
    const cancelled = await admin.post(`/north/v1/jobs/${res.body.id}/cancel`, { cancelRunning: true });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'CANCELLED', reason: 'cancelled by an operator' });
    const done = await eventually(async () => {
      const r = (await job(res.body.id)).body;
      return r.counts.STARTED === 0 && r.counts.CANCELLED === 4 ? r : undefined;
    }, 30_000);
    expect(done.counts).toMatchObject({ SKIPPED: 6, CANCELLED: 4 });
    const running = await executions(res.body.id, 'CANCELLED');
    for (const e of running) {
      const op = await admin.get(`/north/v1/operations/${e.operationId}`);
      expect(op.body.status).toBe('CANCELLED');
    }
    expect((await admin.post(`/north/v1/jobs/${res.body.id}/resume`, {})).status).toBe(409);
  });

  it('takes in a device provisioned while a continuous job runs', async () => {
    const tag = prefix('t');
    await fleet(tag, fleetBehaviors({ succeed: 1 }, 3));
    const res = await create({
      operation: reboot,
      target: { filter: { tag }, continuous: true },
      refreshMs: 300,
    });
    expect(res.status).toBe(202);
    await eventually(async () => ((await job(res.body.id)).body.counts?.SUCCESSFUL === 3 ? true : undefined));
    const [late] = await fleet(tag, fleetBehaviors({ succeed: 1 }, 1), 3);
    const grown = await eventually(async () => {
      const r = (await job(res.body.id)).body;
      return r.counts?.SUCCESSFUL === 4 ? r : undefined;
    });
    expect(grown).toMatchObject({ status: 'RUNNING', total: 4 });
    expect(emulator.received(late)).toHaveLength(1);
    expect((await admin.post(`/north/v1/jobs/${res.body.id}/cancel`, {})).body.status).toBe('CANCELLED');
  });

  it('resolves a filter once when the job is not continuous', async () => {
    const tag = prefix('f');
    await fleet(tag, fleetBehaviors({ succeed: 1 }, 5));
    const res = await create({ operation: reboot, target: { filter: { tag } } });
    const done = await untilStatus(res.body.id, FINAL_JOB);
    expect(done).toMatchObject({ status: 'COMPLETED', total: 5 });
  });

  it('starts nothing outside its maintenance window', async () => {
    const ids = await fleet(prefix('m'), fleetBehaviors({ succeed: 1 }, 3));
    // A window that opened an hour ago and closed a minute ago: the next one is almost a day away.
    const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);
    const window = { timeZone: 'UTC', start: hhmm(Date.now() - 3_600_000), end: hhmm(Date.now() - 120_000) };
    const res = await create({ operation: reboot, target: { deviceIds: ids }, rollout: { window } });
    expect(res.status).toBe(202);
    await new Promise((r) => setTimeout(r, 2_000));
    const waiting = (await job(res.body.id)).body;
    expect(waiting).toMatchObject({ status: 'RUNNING', window: { open: false } });
    expect(waiting.window.nextOpening).toBeGreaterThan(Date.now() + 20 * 3_600_000);
    expect(waiting.counts.PENDING).toBe(3);
    for (const id of ids) expect(emulator.received(id)).toHaveLength(0);
    await admin.post(`/north/v1/jobs/${res.body.id}/cancel`, {});
  });

  it('counts a device that never answers as TIMEOUT after the per-device deadline', async () => {
    const ids = await fleet(prefix('d'), fleetBehaviors({ succeed: 0.5, timeout: 0.5 }, 4));
    const res = await create({
      operation: { ...reboot, timeoutMs: 600_000 },
      target: { deviceIds: ids },
      rollout: { deviceDeadlineMs: 1_000 },
    });
    const done = await untilStatus(res.body.id, FINAL_JOB, 30_000);
    expect(done.counts).toMatchObject({ SUCCESSFUL: 2, TIMEOUT: 2 });
    const late = await executions(res.body.id, 'TIMEOUT');
    expect(late.map((e) => e.reason)).toEqual([
      'no end within the per-device deadline',
      'no end within the per-device deadline',
    ]);
  });

  it('takes the OpenGate job body', async () => {
    const ids = await fleet(prefix('og'), fleetBehaviors({ succeed: 1 }, 2));
    const res = await admin.post('/north/v80/operation/jobs', {
      job: {
        request: {
          name: 'REBOOT_EQUIPMENT',
          parameters: { type: 'HARDWARE' },
          operationParameters: { timeout: 30_000, retries: 0, retriesDelay: 1_000 },
          target: { append: { entities: ids } },
        },
      },
    });
    expect(res.status).toBe(202);
    const done = await untilStatus(res.body.id, FINAL_JOB);
    expect(done).toMatchObject({
      status: 'COMPLETED',
      operation: { name: 'REBOOT_EQUIPMENT', timeoutMs: 30_000 },
    });
    expect(emulator.received(ids[0])[0]?.parameters).toMatchObject({ type: 'HARDWARE' });
  });

  it("takes OpenGate's schedule: a later start schedules the job, a stop stops it; other parts are refused", async () => {
    const ids = await fleet(prefix('ogs'), fleetBehaviors({ succeed: 1 }, 2));
    const request = (schedule: unknown) => ({
      job: {
        request: { name: 'REBOOT_EQUIPMENT', schedule, target: { append: { entities: ids } } },
      },
    });
    const later = await admin.post(
      '/north/v80/operation/jobs',
      request({ start: { delayed: 2_000 }, stop: { delayed: 600_000 } }),
    );
    expect(later.status).toBe(202);
    expect(later.headers.get('location')).toBe(`/north/v1/job-schedules/${later.body.id}`);
    expect(later.body.schedule.timing).toEqual({ at: expect.any(Number) });
    // Nothing ran yet; the job appears when the schedule starts it, with the stop counted from then.
    expect(ids.map((id) => emulator.received(id).length)).toEqual([0, 0]);
    const ran = await eventually(async () => {
      const list = (await admin.get('/north/v1/jobs?limit=500')).body.items as any[];
      return list.find((j) => j.scheduleId === later.body.id && j.status === 'COMPLETED');
    }, 30_000);
    expect(ran.counts).toMatchObject({ SUCCESSFUL: 2 });
    expect(ran.createdAt).toBeGreaterThanOrEqual(later.body.schedule.timing.at);
    expect(ran.rollout.stopAt).toBeGreaterThanOrEqual(ran.createdAt + 600_000);
    expect(ids.map((id) => emulator.received(id).length)).toEqual([1, 1]);

    const jobsBefore = (await admin.get('/north/v1/jobs?limit=500')).body.items.length;
    const window = await admin.post('/north/v80/operation/jobs', request({ window: { weekly: [] } }));
    expect(window.status).toBe(400);
    expect(window.body.error.message).toMatch(/rollout\.window/);
    const backwards = await admin.post(
      '/north/v80/operation/jobs',
      request({ start: { delayed: 3_600_000 }, stop: { date: new Date(Date.now() + 60_000).toISOString() } }),
    );
    expect(backwards.status).toBe(400);
    expect(backwards.body.error.message).toMatch(/before the job starts/);
    expect((await admin.get('/north/v1/jobs?limit=500')).body.items.length).toBe(jobsBefore);
    expect(ids.map((id) => emulator.received(id).length)).toEqual([1, 1]);
  });

  it('refuses bad input on every job route, and records an audit entry per action', async () => {
    const bad: [string, string, unknown, number][] = [
      ['POST', '/north/v1/jobs', {}, 400],
      ['POST', '/north/v1/jobs', { operation: reboot }, 400],
      ['POST', '/north/v1/jobs', { operation: { name: 'bad name' }, target: { deviceIds: ['x'] } }, 400],
      ['POST', '/north/v1/jobs', { operation: reboot, target: { deviceIds: [] } }, 400],
      ['POST', '/north/v1/jobs', { operation: reboot, target: { deviceIds: ['a/b'] } }, 400],
      ['POST', '/north/v1/jobs', { operation: reboot, target: { filter: { nope: 1 } } }, 400],
      [
        'POST',
        '/north/v1/jobs',
        { operation: reboot, target: { deviceIds: ['x'] }, rollout: { maxInFlight: 0 } },
        400,
      ],
      [
        'POST',
        '/north/v1/jobs',
        { operation: reboot, target: { deviceIds: ['x'] }, rollout: { waves: [{ percent: 0 }] } },
        400,
      ],
      [
        'POST',
        '/north/v1/jobs',
        {
          operation: reboot,
          target: { deviceIds: ['x'] },
          rollout: { window: { timeZone: 'Mars/Base', start: '01:00', end: '02:00' } },
        },
        400,
      ],
      [
        'POST',
        '/north/v1/jobs',
        { operation: reboot, target: { deviceIds: ['x'] }, rollout: { abort: { percent: 101 } } },
        400,
      ],
      ['GET', '/north/v1/jobs?status=NOPE', undefined, 400],
      ['GET', '/north/v1/jobs?cursor=zzz', undefined, 400],
      ['GET', '/north/v1/jobs?limit=0', undefined, 400],
      ['GET', '/north/v1/jobs/not-a-job', undefined, 404],
      ['GET', '/north/v1/jobs/0000000aa-00000000aa', undefined, 404],
      ['GET', '/north/v1/jobs/0000000aa-00000000aa/executions', undefined, 404],
      ['POST', '/north/v1/jobs/0000000aa-00000000aa/pause', {}, 404],
      ['POST', '/north/v1/jobs/0000000aa-00000000aa/cancel', { cancelRunning: 'yes' }, 400],
      ['POST', '/north/v1/jobs/0000000aa-00000000aa/rate', {}, 400],
      ['POST', '/north/v1/jobs/0000000aa-00000000aa/rate', { ratePerMinute: 0 }, 400],
      ['POST', '/north/v80/operation/jobs', { job: { request: { name: 'REBOOT_EQUIPMENT' } } }, 400],
      [
        'POST',
        '/north/v80/operation/jobs',
        { job: { request: { name: 'X', target: { append: { entities: [] } } } } },
        400,
      ],
    ];
    for (const [method, path, body, status] of bad) {
      const res = method === 'GET' ? await admin.get(path) : await admin.post(path, body);
      if (res.status !== status)
        throw new Error(
          `${method} ${path} ${JSON.stringify(body)}: ${res.status} ${JSON.stringify(res.body)}`,
        );
      expect(res.body.error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    }
    const execs = await admin.get('/north/v1/jobs/0000000aa-00000000aa/executions?status=NOPE');
    expect(execs.status).toBe(400);
    // Every control is audited: a job of its own, paused, resumed, re-rated and cancelled.
    const [one] = await fleet(prefix('b'), fleetBehaviors({ timeout: 1 }, 1));
    const own = await create({ operation: { ...reboot, timeoutMs: 600_000 }, target: { deviceIds: [one] } });
    for (const [action, body] of [
      ['pause', {}],
      ['resume', {}],
      ['rate', { maxInFlight: 3 }],
      ['cancel', { cancelRunning: true }],
    ] as const)
      expect((await admin.post(`/north/v1/jobs/${own.body.id}/${action}`, body)).status).toBe(200);
    const audit = await mongo
      .db(tf.env.MONGODB_DB)
      .collection('audit')
      .find({ action: /^job\./ })
      .toArray();
    const actions = new Set(audit.map((a) => a.action));
    for (const a of ['job.create', 'job.pause', 'job.resume', 'job.cancel', 'job.rate'])
      expect(actions).toContain(a);
  });

  it('runs a recurring schedule twice, each run a job of its own, then pauses, resumes and deletes it', async () => {
    const ids = await fleet(prefix('s'), fleetBehaviors({ succeed: 1 }, 2));
    const res = await admin.post('/north/v1/job-schedules', {
      job: { operation: reboot, target: { deviceIds: ids }, pollMs: 200 },
      schedule: { everyMs: 2_000 },
    });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    const ran = await eventually(
      async () => {
        const view = (await admin.get(`/north/v1/job-schedules/${id}`)).body;
        return view.runs.length >= 2 ? view : undefined;
      },
      30_000,
      500,
    );
    expect(ran.runs[1].scheduledAt).toBeGreaterThan(ran.runs[0].scheduledAt);
    const jobs = await eventually(async () => {
      const list = (await admin.get('/north/v1/jobs?limit=500')).body.items as {
        scheduleId?: string;
        status: string;
      }[];
      const mine = list.filter((j) => j.scheduleId === id && j.status === 'COMPLETED');
      return mine.length >= 2 ? mine : undefined;
    }, 30_000);
    expect(jobs.length).toBeGreaterThanOrEqual(2);
    for (const d of ids) expect(emulator.received(d).length).toBeGreaterThanOrEqual(2);
    expect((await admin.post(`/north/v1/job-schedules/${id}/pause`, {})).body.paused).toBe(true);
    expect((await admin.post(`/north/v1/job-schedules/${id}/resume`, {})).body.paused).toBe(false);
    expect(
      (await admin.get('/north/v1/job-schedules')).body.items.map((s: { id: string }) => s.id),
    ).toContain(id);
    expect((await admin.delete(`/north/v1/job-schedules/${id}`)).status).toBe(200);
    expect((await admin.get(`/north/v1/job-schedules/${id}`)).status).toBe(404);
    const bad = await admin.post('/north/v1/job-schedules', {
      job: { operation: reboot, target: { deviceIds: ids } },
      schedule: { everyMs: 10 },
    });
    expect(bad.status).toBe(400);
    const past = await admin.post('/north/v1/job-schedules', {
      job: { operation: reboot, target: { deviceIds: ids } },
      schedule: { at: 1_000 },
    });
    expect(past.status).toBe(400);
    const fixedStop = await admin.post('/north/v1/job-schedules', {
      job: { operation: reboot, target: { deviceIds: ids }, rollout: { stopAt: Date.now() + 3_600_000 } },
      schedule: { everyMs: 60_000 },
    });
    expect(fixedStop.status).toBe(400);
    expect(fixedStop.body.error.message).toMatch(/stopAfterMs/);
    expect((await admin.get('/north/v1/job-schedules/nope')).status).toBe(404);
  });

  it('continues as new when its history grows, carrying its progress, and targets each device once', async () => {
    const ids = await fleet(prefix('n'), fleetBehaviors({ succeed: 1 }, 30));
    const before = emulator.stats().requests;
    const res = await create({
      operation: reboot,
      target: { deviceIds: ids },
      rollout: { maxInFlight: 1 },
      maxHistory: 100,
    });
    const done = await untilStatus(res.body.id, FINAL_JOB, 120_000);
    expect(done).toMatchObject({ status: 'COMPLETED', counts: expect.objectContaining({ SUCCESSFUL: 30 }) });
    for (const id of ids) expect(new Set(emulator.received(id).map((r) => r.operationId)).size).toBe(1);
    expect(emulator.stats().requests - before).toBeGreaterThanOrEqual(30);
    const temporal = await temporalClient();
    try {
      let runs = 0;
      for await (const _ of temporal.client.workflow.list({
        query: `WorkflowId = "job/default/${res.body.id}"`,
      }))
        runs++;
      expect(runs).toBeGreaterThan(1);
    } finally {
      await temporal.close();
    }
  });
});
