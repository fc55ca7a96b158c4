// Creates the Temporal worker that runs twins and their activities.
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';

export interface TwinWorkerOptions {
  readonly address: string;
  readonly namespace: string;
  readonly taskQueue: string;
  readonly deps: ActivityDeps;
  /** A prebuilt workflow bundle (tests build one once); otherwise workflows/ is bundled at start. */
  readonly workflowBundlePath?: string;
}

let runtimeInstalled = false;

/** The SDK logs bundling and state changes at INFO; TwinFlow shows them only when asked for debug logs. */
export function installSdkLogger(debug: boolean): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger(debug ? 'DEBUG' : 'WARN') });
  runtimeInstalled = true;
}

export async function createTwinWorker(
  o: TwinWorkerOptions,
): Promise<{ worker: Worker; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: o.address });
  const worker = await Worker.create({
    connection,
    namespace: o.namespace,
    taskQueue: o.taskQueue,
    activities: createActivities(o.deps),
    ...(o.workflowBundlePath
      ? { workflowBundle: { codePath: o.workflowBundlePath } }
      : { workflowsPath: require.resolve('../workflows') }),
  });
  return { worker, connection };
}
