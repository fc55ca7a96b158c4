// The fleet event log. Each append is one document, a batch, numbered per organization by inserting it (the
// `_id` is `<org>/<batch number>`, so two writers never share a number and the numbers have no holes but those
// retention leaves at the start). An event's id is `batch * 1000 + its place in the batch`, so ids order events.
// Every read is an `_id` lookup: the embedded FerretDB serves nothing else without reading the whole collection
// (a range or `$in` over 20,000 documents took 330 ms there, a lookup 1.6 ms).
// An append is one insert command: the batch, then a document per keyed event (`<org>/key/<key>`) in the same
// ordered insert, so the keys are stored only once their events are, and retention takes them with their batch.
// Where the log ends is kept as a hint (`event_heads`), written at most every HEAD_EVERY_MS per organization:
// an update costs the embedded store several times an insert, and a reader walks past the hint by lookups.
import { type Collection, MongoServerError } from 'mongodb';
import {
  type EventFilter,
  type EventType,
  type FleetEvent,
  type NewEvent,
  matchesFilter,
} from '../events/event-types';
import type { Collections } from './inventory';
import { inParallel } from './lookups';
import { type StoredValue, fromStoredValue, toStoredValue } from './storable';
import { DUPLICATE_KEY, duplicatesOnly, writeErrorsOf } from './write-errors';

/** Events one batch holds at most; a longer append is written as several batches. */
export const BATCH_EVENTS = 1_000;

interface StoredEvent {
  type: EventType;
  deviceId?: string;
  at: number;
  body: StoredValue;
  key?: string;
}

export interface EventBatchDoc {
  _id: string; // `${org}/${batch, 12 digits}`
  org: string;
  batch: number;
  events: StoredEvent[];
  /** When the log took it (the writer's clock); a reader that starts from a time searches on it. */
  loggedAt: number;
  /** The latest `at` among its events: retention deletes a batch once all of it is older than the cutoff. */
  lastAt: number;
}

/** Where an organization's log ends (a hint: a writer that died before updating it leaves it behind). */
export interface EventHeadDoc {
  _id: string; // org
  batch: number;
}

/** Keys already logged, so a writer that runs again logs nothing twice (in `events`, beside the batches). */
export interface EventKeyDoc {
  _id: string; // `${org}/key/${key}`
  /** The batch's: retention deletes the key with its events. */
  lastAt: number;
}

/** Before keys moved beside the batches, they had a collection of their own (`${org}/${key}`): read, never written. */
export interface LegacyEventKeyDoc {
  _id: string;
}

const batchDocId = (org: string, batch: number): string => `${org}/${String(batch).padStart(12, '0')}`;
const keyDocId = (org: string, key: string): string => `${org}/key/${key}`;
/** The end hint of an organization is written at most this often (a walk past it reads about as many batches). */
export const HEAD_EVERY_MS = 250;
/**
 * How long after its start a process also looks in the keys' old collection: a write retried after an upgrade is
 * retried soon after it, and every later check would otherwise cost a second lookup.
 */
const LEGACY_KEYS_FOR_MS = 3_600_000;
export const batchOf = (seq: number): number => Math.floor(seq / BATCH_EVENTS);
/** Rounds a writer may lose its number to others before it gives up. */
const MAX_CLAIM_TRIES = 50;
/** Batches a filtered list reads at most per call (it answers where it stopped). */
const LIST_SCAN_BATCHES = 2_000;

function toEvents(doc: EventBatchDoc): FleetEvent[] {
  return doc.events.map((e, i) => {
    const seq = doc.batch * BATCH_EVENTS + i;
    return {
      id: String(seq),
      seq,
      org: doc.org,
      type: e.type,
      ...(e.deviceId !== undefined ? { deviceId: e.deviceId } : {}),
      at: e.at,
      body: (fromStoredValue(e.body) ?? {}) as Record<string, unknown>,
    };
  });
}

export class EventRepository {
  /** The last batch this process wrote or found per organization: the next append tries the one after. */
  private readonly ends = new Map<string, number>();
  /** Organizations whose end hint is due to be written (one timer each). */
  private readonly headsDue = new Set<string>();
  /** Whether the collection of keys from before keys moved beside the batches holds any (asked once). */
  private legacyKeys: Promise<boolean> | undefined;
  private readonly createdAt: number;

  constructor(
    private readonly c: Collections,
    private readonly now: () => number = Date.now,
  ) {
    this.createdAt = now();
  }

  /** The log's batches; the key documents beside them are only ever looked up by their own ids. */
  private get batches(): Collection<EventBatchDoc> {
    return this.c.events as unknown as Collection<EventBatchDoc>;
  }

  /**
   * Logs events of one organization, in the order given, after every event logged before. With `checkKeys`
   * (the default) events whose key is logged already are left out; a set checks those keys only. Answers what
   * was logged.
   */
  async append(
    org: string,
    events: readonly NewEvent[],
    options: { readonly checkKeys?: boolean | ReadonlySet<string> } = {},
  ): Promise<FleetEvent[]> {
    const fresh = await this.unlogged(org, events, options.checkKeys ?? true);
    const logged: FleetEvent[] = [];
    for (let i = 0; i < fresh.length; i += BATCH_EVENTS)
      logged.push(...(await this.insertBatch(org, fresh.slice(i, i + BATCH_EVENTS))));
    return logged;
  }

  /** The events whose key is not logged yet (a key twice in one append counts once). */
  private async unlogged(
    org: string,
    events: readonly NewEvent[],
    checkKeys: boolean | ReadonlySet<string>,
  ): Promise<NewEvent[]> {
    const seen = new Set<string>();
    const once = events.filter((e) => e.key === undefined || (!seen.has(e.key) && !!seen.add(e.key)));
    const keys = checkKeys === true ? [...seen] : checkKeys ? [...seen].filter((k) => checkKeys.has(k)) : [];
    if (keys.length === 0) return once;
    const found = await inParallel(keys, (k) => this.keyLogged(org, k));
    const logged = new Set(keys.filter((_, i) => found[i]));
    return logged.size === 0 ? once : once.filter((e) => e.key === undefined || !logged.has(e.key));
  }

  private async keyLogged(org: string, key: string): Promise<boolean> {
    if (await this.c.events.findOne({ _id: keyDocId(org, key) }, { projection: { _id: 1 } })) return true;
    if (this.now() - this.createdAt > LEGACY_KEYS_FOR_MS) return false;
    this.legacyKeys ??= this.c.eventKeys.estimatedDocumentCount().then(
      (n) => n > 0,
      (err: unknown) => {
        this.legacyKeys = undefined; // asked again next time
        throw err;
      },
    );
    return (await this.legacyKeys) && (await this.c.eventKeys.findOne({ _id: `${org}/${key}` })) !== null;
  }

  /**
   * Inserts one batch under the next free number, and after it (same ordered insert) its keys: the batch's insert
   * claims the number, a lost claim reads the end again. A key logged meanwhile by another writer is skipped.
   */
  private async insertBatch(org: string, events: readonly NewEvent[]): Promise<FleetEvent[]> {
    const stored: StoredEvent[] = events.map((e) => ({
      type: e.type,
      ...(e.deviceId !== undefined ? { deviceId: e.deviceId } : {}),
      at: e.at,
      body: toStoredValue(e.body),
      ...(e.key !== undefined ? { key: e.key } : {}),
    }));
    const lastAt = Math.max(...events.map((e) => e.at));
    const keys: EventKeyDoc[] = events.flatMap((e) =>
      e.key !== undefined ? [{ _id: keyDocId(org, e.key), lastAt }] : [],
    );
    let next = (this.ends.get(org) ?? (await this.end(org))) + 1;
    for (let tries = 0; ; tries++) {
      const doc: EventBatchDoc = {
        _id: batchDocId(org, next),
        org,
        batch: next,
        events: stored,
        loggedAt: this.now(),
        lastAt,
      };
      const stopped = await this.insertInOrder([doc, ...keys]);
      if (stopped === undefined || stopped > 0) {
        // The batch is in, and its keys up to one another writer had logged: the keys after that one go in now.
        if (stopped !== undefined) await this.insertKeys(keys.slice(stopped));
        this.ends.set(org, next);
        this.headDue(org);
        return toEvents(doc);
      }
      if (tries >= MAX_CLAIM_TRIES) throw new Error(`could not claim an event batch number for ${org}`);
      next = (await this.end(org)) + 1;
    }
  }

  /** Inserts in order, stopping at a duplicate: undefined when all went in, else the index it stopped at. */
  private async insertInOrder(docs: readonly (EventBatchDoc | EventKeyDoc)[]): Promise<number | undefined> {
    try {
      await this.c.events.insertMany([...docs], { ordered: true });
      return undefined;
    } catch (err) {
      const first = duplicateAt(err);
      if (first === undefined) throw err;
      return first;
    }
  }

  /** Keys of a stored batch: those logged already are left as they are. */
  private async insertKeys(keys: readonly EventKeyDoc[]): Promise<void> {
    if (keys.length === 0) return;
    await this.c.events.insertMany([...keys], { ordered: false }).catch((err: unknown) => {
      if (duplicatesOnly(err, keys.length) === undefined) throw err;
    });
  }

  /** Writes the organization's end hint soon, once for every batch logged meanwhile. */
  private headDue(org: string): void {
    if (this.headsDue.has(org)) return;
    this.headsDue.add(org);
    setTimeout(() => {
      this.headsDue.delete(org);
      const batch = this.ends.get(org) ?? 0;
      // A hint: readers walk past it, so a write lost to an outage or a closed store only makes a walk longer.
      this.c.eventHeads.updateOne({ _id: org }, { $max: { batch } }, { upsert: true }).catch(() => undefined);
    }, HEAD_EVERY_MS).unref();
  }

  /** The last batch of the organization's log (0: none yet), from the head hint and lookups past it. */
  async end(org: string): Promise<number> {
    let last = Math.max(this.ends.get(org) ?? 0, (await this.c.eventHeads.findOne({ _id: org }))?.batch ?? 0);
    while (await this.batches.findOne({ _id: batchDocId(org, last + 1) }, { projection: { _id: 1 } }))
      last += 1;
    this.ends.set(org, last);
    return last;
  }

  /** The id of the last event logged in the organization (0: none yet). */
  async counter(org: string): Promise<number> {
    const last = await this.end(org);
    if (last === 0) return 0;
    const doc = await this.batch(org, last);
    return doc ? last * BATCH_EVENTS + doc.events.length - 1 : last * BATCH_EVENTS;
  }

  private batch(org: string, n: number): Promise<EventBatchDoc | null> {
    return this.batches.findOne({ _id: batchDocId(org, n) });
  }

  /**
   * The first batch after `after` that exists: the next one, or (retention deleted the start of the log) the
   * first kept one, found by lookups between there and the end. Undefined: none yet.
   */
  private async nextBatch(org: string, after: number): Promise<EventBatchDoc | undefined> {
    const next = await this.batch(org, after + 1);
    if (next) return next;
    const end = Math.max(
      this.ends.get(org) ?? 0,
      (await this.c.eventHeads.findOne({ _id: org }))?.batch ?? 0,
    );
    if (end <= after + 1) return undefined;
    // Kept batches run without a hole from the first kept one to the end: search for the first.
    let lo = after + 2;
    let hi = end;
    let found: EventBatchDoc | undefined;
    while (lo <= hi) {
      const mid = Math.floor((lo + hi) / 2);
      const doc = await this.batch(org, mid);
      if (doc) {
        found = doc;
        hi = mid - 1;
      } else lo = mid + 1;
    }
    return found;
  }

  /** The last id a batch holding `seq` can have: nothing is ever added to a stored batch. */
  lastIdWith(seq: number): number {
    return batchOf(seq) * BATCH_EVENTS + BATCH_EVENTS - 1;
  }

  /** Every event after `afterSeq`, unfiltered, in order, about `limit` of them (whole batches). */
  async readAfter(org: string, afterSeq: number, limit: number): Promise<FleetEvent[]> {
    const out: FleetEvent[] = [];
    // After the last id of a batch, the next batch; else the batch that holds afterSeq, from after it.
    let batch =
      afterSeq <= 0 ? 0 : afterSeq === this.lastIdWith(afterSeq) ? batchOf(afterSeq) : batchOf(afterSeq) - 1;
    while (out.length < limit) {
      const doc = await this.nextBatch(org, batch);
      if (!doc) break;
      out.push(...toEvents(doc).filter((e) => e.seq > afterSeq));
      batch = doc.batch;
    }
    return out;
  }

  /**
   * Events in (afterSeq, uptoSeq] that pass the filter, oldest first, at most `limit`; `scannedTo` is where the
   * reading stopped (a selective filter over a long log reads LIST_SCAN_BATCHES batches a call).
   */
  async list(
    org: string,
    filter: EventFilter,
    range: { readonly afterSeq: number; readonly uptoSeq: number },
    limit: number,
  ): Promise<{ items: FleetEvent[]; scannedTo: number }> {
    const items: FleetEvent[] = [];
    let after = range.afterSeq;
    if (filter.since !== undefined) after = Math.max(after, await this.seqBefore(org, filter.since));
    let batch = after <= 0 ? 0 : batchOf(after) - 1;
    for (let scanned = 0; scanned < LIST_SCAN_BATCHES && after < range.uptoSeq; scanned++) {
      const doc = await this.nextBatch(org, batch);
      if (!doc) break;
      for (const e of toEvents(doc)) {
        if (e.seq <= after || e.seq > range.uptoSeq) continue;
        after = e.seq;
        if (matchesFilter(e, filter)) items.push(e);
        if (items.length === limit) return { items, scannedTo: after };
      }
      batch = doc.batch;
    }
    return {
      items,
      scannedTo: Math.max(after, Math.min(range.uptoSeq, batch * BATCH_EVENTS + BATCH_EVENTS - 1)),
    };
  }

  /** The id before the first batch logged at or after `at` (a search by lookups on when batches were logged). */
  async seqBefore(org: string, at: number): Promise<number> {
    let lo = 1;
    let hi = await this.end(org);
    let first: number | undefined;
    while (lo <= hi) {
      const mid = Math.floor((lo + hi) / 2);
      const doc = await this.batches.findOne(
        { _id: batchDocId(org, mid) },
        { projection: { loggedAt: 1, lastAt: 1 } },
      );
      if (!doc || doc.loggedAt >= at || doc.lastAt >= at) {
        first = mid;
        hi = mid - 1;
      } else lo = mid + 1;
    }
    return first === undefined ? await this.counter(org) : first * BATCH_EVENTS - 1;
  }

  /** Deletes every organization's batches whose events all happened before `cutoff` (ms); answers how many. */
  async deleteBefore(cutoff: number): Promise<number> {
    return (await this.batches.deleteMany({ lastAt: { $lt: cutoff } })).deletedCount;
  }
}

/** Where an ordered insert stopped on a duplicate `_id` (the index of the document refused), else undefined. */
function duplicateAt(err: unknown): number | undefined {
  if (!(err instanceof MongoServerError)) return undefined;
  const first = writeErrorsOf(err)[0] ?? { code: err.code as number | undefined };
  return first.code === DUPLICATE_KEY ? (first.index ?? 0) : undefined;
}
