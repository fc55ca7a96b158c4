// Creates the Temporal worker that runs twins and their activities.
import path from 'node:path';
import type { WorkerOptions as ThreadOptions } from 'node:worker_threads';
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
  /** Whether workflows keep the stack traces the Web UI shows (TWINFLOW_WORKFLOW_STACK_TRACES): they cost CPU. */
  readonly stackTraces: boolean;
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
  const create = () =>
    Worker.create({
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
  const worker =
    o.tuning?.stackTraces === false
      ? await withWorkflowThreadPreload(NO_STACK_TRACES, create)
      : await create();
  return { worker, connection };
}

/**
 * Imported first into the SDK's workflow thread when stack traces are off. The SDK's stack-trace promise hook is
 * refused, so the SDK runs workflows without it: otherwise every promise a workflow makes builds, source-maps and
 * stores a stack trace, for the Web UI's "Stack Trace" tab, which then says the worker has none. Every other
 * promise hook is made as before: Node's AsyncLocalStorage, which the SDK's cancellation scopes stand on, makes
 * its own through the same function. The SDK's note that it cannot collect stack traces is left out: TwinFlow
 * says why at start. A module of its own (a data: URL), so that it loads the same way from the sources and from
 * the build.
 */
const NO_STACK_TRACES = `data:text/javascript,${encodeURIComponent(`
import v8 from 'node:v8';
const createHook = v8.promiseHooks.createHook;
const calledBySdk = () => {
  const prepare = Error.prepareStackTrace;
  Error.prepareStackTrace = (_, sites) => sites;
  const sites = new Error().stack;
  Error.prepareStackTrace = prepare;
  return sites.some((s) => s.getFunctionName() === 'setPromiseHook' && /vm-shared\.js$/.test(s.getFileName() ?? ''));
};
v8.promiseHooks.createHook = (hooks) => {
  if (calledBySdk())
    throw new Error('TwinFlow runs workflows without stack traces (TWINFLOW_WORKFLOW_STACK_TRACES=on keeps them)');
  return createHook(hooks);
};
const warn = console.warn.bind(console);
console.warn = (...args) => {
  if (String(args[0]).startsWith('v8.promiseHooks.createHook is not available')) return;
  warn(...args);
};
`)}`;

/**
 * Runs `create` with every worker thread it starts (the SDK's workflow thread, started by Worker.create)
 * importing `preload` (a module's URL) first. The SDK offers no option for its stack-trace promise hook, which costs each workflow
 * task more CPU the more promises it makes; a preload is the one way into its thread.
 */
async function withWorkflowThreadPreload<T>(preload: string, create: () => Promise<T>): Promise<T> {
  // The module object itself (an import would be a copy): the SDK reads `Worker` from it when it starts its thread.
  const threads = process.getBuiltinModule('node:worker_threads');
  const Original = threads.Worker;
  threads.Worker = class extends Original {
    constructor(filename: string | URL, options: ThreadOptions = {}) {
      super(filename, {
        ...options,
        execArgv: [...(options.execArgv ?? process.execArgv), '--import', preload],
      });
    }
  };
  try {
    return await create();
  } finally {
    threads.Worker = Original;
  }
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
