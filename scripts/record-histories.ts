// Records workflow histories for the replay test: runs representative twin and operation scenarios against
// today's workflow code on its own servers and writes each history to test/fixtures/histories/<name>.json.
// Run: RECORD_PREFIX=v3- node --import tsx scripts/record-histories.ts   (only for a deliberate, versioned
// workflow change). The prefix keeps the histories of earlier versions beside the new ones: running twins were
// recorded by those, and the replay test must keep passing them.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import {
  type WorkflowEnv,
  openWorkflowEnv,
  operationRequest,
  startTwin,
  telemetryBatch,
} from '../test/integration/workflows/workflow-env';
import { deviceDocId } from '../inventory/devices.repo';
import { OperationRepository } from '../inventory/operations.repo';
import { isFinal } from '../twins/operations';
import { historyToJson } from '../test/fixtures/history-json';
import { startHeadlessServers } from '../worker/local-stack';
import { workflowBundleOptions } from '../worker/workflow-bundle';
import { operationWorkflowId } from '../workflows/ids';
import { getOperationQuery, reportResponseSignal } from '../workflows/operation.messages';
import type { operationWorkflow } from '../workflows/operation.workflow';
import {
  cancelOperationUpdate,
  claimPendingOperationsUpdate,
  decommissionUpdate,
  getTwinStateQuery,
  reportTelemetrySignal,
  requestOperationUpdate,
  updateProfileUpdate,
  alarmActionUpdate,
  setDesiredUpdate,
} from '../workflows/twin.messages';

const OUT_DIR = path.resolve(__dirname, '..', 'test', 'fixtures', 'histories');
const PREFIX = process.env.RECORD_PREFIX ?? '';

/** Polls until check() is true, or fails after the deadline. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A device endpoint on 127.0.0.1 that answers every push with `status` (and a final SUCCESSFUL for 200). */
async function device(status: number) {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const id = (JSON.parse(Buffer.concat(chunks).toString()) as { operation: { request: { id: string } } })
        .operation.request.id;
      const body =
        status === 200
          ? JSON.stringify({
              operation: {
                response: { id, resultCode: 'SUCCESSFUL', steps: [{ name: 'REBOOT', result: 'SUCCESSFUL' }] },
              },
            })
          : '';
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v80/devices/d/operation/request`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type Recorder = (name: string, handle: WorkflowHandle, runId?: string) => Promise<void>;

/** What every scenario uses: the environment, its task queue, the recorder and the operation helpers. */
interface Scenario {
  readonly env: WorkflowEnv;
  readonly tq: string;
  readonly record: Recorder;
  readonly org: string;
  readonly op: (deviceId: string, id: string) => WorkflowHandle<typeof operationWorkflow>;
  readonly ended: (deviceId: string, id: string) => Promise<unknown>;
}

/** Provision, telemetry (one batch redelivered), a profile update, a published snapshot, decommission. */
async function recordTelemetry({ env, tq, record, org }: Scenario): Promise<void> {
  const deviceId = 'telemetry';
  await env.inventory.db
    .collection<{ _id: string }>('devices')
    .insertOne({ _id: deviceDocId(org, deviceId) });
  const twin = await startTwin(env, tq, deviceId);
  const batch = telemetryBatch([{ id: 'temperature', value: 21.5 }]);
  await twin.signal(reportTelemetrySignal, batch);
  await twin.signal(reportTelemetrySignal, batch);
  await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: 'humidity', value: 40 }]));
  await until('telemetry', async () => (await twin.query(getTwinStateQuery)).counters.batches === 2);
  await twin.executeUpdate(updateProfileUpdate, { args: [{ name: 'Pump', attributes: { site: 'a' } }] });
  await until('snapshot', async () => {
    const doc = await env.inventory.db
      .collection<{ _id: string; twin?: { profile: { name?: string } } }>('devices')
      .findOne({ _id: deviceDocId(org, deviceId) });
    return doc?.twin?.profile.name === 'Pump';
  });
  await twin.executeUpdate(decommissionUpdate);
  await twin.result();
  await record('twin-telemetry-profile-decommission', twin);
}

/** A first batch (urgent: published after the debounce), then a routine one published when its interval runs out. */
async function recordRoutineSnapshot({ env, tq, record, org }: Scenario): Promise<void> {
  const deviceId = 'routine';
  const devices = env.inventory.db.collection<{ _id: string; twin?: { version: number } }>('devices');
  await devices.insertOne({ _id: deviceDocId(org, deviceId) });
  const twin = await startTwin(env, tq, deviceId);
  const published = async (batches: number) => {
    await until('batch', async () => (await twin.query(getTwinStateQuery)).counters.batches === batches);
    const { version } = await twin.query(getTwinStateQuery);
    await until(
      'snapshot',
      async () =>
        ((await devices.findOne({ _id: deviceDocId(org, deviceId) }))?.twin?.version ?? 0) >= version,
    );
  };
  await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: 'level', value: 1, at: 1_000 }]));
  await published(1);
  await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: 'level', value: 2, at: 2_000 }]));
  await published(2);
  await twin.executeUpdate(decommissionUpdate);
  await twin.result();
  await record('twin-routine-snapshot', twin);
}

/** A pending operation claimed at a poll and answered (partial, then final). */
async function recordPendingOperation({ env, tq, record, org, op, ended }: Scenario): Promise<void> {
  const deviceId = 'pending';
  const twin = await startTwin(env, tq, deviceId);
  const req = operationRequest(org, deviceId, {
    name: 'REBOOT_EQUIPMENT',
    parameters: { type: 'SOFTWARE' },
  });
  await twin.executeUpdate(requestOperationUpdate, { args: [req] });
  await twin.executeUpdate(requestOperationUpdate, { args: [req] });
  await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 5 }] });
  const response = { steps: [{ name: 'REBOOT', result: 'SUCCESSFUL' }] };
  await op(deviceId, req.id).signal(reportResponseSignal, { response, receivedAt: Date.now() });
  await op(deviceId, req.id).signal(reportResponseSignal, {
    response: { resultCode: 'SUCCESSFUL' },
    receivedAt: Date.now(),
  });
  await ended(deviceId, req.id);
  await until('ended', async () => (await twin.query(getTwinStateQuery)).operations.open.length === 0);
  await twin.executeUpdate(decommissionUpdate);
  await twin.result();
  await record('twin-pending-claimed-answered', twin);
  await record('operation-pending-success', op(deviceId, req.id));
}

/** A pushed operation the device answers at once, and one queued behind it that is cancelled. */
async function recordPushAndCancel({ env, tq, record, org, op, ended }: Scenario): Promise<void> {
  const ok = await device(200);
  try {
    const deviceId = 'push';
    const twin = await startTwin(env, tq, deviceId);
    const pushed = operationRequest(org, deviceId, {
      delivery: 'push',
      operationUrl: ok.url,
      platformKey: 'k',
    });
    await twin.executeUpdate(requestOperationUpdate, { args: [pushed] });
    await ended(deviceId, pushed.id);
    const waiting = operationRequest(org, deviceId);
    await twin.executeUpdate(requestOperationUpdate, { args: [waiting] });
    await twin.executeUpdate(cancelOperationUpdate, { args: [{ id: waiting.id, by: 'operator' }] });
    await ended(deviceId, waiting.id);
    await until('ended', async () => (await twin.query(getTwinStateQuery)).operations.open.length === 0);
    // Decommissioned with an operation open: the twin cancels it before it ends.
    const last = operationRequest(org, deviceId);
    await twin.executeUpdate(requestOperationUpdate, { args: [last] });
    await twin.executeUpdate(decommissionUpdate);
    await twin.result();
    await ended(deviceId, last.id);
    await record('twin-push-cancel-decommission', twin);
    await record('operation-push-success', op(deviceId, pushed.id));
    await record('operation-cancel', op(deviceId, waiting.id));
    await record('operation-cancel-by-decommission', op(deviceId, last.id));
  } finally {
    await ok.close();
  }
}

/** Expiry, and a push that times out twice (one retry) against a device that answers 503. */
async function recordExpiryAndRetries({ env, tq, record, org, op, ended }: Scenario): Promise<void> {
  const down = await device(503);
  try {
    const deviceId = 'timeouts';
    const twin = await startTwin(env, tq, deviceId);
    const expiring = operationRequest(org, deviceId, { ttlMs: 800 });
    await twin.executeUpdate(requestOperationUpdate, { args: [expiring] });
    await ended(deviceId, expiring.id);
    const failing = operationRequest(org, deviceId, {
      delivery: 'push',
      operationUrl: down.url,
      timeoutMs: 600,
      retries: 1,
      retriesDelayMs: 50,
    });
    await twin.executeUpdate(requestOperationUpdate, { args: [failing] });
    await ended(deviceId, failing.id);
    // A pending operation handed over twice: its first attempt times out, it waits for the next poll.
    const polled = operationRequest(org, deviceId, { timeoutMs: 400, retries: 1, retriesDelayMs: 50 });
    await twin.executeUpdate(requestOperationUpdate, { args: [polled] });
    await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1 }] });
    await until('back in the queue', async () => {
      const rec = await op(deviceId, polled.id).query(getOperationQuery);
      return rec.status === 'WAITING_FOR_CONNECTION' && rec.attempts.length === 1;
    });
    await until(
      'second hand-over',
      async () =>
        (await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1 }] })).length > 0,
    );
    await ended(deviceId, polled.id);
    await until('ended', async () => (await twin.query(getTwinStateQuery)).operations.open.length === 0);
    await twin.executeUpdate(decommissionUpdate);
    await twin.result();
    await record('twin-expiry-retries', twin);
    await record('operation-expired', op(deviceId, expiring.id));
    await record('operation-push-retry-timeout', op(deviceId, failing.id));
    await record('operation-pending-retry-timeout', op(deviceId, polled.id));
  } finally {
    await down.close();
  }
}

/** Continue-as-new with a waiting operation and a changed profile; the next run hands it over and ends. */
async function recordContinueAsNew({ env, tq, record, org, op, ended }: Scenario): Promise<void> {
  const deviceId = 'long';
  const twin = await startTwin(env, tq, deviceId, {
    options: { snapshotDebounceMs: 20, snapshotIntervalMs: 200, maxHistoryEvents: 30 },
  });
  const firstRunId = twin.firstExecutionRunId;
  const req = operationRequest(org, deviceId);
  await twin.executeUpdate(requestOperationUpdate, { args: [req] });
  await twin.executeUpdate(updateProfileUpdate, { args: [{ tags: ['kept'] }] });
  for (let n = 1; (await twin.describe()).runId === firstRunId; n++) {
    if (n > 100) throw new Error('the twin did not continue as new');
    await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: `ds-${n}`, value: n }]));
    await until('batch', async () => (await twin.query(getTwinStateQuery)).counters.batches === n);
  }
  await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 1 }] });
  await op(deviceId, req.id).signal(reportResponseSignal, {
    response: { resultCode: 'SUCCESSFUL' },
    receivedAt: Date.now(),
  });
  await ended(deviceId, req.id);
  await until('ended', async () => (await twin.query(getTwinStateQuery)).operations.open.length === 0);
  await twin.executeUpdate(decommissionUpdate);
  await twin.result();
  await record('twin-continue-as-new-first-run', twin, firstRunId);
  await record('twin-continue-as-new-last-run', twin);
}

/**
 * Behaviours on a meter: an overload held past its duration (alarm, breaker operation, event), a declared alarm,
 * acknowledge and clear, a desired-state change reconciled through a poll and confirmed by a report, OFFLINE
 * after silence and back, decommission.
 */
async function recordBehaviours({ env, tq, record, org, op, ended }: Scenario): Promise<void> {
  const deviceId = 'behaviours';
  await env.inventory.db
    .collection<{ _id: string; transport: object }>('devices')
    .insertOne({ _id: deviceDocId(org, deviceId), transport: { sleepy: true } });
  const twin = await startTwin(env, tq, deviceId, {
    twinType: 'electricity-meter',
    profile: { tags: [], attributes: { overloadHoldMs: 300, voltageHoldMs: 0, offlineAfterMs: 1_500 } },
  });
  const state = () => twin.query(getTwinStateQuery);
  await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: 'power.active', value: 12_000 }]));
  await until('overload', async () => (await state()).behaviour?.alarms.OVERLOAD?.status === 'ACTIVE');
  await until('breaker', async () => (await state()).operations.open.length === 1);
  await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: 'voltage', value: 300 }]));
  await until('voltage', async () => (await state()).behaviour?.alarms.VOLTAGE?.status === 'ACTIVE');
  await twin.executeUpdate(alarmActionUpdate, {
    args: [{ name: 'OVERLOAD', action: 'acknowledge', by: 'op' }],
  });
  await twin.executeUpdate(alarmActionUpdate, { args: [{ name: 'OVERLOAD', action: 'clear', by: 'op' }] });
  await twin.executeUpdate(setDesiredUpdate, { args: [{ values: { reportingIntervalS: 60 }, by: 'op' }] });
  await until('desired', async () => (await state()).operations.open.length === 2);
  const claimed = await twin.executeUpdate(claimPendingOperationsUpdate, { args: [{ limit: 10 }] });
  for (const envelope of claimed) {
    const id = envelope.operation.request.id;
    await until('started', async () =>
      op(deviceId, id)
        .describe()
        .then(
          () => true,
          () => false,
        ),
    );
    await op(deviceId, id).signal(reportResponseSignal, {
      response: { resultCode: 'SUCCESSFUL' },
      receivedAt: Date.now(),
    });
    await ended(deviceId, id);
  }
  await twin.signal(
    reportTelemetrySignal,
    telemetryBatch([
      { id: 'reportingIntervalS', value: 60 },
      { id: 'power.active', value: 100 },
      { id: 'voltage', value: 230 },
    ]),
  );
  await until('in sync', async () => (await state()).desired?.retryAt === null);
  await until('offline', async () => (await state()).status === 'OFFLINE', 10_000);
  await twin.signal(reportTelemetrySignal, telemetryBatch([{ id: 'voltage', value: 231 }]));
  await until('online', async () => (await state()).status === 'OK');
  await twin.executeUpdate(decommissionUpdate);
  await twin.result();
  await record('twin-behaviours-alarms-desired-offline', twin);
}

async function scenarios(env: WorkflowEnv, tq: string, record: Recorder): Promise<void> {
  const org = env.org;
  const op = (deviceId: string, id: string) =>
    env.client.workflow.getHandle<typeof operationWorkflow>(operationWorkflowId(org, deviceId, id));
  const records = new OperationRepository(env.inventory.collections);
  const exists = (deviceId: string, id: string) =>
    op(deviceId, id)
      .describe()
      .then(
        (d) => Boolean(d.runId),
        () => false,
      );
  /**
   * The twin starts operations in the background: wait until one exists, then for its end. An operation the
   * twin pushed and ended itself never has a workflow: its final record is its end.
   */
  const ended = async (deviceId: string, id: string) => {
    const endedInTwin = async () => isFinal((await records.get(org, id))?.status ?? 'QUEUED');
    await until('started', async () => (await exists(deviceId, id)) || (await endedInTwin()));
    return (await exists(deviceId, id)) ? op(deviceId, id).result() : records.get(org, id);
  };

  const scenario: Scenario = { env, tq, record, org, op, ended };
  await recordTelemetry(scenario);
  await recordRoutineSnapshot(scenario);
  await recordPendingOperation(scenario);
  await recordPushAndCancel(scenario);
  await recordExpiryAndRetries(scenario);
  await recordContinueAsNew(scenario);
  await recordBehaviours(scenario);
}

async function main(): Promise<void> {
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-record-'));
  const { temporal, mongo } = await startHeadlessServers(process.env, dir, log);
  let env: WorkflowEnv | undefined;
  try {
    const bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      ...workflowBundleOptions(),
    });
    const bundlePath = path.join(dir, 'workflow-bundle.js');
    writeFileSync(bundlePath, bundle.code);
    process.env.TWINFLOW_IT_TEMPORAL_ADDRESS = temporal.address;
    process.env.TWINFLOW_IT_MONGODB_URI = mongo.uri;
    process.env.TWINFLOW_IT_WORKFLOW_BUNDLE = bundlePath;
    env = await openWorkflowEnv();

    mkdirSync(OUT_DIR, { recursive: true });
    const e = env;
    await e.withWorker((tq) =>
      scenarios(e, tq, async (name, handle, runId) => {
        const h = runId ? e.client.workflow.getHandle(handle.workflowId, runId) : handle;
        const history = await h.fetchHistory().catch((err: unknown) => {
          // An operation the twin ended itself has no workflow, so no history.
          log(`no history for ${name}: ${(err as Error).message}`);
          return undefined;
        });
        if (!history) return;
        writeFileSync(path.join(OUT_DIR, `${PREFIX}${name}.json`), historyToJson(history));
        log(`recorded ${name} (${history.events?.length ?? 0} events)`);
      }),
    );
  } finally {
    await env?.close();
    await Promise.all([temporal.stop(), mongo.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
