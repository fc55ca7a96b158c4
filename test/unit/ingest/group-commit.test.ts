// Covers group commit: batching while a write is under way, batch size, the bounded queue, failures.
import { GroupCommit, QueueFullError } from '../../../ingest/group-commit';

/** A writer whose writes finish when the test says so. */
function controlledWriter() {
  const writes: { items: number[]; finish(err?: Error): void }[] = [];
  const write = (items: readonly number[]) =>
    new Promise<void>((resolve, reject) => {
      writes.push({ items: [...items], finish: (err) => (err ? reject(err) : resolve()) });
    });
  return { writes, write };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('GroupCommit', () => {
  it('writes at once when idle, and gathers what arrives meanwhile into the next write', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write, { maxQueued: 100, maxBatchItems: 100, concurrency: 1 });
    const done: number[] = [];
    const submit = (n: number) => gc.submit(n).then(() => done.push(n));
    void submit(1);
    await flush();
    expect(w.writes.map((x) => x.items)).toEqual([[1]]);
    void submit(2);
    void submit(3);
    void submit(4);
    await flush();
    expect(w.writes).toHaveLength(1);
    w.writes[0]?.finish();
    await flush();
    expect(done).toEqual([1]);
    expect(w.writes.map((x) => x.items)).toEqual([[1], [2, 3, 4]]);
    w.writes[1]?.finish();
    await flush();
    expect(done).toEqual([1, 2, 3, 4]);
    expect(gc.counters()).toMatchObject({ batches: 2, items: 4, largestBatch: 3, queued: 0 });
  });

  it('closes a batch at its item limit, counting weights', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write, { maxQueued: 100, maxBatchItems: 10, concurrency: 1 });
    void gc.submit(0, 1);
    await flush();
    for (const n of [1, 2, 3]) void gc.submit(n, 4);
    w.writes[0]?.finish();
    await flush();
    expect(w.writes.map((x) => x.items)).toEqual([[0], [1, 2]]);
  });

  it('refuses at once when the queue is full, and takes more once there is room', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write, { maxQueued: 2, maxBatchItems: 100, concurrency: 1 });
    void gc.submit(1);
    await flush();
    void gc.submit(2);
    void gc.submit(3);
    await expect(gc.submit(4)).rejects.toBeInstanceOf(QueueFullError);
    expect(gc.counters().refused).toBe(1);
    w.writes[0]?.finish();
    await flush();
    await expect(
      Promise.race([gc.submit(5).then(() => 'written'), flush().then(() => 'queued')]),
    ).resolves.toBe('queued');
  });

  it('lets a patient sender wait for room instead of failing', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write, { maxQueued: 1, maxBatchItems: 100, concurrency: 1 });
    void gc.submit(1);
    await flush();
    void gc.submit(2);
    let third = 'waiting';
    const waiting = gc.submitWhenRoom(3).then(() => (third = 'written'));
    await flush();
    expect(third).toBe('waiting');
    w.writes[0]?.finish();
    await flush();
    w.writes[1]?.finish();
    await flush();
    w.writes[2]?.finish();
    await waiting;
    expect(w.writes.map((x) => x.items)).toEqual([[1], [2], [3]]);
  });

  it('fails every message of a failed write, and carries on with the next', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write, { maxQueued: 100, maxBatchItems: 100, concurrency: 1 });
    const first = gc.submit(1);
    await flush();
    const second = gc.submit(2);
    const third = gc.submit(3);
    w.writes[0]?.finish(new Error('disk full'));
    await expect(first).rejects.toThrow('disk full');
    await flush();
    w.writes[1]?.finish(new Error('still full'));
    await expect(second).rejects.toThrow('still full');
    await expect(third).rejects.toThrow('still full');
    const fourth = gc.submit(4);
    await flush();
    w.writes[2]?.finish();
    await expect(fourth).resolves.toBeUndefined();
  });

  it('runs up to its concurrency of writes at once', async () => {
    const w = controlledWriter();
    const gc = new GroupCommit(w.write, { maxQueued: 100, maxBatchItems: 1, concurrency: 2 });
    for (const n of [1, 2, 3]) void gc.submit(n);
    await flush();
    expect(w.writes.map((x) => x.items)).toEqual([[1], [2]]);
  });
});
