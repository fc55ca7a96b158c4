// Keeps the Temporal Schedule that enforces datapoint and event-log retention in line with the configuration, on
// every start.
import {
  type Client,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
} from '@temporalio/client';
import type { RetentionInput } from '../workflows/retention.workflow';

export interface RetentionScheduleOptions {
  readonly taskQueue: string;
  /** 0 keeps datapoints forever. */
  readonly retentionMs: number;
  /** 0 keeps the event log forever. Both 0: the schedule is removed. */
  readonly eventRetentionMs?: number;
  readonly everyMs: number;
}

/** One schedule per task queue, so deployments sharing a namespace each clean their own inventory. */
export const retentionScheduleId = (taskQueue: string): string => `twinflow-retention/${taskQueue}`;

export type RetentionScheduleChange = 'created' | 'updated' | 'removed' | 'none';

export async function ensureRetentionSchedule(
  client: Client,
  o: RetentionScheduleOptions,
): Promise<RetentionScheduleChange> {
  const scheduleId = retentionScheduleId(o.taskQueue);
  const events = o.eventRetentionMs ?? 0;
  if (o.retentionMs === 0 && events === 0) {
    try {
      await client.schedule.getHandle(scheduleId).delete();
      return 'removed';
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return 'none';
      throw err;
    }
  }
  const input: RetentionInput = {
    retentionMs: o.retentionMs,
    ...(events > 0 ? { eventRetentionMs: events } : {}),
  };
  const spec = { intervals: [{ every: o.everyMs }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'retentionWorkflow',
    workflowId: `retention/${o.taskQueue}`,
    taskQueue: o.taskQueue,
    args: [input],
  };
  try {
    await client.schedule.create({
      scheduleId,
      spec,
      action,
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      memo: { purpose: 'TwinFlow datapoint and event-log retention' },
    });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action }));
  return 'updated';
}
