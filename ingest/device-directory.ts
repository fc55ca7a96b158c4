// Cached device lookups for the ingest hot path: which devices exist, their twin type, whether they are active.
import type { DeviceTransport } from '../inventory/documents';
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
  private readonly stats = { lookups: 0, refreshes: 0, refreshFailures: 0 };

  constructor(
    private readonly devices: Pick<DeviceRepository, 'lookupInfo'>,
    private readonly ttlMs = 60_000,
    private readonly maxEntries = 200_000,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  async get(org: string, deviceId: string): Promise<DeviceInfo | null> {
    const key = `${org}/${deviceId}`;
    const hit = this.cache.get(key);
    const now = this.now();
    if (hit && hit.until > now) {
      if (hit.due <= now) this.refreshSoon(key, org, deviceId);
      return hit.info;
    }
    return this.lookUpShared(key, org, deviceId);
  }

  forget(org: string, deviceId: string): void {
    this.cache.delete(`${org}/${deviceId}`);
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
    const info = doc
      ? {
          org,
          deviceId,
          twinType: doc.type,
          active: doc.lifecycle === 'ACTIVE',
          transport: doc.transport ?? {},
        }
      : null;
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    const now = this.now();
    const ttl = info ? this.ttlMs : Math.min(this.ttlMs, 1_000);
    this.cache.set(key, { info, due: now + ttl * (0.5 + 0.5 * this.random()), until: now + ttl });
    return info;
  }
}
