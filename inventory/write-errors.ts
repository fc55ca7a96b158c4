// How the store reports a refused write, read the same way by every repository, and inserts grouped across
// callers (one unordered `insertMany` for what several callers asked at once).
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

interface Queued<D> {
  readonly doc: D;
  resolve(inserted: boolean): void;
  reject(err: unknown): void;
}

/**
 * Inserts documents into one collection for many callers: while one insert is under way, the documents asked
 * for meanwhile wait, and the next insert takes them all (up to `maxBatch`). A caller's promise settles when its
 * own document is stored (true) or found stored already under its `_id` (false). A document the server refuses
 * for another reason fails its own caller; a failure of the whole insert (the store unreachable, a document the
 * driver refuses before sending) fails every caller of it, and they may try again.
 */
export class GroupInsert<D extends Document & { _id: unknown }> {
  private queue: Queued<D>[] = [];
  private writing = false;

  constructor(
    private readonly collection: Collection<D>,
    private readonly maxBatch = 500,
  ) {}

  insert(doc: D): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.queue.push({ doc, resolve, reject });
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.queue.length > 0) await this.write(this.queue.splice(0, this.maxBatch));
    } finally {
      this.writing = false;
    }
  }

  private async write(batch: Queued<D>[]): Promise<void> {
    try {
      const docs = batch.map((b) => b.doc as OptionalUnlessRequiredId<D>);
      await this.collection.insertMany(docs, { ordered: false });
      for (const b of batch) b.resolve(true);
    } catch (err) {
      const refused = refusedDocuments(err, batch.length);
      for (let i = 0; i < batch.length; i++) {
        if (refused === undefined) batch[i]!.reject(err);
        else if (!refused.has(i)) batch[i]!.resolve(true);
        else if (refused.get(i) === DUPLICATE_KEY) batch[i]!.resolve(false);
        else batch[i]!.reject(err);
      }
    }
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
