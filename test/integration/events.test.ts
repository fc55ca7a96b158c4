// The fleet event log on the real stack: devices, operations, alarms and twin status land in the log in order;
// the SSE stream delivers them live, resumes from Last-Event-ID without gaps or duplicates and keeps quiet
// streams alive; filters; another organization sees nothing; bad input is refused.
import { type DeviceEmulator, startDeviceEmulator } from '../../emulator/device-emulator';
import {
  type ApiClient,
  type TwinflowProcess,
  apiClient,
  collectBody,
  eventually,
  startTwinflow,
  uniqueName,
} from './harness';
import { openSse } from './support/sse';

const PASSWORD = 'correct horse battery staple';

describe('event log', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let emulator: DeviceEmulator;
  let clock = 1_700_000_000_000;

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    emulator = await startDeviceEmulator({ twinflowUrl: tf.baseUrl });
  });
  afterAll(async () => {
    if (process.env.TWINFLOW_IT_SHOW_OUTPUT) console.log(tf?.output());
    await emulator?.close();
    await tf?.stop();
  });

  const eventsOf = async (query: string): Promise<any[]> => {
    const res = await admin.get(`/north/v1/events?${query}`);
    expect(res.status).toBe(200);
    return res.body.items;
  };

  /** A meter played by the emulator, tagged; its key sends data. */
  async function meter(tag: string, attributes: Record<string, number> = {}) {
    const id = uniqueName('meter').replace(/_/g, '-');
    const res = await admin.post('/north/v1/devices', {
      id,
      type: 'electricity-meter',
      tags: [tag],
      attributes,
      transport: { http: { operationUrl: emulator.operationUrl(id) } },
    });
    expect(res.status).toBe(201);
    emulator.addDevice({ id, apiKey: res.body.apiKey, behavior: { kind: 'sync' } });
    const device = apiClient(tf.baseUrl, res.body.apiKey);
    return {
      id,
      async send(values: Record<string, number>) {
        clock += 1_000;
        const body = collectBody(
          Object.entries(values).map(([ds, value]) => ({ id: ds, datapoints: [{ value, at: clock }] })),
        );
        expect((await device.post(`/south/v80/devices/${id}/collect/iot`, body)).status).toBe(201);
      },
    };
  }

  it('logs a device life, its operation and its alarm in order, and streams them live', async () => {
    const tag = uniqueName('site');
    const m = await meter(tag, { overloadHoldMs: 200, offlineAfterMs: 1_500 });
    // A tag filter follows the devices that carry the tag when the stream opens (and every few seconds after).
    const stream = await openSse(`${tf.baseUrl}/north/v1/events/stream?tag=${tag}`, {
      'X-ApiKey': tf.adminKey,
    });
    expect(stream.status).toBe(200);
    const stream2 = await openSse(`${tf.baseUrl}/north/v1/events/stream?deviceId=${m.id}`, {
      'X-ApiKey': tf.adminKey,
    });
    const positions = await Promise.all(
      [stream, stream2].map(async (s) => {
        const [ready] = await s.waitFor(1, (f) => f.event === 'ready');
        return Number(JSON.parse(ready!.data!).position);
      }),
    );
    const op = await admin.post(`/north/v1/devices/${m.id}/operations`, { name: 'REFRESH_INFO' });
    expect(op.status).toBe(202);
    await m.send({ 'power.active': 12_000 });
    await new Promise((r) => setTimeout(r, 400));
    await m.send({ 'power.active': 12_500 });
    await eventually(async () => {
      const types = (await eventsOf(`deviceId=${m.id}&types=alarm.raised`)).map((e) => e.type);
      expect(types).toEqual(['alarm.raised']);
      return true;
    }, 30_000);
    expect((await admin.post(`/north/v1/devices/${m.id}/alarms/OVERLOAD/acknowledge`, {})).status).toBe(200);
    expect((await admin.post(`/north/v1/devices/${m.id}/alarms/OVERLOAD/clear`, {})).status).toBe(200);
    expect((await admin.patch(`/north/v1/devices/${m.id}`, { name: 'Meter one' })).status).toBe(200);

    // Silent for offlineAfterMs after its last datapoint, the meter goes OFFLINE.
    const wanted = [
      'device.changed',
      'alarm.acknowledged',
      'alarm.cleared',
      'device.status',
      'device.connectivity',
    ];
    const events = await eventually(async () => {
      const all = await eventsOf(`deviceId=${m.id}&limit=1000`);
      const types = all.map((e) => e.type);
      for (const t of wanted) expect(types).toContain(t);
      return all;
    }, 30_000);
    const types = events.map((e) => e.type);
    // Ordered by id, and each fact in the order it happened.
    const ids = events.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(types[0]).toBe('device.provisioned');
    const at = (t: string) => types.indexOf(t);
    expect(at('operation.requested')).toBeLessThan(at('operation.ended'));
    expect(at('alarm.raised')).toBeLessThan(at('alarm.acknowledged'));
    expect(at('alarm.acknowledged')).toBeLessThan(at('alarm.cleared'));
    const requested = events.find(
      (e) => e.type === 'operation.requested' && e.body.operationId === op.body.id,
    );
    expect(requested).toMatchObject({ deviceId: m.id, body: { name: 'REFRESH_INFO' } });
    const ended = events.find((e) => e.type === 'operation.ended' && e.body.operationId === op.body.id);
    expect(ended.body).toMatchObject({ status: 'SUCCESSFUL', resultCode: 'SUCCESSFUL' });
    expect(events.find((e) => e.type === 'alarm.raised').body).toMatchObject({
      alarm: 'OVERLOAD',
      severity: 'MAJOR',
    });
    expect(types.filter((t) => t === 'alarm.raised')).toHaveLength(1);
    expect(events.find((e) => e.type === 'device.connectivity').body).toEqual({ online: false });
    expect(events.find((e) => e.type === 'device.status' && e.body.to === 'OFFLINE')).toBeDefined();

    // Both streams got the same events, live, in the same order, with the ids of the log.
    for (const [i, s] of [stream, stream2].entries()) {
      const live = events.filter((e) => Number(e.id) > positions[i]!);
      expect(live.length).toBeGreaterThan(5);
      const frames = await s.waitFor(live.length);
      expect(frames.map((f) => f.id)).toEqual(live.map((e) => e.id));
      expect(frames.map((f) => f.event)).toEqual(live.map((e) => e.type));
      expect(JSON.parse(frames[0]!.data!)).toMatchObject({ id: live[0].id, deviceId: m.id });
      s.close();
    }
  }, 90_000);

  it('logs the progress and end of a job, and desired state in sync and failed', async () => {
    const tag = uniqueName('jobs');
    const good = await meter(tag);
    const id = uniqueName('refuser').replace(/_/g, '-');
    const made = await admin.post('/north/v1/devices', {
      id,
      type: 'electricity-meter',
      transport: { http: { operationUrl: emulator.operationUrl(id) } },
    });
    emulator.addDevice({
      id,
      apiKey: made.body.apiKey,
      behavior: { kind: 'sync', resultCode: 'ERROR_PROCESSING' },
    });
    const refuser = apiClient(tf.baseUrl, made.body.apiKey);
    await good.send({ reportingIntervalS: 900 });
    clock += 1_000;
    await refuser.post(
      `/south/v80/devices/${id}/collect/iot`,
      collectBody([{ id: 'reportingIntervalS', datapoints: [{ value: 900, at: clock }] }]),
    );
    // Desired: the good meter applies it and reports it; the other refuses.
    expect(
      (await admin.patch(`/north/v1/devices/${good.id}/desired`, { reportingIntervalS: 60 })).status,
    ).toBe(200);
    expect((await admin.patch(`/north/v1/devices/${id}/desired`, { reportingIntervalS: 60 })).status).toBe(
      200,
    );
    await eventually(async () => {
      expect(emulator.received(good.id).some((r) => r.name === 'SET_DEVICE_PARAMETERS')).toBe(true);
      return true;
    });
    await good.send({ reportingIntervalS: 60 });
    const synced = await eventually(async () => {
      const items = await eventsOf(`types=desired.synced,desired.failed&deviceId=${good.id}`);
      return items.length > 0 ? items : undefined;
    }, 30_000);
    expect(synced).toMatchObject([{ type: 'desired.synced', deviceId: good.id, body: { version: 1 } }]);
    const failed = await eventually(async () => {
      const items = await eventsOf(`types=desired.failed&deviceId=${id}`);
      return items.length > 0 ? items : undefined;
    }, 30_000);
    expect(failed[0].body).toMatchObject({ version: 1, reason: expect.stringMatching(/refused/) });

    // A job over both meters: progress while it runs, one end with its counts.
    const job = await admin.post('/north/v1/jobs', {
      operation: { name: 'REBOOT_EQUIPMENT', parameters: { type: 'SOFTWARE' } },
      target: { deviceIds: [good.id, id] },
      pollMs: 200,
    });
    expect(job.status).toBe(202);
    const ended = await eventually(async () => {
      const items = (await eventsOf('types=job.progress,job.ended&limit=1000')).filter(
        (e) => e.body.jobId === job.body.id,
      );
      return items.some((e) => e.type === 'job.ended') ? items : undefined;
    }, 60_000);
    expect(ended.filter((e) => e.type === 'job.ended')).toHaveLength(1);
    expect(ended.at(-1)).toMatchObject({ type: 'job.ended', body: { status: 'COMPLETED', total: 2 } });
    expect(ended[0].type).toBe('job.progress');
  }, 120_000);

  it('resumes a stream from Last-Event-ID with nothing missed and nothing twice', async () => {
    const tag = uniqueName('resume');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = uniqueName('dev').replace(/_/g, '-');
      ids.push(id);
      expect(
        (await admin.post('/north/v1/devices', { id, tags: [tag], transport: { sleepy: true } })).status,
      ).toBe(201);
    }
    const first = await eventsOf(`tag=${tag}&types=device.provisioned`);
    expect(first.map((e) => e.deviceId)).toEqual(ids);
    // A stream resumed after the first event gets the other two from the store, then what happens next, live.
    const stream = await openSse(
      `${tf.baseUrl}/north/v1/events/stream?tag=${tag}&types=device.provisioned,device.changed`,
      {
        'X-ApiKey': tf.adminKey,
        'Last-Event-ID': first[0].id,
      },
    );
    const stored = await stream.waitFor(2);
    expect(stored.map((f) => f.id)).toEqual([first[1].id, first[2].id]);
    await Promise.all(ids.map((id, i) => admin.patch(`/north/v1/devices/${id}`, { name: `n${i}` })));
    const frames = await stream.waitFor(5);
    const seen = frames.map((f) => Number(f.id));
    expect(new Set(seen).size).toBe(5);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(frames.slice(2).map((f) => f.event)).toEqual([
      'device.changed',
      'device.changed',
      'device.changed',
    ]);
    stream.close();
    // A second stream resumed from the third frame picks up exactly where it was.
    const again = await openSse(
      `${tf.baseUrl}/north/v1/events/stream?tag=${tag}&types=device.provisioned,device.changed`,
      {
        'X-ApiKey': tf.adminKey,
        'Last-Event-ID': frames[2]!.id!,
      },
    );
    expect((await again.waitFor(2)).map((f) => f.id)).toEqual(frames.slice(3).map((f) => f.id));
    again.close();
    // The list pages the same way: `next` of one page is `after` of the next.
    const p1 = await admin.get(`/north/v1/events?tag=${tag}&limit=2`);
    const p2 = await admin.get(`/north/v1/events?tag=${tag}&limit=100&after=${p1.body.next}`);
    const paged = [...p1.body.items, ...p2.body.items].map((e: any) => e.id);
    expect(paged).toEqual([first[0].id, ...seen.map(String)]);
  }, 60_000);

  it('serves the same stream from every API process', async () => {
    const second = await startTwinflow({
      db: tf.env.MONGODB_DB,
      taskQueue: tf.env.TWINFLOW_TASK_QUEUE,
      adminKey: tf.adminKey,
      roles: 'api',
    });
    try {
      const tag = uniqueName('multi');
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const id = uniqueName('m').replace(/_/g, '-');
        ids.push(id);
        expect(
          (await admin.post('/north/v1/devices', { id, tags: [tag], transport: { sleepy: true } })).status,
        ).toBe(201);
      }
      const query = `/north/v1/events/stream?tag=${tag}&types=device.changed`;
      const streams = await Promise.all(
        [tf.baseUrl, second.baseUrl].map((base) => openSse(`${base}${query}`, { 'X-ApiKey': tf.adminKey })),
      );
      await Promise.all(streams.map((s) => s.waitFor(1, (f) => f.event === 'ready')));
      // Changes through both processes, at once.
      const viaSecond = apiClient(second.baseUrl, tf.adminKey);
      await Promise.all(
        ids.map((id, i) => (i % 2 ? viaSecond : admin).patch(`/north/v1/devices/${id}`, { name: `n${i}` })),
      );
      const [a, b] = await Promise.all(streams.map((s) => s.waitFor(4)));
      expect(a!.map((f) => f.id)).toEqual(b!.map((f) => f.id));
      expect(new Set(a!.map((f) => JSON.parse(f.data!).deviceId))).toEqual(new Set(ids));
      for (const s of streams) s.close();
    } finally {
      await second.stop();
    }
  }, 90_000);

  it('keeps a quiet stream alive with heartbeats', async () => {
    const stream = await openSse(
      `${tf.baseUrl}/north/v1/events/stream?deviceId=nobody-here&heartbeatMs=1000`,
      {
        'X-ApiKey': tf.adminKey,
      },
    );
    await stream.waitFor(2, (f) => f.comment === 'heartbeat', 10_000);
    stream.close();
  });

  it('never shows one organization the events of another', async () => {
    const org = uniqueName('evorg').replace(/_/g, '-');
    const email = `admin@${org}.example`;
    expect(
      (
        await admin.post('/north/v1/organizations', {
          id: org,
          name: org,
          admin: { email, password: PASSWORD },
        })
      ).status,
    ).toBe(201);
    const login = await apiClient(tf.baseUrl).post('/north/v1/auth/login', { email, password: PASSWORD });
    const other = { authorization: `Bearer ${login.body.accessToken}` };
    const otherClient = apiClient(tf.baseUrl);
    const stream = await openSse(`${tf.baseUrl}/north/v1/events/stream`, other);
    await stream.waitFor(1, (f) => f.event === 'ready');
    const mine = uniqueName('mine').replace(/_/g, '-');
    expect((await admin.post('/north/v1/devices', { id: mine, transport: { sleepy: true } })).status).toBe(
      201,
    );
    const theirs = uniqueName('theirs').replace(/_/g, '-');
    expect(
      (await otherClient.post('/north/v1/devices', { id: theirs, transport: { sleepy: true } }, other))
        .status,
    ).toBe(201);
    const frames = await stream.waitFor(1);
    expect(JSON.parse(frames[0]!.data!)).toMatchObject({ type: 'device.provisioned', deviceId: theirs });
    const listed = (await otherClient.get('/north/v1/events?limit=1000', other)).body.items;
    expect(listed.map((e: any) => e.deviceId)).not.toContain(mine);
    expect(await eventsOf(`deviceId=${theirs}`)).toEqual([]);
    await new Promise((r) => setTimeout(r, 500));
    expect(stream.frames.filter((f) => f.id !== undefined).map((f) => JSON.parse(f.data!).deviceId)).toEqual([
      theirs,
    ]);
    stream.close();
  });

  it('refuses bad filters, cursors and a reader without the right', async () => {
    for (const q of [
      'types=device.exploded',
      'since=yesterday',
      'after=-1',
      'limit=0',
      'limit=5000',
      'what=1',
      'after=1e3',
    ]) {
      const res = await admin.get(`/north/v1/events?${q}`);
      expect({ q, status: res.status }).toEqual({ q, status: 400 });
    }
    const bad = await fetch(`${tf.baseUrl}/north/v1/events/stream`, {
      headers: { 'X-ApiKey': tf.adminKey, 'Last-Event-ID': 'not-an-id' },
    });
    expect(bad.status).toBe(400);
    expect(
      (
        await fetch(`${tf.baseUrl}/north/v1/events/stream?heartbeatMs=5`, {
          headers: { 'X-ApiKey': tf.adminKey },
        })
      ).status,
    ).toBe(400);
    expect((await apiClient(tf.baseUrl).get('/north/v1/events')).status).toBe(401);
    const device = await admin.post('/north/v1/devices', {
      id: uniqueName('d').replace(/_/g, '-'),
      transport: { sleepy: true },
    });
    expect((await apiClient(tf.baseUrl, device.body.apiKey).get('/north/v1/events')).status).toBe(403);
  });
});
