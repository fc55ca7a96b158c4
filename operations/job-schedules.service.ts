// Job schedules: a job started at a time or again and again (cron or interval) by a Temporal Schedule, whose runs
// never overlap (a run lasts until its job has ended; one due meanwhile is skipped). Pause, resume, delete, and
// what ran when.
import { randomBytes } from 'node:crypto';
import {
  type Client,
  type ScheduleDescription,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type ScheduleSpec,
} from '@temporalio/client';
import { checkWindow } from '../twins/job-plan';
import { type Outcome, accepted, refused } from '../twins/outcomes';
import type { ScheduledJobInput } from '../workflows/scheduled-job.workflow';
import type { JobRequest } from './jobs.service';

/** When a schedule starts its job: once at a time, on cron expressions, or every so many ms. */
export type JobTiming =
  | { readonly at: number }
  | { readonly cron: readonly string[]; readonly timeZone?: string }
  | { readonly everyMs: number };

export const SCHEDULE_ID_PATTERN = /^s[a-z0-9]{9}-[a-f0-9]{10}$/;

const temporalScheduleId = (org: string, id: string): string => `job-schedule/${org}/${id}`;

export interface ScheduleView {
  readonly id: string;
  readonly paused: boolean;
  readonly note?: string;
  readonly timing: JobTiming;
  readonly request: JobRequest;
  readonly createdBy: string;
  /** What ran when: each run's due time, start time and job workflow. */
  readonly runs: { scheduledAt: number; startedAt: number; workflowId: string }[];
  readonly next: number[];
}

function specOf(t: JobTiming): ScheduleSpec {
  if ('everyMs' in t) return { intervals: [{ every: t.everyMs }] };
  if ('cron' in t) return { cronExpressions: [...t.cron], ...(t.timeZone ? { timezone: t.timeZone } : {}) };
  // A calendar counts whole seconds: the next one at or after `at`, so a job never starts before its time.
  const d = new Date(Math.ceil(t.at / 1_000) * 1_000);
  return {
    calendars: [
      {
        year: d.getUTCFullYear(),
        month: MONTHS[d.getUTCMonth()]!,
        dayOfMonth: d.getUTCDate(),
        hour: d.getUTCHours(),
        minute: d.getUTCMinutes(),
        second: d.getUTCSeconds(),
      },
    ],
  };
}

const MONTHS = [
  'JANUARY',
  'FEBRUARY',
  'MARCH',
  'APRIL',
  'MAY',
  'JUNE',
  'JULY',
  'AUGUST',
  'SEPTEMBER',
  'OCTOBER',
  'NOVEMBER',
  'DECEMBER',
] as const;

export class JobSchedulesService {
  constructor(private readonly deps: { client: Client; taskQueue: string; now: () => number }) {}

  async create(
    org: string,
    actor: string,
    request: JobRequest,
    timing: JobTiming,
  ): Promise<Outcome<ScheduleView>> {
    const problem = request.rollout.window ? checkWindow(request.rollout.window) : undefined;
    if (problem) return refused('INVALID_ARGUMENT', problem);
    if ('at' in timing && timing.at <= this.deps.now())
      return refused('INVALID_ARGUMENT', '`at` is in the past');
    const stopAt = request.rollout.stopAt;
    if (stopAt !== undefined && !('at' in timing))
      return refused(
        'INVALID_ARGUMENT',
        'a recurring job stops after a time of its own: rollout.stopAfterMs',
      );
    if (stopAt !== undefined && 'at' in timing && stopAt <= timing.at)
      return refused('INVALID_ARGUMENT', 'rollout.stopAt comes before the job starts');
    const id = `s${this.deps.now().toString(36).padStart(9, '0')}-${randomBytes(5).toString('hex')}`;
    const input: ScheduledJobInput = { org, actor, scheduleId: id, request };
    try {
      await this.deps.client.schedule.create({
        scheduleId: temporalScheduleId(org, id),
        spec: specOf(timing),
        action: {
          type: 'startWorkflow',
          workflowType: 'scheduledJobWorkflow',
          workflowId: `job-run/${org}/${id}`,
          taskQueue: this.deps.taskQueue,
          args: [input],
        },
        policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
        ...('at' in timing ? { state: { remainingActions: 1 } } : {}),
        memo: { org, createdBy: actor, timing },
      });
    } catch (err) {
      // The server refuses a spec it cannot parse (a bad cron expression or time zone).
      if (err instanceof Error && /invalid|parse/i.test(err.message))
        return refused('INVALID_ARGUMENT', err.message);
      throw err;
    }
    return this.get(org, id);
  }

  async get(org: string, id: string): Promise<Outcome<ScheduleView>> {
    const d = await this.describe(org, id);
    return d ? accepted(view(id, d)) : refused('NOT_FOUND', `schedule ${id} not found`);
  }

  private async describe(org: string, id: string): Promise<ScheduleDescription | undefined> {
    if (!SCHEDULE_ID_PATTERN.test(id)) return undefined;
    try {
      return await this.deps.client.schedule.getHandle(temporalScheduleId(org, id)).describe();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return undefined;
      throw err;
    }
  }

  async list(org: string): Promise<ScheduleView[]> {
    const out: ScheduleView[] = [];
    const prefix = temporalScheduleId(org, '');
    for await (const s of this.deps.client.schedule.list()) {
      if (!s.scheduleId.startsWith(prefix)) continue;
      const got = await this.get(org, s.scheduleId.slice(prefix.length));
      if (got.ok) out.push(got.value);
    }
    return out;
  }

  async pause(org: string, id: string, paused: boolean): Promise<Outcome<ScheduleView>> {
    if (!(await this.describe(org, id))) return refused('NOT_FOUND', `schedule ${id} not found`);
    const handle = this.deps.client.schedule.getHandle(temporalScheduleId(org, id));
    await (paused ? handle.pause('paused through the API') : handle.unpause('resumed through the API'));
    return this.get(org, id);
  }

  async delete(org: string, id: string): Promise<Outcome<{ id: string }>> {
    if (!(await this.describe(org, id))) return refused('NOT_FOUND', `schedule ${id} not found`);
    await this.deps.client.schedule.getHandle(temporalScheduleId(org, id)).delete();
    return accepted({ id });
  }
}

function view(id: string, d: ScheduleDescription): ScheduleView {
  const memo = (d.memo ?? {}) as { createdBy?: string; timing?: JobTiming };
  const action = d.action.type === 'startWorkflow' ? d.action : undefined;
  const input = action?.args?.[0] as ScheduledJobInput | undefined;
  return {
    id,
    paused: d.state.paused,
    ...(d.state.note ? { note: d.state.note } : {}),
    timing: memo.timing ?? { everyMs: 0 },
    request: input?.request as JobRequest,
    createdBy: memo.createdBy ?? '',
    runs: d.info.recentActions.map((a) => ({
      scheduledAt: a.scheduledAt.getTime(),
      startedAt: a.takenAt.getTime(),
      workflowId: a.action.workflow.workflowId,
    })),
    next: d.info.nextActionTimes.map((t) => t.getTime()),
  };
}
