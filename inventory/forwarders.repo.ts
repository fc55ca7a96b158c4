// Forwarders and their dead letters: where an organization's events go, what each destination has taken, and the
// events a destination refused for good (kept with the last error until replayed or discarded).
import type { Collection } from 'mongodb';
import type { EventType, FleetEvent } from '../events/event-types';
import type { Collections } from './inventory';
import { type StoredValue, fromStoredValue, toStoredValue } from './storable';

export interface WebhookDestination {
  readonly kind: 'webhook';
  readonly url: string;
  /** Extra request headers, as pairs (header names may hold characters field names may not). */
  readonly headers: readonly { readonly name: string; readonly value: string }[];
  /** Signs every request (HMAC-SHA256); write-only on the API. */
  readonly secret: string;
}

export interface MqttDestination {
  readonly kind: 'mqtt';
  /** `mqtt://` or `mqtts://` broker URL. */
  readonly url: string;
  readonly topic: string;
  readonly username?: string;
  /** Write-only on the API. */
  readonly password?: string;
}

export type Destination = WebhookDestination | MqttDestination;

export interface Subscription {
  /** Event types; none given: every type but `datapoints` (unless datastreams are given: then only those). */
  readonly types?: readonly EventType[];
  readonly deviceIds?: readonly string[];
  /** Datapoints of these datastreams, in the batches the ingest logged them. */
  readonly datastreams?: readonly string[];
}

export type ForwarderStatus = 'active' | 'paused';

export interface ForwarderDoc {
  _id: string; // `${org}/${id}`
  org: string;
  id: string;
  name: string;
  destination: Destination;
  subscription: Subscription;
  /** Source of a transform(event, context) run in the sandbox: its answer is the request body. */
  connector?: string;
  status: ForwarderStatus;
  /** Why it is paused (the last error when it paused itself; `paused by <actor>` otherwise). */
  pausedReason?: string;
  /** The last event seq this forwarder is done with (delivered, dead-lettered or not matching). */
  cursor: number;
  delivered: number;
  lastDeliveredAt?: number;
  lastError?: { at: number; message: string };
  createdAt: number;
  createdBy: string;
  updatedAt: number;
}

export interface DeadLetterDoc {
  _id: string; // `${org}/${forwarderId}/${seq, 12 digits}`
  org: string;
  forwarderId: string;
  seq: number;
  event: StoredValue;
  lastError: string;
  attempts: number;
  firstFailedAt: number;
  lastFailedAt: number;
}

export interface DeadLetter {
  readonly seq: number;
  readonly event: FleetEvent;
  readonly lastError: string;
  readonly attempts: number;
  readonly firstFailedAt: number;
  readonly lastFailedAt: number;
}

const forwarderDocId = (org: string, id: string): string => `${org}/${id}`;
const deadLetterId = (org: string, forwarderId: string, seq: number): string =>
  `${org}/${forwarderId}/${String(seq).padStart(12, '0')}`;

const toDeadLetter = (d: DeadLetterDoc): DeadLetter => ({
  seq: d.seq,
  event: fromStoredValue(d.event) as FleetEvent,
  lastError: d.lastError,
  attempts: d.attempts,
  firstFailedAt: d.firstFailedAt,
  lastFailedAt: d.lastFailedAt,
});

/** What one delivery round changes on the forwarder's document. */
export interface RoundRecord {
  readonly cursor: number;
  readonly delivered: number;
  readonly at: number;
  readonly error?: string;
}

export class ForwarderRepository {
  constructor(private readonly c: Collections) {}

  private get forwarders(): Collection<ForwarderDoc> {
    return this.c.forwarders;
  }
  private get deadLetters(): Collection<DeadLetterDoc> {
    return this.c.deadLetters;
  }

  async insert(doc: Omit<ForwarderDoc, '_id'>): Promise<ForwarderDoc> {
    const full = { ...doc, _id: forwarderDocId(doc.org, doc.id) };
    await this.forwarders.insertOne(full);
    return full;
  }

  get(org: string, id: string): Promise<ForwarderDoc | null> {
    return this.forwarders.findOne({ _id: forwarderDocId(org, id) });
  }

  list(org: string, limit: number): Promise<ForwarderDoc[]> {
    return this.forwarders
      .find({ _id: { $gt: `${org}/`, $lt: `${org}/\uffff` } })
      .sort({ _id: 1 })
      .limit(limit)
      .toArray();
  }

  /** Replaces the configuration fields given; answers the document after, or null when it is gone. */
  async configure(
    org: string,
    id: string,
    change: Partial<Pick<ForwarderDoc, 'name' | 'destination' | 'subscription' | 'connector'>> & {
      readonly removeConnector?: boolean;
    },
    now: number,
  ): Promise<ForwarderDoc | null> {
    const { removeConnector, ...set } = change;
    return this.forwarders.findOneAndUpdate(
      { _id: forwarderDocId(org, id) },
      { $set: { ...set, updatedAt: now }, ...(removeConnector ? { $unset: { connector: '' } } : {}) },
      { returnDocument: 'after' },
    );
  }

  async setStatus(org: string, id: string, status: ForwarderStatus, reason?: string): Promise<boolean> {
    const res = await this.forwarders.updateOne(
      { _id: forwarderDocId(org, id) },
      status === 'paused'
        ? { $set: { status, pausedReason: reason ?? 'paused' } }
        : { $set: { status }, $unset: { pausedReason: '' } },
    );
    return res.matchedCount === 1;
  }

  async recordRound(org: string, id: string, round: RoundRecord): Promise<void> {
    await this.forwarders.updateOne(
      { _id: forwarderDocId(org, id) },
      {
        $set: {
          cursor: round.cursor,
          ...(round.delivered > 0 ? { lastDeliveredAt: round.at } : {}),
          ...(round.error !== undefined ? { lastError: { at: round.at, message: round.error } } : {}),
        },
        $inc: { delivered: round.delivered },
      },
    );
  }

  /** Per organization, the datastreams its forwarders take datapoints of ('all': one takes every datastream). */
  async pointInterest(): Promise<Map<string, Set<string> | 'all'>> {
    const docs = await this.c.forwarders.find({}, { projection: { org: 1, subscription: 1 } }).toArray();
    const interest = new Map<string, Set<string> | 'all'>();
    for (const { org, subscription: sub } of docs) {
      const streams = sub.datastreams ?? [];
      const all = streams.length === 0 && (sub.types ?? []).includes('datapoints');
      if (!all && streams.length === 0) continue;
      const known = interest.get(org);
      if (all || known === 'all') interest.set(org, 'all');
      else interest.set(org, new Set([...(known ?? []), ...streams]));
    }
    return interest;
  }

  async remove(org: string, id: string): Promise<boolean> {
    const res = await this.forwarders.deleteOne({ _id: forwarderDocId(org, id) });
    await this.deadLetters.deleteMany({
      _id: { $gt: `${org}/${id}/`, $lt: `${org}/${id}/\uffff` },
    });
    return res.deletedCount === 1;
  }

  /** Keeps an event the destination refused; a second refusal of the same event counts another attempt. */
  async addDeadLetter(org: string, forwarderId: string, event: FleetEvent, error: string, now: number) {
    await this.deadLetters.updateOne(
      { _id: deadLetterId(org, forwarderId, event.seq) },
      {
        $set: { lastError: error, lastFailedAt: now },
        $inc: { attempts: 1 },
        $setOnInsert: { org, forwarderId, seq: event.seq, event: toStoredValue(event), firstFailedAt: now },
      },
      { upsert: true },
    );
  }

  async listDeadLetters(
    org: string,
    forwarderId: string,
    limit: number,
    afterSeq = 0,
  ): Promise<DeadLetter[]> {
    const docs = await this.deadLetters
      .find({
        _id: { $gt: deadLetterId(org, forwarderId, afterSeq), $lt: `${org}/${forwarderId}/\uffff` },
      })
      .sort({ _id: 1 })
      .limit(limit)
      .toArray();
    return docs.map(toDeadLetter);
  }

  async getDeadLetter(org: string, forwarderId: string, seq: number): Promise<DeadLetter | null> {
    const doc = await this.deadLetters.findOne({ _id: deadLetterId(org, forwarderId, seq) });
    return doc ? toDeadLetter(doc) : null;
  }

  async removeDeadLetter(org: string, forwarderId: string, seq: number): Promise<boolean> {
    const res = await this.deadLetters.deleteOne({ _id: deadLetterId(org, forwarderId, seq) });
    return res.deletedCount === 1;
  }
}
