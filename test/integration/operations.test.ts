// The operations engine against real servers and emulated devices: every delivery strategy and final state.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import * as proto from '@temporalio/proto';
import { type Behavior, type DeviceEmulator, startDeviceEmulator } from '../../emulator/device-emulator';
import { operationWorkflowId } from '../../workflows/ids';
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
import type { MongoClient } from 'mongodb';

const FINAL = ['SUCCESSFUL', 'FAILED', 'TIMEOUT', 'EXPIRED', 'CANCELLED'];

describe('operations', () => {
  let tf: TwinflowProcess;
  let admin: ApiClient;
  let emulator: DeviceEmulator;
  let temporal: { client: Client; close(): Promise<void> };
  let mongo: MongoClient;
  /** What the emulated devices could not do (a lost poll answer or response post); shown when an operation sticks. */
  const emulatorErrors: string[] = [];

  beforeAll(async () => {
    tf = await startTwinflow();
    admin = apiClient(tf.baseUrl, tf.adminKey);
    emulator = await startDeviceEmulator({
      twinflowUrl: tf.baseUrl,
      onError: (err) => emulatorErrors.push(err instanceof Error ? err.message : String(err)),
    });
    temporal = await temporalClient();
    mongo = await mongoClient();
  });
  afterAll(async () => {
    if (process.env.TWINFLOW_IT_SHOW_OUTPUT) console.log(tf?.output());
    await emulator?.close();
    await temporal?.close();
    await mongo?.close();
    await tf?.stop();
  });

  /** Provisions a device played by the emulator; answers its id and device key. */
  async function device(
    behavior: Behavior,
    options: { type?: string; perOperation?: Record<string, Behavior>; platformKey?: string } = {},
  ): Promise<{ id: string; key: string; client: ApiClient }> {
    const id = uniqueName(behavior.kind).replace(/_/g, '-');
    const sleepy = behavior.kind === 'sleepy';
    const res = await admin.post('/north/v1/devices', {
      id,
      ...(options.type ? { type: options.type } : {}),
      transport: sleepy
        ? { sleepy: true }
        : {
            http: {
              operationUrl: emulator.operationUrl(id),
              ...(options.platformKey ? { apiKey: options.platformKey } : {}),
            },
          },
    });
    expect(res.status).toBe(201);
    const key = res.body.apiKey as string;
    emulator.addDevice({
      id,
      apiKey: key,
      behavior,
      ...(options.perOperation ? { perOperation: options.perOperation } : {}),
      ...(options.platformKey ? { expectedPlatformKey: options.platformKey } : {}),
    });
    return { id, key, client: apiClient(tf.baseUrl, key) };
  }

  /** Waits until the operation shows the status. */
  const statusBecomes = (opId: string, status: string) =>
    eventually(async () => {
      const res = await admin.get(`/north/v1/operations/${opId}`);
      expect(res.body.status).toBe(status);
      return true;
    });

  const request = (deviceId: string, body: Record<string, unknown>) =>
    admin.post(`/north/v1/devices/${deviceId}/operations`, body);

  async function finalOf(opId: string): Promise<any> {
    try {
      return await eventually(async () => {
        const res = await admin.get(`/north/v1/operations/${opId}?waitMs=2000`);
        expect(res.status).toBe(200);
        expect(FINAL).toContain(res.body.status);
        return res.body;
      }, 30_000);
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${await whyNotFinal(opId)}`);
    }
  }

  /** What an operation that did not end went through: its record, its workflow's history, the emulator's errors. */
  async function whyNotFinal(opId: string): Promise<string> {
    const record = (await admin.get(`/north/v1/operations/${opId}`)).body;
    let history = '';
    try {
      const handle = temporal.client.workflow.getHandle(
        operationWorkflowId('default', record.deviceId, opId),
      );
      const events = (await handle.fetchHistory()).events ?? [];
      history = events
        .map((e) => {
          const type =
            proto.temporal.api.enums.v1.EventType[e.eventType ?? 0]?.replace('EVENT_TYPE_', '') ??
            String(e.eventType);
          const signal = e.workflowExecutionSignaledEventAttributes?.signalName;
          return signal ? `${type}(${signal})` : type;
        })
        .join(' ');
    } catch (err) {
      history = `history unavailable: ${String(err)}`;
    }
    const received = record.deviceId ? emulator.received(record.deviceId) : [];
    return [
      `record: ${JSON.stringify(record)}`,
      `history: ${history}`,
      `emulator received: ${JSON.stringify(received)}`,
      `emulator errors: ${JSON.stringify(emulatorErrors)}`,
      `TwinFlow output (tail): ${tf.output().slice(-4_000)}`,
    ].join('\n');
  }

  it('runs a synchronous operation: the final answer in the HTTP body', async () => {
    const d = await device({ kind: 'sync' }, { platformKey: 'device-side-secret' });
    const res = await request(d.id, { name: 'REBOOT_EQUIPMENT', parameters: { type: 'HARDWARE' } });
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`/north/v1/operations/${res.body.id}`);
    expect(res.body).toMatchObject({ name: 'REBOOT_EQUIPMENT', deviceId: d.id, delivery: 'push' });
    expect(['QUEUED', 'DELIVERED', 'SUCCESSFUL']).toContain(res.body.status);
    const op = await finalOf(res.body.id);
    expect(op).toMatchObject({ status: 'SUCCESSFUL', resultCode: 'SUCCESSFUL' });
    expect(op.attempts).toHaveLength(1);
    expect(op.attempts[0]).toMatchObject({ attempt: 1, resultCode: 'SUCCESSFUL', transportErrors: 0 });
    expect(op.deliveredAt).toEqual(expect.any(Number));
    expect(op.finishedAt).toBeGreaterThanOrEqual(op.deliveredAt);
    expect(op.requestedBy).toMatch(/^key:tfk_/);
    // The device got the request with its parameters and the key it expects.
    const got = emulator.received(d.id);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({
      operationId: op.id,
      name: 'REBOOT_EQUIPMENT',
      parameters: { type: 'HARDWARE' },
    });
    expect(got[0]!.platformKey).toBe('device-side-secret');
    // The device view never shows that key.
    const view = await admin.get(`/north/v1/devices/${d.id}`);
    expect(JSON.stringify(view.body)).not.toContain('device-side-secret');
    expect(view.body.transport.http.hasApiKey).toBe(true);
  });

  it('runs an asynchronous operation: an acknowledgement, partial responses, then the final one', async () => {
    const d = await device({ kind: 'async', partials: 3, intervalMs: 30 });
    const res = await request(d.id, { name: 'REFRESH_INFO' });
    expect(res.status).toBe(202);
    const op = await finalOf(res.body.id);
    expect(op.status).toBe('SUCCESSFUL');
    expect(op.steps.map((s: { name: string }) => s.name)).toEqual(
      expect.arrayContaining(['STEP_1', 'STEP_2', 'STEP_3']),
    );
    expect(op.steps.every((s: { attempt: number }) => s.attempt === 1)).toBe(true);
  });

  it('records every step of a multi-step firmware update on a typed device', async () => {
    const d = await device({ kind: 'firmware', intervalMs: 30 }, { type: 'electricity-meter' });
    const res = await request(d.id, {
      name: 'UPDATE',
      parameters: {
        deploymentElements: [
          { name: 'fw', version: '2.1.0', downloadUrl: 'https://fw.example.com/2.1.0.bin' },
        ],
      },
    });
    expect(res.status).toBe(202);
    const op = await finalOf(res.body.id);
    expect(op.status).toBe('SUCCESSFUL');
    const names = op.steps.map((s: { name: string }) => s.name);
    expect(names.slice(0, 4)).toEqual(['BEGINUPDATE', 'DOWNLOADFILE', 'ENDINSTALL', 'ENDUPDATE']);
    // The Web UI finds the operation by its search attributes.
    const handle = temporal.client.workflow.getHandle(operationWorkflowId('default', d.id, op.id));
    const desc = await handle.describe();
    expect(desc.status.name).toBe('COMPLETED');
    expect(desc.searchAttributes).toMatchObject({
      TwinflowOperation: ['UPDATE'],
      TwinflowStatus: ['SUCCESSFUL'],
      TwinflowDeviceId: [d.id],
      TwinflowOrg: ['default'],
    });
  });

  it('fails a firmware update that breaks at a step, with the later steps not executed', async () => {
    const d = await device({ kind: 'firmware', intervalMs: 20, failAtStep: 'DOWNLOADFILE' });
    const res = await request(d.id, { name: 'UPDATE', parameters: { deploymentElements: [] } });
    expect(res.status).toBe(202);
    const op = await finalOf(res.body.id);
    expect(op).toMatchObject({ status: 'FAILED', resultCode: 'ERROR_PROCESSING' });
    const download = op.steps.find((s: { name: string }) => s.name === 'DOWNLOADFILE');
    expect(download.result).toBe('ERROR');
  });

  it('retries a device that fails twice, then succeeds, recording each attempt', async () => {
    const d = await device({ kind: 'failing', failures: 2 });
    const res = await request(d.id, { name: 'REFRESH_INFO', retries: 3, retriesDelayMs: 50 });
    const op = await finalOf(res.body.id);
    expect(op.status).toBe('SUCCESSFUL');
    expect(op.attempts.map((a: { resultCode: string }) => a.resultCode)).toEqual([
      'ERROR_PROCESSING',
      'ERROR_PROCESSING',
      'SUCCESSFUL',
    ]);
    expect(emulator.received(d.id)).toHaveLength(3);
  });

  it('stops retrying when retries run out, and does not retry codes outside retryResultList', async () => {
    const d = await device({ kind: 'failing', failures: 5 });
    const out = await finalOf((await request(d.id, { name: 'A', retries: 1, retriesDelayMs: 10 })).body.id);
    expect(out).toMatchObject({ status: 'FAILED', resultCode: 'ERROR_PROCESSING' });
    expect(out.attempts).toHaveLength(2);
    const notListed = await finalOf(
      (
        await request(d.id, {
          name: 'B',
          retries: 3,
          retriesDelayMs: 10,
          retryResultList: ['ERROR_IN_PARAM'],
        })
      ).body.id,
    );
    expect(notListed.attempts).toHaveLength(1);
    expect(notListed.status).toBe('FAILED');
  });

  it('retries transport failures (5xx) with backoff inside one attempt', async () => {
    const d = await device({ kind: 'failing', transportFailures: 2 });
    const op = await finalOf((await request(d.id, { name: 'REFRESH_INFO', timeoutMs: 10_000 })).body.id);
    expect(op.status).toBe('SUCCESSFUL');
    expect(op.attempts).toHaveLength(1);
    expect(op.attempts[0].transportErrors).toBe(2);
  });

  it('ends as TIMEOUT with ERROR_TIMEOUT when a device never answers', async () => {
    const d = await device({ kind: 'silent' });
    const op = await finalOf((await request(d.id, { name: 'REFRESH_INFO', timeoutMs: 500 })).body.id);
    expect(op).toMatchObject({ status: 'TIMEOUT', resultCode: 'ERROR_TIMEOUT' });
  });

  it('ends as TIMEOUT when the device cannot be reached at all', async () => {
    const id = uniqueName('gone').replace(/_/g, '-');
    await admin.post('/north/v1/devices', {
      id,
      transport: { http: { operationUrl: 'http://127.0.0.1:9/v80/devices/x/operation/request' } },
    });
    const op = await finalOf((await request(id, { name: 'REFRESH_INFO', timeoutMs: 1_000 })).body.id);
    expect(op).toMatchObject({ status: 'TIMEOUT', resultCode: 'ERROR_TIMEOUT' });
    expect(op.attempts[0].transportErrors).toBeGreaterThan(0);
  });

  it('ends as FAILED with NOT_SUPPORTED when the device answers 4xx', async () => {
    const d = await device({ kind: 'unsupported' });
    const op = await finalOf((await request(d.id, { name: 'FACTORY_RESET', retries: 3 })).body.id);
    expect(op).toMatchObject({ status: 'FAILED', resultCode: 'NOT_SUPPORTED' });
    expect(op.attempts).toHaveLength(1);
  });

  it('judges a device answer over 1 MiB by its status alone, declared or streamed', async () => {
    // A device server of its own: it refuses every push with a 2 MiB answer for the same operation, which says
    // SUCCESSFUL, its length announced or chunked.
    const server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const id = (JSON.parse(body) as { operation: { request: { id: string } } }).operation.request.id;
        // Valid but for its size: fields the envelope does not know are dropped when it is read.
        const answer = JSON.stringify({
          operation: { response: { id, resultCode: 'SUCCESSFUL' } },
          padding: 'x'.repeat(2 << 20),
        });
        res.writeHead(400, {
          'content-type': 'application/json',
          ...(req.url?.includes('declared') ? { 'content-length': String(Buffer.byteLength(answer)) } : {}),
        });
        res.end(answer);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      for (const how of ['declared', 'chunked']) {
        const id = uniqueName(`big-${how}`).replace(/_/g, '-');
        const created = await admin.post('/north/v1/devices', {
          id,
          transport: { http: { operationUrl: `http://127.0.0.1:${port}/${how}/${id}` } },
        });
        expect(created.status).toBe(201);
        const op = await finalOf((await request(id, { name: 'REFRESH_INFO' })).body.id);
        // The body's SUCCESSFUL is never read: a 400 is a parameter error.
        expect(op).toMatchObject({ status: 'FAILED', resultCode: 'ERROR_IN_PARAM' });
      }
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('runs one operation at a time per device, in order', async () => {
    const d = await device({ kind: 'slow', delayMs: 150 });
    const ids: string[] = [];
    for (const name of ['FIRST', 'SECOND', 'THIRD']) ids.push((await request(d.id, { name })).body.id);
    const second = await admin.get(`/north/v1/operations/${ids[1]}`);
    expect(['QUEUED', 'DELIVERED', 'SUCCESSFUL']).toContain(second.body.status);
    const ops = await Promise.all(ids.map(finalOf));
    expect(ops.every((o) => o.status === 'SUCCESSFUL')).toBe(true);
    // Each started after the one before it had finished.
    for (let i = 1; i < ops.length; i++) {
      expect(ops[i].attempts[0].startedAt).toBeGreaterThanOrEqual(ops[i - 1].finishedAt);
    }
    expect(emulator.received(d.id).map((r) => r.name)).toEqual(['FIRST', 'SECOND', 'THIRD']);
  });

  describe('sleepy devices', () => {
    it('stores how many operations wait before it answers a request, so an empty poll need not ask the twin', async () => {
      const id = uniqueName('sleeper').replace(/_/g, '-');
      const created = await admin.post('/north/v1/devices', { id, transport: { sleepy: true } });
      const dev = apiClient(tf.baseUrl, created.body.apiKey);
      const markers = mongo
        .db(tf.env.MONGODB_DB)
        .collection<{ _id: string; waiting: number }>('pending_markers');
      const marker = async () => (await markers.findOne({ _id: `default/${id}` }))?.waiting;
      // A poll before anything was requested asks the twin, which stores its marker before it answers.
      expect((await dev.get(`/south/v80/devices/${id}/operation/pending`)).body).toEqual([]);
      expect(await marker()).toBe(0);
      expect((await dev.get(`/south/v80/devices/${id}/operation/pending`)).body).toEqual([]);
      // Acknowledged means stored: the marker counts the operation before the 202.
      const a = await request(id, { name: 'REFRESH_INFO' });
      expect(await marker()).toBe(1);
      const polled = await dev.get(`/south/v80/devices/${id}/operation/pending`);
      expect(polled.body.map((e: any) => e.operation.request.id)).toEqual([a.body.id]);
      // The poll that took it answered once the marker said nothing waits: the next poll skips the twin.
      expect(await marker()).toBe(0);
      expect((await dev.get(`/south/v80/devices/${id}/operation/pending`)).body).toEqual([]);
      // Its response may overtake the hand-over; the operation holds it and ends all the same.
      await dev.post(`/south/v80/devices/${id}/operation/response`, {
        operation: { response: { id: a.body.id, resultCode: 'SUCCESSFUL' } },
      });
      expect((await finalOf(a.body.id)).status).toBe('SUCCESSFUL');
    });

    it('waits for a poll, hands each operation over once, then takes its responses', async () => {
      const id = uniqueName('sleeper').replace(/_/g, '-');
      const created = await admin.post('/north/v1/devices', { id, transport: { sleepy: true } });
      const dev = apiClient(tf.baseUrl, created.body.apiKey);
      const a = await request(id, { name: 'REFRESH_INFO' });
      const b = await request(id, { name: 'REBOOT_EQUIPMENT', parameters: { type: 'SOFTWARE' } });
      expect(a.body.status).toBe('WAITING_FOR_CONNECTION');
      expect(a.body.delivery).toBe('pending');

      const first = await dev.get(`/south/v80/devices/${id}/operation/pending?limit=1`);
      expect(first.status).toBe(200);
      expect(first.body).toHaveLength(1);
      expect(first.body[0].operation.request).toMatchObject({
        id: a.body.id,
        deviceId: id,
        name: 'REFRESH_INFO',
      });
      const rest = await dev.post(`/south/v80/devices/${id}/operation/pending`);
      expect(rest.body.map((e: any) => e.operation.request.id)).toEqual([b.body.id]);
      expect(rest.body[0].operation.request.parameters).toEqual({ type: 'SOFTWARE' });
      // Handed over once: a new poll gets nothing.
      expect((await dev.get(`/south/v80/devices/${id}/operation/pending`)).body).toEqual([]);
      // The poll answers without waiting for the operation to hear of the hand-over; it hears of it at once after.
      await statusBecomes(a.body.id, 'DELIVERED');

      const respond = (opId: string, extra: Record<string, unknown>) =>
        dev.post(`/south/v80/devices/${id}/operation/response`, {
          version: '7.0',
          operation: { response: { id: opId, deviceId: id, timestamp: Date.now(), ...extra } },
        });
      expect(
        (await respond(a.body.id, { steps: [{ name: 'COLLECT', result: 'SUCCESSFUL', timestamp: 1 }] }))
          .status,
      ).toBe(201);
      await statusBecomes(a.body.id, 'IN_PROGRESS');
      expect((await respond(a.body.id, { resultCode: 'SUCCESSFUL', resultDescription: 'done' })).status).toBe(
        201,
      );
      expect((await respond(b.body.id, { resultCode: 'ERROR_PROCESSING' })).status).toBe(201);
      const opA = await finalOf(a.body.id);
      expect(opA).toMatchObject({ status: 'SUCCESSFUL', resultDescription: 'done' });
      expect(opA.steps.map((s: any) => s.name)).toEqual(['COLLECT']);
      expect((await finalOf(b.body.id)).status).toBe('FAILED');

      // A repeated final response after the end changes nothing and is counted as late.
      const late = await respond(a.body.id, { resultCode: 'ERROR_PROCESSING' });
      expect(late.status).toBe(200);
      expect(late.body).toMatchObject({ late: true, status: 'SUCCESSFUL' });
      const after = (await admin.get(`/north/v1/operations/${a.body.id}`)).body;
      expect(after).toMatchObject({ status: 'SUCCESSFUL', resultCode: 'SUCCESSFUL', lateResponses: 1 });
    });

    it('plays an emulated sleepy poller end to end', async () => {
      const d = await device({ kind: 'sleepy', pollIntervalMs: 100 });
      const op = await finalOf((await request(d.id, { name: 'REFRESH_INFO' })).body.id);
      expect(op.status).toBe('SUCCESSFUL');
      expect(emulator.received(d.id)[0]?.via).toBe('poll');
    });

    it('expires an operation the device never polls for', async () => {
      const id = uniqueName('sleeper').replace(/_/g, '-');
      await admin.post('/north/v1/devices', { id, transport: { sleepy: true } });
      const op = await finalOf((await request(id, { name: 'REFRESH_INFO', ttlMs: 300 })).body.id);
      expect(op).toMatchObject({ status: 'EXPIRED', resultCode: 'EXPIRED', deliveredAt: null });
      expect(op.attempts).toHaveLength(0);
    });

    it('treats a device with no push channel as sleepy', async () => {
      const id = uniqueName('plain').replace(/_/g, '-');
      await admin.post('/north/v1/devices', { id });
      const res = await request(id, { name: 'REFRESH_INFO' });
      expect(res.body).toMatchObject({ delivery: 'pending', status: 'WAITING_FOR_CONNECTION' });
    });

    it('times out a handed-over operation the device never answers, and retries it at the next poll', async () => {
      const id = uniqueName('sleeper').replace(/_/g, '-');
      const created = await admin.post('/north/v1/devices', { id, transport: { sleepy: true } });
      const dev = apiClient(tf.baseUrl, created.body.apiKey);
      const res = await request(id, { name: 'REFRESH_INFO', timeoutMs: 300, retries: 1, retriesDelayMs: 10 });
      expect((await dev.get(`/south/v80/devices/${id}/operation/pending`)).body).toHaveLength(1);
      await eventually(async () => {
        const again = await dev.get(`/south/v80/devices/${id}/operation/pending`);
        expect(again.body.map((e: any) => e.operation.request.id)).toEqual([res.body.id]);
        return true;
      });
      const op = await finalOf(res.body.id);
      expect(op).toMatchObject({ status: 'TIMEOUT', resultCode: 'ERROR_TIMEOUT' });
      expect(op.attempts).toHaveLength(2);
    });
  });

  describe('cancel', () => {
    it('cancels a queued operation behind a running one', async () => {
      // An asynchronous device: its operation runs in its workflow until the device answers.
      const d = await device({ kind: 'async', partials: 1, intervalMs: 800 });
      const running = await request(d.id, { name: 'RUNNING' });
      const queued = await request(d.id, { name: 'QUEUED_ONE' });
      const res = await admin.post(`/north/v1/operations/${queued.body.id}/cancel`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'CANCELLED', resultCode: 'CANCELLED', deliveredAt: null });
      expect(res.body.cancelledBy).toMatch(/^key:tfk_/);
      expect((await finalOf(running.body.id)).status).toBe('SUCCESSFUL');
      expect(emulator.received(d.id).map((r) => r.name)).toEqual(['RUNNING']);
    });

    it('cancels a waiting operation so it is never handed over', async () => {
      const id = uniqueName('sleeper').replace(/_/g, '-');
      const created = await admin.post('/north/v1/devices', { id, transport: { sleepy: true } });
      const res = await request(id, { name: 'REFRESH_INFO' });
      expect((await admin.post(`/north/v1/operations/${res.body.id}/cancel`)).body.status).toBe('CANCELLED');
      const dev = apiClient(tf.baseUrl, created.body.apiKey);
      expect((await dev.get(`/south/v80/devices/${id}/operation/pending`)).body).toEqual([]);
    });

    it('cancels a delivered operation; the device answer afterwards is late', async () => {
      const d = await device({ kind: 'silent' });
      const res = await request(d.id, { name: 'REFRESH_INFO' });
      await statusBecomes(res.body.id, 'DELIVERED');
      const cancelled = await admin.post(`/north/v1/operations/${res.body.id}/cancel`);
      expect(cancelled.body).toMatchObject({ status: 'CANCELLED' });
      const late = await d.client.post(`/south/v80/devices/${d.id}/operation/response`, {
        operation: { response: { id: res.body.id, resultCode: 'SUCCESSFUL' } },
      });
      expect(late.status).toBe(200);
      expect((await admin.get(`/north/v1/operations/${res.body.id}`)).body).toMatchObject({
        status: 'CANCELLED',
        lateResponses: 1,
      });
    });

    it('cancels a running operation between partial responses', async () => {
      const d = await device({ kind: 'async', partials: 20, intervalMs: 100 });
      const res = await request(d.id, { name: 'REFRESH_INFO' });
      await statusBecomes(res.body.id, 'IN_PROGRESS');
      const cancelled = await admin.post(`/north/v1/operations/${res.body.id}/cancel`);
      expect(cancelled.body.status).toBe('CANCELLED');
      const stepsAtCancel = cancelled.body.steps.length;
      // The device goes on sending partials: once one of them is counted as late, it was processed after the
      // cancel and must have added no step.
      const after = await eventually(async () => {
        const view = (await admin.get(`/north/v1/operations/${res.body.id}`)).body;
        return view.lateResponses > 0 ? view : undefined;
      });
      expect(after.status).toBe('CANCELLED');
      expect(after.steps).toHaveLength(stepsAtCancel);
    });

    it('refuses to cancel an ended operation (409) and an unknown one (404)', async () => {
      const d = await device({ kind: 'sync' });
      const op = await finalOf((await request(d.id, { name: 'REFRESH_INFO' })).body.id);
      expect((await admin.post(`/north/v1/operations/${op.id}/cancel`)).status).toBe(409);
      expect(
        (await admin.post(`/north/v1/operations/00000000-0000-4000-8000-000000000000/cancel`)).status,
      ).toBe(404);
    });

    it('cancels every open operation when the device is decommissioned', async () => {
      const id = uniqueName('sleeper').replace(/_/g, '-');
      await admin.post('/north/v1/devices', { id, transport: { sleepy: true } });
      const res = await request(id, { name: 'REFRESH_INFO' });
      expect((await admin.delete(`/north/v1/devices/${id}`)).status).toBeLessThan(300);
      const op = await finalOf(res.body.id);
      expect(op).toMatchObject({ status: 'CANCELLED', cancelledBy: 'decommission' });
    });
  });

  describe('responses and lists', () => {
    it('answers 404 for an unknown operation id and 403 for another device’s operation', async () => {
      const owner = await device({ kind: 'silent' });
      const other = await device({ kind: 'silent' });
      const res = await request(owner.id, { name: 'REFRESH_INFO' });
      const unknown = await other.client.post(`/south/v80/devices/${other.id}/operation/response`, {
        operation: { response: { id: '00000000-0000-4000-8000-000000000000', resultCode: 'SUCCESSFUL' } },
      });
      expect(unknown.status).toBe(404);
      const foreign = await other.client.post(`/south/v80/devices/${other.id}/operation/response`, {
        operation: { response: { id: res.body.id, resultCode: 'SUCCESSFUL' } },
      });
      expect(foreign.status).toBe(403);
      // Nor may a device answer through another device's URL.
      const wrongUrl = await other.client.post(`/south/v80/devices/${owner.id}/operation/response`, {
        operation: { response: { id: res.body.id, resultCode: 'SUCCESSFUL' } },
      });
      expect(wrongUrl.status).toBe(403);
      expect((await admin.get(`/north/v1/operations/${res.body.id}`)).body.status).not.toBe('SUCCESSFUL');
    });

    it('lists a device’s operations newest first, with a cursor and a status filter', async () => {
      const d = await device({ kind: 'sync' });
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await request(d.id, { name: `OP_${i}` })).body.id);
      await Promise.all(ids.map(finalOf));
      const page1 = await admin.get(`/north/v1/devices/${d.id}/operations?limit=3`);
      expect(page1.status).toBe(200);
      expect(page1.body.items.map((o: any) => o.id)).toEqual([ids[4], ids[3], ids[2]]);
      const page2 = await admin.get(
        `/north/v1/devices/${d.id}/operations?limit=3&cursor=${page1.body.nextCursor}`,
      );
      expect(page2.body.items.map((o: any) => o.id)).toEqual([ids[1], ids[0]]);
      expect(page2.body.nextCursor).toBeNull();
      const ok = await admin.get(`/north/v1/devices/${d.id}/operations?status=SUCCESSFUL`);
      expect(ok.body.items).toHaveLength(5);
      const none = await admin.get(`/north/v1/devices/${d.id}/operations?status=FAILED`);
      expect(none.body.items).toHaveLength(0);
    });

    it('keeps the read model in MongoDB', async () => {
      const d = await device({ kind: 'sync' });
      const op = await finalOf((await request(d.id, { name: 'REFRESH_INFO' })).body.id);
      const doc = await mongo
        .db(tf.env.MONGODB_DB)
        .collection('operations')
        .findOne({ _id: `default/${op.id}` as any });
      expect(doc).toMatchObject({ status: 'SUCCESSFUL', deviceId: d.id, org: 'default' });
    });
  });
});
