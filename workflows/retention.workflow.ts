// Datapoint retention, run by a Temporal Schedule: deletes the history that ended before the cutoff.
import { log, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';

export interface RetentionInput {
  /** How long datapoints are kept, ms (counted from each datapoint's `at`). */
  readonly retentionMs: number;
}

export interface RetentionResult {
  readonly cutoff: number;
  readonly deleted: number;
}

const { deleteExpiredDatapoints } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: 10 },
});

export async function retentionWorkflow(input: RetentionInput): Promise<RetentionResult> {
  // Workflow time is the time this run started, recorded in its history.
  const cutoff = Date.now() - input.retentionMs;
  const deleted = await deleteExpiredDatapoints(cutoff);
  log.info('datapoint retention', { cutoff, deleted });
  return { cutoff, deleted };
}
