// The operations benchmark's bare reference, measured on the same Temporal server in the same run: a Temporal
// Update running a local activity that POSTs to the same emulated device (what a synchronous operation could cost
// at best), and a no-op Update (what a poll that must ask a workflow could cost at best).
import { randomUUID } from 'node:crypto';
import { Client, Connection, WorkflowIdConflictPolicy } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { type BareActivities, noopUpdate, pushUpdate, stopSignal } from './operations-bare.workflows';

const activities: BareActivities = {
  async postToDevice(url, body) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json().catch(() => undefined)) as
      { operation?: { response?: { resultCode?: string } } } | undefined;
    return json?.operation?.response?.resultCode ?? `HTTP ${res.status}`;
  },
};

const quiet = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export interface BareTwins {
  /** Pushes to the device through its bare workflow's Update + local activity; true when it answered SUCCESSFUL. */
  push(deviceId: string, url: string, body: unknown): Promise<boolean>;
  /** A no-op Update on the device's bare workflow. */
  noop(deviceId: string): Promise<boolean>;
  close(): Promise<void>;
}

/** Starts a worker in this process and one bare workflow per device id, on the given Temporal server. */
export async function startBareTwins(address: string, deviceIds: readonly string[]): Promise<BareTwins> {
  const taskQueue = `bench-bare-${randomUUID().slice(0, 8)}`;
  try {
    // The worker's state changes at INFO would interleave with the figures.
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Installed already by an earlier section of this run.
  }
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('./operations-bare.workflows'),
    logger: quiet,
  });
  const nativeConnection = await NativeConnection.connect({ address });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue,
    workflowBundle: { code },
    activities,
  });
  const running = worker.run();
  const workflowId = (id: string) => `${taskQueue}-${id}`;
  for (let i = 0; i < deviceIds.length; i += 50) {
    await Promise.all(
      deviceIds.slice(i, i + 50).map((id) =>
        client.workflow.start('bareTwinWorkflow', {
          workflowId: workflowId(id),
          taskQueue,
          workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        }),
      ),
    );
  }
  const handle = (id: string) => client.workflow.getHandle(workflowId(id));
  return {
    push: async (id, url, body) =>
      (await handle(id).executeUpdate(pushUpdate, { args: [url, body] })) === 'SUCCESSFUL',
    noop: async (id) => (await handle(id).executeUpdate(noopUpdate)) > 0,
    async close() {
      await Promise.all(
        deviceIds.map((id) =>
          handle(id)
            .signal(stopSignal)
            .catch(() => undefined),
        ),
      );
      worker.shutdown();
      await running;
      await connection.close();
      await nativeConnection.close();
    },
  };
}
