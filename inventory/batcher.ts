// Work many callers ask for, done in batches one at a time (grouped writes: inserts, pending markers, events).

/** What one item of a batch came to: its value, or the error its caller gets. */
export type BatchOutcome<R> = { readonly value: R } | { readonly error: unknown };

interface Queued<T, R> {
  readonly item: T;
  resolve(value: R): void;
  reject(err: unknown): void;
}

/**
 * Runs the items many callers ask for in batches, one batch at a time: while one runs, the items asked for
 * meanwhile wait, and the next batch takes them all (up to `maxBatch`). A caller's promise settles with its own
 * item's outcome; a batch that throws rejects every caller in it.
 */
export class Batcher<T, R> {
  private queue: Queued<T, R>[] = [];
  private running = false;

  constructor(
    private readonly run: (items: readonly T[]) => Promise<readonly BatchOutcome<R>[]>,
    private readonly maxBatch = 500,
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const outcomes = await this.run(batch.map((q) => q.item));
          batch.forEach((q, i) => {
            const outcome = outcomes[i]!;
            if ('error' in outcome) q.reject(outcome.error);
            else q.resolve(outcome.value);
          });
        } catch (err) {
          for (const q of batch) q.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
