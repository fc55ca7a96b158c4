// A forwarder: one long-running workflow per destination, holding its cursor in the organization's event log.
// Each turn is one activity that long-polls the log, delivers what matches in order and answers the new cursor,
// so an idle forwarder costs one workflow task per poll window and a busy one one per batch.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ForwarderActivities } from '../forwarders/forwarder.activities';
import { getForwarderCursorQuery, resumeForwarderSignal } from './forwarder.messages';

export interface ForwarderTiming {
  /** A worker that stops heartbeating this long is taken as dead; its round runs again elsewhere. */
  readonly heartbeatMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

export interface ForwarderInput {
  readonly org: string;
  readonly id: string;
  readonly cursor: number;
  readonly timing: ForwarderTiming;
  /** Continue as new past this many history events (tests set it low). */
  readonly maxHistory?: number;
}

/** A paused forwarder looks at its status this often even without a resume signal. */
const PAUSED_CHECK = '5 minutes';
const MAX_HISTORY = 4_000;

export async function forwarderWorkflow(input: ForwarderInput): Promise<void> {
  const { forwardEvents } = proxyActivities<ForwarderActivities>({
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: input.timing.heartbeatMs,
    // Unlimited attempts: the round itself pauses the forwarder after enough of them failed.
    retry: {
      initialInterval: input.timing.retryInitialMs,
      maximumInterval: input.timing.retryMaxMs,
      backoffCoefficient: 2,
    },
  });
  let cursor = input.cursor;
  let resumed = false;
  setHandler(getForwarderCursorQuery, () => cursor);
  setHandler(resumeForwarderSignal, () => void (resumed = true));
  for (;;) {
    const round = await forwardEvents({ org: input.org, id: input.id, cursor });
    cursor = round.cursor;
    if (round.state === 'deleted') return;
    if (round.state === 'paused') {
      await condition(() => resumed, PAUSED_CHECK);
      resumed = false;
    }
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= (input.maxHistory ?? MAX_HISTORY)) {
      await condition(allHandlersFinished);
      return await continueAsNew<typeof forwarderWorkflow>({ ...input, cursor });
    }
  }
}
