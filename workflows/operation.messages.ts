// Message definitions of the operation workflow. No other imports, so the API can use them without workflow code.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { DeviceResponse, OperationRecord } from '../twins/operations';

/** A device's partial or final response; a response after the end is counted as late and changes nothing. */
export const reportResponseSignal =
  defineSignal<[{ response: DeviceResponse; receivedAt: number }]>('reportResponse');
/** From the twin: a queued pushed operation's turn has come. */
export const proceedSignal = defineSignal('proceed');
/** From the twin: the device took this pending operation at a poll. */
export const handedOverSignal = defineSignal<[{ at: number }]>('handedOver');
/** From the twin: end the operation as CANCELLED (only the twin sends it, so the queue stays consistent). */
export const cancelRequestedSignal = defineSignal<[{ by: string }]>('cancelRequested');
export const getOperationQuery = defineQuery<OperationRecord>('getOperation');
