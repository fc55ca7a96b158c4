// Inserts grouped across callers, on the real inventory server: one insert command for what callers asked
// meanwhile, each caller told whether its own document went in, a refusal of one document failing that caller
// alone, and a store that cannot be reached failing every caller.
import { type Collection, MongoBulkWriteError, MongoClient } from 'mongodb';
import { GroupInsert, duplicatesOnly, isDuplicateKey } from '../../inventory/write-errors';
import { itEnv, uniqueName } from './harness';

interface Doc {
  _id: string;
  n: number;
  [key: string]: unknown;
}

describe('grouped inserts', () => {
  let client: MongoClient;
  let docs: Collection<Doc>;
  const inserts: number[] = [];

  beforeAll(async () => {
    // The driver reports commands only to a client that monitors them.
    client = new MongoClient(itEnv('TWINFLOW_IT_MONGODB_URI'), { monitorCommands: true });
    await client.connect();
    docs = client.db(uniqueName('groupinsert')).collection<Doc>('docs');
    client.on('commandStarted', (e) => {
      if (e.commandName === 'insert') inserts.push((e.command.documents as unknown[]).length);
    });
  }, 30_000);
  afterAll(async () => {
    await client
      ?.db(docs.dbName)
      .dropDatabase()
      .catch(() => undefined);
    await client?.close();
  });
  beforeEach(() => void inserts.splice(0));

  it('stores what callers ask at once in fewer inserts than callers, each told it went in', async () => {
    const group = new GroupInsert(docs);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, n) => group.insert({ _id: `a-${n}`, n })),
    );
    expect(results).toEqual(Array.from({ length: 40 }, () => true));
    // The first caller's insert goes out alone; the 39 asked meanwhile share the next one.
    expect(inserts).toEqual([1, 39]);
    expect(await docs.countDocuments({ _id: { $regex: '^a-' } })).toBe(40);
  });

  it('answers false to a caller whose _id is stored already, and stores the others of its write', async () => {
    await docs.insertOne({ _id: 'b-1', n: -1 });
    inserts.splice(0);
    const group = new GroupInsert(docs);
    const first = group.insert({ _id: 'b-0', n: 0 });
    const rest = [1, 2, 3].map((n) => group.insert({ _id: `b-${n}`, n }));
    expect(await first).toBe(true);
    expect(await Promise.all(rest)).toEqual([false, true, true]);
    expect(inserts).toEqual([1, 3]);
    const stored = await docs.find({ _id: { $regex: '^b-' } }).toArray();
    expect(stored.map((d) => [d._id, d.n]).sort()).toEqual([
      ['b-0', 0],
      ['b-1', -1],
      ['b-2', 2],
      ['b-3', 3],
    ]);
  });

  it('tells two callers of one _id in one write that one of them stored it', async () => {
    const group = new GroupInsert(docs);
    const opener = group.insert({ _id: 'c-0', n: 0 });
    const both = [group.insert({ _id: 'c-1', n: 1 }), group.insert({ _id: 'c-1', n: 2 })];
    await opener;
    expect((await Promise.all(both)).sort()).toEqual([false, true]);
    expect(await docs.countDocuments({ _id: 'c-1' })).toBe(1);
  });

  it('fails only the caller whose document the store refuses for another reason', async () => {
    const group = new GroupInsert(docs);
    const opener = group.insert({ _id: 'd-0', n: 0 });
    // A field name the server refuses (it begins with `$`), with a code that is not a duplicate's.
    const refused = group.insert({ _id: 'd-1', n: 1, $bad: 1 });
    const fine = group.insert({ _id: 'd-2', n: 2 });
    await opener;
    await expect(refused).rejects.toThrow();
    expect(await fine).toBe(true);
    expect(await docs.countDocuments({ _id: { $in: ['d-1', 'd-2'] } })).toBe(1);
  });

  it('fails every caller when the store cannot be reached', async () => {
    // Port 1 on loopback: nothing listens there, so the store is never reached.
    const away = new MongoClient('mongodb://127.0.0.1:1/', { serverSelectionTimeoutMS: 300 });
    try {
      const group = new GroupInsert(away.db(docs.dbName).collection<Doc>('docs'));
      const results = await Promise.allSettled([1, 2, 3].map((n) => group.insert({ _id: `e-${n}`, n })));
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
      // The later writes fail as a whole (the client gave up on the store): a bulk error naming no document.
      const whole = await away
        .db(docs.dbName)
        .collection<Doc>('docs')
        .insertMany(
          [
            { _id: 'e-4', n: 4 },
            { _id: 'e-5', n: 5 },
          ],
          { ordered: false },
        )
        .catch((err: unknown) => err);
      expect(whole).toBeInstanceOf(MongoBulkWriteError);
      expect(duplicatesOnly(whole, 2)).toBeUndefined();
    } finally {
      await away.close();
    }
  });

  it('reads a refused insert the same way for one document and for many', async () => {
    await docs.insertMany([
      { _id: 'f-1', n: 1 },
      { _id: 'f-3', n: 3 },
    ]);
    const one = await docs.insertMany([{ _id: 'f-1', n: 1 }]).catch((err: unknown) => err);
    expect(duplicatesOnly(one, 1)).toEqual(new Set([0]));
    expect(isDuplicateKey(await docs.insertOne({ _id: 'f-1', n: 1 }).catch((err: unknown) => err))).toBe(
      true,
    );
    const many = await docs
      .insertMany(
        [0, 1, 2, 3].map((n) => ({ _id: `f-${n}`, n })),
        { ordered: false },
      )
      .catch((err: unknown) => err);
    expect(duplicatesOnly(many, 4)).toEqual(new Set([1, 3]));
    expect(duplicatesOnly(new Error('connection reset'), 4)).toBeUndefined();
  });
});
