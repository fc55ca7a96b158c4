// Message definitions of the twin workflow. No other imports, so the API can use them without workflow code.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  DeviceResponse,
  OperationRecord,
  OperationRequest,
  OperationStatus,
  RequestEnvelope,
} from '../twins/operations';
import type { ProfilePatch, TelemetryBatch, TwinState } from '../twins/twin-core';
import type { AlarmRecord } from '../twins/behaviours';
import type { DesiredView } from '../twins/desired';
import type { DeviceProfile } from '../twins/types';

/** Stored datapoints, coalesced: fire-and-forget, idempotent by batchId. */
export const reportTelemetrySignal = defineSignal<[TelemetryBatch]>('reportTelemetry');
export const getTwinStateQuery = defineQuery<TwinState>('getTwinState');
/** Change name, tags or attributes; answers the new profile. */
export const updateProfileUpdate = defineUpdate<DeviceProfile, [ProfilePatch]>('updateProfile');
/** End the twin: it publishes its last snapshot and completes. */
export const decommissionUpdate = defineUpdate<TwinState, []>('decommission');

/** What requestOperation answers: duplicate when the id was already known (nothing new was queued). */
export interface OperationAdmission {
  readonly id: string;
  readonly duplicate: boolean;
  /**
   * The record the twin wrote before answering: the final one when the twin pushed the operation and the device
   * answered at once, else the first. Absent when the twin did not write it (a duplicate, or a twin run that
   * began before twins wrote records).
   */
  readonly record?: OperationRecord;
}

/** Queue an operation; the twin checks it against the type's catalogue and starts its workflow. */
export const requestOperationUpdate = defineUpdate<OperationAdmission, [OperationRequest]>(
  'requestOperation',
);
/** A device polls: the waiting operations are handed over, each once. */
export const claimPendingOperationsUpdate = defineUpdate<RequestEnvelope[], [{ limit: number }]>(
  'claimPendingOperations',
);
/**
 * A device's response for an operation that has no workflow yet (the twin is pushing it or starting its workflow):
 * the twin holds it or passes it on. Refused with NOT_FOUND when the operation is not open on the twin.
 */
export const forwardOperationResponseUpdate = defineUpdate<
  void,
  [{ id: string; response: DeviceResponse; receivedAt: number }]
>('forwardOperationResponse');
/** Cancel an open operation; answers once the operation workflow has been told. */
export const cancelOperationUpdate = defineUpdate<void, [{ id: string; by: string }]>('cancelOperation');
/** From an operation workflow: it ended, the next one may run. */
export const operationEndedSignal =
  defineSignal<
    [{ id: string; status: OperationStatus; resultCode?: string | null; resultDescription?: string | null }]
  >('operationEnded');
/** From an operation workflow: a pending operation waits for the next poll again (another attempt). */
export const operationWaitingSignal = defineSignal<[{ id: string }]>('operationWaiting');

/** An operator acknowledges or clears one of the device's alarms; answers the alarm once it is stored. */
export interface AlarmAction {
  readonly name: string;
  readonly action: 'acknowledge' | 'clear';
  readonly by: string;
}
export const alarmActionUpdate = defineUpdate<AlarmRecord, [AlarmAction]>('alarmAction');

/** An operator's change of the desired state (JSON merge: null removes a key); answers the new desired view. */
export interface DesiredPatch {
  readonly values: Readonly<Record<string, unknown>>;
  /** The version the change is based on (If-Match); a newer one refuses it with PRECONDITION_FAILED. */
  readonly ifVersion?: number;
  readonly by: string;
}
export const setDesiredUpdate = defineUpdate<DesiredView | null, [DesiredPatch]>('setDesired');
