// The operation workflow in-process: started by its twin or directly with its input, it is handed over and
// answered, expires, is cancelled, retries and times out, and pushes to a device played by a local HTTP server.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OperationRepository } from '../../../inventory/operations.repo';
import type { OperationRequest, RequestEnvelope } from '../../../twins/operations';
import { operationWorkflowId, twinWorkflowId } from '../../../workflows/ids';
import { getOperationQuery, reportResponseSignal } from '../../../workflows/operation.messages';
import type { operationWorkflow } from '../../../workflows/operation.workflow';
import {
  cancelOperationUpdate,
  claimPendingOperationsUpdate,
  getTwinStateQuery,
  requestOperationUpdate,
} from '../../../workflows/twin.messages';
import { eventually } from '../harness';
import {
  type WorkflowEnv,
  FAST_TWIN_OPTIONS,
  openWorkflowEnv,
  operationRequest,
  resultOf,
  startTwin,
  uniqueId,
} from './workflow-env';

interface DeviceCall {
  readonly headers: http.IncomingHttpHeaders;
  readonly envelope: RequestEnvelope;
}

/** A device's operation endpoint on 127.0.0.1: records every push and answers as `answer` says. */
async function startDevice(answer: (call: DeviceCall) => { status: number; body?: unknown }) {
  const calls: DeviceCall[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const call = {
        headers: req.headers,
        envelope: JSON.parse(Buffer.concat(chunks).toString('utf8')) as RequestEnvelope,
      };
      calls.push(call);
      const { status, body } = answer(call);
      if (status === 0) return; // a device that never answers
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v80/devices/dev/operation/request`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An OpenGate v80 response envelope, as a device sends it. */
const responseBody = (id: string, resultCode: string, steps: { name: string; result: string }[] = []) => ({
  version: '8.0',
  operation: { response: { id, resultCode, timestamp: Date.now(), steps } },
});

describe('the operation workflow', () => {
  let env: WorkflowEnv;
  let records: OperationRepository;
  beforeAll(async () => {
    env = await openWorkflowEnv();
    records = new OperationRepository(env.inventory.collections);
  });
  afterAll(async () => {
    await env?.close();
  });

  const opHandle = (req: OperationRequest) =>
    env.client.workflow.getHandle<typeof operationWorkflow>(
      operationWorkflowId(req.org, req.deviceId, req.id),
    );

  /** Starts the operation's workflow directly with its input, as the twin would with a free slot. */
  const startDirectly = (tq: string, request: OperationRequest, startNow = true) =>
    env.client.workflow.start<typeof operationWorkflow>('operationWorkflow', {
      workflowId: operationWorkflowId(request.org, request.deviceId, request.id),
      taskQueue: tq,
      // No twin runs under this id: telling it is best effort, and the operation goes on alone.
      args: [
        { request, startNow, twinWorkflowId: twinWorkflowId(request.org, 'no-twin'), recordWrittenRev: 0 },
      ],
    });

  it('finishes SUCCESSFUL when a handed-over pending operation is answered', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId);
      const request = operationRequest(env.org, deviceId);
      await twin.executeUpdate(requestOperationUpdate, { args: [request] });
      const [envelope] = await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1 }] });
      expect(envelope?.operation.request.id).toBe(request.id);

      await opHandle(request).signal(reportResponseSignal, {
        response: { steps: [{ name: 'REFRESH_INFO', result: 'SUCCESSFUL' }] },
        receivedAt: Date.now(),
      });
      const partial = await eventually(async () => {
        const r = await opHandle(request).query(getOperationQuery);
        return r.status === 'IN_PROGRESS' ? r : undefined;
      });
      expect(partial.steps.map((s) => s.name)).toEqual(['REFRESH_INFO']);
      await opHandle(request).signal(reportResponseSignal, {
        response: { resultCode: 'SUCCESSFUL', resultDescription: 'done' },
        receivedAt: Date.now(),
      });

      const final = await resultOf(opHandle(request));
      expect(final).toMatchObject({
        status: 'SUCCESSFUL',
        resultCode: 'SUCCESSFUL',
        resultDescription: 'done',
        lateResponses: 0,
      });
      expect(final.attempts).toHaveLength(1);
      // A run the twin starts today asks no patch, and publishes each status it rests in once.
      const events = (await opHandle(request).fetchHistory()).events ?? [];
      expect(events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')).toEqual([]);
      const published = events.flatMap((e) => {
        const fields = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields;
        return fields ? [Object.keys(fields).join()] : [];
      });
      expect(published).toEqual(['TwinflowStatus', 'TwinflowStatus', 'TwinflowStatus']);
      expect((await opHandle(request).describe()).searchAttributes.TwinflowStatus).toEqual(['SUCCESSFUL']);
      // The read model has the final record, and the twin has let the operation go.
      expect(await records.get(env.org, request.id)).toMatchObject({ status: 'SUCCESSFUL', rev: final.rev });
      await eventually(async () =>
        (await twin.query(getTwinStateQuery)).operations.open.length === 0 ? true : undefined,
      );
    }));

  it('expires when the device does not poll before its time to live', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId);
      const request = operationRequest(env.org, deviceId, { ttlMs: 1_000 });
      await twin.executeUpdate(requestOperationUpdate, { args: [request] });
      const final = await resultOf(opHandle(request));
      expect(final).toMatchObject({ status: 'EXPIRED', resultCode: 'EXPIRED', deliveredAt: null });
      expect(final.attempts).toEqual([]);
      // An expired operation is not handed over any more.
      await eventually(async () =>
        (await twin.query(getTwinStateQuery)).operations.open.length === 0 ? true : undefined,
      );
      expect(await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 5 }] })).toEqual([]);
    }));

  it('is cancelled through its twin after it was handed over; a later answer counts as late', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId);
      const request = operationRequest(env.org, deviceId);
      await twin.executeUpdate(requestOperationUpdate, { args: [request] });
      await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1 }] });
      await twin.executeUpdate(cancelOperationUpdate, { args: [{ id: request.id, by: 'operator' }] });
      const final = await resultOf(opHandle(request));
      expect(final).toMatchObject({ status: 'CANCELLED', resultCode: 'CANCELLED', cancelledBy: 'operator' });
      expect(final.attempts).toEqual([expect.objectContaining({ resultCode: 'CANCELLED' })]);
    }));

  it('tries again after a timeout, is handed over again, and ends TIMEOUT when no attempt is answered', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId);
      const request = operationRequest(env.org, deviceId, {
        timeoutMs: 500,
        retries: 1,
        retriesDelayMs: 50,
      });
      await twin.executeUpdate(requestOperationUpdate, { args: [request] });
      const first = await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1 }] });
      expect(first.map((e) => e.operation.request.id)).toEqual([request.id]);
      // The first attempt times out; the operation goes back to the queue for the next poll.
      const second = await eventually(async () => {
        const claimed = await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1 }] });
        return claimed.length > 0 ? claimed : undefined;
      });
      expect(second.map((e) => e.operation.request.id)).toEqual([request.id]);
      const final = await resultOf(opHandle(request));
      expect(final).toMatchObject({ status: 'TIMEOUT', resultCode: 'ERROR_TIMEOUT' });
      expect(final.attempts.map((a) => a.resultCode)).toEqual(['ERROR_TIMEOUT', 'ERROR_TIMEOUT']);
    }));

  const syncDevice = () =>
    startDevice(({ envelope }) => ({
      status: 200,
      body: responseBody(envelope.operation.request.id, 'SUCCESSFUL', [
        { name: 'REBOOT', result: 'SUCCESSFUL' },
      ]),
    }));

  const pushRequest = (deviceId: string, url: string) =>
    operationRequest(env.org, deviceId, {
      name: 'REBOOT_EQUIPMENT',
      parameters: { type: 'HARDWARE' },
      delivery: 'push',
      operationUrl: url,
      platformKey: 'device-secret',
    });

  it('is pushed by the twin itself when its turn comes at once: the update answers the final record', async () => {
    const device = await syncDevice();
    try {
      await env.withWorker(async (tq) => {
        const deviceId = uniqueId('dev');
        const twin = await startTwin(env, tq, deviceId);
        const request = pushRequest(deviceId, device.url);
        const admission = await twin.executeUpdate(requestOperationUpdate, { args: [request] });
        expect(admission).toMatchObject({ id: request.id, duplicate: false });
        expect(admission.record).toMatchObject({ status: 'SUCCESSFUL', resultCode: 'SUCCESSFUL' });
        expect(admission.record?.steps.map((s) => [s.name, s.result])).toEqual([['REBOOT', 'SUCCESSFUL']]);
        // The record is stored before the answer, and no operation workflow was needed.
        const stored = await new OperationRepository(env.inventory.collections).get(env.org, request.id);
        expect(stored).toEqual(admission.record);
        await expect(opHandle(request).describe()).rejects.toThrow(/not found/i);
        expect(device.calls).toHaveLength(1);
        expect(device.calls[0]?.headers['x-apikey']).toBe('device-secret');
        expect(device.calls[0]?.envelope.operation.request).toMatchObject({
          id: request.id,
          deviceId,
          name: 'REBOOT_EQUIPMENT',
          parameters: { type: 'HARDWARE' },
        });
        // Started and ended in one update, the operation changed no count a snapshot shows: no timer, no
        // snapshot activity (the twin publishes routine snapshots within 200 ms here).
        await new Promise((r) => setTimeout(r, 600));
        const events = (await twin.fetchHistory()).events ?? [];
        expect(
          events.filter((e) => e.timerStartedEventAttributes || e.activityTaskScheduledEventAttributes),
        ).toEqual([]);
        // The slot is free again and the id is known: the same request is a duplicate.
        const state = await twin.query(getTwinStateQuery);
        expect(state.operations.open).toEqual([]);
        expect(await twin.executeUpdate(requestOperationUpdate, { args: [request] })).toEqual({
          id: request.id,
          duplicate: true,
        });
      });
    } finally {
      await device.close();
    }
  });

  it('pushes to the device and takes its synchronous final answer (twin push budget 0)', async () => {
    const device = await syncDevice();
    try {
      await env.withWorker(async (tq) => {
        const deviceId = uniqueId('dev');
        const twin = await startTwin(env, tq, deviceId, {
          options: { ...FAST_TWIN_OPTIONS, firstPushBudgetMs: 0 },
        });
        const request = pushRequest(deviceId, device.url);
        const admission = await twin.executeUpdate(requestOperationUpdate, { args: [request] });
        expect(admission).toMatchObject({ id: request.id, duplicate: false });
        // The first record is written before the answer; the operation's workflow does the rest.
        expect(admission.record).toMatchObject({ status: 'QUEUED', rev: 1 });
        const final = await resultOf(opHandle(request));
        expect(final).toMatchObject({ status: 'SUCCESSFUL', resultCode: 'SUCCESSFUL' });
        expect(final.steps.map((s) => [s.name, s.result])).toEqual([['REBOOT', 'SUCCESSFUL']]);
        expect(device.calls).toHaveLength(1);
        expect(device.calls[0]?.headers['x-apikey']).toBe('device-secret');
      });
    } finally {
      await device.close();
    }
  });

  it('goes on in its workflow when the twin could not reach the device, counting the failed try', async () => {
    let calls = 0;
    const device = await startDevice(({ envelope }) =>
      ++calls === 1
        ? { status: 503, body: '' }
        : { status: 200, body: responseBody(envelope.operation.request.id, 'SUCCESSFUL') },
    );
    try {
      await env.withWorker(async (tq) => {
        const deviceId = uniqueId('dev');
        const twin = await startTwin(env, tq, deviceId);
        const request = pushRequest(deviceId, device.url);
        const admission = await twin.executeUpdate(requestOperationUpdate, { args: [request] });
        expect(admission.record).toMatchObject({ status: 'QUEUED' });
        const final = await resultOf(opHandle(request));
        expect(final).toMatchObject({ status: 'SUCCESSFUL' });
        expect(final.attempts).toHaveLength(1);
        expect(final.attempts[0]).toMatchObject({
          transportErrors: 1,
          lastTransportError: 'device answered HTTP 503',
        });
        expect(device.calls).toHaveLength(2);
      });
    } finally {
      await device.close();
    }
  });

  it('started directly with its input, ends FAILED when the device refuses the push', async () => {
    const device = await startDevice(({ envelope }) => ({
      status: 400,
      body: responseBody(envelope.operation.request.id, 'NOT_SUPPORTED'),
    }));
    try {
      await env.withWorker(async (tq) => {
        const request = operationRequest(env.org, uniqueId('dev'), {
          delivery: 'push',
          operationUrl: device.url,
          retries: 2,
        });
        const handle = await startDirectly(tq, request);
        const final = await handle.result();
        expect(final).toMatchObject({ status: 'FAILED', resultCode: 'NOT_SUPPORTED' });
        // A refusal is final: no further attempt although retries were allowed.
        expect(final.attempts).toHaveLength(1);
        expect(device.calls).toHaveLength(1);
        expect(await records.get(env.org, request.id)).toMatchObject({ status: 'FAILED' });
      });
    } finally {
      await device.close();
    }
  });

  it('started directly, retries a device that stays unavailable and ends TIMEOUT with its transport errors', async () => {
    const device = await startDevice(() => ({ status: 503 }));
    try {
      await env.withWorker(async (tq) => {
        const request = operationRequest(env.org, uniqueId('dev'), {
          delivery: 'push',
          operationUrl: device.url,
          timeoutMs: 700,
          retries: 1,
          retriesDelayMs: 50,
        });
        const final = await (await startDirectly(tq, request)).result();
        expect(final).toMatchObject({ status: 'TIMEOUT', resultCode: 'ERROR_TIMEOUT', deliveredAt: null });
        expect(final.attempts).toHaveLength(2);
        for (const attempt of final.attempts) {
          expect(attempt.transportErrors).toBeGreaterThan(0);
          expect(attempt.lastTransportError).toBe('device answered HTTP 503');
        }
        expect(device.calls.length).toBeGreaterThanOrEqual(2);
      });
    } finally {
      await device.close();
    }
  });

  it('reports a device that never answers as such, and keeps what a device answered before a try cut short', async () => {
    const silent = await startDevice(() => ({ status: 0 }));
    let flakyCount = 0;
    const flaky = await startDevice(() => ({ status: ++flakyCount === 1 ? 503 : 0 }));
    try {
      await env.withWorker(async (tq) => {
        const run = async (url: string) => {
          const request = operationRequest(env.org, uniqueId('dev'), {
            delivery: 'push',
            operationUrl: url,
            timeoutMs: 1_000,
            retries: 0,
          });
          return (await startDirectly(tq, request)).result();
        };
        const never = await run(silent.url);
        expect(never).toMatchObject({ status: 'TIMEOUT' });
        expect(never.attempts[0]).toMatchObject({ lastTransportError: 'no answer before the deadline' });
        // 503 at once, then a try that hangs until the attempt's deadline: the 503 is what the operator reads.
        const cut = await run(flaky.url);
        expect(cut).toMatchObject({ status: 'TIMEOUT' });
        expect(flakyCount).toBeGreaterThanOrEqual(2);
        expect(cut.attempts[0]).toMatchObject({ lastTransportError: 'device answered HTTP 503' });
        expect(cut.attempts[0]!.transportErrors).toBeGreaterThanOrEqual(2);
      });
    } finally {
      await silent.close();
      await flaky.close();
    }
  });

  it('started directly, takes an accepted push and finishes with the device response that follows', async () => {
    const device = await startDevice(() => ({ status: 202 }));
    try {
      await env.withWorker(async (tq) => {
        const request = operationRequest(env.org, uniqueId('dev'), {
          delivery: 'push',
          operationUrl: device.url,
        });
        const handle = await startDirectly(tq, request);
        await eventually(async () =>
          (await handle.query(getOperationQuery)).status === 'DELIVERED' ? true : undefined,
        );
        await handle.signal(reportResponseSignal, {
          response: { resultCode: 'SUCCESSFUL' },
          receivedAt: Date.now(),
        });
        expect(await handle.result()).toMatchObject({ status: 'SUCCESSFUL', lateResponses: 0 });
        expect(device.calls).toHaveLength(1);
      });
    } finally {
      await device.close();
    }
  });
});
