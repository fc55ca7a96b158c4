// The worker's activities, built from their dependencies so tests can pass real or other services.
import type { DatapointRepository } from '../inventory/datapoints.repo';
import type { DeviceRepository } from '../inventory/devices.repo';
import type { OperationRepository } from '../inventory/operations.repo';
import type { OperationRecord } from '../twins/operations';
import type { TwinSnapshot } from '../twins/twin-core';
import { type DeliveryOutcome, type DeliveryRequest, deliverOperation } from './delivery';

export interface ActivityDeps {
  readonly devices: DeviceRepository;
  readonly operations: OperationRepository;
  readonly datapoints: DatapointRepository;
}

export function createActivities(deps: ActivityDeps) {
  return {
    /** Publishes a twin's snapshot to the read model (the twin publishes one at a time, in order). */
    async publishTwinSnapshot(org: string, deviceId: string, snapshot: TwinSnapshot): Promise<void> {
      await deps.devices.writeTwinSnapshot(org, deviceId, snapshot);
    },
    /** Writes an operation's record to the read model (its workflow writes one revision at a time). */
    async writeOperationRecord(record: OperationRecord): Promise<void> {
      await deps.operations.write(record);
    },
    deliverOperation,
    /** The first record of an operation the twin accepted (never replaces a later one). */
    async admitOperationRecord(record: OperationRecord): Promise<void> {
      await deps.operations.insertFirst(record);
    },
    /**
     * The twin's first push of an operation whose turn came at once: the first record, then one try at the
     * device. A transport failure answers `unreachable` at once; the operation's workflow retries.
     */
    async pushOperationOnce(record: OperationRecord, delivery: DeliveryRequest): Promise<DeliveryOutcome> {
      await deps.operations.insertFirst(record);
      return deliverOperation({ ...delivery, once: true });
    },
    /** How many operations wait for the device's next poll (the twin writes one at a time, in order). */
    async writePendingMarker(org: string, deviceId: string, waiting: number): Promise<void> {
      await deps.operations.writePendingMarker(org, deviceId, waiting, Date.now());
    },
    /** Deletes datapoint history that ended at or before `cutoff` (ms); returns how many documents went. */
    async deleteExpiredDatapoints(cutoff: number): Promise<number> {
      return deps.datapoints.deleteEndedBefore(cutoff);
    },
  };
}
