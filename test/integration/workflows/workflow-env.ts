// In-process workflow tests: a Client and NativeConnection to the test server, real repositories over a fresh
// database, and a Worker per test (one task queue each) that runs the prebuilt workflow bundle.
import { EventWriter } from '../../../events/writer';
import { EventRepository } from '../../../inventory/events.repo';
import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Connection, type WorkflowHandle, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../../../activities';
import { AlarmRepository } from '../../../inventory/alarms.repo';
import { DatapointRepository } from '../../../inventory/datapoints.repo';
import { DeviceRepository } from '../../../inventory/devices.repo';
import { type Inventory, openInventory } from '../../../inventory/inventory';
import { OperationRepository } from '../../../inventory/operations.repo';
import { OPERATION_DEFAULTS, type OperationRequest } from '../../../twins/operations';
import type { TelemetryBatch } from '../../../twins/twin-core';
import type { TwinIdentity } from '../../../twins/types';
import { twinWorkflowId } from '../../../workflows/ids';
import type { TwinWorkflowInput, twinWorkflow } from '../../../workflows/twin.workflow';
import { eventually, itEnv } from '../harness';

/** Lowercase with a dash, so it fits org and device id patterns alike. */
export const uniqueId = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

// One SDK runtime per Jest worker process: installed once, quiet unless a test fails loudly.
const RUNTIME_KEY = Symbol.for('twinflow.test.runtime');
function installRuntime(): void {
  const g = globalThis as Record<symbol, unknown>;
  if (g[RUNTIME_KEY]) return;
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // Installed by an earlier test file in this process.
  }
  g[RUNTIME_KEY] = true;
}

export interface WorkflowEnv {
  readonly client: Client;
  readonly inventory: Inventory;
  readonly org: string;
  /** Runs `body` inside a fresh worker on its own task queue; the body receives the task queue. */
  withWorker<T>(body: (taskQueue: string) => Promise<T>, options?: WorkerTweaks): Promise<T>;
  close(): Promise<void>;
}

/** Worker options a test may change; everything else is the production worker's. */
export type WorkerTweaks = Pick<WorkerOptions, 'enableNonLocalActivities'> & {
  readonly taskQueue?: string;
};

export async function openWorkflowEnv(): Promise<WorkflowEnv> {
  installRuntime();
  const address = itEnv('TWINFLOW_IT_TEMPORAL_ADDRESS');
  const bundlePath = itEnv('TWINFLOW_IT_WORKFLOW_BUNDLE');
  const [connection, nativeConnection, inventory] = await Promise.all([
    Connection.connect({ address }),
    NativeConnection.connect({ address }),
    openInventory(itEnv('TWINFLOW_IT_MONGODB_URI'), `wf_${randomBytes(4).toString('hex')}`),
  ]);
  const client = new Client({ connection });
  const activities = createActivities({
    devices: new DeviceRepository(inventory.collections),
    operations: new OperationRepository(inventory.collections),
    datapoints: new DatapointRepository(inventory.collections),
    alarms: new AlarmRepository(inventory.collections),
    events: new EventWriter(new EventRepository(inventory.collections)),
  });
  return {
    client,
    inventory,
    org: uniqueId('wf'),
    async withWorker(body, options = {}) {
      const taskQueue = options.taskQueue ?? uniqueId('tq');
      const worker = await Worker.create({
        connection: nativeConnection,
        taskQueue,
        activities,
        workflowBundle: { codePath: bundlePath },
        ...(options.enableNonLocalActivities !== undefined
          ? { enableNonLocalActivities: options.enableNonLocalActivities }
          : {}),
      });
      return worker.runUntil(body(taskQueue));
    },
    async close() {
      await inventory.db.dropDatabase().catch(() => undefined);
      await inventory.close();
      await nativeConnection.close();
      await connection.close();
    },
  };
}

/** Short, configurable durations so snapshots and continue-as-new happen within a test. */
export const FAST_TWIN_OPTIONS = { snapshotDebounceMs: 20, snapshotIntervalMs: 200 } as const;

export async function startTwin(
  env: WorkflowEnv,
  taskQueue: string,
  deviceId: string,
  input: Partial<Omit<TwinWorkflowInput, 'identity'>> & { twinType?: string } = {},
) {
  const { twinType, ...rest } = input;
  const identity: TwinIdentity = { org: env.org, deviceId, twinType: twinType ?? 'generic' };
  return env.client.workflow.start<typeof twinWorkflow>('twinWorkflow', {
    workflowId: twinWorkflowId(env.org, deviceId),
    taskQueue,
    args: [
      {
        identity,
        profile: { tags: [], attributes: {} },
        options: FAST_TWIN_OPTIONS,
        ...rest,
      },
    ],
  });
}

/** A request as the API would build it; pending unless told otherwise. */
export function operationRequest(
  org: string,
  deviceId: string,
  overrides: Partial<OperationRequest> = {},
): OperationRequest {
  return {
    ...OPERATION_DEFAULTS,
    id: randomUUID(),
    org,
    deviceId,
    twinType: 'generic',
    name: 'REFRESH_INFO',
    parameters: {},
    delivery: 'pending',
    requestedBy: 'test',
    createdAt: Date.now(),
    ...overrides,
  };
}

let batchSeq = 0;
export function telemetryBatch(datapoints: { id: string; value: unknown; at?: number }[]): TelemetryBatch {
  const now = Date.now();
  return {
    batchId: `batch-${process.pid}-${++batchSeq}-${randomBytes(3).toString('hex')}`,
    channel: 'http',
    receivedAt: now,
    datapoints: datapoints.map((d) => ({ datastreamId: d.id, feed: '', value: d.value, at: d.at ?? now })),
    storedCount: datapoints.length,
  };
}

/** The ApplicationFailure an update was refused with (validator or handler). */
export async function refusal(update: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await update;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) return err.cause;
    throw err;
  }
  throw new Error('the update was accepted, but it should have been refused');
}

/** The result of a workflow the twin starts in the background: waits until it exists, then for its end. */
export async function resultOf<T>(handle: WorkflowHandle<() => Promise<T>>): Promise<T> {
  await eventually(async () => (await handle.describe()).runId);
  return handle.result();
}
