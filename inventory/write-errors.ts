// How the store reports a refused write, read the same way by every repository, and writes grouped across
// callers (one command for what several callers asked at once).
import { type Collection, type Document, MongoServerError, type OptionalUnlessRequiredId } from 'mongodb';

/** The server's code for a write refused by a unique index (`_id` included). */
export const DUPLICATE_KEY = 11000;

/** Whether the write failed only because a document with the same key is stored already. */
export function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === DUPLICATE_KEY;
}

/** The write errors a bulk write failed with (a single-document failure is its own). */
export function writeErrorsOf(err: MongoServerError): { code?: number; index?: number }[] {
  const raw: unknown = (err as { writeErrors?: unknown }).writeErrors;
  return (Array.isArray(raw) ? raw : raw === undefined ? [err] : [raw]) as {
    code?: number;
    index?: number;
  }[];
}

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

/**
 * Inserts documents into one collection for many callers, in batches (see Batcher): one unordered `insertMany`
 * a batch. A caller's promise settles when its own document is stored (true) or found stored already under its
 * `_id` (false). A document the server refuses for another reason fails its own caller; a failure of the whole
 * insert (the store unreachable, a document the driver refuses before sending) fails every caller of it, and
 * they may try again.
 */
export class GroupInsert<D extends Document & { _id: unknown }> {
  private readonly batcher: Batcher<D, boolean>;

  constructor(collection: Collection<D>, maxBatch = 500) {
    this.batcher = new Batcher((docs) => insertBatch(collection, docs), maxBatch);
  }

  insert(doc: D): Promise<boolean> {
    return this.batcher.submit(doc);
  }
}

async function insertBatch<D extends Document & { _id: unknown }>(
  collection: Collection<D>,
  docs: readonly D[],
): Promise<BatchOutcome<boolean>[]> {
  try {
    await collection.insertMany(docs as OptionalUnlessRequiredId<D>[], { ordered: false });
    return docs.map(() => ({ value: true }));
  } catch (err) {
    const refused = refusedDocuments(err, docs.length);
    if (refused === undefined) throw err;
    return docs.map((_, i) => {
      if (!refused.has(i)) return { value: true };
      return refused.get(i) === DUPLICATE_KEY ? { value: false } : { error: err };
    });
  }
}

/**
 * The documents an insert of `size` documents refused, by index, with each one's code; undefined when the
 * failure is not one of single documents (a lost connection, a write concern not met), so that none of them is
 * known to be stored or refused.
 */
export function refusedDocuments(err: unknown, size: number): Map<number, number | undefined> | undefined {
  if (!(err instanceof MongoServerError)) return undefined;
  if ((err as { writeConcernError?: unknown }).writeConcernError !== undefined) return undefined;
  const errors = writeErrorsOf(err);
  // A bulk write that failed as a whole (its connection lost, its client closed) names no document.
  if (errors.length === 0) return undefined;
  // One document refused on its own carries no index.
  if (size === 1 && errors.length === 1) return new Map([[0, errors[0]!.code]]);
  if (errors.some((e) => e.index === undefined)) return undefined;
  return new Map(errors.map((e) => [e.index!, e.code]));
}

/** The indexes an unordered insert of `size` documents refused when it refused only duplicates, else undefined. */
export function duplicatesOnly(err: unknown, size: number): Set<number> | undefined {
  const refused = refusedDocuments(err, size);
  if (refused === undefined || [...refused.values()].some((code) => code !== DUPLICATE_KEY)) return undefined;
  return new Set(refused.keys());
}
