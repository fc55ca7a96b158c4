// Alarms and twin events: written by each device's twin (its only writer), read by the API across the fleet.
import type { AnyBulkWriteOperation, Filter } from 'mongodb';
import type { AlarmRecord, AlarmSeverity, AlarmStatus } from '../twins/behaviours';
import type { AlarmDoc, TwinEventDoc } from './documents';
import type { Collections } from './inventory';
import { toStoredValue } from './storable';

export const alarmDocId = (org: string, deviceId: string, name: string): string =>
  `${org}/${deviceId}/${name}`;

export interface AlarmListFilter {
  readonly status?: AlarmStatus;
  readonly severity?: AlarmSeverity;
  readonly twinType?: string;
  readonly tag?: string;
  readonly acknowledged?: boolean;
}

export interface AlarmPage {
  readonly items: AlarmDoc[];
  /** Pass back as `after` for the next page; absent on the last page. */
  readonly nextAfter?: string;
}

export interface AlarmWrite {
  readonly org: string;
  readonly deviceId: string;
  readonly twinType: string;
  readonly tags: readonly string[];
  readonly alarms: readonly AlarmRecord[];
  readonly events: readonly { id: string; name: string; data: unknown; at: number }[];
}

export class AlarmRepository {
  constructor(private readonly c: Collections) {}

  /** One twin's changed alarms and new events, in one write each. */
  async write(w: AlarmWrite): Promise<void> {
    if (w.alarms.length > 0) {
      const ops: AnyBulkWriteOperation<AlarmDoc>[] = w.alarms.map((a) => {
        const doc: AlarmDoc = {
          ...a,
          _id: alarmDocId(w.org, w.deviceId, a.name),
          org: w.org,
          deviceId: w.deviceId,
          twinType: w.twinType,
          tags: [...w.tags],
        };
        return { replaceOne: { filter: { _id: doc._id }, replacement: doc, upsert: true } };
      });
      await this.c.alarms.bulkWrite(ops, { ordered: true });
    }
    if (w.events.length > 0) {
      const ops: AnyBulkWriteOperation<TwinEventDoc>[] = w.events.map((e) => {
        const doc: TwinEventDoc = {
          _id: `${w.org}/${w.deviceId}/${e.id}`,
          org: w.org,
          deviceId: w.deviceId,
          id: e.id,
          name: e.name,
          data: toStoredValue(e.data),
          at: e.at,
        };
        return { replaceOne: { filter: { _id: doc._id }, replacement: doc, upsert: true } };
      });
      await this.c.twinEvents.bulkWrite(ops, { ordered: true });
    }
  }

  get(org: string, deviceId: string, name: string): Promise<AlarmDoc | null> {
    return this.c.alarms.findOne({ _id: alarmDocId(org, deviceId, name) });
  }

  /** A device's alarms, active and cleared, by name. */
  listForDevice(org: string, deviceId: string): Promise<AlarmDoc[]> {
    const prefix = `${org}/${deviceId}/`;
    return this.c.alarms
      .find({ _id: { $gt: prefix, $lt: `${prefix}\uffff` }, org, deviceId })
      .sort({ _id: 1 })
      .limit(1_000)
      .toArray();
  }

  /** The organization's alarms across the fleet (by device, then name), filtered. */
  async list(org: string, filter: AlarmListFilter, limit: number, after?: string): Promise<AlarmPage> {
    const query: Record<string, unknown> = { org };
    if (filter.status !== undefined) query.status = filter.status;
    if (filter.severity !== undefined) query.severity = filter.severity;
    if (filter.twinType !== undefined) query.twinType = filter.twinType;
    if (filter.tag !== undefined) query.tags = filter.tag;
    if (filter.acknowledged !== undefined) query.acknowledged = filter.acknowledged;
    query._id =
      after !== undefined ? { $gt: after, $lt: `${org}/\uffff` } : { $gt: `${org}/`, $lt: `${org}/\uffff` };
    const items = await this.c.alarms
      .find(query as Filter<AlarmDoc>)
      .sort({ _id: 1 })
      .limit(limit + 1)
      .toArray();
    const hasMore = items.length > limit;
    if (hasMore) items.length = limit;
    return { items, nextAfter: hasMore ? items[items.length - 1]?._id : undefined };
  }

  /** A device's events, newest first. */
  listEvents(org: string, deviceId: string, limit: number): Promise<TwinEventDoc[]> {
    return this.c.twinEvents.find({ org, deviceId }).sort({ at: -1, _id: -1 }).limit(limit).toArray();
  }
}
