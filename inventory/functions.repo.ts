// Connector functions in the `functions` collection, one document per function, `_id` = `${org}/${name}`.
import type { FunctionDoc } from './documents';
import type { Collections } from './inventory';
import { isDuplicateKey } from './write-errors';

export const functionDocId = (org: string, name: string): string => `${org}/${name}`;

export class FunctionRepository {
  constructor(private readonly c: Collections) {}

  get(org: string, name: string): Promise<FunctionDoc | null> {
    return this.c.functions.findOne({ _id: functionDocId(org, name) });
  }

  /** An organization's functions by name. A whole-collection filter; callers cache it (see FunctionCatalog). */
  listForOrg(org: string): Promise<FunctionDoc[]> {
    return this.c.functions.find({ org }).sort({ _id: 1 }).toArray();
  }

  /** Inserts a new function; false when one of that name exists (a unique `_id` makes this the claim). */
  async insert(doc: FunctionDoc): Promise<boolean> {
    try {
      await this.c.functions.insertOne(doc);
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  /** Replaces a function with its next version (last writer wins, as with other inventory edits). */
  async replace(doc: FunctionDoc): Promise<void> {
    await this.c.functions.replaceOne({ _id: doc._id }, doc);
  }

  async delete(org: string, name: string): Promise<boolean> {
    const result = await this.c.functions.deleteOne({ _id: functionDocId(org, name) });
    return result.deletedCount > 0;
  }
}
