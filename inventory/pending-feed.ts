// The feed of pending-marker writes: each process that writes markers numbers its own writes, records each in a
// ring of its own, and publishes how far its record is complete, so that any other process can learn which
// devices' markers changed with one small read (PendingMarkerView). The store needs no atomic counter (FerretDB
// 1.24 loses concurrent `$inc`s) and no range query (it would read the whole collection).
import { randomUUID } from 'node:crypto';
import type { Collections } from './inventory';

/** Slots in each writer's ring: a reader more than half a ring behind a writer starts again from the markers. */
export const PENDING_RING = 1024;

/** A writer not heard from for this long is forgotten, with its ring, by the next writer that starts (ms). */
const WRITER_FORGOTTEN_AFTER_MS = 86_400_000;

/** Keys one call records at most: well under half a ring, so that a batch never laps a reader on its own. */
export const MAX_RECORDED_AT_ONCE = 256;

export const ringSlotId = (writer: string, seq: number): string => `${writer}:${seq % PENDING_RING}`;

/** How far one writer's record is complete. */
export interface PendingWriter {
  readonly writer: string;
  readonly seq: number;
}

/** One recorded write: the device whose marker changed. */
export interface PendingChange {
  readonly writer: string;
  readonly seq: number;
  /** `${org}/${deviceId}`, the marker's `_id`. */
  readonly key: string;
}

/** Hears this process's marker writes once they return: the device's key, the count written, and its writer. */
export type LocalPendingListener = (key: string, waiting: number, writer: string) => void;

/** Listeners by the store they write to (one inventory, one set: a second connection counts as another process). */
const localListeners = new WeakMap<object, Set<LocalPendingListener>>();

export function onLocalPendingWrite(store: object, listener: LocalPendingListener): void {
  const set = localListeners.get(store) ?? new Set();
  set.add(listener);
  localListeners.set(store, set);
}

export function announceLocalPendingWrite(store: object, key: string, waiting: number, writer: string): void {
  for (const listener of localListeners.get(store) ?? []) listener(key, waiting, writer);
}

/** This process's side of the feed. */
export class PendingFeedWriter {
  readonly writer = randomUUID().replace(/-/g, '').slice(0, 16);
  private allocated = 0;
  /** Every write up to this number is recorded, or failed (a failed one's marker is written again with a new one). */
  private complete = 0;
  private readonly settled = new Set<number>();
  private published = 0;
  private publishing: Promise<void> | undefined;
  private started: Promise<void> | undefined;

  constructor(private readonly c: Collections) {}

  /**
   * Records that these devices' markers changed (after they were stored), in one write of their slots; resolves
   * once every reader can see them. At most `MAX_RECORDED_AT_ONCE` keys a call.
   */
  async record(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    if (keys.length > MAX_RECORDED_AT_ONCE) throw new Error(`at most ${MAX_RECORDED_AT_ONCE} keys at once`);
    await (this.started ??= this.forgetIdleWriters().catch(() => undefined));
    const seqs = keys.map(() => ++this.allocated);
    try {
      // Only this process writes its slots, and a slot again only a whole ring later: no upserts race.
      await this.c.pendingChanges.bulkWrite(
        keys.map((key, i) => ({
          replaceOne: {
            filter: { _id: ringSlotId(this.writer, seqs[i]!) },
            replacement: { writer: this.writer, seq: seqs[i]!, key },
            upsert: true,
          },
        })),
        { ordered: false },
      );
    } finally {
      for (const seq of seqs) this.settle(seq);
    }
    const last = seqs.at(-1)!;
    while (this.published < last) {
      this.publishing ??= this.publish().finally(() => (this.publishing = undefined));
      await this.publishing;
    }
  }

  private settle(seq: number): void {
    this.settled.add(seq);
    while (this.settled.delete(this.complete + 1)) this.complete++;
  }

  /** One publication at a time, so the writer's document only moves forward. */
  private async publish(): Promise<void> {
    const seq = this.complete;
    await this.c.pendingWriters.replaceOne({ _id: this.writer }, { seq, at: Date.now() }, { upsert: true });
    this.published = Math.max(this.published, seq);
  }

  /** Writers gone for a day (processes that stopped) leave no documents for readers to go through. */
  private async forgetIdleWriters(): Promise<void> {
    const idle = await this.c.pendingWriters
      .find({ at: { $lt: Date.now() - WRITER_FORGOTTEN_AFTER_MS } }, { projection: { _id: 1 } })
      .toArray();
    if (idle.length === 0) return;
    const ids = idle.map((w) => w._id);
    await this.c.pendingChanges.deleteMany({ writer: { $in: ids } });
    await this.c.pendingWriters.deleteMany({ _id: { $in: ids } });
  }
}
