// Keeps an older datapoint from replacing a newer latest value, without a conditional update per datastream.
import { encodeDatastreamKey } from '../inventory/datastream-key';

export interface LatestValueGuardDeps {
  /** Stored `at` per encoded datastream key, read once per device when the guard has not seen it. */
  loadTimes(org: string, deviceId: string): Promise<Map<string, number>>;
}

/**
 * Remembers the newest `at` this process has written per device and datastream. Another API instance writing
 * the same device at the same moment can still interleave; that only matters for out-of-order data and the
 * next newer reading repairs it.
 */
export class LatestValueGuard {
  private readonly devices = new Map<string, Map<string, number>>();

  constructor(
    private readonly deps: LatestValueGuardDeps,
    private readonly maxDevices = 200_000,
  ) {}

  /** The values that are newer than what is stored; records them as stored. */
  async newer<T extends { id: string; feed: string; at: number }>(
    org: string,
    deviceId: string,
    values: readonly T[],
  ): Promise<T[]> {
    const key = `${org}/${deviceId}`;
    let times = this.devices.get(key);
    if (!times) {
      times = await this.deps.loadTimes(org, deviceId);
      if (this.devices.size >= this.maxDevices) this.devices.clear();
      this.devices.set(key, times);
    }
    const out: T[] = [];
    for (const v of values) {
      const k = encodeDatastreamKey(v.id, v.feed);
      const known = times.get(k);
      if (known !== undefined && known > v.at) continue;
      times.set(k, v.at);
      out.push(v);
    }
    return out;
  }

  forget(org: string, deviceId: string): void {
    this.devices.delete(`${org}/${deviceId}`);
  }
}
