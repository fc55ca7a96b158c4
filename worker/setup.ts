// `npm run setup`: finds or builds the local servers ahead of time and says where they are.
import { ToolMissingError, ensureMongoServer, ensureTemporalCli } from './tools';

async function setup(): Promise<void> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const temporal = await ensureTemporalCli(process.env, say);
  const mongo = await ensureMongoServer(process.env, say);
  say(`Temporal CLI: ${temporal}`);
  say(`MongoDB-compatible server (${mongo.kind}): ${mongo.path}`);
}

setup().catch((err: unknown) => {
  process.stderr.write(
    `${err instanceof ToolMissingError ? err.message : ((err as Error).stack ?? String(err))}\n`,
  );
  process.exit(1);
});
