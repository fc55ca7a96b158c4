// Cached device lookups for the ingest hot path: which devices exist, their twin type, whether they are active.
import type { DeviceTransport } from '../../inventory/documents';
import type { DeviceRepository } from '../../inventory/devices.repo';

export interface DeviceInfo {
  readonly org: string;
  readonly deviceId: string;
  readonly twinType: string;
  readonly active: boolean;
  readonly transport: DeviceTransport;
}

export class DeviceDirectory {
  private readonly cache = new Map<string, { info: DeviceInfo | null; until: number }>();

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
    this.cache.set(key, { info, until: this.now() + (info ? this.ttlMs : Math.min(this.ttlMs, 1_000)) });
    return info;
  }

  forget(org: string, deviceId: string): void {
    this.cache.delete(`${org}/${deviceId}`);
  }
}
