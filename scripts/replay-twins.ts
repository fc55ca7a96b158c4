// Replays recorded twin histories through the workflow code as it is now, with the twin types a module adds:
// run it before deploying a change to a twin type while its twins run. Exits 1 when one fails to replay.
//
//   npm run replay -- --twins ./my-twins/index.ts --dir ./histories          (history JSON files)
//   npm run replay -- --twins ./my-twins/index.ts --query "TwinflowTwinType = 'water-tank'" [--limit 50]
//        (from the Temporal server at TEMPORAL_ADDRESS, namespace TEMPORAL_NAMESPACE or default)
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { historyFromJson } from '../test/fixtures/history-json';
import { bundleWithTwins } from '../worker/twin-worker';
import { loadUserTwins } from '../worker/user-twins';

type Replayable = { workflowId: string; history: ReturnType<typeof historyFromJson> };

async function* fromDir(dir: string): AsyncGenerator<Replayable> {
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort()) {
    yield {
      workflowId: f.replace(/\.json$/, ''),
      history: historyFromJson(JSON.parse(readFileSync(path.join(dir, f), 'utf8'))),
    };
  }
}

async function* fromServer(query: string, limit: number): AsyncGenerator<Replayable> {
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  try {
    const client = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
    let n = 0;
    for await (const wf of client.workflow.list({ query })) {
      if (n++ >= limit) break;
      const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      yield { workflowId: wf.workflowId, history: history };
    }
  } finally {
    await connection.close();
  }
}

export async function replay(o: {
  twins?: string;
  dir?: string;
  query?: string;
  limit?: number;
  say?: (line: string) => void;
}): Promise<{ replayed: number; failures: string[] }> {
  const say = o.say ?? ((line: string) => process.stdout.write(`${line}\n`));
  if (!o.dir && !o.query)
    throw new Error('give --dir <folder of history JSON files> or --query <visibility query>');
  if (o.twins) say(`twin types: ${(await loadUserTwins(o.twins)).map((t) => t.name).join(', ')}`);
  const bundle = o.twins
    ? await bundleWithTwins(o.twins)
    : await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows') });
  const source = o.dir ? fromDir(o.dir) : fromServer(o.query!, o.limit ?? 100);
  const failures: string[] = [];
  let replayed = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, source)) {
    replayed++;
    if (result.error) {
      failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
      say(`FAIL ${result.workflowId}: ${result.error.message}`);
    } else say(`ok   ${result.workflowId}`);
  }
  say(`${replayed} histories replayed, ${failures.length} failed`);
  return { replayed, failures };
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      twins: { type: 'string' },
      dir: { type: 'string' },
      query: { type: 'string' },
      limit: { type: 'string' },
    },
  });
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  replay({
    ...(values.twins ? { twins: values.twins } : {}),
    ...(values.dir ? { dir: values.dir } : {}),
    ...(values.query ? { query: values.query } : {}),
    ...(values.limit ? { limit: Number(values.limit) } : {}),
  }).then(
    ({ failures }) => process.exit(failures.length > 0 ? 1 : 0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}
