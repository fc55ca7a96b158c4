// Operation records (the read model of operation workflows) in the `operations` collection.
import type { OperationRecord, OperationStatus, OperationStep } from '../twins/operations';
import type { OperationDoc, OperationStepDoc } from './documents';
import type { Collections } from './inventory';
import { findByIds } from './lookups';
import {
  type LocalPendingListener,
  MAX_RECORDED_AT_ONCE,
  PendingFeedWriter,
  type PendingChange,
  type PendingWriter,
  announceLocalPendingWrite,
  onLocalPendingWrite,
  ringSlotId,
} from './pending-feed';
import { fromStoredValue, toStoredValue } from './storable';
import { type BatchOutcome, Batcher } from './batcher';
import { GroupInsert } from './write-errors';

const operationDocId = (org: string, id: string): string => `${org}/${id}`;

/** Ring slots read one lookup each at most: past it, one read of the rings costs less. */
const RING_LOOKUPS_AT_MOST = 32;

interface MarkerWrite {
  /** `${org}/${deviceId}`, the marker's `_id`. */
  readonly key: string;
  readonly waiting: number;
  readonly at: number;
}

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
  private readonly feed: PendingFeedWriter;
  /** First records of operations requested at once go in one insert (a synchronous operation writes one). */
  private readonly firsts: GroupInsert<OperationDoc>;
  /** Pending markers written at once (see writeMarkers). */
  private readonly markers: Batcher<MarkerWrite, void>;

  constructor(private readonly c: Collections) {
    this.feed = new PendingFeedWriter(c);
    this.firsts = new GroupInsert(c.operations);
    this.markers = new Batcher((batch) => this.writeMarkers(batch), MAX_RECORDED_AT_ONCE);
  }

  /**
   * Writes the operation workflow's record. The workflow is the only writer and writes one revision at a
   * time, so the filter is the _id alone (the embedded FerretDB scans the whole collection for any other).
   */
  async write(rec: OperationRecord): Promise<void> {
    const doc = toDoc(rec);
    await this.c.operations.replaceOne({ _id: doc._id }, doc, { upsert: true });
  }

  /** The first record, written when the twin accepts a request; never replaces what the workflow wrote. */
  insertFirst(rec: OperationRecord): Promise<boolean> {
    return this.firsts.insert(toDoc(rec));
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
   * the filter is the _id alone. Then the write goes into this process's feed, and returns once every process can
   * learn of it there; this process's own views hear of it at once (PendingMarkerView).
   */
  writePendingMarker(org: string, deviceId: string, waiting: number, at: number): Promise<void> {
    return this.markers.submit({ key: `${org}/${deviceId}`, waiting, at });
  }

  /**
   * Markers written at once (a hundred sleepy devices polling together): one update command for them all, one
   * write of their feed slots, one publication, where each used to make three commands of its own. In order, so
   * a twin's later count of a device wins.
   */
  private async writeMarkers(batch: readonly MarkerWrite[]): Promise<BatchOutcome<void>[]> {
    await this.c.pendingMarkers.bulkWrite(
      batch.map(({ key, waiting, at }) => ({
        updateOne: { filter: { _id: key }, update: { $set: { waiting, at } }, upsert: true },
      })),
      { ordered: true },
    );
    await this.feed.record(batch.map((m) => m.key));
    for (const m of batch)
      announceLocalPendingWrite(this.c.pendingMarkers, m.key, m.waiting, this.feed.writer);
    return batch.map(() => ({ value: undefined }));
  }

  /** Hears every marker write made through this inventory in this process, as it returns. */
  onLocalPendingWrite(listener: LocalPendingListener): void {
    onLocalPendingWrite(this.c.pendingMarkers, listener);
  }

  /** The twin's count of operations waiting for a poll; undefined when it has not written one. */
  async pendingMarker(org: string, deviceId: string): Promise<number | undefined> {
    const doc = await this.c.pendingMarkers.findOne({ _id: `${org}/${deviceId}` });
    return doc?.waiting;
  }

  /** How far each writer's feed is complete. */
  async pendingWriters(): Promise<PendingWriter[]> {
    const docs = await this.c.pendingWriters.find({}).toArray();
    return docs.map((d) => ({ writer: d._id, seq: d.seq }));
  }

  /**
   * The rings' slots for these writes, as they are: a slot may hold a write a whole ring older (the one asked for
   * failed) or newer (the ring went round), for the reader to tell.
   */
  async pendingChanges(wanted: readonly PendingWriter[]): Promise<PendingChange[]> {
    const slots = [...new Set(wanted.map((w) => ringSlotId(w.writer, w.seq)))];
    const docs =
      slots.length > RING_LOOKUPS_AT_MOST
        ? await this.c.pendingChanges.find({}).toArray()
        : await findByIds(this.c.pendingChanges, slots);
    return docs.map(({ writer, seq, key }) => ({ writer, seq, key }));
  }

  /** A response that came after the end: counted on the finished record. */
  async countLateResponse(org: string, id: string): Promise<void> {
    await this.c.operations.updateOne({ _id: operationDocId(org, id) }, { $inc: { lateResponses: 1 } });
  }
}
