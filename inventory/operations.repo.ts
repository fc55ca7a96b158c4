// Operation records (the read model of operation workflows) in the `operations` collection.
import { MongoServerError } from 'mongodb';
import type { OperationRecord, OperationStatus, OperationStep } from '../twins/operations';
import type { OperationDoc, OperationStepDoc } from './documents';
import type { Collections } from './inventory';
import { findByIds } from './lookups';
import { fromStoredValue, toStoredValue } from './storable';

const operationDocId = (org: string, id: string): string => `${org}/${id}`;

const DUPLICATE_KEY = 11000;

export interface OperationPage {
  readonly items: OperationRecord[];
  /** Pass back as `after` for the next page; absent on the last page. */
  readonly nextAfter?: { createdAt: number; id: string };
}

function toDoc(rec: OperationRecord): OperationDoc {
  const { parameters, steps, ...rest } = rec;
  return {
    ...rest,
    _id: operationDocId(rec.org, rec.id),
    // Parameters and step responses are arbitrary JSON: kept as text when MongoDB would refuse their keys.
    parameters: toStoredValue(parameters),
    steps: steps.map(({ response, ...s }): OperationStepDoc => ({
      ...s,
      ...(response !== undefined ? { response: toStoredValue(response) } : {}),
    })),
  };
}

function fromDoc(doc: OperationDoc): OperationRecord {
  const { _id, parameters, steps, ...rest } = doc;
  void _id;
  return {
    ...rest,
    parameters: fromStoredValue(parameters) as Record<string, unknown>,
    steps: steps.map(({ response, ...s }): OperationStep => ({
      ...s,
      ...(response !== undefined ? { response: fromStoredValue(response) } : {}),
    })),
  };
}

export class OperationRepository {
  constructor(private readonly c: Collections) {}

  /**
   * Writes the operation workflow's record. The workflow is the only writer and writes one revision at a
   * time, so the filter is the _id alone (the embedded FerretDB scans the whole collection for any other).
   */
  async write(rec: OperationRecord): Promise<void> {
    const doc = toDoc(rec);
    await this.c.operations.replaceOne({ _id: doc._id }, doc, { upsert: true });
  }

  /** The first record, written when the twin accepts a request; never replaces what the workflow wrote. */
  async insertFirst(rec: OperationRecord): Promise<boolean> {
    try {
      await this.c.operations.insertOne(toDoc(rec));
      return true;
    } catch (err) {
      if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return false;
      throw err;
    }
  }

  /**
   * Inserts the record, or replaces it when a retried writer inserted it already (an insert costs less). Answers
   * whether this call inserted it.
   */
  async insertOrReplace(rec: OperationRecord): Promise<boolean> {
    if (await this.insertFirst(rec)) return true;
    await this.write(rec);
    return false;
  }

  async get(org: string, id: string): Promise<OperationRecord | null> {
    const doc = await this.c.operations.findOne({ _id: operationDocId(org, id) });
    return doc ? fromDoc(doc) : null;
  }

  /** Several records by id (in no particular order); ids without a record are left out. */
  async getMany(org: string, ids: readonly string[]): Promise<OperationRecord[]> {
    if (ids.length === 0) return [];
    // Lookups, not `$in`: the embedded store reads the whole collection for `$in` (see lookups.ts).
    const docs = await findByIds(
      this.c.operations,
      ids.map((id) => operationDocId(org, id)),
    );
    return docs.map(fromDoc);
  }

  /** A device's operations, newest first. */
  async listForDevice(
    org: string,
    deviceId: string,
    limit: number,
    options: { status?: OperationStatus; after?: { createdAt: number; id: string } } = {},
  ): Promise<OperationPage> {
    const filter: Record<string, unknown> = { org, deviceId };
    if (options.status) filter.status = options.status;
    if (options.after) {
      filter.$or = [
        { createdAt: { $lt: options.after.createdAt } },
        { createdAt: options.after.createdAt, id: { $lt: options.after.id } },
      ];
    }
    const docs = await this.c.operations
      .find(filter)
      .sort({ createdAt: -1, id: -1 })
      .limit(limit + 1)
      .toArray();
    const items = docs.slice(0, limit).map(fromDoc);
    const last = items.at(-1);
    return docs.length > limit && last
      ? { items, nextAfter: { createdAt: last.createdAt, id: last.id } }
      : { items };
  }

  /**
   * How many operations wait for the device's next poll. The twin writes it, one write at a time and in order, so
   * the filter is the _id alone.
   */
  async writePendingMarker(org: string, deviceId: string, waiting: number, at: number): Promise<void> {
    const _id = `${org}/${deviceId}`;
    await this.c.pendingMarkers.updateOne({ _id }, { $set: { waiting, at } }, { upsert: true });
  }

  /** The twin's count of operations waiting for a poll; undefined when it has not written one. */
  async pendingMarker(org: string, deviceId: string): Promise<number | undefined> {
    const doc = await this.c.pendingMarkers.findOne({ _id: `${org}/${deviceId}` });
    return doc?.waiting;
  }

  /** A response that came after the end: counted on the finished record. */
  async countLateResponse(org: string, id: string): Promise<void> {
    await this.c.operations.updateOne({ _id: operationDocId(org, id) }, { $inc: { lateResponses: 1 } });
  }
}
