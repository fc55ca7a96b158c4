// Jobs and their per-device executions in the `jobs` and `job_executions` collections. Every query is an _id range
// (`org/jobId/seq`), which the embedded FerretDB serves from its _id index.
import type { AnyBulkWriteOperation } from 'mongodb';
import type { ExecutionStatus, JobProgress, JobStatus } from '../twins/job-plan';
import { type DeviceListFilter, deviceListQuery } from './devices.repo';
import type { JobDoc, JobExecutionDoc } from './documents';
import type { Collections } from './inventory';
import { findByIds } from './lookups';
import { duplicatesOnly, isDuplicateKey } from './write-errors';

const INSERT_BATCH = 1_000;
/**
 * Updates per bulk write. FerretDB 1.24 (SQLite) keeps a cursor open per statement of one update command until the
 * command ends, and deadlocks once they take its whole connection pool (100): a bulk of 200 updates never returned.
 */
const UPDATE_BATCH = 20;

const jobDocId = (org: string, id: string): string => `${org}/${id}`;
/** Seqs are zero-padded so the _id order is the seq order. */
export const executionDocId = (org: string, jobId: string, seq: number): string =>
  `${org}/${jobId}/${String(seq).padStart(9, '0')}`;
/** Every _id under `prefix/` sorts before `prefix0` ('0' follows '/'). */
const under = (prefix: string) => ({ $gt: `${prefix}/`, $lt: `${prefix}0` });

export interface JobPage {
  readonly items: JobDoc[];
  readonly nextAfter?: string;
}

export interface ExecutionPage {
  readonly items: JobExecutionDoc[];
  readonly nextAfter?: number;
}

/** One device's start, as the job's start activity records it. */
export interface ExecutionStart {
  readonly seq: number;
  readonly status: ExecutionStatus;
  readonly operationId?: string;
  readonly operationStatus?: string;
  readonly reason?: string;
}

export class JobRepository {
  constructor(private readonly c: Collections) {}

  /** Stores a new job; one stored already under that id is kept. */
  async createOnce(doc: JobDoc): Promise<void> {
    try {
      await this.c.jobs.insertOne(doc);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  async get(org: string, id: string): Promise<JobDoc | null> {
    return this.c.jobs.findOne({ _id: jobDocId(org, id) });
  }

  /** Newest first (job ids sort by creation time). */
  async list(
    org: string,
    filter: { status?: JobStatus; operation?: string },
    limit: number,
    after?: string,
  ): Promise<JobPage> {
    const range = under(org);
    const query: Record<string, unknown> = {
      _id: after !== undefined ? { $gt: range.$gt, $lt: jobDocId(org, after) } : range,
    };
    if (filter.status) query.status = filter.status;
    if (filter.operation) query['order.name'] = filter.operation;
    const docs = await this.c.jobs
      .find(query)
      .sort({ _id: -1 })
      .limit(limit + 1)
      .toArray();
    const items = docs.slice(0, limit);
    return docs.length > limit ? { items, nextAfter: items.at(-1)!.id } : { items };
  }

  async writeProgress(org: string, id: string, progress: JobProgress, at: number): Promise<void> {
    await this.c.jobs.updateOne(
      { _id: jobDocId(org, id) },
      { $set: { progress, status: progress.status, updatedAt: at } },
    );
  }

  /** Adds devices as the job's executions from `fromSeq` on; an execution stored already is kept. */
  async addTargets(org: string, jobId: string, deviceIds: readonly string[], fromSeq: number): Promise<void> {
    for (let i = 0; i < deviceIds.length; i += INSERT_BATCH) {
      const docs = deviceIds.slice(i, i + INSERT_BATCH).map((deviceId, k): JobExecutionDoc => ({
        _id: executionDocId(org, jobId, fromSeq + i + k),
        org,
        jobId,
        seq: fromSeq + i + k,
        deviceId,
        status: 'PENDING',
      }));
      try {
        await this.c.jobExecutions.insertMany(docs, { ordered: false });
      } catch (err) {
        // A retried insert finds what the first try stored.
        if (duplicatesOnly(err, docs.length) === undefined) throw err;
      }
    }
  }

  /** The device ids of a job's executions, and how many it has. */
  async targetDevices(org: string, jobId: string): Promise<{ ids: Set<string>; count: number }> {
    const docs = await this.c.jobExecutions
      .find({ _id: under(`${org}/${jobId}`) }, { projection: { deviceId: 1, seq: 1 } })
      .toArray();
    const count = docs.reduce((n, d) => Math.max(n, d.seq + 1), 0);
    return { ids: new Set(docs.map((d) => d.deviceId)), count };
  }

  /** Executions with seq in [fromSeq, fromSeq + count). */
  async targetsFrom(org: string, jobId: string, fromSeq: number, count: number): Promise<JobExecutionDoc[]> {
    // Lookups of the ids the seqs make, not an `_id` range: the embedded store reads the whole collection for a
    // range (see lookups.ts). Seqs past the job's last are not found.
    const ids = Array.from({ length: count }, (_, i) => executionDocId(org, jobId, fromSeq + i));
    return findByIds(this.c.jobExecutions, ids);
  }

  async recordStarts(
    org: string,
    jobId: string,
    starts: readonly ExecutionStart[],
    at: number,
  ): Promise<void> {
    if (starts.length === 0) return;
    const ops: AnyBulkWriteOperation<JobExecutionDoc>[] = starts.map((s) => ({
      updateOne: {
        filter: { _id: executionDocId(org, jobId, s.seq) },
        update: {
          $set: {
            status: s.status,
            startedAt: at,
            ...(s.status !== 'STARTED' ? { finishedAt: at } : {}),
            ...(s.operationId !== undefined ? { operationId: s.operationId } : {}),
            ...(s.operationStatus !== undefined ? { operationStatus: s.operationStatus } : {}),
            ...(s.reason !== undefined ? { reason: s.reason } : {}),
          },
        },
      },
    }));
    await this.bulkUpdate(ops);
  }

  private async bulkUpdate(ops: AnyBulkWriteOperation<JobExecutionDoc>[]): Promise<void> {
    for (let i = 0; i < ops.length; i += UPDATE_BATCH)
      await this.c.jobExecutions.bulkWrite(ops.slice(i, i + UPDATE_BATCH), { ordered: false });
  }

  async recordEnds(
    org: string,
    jobId: string,
    ends: readonly { seq: number; status: ExecutionStatus; operationStatus?: string; reason?: string }[],
    at: number,
  ): Promise<void> {
    if (ends.length === 0) return;
    const ops: AnyBulkWriteOperation<JobExecutionDoc>[] = ends.map((e) => ({
      updateOne: {
        filter: { _id: executionDocId(org, jobId, e.seq) },
        update: {
          $set: {
            status: e.status,
            finishedAt: at,
            ...(e.operationStatus !== undefined ? { operationStatus: e.operationStatus } : {}),
            ...(e.reason !== undefined ? { reason: e.reason } : {}),
          },
        },
      },
    }));
    await this.bulkUpdate(ops);
  }

  /** Executions not started when the job ended: SKIPPED. */
  async skipPending(org: string, jobId: string, fromSeq: number, at: number): Promise<void> {
    await this.c.jobExecutions.updateMany(
      { _id: { $gte: executionDocId(org, jobId, fromSeq), $lt: `${org}/${jobId}0` }, status: 'PENDING' },
      { $set: { status: 'SKIPPED', finishedAt: at } },
    );
  }

  /** A job's executions in seq order, optionally of one status. */
  async listExecutions(
    org: string,
    jobId: string,
    limit: number,
    options: { status?: ExecutionStatus; after?: number } = {},
  ): Promise<ExecutionPage> {
    const range = under(`${org}/${jobId}`);
    const query: Record<string, unknown> = {
      _id:
        options.after !== undefined
          ? { $gt: executionDocId(org, jobId, options.after), $lt: range.$lt }
          : range,
    };
    if (options.status) query.status = options.status;
    const docs = await this.c.jobExecutions
      .find(query)
      .sort({ _id: 1 })
      .limit(limit + 1)
      .toArray();
    const items = docs.slice(0, limit);
    return docs.length > limit ? { items, nextAfter: items.at(-1)!.seq } : { items };
  }

  /** Device ids matching a job's filter, in id order. */
  async matchingDevices(org: string, filter: DeviceListFilter): Promise<string[]> {
    const docs = await this.c.devices
      .find(deviceListQuery(org, filter), { projection: { id: 1 } })
      .sort({ _id: 1 })
      .toArray();
    return docs.map((d) => d.id);
  }
}
