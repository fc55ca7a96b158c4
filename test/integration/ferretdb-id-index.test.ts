// TwinFlow's FerretDB launcher indexes `_id` again after a collection or its database is dropped and re-created.
import { type Db, MongoClient } from 'mongodb';
import { itEnv, uniqueName } from './harness';

/** Only TwinFlow's launcher adds the index; mongod indexes `_id` itself and FerretDB's release binary cannot. */
const onLauncher = process.env.TWINFLOW_IT_MONGO_KIND === 'ferretdb';

/**
 * SQLite's plan for FerretDB's lookup by `_id`, as FerretDB's explain reports it. The find first makes the
 * connection notice schema changes (SQLite reloads a stale schema when a statement runs, not when one is only
 * explained), and database/sql hands the explain the connection the find just gave back.
 */
async function idLookupPlan(db: Db, collection: string): Promise<string> {
  await db.collection(collection).findOne({ _id: 'probe' as never });
  const res = await db.command({ explain: { find: collection, filter: { _id: 'probe' } } });
  return ((res.queryPlanner as { Plan?: string[] }).Plan ?? []).join('\n');
}

/** The launcher looks for tables without the index every second: wait a few passes for it. */
async function waitForIdIndex(db: Db, collection: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let plan = '';
  while (Date.now() < deadline) {
    plan = await idLookupPlan(db, collection);
    if (/USING INDEX \S+_twinflow_id/.test(plan)) return plan;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no _id index on ${db.databaseName}.${collection} after ${timeoutMs} ms; plan:\n${plan}`);
}

(onLauncher ? describe : describe.skip)("the FerretDB launcher's _id index", () => {
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
