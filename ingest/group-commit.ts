// Group commit: messages that arrive while a write is under way are written together by the next one, so
// the store sees one insert of many datapoints instead of one per message, and no message waits for a timer.
// The queue is bounded: past its limit, callers either fail at once (HTTP answers 503) or wait for room
// (MQTT stops acknowledging, so devices slow down). Nothing is acknowledged before its batch is written.

export interface GroupCommitOptions {
  /** Messages that may wait for a write; beyond this the queue is full. */
  readonly maxQueued: number;
  /** Items written together at most (a batch closes early when it reaches this). */
  readonly maxBatchItems: number;
  /** Writes under way at once. */
  readonly concurrency: number;
}

export class QueueFullError extends Error {
  constructor() {
    super('the ingest queue is full');
    this.name = 'QueueFullError';
  }
}

interface Entry<T> {
  readonly item: T;
  readonly weight: number;
  resolve(): void;
  reject(err: unknown): void;
}

export interface GroupCommitStats {
  readonly batches: number;
  readonly items: number;
  readonly queued: number;
  readonly largestBatch: number;
  readonly refused: number;
}

export class GroupCommit<T> {
  private queue: Entry<T>[] = [];
  private running = 0;
  private readonly roomWaiters: (() => void)[] = [];
  private stats = { batches: 0, items: 0, largestBatch: 0, refused: 0 };

  constructor(
    private readonly write: (items: readonly T[]) => Promise<void>,
    private readonly options: GroupCommitOptions,
  ) {}

  /** Resolves once the item is written; throws QueueFullError at once when the queue is full. */
  submit(item: T, weight = 1): Promise<void> {
    if (this.queue.length >= this.options.maxQueued) {
      this.stats.refused += 1;
      return Promise.reject(new QueueFullError());
    }
    return this.enqueue(item, weight);
  }

  /** Like submit, but waits for room instead of failing (backpressure for senders that can wait). */
  async submitWhenRoom(item: T, weight = 1): Promise<void> {
    while (this.queue.length >= this.options.maxQueued) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    return this.enqueue(item, weight);
  }

  /** Messages waiting for a write. */
  get waiting(): number {
    return this.queue.length;
  }

  counters(): GroupCommitStats {
    return { ...this.stats, queued: this.queue.length };
  }

  private enqueue(item: T, weight: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, weight, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.options.concurrency && this.queue.length > 0) {
      let count = 0;
      let weight = 0;
      for (const next of this.queue) {
        if (count > 0 && weight + next.weight > this.options.maxBatchItems) break;
        weight += next.weight;
        count += 1;
      }
      // One splice per batch: shifting item by item moves the whole queue (thousands) for each item.
      const batch = this.queue.splice(0, count);
      this.running += 1;
      this.stats.batches += 1;
      this.stats.items += batch.length;
      this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
      this.wakeWaiters();
      void this.run(batch);
    }
  }

  private async run(batch: Entry<T>[]): Promise<void> {
    try {
      await this.write(batch.map((e) => e.item));
      for (const e of batch) e.resolve();
    } catch (err) {
      for (const e of batch) e.reject(err);
    } finally {
      this.running -= 1;
      this.pump();
    }
  }

  private wakeWaiters(): void {
    while (this.roomWaiters.length > 0 && this.queue.length < this.options.maxQueued) {
      this.roomWaiters.shift()?.();
    }
  }
}
