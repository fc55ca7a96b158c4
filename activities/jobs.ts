// The job workflow's activities: resolve its targets, request each device's operation through the operations
// service (as the API does), learn from the store which ones ended, cancel, and write the job's progress.
import { jobEvents } from '../events/derive';
import type { EventWriter } from '../events/writer';
import { createHash } from 'node:crypto';
import type { DeviceListFilter } from '../inventory/devices.repo';
import type { JobOrder } from '../inventory/documents';
import type { ExecutionStart, JobRepository } from '../inventory/jobs.repo';
import type { OperationRepository } from '../inventory/operations.repo';
import type { JobRequest } from '../operations/jobs.service';
import type { JobInput } from '../workflows/job-run';
import { type ExecutionStatus, type JobProgress, type StartResult, executionOf } from '../twins/job-plan';
import { type OperationRecord, isFinal } from '../twins/operations';
import type { Outcome } from '../twins/outcomes';
import { inParallel } from '../inventory/lookups';

/** What the job activities need from the operations service (it lives above activities, so it comes as a port). */
export interface JobOperationsPort {
  request(
    org: string,
    actor: string,
    deviceId: string,
    order: JobOrder,
    id: string,
  ): Promise<Outcome<OperationRecord>>;
  cancel(org: string, id: string, actor: string): Promise<Outcome<OperationRecord>>;
}

/** Stores a scheduled run's job and answers its workflow input (the jobs service, as a port). */
export type CreateJobPort = (
  org: string,
  actor: string,
  request: JobRequest,
  id: string,
  scheduleId: string,
) => Promise<JobInput>;

export interface JobActivityDeps {
  readonly jobs: JobRepository;
  readonly operations: OperationRepository;
  readonly service: JobOperationsPort;
  readonly createJob: CreateJobPort;
  /** The fleet event log (job progress and ends); none: nothing is logged. */
  readonly events?: EventWriter;
}

/** Requests to twins a start batch makes at once. */
const START_CONCURRENCY = 32;

/** `fn` over the items, START_CONCURRENCY at a time. */
const atOnce = <T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> =>
  inParallel(items, fn, START_CONCURRENCY);

/**
 * The operation id of a job's device: a UUID-shaped digest of (job, device), so a request repeated after any crash
 * carries the same id and is recognised.
 */
export function jobOperationId(jobId: string, deviceId: string): string {
  const h = createHash('sha256').update(`${jobId}/${deviceId}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export interface StartBatch {
  readonly org: string;
  readonly jobId: string;
  readonly actor: string;
  readonly order: JobOrder;
  readonly fromSeq: number;
  readonly count: number;
}

export interface PollBatch {
  readonly org: string;
  readonly jobId: string;
  readonly actor: string;
  readonly order: JobOrder;
  /** Ask again for operations whose request got no record in time (a running job only). */
  readonly askAgain: boolean;
  readonly inFlight: readonly { seq: number; deviceId: string; operationId: string; startedAt: number }[];
  /** Past the per-device deadline: TIMEOUT unless their operation ended meanwhile. */
  readonly overdue: readonly number[];
}

function missing(deps: JobActivityDeps | undefined): JobActivityDeps {
  if (!deps) throw new Error('this worker was built without job dependencies');
  return deps;
}

/** A twin that has not answered a job's request within this long is asked again by a later poll. */
const REQUEST_PATIENCE_MS = 20_000;

/**
 * One request: its outcome, or undefined when the twin did not answer in time or failed for a reason that may pass
 * (its workflow task failing, the server busy). Asking again is safe: the operation id is the same.
 */
async function requestOnce(
  deps: JobActivityDeps,
  b: { org: string; actor: string; order: JobOrder },
  deviceId: string,
  id: string,
): Promise<Outcome<OperationRecord> | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), REQUEST_PATIENCE_MS);
  });
  const asked = deps.service.request(b.org, b.actor, deviceId, b.order, id).catch(() => undefined);
  try {
    return await Promise.race([asked, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Requests the operation of each device in the seq range; a device whose operation exists is not asked twice. */
async function startJobTargets(deps: JobActivityDeps, b: StartBatch): Promise<StartResult[]> {
  const targets = await deps.jobs.targetsFrom(b.org, b.jobId, b.fromSeq, b.count);
  const ids = targets.map((t) => jobOperationId(b.jobId, t.deviceId));
  const stored = new Map((await deps.operations.getMany(b.org, ids)).map((r) => [r.id, r]));
  const results = await atOnce(targets, async (t): Promise<StartResult> => {
    const id = jobOperationId(b.jobId, t.deviceId);
    const known = stored.get(id);
    if (known) return { seq: t.seq, deviceId: t.deviceId, operationId: id, status: known.status };
    const out = await requestOnce(deps, b, t.deviceId, id);
    // Not answered in time (a twin that cannot take it now): counted as started; the polls ask again.
    if (out === undefined) return { seq: t.seq, deviceId: t.deviceId, operationId: id, status: 'QUEUED' };
    if (!out.ok) return { seq: t.seq, deviceId: t.deviceId, refused: `${out.code}: ${out.message}` };
    return { seq: t.seq, deviceId: t.deviceId, operationId: id, status: out.value.status };
  });
  const starts = results.map((r): ExecutionStart =>
    'refused' in r
      ? { seq: r.seq, status: 'REFUSED', reason: r.refused }
      : { seq: r.seq, status: executionOf(r.status), operationId: r.operationId, operationStatus: r.status },
  );
  await deps.jobs.recordStarts(b.org, b.jobId, starts, Date.now());
  return results;
}

interface Ended {
  readonly seq: number;
  readonly operationId: string;
  readonly status: ExecutionStatus;
  readonly operationStatus?: string;
  readonly reason?: string;
}

/** The in-flight operations that ended (from their records), and the overdue ones as TIMEOUT. */
async function pollJobOperations(deps: JobActivityDeps, b: PollBatch): Promise<Ended[]> {
  const records = await deps.operations.getMany(
    b.org,
    b.inFlight.map((f) => f.operationId),
  );
  const byId = new Map(records.map((r) => [r.id, r]));
  // Requested long enough ago and still without a record: the request was lost; ask again (same id).
  const lost = (b.askAgain ? b.inFlight : []).filter(
    (f) => !byId.has(f.operationId) && Date.now() - f.startedAt >= REQUEST_PATIENCE_MS,
  );
  await atOnce(lost, (f) => requestOnce(deps, b, f.deviceId, f.operationId));
  const overdue = new Set(b.overdue);
  const ended: Ended[] = [];
  for (const f of b.inFlight) {
    const rec = byId.get(f.operationId);
    if (rec && isFinal(rec.status))
      ended.push({
        seq: f.seq,
        operationId: f.operationId,
        status: executionOf(rec.status),
        operationStatus: rec.status,
      });
    else if (overdue.has(f.seq))
      ended.push({
        seq: f.seq,
        operationId: f.operationId,
        status: 'TIMEOUT',
        reason: 'no end within the per-device deadline',
        ...(rec ? { operationStatus: rec.status } : {}),
      });
  }
  await deps.jobs.recordEnds(b.org, b.jobId, ended, Date.now());
  return ended;
}

export function createJobActivities(given: JobActivityDeps | undefined) {
  return {
    /** Adds the devices matching the filter that the job does not have yet; answers the job's device count. */
    async resolveJobTargets(org: string, jobId: string, filter: DeviceListFilter): Promise<number> {
      const { jobs } = missing(given);
      const known = await jobs.targetDevices(org, jobId);
      const fresh = (await jobs.matchingDevices(org, filter)).filter((id) => !known.ids.has(id));
      await jobs.addTargets(org, jobId, fresh, known.count);
      return known.count + fresh.length;
    },

    startJobTargets: (b: StartBatch): Promise<StartResult[]> => startJobTargets(missing(given), b),

    async pollJobOperations(b: PollBatch): Promise<{ operationId: string; status: ExecutionStatus }[]> {
      const ended = await pollJobOperations(missing(given), b);
      return ended.map((e) => ({ operationId: e.operationId, status: e.status }));
    },

    /** Cancels running operations of a job (one that ended meanwhile is left as it ended). */
    async cancelJobOperations(org: string, operationIds: readonly string[], actor: string): Promise<number> {
      const deps = missing(given);
      const out = await atOnce(operationIds, (id) => deps.service.cancel(org, id, actor));
      return out.filter((o) => o.ok).length;
    },

    /** Marks what the job never started as SKIPPED. */
    async skipJobTargets(org: string, jobId: string, fromSeq: number): Promise<void> {
      await missing(given).jobs.skipPending(org, jobId, fromSeq, Date.now());
    },

    /** A scheduled run: its job, stored once under the id the run chose. */
    async createScheduledJob(
      org: string,
      actor: string,
      request: JobRequest,
      id: string,
      scheduleId: string,
    ): Promise<JobInput> {
      return missing(given).createJob(org, actor, request, id, scheduleId);
    },

    async writeJobProgress(org: string, jobId: string, progress: JobProgress): Promise<void> {
      const deps = missing(given);
      const at = Date.now();
      await deps.jobs.writeProgress(org, jobId, progress, at);
      await deps.events?.append(org, jobEvents(jobId, progress, at));
    },
  };
}
