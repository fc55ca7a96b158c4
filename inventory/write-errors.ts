// How the store reports a refused write, read the same way by every repository, and inserts grouped across
// callers (one command for what several callers asked at once).
import { type Collection, type Document, MongoServerError, type OptionalUnlessRequiredId } from 'mongodb';
import { type BatchOutcome, Batcher } from './batcher';

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
