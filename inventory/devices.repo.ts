// Device records and their read model: the twin snapshot in `devices`, latest values in `latest` pages.
import type { AnyBulkWriteOperation, Filter } from 'mongodb';
import type { SnapshotFacts } from '../events/derive';
import type { TwinSnapshot } from '../twins/twin-core';
import type { DeviceProfile } from '../twins/types';
import { encodeDatastreamKey } from './datastream-key';
import type { DeviceDoc, LatestEntryDoc, LatestPageDoc, LatestValueDoc } from './documents';
import type { Collections } from './inventory';
import { deviceField, latestPageId, latestPageOf } from './latest-pages';
import { type RecentIngest, mergeLatest } from './recent-ingest';
import { duplicatesOnly } from './write-errors';

export const deviceDocId = (org: string, deviceId: string): string => `${org}/${deviceId}`;

export interface DeviceListFilter {
  readonly type?: string;
  readonly tag?: string;
  readonly status?: string;
  readonly lifecycle?: 'ACTIVE' | 'DECOMMISSIONED';
  /** Case-insensitive substring of the id or name. */
  readonly q?: string;
}

export interface DevicePage {
  readonly items: DeviceDoc[];
  /** Pass back as `after` for the next page; absent on the last page. */
  readonly nextAfter?: string;
}

export interface LatestUpdate {
  readonly deviceId: string;
  readonly values: readonly LatestValueDoc[];
  readonly lastSeenAt: number;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The query behind a device list (and a job's filter): the org's devices after `after`, in id order. */
export function deviceListQuery(org: string, filter: DeviceListFilter, after?: string): Filter<DeviceDoc> {
  const query: Filter<DeviceDoc> = { org };
  if (filter.type !== undefined) query.type = filter.type;
  if (filter.tag !== undefined) query.tags = filter.tag;
  if (filter.status !== undefined) query['twin.status'] = filter.status;
  if (filter.lifecycle !== undefined) query.lifecycle = filter.lifecycle;
  if (filter.q !== undefined) {
    const re = new RegExp(escapeRegex(filter.q), 'i');
    query.$or = [{ id: re }, { name: re }];
  }
  query._id = after !== undefined ? { $gt: deviceDocId(org, after) } : { $gte: `${org}/` };
  return query;
}

/**
 * Page updates sent to the store in one update command at most. FerretDB 1.24 keeps one SQLite connection
 * open for every update of a command until the whole command ends, and each update's own write needs one
 * more; its pool has 100, so a command of 100 updates waits forever for a connection, and every other
 * request with it. Small commands, one at a time, stay far below that.
 */
const LATEST_SLICE = 16;

export class DeviceRepository {
  /** Whole-page reads in flight (see latestTimes). */
  private readonly pageReads = new Map<string, Promise<LatestPageDoc | null>>();

  /** `recent`: latest values this process has committed but not yet written back, merged into reads. */
  constructor(
    private readonly c: Collections,
    private readonly recent?: RecentIngest,
  ) {}

  /** Inserts new devices; answers which ids already existed. */
  async insertMany(docs: readonly DeviceDoc[]): Promise<{ duplicates: Set<string> }> {
    const duplicates = new Set<string>();
    if (docs.length === 0) return { duplicates };
    try {
      await this.c.devices.insertMany([...docs], { ordered: false });
    } catch (err) {
      const refused = duplicatesOnly(err, docs.length);
      if (refused === undefined) throw err;
      for (const i of refused) duplicates.add(docs[i]!.id);
    }
    return { duplicates };
  }

  /** The device record alone (without latest values): what lookups and checks need. */
  get(org: string, deviceId: string): Promise<DeviceDoc | null> {
    return this.c.devices.findOne({ _id: deviceDocId(org, deviceId) });
  }

  /** What the ingest's device directory needs of a record: its type, lifecycle and transport. */
  lookupInfo(
    org: string,
    deviceId: string,
  ): Promise<Pick<DeviceDoc, 'type' | 'lifecycle' | 'transport'> | null> {
    return this.c.devices.findOne(
      { _id: deviceDocId(org, deviceId) },
      { projection: { _id: 0, type: 1, lifecycle: 1, transport: 1 } },
    );
  }

  /**
   * lookupInfo for every device of an organization, in one read (on the embedded FerretDB a scan that parses
   * every device document: one scan instead of thousands of lookups when a fleet arrives at once).
   */
  async *allInfo(
    org: string,
  ): AsyncGenerator<{ deviceId: string } & Pick<DeviceDoc, 'type' | 'lifecycle' | 'transport'>> {
    const docs = this.c.devices.find(
      { org },
      { projection: { _id: 0, id: 1, type: 1, lifecycle: 1, transport: 1 } },
    );
    for await (const d of docs)
      yield { deviceId: d.id, type: d.type, lifecycle: d.lifecycle, transport: d.transport };
  }

  /** The device record with its latest values and `lastSeenAt`: what the API shows. */
  async getWithLatest(org: string, deviceId: string): Promise<DeviceDoc | null> {
    const doc = await this.get(org, deviceId);
    return doc && (await this.withLatest(org, [doc]))[0]!;
  }

  /** The ids of the organization's devices that carry a tag (at most `max`). */
  async idsWithTag(org: string, tag: string, max: number): Promise<string[]> {
    const docs = await this.c.devices
      .find({ org, tags: tag }, { projection: { _id: 1 } })
      .sort({ org: 1, tags: 1, _id: 1 })
      .limit(max)
      .toArray();
    return docs.map((d) => d._id.slice(org.length + 1));
  }

  async list(org: string, filter: DeviceListFilter, limit: number, after?: string): Promise<DevicePage> {
    const query = deviceListQuery(org, filter, after);
    const items = await this.c.devices
      .find(query)
      .sort({ _id: 1 })
      .limit(limit + 1)
      .toArray();
    const hasMore = items.length > limit;
    if (hasMore) items.length = limit;
    await this.withLatest(org, items);
    return { items, nextAfter: hasMore ? items[items.length - 1]?.id : undefined };
  }

  async setProfile(
    org: string,
    deviceId: string,
    profile: DeviceProfile,
    now: Date,
  ): Promise<DeviceDoc | null> {
    const set: Partial<DeviceDoc> = {
      tags: [...profile.tags],
      attributes: { ...profile.attributes },
      updatedAt: now,
    };
    const update =
      profile.name === undefined
        ? { $set: set, $unset: { name: 1 as const } }
        : { $set: { ...set, name: profile.name } };
    const doc = await this.c.devices.findOneAndUpdate({ _id: deviceDocId(org, deviceId) }, update, {
      returnDocument: 'after',
    });
    return doc && (await this.withLatest(org, [doc]))[0]!;
  }

  /** Undoes a provisioning whose twin could not start: the records and keys it wrote. */
  async removeProvisioned(
    org: string,
    deviceIds: readonly string[],
    keyHashes: readonly string[],
  ): Promise<void> {
    await this.c.apiKeys.deleteMany({ _id: { $in: [...keyHashes] }, org });
    // The device keys were never handed out, so these devices cannot have sent data.
    await this.c.devices.deleteMany({ _id: { $in: deviceIds.map((id) => deviceDocId(org, id)) } });
  }

  async markDecommissioned(org: string, deviceId: string, now: Date): Promise<void> {
    await this.c.devices.updateOne(
      { _id: deviceDocId(org, deviceId) },
      { $set: { lifecycle: 'DECOMMISSIONED', decommissionedAt: now, updatedAt: now } },
    );
  }

  /**
   * Writes the twin's snapshot. The twin is its only writer and publishes one snapshot at a time, oldest
   * first, so the filter is the _id alone: the embedded FerretDB scans the whole collection for any other.
   * A decommissioned twin's last snapshot marks the record too: the embedded FerretDB applies an update by
   * reading and rewriting the whole document, so a snapshot racing the API's own mark could otherwise put
   * the old lifecycle back.
   */
  async writeTwinSnapshot(org: string, deviceId: string, snapshot: TwinSnapshot): Promise<boolean> {
    const set: Record<string, unknown> = { twin: snapshot };
    if (snapshot.lifecycle === 'DECOMMISSIONED') set.lifecycle = 'DECOMMISSIONED';
    const res = await this.c.devices.updateOne({ _id: deviceDocId(org, deviceId) }, { $set: set });
    return res.matchedCount === 1;
  }

  /** What the stored snapshot says of the twin's status and desired state (undefined: no such device). */
  async twinFacts(org: string, deviceId: string): Promise<SnapshotFacts | undefined> {
    const doc = await this.c.devices.findOne(
      { _id: deviceDocId(org, deviceId) },
      {
        projection: {
          'twin.status': 1,
          'twin.desired.status': 1,
          'twin.desired.version': 1,
          'twin.desired.reason': 1,
        },
      },
    );
    if (!doc) return undefined;
    const twin = doc.twin as Partial<TwinSnapshot> | undefined;
    return { ...(twin?.status !== undefined ? { status: twin.status } : {}), desired: twin?.desired ?? null };
  }

  /**
   * Sets latest values for many devices of one org: one update per latest page touched, however many
   * devices (see latest-pages.ts). The caller passes only values newer than what is stored (see
   * LatestValueGuard) and writes one batch at a time per process.
   */
  async storeLatest(org: string, updates: readonly LatestUpdate[]): Promise<void> {
    const pages = new Map<number, { set: Record<string, LatestValueDoc>; max: Record<string, number> }>();
    for (const u of updates) {
      const page = latestPageOf(u.deviceId);
      let p = pages.get(page);
      if (!p) pages.set(page, (p = { set: {}, max: {} }));
      const base = `devices.${deviceField(u.deviceId)}`;
      for (const v of u.values) p.set[`${base}.values.${encodeDatastreamKey(v.id, v.feed)}`] = v;
      p.max[`${base}.lastSeenAt`] = u.lastSeenAt;
    }
    const ops: AnyBulkWriteOperation<LatestPageDoc>[] = [...pages].map(([page, p]) => ({
      updateOne: {
        filter: { _id: latestPageId(org, page) },
        update: {
          ...(Object.keys(p.set).length > 0 ? { $set: p.set } : {}),
          $max: p.max,
          $setOnInsert: { org, page },
        },
        upsert: true,
      },
    }));
    // In slices, one after another (see LATEST_SLICE).
    for (let i = 0; i < ops.length; i += LATEST_SLICE) {
      await this.c.latest.bulkWrite(ops.slice(i, i + LATEST_SLICE), { ordered: false });
    }
  }

  /**
   * The `at` of every stored latest value of a device, by encoded datastream key. Concurrent calls for
   * devices of one page share one read of the whole page: a fleet's first messages cost one read per
   * page, not one per device.
   */
  async latestTimes(org: string, deviceId: string): Promise<Map<string, number>> {
    const id = latestPageId(org, latestPageOf(deviceId));
    let read = this.pageReads.get(id);
    if (!read) {
      read = this.c.latest.findOne({ _id: id }).finally(() => this.pageReads.delete(id));
      this.pageReads.set(id, read);
    }
    const entry = (await read)?.devices?.[deviceField(deviceId)];
    return new Map(Object.entries(entry?.values ?? {}).map(([key, v]) => [key, v.at]));
  }

  /** Fills in `latest` and `lastSeenAt` of device records from their pages. */
  private async withLatest(org: string, docs: DeviceDoc[]): Promise<DeviceDoc[]> {
    // What is held first, the store second (see recent-ingest.ts).
    const held = new Map(docs.map((d) => [d.id, this.recent?.latestOf(org, d.id)]));
    const entries = await this.latestEntries(
      org,
      docs.map((d) => d.id),
    );
    for (const doc of docs) {
      const entry = mergeLatest(entries.get(doc.id), held.get(doc.id));
      doc.latest = entry?.values ?? {};
      if (entry) doc.lastSeenAt = entry.lastSeenAt;
    }
    return docs;
  }

  /** The latest-page entries of some devices: one read per page, of those devices' fields only. */
  private async latestEntries(
    org: string,
    deviceIds: readonly string[],
  ): Promise<Map<string, LatestEntryDoc>> {
    const byPage = new Map<number, string[]>();
    for (const id of deviceIds) {
      const page = latestPageOf(id);
      const ids = byPage.get(page);
      if (ids) ids.push(id);
      else byPage.set(page, [id]);
    }
    const out = new Map<string, LatestEntryDoc>();
    await Promise.all(
      [...byPage].map(async ([page, ids]) => {
        const doc = await this.c.latest.findOne(
          { _id: latestPageId(org, page) },
          { projection: Object.fromEntries(ids.map((id) => [`devices.${deviceField(id)}`, 1])) },
        );
        for (const id of ids) {
          const entry = doc?.devices?.[deviceField(id)];
          if (entry) out.set(id, entry);
        }
      }),
    );
    return out;
  }
}
