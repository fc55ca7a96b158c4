// The V8 heap one cached twin keeps: TwinFlow's workflows on the SDK's reusable context in this thread (debug
// mode; the stack runs them on a workflow thread whose heap cannot be read from outside), twins started straight
// through Temporal, and the heap weighed after full garbage collections.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { getFreePort, startTemporalDevServer } from '../worker/local-stack';
import { ensureTemporalCli } from '../worker/tools';
import { twinWorkflowId } from '../workflows/ids';

export interface TwinHeapResult {
  readonly twins: number;
  readonly heapKiBPerTwin: number;
  readonly rssKiBPerTwin: number;
}

/** Node's gc(), reachable without --expose-gc on the command line. */
function collector(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startTwins(client: Client, from: number, count: number): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < from + count) {
        const i = next++;
        await client.workflow.start('twinWorkflow', {
          workflowId: twinWorkflowId('default', `heap-${i}`),
          taskQueue: 'twin-heap',
          args: [
            {
              identity: {
                org: 'default',
                deviceId: `heap-${i}`,
                twinType: i % 2 ? 'electricity-meter' : 'generic',
              },
              profile: { tags: [], attributes: {} },
            },
          ],
        });
      }
    }),
  );
}

async function cached(worker: Worker, count: number): Promise<void> {
  while (worker.getStatus().numCachedWorkflows < count) await sleep(200);
}

/** The SDK warns that this worker polls no activities: true, and no news. */
function quietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // Already installed by an earlier section of this run.
  }
}

/**
 * `shared`: the modules the twins share in the reusable V8 context (worker/workflow-bundle.ts); an empty list
 * weighs twins that each evaluate every module of the bundle again, the SDK's default.
 */
export async function runTwinHeapBench(
  twins: number,
  log: (line: string) => void,
  shared: readonly string[],
): Promise<TwinHeapResult> {
  quietRuntime();
  const gc = collector();
  const weigh = () => {
    gc();
    gc();
    return { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-twin-heap-'));
  const server = await startTemporalDevServer({
    bin: await ensureTemporalCli(process.env, log),
    port: await getFreePort(),
    uiPort: 0,
    ui: false,
    dataDir: dir,
    namespace: 'default',
  });
  const native = await NativeConnection.connect({ address: server.address });
  const connection = await Connection.connect({ address: server.address });
  try {
    const worker = await Worker.create({
      connection: native,
      taskQueue: 'twin-heap',
      workflowsPath: require.resolve('../workflows'),
      bundlerOptions: { preloadModules: [...shared] },
      activities: {},
      debugMode: true,
      maxCachedWorkflows: twins + 100,
    });
    const running = worker.run();
    const client = new Client({ connection });
    // Two twins first, so that the bundle's shared parts are in the baseline.
    await startTwins(client, -2, 2);
    await cached(worker, 2);
    const before = weigh();
    await startTwins(client, 0, twins);
    await cached(worker, twins + 2);
    const after = weigh();
    worker.shutdown();
    await running;
    return {
      twins,
      heapKiBPerTwin: (after.heap - before.heap) / twins / 1024,
      rssKiBPerTwin: (after.rss - before.rss) / twins / 1024,
    };
  } finally {
    await connection.close();
    await native.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
