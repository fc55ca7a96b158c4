// What the ingest path has stored in its commit log but not yet written back as history chunks and latest
// pages: held in process, so reads of this process see every acknowledged value at once.
//
// The hot path writes one commit document per group commit (commit-log.repo.ts); the write-back turns
// them into history chunks and latest-page updates at a bounded rate. Until it has, reads merge what is
// held here: history reads the points, device reads the latest values. Reads take what is held here before
// they read the store, so a value the write-back moves from here to the store meanwhile is seen twice
// (reads drop exact duplicates) rather than not at all.
import { encodeDatastreamKey } from './datastream-key';
import type { DatapointDoc, LatestEntryDoc, LatestValueDoc } from './documents';
import { latestPageOf } from './latest-pages';

/** One device's latest values waiting for write-back. */
export interface HeldLatest {
  readonly org: string;
  readonly deviceId: string;
  readonly values: Map<string, LatestValueDoc>;
  lastSeenAt: number;
  /** Bumped on every change: a write-back forgets the entry only when nothing changed meanwhile. */
  version: number;
}

/** A set of devices' latest values taken for write-back: one org and latest page. */
export interface LatestPageTake {
  readonly org: string;
  readonly page: number;
  readonly entries: readonly { readonly held: HeldLatest; readonly version: number }[];
}

const seriesKey = (org: string, deviceId: string, ds: string) => `${org}\u0000${deviceId}\u0000${ds}`;
const deviceKey = (org: string, deviceId: string) => `${org}\u0000${deviceId}`;

export class RecentIngest {
  /** Points not yet taken for write-back, by series. */
  private current = new Map<string, DatapointDoc[]>();
  /** Points taken by a history write-back under way: still read until it has stored them. */
  private flushing = new Map<string, DatapointDoc[]>();
  private heldPoints = 0;
  private readonly latest = new Map<string, HeldLatest>();

  /** Adds one commit's points and the latest values it brought (only those newer than what is held). */
  add(points: readonly DatapointDoc[], latest: readonly LatestEntry[]): void {
    for (const p of points) {
      const key = seriesKey(p.org, p.deviceId, p.ds);
      const list = this.current.get(key);
      if (list) list.push(p);
      else this.current.set(key, [p]);
    }
    this.heldPoints += points.length;
    for (const e of latest) this.setLatest(e);
  }

  /** Points held for one series with from <= at <= to (any order). */
  points(org: string, deviceId: string, ds: string, from: number, to: number): DatapointDoc[] {
    const key = seriesKey(org, deviceId, ds);
    const out: DatapointDoc[] = [];
    for (const map of [this.flushing, this.current])
      for (const p of map.get(key) ?? []) if (p.at >= from && p.at <= to) out.push(p);
    return out;
  }

  /** Takes every held point for a history write-back; they stay readable until finishHistory. */
  takeHistory(): DatapointDoc[] {
    if (this.flushing.size > 0) throw new Error('a history write-back is already under way');
    this.flushing = this.current;
    this.current = new Map();
    return [...this.flushing.values()].flat();
  }

  /** Ends a history write-back: stored points are dropped, points of a failed one go back. */
  finishHistory(stored: boolean): void {
    if (stored) {
      for (const list of this.flushing.values()) this.heldPoints -= list.length;
    } else {
      for (const [key, list] of this.flushing) {
        const newer = this.current.get(key);
        this.current.set(key, newer ? [...list, ...newer] : list);
      }
    }
    this.flushing = new Map();
  }

  /** The held latest values of a device, if any. */
  latestOf(org: string, deviceId: string): LatestEntryDoc | undefined {
    const held = this.latest.get(deviceKey(org, deviceId));
    if (!held) return undefined;
    return { values: Object.fromEntries(held.values), lastSeenAt: held.lastSeenAt };
  }

  /** Every held device's latest values, grouped by org and latest page (what one page update writes). */
  takeLatestPages(): LatestPageTake[] {
    const pages = new Map<string, LatestPageTake & { entries: LatestPageTake['entries'][number][] }>();
    for (const held of this.latest.values()) {
      const page = latestPageOf(held.deviceId);
      const key = `${held.org}\u0000${page}`;
      let take = pages.get(key);
      if (!take) pages.set(key, (take = { org: held.org, page, entries: [] }));
      take.entries.push({ held, version: held.version });
    }
    return [...pages.values()];
  }

  /** After a page is stored: forgets the devices that did not change since they were taken. */
  latestStored(take: LatestPageTake): void {
    for (const { held, version } of take.entries) {
      const key = deviceKey(held.org, held.deviceId);
      if (this.latest.get(key) === held && held.version === version) this.latest.delete(key);
    }
  }

  counters() {
    return { heldPoints: this.heldPoints, heldDevices: this.latest.size };
  }

  private setLatest(e: LatestEntry): void {
    const key = deviceKey(e.org, e.deviceId);
    let held = this.latest.get(key);
    if (!held) {
      held = { org: e.org, deviceId: e.deviceId, values: new Map(), lastSeenAt: e.lastSeenAt, version: 0 };
      this.latest.set(key, held);
    }
    held.lastSeenAt = Math.max(held.lastSeenAt, e.lastSeenAt);
    held.version += 1;
    for (const v of e.values) {
      const k = encodeDatastreamKey(v.id, v.feed);
      const seen = held.values.get(k);
      if (!seen || seen.at <= v.at) held.values.set(k, v);
    }
  }
}

/** One device's newest values from one commit. */
export interface LatestEntry {
  readonly org: string;
  readonly deviceId: string;
  readonly values: readonly LatestValueDoc[];
  readonly lastSeenAt: number;
}

/**
 * Merges stored and held latest values: per datastream the newer `at` wins (the held one on a tie), since
 * the held values may already have been written back when the store was read.
 */
export function mergeLatest(
  stored: LatestEntryDoc | undefined,
  held: LatestEntryDoc | undefined,
): LatestEntryDoc | undefined {
  if (!held) return stored;
  if (!stored) return held;
  const values = { ...stored.values };
  for (const [k, v] of Object.entries(held.values)) {
    const s = values[k];
    if (!s || s.at <= v.at) values[k] = v;
  }
  return { values, lastSeenAt: Math.max(stored.lastSeenAt, held.lastSeenAt) };
}
