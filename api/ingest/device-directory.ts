// Cached device lookups for the ingest hot path: which devices exist, their twin type, whether they are active.
import type { DeviceDoc, DeviceTransport } from '../../inventory/documents';
import type { DeviceRepository } from '../../inventory/devices.repo';

export interface DeviceInfo {
  readonly org: string;
  readonly deviceId: string;
  readonly twinType: string;
  readonly active: boolean;
  readonly transport: DeviceTransport;
}

/** Misses looked up one by one below this many at once; above it, in one query per organization. */
const BATCH_FROM = 16;
/** Ids per batched query at most. */
const BATCH_MAX = 1_000;

export class DeviceDirectory {
  private readonly cache = new Map<string, { info: DeviceInfo | null; until: number }>();
  /** Lookups in flight, so concurrent messages of one device share one. */
  private readonly inFlight = new Map<string, Promise<DeviceInfo | null>>();
  /** Misses of this turn of the event loop, looked up together. */
  private queued: {
    org: string;
    deviceId: string;
    resolve: (d: DeviceDoc | null) => void;
    reject: (e: unknown) => void;
  }[] = [];

  constructor(
    private readonly devices: DeviceRepository,
    private readonly ttlMs = 10_000,
    private readonly maxEntries = 200_000,
    private readonly now: () => number = Date.now,
  ) {}

  async get(org: string, deviceId: string): Promise<DeviceInfo | null> {
    const key = `${org}/${deviceId}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return hit.info;
    let lookup = this.inFlight.get(key);
    if (!lookup) {
      lookup = this.lookUp(org, deviceId).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, lookup);
    }
    return lookup;
  }

  forget(org: string, deviceId: string): void {
    this.cache.delete(`${org}/${deviceId}`);
  }

  private async lookUp(org: string, deviceId: string): Promise<DeviceInfo | null> {
    const doc = await new Promise<DeviceDoc | null>((resolve, reject) => {
      if (this.queued.length === 0) setImmediate(() => void this.flush());
      this.queued.push({ org, deviceId, resolve, reject });
    });
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
    // Unknown devices are remembered briefly too, so a flood for a missing id does not reach MongoDB each time.
    this.cache.set(`${org}/${deviceId}`, {
      info,
      until: this.now() + (info ? this.ttlMs : Math.min(this.ttlMs, 1_000)),
    });
    return info;
  }

  /**
   * Looks up this turn's misses: a few one by one (each an `_id` lookup), many in one `$in` query per
   * organization. Thousands of devices waking at once (a fleet reconnecting, a cache expiring) cost the
   * store a handful of queries instead of thousands of round trips.
   */
  private async flush(): Promise<void> {
    const queued = this.queued;
    this.queued = [];
    const byOrg = new Map<string, typeof queued>();
    for (const q of queued) byOrg.set(q.org, [...(byOrg.get(q.org) ?? []), q]);
    await Promise.all(
      [...byOrg].map(async ([org, items]) => {
        try {
          if (items.length < BATCH_FROM) {
            await Promise.all(items.map(async (q) => q.resolve(await this.devices.get(org, q.deviceId))));
            return;
          }
          for (let i = 0; i < items.length; i += BATCH_MAX) {
            const slice = items.slice(i, i + BATCH_MAX);
            const found = await this.devices.getMany(
              org,
              slice.map((q) => q.deviceId),
            );
            for (const q of slice) q.resolve(found.get(q.deviceId) ?? null);
          }
        } catch (err) {
          for (const q of items) q.reject(err);
        }
      }),
    );
  }
}
