// Reads by `_id` lookups, a few at a time. The embedded FerretDB serves an `_id` equality from its index but
// reads the whole collection for a range or `$in` (330 ms over 20,000 documents, against 1.6 ms a lookup), so a
// read of known ids is a set of lookups; MongoDB serves these as well as it serves `$in`.
import type { Collection, Document, Filter, WithId } from 'mongodb';

/** Lookups in flight at once from one read. */
export const LOOKUPS_AT_ONCE = 16;

/** `fn` over the items, at most `limit` at a time; results in the items' order. */
export async function inParallel<T, R>(
  items: readonly T[],
  fn: (item: T) => Promise<R>,
  limit = LOOKUPS_AT_ONCE,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The documents with these `_id`s, in the ids' order; ids with no document are left out. */
export async function findByIds<D extends Document & { _id: string }>(
  collection: Collection<D>,
  ids: readonly string[],
): Promise<WithId<D>[]> {
  const found = await inParallel(ids, (id) => collection.findOne({ _id: id } as Filter<D>));
  return found.filter((d): d is WithId<D> => d !== null);
}
