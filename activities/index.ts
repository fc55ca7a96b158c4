// The worker's activities, built from their dependencies so tests can pass real or other services.
import type { DatapointRepository } from '../inventory/datapoints.repo';
import type { DeviceRepository } from '../inventory/devices.repo';
import type { OperationRepository } from '../inventory/operations.repo';
import type { OperationRecord } from '../twins/operations';
import type { TwinSnapshot } from '../twins/twin-core';
import { deliverOperation } from './delivery';

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
    /** Deletes datapoint history that ended at or before `cutoff` (ms); returns how many documents went. */
    async deleteExpiredDatapoints(cutoff: number): Promise<number> {
      return deps.datapoints.deleteEndedBefore(cutoff);
    },
  };
}
