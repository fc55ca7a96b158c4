// Retention, run by a Temporal Schedule: deletes the datapoint history that ended before its cutoff, and the
// events logged before theirs.
import { log, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';

export interface RetentionInput {
  /** How long datapoints are kept, ms (counted from each datapoint's `at`); 0: forever. */
  readonly retentionMs: number;
  /** How long the event log keeps an event, ms (counted from its `at`); absent or 0: forever. */
  readonly eventRetentionMs?: number;
}

export interface RetentionResult {
  readonly cutoff: number;
  readonly deleted: number;
  readonly eventCutoff?: number;
  readonly eventsDeleted?: number;
}

const { deleteExpiredDatapoints, deleteExpiredEvents } = proxyActivities<ReturnType<typeof createActivities>>(
  {
    startToCloseTimeout: '30 minutes',
    retry: { initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: 10 },
  },
);

export async function retentionWorkflow(input: RetentionInput): Promise<RetentionResult> {
  // Workflow time is the time this run started, recorded in its history.
  const cutoff = Date.now() - input.retentionMs;
  // Runs recorded before the event log always deleted datapoints; a schedule for events alone passes 0.
  const deleted =
    input.retentionMs > 0 || !input.eventRetentionMs ? await deleteExpiredDatapoints(cutoff) : 0;
  log.info('datapoint retention', { cutoff, deleted });
  if (!input.eventRetentionMs) return { cutoff, deleted };
  const eventCutoff = Date.now() - input.eventRetentionMs;
  const eventsDeleted = await deleteExpiredEvents(eventCutoff);
  log.info('event-log retention', { cutoff: eventCutoff, deleted: eventsDeleted });
  return { cutoff, deleted, eventCutoff, eventsDeleted };
}
