// What each device's twin last stored as its count of operations waiting for a poll, held in this process and
// kept current from the store's feed of marker writes, so that an empty poll is answered without a store read.
import { inParallel } from '../inventory/lookups';
import {
  type LocalPendingListener,
  PENDING_RING,
  type PendingChange,
  type PendingWriter,
  ringSlotId,
} from '../inventory/pending-feed';

/** The store behind the view (OperationRepository). */
export interface PendingMarkerStore {
  pendingMarker(org: string, deviceId: string): Promise<number | undefined>;
  pendingWriters(): Promise<PendingWriter[]>;
  pendingChanges(wanted: readonly PendingWriter[]): Promise<PendingChange[]>;
  /** This process's own writes, as they return. */
  onLocalPendingWrite?(listener: LocalPendingListener): void;
}

export interface PendingMarkerViewOptions {
  /** The most devices held: past it the view forgets them all and reads each again on its next poll. */
  readonly maxDevices: number;
  /**
   * While devices poll, the feed is read this often (ms), and a question is answered from memory when the last
   * read started less than this long ago; otherwise it waits for a read that starts after it. 0: every question
   * waits for its own read.
   */
  readonly refreshMs: number;
  /** Reading stops this long after the last question (ms); the next one waits for a read again. */
  readonly idleAfterMs: number;
}

const DEFAULTS: PendingMarkerViewOptions = { maxDevices: 200_000, refreshMs: 100, idleAfterMs: 10_000 };

/**
 * What an answer reflects: every marker write made in this process that had returned before the question, and
 * every one made elsewhere that had returned before the start of a read of the writers' feeds at most
 * `refreshMs` old (while devices poll, one starts every `refreshMs`; otherwise the question waits for one). A
 * device whose marker changed since the last read is read again. A twin stores its marker before it
 * acknowledges an operation, so a poll misses no operation queued through this process before it, nor one
 * queued elsewhere `refreshMs` before it. A device is read from its marker the first time it is asked for.
 */
export class PendingMarkerView {
  private readonly known = new Map<string, number>();
  /** How far each writer's feed is applied (undefined until the first read). */
  private seen: Map<string, number> | undefined;
  /** Moves whenever a read of the feed finds changes: a marker read across it may have missed one. */
  private generation = 0;
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  /** Devices this process wrote during the read under way: their count from it may be older. */
  private readonly heardDuringRead = new Set<string>();
  /** This process's writers, heard of directly. */
  private readonly localWriters = new Set<string>();
  private lastReadStartedAt = -Infinity;
  private lastQuestionAt = -Infinity;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly options: PendingMarkerViewOptions;

  constructor(
    private readonly store: PendingMarkerStore,
    options: Partial<PendingMarkerViewOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.options = { ...DEFAULTS, ...options };
    store.onLocalPendingWrite?.((key, waiting, writer) => this.heard(key, waiting, writer));
  }

  /** The device's count of operations waiting for a poll; undefined when its twin has never stored one. */
  async waiting(org: string, deviceId: string): Promise<number | undefined> {
    const key = `${org}/${deviceId}`;
    this.lastQuestionAt = this.now();
    if (this.lastQuestionAt - this.lastReadStartedAt >= this.options.refreshMs) {
      try {
        await this.fresh();
      } catch {
        // The feed could not be read: the marker itself, as it is now.
        return this.store.pendingMarker(org, deviceId);
      }
    }
    const held = this.known.get(key);
    if (held !== undefined) return held;
    const generation = this.generation;
    const waiting = await this.store.pendingMarker(org, deviceId);
    // Kept only when no change was found during the read: one for this device would have been passed over.
    if (waiting !== undefined && generation === this.generation && !this.known.has(key))
      this.hold(key, waiting);
    return waiting;
  }

  /**
   * A write of this process, stored and in its feed: what it wrote is the device's count now. Its writer's
   * writes all come this way, so the feed's record of them is not read.
   */
  private heard(key: string, waiting: number, writer: string): void {
    this.localWriters.add(writer);
    this.generation++;
    this.heardDuringRead.add(key);
    if (this.known.has(key)) this.known.set(key, waiting);
  }

  /** Stops reading the feed in the background. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.lastQuestionAt = -Infinity;
  }

  /** Devices held, and the writers followed. */
  counters(): { devices: number; writers: number } {
    return { devices: this.known.size, writers: this.seen?.size ?? 0 };
  }

  /** Resolves after a read of the feed that started after this call. */
  private fresh(): Promise<void> {
    if (!this.running) return (this.running = this.sync());
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return (this.running = this.sync());
      });
    return this.queued;
  }

  private async sync(): Promise<void> {
    this.lastReadStartedAt = this.now();
    this.heardDuringRead.clear();
    try {
      await this.readFeed();
    } finally {
      this.running = undefined;
      this.refreshLater();
    }
  }

  /** While devices poll, the next read starts `refreshMs` after this one did. */
  private refreshLater(): void {
    const { refreshMs, idleAfterMs } = this.options;
    if (refreshMs <= 0 || this.timer || this.now() - this.lastQuestionAt >= idleAfterMs) return;
    const wait = Math.max(0, this.lastReadStartedAt + refreshMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.running) this.fresh().catch(() => undefined);
    }, wait);
    this.timer.unref?.();
  }

  private async readFeed(): Promise<void> {
    const writers = await this.store.pendingWriters();
    const seen = this.seen;
    if (!seen) return this.restart(writers);
    const wanted: PendingWriter[] = [];
    for (const { writer, seq } of writers) {
      if (this.localWriters.has(writer)) continue;
      const from = seen.get(writer) ?? 0;
      // Too far behind for the ring: start again from the markers.
      if (seq - from > PENDING_RING / 2) return this.restart(writers);
      for (let s = from + 1; s <= seq; s++) wanted.push({ writer, seq: s });
    }
    if (wanted.length === 0) return;
    const slots = new Map(
      (await this.store.pendingChanges(wanted)).map((c) => [ringSlotId(c.writer, c.seq), c]),
    );
    this.generation++;
    const changed = new Set<string>();
    for (const want of wanted) {
      const change = slots.get(ringSlotId(want.writer, want.seq));
      // The ring went round since: the writes in between are gone from it.
      if (change && change.seq > want.seq) return this.restart(writers);
      // A slot with an older write: the one asked for failed, and its marker is written again under a new number.
      if (change?.seq === want.seq && this.known.has(change.key)) changed.add(change.key);
    }
    await inParallel([...changed], async (key) => {
      const slash = key.indexOf('/');
      const waiting = await this.store.pendingMarker(key.slice(0, slash), key.slice(slash + 1));
      // This process wrote it meanwhile: what it wrote is at least as new as what was read.
      if (this.heardDuringRead.has(key)) return;
      if (waiting === undefined) this.known.delete(key);
      else this.known.set(key, waiting);
    });
    for (const { writer, seq } of writers) seen.set(writer, Math.max(seq, seen.get(writer) ?? 0));
  }

  private hold(key: string, waiting: number): void {
    if (this.known.size >= this.options.maxDevices) this.known.clear();
    this.known.set(key, waiting);
  }

  private restart(writers: readonly PendingWriter[]): void {
    this.known.clear();
    this.generation++;
    this.seen = new Map(writers.map((w) => [w.writer, w.seq]));
  }
}
