// Covers the device emulator over real loopback HTTP, against a stand-in for TwinFlow's south face.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type DeviceEmulator,
  type DeviceEmulatorOptions,
  type EmulatedDevice,
  startDeviceEmulator,
} from '../../../emulator/device-emulator';

interface PostedResponse {
  deviceId: string;
  apiKey: string | undefined;
  body: any;
}

/** Records posted responses and serves queued pending operations, like TwinFlow's south face would. */
class StandInSouth {
  readonly responses: PostedResponse[] = [];
  readonly polls: { deviceId: string; apiKey: string | undefined }[] = [];
  readonly pending = new Map<string, unknown[]>();
  /** Statuses to answer response posts with before answering 201 again. */
  failNext: number[] = [];
  private server = http.createServer((req, res) => this.handle(req, res));
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const closed = new Promise((resolve) => this.server.close(resolve));
    this.server.closeAllConnections();
    await closed;
  }

  reset(): void {
    this.responses.length = 0;
    this.polls.length = 0;
    this.pending.clear();
    this.failNext = [];
  }

  queue(deviceId: string, envelope: unknown): void {
    this.pending.set(deviceId, [...(this.pending.get(deviceId) ?? []), envelope]);
  }

  responsesOf(deviceId: string): any[] {
    return this.responses.filter((r) => r.deviceId === deviceId).map((r) => r.body.operation.response);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const match = /^\/south\/v80\/devices\/([^/]+)\/operation\/(response|pending)/.exec(req.url ?? '');
      const apiKey = req.headers['x-apikey'] as string | undefined;
      if (!match) {
        res.writeHead(404).end();
        return;
      }
      const deviceId = decodeURIComponent(match[1]!);
      if (match[2] === 'pending') {
        this.polls.push({ deviceId, apiKey });
        const list = this.pending.get(deviceId) ?? [];
        this.pending.delete(deviceId);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(list));
        return;
      }
      const status = this.failNext.shift();
      if (status !== undefined) {
        res.writeHead(status).end('{"error":{"code":"X","message":"stand-in failure"}}');
        return;
      }
      this.responses.push({ deviceId, apiKey, body: JSON.parse(Buffer.concat(chunks).toString()) });
      res.writeHead(201).end();
    });
  }
}

const south = new StandInSouth();
let emulator: DeviceEmulator | undefined;
let errors: unknown[] = [];

beforeAll(() => south.start());
afterAll(() => south.stop());
beforeEach(() => {
  south.reset();
  errors = [];
});
afterEach(async () => {
  await emulator?.close();
  emulator = undefined;
});

async function start(devices: EmulatedDevice[], options: Partial<DeviceEmulatorOptions> = {}) {
  emulator = await startDeviceEmulator({
    twinflowUrl: south.url,
    devices,
    onError: (err) => errors.push(err),
    ...options,
  });
  return emulator;
}

let seq = 0;
const requestEnvelope = (deviceId: string, name: string, parameters: unknown = {}) => ({
  operation: {
    request: { id: `op-${++seq}`, deviceId, name, timestamp: Date.now(), parameters },
  },
});

async function push(
  emu: DeviceEmulator,
  deviceId: string,
  name = 'REBOOT_EQUIPMENT',
  init: { key?: string; body?: string } = {},
) {
  const envelope = requestEnvelope(deviceId, name, { type: 'HARDWARE' });
  const res = await fetch(emu.operationUrl(deviceId), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.key ? { 'X-ApiKey': init.key } : {}) },
    body: init.body ?? JSON.stringify(envelope),
  });
  const text = await res.text();
  return {
    status: res.status,
    text,
    body: text ? JSON.parse(text) : undefined,
    id: envelope.operation.request.id,
  };
}

async function waitFor(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const device = (id: string, behavior: EmulatedDevice['behavior'], extra: Partial<EmulatedDevice> = {}) => ({
  id,
  apiKey: `key-${id}`,
  behavior,
  ...extra,
});

describe('device emulator', () => {
  it('answers a sync device with the final response envelope in the body', async () => {
    const emu = await start([device('d-sync', { kind: 'sync' })]);
    const res = await push(emu, 'd-sync');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      version: '8.0',
      operation: {
        response: {
          id: res.id,
          deviceId: 'd-sync',
          name: 'REBOOT_EQUIPMENT',
          timestamp: expect.any(Number),
          resultCode: 'SUCCESSFUL',
          resultDescription: 'Success',
          steps: [
            {
              name: 'REBOOT_EQUIPMENT',
              timestamp: expect.any(Number),
              result: 'SUCCESSFUL',
              description: 'SUCCESSFUL',
              response: [],
            },
          ],
        },
      },
    });
    expect(emu.received('d-sync')).toEqual([
      expect.objectContaining({ operationId: res.id, via: 'push', parameters: { type: 'HARDWARE' } }),
    ]);
    expect(south.responses).toHaveLength(0);
  });

  it('uses the given result code, steps and delay of a sync behaviour', async () => {
    const emu = await start([
      device('d-sync2', {
        kind: 'sync',
        resultCode: 'ERROR_IN_PARAM',
        delayMs: 30,
        steps: [{ name: 'CHECK', result: 'ERROR', description: 'bad type' }],
      }),
    ]);
    const before = Date.now();
    const res = await push(emu, 'd-sync2');
    expect(Date.now() - before).toBeGreaterThanOrEqual(25);
    expect(res.body.operation.response).toMatchObject({
      resultCode: 'ERROR_IN_PARAM',
      steps: [{ name: 'CHECK', result: 'ERROR', description: 'bad type' }],
    });
  });

  it('answers an async device with 202, then posts its partials and the final response in order', async () => {
    const emu = await start([device('d-async', { kind: 'async', partials: 3, intervalMs: 5 })]);
    const res = await push(emu, 'd-async');
    expect(res.status).toBe(202);
    expect(res.text).toBe('');
    await emu.idle();
    const posted = south.responsesOf('d-async');
    expect(posted.map((r) => [r.steps.map((s: any) => s.name), r.resultCode])).toEqual([
      [['STEP_1'], undefined],
      [['STEP_2'], undefined],
      [['STEP_3'], undefined],
      [[], 'SUCCESSFUL'],
    ]);
    expect(posted.every((r) => r.id === res.id)).toBe(true);
    expect(posted[0]).not.toHaveProperty('resultDescription');
    expect(south.responses.every((r) => r.apiKey === 'key-d-async' && r.body.version === '8.0')).toBe(true);
    expect(emu.stats()).toMatchObject({ requests: 1, responsesPosted: 4, responseErrors: 0 });
  });

  it('reports the four firmware steps as partials, then SUCCESSFUL', async () => {
    const emu = await start([device('d-fw', { kind: 'firmware', intervalMs: 2 })]);
    expect((await push(emu, 'd-fw', 'UPDATE')).status).toBe(202);
    await emu.idle();
    const posted = south.responsesOf('d-fw');
    expect(posted.map((r) => r.steps.map((s: any) => `${s.name}:${s.result}`))).toEqual([
      ['BEGINUPDATE:SUCCESSFUL'],
      ['DOWNLOADFILE:SUCCESSFUL'],
      ['ENDINSTALL:SUCCESSFUL'],
      ['ENDUPDATE:SUCCESSFUL'],
      [],
    ]);
    expect(posted.map((r) => r.resultCode)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      'SUCCESSFUL',
    ]);
  });

  it('fails a firmware update at the given step, skips the later ones and ends ERROR_PROCESSING', async () => {
    const emu = await start([
      device('d-fw-bad', { kind: 'firmware', intervalMs: 2, failAtStep: 'DOWNLOADFILE' }),
    ]);
    await push(emu, 'd-fw-bad', 'UPDATE');
    await emu.idle();
    const posted = south.responsesOf('d-fw-bad');
    expect(posted.map((r) => [r.steps.map((s: any) => `${s.name}:${s.result}`), r.resultCode])).toEqual([
      [['BEGINUPDATE:SUCCESSFUL'], undefined],
      [['DOWNLOADFILE:ERROR'], undefined],
      [['ENDINSTALL:NOT_EXECUTED', 'ENDUPDATE:NOT_EXECUTED'], 'ERROR_PROCESSING'],
    ]);
  });

  it('fails with 503, then with a failure code, then succeeds, counting per device', async () => {
    const failing = { kind: 'failing', transportFailures: 1, failures: 1 } as const;
    const emu = await start([device('d-fail', failing), device('d-fail-2', failing)]);
    expect((await push(emu, 'd-fail')).status).toBe(503);
    const second = await push(emu, 'd-fail');
    expect(second.status).toBe(200);
    expect(second.body.operation.response.resultCode).toBe('ERROR_PROCESSING');
    const third = await push(emu, 'd-fail');
    expect(third.body.operation.response.resultCode).toBe('SUCCESSFUL');
    expect((await push(emu, 'd-fail-2')).status).toBe(503);
    expect(emu.stats().requests).toBe(4);
  });

  it('answers an unsupported device with a 4xx and a NOT_SUPPORTED final envelope', async () => {
    const emu = await start([
      device('d-unsup', { kind: 'unsupported' }),
      device('d-unsup-422', { kind: 'unsupported', status: 422 }),
    ]);
    const res = await push(emu, 'd-unsup', 'FACTORY_RESET');
    expect(res.status).toBe(400);
    expect(res.body.operation.response).toMatchObject({
      id: res.id,
      name: 'FACTORY_RESET',
      resultCode: 'NOT_SUPPORTED',
      resultDescription: 'Operation FACTORY_RESET is not supported',
    });
    expect((await push(emu, 'd-unsup-422')).status).toBe(422);
  });

  it('acknowledges for a silent device and never answers', async () => {
    const emu = await start([device('d-silent', { kind: 'silent' })]);
    const res = await push(emu, 'd-silent');
    expect(res.status).toBe(202);
    await emu.idle();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(south.responses).toHaveLength(0);
    expect(emu.received('d-silent')).toHaveLength(1);
  });

  it('lets perOperation behaviours override the device behaviour by operation name', async () => {
    const emu = await start([
      device('d-mixed', { kind: 'sync' }, { perOperation: { UPDATE: { kind: 'unsupported', status: 404 } } }),
    ]);
    expect((await push(emu, 'd-mixed', 'UPDATE')).status).toBe(404);
    expect((await push(emu, 'd-mixed', 'REBOOT_EQUIPMENT')).status).toBe(200);
  });

  it('rejects pushes without the expected platform key with 401, and records the key it accepts', async () => {
    const emu = await start([device('d-auth', { kind: 'sync' }, { expectedPlatformKey: 'platform-secret' })]);
    expect((await push(emu, 'd-auth')).status).toBe(401);
    expect((await push(emu, 'd-auth', 'REBOOT_EQUIPMENT', { key: 'wrong' })).status).toBe(401);
    expect((await push(emu, 'd-auth', 'REBOOT_EQUIPMENT', { key: 'platform-secret' })).status).toBe(200);
    expect(emu.received('d-auth')).toEqual([expect.objectContaining({ platformKey: 'platform-secret' })]);
  });

  it('answers 404 for an unknown device and 400 for a malformed body', async () => {
    const emu = await start([device('d-known', { kind: 'sync' })]);
    expect((await push(emu, 'nobody')).status).toBe(404);
    expect((await push(emu, 'd-known', 'X', { body: '{not json' })).status).toBe(400);
    expect((await push(emu, 'd-known', 'X', { body: '{"operation":{}}' })).status).toBe(400);
    const otherDevice = JSON.stringify(requestEnvelope('someone-else', 'REFRESH_INFO'));
    expect((await push(emu, 'd-known', 'X', { body: otherDevice })).status).toBe(400);
    const get = await fetch(emu.operationUrl('d-known'));
    await get.text();
    expect(get.status).toBe(405);
    expect(emu.received()).toHaveLength(0);
  });

  it('escapes device ids in operation URLs and routes them back', async () => {
    const emu = await start([device('gw:1@site', { kind: 'sync' })]);
    expect(emu.operationUrl('gw:1@site')).toBe(`${emu.url}/v80/devices/gw%3A1%40site/operation/request`);
    expect((await push(emu, 'gw:1@site')).status).toBe(200);
  });

  it('retries a response post after 5xx answers and counts one that finally fails', async () => {
    const emu = await start([device('d-retry', { kind: 'async', partials: 0, intervalMs: 1 })]);
    south.failNext = [503, 500];
    await push(emu, 'd-retry');
    await emu.idle();
    expect(south.responsesOf('d-retry')).toHaveLength(1);
    expect(emu.stats()).toMatchObject({ responsesPosted: 1, responseErrors: 0 });

    south.failNext = [503, 503, 503, 503];
    await push(emu, 'd-retry');
    await emu.idle();
    expect(emu.stats()).toMatchObject({ responsesPosted: 1, responseErrors: 1 });
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toContain('HTTP 503');
  });

  it('does not retry a response post that gets a 4xx', async () => {
    const emu = await start([device('d-403', { kind: 'async', partials: 0, intervalMs: 1 })]);
    south.failNext = [403];
    await push(emu, 'd-403');
    await emu.idle();
    expect(emu.stats()).toMatchObject({ responsesPosted: 0, responseErrors: 1 });
    expect(south.failNext).toEqual([]);
  });

  it('queues outbound calls beyond its concurrency cap and still posts each operation in order', async () => {
    const ids = ['d-q1', 'd-q2', 'd-q3', 'd-q4'];
    const emu = await start(
      ids.map((id) => device(id, { kind: 'async', partials: 2, intervalMs: 0 })),
      { maxConcurrentRequests: 1 },
    );
    await Promise.all(ids.map((id) => push(emu, id)));
    await emu.idle();
    for (const id of ids)
      expect(south.responsesOf(id).map((r) => r.resultCode ?? r.steps[0].name)).toEqual([
        'STEP_1',
        'STEP_2',
        'SUCCESSFUL',
      ]);
    expect(emu.stats().responsesPosted).toBe(12);
  });

  it('polls for a sleepy device with its key and answers each pending operation', async () => {
    const id = 'd-sleepy';
    south.queue(id, requestEnvelope(id, 'REFRESH_INFO'));
    south.queue(id, requestEnvelope(id, 'SET_CLOCK_EQUIPMENT'));
    const emu = await start([device(id, { kind: 'sleepy', pollIntervalMs: 10 })]);
    await waitFor(() => south.responsesOf(id).length === 2);
    expect(south.responsesOf(id).map((r) => [r.name, r.resultCode])).toEqual([
      ['REFRESH_INFO', 'SUCCESSFUL'],
      ['SET_CLOCK_EQUIPMENT', 'SUCCESSFUL'],
    ]);
    expect(south.polls.every((p) => p.deviceId === id && p.apiKey === `key-${id}`)).toBe(true);
    expect(emu.received(id).map((r) => r.via)).toEqual(['poll', 'poll']);
    expect((await push(emu, id)).status).toBe(404);
    expect(emu.stats().polls).toBeGreaterThan(0);
  });

  it('answers polled operations as the sleepy answer and perOperation behaviours say', async () => {
    const id = 'd-sleepy-2';
    south.queue(id, requestEnvelope(id, 'UPDATE'));
    south.queue(id, requestEnvelope(id, 'FACTORY_RESET'));
    const emu = await start([
      device(
        id,
        { kind: 'sleepy', pollIntervalMs: 10, answer: { kind: 'async', partials: 1, intervalMs: 1 } },
        { perOperation: { FACTORY_RESET: { kind: 'unsupported' } } },
      ),
    ]);
    await waitFor(() => south.responsesOf(id).length === 3);
    await emu.idle();
    const update = south.responsesOf(id).filter((r) => r.name === 'UPDATE');
    expect(update.map((r) => r.resultCode)).toEqual([undefined, 'SUCCESSFUL']);
    expect(south.responsesOf(id).find((r) => r.name === 'FACTORY_RESET')?.resultCode).toBe('NOT_SUPPORTED');
  });

  it('stops polling when a sleepy device is removed', async () => {
    const emu = await start([device('d-nap', { kind: 'sleepy', pollIntervalMs: 5 })]);
    await waitFor(() => south.polls.length >= 2);
    emu.removeDevice('d-nap');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const polls = south.polls.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(south.polls.length).toBe(polls);
  });

  it('refuses a TwinFlow URL that is not http(s)', async () => {
    await expect(startDeviceEmulator({ twinflowUrl: 'ftp://x' })).rejects.toThrow(/http\(s\) URL/);
    await expect(startDeviceEmulator({ twinflowUrl: 'nope' })).rejects.toThrow(/http\(s\) URL/);
  });

  it('refuses bad behaviours and duplicate devices', async () => {
    const emu = await start([device('d-one', { kind: 'sync' })]);
    expect(() => emu.addDevice(device('d-one', { kind: 'sync' }))).toThrow(/already emulated/);
    expect(() => emu.addDevice(device('d-bad', { kind: 'unsupported', status: 500 }))).toThrow(/4xx/);
    expect(() => emu.addDevice(device('d-bad', { kind: 'async', partials: -1 }))).toThrow(/partials/);
  });

  it('drops pending answers and timers on close', async () => {
    const emu = await start([
      device('d-long', { kind: 'async', partials: 1, intervalMs: 60_000 }),
      device('d-slow', { kind: 'slow', delayMs: 60_000 }),
      device('d-poll', { kind: 'sleepy', pollIntervalMs: 60_000 }),
    ]);
    await push(emu, 'd-long');
    const slow = push(emu, 'd-slow').catch((err: unknown) => err);
    await waitFor(() => emu.received('d-slow').length === 1);
    // Resolving at all within the test's timeout shows the minute-long timers were dropped.
    await emu.close();
    expect(await slow).toMatchObject({ message: 'fetch failed' });
    expect(south.responses).toHaveLength(0);
    expect(() => emu.addDevice(device('late', { kind: 'sync' }))).toThrow(/closed/);
  });
});
