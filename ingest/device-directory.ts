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

/**
 * Cached device lookups. A device's entry lives `ttlMs` (30 s by default): the process that changes a device
 * forgets it at once; other processes see the change within that time. Each refresh is one `_id` lookup, so
 * the time to live bounds the store's load from a fleet (10,000 devices: about 330 lookups/s at 30 s).
 * Concurrent messages of one device share one lookup. (A batched `$in` lookup looked cheaper, but the
 * embedded FerretDB answers it by scanning and parsing every device document, seconds at 10,000 devices.)
 */
export class DeviceDirectory {
  private readonly cache = new Map<string, { info: DeviceInfo | null; until: number }>();
  /** Lookups in flight, so concurrent messages of one device share one. */
  private readonly inFlight = new Map<string, Promise<DeviceInfo | null>>();

  constructor(
    private readonly devices: DeviceRepository,
    private readonly ttlMs = 30_000,
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
    const doc = await this.devices.get(org, deviceId);
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
}
