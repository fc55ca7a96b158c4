// Creates the Temporal worker that runs twins and their activities.
import path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { createForwarderActivities, type ForwarderActivityDeps } from '../forwarders/forwarder.activities';
import { writeWorkflowsEntry } from './user-twins';
import { SHARED_WORKFLOW_MODULES, workflowBundleOptions } from './workflow-bundle';

/** The worker's cache and concurrency (worker/config.ts, WORKER_DEFAULTS, says why each is what it is). */
export interface TwinWorkerTuning {
  readonly cachedTwins: number;
  readonly workflowTasks: number;
  readonly activities: number;
}

export interface TwinWorkerOptions {
  readonly address: string;
  readonly namespace: string;
  readonly taskQueue: string;
  readonly deps: ActivityDeps;
  /** Forwarders' delivery rounds; a worker without them runs no forwarder. */
  readonly forwarders?: ForwarderActivityDeps;
  /** A prebuilt workflow bundle (tests build one once); otherwise workflows/ is bundled at start. */
  readonly workflowBundlePath?: string;
  /** A module of twin types written outside TwinFlow: bundled with the workflows (a prebuilt bundle is not used). */
  readonly twinsModule?: string;
  /** Unset: the SDK's defaults (tests, which hold few twins). */
  readonly tuning?: TwinWorkerTuning;
}

export interface SdkRuntimeOptions {
  readonly debug: boolean;
  /** Set: the SDK serves its Prometheus figures (temporal_sticky_cache_*, ...) on 127.0.0.1:port/metrics. */
  readonly metricsPort?: number;
}

let runtimeInstalled = false;

/**
 * The SDK logs bundling and state changes at INFO; TwinFlow shows them only when asked for debug logs. Once per
 * process: the SDK's runtime cannot be replaced after a worker has used it.
 */
export function installSdkRuntime(o: SdkRuntimeOptions): void {
  if (runtimeInstalled) return;
  Runtime.install({
    logger: new DefaultLogger(o.debug ? 'DEBUG' : 'WARN'),
    ...(o.metricsPort === undefined
      ? {}
      : { telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${o.metricsPort}` } } } }),
  });
  runtimeInstalled = true;
}

export async function createTwinWorker(
  o: TwinWorkerOptions,
): Promise<{ worker: Worker; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: o.address });
  const bundle = o.twinsModule ? await bundleWithTwins(o.twinsModule) : undefined;
  const worker = await Worker.create({
    connection,
    namespace: o.namespace,
    taskQueue: o.taskQueue,
    activities: {
      ...createActivities(o.deps),
      ...(o.forwarders ? createForwarderActivities(o.forwarders) : {}),
    },
    ...(o.tuning
      ? {
          maxCachedWorkflows: o.tuning.cachedTwins,
          maxConcurrentWorkflowTaskExecutions: o.tuning.workflowTasks,
          maxConcurrentActivityTaskExecutions: o.tuning.activities,
        }
      : {}),
    ...(bundle
      ? { workflowBundle: bundle }
      : o.workflowBundlePath
        ? { workflowBundle: { codePath: o.workflowBundlePath } }
        : { workflowsPath: require.resolve('../workflows'), bundlerOptions: workflowBundleOptions() }),
  });
  return { worker, connection };
}

/** TwinFlow's workflows with the user's twin types registered first (see worker/user-twins.ts). */
export async function bundleWithTwins(twinsModule: string): Promise<{ code: string }> {
  // The generated entry and the user's module live outside this tree: they resolve packages from TwinFlow's
  // node_modules too (the SDK's workflow runtime, zod), after their own.
  const twinflowModules = path.resolve(
    require.resolve('@temporalio/workflow/package.json'),
    '..',
    '..',
    '..',
  );
  const { code } = await bundleWorkflowCode({
    workflowsPath: writeWorkflowsEntry(twinsModule),
    // The user's module is shared by every twin too (its types are then the same objects the entry registers
    // for each workflow); like TwinFlow's own, it must keep no state and export no zod schema itself.
    preloadModules: [...SHARED_WORKFLOW_MODULES, path.resolve(twinsModule)],
    webpackConfigHook: (config) => ({
      ...config,
      resolve: {
        ...config.resolve,
        modules: [...(config.resolve?.modules ?? ['node_modules']), twinflowModules],
      },
    }),
  });
  return { code };
}
