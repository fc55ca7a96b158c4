// The fleet event log: an organization's events, numbered in the order they are stored, so `seq` orders them
// and a reader can resume after the last one it saw.
import { type Collection, type Filter, MongoBulkWriteError } from 'mongodb';
import {
  DATAPOINTS,
  type EventFilter,
  type EventType,
  type FleetEvent,
  type NewEvent,
} from '../events/event-types';
import type { Collections } from './inventory';
import { type StoredValue, fromStoredValue, toStoredValue } from './storable';

export interface EventDoc {
  _id: string; // `${org}/${seq, 12 digits}`, so an org's events sort by _id
  org: string;
  seq: number;
  type: EventType;
  deviceId?: string;
  at: number;
  body: StoredValue;
  key?: string;
  /** When the log took it (the writer's clock). */
  loggedAt: number;
}

const SEQ_DIGITS = 12;
export const eventDocId = (org: string, seq: number): string =>
  `${org}/${String(seq).padStart(SEQ_DIGITS, '0')}`;
const orgEnd = (org: string): string => `${org}/\uffff`;

export const toFleetEvent = (doc: EventDoc): FleetEvent => ({
  id: String(doc.seq),
  seq: doc.seq,
  org: doc.org,
  type: doc.type,
  ...(doc.deviceId !== undefined ? { deviceId: doc.deviceId } : {}),
  at: doc.at,
  body: (fromStoredValue(doc.body) ?? {}) as Record<string, unknown>,
});

const toEventDoc = (org: string, seq: number, e: NewEvent, loggedAt: number): EventDoc => ({
  _id: eventDocId(org, seq),
  org,
  seq,
  type: e.type,
  ...(e.deviceId !== undefined ? { deviceId: e.deviceId } : {}),
  at: e.at,
  body: toStoredValue(e.body),
  ...(e.key !== undefined ? { key: e.key } : {}),
  loggedAt,
});

const DUPLICATE_KEY = 11000;
const isDuplicateOnly = (err: MongoBulkWriteError): boolean => {
  const raw: unknown = err.writeErrors;
  const errors = (Array.isArray(raw) ? raw : [raw]) as { code?: number }[];
  return errors.length > 0 && errors.every((e) => e.code === DUPLICATE_KEY);
};
/** Rounds a writer may lose numbers to others before it gives up (each round, others took some). */
const MAX_CLAIM_TRIES = 50;

/** The longest batch one append writes; a longer one is written in several. */
const APPEND_BATCH = 1_000;

export class EventRepository {
  constructor(
    private readonly c: Collections,
    private readonly now: () => number = Date.now,
  ) {}

  private get events(): Collection<EventDoc> {
    return this.c.events;
  }

  /**
   * Logs events of one organization, in the order given, numbered after every event logged before. Events whose
   * key is logged already are left out, so a retried writer logs nothing twice (`checkKeys: false` skips that
   * read for a writer that cannot have logged them yet). Answers what was logged.
   */
  async append(
    org: string,
    events: readonly NewEvent[],
    options: { readonly checkKeys?: boolean } = {},
  ): Promise<FleetEvent[]> {
    const logged: FleetEvent[] = [];
    for (let i = 0; i < events.length; i += APPEND_BATCH)
      logged.push(
        ...(await this.appendBatch(org, events.slice(i, i + APPEND_BATCH), options.checkKeys ?? true)),
      );
    return logged;
  }

  private async appendBatch(
    org: string,
    given: readonly NewEvent[],
    checkKeys: boolean,
  ): Promise<FleetEvent[]> {
    // The same key twice in one batch (two writers that raced) is logged once.
    const inBatch = new Set<string>();
    const batch = given.filter((e) => e.key === undefined || (!inBatch.has(e.key) && !!inBatch.add(e.key)));
    const keys = checkKeys ? batch.flatMap((e) => (e.key !== undefined ? [e.key] : [])) : [];
    let fresh = batch;
    if (keys.length > 0) {
      const seen = new Set(
        (await this.events.find({ org, key: { $in: keys } }, { projection: { key: 1 } }).toArray()).map(
          (d) => d.key,
        ),
      );
      fresh = batch.filter((e) => e.key === undefined || !seen.has(e.key));
    }
    if (fresh.length === 0) return [];
    return this.insertNumbered(org, fresh);
  }

  /**
   * Inserts events numbered after the highest stored: the insert itself claims each number (the _id is unique),
   * so two writers never share one, and a number exists only once its event does. A writer that loses a number
   * to another reads the end again and goes on from there.
   */
  private async insertNumbered(org: string, events: readonly NewEvent[]): Promise<FleetEvent[]> {
    const logged: FleetEvent[] = [];
    let rest = events;
    for (let tries = 0; rest.length > 0; tries++) {
      if (tries >= MAX_CLAIM_TRIES)
        throw new Error(`could not number events of ${org}: too many writers at once`);
      const first = (await this.counter(org)) + 1;
      const loggedAt = this.now();
      const docs = rest.map((e, k) => toEventDoc(org, first + k, e, loggedAt));
      try {
        await this.events.insertMany(docs, { ordered: true });
        logged.push(...docs.map(toFleetEvent));
        return logged;
      } catch (err) {
        if (!(err instanceof MongoBulkWriteError) || !isDuplicateOnly(err)) throw err;
        const inserted = err.result.insertedCount;
        logged.push(...docs.slice(0, inserted).map(toFleetEvent));
        rest = rest.slice(inserted);
      }
    }
    return logged;
  }

  /** Every event after `afterSeq` up to `limit` of them, unfiltered, in order (what a tail reads). */
  async readAfter(org: string, afterSeq: number, limit: number): Promise<EventDoc[]> {
    return this.events
      .find({ _id: { $gt: eventDocId(org, afterSeq), $lt: orgEnd(org) } })
      .sort({ _id: 1 })
      .limit(limit)
      .toArray();
  }

  /** Events in (afterSeq, uptoSeq] that pass the filter, oldest first. */
  async list(
    org: string,
    filter: EventFilter,
    range: { readonly afterSeq: number; readonly uptoSeq: number },
    limit: number,
  ): Promise<FleetEvent[]> {
    if (range.uptoSeq <= range.afterSeq) return [];
    const query: Filter<EventDoc> = {
      _id: { $gt: eventDocId(org, range.afterSeq), $lte: eventDocId(org, range.uptoSeq) },
    };
    if (filter.types && filter.types.length > 0) query.type = { $in: [...filter.types] };
    else query.type = { $ne: DATAPOINTS };
    if (filter.deviceIds) query.deviceId = { $in: [...filter.deviceIds] };
    if (filter.since !== undefined) query.at = { $gte: filter.since };
    const docs = await this.events.find(query).sort({ _id: 1 }).limit(limit).toArray();
    return docs.map(toFleetEvent);
  }

  /** The highest number logged in the organization (0: none yet). */
  async counter(org: string): Promise<number> {
    const last = await this.events
      .find({ _id: { $gt: `${org}/`, $lt: orgEnd(org) } }, { projection: { seq: 1 } })
      .sort({ _id: -1 })
      .limit(1)
      .toArray();
    return last[0]?.seq ?? 0;
  }

  /** The first event at or after `at`, for a reader that starts from a time: its seq minus one. */
  async seqBefore(org: string, at: number): Promise<number> {
    const doc = await this.events
      .find({ _id: { $gt: `${org}/`, $lt: orgEnd(org) }, at: { $gte: at } })
      .sort({ _id: 1 })
      .limit(1)
      .project<{ seq: number }>({ seq: 1 })
      .toArray();
    return doc[0] ? doc[0].seq - 1 : await this.counter(org);
  }

  /** Deletes every organization's events that happened before `cutoff` (ms); answers how many went. */
  async deleteBefore(cutoff: number): Promise<number> {
    return (await this.events.deleteMany({ at: { $lt: cutoff } })).deletedCount;
  }
}
