// The job workflow's state holder: its progress, the control handlers, and one step of the rollout at a time.
import {
  ApplicationFailure,
  condition,
  proxyLocalActivities,
  setCurrentDetails,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  type Control,
  type JobOrder,
  type JobProgress,
  type JobTarget,
  type Rollout,
  addTargets,
  afterFinished,
  afterStarted,
  control,
  evaluate,
  isJobFinal,
  nextOpening,
  nextRateSlot,
  pastDeadline,
  startBudget,
  startProgress,
  stopTimePassed,
  windowOpen,
} from '../twins/job-plan';
import { TWINFLOW_STATUS } from './search-attributes';

export interface JobInput {
  readonly org: string;
  readonly jobId: string;
  readonly actor: string;
  readonly order: JobOrder;
  readonly target: JobTarget;
  readonly rollout: Rollout;
  /** The longest pause between two looks at the running operations (ms); shorter while they end fast. */
  readonly pollMs?: number;
  /** A continuous job resolves its filter again this often (ms). */
  readonly refreshMs?: number;
  /** Continue as new past this many history events (tests set it low). */
  readonly maxHistory?: number;
  /** Carried over continue-as-new. */
  readonly carried?: JobCarried;
}

export interface JobCarried {
  readonly progress: JobProgress;
  readonly cancelSent: boolean;
  readonly skipped: boolean;
}

const MIN_POLL_MS = 50;
/**
 * Devices one start activity requests at most: the workflow answers queries and controls between two batches, so a
 * smaller batch keeps them prompt (a batch of 200 took 7-10 s on a busy 2-core machine).
 */
const START_BATCH = 50;
const DEFAULT_POLL_MS = 1_000;
const DEFAULT_REFRESH_MS = 5_000;

const acts = proxyLocalActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '10 seconds' },
});

export function describeJob(p: JobProgress, name: string): string {
  const done = p.total - p.counts.PENDING - p.counts.STARTED;
  const why = p.reason ? ` · ${p.reason}` : '';
  return `${name} · ${p.status} · ${done}/${p.total} done, ${p.counts.SUCCESSFUL} successful, ${p.inFlight.length} running · wave ${p.wave + 1}${why}`;
}

export class JobRun {
  progress!: JobProgress;
  private written: JobProgress | undefined;
  /** A control changed the progress: the loop wakes. */
  private poked = false;
  /** A start batch is under way: controls wait for it, so its devices are counted before a cancel skips the rest. */
  private starting = false;
  cancelSent: boolean;
  skipped: boolean;
  private nextRefresh = 0;
  private pollDelay = MIN_POLL_MS;

  constructor(readonly input: JobInput) {
    this.cancelSent = input.carried?.cancelSent ?? false;
    this.skipped = input.carried?.skipped ?? false;
    if (input.carried) this.setProgress(input.carried.progress);
  }

  private get continuous(): boolean {
    return this.input.target.kind === 'filter' && this.input.target.continuous;
  }

  private setProgress(next: JobProgress): void {
    if (next.status !== this.progress?.status)
      upsertSearchAttributes([{ key: TWINFLOW_STATUS, value: next.status }]);
    this.progress = next;
    setCurrentDetails(describeJob(next, this.input.order.name));
  }

  /** The first run: the targets (a filter is resolved now), then the waves over them. */
  async begin(): Promise<void> {
    if (this.input.carried) return;
    const { org, jobId, target } = this.input;
    const total =
      target.kind === 'ids' ? target.count : await acts.resolveJobTargets(org, jobId, target.filter);
    this.setProgress(startProgress(this.input.rollout, total, Date.now()));
    this.nextRefresh = Date.now() + (this.input.refreshMs ?? DEFAULT_REFRESH_MS);
    await this.writeIfChanged();
  }

  validate(c: Control): void {
    if (this.progress && isJobFinal(this.progress.status))
      throw ApplicationFailure.create({
        type: 'CONFLICT',
        message: `the job has already ended (${this.progress.status})`,
        nonRetryable: true,
      });
    if (c.kind === 'rate') {
      const badRate = typeof c.ratePerMinute === 'number' && !(c.ratePerMinute >= 1);
      const badInFlight = c.maxInFlight !== undefined && !(c.maxInFlight >= 1);
      if (badRate || badInFlight)
        throw ApplicationFailure.create({
          type: 'INVALID_ARGUMENT',
          message: 'rates are at least 1',
          nonRetryable: true,
        });
    }
  }

  async control(c: Control): Promise<JobProgress> {
    await condition(() => this.progress !== undefined && !this.starting);
    const result = control(this.progress, c, Date.now());
    if (!result.ok)
      throw ApplicationFailure.create({ type: result.code, message: result.message, nonRetryable: true });
    this.setProgress(result.progress);
    this.poked = true;
    return this.progress;
  }

  /** Over, with nothing left to tell the store or the twins. */
  get ended(): boolean {
    const p = this.progress;
    return (
      isJobFinal(p.status) && p.inFlight.length === 0 && this.skipped && (!p.cancelRunning || this.cancelSent)
    );
  }

  /** One round: take new devices, start what the rollout allows, learn what ended, decide, record. */
  async step(): Promise<void> {
    const { org, jobId } = this.input;
    const before = this.progress;
    if (this.continuous && !isJobFinal(this.progress.status) && Date.now() >= this.nextRefresh) {
      if (this.input.target.kind === 'filter') {
        const total = await acts.resolveJobTargets(org, jobId, this.input.target.filter);
        this.setProgress(addTargets(this.progress, total));
      }
      this.nextRefresh = Date.now() + (this.input.refreshMs ?? DEFAULT_REFRESH_MS);
    }
    if (isJobFinal(this.progress.status)) await this.wrapUp();
    else await this.startSome();
    await this.poll();
    this.setProgress(evaluate(this.progress, this.input.rollout, this.continuous, Date.now()));
    await this.writeIfChanged();
    const moved = this.progress.counts !== before.counts || this.progress.nextSeq !== before.nextSeq;
    this.pollDelay = moved ? MIN_POLL_MS : Math.min(this.pollDelay * 2, this.input.pollMs ?? DEFAULT_POLL_MS);
  }

  private async startSome(): Promise<void> {
    const window = this.input.rollout.window;
    if (window && !windowOpen(window, Date.now())) return;
    if (stopTimePassed(this.input.rollout, Date.now())) return;
    const count = Math.min(START_BATCH, startBudget(this.progress, Date.now()));
    if (count <= 0) return;
    const { org, jobId, actor, order } = this.input;
    const fromSeq = this.progress.nextSeq;
    this.starting = true;
    try {
      const results = await acts.startJobTargets({ org, jobId, actor, order, fromSeq, count });
      this.setProgress(afterStarted(this.progress, count, results, Date.now()));
    } finally {
      this.starting = false;
    }
  }

  private async poll(): Promise<void> {
    const p = this.progress;
    if (p.inFlight.length === 0) return;
    const overdue = pastDeadline(p, this.input.rollout.deviceDeadlineMs, Date.now()).map((f) => f.seq);
    const { org, jobId, actor, order } = this.input;
    const inFlight = p.inFlight.map(({ seq, deviceId, operationId, startedAt }) => ({
      seq,
      deviceId,
      operationId,
      startedAt,
    }));
    // A request lost on its way to a twin is asked again, unless the job has ended meanwhile.
    const askAgain = !isJobFinal(p.status);
    const ended = await acts.pollJobOperations({ org, jobId, actor, order, inFlight, overdue, askAgain });
    if (ended.length > 0) this.setProgress(afterFinished(this.progress, ended));
  }

  /** The job has ended: what was not started is skipped; running operations are cancelled when asked. */
  private async wrapUp(): Promise<void> {
    const { org, jobId, actor } = this.input;
    if (!this.skipped) {
      await acts.skipJobTargets(org, jobId, 0);
      this.skipped = true;
    }
    if (this.progress.cancelRunning && !this.cancelSent) {
      const ids = this.progress.inFlight.map((f) => f.operationId);
      if (ids.length > 0) await acts.cancelJobOperations(org, ids, actor);
      this.cancelSent = true;
    }
  }

  async writeIfChanged(): Promise<void> {
    const p = this.progress;
    if (p === this.written) return;
    await acts.writeJobProgress(this.input.org, this.input.jobId, p);
    this.written = p;
  }

  /** Waits for the next look: a poll, the window's opening, a rate slot, a refresh, the stop time, or a control. */
  async sleep(): Promise<void> {
    const p = this.progress;
    // Ended with its wrap-up still to do: no wait.
    if (isJobFinal(p.status) && (!this.skipped || (p.cancelRunning && !this.cancelSent))) return;
    const now = Date.now();
    const wakes: number[] = [];
    if (p.inFlight.length > 0) wakes.push(now + this.pollDelay);
    if (!isJobFinal(p.status) && p.status === 'RUNNING' && p.nextSeq < p.total) {
      const window = this.input.rollout.window;
      if (window && !windowOpen(window, now)) wakes.push(nextOpening(window, now));
      else wakes.push(nextRateSlot(p, now) ?? now + this.pollDelay);
    }
    if (this.continuous && !isJobFinal(p.status)) wakes.push(this.nextRefresh);
    // A job with a stop time wakes for it, paused or waiting for an approval too.
    const stopAt = this.input.rollout.stopAt;
    if (stopAt !== undefined && !isJobFinal(p.status)) wakes.push(stopAt);
    this.poked = false;
    if (wakes.length === 0) {
      await condition(() => this.poked);
      return;
    }
    const ms = Math.min(...wakes) - now;
    if (ms > 0) await condition(() => this.poked, ms);
  }

  carried(): JobCarried {
    return { progress: this.progress, cancelSent: this.cancelSent, skipped: this.skipped };
  }
}
