// Device records and their read model (twin snapshot, latest values) in the `devices` collection.
import { type AnyBulkWriteOperation, type Filter, MongoBulkWriteError, MongoServerError } from 'mongodb';
import type { TwinSnapshot } from '../twins/twin-core';
import type { DeviceProfile } from '../twins/types';
import { encodeDatastreamKey } from './datastream-key';
import type { DeviceDoc, LatestValueDoc } from './documents';
import type { Collections } from './inventory';

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

const DUPLICATE_KEY = 11000;
const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Latest-value updates sent to the store in one update command at most. FerretDB 1.24 keeps one SQLite
 * connection open for every update of a command until the whole command ends, and each update's own
 * write needs one more; its pool has 100, so a command of 100 updates waits forever for a connection and
 * every other request with it. Small commands, one at a time, stay far below that.
 */
const LATEST_SLICE = 25;

export class DeviceRepository {
  constructor(private readonly c: Collections) {}

  /** Inserts new devices; answers which ids already existed. */
  async insertMany(docs: readonly DeviceDoc[]): Promise<{ duplicates: Set<string> }> {
    const duplicates = new Set<string>();
    if (docs.length === 0) return { duplicates };
    try {
      await this.c.devices.insertMany([...docs], { ordered: false });
    } catch (err) {
      if (err instanceof MongoBulkWriteError) {
        for (const we of [err.writeErrors].flat()) {
          if (we.code !== DUPLICATE_KEY) throw err;
          duplicates.add(docs[we.index]!.id);
        }
      } else if (err instanceof MongoServerError && err.code === DUPLICATE_KEY && docs.length === 1) {
        duplicates.add(docs[0]!.id);
      } else {
        throw err;
      }
    }
    return { duplicates };
  }

  get(org: string, deviceId: string): Promise<DeviceDoc | null> {
    return this.c.devices.findOne({ _id: deviceDocId(org, deviceId) });
  }

  async list(org: string, filter: DeviceListFilter, limit: number, after?: string): Promise<DevicePage> {
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
    const items = await this.c.devices
      .find(query)
      .sort({ _id: 1 })
      .limit(limit + 1)
      .toArray();
    const hasMore = items.length > limit;
    if (hasMore) items.length = limit;
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
    return this.c.devices.findOneAndUpdate({ _id: deviceDocId(org, deviceId) }, update, {
      returnDocument: 'after',
    });
  }

  /** Undoes a provisioning whose twin could not start: the records and keys it wrote. */
  async removeProvisioned(
    org: string,
    deviceIds: readonly string[],
    keyHashes: readonly string[],
  ): Promise<void> {
    await this.c.apiKeys.deleteMany({ _id: { $in: [...keyHashes] }, org });
    await this.c.devices.deleteMany({
      _id: { $in: deviceIds.map((id) => deviceDocId(org, id)) },
      lastSeenAt: { $exists: false },
    });
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

  /**
   * Sets latest values for many devices of one org: one update per device (the embedded FerretDB commits
   * each update on its own, so never one per datastream). The caller passes only values newer
   * than what is stored (see LatestValueGuard).
   */
  async storeLatest(org: string, updates: readonly LatestUpdate[]): Promise<void> {
    const ops: AnyBulkWriteOperation<DeviceDoc>[] = updates.map((u) => {
      const set: Record<string, LatestValueDoc> = {};
      for (const v of u.values) set[`latest.${encodeDatastreamKey(v.id, v.feed)}`] = v;
      const update =
        u.values.length > 0
          ? { $set: set, $max: { lastSeenAt: u.lastSeenAt } }
          : { $max: { lastSeenAt: u.lastSeenAt } };
      return { updateOne: { filter: { _id: deviceDocId(org, u.deviceId) }, update } };
    });
    // In slices, one after another (see LATEST_SLICE).
    for (let i = 0; i < ops.length; i += LATEST_SLICE) {
      await this.c.devices.bulkWrite(ops.slice(i, i + LATEST_SLICE), { ordered: false });
    }
  }

  /** The `at` of every stored latest value of a device, by encoded datastream key. */
  async latestTimes(org: string, deviceId: string): Promise<Map<string, number>> {
    const doc = await this.c.devices.findOne(
      { _id: deviceDocId(org, deviceId) },
      { projection: { latest: 1 } },
    );
    return new Map(Object.entries(doc?.latest ?? {}).map(([key, v]) => [key, v.at]));
  }
}
