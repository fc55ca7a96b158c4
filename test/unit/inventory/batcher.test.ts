// The batcher behind grouped writes: one batch at a time, the items asked for meanwhile in the next, in order,
// at most maxBatch; each caller settles with its own item's outcome, and a batch that throws fails its callers.
import { type BatchOutcome, Batcher } from '../../../inventory/batcher';

/** A run whose batches finish when the test says so. */
function controlledRun() {
  const batches: number[][] = [];
  const finish: (() => void)[] = [];
  const run = (items: readonly number[]): Promise<BatchOutcome<number>[]> => {
    batches.push([...items]);
    return new Promise((resolve) =>
      finish.push(() =>
        resolve(items.map((n) => (n < 0 ? { error: new Error(`bad ${n}`) } : { value: n * 10 }))),
      ),
    );
  };
  return { batches, finish, run };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Batcher', () => {
  it('sends the first item alone and the ones asked meanwhile together, in order', async () => {
    const { batches, finish, run } = controlledRun();
    const batcher = new Batcher(run);
    const first = batcher.submit(1);
    const rest = [2, 3, 4].map((n) => batcher.submit(n));
    expect(batches).toEqual([[1]]);
    finish[0]!();
    await expect(first).resolves.toBe(10);
    await tick();
    expect(batches).toEqual([[1], [2, 3, 4]]);
    finish[1]!();
    await expect(Promise.all(rest)).resolves.toEqual([20, 30, 40]);
  });

  it('takes at most maxBatch items a batch', async () => {
    const { batches, finish, run } = controlledRun();
    const batcher = new Batcher(run, 2);
    const all = [1, 2, 3, 4, 5].map((n) => batcher.submit(n));
    for (let i = 0; i < 3; i++) {
      await tick();
      finish[i]!();
    }
    await expect(Promise.all(all)).resolves.toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([[1], [2, 3], [4, 5]]);
  });

  it('fails only the caller whose item failed, and every caller of a batch that throws', async () => {
    const { finish, run } = controlledRun();
    const batcher = new Batcher(run);
    const opener = batcher.submit(0);
    const good = batcher.submit(7);
    const bad = batcher.submit(-1);
    finish[0]!();
    await opener;
    await tick();
    finish[1]!();
    await expect(good).resolves.toBe(70);
    await expect(bad).rejects.toThrow('bad -1');

    let calls = 0;
    const throwing = new Batcher<number, number>(async () => {
      calls++;
      throw new Error('store unreachable');
    });
    const results = await Promise.allSettled([1, 2].map((n) => throwing.submit(n)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    // It keeps serving after a failure.
    await expect(throwing.submit(3)).rejects.toThrow('store unreachable');
    expect(calls).toBe(3);
  });
});
