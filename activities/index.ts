// The worker's activities, built from their dependencies so tests can pass real or other services.
import type { DeviceRepository } from '../inventory/devices.repo';
import type { TwinSnapshot } from '../twins/twin-core';

export interface ActivityDeps {
  readonly devices: DeviceRepository;
}

export function createActivities(deps: ActivityDeps) {
  return {
    /** Publishes a twin's snapshot to the read model; an older snapshot never replaces a newer one. */
    async publishTwinSnapshot(org: string, deviceId: string, snapshot: TwinSnapshot): Promise<void> {
      await deps.devices.writeTwinSnapshot(org, deviceId, snapshot);
    },
  };
}
