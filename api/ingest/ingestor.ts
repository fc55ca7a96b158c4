// The ingest pipeline shared by HTTP and MQTT: resolve the device, store datapoints and latest values, then tell the twin.
import type { DatapointDoc, LatestValueDoc } from '../../inventory/documents';
import type { DatapointRepository } from '../../inventory/datapoints.repo';
import type { DeviceRepository } from '../../inventory/devices.repo';
import { toStoredValue } from '../../inventory/storable';
import { type Channel, type Datapoint, datastreamKey } from '../../twins/types';
import type { Principal } from '../context';
import { ApiError } from '../errors';
import { type CollectBody, MAX_DATAPOINTS_PER_MESSAGE, toDatapoints } from './collect.schema';
import type { DeviceDirectory } from './device-directory';
import type { LatestValueGuard } from './latest-value-guard';
import type { TwinNotifier } from './twin-notifier';

export interface IngestorDeps {
  readonly devices: DeviceRepository;
  readonly datapoints: DatapointRepository;
  readonly directory: DeviceDirectory;
  readonly notifier: TwinNotifier;
  readonly latestGuard: LatestValueGuard;
  readonly now: () => number;
}

export interface IngestResult {
  readonly deviceId: string;
  readonly stored: number;
}

export class Ingestor {
  constructor(private readonly deps: IngestorDeps) {}

  /**
   * Stores one collect message. Resolves only once the datapoints and the latest values are written;
   * throws ApiError for anything the sender must fix (unknown device, wrong key, too much data).
   */
  async ingest(
    principal: Principal,
    urlDeviceId: string,
    body: CollectBody,
    channel: Channel,
  ): Promise<IngestResult> {
    const deviceId = body.device ?? urlDeviceId;
    if (principal.kind === 'device' && (principal.deviceId !== urlDeviceId || deviceId !== urlDeviceId)) {
      throw new ApiError('PERMISSION_DENIED', 'a device key may only send data for its own device');
    }
    const device = await this.deps.directory.get(principal.org, deviceId);
    if (!device) throw new ApiError('NOT_FOUND', `device ${deviceId} is not provisioned`);
    if (!device.active) throw new ApiError('GONE', `device ${deviceId} is decommissioned`);

    const receivedAt = this.deps.now();
    const datapoints = toDatapoints(body, receivedAt);
    if (datapoints.length > MAX_DATAPOINTS_PER_MESSAGE) {
      throw new ApiError('PAYLOAD_TOO_LARGE', `at most ${MAX_DATAPOINTS_PER_MESSAGE} datapoints per message`);
    }
    const org = principal.org;
    const docs: DatapointDoc[] = datapoints.map((dp) => ({
      org,
      deviceId,
      ds: dp.datastreamId,
      feed: dp.feed,
      at: dp.at,
      ...(dp.from === undefined ? {} : { from: dp.from }),
      ...toStoredValue(dp.value),
      receivedAt,
    }));
    const newest = newestPerDatastream(datapoints).map((dp): LatestValueDoc => ({
      id: dp.datastreamId,
      feed: dp.feed,
      at: dp.at,
      receivedAt,
      ...toStoredValue(dp.value),
    }));
    const latest = await this.deps.latestGuard.newer(org, deviceId, newest);
    await Promise.all([
      this.deps.datapoints.insertMany(docs),
      this.deps.devices.storeLatest(org, [{ deviceId, values: latest, lastSeenAt: receivedAt }]),
    ]);
    this.deps.notifier.report(org, deviceId, device.twinType, datapoints, channel, receivedAt);
    return { deviceId, stored: datapoints.length };
  }
}

function newestPerDatastream(datapoints: readonly Datapoint[]): Datapoint[] {
  const newest = new Map<string, Datapoint>();
  for (const dp of datapoints) {
    const key = datastreamKey(dp.datastreamId, dp.feed);
    const seen = newest.get(key);
    if (!seen || seen.at <= dp.at) newest.set(key, dp);
  }
  return [...newest.values()];
}
