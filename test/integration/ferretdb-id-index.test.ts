// Lookups by `_id` use an index, also after a collection or its database is dropped and re-created: TwinFlow's
// FerretDB launcher adds the index again (mongod keeps its own).
import { type Db, MongoClient } from 'mongodb';
import { itEnv, uniqueName } from './harness';

/**
 * SQLite's plan for FerretDB's lookup by `_id`, as FerretDB's explain reports it. The find first makes the
 * connection notice schema changes (SQLite reloads a stale schema when a statement runs, not when one is only
 * explained), and database/sql hands the explain the connection the find just gave back.
 */
async function idLookupPlan(db: Db, collection: string): Promise<string> {
  await db.collection(collection).findOne({ _id: 'probe' as never });
  const res = await db.command({ explain: { find: collection, filter: { _id: 'probe' } } });
  const plan = (res.queryPlanner as { Plan?: string[]; winningPlan?: unknown }) ?? {};
  // FerretDB reports SQLite's plan lines; mongod (which indexes `_id` itself) its winning plan.
  return plan.Plan ? plan.Plan.join('\n') : JSON.stringify(plan.winningPlan ?? res);
}

/** The launcher looks for tables without the index every second: wait a few passes for it. */
async function waitForIdIndex(db: Db, collection: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let plan = '';
  while (Date.now() < deadline) {
    plan = await idLookupPlan(db, collection);
    if (/USING INDEX \S+_twinflow_id|IDHACK|EXPRESS_IXSCAN|"IXSCAN"/.test(plan)) return plan;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no _id index on ${db.databaseName}.${collection} after ${timeoutMs} ms; plan:\n${plan}`);
}

describe("the inventory server's _id index", () => {
  let client: MongoClient;
  beforeAll(async () => {
    client = new MongoClient(itEnv('TWINFLOW_IT_MONGODB_URI'), { directConnection: true });
    await client.connect();
  });
  afterAll(async () => {
    await client?.close();
  });

  it('is there again after the collection is dropped and re-created', async () => {
    const db = client.db(uniqueName('idx'));
    try {
      await db.collection('things').insertOne({ _id: 'probe' as never, n: 1 });
      await waitForIdIndex(db, 'things');

      await db.collection('things').drop();
      await db.collection('things').insertOne({ _id: 'probe' as never, n: 2 });
      await waitForIdIndex(db, 'things');
      expect(await db.collection('things').findOne({ _id: 'probe' as never })).toMatchObject({ n: 2 });
    } finally {
      await db.dropDatabase();
    }
  }, 30_000);

  it('is there again after the whole database is dropped and re-created', async () => {
    const db = client.db(uniqueName('idx'));
    try {
      await db.collection('things').insertOne({ _id: 'probe' as never, n: 1 });
      await waitForIdIndex(db, 'things');

      await db.dropDatabase();
      await db.collection('things').insertOne({ _id: 'probe' as never, n: 2 });
      await waitForIdIndex(db, 'things');
    } finally {
      await db.dropDatabase();
    }
  }, 30_000);
});
