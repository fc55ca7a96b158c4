// Cached device lookups for the ingest hot path: which devices exist, their twin type, whether they are active.
import type { DeviceDoc, DeviceTransport } from '../inventory/documents';
import type { DeviceRepository } from '../inventory/devices.repo';

export interface DeviceInfo {
  readonly org: string;
  readonly deviceId: string;
  readonly twinType: string;
  readonly active: boolean;
  readonly transport: DeviceTransport;
}

/** Lookups the background refresh runs at once, so that it never takes the store's connections from the hot path. */
const REFRESHES_AT_ONCE = 4;

/**
 * Lookups waiting at once beyond which the directory reads the whole organization in one scan instead (a fleet
 * arriving together: after a start, or after a silence longer than the time to live). At 10,000 devices the
 * lookups one by one took 21 to 25 s on the busy embedded FerretDB.
 */
const SCAN_AFTER_MISSES = 64;

/**
 * An organization with at least SCAN_AFTER_MISSES entries that had a message within this long has all its
 * entries refreshed by one scan every half time to live, so they never expire: a fleet that reports every few
 * minutes, or comes back after a silence, finds its entries fresh instead of waiting for thousands of lookups
 * at once, and the one-by-one refreshes stop.
 */
const KEEP_WARM_MS = 3_600_000;

interface Entry {
  readonly info: DeviceInfo | null;
  /** After this the entry is served while a background lookup refreshes it. */
  readonly due: number;
  /** After this it is not served: a message waits for a new lookup. */
  readonly until: number;
}

/**
 * Cached device lookups. No entry is served longer than `ttlMs` (60 s by default) after its lookup: the process
 * that changes a device forgets it at once, and other processes see the change within that time.
 *
 * Each entry falls due at a random point in the second half of its time to live; a message that finds it due
 * is served from it at once and a background lookup (at most REFRESHES_AT_ONCE at a time) refreshes it. So a
 * fleet whose entries were all made in the same second does not expire in the same second: at 10,000 devices
 * that wave of lookups took every store connection for seconds and held the acknowledgements up behind it.
 * Only an entry past its whole time to live (a device silent for a while, or refreshes that fell behind)
 * makes a message wait for its lookup. Concurrent messages of one device share one lookup; each is one `_id`
 * read (a batched `$in` lookup looked cheaper, but the embedded FerretDB answers it by scanning and parsing
 * every device document, seconds at 10,000 devices). Unknown devices are remembered for a second.
 */
export class DeviceDirectory {
  private readonly cache = new Map<string, Entry>();
  /** Lookups in flight, so concurrent messages of one device share one. */
  private readonly inFlight = new Map<string, Promise<DeviceInfo | null>>();
  /** Due entries waiting for a background refresh, in the order they were found due. */
  private readonly refreshQueue = new Map<string, { org: string; deviceId: string }>();
  private refreshing = 0;
  /** Whole-organization reads under way (see SCAN_AFTER_MISSES), and when each organization's last one ended. */
  private readonly scans = new Map<string, Promise<void>>();
  private readonly scannedAt = new Map<string, number>();
  /** Devices forgotten while a scan was under way: what the scan read of them may predate the change. */
  private readonly forgottenDuringScan = new Set<string>();
  private readonly stats = { lookups: 0, refreshes: 0, refreshFailures: 0, scans: 0, scanFailures: 0 };
  /** When each organization last had a message. */
  private readonly lastUse = new Map<string, number>();
  private keepWarmTimer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly devices: Pick<DeviceRepository, 'lookupInfo' | 'allInfo'>,
    private readonly ttlMs = 60_000,
    private readonly maxEntries = 200_000,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  async get(org: string, deviceId: string): Promise<DeviceInfo | null> {
    const key = `${org}/${deviceId}`;
    const hit = this.cache.get(key);
    const now = this.now();
    this.lastUse.set(org, now);
    this.keepWarmTimer ??= setInterval(() => void this.keepWarm(), this.ttlMs / 2).unref();
    if (hit && hit.until > now) {
      if (hit.due <= now) this.refreshSoon(key, org, deviceId);
      return hit.info;
    }
    const scan = this.scans.get(org) ?? this.maybeScan(org);
    if (scan) {
      await scan;
      const fresh = this.cache.get(key);
      if (fresh && fresh.until > this.now()) return fresh.info;
    }
    return this.lookUpShared(key, org, deviceId);
  }

  /**
   * Refreshes, one scan each, the entries of every organization that is large and had a message lately (see
   * KEEP_WARM_MS); runs every half time to live. Answers once the scans are over.
   */
  async keepWarm(): Promise<void> {
    const now = this.now();
    const sizes = new Map<string, number>();
    for (const [key, entry] of this.cache) {
      const org = key.slice(0, key.indexOf('/'));
      if (entry.info) sizes.set(org, (sizes.get(org) ?? 0) + 1);
    }
    const scans: Promise<void>[] = [];
    for (const [org, usedAt] of this.lastUse) {
      if (now - usedAt >= KEEP_WARM_MS) this.lastUse.delete(org);
      else if ((sizes.get(org) ?? 0) >= SCAN_AFTER_MISSES && !this.scans.has(org))
        scans.push(this.startScan(org, true));
    }
    await Promise.all(scans);
  }

  /** Stops the refreshes of keepWarm. */
  close(): void {
    clearInterval(this.keepWarmTimer);
  }

  /** Starts a scan of the organization when many of its lookups wait at once and none ran within a half-life. */
  private maybeScan(org: string): Promise<void> | undefined {
    if (this.inFlight.size < SCAN_AFTER_MISSES) return undefined;
    if (this.now() - (this.scannedAt.get(org) ?? -Infinity) < this.ttlMs / 2) return undefined;
    return this.startScan(org, false);
  }

  /** A scan of the organization, known to `get` while under way; `onlyCached`: it refreshes what is held. */
  private startScan(org: string, onlyCached: boolean): Promise<void> {
    const scan = this.scan(org, onlyCached).finally(() => {
      this.scans.delete(org);
      this.scannedAt.set(org, this.now());
      if (this.scans.size === 0) this.forgottenDuringScan.clear();
    });
    this.scans.set(org, scan);
    return scan;
  }

  private async scan(org: string, onlyCached: boolean): Promise<void> {
    this.stats.scans += 1;
    try {
      for await (const d of this.devices.allInfo(org)) {
        const key = `${org}/${d.deviceId}`;
        // A lookup under way answers, and caches, at least as new; a forgotten device is read again.
        if (this.inFlight.has(key) || this.forgottenDuringScan.has(key)) continue;
        if (onlyCached && !this.cache.has(key)) continue;
        this.remember(key, { org, deviceId: d.deviceId, ...infoOf(d) });
      }
    } catch {
      // Each waiting message then looks its device up alone, and reports any failure itself.
      this.stats.scanFailures += 1;
    }
  }

  forget(org: string, deviceId: string): void {
    this.cache.delete(`${org}/${deviceId}`);
    if (this.scans.size > 0) this.forgottenDuringScan.add(`${org}/${deviceId}`);
  }

  counters() {
    return { ...this.stats, cached: this.cache.size, refreshQueue: this.refreshQueue.size };
  }

  private lookUpShared(key: string, org: string, deviceId: string): Promise<DeviceInfo | null> {
    let lookup = this.inFlight.get(key);
    if (!lookup) {
      lookup = this.lookUp(key, org, deviceId).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, lookup);
    }
    return lookup;
  }

  private refreshSoon(key: string, org: string, deviceId: string): void {
    if (this.inFlight.has(key) || this.refreshQueue.has(key)) return;
    this.refreshQueue.set(key, { org, deviceId });
    this.pumpRefreshes();
  }

  private pumpRefreshes(): void {
    for (const [key, { org, deviceId }] of this.refreshQueue) {
      if (this.refreshing >= REFRESHES_AT_ONCE) return;
      this.refreshQueue.delete(key);
      this.refreshing += 1;
      this.stats.refreshes += 1;
      this.lookUpShared(key, org, deviceId)
        .catch(() => {
          // The entry is served until its time to live ends; then a message's own lookup reports the failure.
          this.stats.refreshFailures += 1;
        })
        .finally(() => {
          this.refreshing -= 1;
          this.pumpRefreshes();
        });
    }
  }

  private async lookUp(key: string, org: string, deviceId: string): Promise<DeviceInfo | null> {
    this.stats.lookups += 1;
    const doc = await this.devices.lookupInfo(org, deviceId);
    const info = doc ? { org, deviceId, ...infoOf(doc) } : null;
    this.remember(key, info);
    return info;
  }

  private remember(key: string, info: DeviceInfo | null): void {
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    const now = this.now();
    const ttl = info ? this.ttlMs : Math.min(this.ttlMs, 1_000);
    this.cache.set(key, { info, due: now + ttl * (0.5 + 0.5 * this.random()), until: now + ttl });
  }
}

function infoOf(doc: Pick<DeviceDoc, 'type' | 'lifecycle' | 'transport'>) {
  return { twinType: doc.type, active: doc.lifecycle === 'ACTIVE', transport: doc.transport ?? {} };
}
