// Announcing credential changes: an announcement the store refuses is not lost, and never fails the change it
// announces: it is tried again in the background until stored. A stand-in collection that fails on demand.
import { MongoBulkWriteError } from 'mongodb';
import { CredentialChanges, type CredentialChangeDoc } from '../../../inventory/credential-changes.repo';

function collection(failures: number) {
  const stored = new Map<string, CredentialChangeDoc>();
  const state = { failures, attempts: 0 };
  const fake = {
    insertMany: async (docs: CredentialChangeDoc[]) => {
      state.attempts++;
      if (state.failures-- > 0) throw new Error('store unreachable');
      for (const d of docs) stored.set(d._id, d);
      return { insertedCount: docs.length };
    },
    find: () => ({ toArray: async () => [...stored.values()] }),
    deleteMany: async () => ({ deletedCount: 0 }),
  };
  return { stored, state, changes: new CredentialChanges({ credentialChanges: fake as never }) };
}

describe('credential change announcements', () => {
  it('splits a large announcement into documents of 1,000 ids', async () => {
    const { stored, changes } = collection(0);
    const ids = Array.from({ length: 2_500 }, (_, i) => `h${i}`);
    await changes.announce('key', ids);
    const docs = await changes.since(new Date(0));
    expect(docs.map((d) => d.ids.length)).toEqual([1_000, 1_000, 500]);
    expect(docs.flatMap((d) => d.ids)).toEqual(ids);
    expect(stored.size).toBe(3);
  });

  it('tries again at once, then in the background until stored, telling of it', async () => {
    const { stored, state, changes } = collection(4);
    const warned: number[] = [];
    changes.warn = (_err, waiting) => warned.push(waiting);
    await expect(changes.announce('policy', ['o/d1'])).resolves.toBeUndefined();
    expect(state.attempts).toBe(3);
    expect(stored.size).toBe(0);
    expect(changes.waiting).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 2_300));
    expect(state.attempts).toBe(5);
    expect(warned).toEqual([1, 1]);
    expect(changes.waiting).toBe(0);
    expect([...stored.values()].map((d) => [d.kind, d.ids])).toEqual([['policy', ['o/d1']]]);
  });

  it('takes a retry that finds its documents stored already as stored', async () => {
    const duplicate = new MongoBulkWriteError(
      { message: 'E11000', code: 11000, writeErrors: [{ index: 0, code: 11000, errmsg: 'dup' }] } as never,
      {} as never,
    );
    const stored: CredentialChangeDoc[] = [];
    const changes = new CredentialChanges({
      credentialChanges: {
        insertMany: async () => {
          throw duplicate;
        },
        deleteMany: async () => ({ deletedCount: 0 }),
        find: () => ({ toArray: async () => stored }),
      } as never,
    });
    await changes.announce('key', ['h1']);
    expect(changes.waiting).toBe(0);
  });
});
