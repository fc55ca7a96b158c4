// The twin workflow in-process: messages, validators, hand-over, decommission and continue-as-new, spoken to
// only through its message definitions, its workflow id and its input.
import { deviceDocId } from '../../../inventory/devices.repo';
import { operationWorkflowId } from '../../../workflows/ids';
import { getOperationQuery } from '../../../workflows/operation.messages';
import type { operationWorkflow } from '../../../workflows/operation.workflow';
import {
  cancelOperationUpdate,
  claimPendingOperationsUpdate,
  decommissionUpdate,
  getTwinStateQuery,
  reportTelemetrySignal,
  requestOperationUpdate,
  updateProfileUpdate,
} from '../../../workflows/twin.messages';
import { eventually } from '../harness';
import {
  FAST_TWIN_OPTIONS,
  type WorkflowEnv,
  openWorkflowEnv,
  operationRequest,
  refusal,
  resultOf,
  startTwin,
  telemetryBatch,
  uniqueId,
} from './workflow-env';

describe('the twin workflow', () => {
  let env: WorkflowEnv;
  beforeAll(async () => {
    env = await openWorkflowEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  const opHandle = (deviceId: string, id: string) =>
    env.client.workflow.getHandle<typeof operationWorkflow>(operationWorkflowId(env.org, deviceId, id));

  it('starts with the identity and profile of its input and answers its state', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId, {
        profile: { name: 'Pump 1', tags: ['north'], attributes: { site: 'a' } },
      });
      const state = await twin.query(getTwinStateQuery);
      expect(state).toMatchObject({
        identity: { org: env.org, deviceId, twinType: 'generic' },
        profile: { name: 'Pump 1', tags: ['north'], attributes: { site: 'a' } },
        lifecycle: 'ACTIVE',
        status: 'ACTIVE',
        reported: [],
        connectivity: { lastSeenAt: null, channel: null },
        operations: { open: [], recentlyEnded: [] },
      });
      expect((await twin.describe()).status.name).toBe('RUNNING');
    }));

  it('takes a telemetry batch, keeps the latest values, ignores a redelivered batch and publishes a snapshot', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      // The read model's device document, as the API writes it at provisioning; the twin fills in `twin`.
      await env.inventory.db
        .collection<{ _id: string }>('devices')
        .insertOne({ _id: deviceDocId(env.org, deviceId) });
      const twin = await startTwin(env, tq, deviceId);
      const batch = telemetryBatch([
        { id: 'temperature', value: 21.5, at: 1_000 },
        { id: 'humidity', value: 40, at: 1_000 },
      ]);
      await twin.signal(reportTelemetrySignal, batch);
      const state = await eventually(async () => {
        const s = await twin.query(getTwinStateQuery);
        return s.counters.batches === 1 ? s : undefined;
      });
      expect(state.reported).toEqual([
        { id: 'humidity', feed: '', value: 40, at: 1_000 },
        { id: 'temperature', feed: '', value: 21.5, at: 1_000 },
      ]);
      expect(state.counters).toMatchObject({ datapoints: 2, duplicateBatches: 0 });
      expect(state.connectivity).toEqual({ lastSeenAt: batch.receivedAt, channel: 'http' });

      await twin.signal(reportTelemetrySignal, batch);
      const again = await eventually(async () => {
        const s = await twin.query(getTwinStateQuery);
        return s.counters.duplicateBatches === 1 ? s : undefined;
      });
      expect(again.counters).toMatchObject({ batches: 1, datapoints: 2 });

      const doc = await eventually(async () => {
        const d = await env.inventory.db
          .collection<{ _id: string; twin?: { version: number; counters: { datapoints: number } } }>(
            'devices',
          )
          .findOne({ _id: deviceDocId(env.org, deviceId) });
        return d?.twin && d.twin.version >= state.version ? d : undefined;
      });
      expect(doc.twin?.counters.datapoints).toBe(2);
    }));

  it('publishes a routine snapshot when its interval runs out, without the debounce an urgent one waits', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      await env.inventory.db
        .collection<{ _id: string }>('devices')
        .insertOne({ _id: deviceDocId(env.org, deviceId) });
      const twin = await startTwin(env, tq, deviceId, {
        options: { ...FAST_TWIN_OPTIONS, snapshotDebounceMs: 50, snapshotIntervalMs: 400 },
      });
      const batches = (n: number) =>
        eventually(async () => {
          const s = await twin.query(getTwinStateQuery);
          return s.counters.batches === n ? s : undefined;
        });
      const published = (version: number) =>
        eventually(async () => {
          const d = await env.inventory.db
            .collection<{ _id: string; twin?: { version: number } }>('devices')
            .findOne({ _id: deviceDocId(env.org, deviceId) });
          return d?.twin && d.twin.version >= version ? d : undefined;
        });
      // The first batch is the device's first contact: urgent, published after the debounce.
      await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: 'level', value: 1, at: 1_000 }]));
      await published((await batches(1)).version);
      // The second changes values and counters only: routine, published once the interval has run out.
      await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: 'level', value: 2, at: 2_000 }]));
      await published((await batches(2)).version);
      const events = (await twin.fetchHistory()).events ?? [];
      const timers = events.flatMap((e) => {
        const t = e.timerStartedEventAttributes?.startToFireTimeout;
        return t ? [Number(t.seconds ?? 0) * 1000 + Math.round((t.nanos ?? 0) / 1e6)] : [];
      });
      expect(timers).toEqual([50, 400]);
    }));

  it('admits an operation once and answers a repeated id as a duplicate', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId);
      const request = operationRequest(env.org, deviceId);
      const admission = await twin.executeUpdate(requestOperationUpdate, { args: [request] });
      expect(admission).toMatchObject({ id: request.id, duplicate: false });
      // Its first record is stored before the answer.
      expect(admission.record).toMatchObject({ id: request.id, status: 'WAITING_FOR_CONNECTION', rev: 1 });
      expect(await twin.executeUpdate(requestOperationUpdate, { args: [request] })).toEqual({
        id: request.id,
        duplicate: true,
      });
      const state = await twin.query(getTwinStateQuery);
      expect(state.operations.open.map((o) => [o.id, o.phase])).toEqual([[request.id, 'waiting']]);
      // The twin started the operation's workflow, waiting for the device to poll.
      const record = await eventually(() => opHandle(deviceId, request.id).query(getOperationQuery));
      expect(record).toMatchObject({ id: request.id, status: 'WAITING_FOR_CONNECTION' });
    }));

  it('refuses bad input in its update validators with the right failure type and changes nothing', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId);
      const before = await twin.query(getTwinStateQuery);

      const badName = await refusal(
        twin.executeUpdate(requestOperationUpdate, {
          args: [operationRequest(env.org, deviceId, { name: 'not an operation' })],
        }),
      );
      expect(badName).toMatchObject({ type: 'INVALID_ARGUMENT', nonRetryable: true });
      const otherDevice = await refusal(
        twin.executeUpdate(requestOperationUpdate, { args: [operationRequest(env.org, 'someone-else')] }),
      );
      expect(otherDevice.type).toBe('INVALID_ARGUMENT');
      expect(otherDevice.message).toMatch(/another device/);

      const zero = await refusal(twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 0 }] }));
      expect(zero).toMatchObject({ type: 'INVALID_ARGUMENT', message: 'limit must be a positive integer' });
      const fraction = await refusal(
        twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1.5 }] }),
      );
      expect(fraction.type).toBe('INVALID_ARGUMENT');

      const badKey = await refusal(
        twin.executeUpdate(updateProfileUpdate, { args: [{ attributes: { 'no spaces': 1 } }] }),
      );
      expect(badKey.type).toBe('INVALID_ARGUMENT');
      const badTags = await refusal(twin.executeUpdate(updateProfileUpdate, { args: [{ tags: [''] }] }));
      expect(badTags.type).toBe('INVALID_ARGUMENT');

      const unknown = await refusal(
        twin.executeUpdate(cancelOperationUpdate, { args: [{ id: 'no-such-operation', by: 'test' }] }),
      );
      expect(unknown).toMatchObject({ type: 'NOT_FOUND' });

      // Refused updates leave no trace in the state, and a good patch still goes through afterwards.
      expect(await twin.query(getTwinStateQuery)).toEqual(before);
      const profile = await twin.executeUpdate(updateProfileUpdate, {
        args: [{ name: 'renamed', attributes: { floor: 3 } }],
      });
      expect(profile).toEqual({ name: 'renamed', tags: [], attributes: { floor: 3 } });
    }));

  it('hands a pending operation over at a poll, once', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId);
      const request = operationRequest(env.org, deviceId, {
        name: 'REBOOT_EQUIPMENT',
        parameters: { type: 'SOFTWARE' },
      });
      await twin.executeUpdate(requestOperationUpdate, { args: [request] });

      const envelopes = await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 10 }] });
      expect(envelopes).toEqual([
        {
          operation: {
            request: {
              id: request.id,
              deviceId,
              name: 'REBOOT_EQUIPMENT',
              timestamp: expect.any(Number),
              parameters: { type: 'SOFTWARE' },
            },
          },
        },
      ]);
      // The claim answers once the twin's marker is stored, without waiting for the operation's workflow to
      // hear of the hand-over (a response that overtakes it is held): the workflow learns of it soon after.
      const delivered = await eventually(async () => {
        const record = await opHandle(deviceId, request.id).query(getOperationQuery);
        return record.status === 'DELIVERED' ? record : undefined;
      }, 10_000);
      expect(delivered.delivery).toBe('pending');
      expect(await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 10 }] })).toEqual([]);
      const state = await twin.query(getTwinStateQuery);
      expect(state.operations.open.map((o) => o.phase)).toEqual(['handedOver']);
    }));

  it('cancels an open operation and refuses an unknown id', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId);
      const request = operationRequest(env.org, deviceId);
      await twin.executeUpdate(requestOperationUpdate, { args: [request] });
      const unknown = await refusal(
        twin.executeUpdate(cancelOperationUpdate, {
          args: [{ id: operationRequest(env.org, deviceId).id, by: 'x' }],
        }),
      );
      expect(unknown.type).toBe('NOT_FOUND');

      await twin.executeUpdate(cancelOperationUpdate, { args: [{ id: request.id, by: 'operator' }] });
      const record = await resultOf(opHandle(deviceId, request.id));
      expect(record).toMatchObject({ status: 'CANCELLED', resultCode: 'CANCELLED', cancelledBy: 'operator' });
      const state = await eventually(async () => {
        const s = await twin.query(getTwinStateQuery);
        return s.operations.open.length === 0 ? s : undefined;
      });
      expect(state.operations.recentlyEnded).toEqual([request.id]);
      // Ended operations are known: the same id again is a duplicate, not a new operation.
      expect(await twin.executeUpdate(requestOperationUpdate, { args: [request] })).toEqual({
        id: request.id,
        duplicate: true,
      });
    }));

  it('ends when decommissioned: open operations are cancelled and the last snapshot is published', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      await env.inventory.db
        .collection<{ _id: string }>('devices')
        .insertOne({ _id: deviceDocId(env.org, deviceId) });
      const twin = await startTwin(env, tq, deviceId);
      const request = operationRequest(env.org, deviceId);
      await twin.executeUpdate(requestOperationUpdate, { args: [request] });

      const answered = await twin.executeUpdate(decommissionUpdate);
      expect(answered).toMatchObject({ lifecycle: 'DECOMMISSIONED', status: 'DECOMMISSIONED' });
      const final = await twin.result();
      expect(final.lifecycle).toBe('DECOMMISSIONED');
      expect((await twin.describe()).status.name).toBe('COMPLETED');
      expect(await resultOf(opHandle(deviceId, request.id))).toMatchObject({
        status: 'CANCELLED',
        cancelledBy: 'decommission',
      });
      const doc = await env.inventory.db
        .collection<{ _id: string; lifecycle?: string; twin?: { lifecycle: string } }>('devices')
        .findOne({ _id: deviceDocId(env.org, deviceId) });
      expect(doc).toMatchObject({ lifecycle: 'DECOMMISSIONED', twin: { lifecycle: 'DECOMMISSIONED' } });
    }));

  it('refuses every update once decommissioned, while it publishes its last snapshot', async () => {
    const deviceId = uniqueId('dev');
    const taskQueue = uniqueId('tq');
    // A worker that takes no activity tasks: the twin stays between its decommission and its last snapshot.
    await env.withWorker(
      async (tq) => {
        const twin = await startTwin(env, tq, deviceId);
        await twin.executeUpdate(decommissionUpdate);
        const refusals = await Promise.all([
          refusal(twin.executeUpdate(decommissionUpdate)),
          refusal(twin.executeUpdate(updateProfileUpdate, { args: [{ name: 'late' }] })),
          refusal(twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1 }] })),
          refusal(
            twin.executeUpdate(requestOperationUpdate, { args: [operationRequest(env.org, deviceId)] }),
          ),
        ]);
        expect(refusals.map((f) => f.type)).toEqual([
          'DECOMMISSIONED',
          'DECOMMISSIONED',
          'DECOMMISSIONED',
          'DECOMMISSIONED',
        ]);
        expect((await twin.describe()).status.name).toBe('RUNNING');
      },
      { taskQueue, enableNonLocalActivities: false },
    );
    // With activities again, it publishes and ends.
    await env.withWorker(
      async () => {
        const final = await env.client.workflow.getHandle(`twin/${env.org}/${deviceId}`).result();
        expect(final).toMatchObject({ lifecycle: 'DECOMMISSIONED' });
      },
      { taskQueue },
    );
  });

  it('continues as new with its state and its pending queue', () =>
    env.withWorker(async (tq) => {
      const deviceId = uniqueId('dev');
      const twin = await startTwin(env, tq, deviceId, {
        options: { snapshotDebounceMs: 20, snapshotIntervalMs: 200, maxHistoryEvents: 30 },
      });
      const firstRunId = twin.firstExecutionRunId;
      const request = operationRequest(env.org, deviceId);
      await twin.executeUpdate(requestOperationUpdate, { args: [request] });
      await twin.executeUpdate(updateProfileUpdate, { args: [{ attributes: { site: 'kept' } }] });

      // One signal at a time until the history is long enough for the twin to continue as new.
      let sent = 0;
      await eventually(
        async () => {
          await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: `ds-${sent}`, value: sent }]));
          sent++;
          await eventually(async () =>
            (await twin.query(getTwinStateQuery)).counters.batches === sent ? true : undefined,
          );
          const { runId } = await twin.describe();
          return runId !== firstRunId ? true : undefined;
        },
        30_000,
        0,
      );
      const first = await env.client.workflow.getHandle(twin.workflowId, firstRunId).describe();
      expect(first.status.name).toBe('CONTINUED_AS_NEW');

      const state = await twin.query(getTwinStateQuery);
      expect(state.counters).toMatchObject({ batches: sent, datapoints: sent });
      expect(state.reported).toHaveLength(sent);
      expect(state.profile.attributes).toEqual({ site: 'kept' });
      expect(state.operations.open.map((o) => [o.id, o.phase])).toEqual([[request.id, 'waiting']]);
      // The queue came along: the new run hands the operation over and remembers its id.
      const envelopes = await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 5 }] });
      expect(envelopes.map((e) => e.operation.request.id)).toEqual([request.id]);
      expect(await twin.executeUpdate(requestOperationUpdate, { args: [request] })).toEqual({
        id: request.id,
        duplicate: true,
      });
    }));
});
