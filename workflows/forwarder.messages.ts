// Message definitions of the forwarder workflow. No other imports, so the API can use them without workflow code.
import { defineQuery, defineSignal } from '@temporalio/workflow';

/** The forwarder was resumed: deliver again now rather than at the next check. */
export const resumeForwarderSignal = defineSignal('resumeForwarder');
/** The last event seq the forwarder is done with. */
export const getForwarderCursorQuery = defineQuery<number>('getForwarderCursor');
