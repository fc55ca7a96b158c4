// The pending-marker view over a store stubbed in memory: what it answers after each kind of write, how many
// store reads it makes, and how it recovers from gaps in the feed. The real store is covered by the
// integration suite (test/integration/pending-markers.test.ts).
import {
  type LocalPendingListener,
  PENDING_RING,
  type PendingChange,
  type PendingWriter,
  ringSlotId,
} from '../../../inventory/pending-feed';
import { PendingMarkerView, type PendingMarkerViewOptions } from '../../../operations/pending-markers';

/** The store as OperationRepository keeps it: markers, and each writer's ring and how far it published it. */
class FakeStore {
  readonly markers = new Map<string, number>();
  readonly ring = new Map<string, PendingChange>();
  readonly allocated = new Map<string, number>();
  readonly published = new Map<string, number>();
  feedReads = 0;
  changeReads = 0;
  markerReads = 0;
  failFeed = false;

  /** A marker write through `writer`; unpublished, it has not returned yet; unrecorded, it failed. */
  write(deviceId: string, waiting: number, o: { writer?: string; publish?: boolean; record?: boolean } = {}) {
    const { writer = 'w1', publish = true, record = true } = o;
    const key = `o/${deviceId}`;
    this.markers.set(key, waiting);
    const seq = (this.allocated.get(writer) ?? 0) + 1;
    this.allocated.set(writer, seq);
    if (record) this.ring.set(ringSlotId(writer, seq), { writer, seq, key });
    if (publish) this.publish(writer);
    return seq;
  }

  publish(writer = 'w1'): void {
    this.published.set(writer, this.allocated.get(writer) ?? 0);
  }

  async pendingMarker(org: string, deviceId: string): Promise<number | undefined> {
    this.markerReads++;
    return this.markers.get(`${org}/${deviceId}`);
  }

  async pendingWriters(): Promise<PendingWriter[]> {
    this.feedReads++;
    if (this.failFeed) throw new Error('store down');
    return [...this.published].map(([writer, seq]) => ({ writer, seq }));
  }

  async pendingChanges(wanted: readonly PendingWriter[]): Promise<PendingChange[]> {
    this.changeReads++;
    const slots = new Set(wanted.map((w) => ringSlotId(w.writer, w.seq)));
    return [...slots].flatMap((slot) => (this.ring.has(slot) ? [this.ring.get(slot)!] : []));
  }

  readonly local: LocalPendingListener[] = [];
  onLocalPendingWrite(listener: LocalPendingListener): void {
    this.local.push(listener);
  }

  /** A write made by this process: stored, in its feed, and heard at once. */
  writeHere(deviceId: string, waiting: number): void {
    this.write(deviceId, waiting, { writer: 'here' });
    for (const listener of this.local) listener(`o/${deviceId}`, waiting, 'here');
  }
}

/** Every question waits for its own read of the feed unless `refreshMs` says otherwise. */
function setup(options: Partial<PendingMarkerViewOptions> = {}) {
  const store = new FakeStore();
  let now = 0;
  const view = new PendingMarkerView(store, { refreshMs: 0, ...options }, () => now);
  return { store, view, advance: (ms: number) => (now += ms) };
}

describe('PendingMarkerView', () => {
  it('reads a device once, then answers from memory with one read of the feed per question', async () => {
    const { store, view } = setup();
    store.write('a', 0);
    await expect(view.waiting('o', 'a')).resolves.toBe(0);
    expect(store.markerReads).toBe(1);
    await expect(view.waiting('o', 'a')).resolves.toBe(0);
    expect(store.markerReads).toBe(1);
    expect(store.feedReads).toBe(2);
  });

  it('does not hold a device whose twin never stored a marker: the caller asks the twin each time', async () => {
    const { store, view } = setup();
    await expect(view.waiting('o', 'b')).resolves.toBeUndefined();
    await expect(view.waiting('o', 'b')).resolves.toBeUndefined();
    expect(store.markerReads).toBe(2);
    expect(view.counters().devices).toBe(0);
  });

  it('sees every write that returned before the question, whichever process wrote it', async () => {
    const { store, view } = setup();
    store.write('a', 0);
    await view.waiting('o', 'a');
    store.write('a', 2);
    await expect(view.waiting('o', 'a')).resolves.toBe(2);
    // The twin's writes in turn through two workers: the marker itself settles their order.
    store.write('a', 1, { writer: 'w2' });
    store.write('b', 4, { writer: 'w2' });
    store.write('a', 0, { writer: 'w1' });
    await expect(view.waiting('o', 'a')).resolves.toBe(0);
    expect(view.counters()).toEqual({ devices: 1, writers: 2 });
  });

  it('answers many questions at once with one or two reads of the feed', async () => {
    const { store, view } = setup();
    const ids = Array.from({ length: 100 }, (_, i) => `d${i}`);
    for (const id of ids) store.write(id, 0);
    await Promise.all(ids.map((id) => view.waiting('o', id)));
    const feedReads = store.feedReads;
    const markerReads = store.markerReads;
    store.write('d7', 3);
    const answers = await Promise.all(ids.map((id) => view.waiting('o', id)));
    expect(store.feedReads - feedReads).toBeLessThanOrEqual(2);
    expect(store.markerReads - markerReads).toBe(1);
    expect(answers.filter((w) => w === 3)).toHaveLength(1);
    expect(answers[7]).toBe(3);
  });

  it('sees a write once its writer publishes it, and passes over one that failed', async () => {
    const { store, view } = setup();
    store.write('a', 0);
    await view.waiting('o', 'a');
    // Stored and recorded, not yet published: the write has not returned, so nothing is promised yet.
    store.write('a', 5, { publish: false });
    await expect(view.waiting('o', 'a')).resolves.toBe(0);
    store.publish();
    await expect(view.waiting('o', 'a')).resolves.toBe(5);
    // A write that failed after storing its marker leaves its slot empty; the twin writes again.
    store.write('a', 6, { record: false });
    store.write('a', 6);
    await expect(view.waiting('o', 'a')).resolves.toBe(6);
  });

  it('starts again when it falls more than half a ring behind, or finds the ring gone round', async () => {
    const { store, view } = setup();
    store.write('a', 0);
    await view.waiting('o', 'a');
    for (let i = 0; i <= PENDING_RING / 2; i++) store.write('other', i % 3);
    store.markers.set('o/a', 7); // a change to `a` the view cannot read from the ring any more
    await expect(view.waiting('o', 'a')).resolves.toBe(7);
    expect(store.markerReads).toBe(2);
    // The slot of the next write already holds one a whole ring later.
    const seq = store.write('a', 1);
    store.ring.set(ringSlotId('w1', seq), { writer: 'w1', seq: seq + PENDING_RING, key: 'o/zz' });
    store.markers.set('o/a', 9);
    await expect(view.waiting('o', 'a')).resolves.toBe(9);
    expect(store.markerReads).toBe(3);
  });

  it('does not keep a marker read during which the feed moved', async () => {
    const { store, view } = setup();
    store.write('a', 0);
    store.write('z', 0);
    await view.waiting('o', 'z');
    let release!: () => void;
    const original = store.pendingMarker.bind(store);
    store.pendingMarker = async (org, id) => {
      const value = await original(org, id);
      if (id === 'a') await new Promise<void>((r) => (release = r));
      return value;
    };
    const first = view.waiting('o', 'a');
    await new Promise((r) => setImmediate(r));
    store.write('a', 3);
    await view.waiting('o', 'z'); // a question after the write: the feed moves on
    release();
    await expect(first).resolves.toBe(0);
    store.pendingMarker = original;
    // Not kept: the next question reads the marker again and sees the newer count.
    await expect(view.waiting('o', 'a')).resolves.toBe(3);
  });

  it('reads the marker itself when the feed cannot be read', async () => {
    const { store, view } = setup();
    store.write('a', 4);
    store.failFeed = true;
    await expect(view.waiting('o', 'a')).resolves.toBe(4);
    store.failFeed = false;
    await expect(view.waiting('o', 'a')).resolves.toBe(4);
  });

  it('forgets every device once it holds too many', async () => {
    const { store, view } = setup({ maxDevices: 2 });
    for (const id of ['a', 'b', 'c']) store.write(id, 0);
    for (const id of ['a', 'b', 'c']) await view.waiting('o', id);
    expect(view.counters().devices).toBe(1);
    await view.waiting('o', 'a');
    expect(store.markerReads).toBe(4);
  });

  it('answers from memory while the last read is fresh, and hears the writes made here at once', async () => {
    const { store, view, advance } = setup({ refreshMs: 100 });
    store.write('a', 0);
    await view.waiting('o', 'a');
    const reads = store.feedReads;
    // Written here: heard at once, without a read.
    store.writeHere('a', 2);
    await expect(view.waiting('o', 'a')).resolves.toBe(2);
    // Written elsewhere within the window: not promised until the window is over...
    store.write('a', 0, { writer: 'elsewhere' });
    advance(50);
    await expect(view.waiting('o', 'a')).resolves.toBe(2);
    expect(store.feedReads).toBe(reads);
    // ...then the next question waits for a read that starts after it.
    advance(50);
    await expect(view.waiting('o', 'a')).resolves.toBe(0);
    expect(store.feedReads).toBe(reads + 1);
    view.close();
  });

  it('keeps reading the feed in the background while devices poll, and stops when they stop', async () => {
    const store = new FakeStore();
    const view = new PendingMarkerView(store, { refreshMs: 20, idleAfterMs: 200 });
    store.write('a', 0);
    await view.waiting('o', 'a');
    await new Promise((r) => setTimeout(r, 120));
    const reads = store.feedReads;
    expect(reads).toBeGreaterThanOrEqual(3);
    // A write elsewhere reaches memory without a question waiting for it.
    store.write('a', 4, { writer: 'elsewhere' });
    await new Promise((r) => setTimeout(r, 60));
    const before = store.feedReads;
    await expect(view.waiting('o', 'a')).resolves.toBe(4);
    expect(store.feedReads - before).toBeLessThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 300));
    const idle = store.feedReads;
    await new Promise((r) => setTimeout(r, 100));
    expect(store.feedReads).toBe(idle);
    view.close();
  });

  it('keeps a write of this process over an older count read during it', async () => {
    const { store, view } = setup();
    store.write('a', 1);
    await view.waiting('o', 'a');
    store.write('a', 0, { writer: 'elsewhere' });
    // The read the next question waits for finds the change elsewhere and reads the marker again; this process
    // writes 5 while that read is under way, after the marker read returned the older 0.
    const original = store.pendingMarker.bind(store);
    store.pendingMarker = async (org, id) => {
      const value = await original(org, id);
      store.writeHere('a', 5);
      return value;
    };
    await expect(view.waiting('o', 'a')).resolves.toBe(5);
    store.pendingMarker = original;
  });

  it('does not read back from the feed what this process wrote: it heard it', async () => {
    const { store, view } = setup();
    store.writeHere('a', 0);
    await view.waiting('o', 'a');
    const { markerReads, changeReads } = store;
    for (const waiting of [3, 0, 1]) {
      store.writeHere('a', waiting);
      await expect(view.waiting('o', 'a')).resolves.toBe(waiting);
    }
    expect(store.markerReads).toBe(markerReads);
    expect(store.changeReads).toBe(changeReads);
    // Another process's write is still read from the feed.
    store.write('a', 7, { writer: 'elsewhere' });
    await expect(view.waiting('o', 'a')).resolves.toBe(7);
    expect(store.changeReads).toBe(changeReads + 1);
  });
});
