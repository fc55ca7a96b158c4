// Starts the real servers once per test run (Temporal dev server, MongoDB-compatible server) on free ports.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { startHeadlessServers } from '../../worker/local-stack';
import { workflowBundleOptions } from '../../worker/workflow-bundle';

/** Low enough that twins in tests really continue as new when the server suggests it. */
export const TEST_SUGGEST_CONTINUE_AS_NEW = 400;

export default async function globalSetup(): Promise<void> {
  const log = (line: string) => process.stdout.write(`[integration setup] ${line}\n`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-it-'));
  const { temporal, mongo, temporalBin, mongoTool } = await startHeadlessServers(process.env, dir, log, {
    'limit.historyCount.suggestContinueAsNew': TEST_SUGGEST_CONTINUE_AS_NEW,
  });
  const bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    ...workflowBundleOptions(),
    logger: quietLogger,
  });
  const bundlePath = path.join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);

  // Test files run in other processes; the environment is how they learn where the servers are.
  process.env.TWINFLOW_IT_DIR = dir;
  process.env.TWINFLOW_IT_TEMPORAL_ADDRESS = temporal.address;
  process.env.TWINFLOW_IT_TEMPORAL_BIN = temporalBin;
  process.env.TWINFLOW_IT_MONGODB_URI = mongo.uri;
  process.env.TWINFLOW_IT_MONGO_KIND = mongoTool.kind;
  process.env.TWINFLOW_IT_MONGO_BIN = mongoTool.path;
  process.env.TWINFLOW_IT_WORKFLOW_BUNDLE = bundlePath;
  (globalThis as Record<string, unknown>).__twinflowServers = { temporal, mongo, dir };
  // An interrupted run (Ctrl-C, SIGTERM) skips the global teardown: stop the servers here instead.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void Promise.all([temporal.stop(), mongo.stop()]).finally(() => process.exit(130));
    });
  }
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => process.stderr.write(`[bundle] ${message}\n`),
  error: (message: string) => process.stderr.write(`[bundle] ${message}\n`),
};
