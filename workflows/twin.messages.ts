// Message definitions of the twin workflow. No other imports, so the API can use them without workflow code.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ProfilePatch, TelemetryBatch, TwinState } from '../twins/twin-core';
import type { DeviceProfile } from '../twins/types';

/** Stored datapoints, coalesced: fire-and-forget, idempotent by batchId. */
export const reportTelemetrySignal = defineSignal<[TelemetryBatch]>('reportTelemetry');
export const getTwinStateQuery = defineQuery<TwinState>('getTwinState');
/** Change name, tags or attributes; answers the new profile. */
export const updateProfileUpdate = defineUpdate<DeviceProfile, [ProfilePatch]>('updateProfile');
/** End the twin: it publishes its last snapshot and completes. */
export const decommissionUpdate = defineUpdate<TwinState, []>('decommission');
