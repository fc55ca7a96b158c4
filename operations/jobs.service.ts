// The jobs service: create a job (its targets and its workflow), read it live or from the store, list it and its
// executions, and control it through the job workflow's Update. Returns typed outcomes, never statuses.
import { randomBytes } from 'node:crypto';
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { JobDoc, JobFilter, JobOrder, JobTarget } from '../inventory/documents';
import type { JobRepository } from '../inventory/jobs.repo';
import { type Control, type JobProgress, type Rollout, checkWindow, isJobFinal } from '../twins/job-plan';
import { type Outcome, accepted, refused } from '../twins/outcomes';
import { jobWorkflowId } from '../workflows/ids';
import type { JobInput } from '../workflows/job-run';
import { controlJobUpdate, getJobProgressQuery } from '../workflows/job.messages';
import type { jobWorkflow } from '../workflows/job.workflow';
import {
  TWINFLOW_JOB,
  TWINFLOW_OPERATION,
  TWINFLOW_ORG,
  TWINFLOW_STATUS,
} from '../workflows/search-attributes';

/** Explicit ids: at most this many per job. */
export const MAX_JOB_DEVICES = 100_000;

export interface JobRequest {
  readonly order: JobOrder;
  readonly target:
    { readonly deviceIds: readonly string[] } | { readonly filter: JobFilter; readonly continuous?: boolean };
  readonly rollout: Rollout;
  /** Tests and benchmarks: the longest pause between looks at running operations, and the refresh period. */
  readonly pollMs?: number;
  readonly refreshMs?: number;
  readonly maxHistory?: number;
}

export interface JobsServiceDeps {
  readonly client: Client;
  readonly jobs: JobRepository;
  readonly taskQueue: string;
  readonly now: () => number;
}

/** Job ids sort by creation time (the list is newest first by id): time in base 36, then randomness. */
export function newJobId(now: number): string {
  return `${now.toString(36).padStart(9, '0')}-${randomBytes(5).toString('hex')}`;
}

export const JOB_ID_PATTERN = /^[a-z0-9]{9}-[a-f0-9]{10}$/;

/** The search attributes a job workflow starts with. */
export const jobSearchAttributes = (org: string, jobId: string, operation: string) => [
  { key: TWINFLOW_ORG, value: org },
  { key: TWINFLOW_JOB, value: jobId },
  { key: TWINFLOW_OPERATION, value: operation },
  { key: TWINFLOW_STATUS, value: 'RUNNING' },
];

/** A job as the API shows it: its document with the freshest progress. */
export interface JobView {
  readonly doc: JobDoc;
  readonly progress: JobProgress | undefined;
}

export class JobsService {
  constructor(private readonly deps: JobsServiceDeps) {}

  async create(org: string, actor: string, req: JobRequest): Promise<Outcome<JobView>> {
    const prepared = await this.prepare(org, actor, req, newJobId(this.deps.now()));
    if (!prepared.ok) return prepared;
    await this.start(prepared.value.doc, prepared.value.input);
    return accepted({ doc: prepared.value.doc, progress: undefined });
  }

  /**
   * Stores the job and its explicit targets (a job stored already is kept: a scheduled run's activity may run
   * twice) and answers the job workflow's input.
   */
  async prepare(
    org: string,
    actor: string,
    req: JobRequest,
    id: string,
    scheduleId?: string,
  ): Promise<Outcome<{ doc: JobDoc; input: JobInput }>> {
    const problem = req.rollout.window ? checkWindow(req.rollout.window) : undefined;
    if (problem) return refused('INVALID_ARGUMENT', problem);
    const now = this.deps.now();
    const rollout = withStopTime(req.rollout, now);
    if (!rollout.ok) return rollout;
    let target: JobTarget;
    let ids: string[] = [];
    if ('deviceIds' in req.target) {
      ids = [...new Set(req.target.deviceIds)];
      if (ids.length > MAX_JOB_DEVICES)
        return refused('INVALID_ARGUMENT', `at most ${MAX_JOB_DEVICES} devices per job`);
      target = { kind: 'ids', count: ids.length };
    } else {
      target = { kind: 'filter', filter: req.target.filter, continuous: req.target.continuous ?? false };
    }
    const doc: JobDoc = {
      _id: `${org}/${id}`,
      org,
      id,
      order: req.order,
      target,
      rollout: rollout.value,
      requestedBy: actor,
      createdAt: now,
      ...(scheduleId !== undefined ? { scheduleId } : {}),
      status: 'RUNNING',
      updatedAt: now,
    };
    await this.deps.jobs.createOnce(doc);
    if (ids.length > 0) await this.deps.jobs.addTargets(org, id, ids, 0);
    const input: JobInput = {
      org,
      jobId: id,
      actor,
      order: doc.order,
      target,
      rollout: doc.rollout,
      ...(req.pollMs !== undefined ? { pollMs: req.pollMs } : {}),
      ...(req.refreshMs !== undefined ? { refreshMs: req.refreshMs } : {}),
      ...(req.maxHistory !== undefined ? { maxHistory: req.maxHistory } : {}),
    };
    return accepted({ doc, input });
  }

  private async start(doc: JobDoc, input: JobInput): Promise<void> {
    try {
      await this.deps.client.workflow.start<typeof jobWorkflow>('jobWorkflow', {
        workflowId: jobWorkflowId(doc.org, doc.id),
        taskQueue: this.deps.taskQueue,
        args: [input],
        typedSearchAttributes: jobSearchAttributes(doc.org, doc.id, doc.order.name),
        staticSummary: `Job ${doc.id}: ${doc.order.name} in ${doc.org}`,
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  /** The job with its live progress while it runs (the store's copy when the workflow cannot answer soon). */
  async get(org: string, id: string): Promise<Outcome<JobView>> {
    const doc = await this.stored(org, id);
    if (!doc) return refused('NOT_FOUND', `job ${id} not found`);
    if (isJobFinal(doc.status)) return accepted({ doc, progress: doc.progress });
    const live = await this.query(org, id);
    return accepted({ doc, progress: live ?? doc.progress });
  }

  private async query(org: string, id: string): Promise<JobProgress | undefined> {
    const handle = this.deps.client.workflow.getHandle(jobWorkflowId(org, id));
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 1_000).unref());
    try {
      return (await Promise.race([handle.query(getJobProgressQuery), timeout])) ?? undefined;
    } catch {
      return undefined;
    }
  }

  private async stored(org: string, id: string): Promise<JobDoc | null> {
    return JOB_ID_PATTERN.test(id) ? this.deps.jobs.get(org, id) : null;
  }

  /** Pause, resume, cancel, approve or change the rate: the new progress, or why not (CONFLICT once it ended). */
  async control(org: string, id: string, c: Control): Promise<Outcome<JobView>> {
    const doc = await this.stored(org, id);
    if (!doc) return refused('NOT_FOUND', `job ${id} not found`);
    if (isJobFinal(doc.status)) return refused('CONFLICT', `job ${id} has already ended (${doc.status})`);
    try {
      const progress = await this.deps.client.workflow
        .getHandle(jobWorkflowId(org, id))
        .executeUpdate(controlJobUpdate, { args: [c] });
      return accepted({ doc, progress });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
        const code = err.cause.type === 'INVALID_ARGUMENT' ? 'INVALID_ARGUMENT' : 'CONFLICT';
        return refused(code, err.cause.message);
      }
      if (err instanceof WorkflowNotFoundError) return refused('CONFLICT', `job ${id} has already ended`);
      throw err;
    }
  }
}

/**
 * The rollout as the job keeps it: `stopAfterMs` becomes a `stopAt` counted from now; a stop time that has
 * passed already is refused.
 */
function withStopTime(rollout: Rollout, now: number): Outcome<Rollout> {
  const { stopAfterMs, ...rest } = rollout;
  if (stopAfterMs !== undefined && rollout.stopAt !== undefined)
    return refused('INVALID_ARGUMENT', 'give stopAt or stopAfterMs, not both');
  const stopAt = stopAfterMs !== undefined ? now + stopAfterMs : rollout.stopAt;
  if (stopAt === undefined) return accepted(rest);
  if (stopAt <= now)
    return refused('INVALID_ARGUMENT', `stopAt ${new Date(stopAt).toISOString()} has passed`);
  return accepted({ ...rest, stopAt });
}
