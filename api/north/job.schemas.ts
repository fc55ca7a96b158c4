// Request schemas and the response view of jobs on the north API, and the OpenGate job body.
import { z } from 'zod';
import type { JobRequest, JobView } from '../../operations/jobs.service';
import {
  DEFAULT_FAILURE_TYPES,
  EXECUTION_STATUSES,
  type ExecutionStatus,
  type JobStatus,
  eta,
  isJobFinal,
  nextOpening,
  windowOpen,
} from '../../twins/job-plan';
import { DEVICE_ID_PATTERN } from '../../workflows/ids';
import type { JobExecutionDoc } from '../../inventory/documents';
import { createOperationSchema } from './operation.schemas';

const DAY = 86_400_000;

const filterSchema = z
  .object({
    type: z.string().min(1).max(64).optional(),
    tag: z.string().min(1).max(64).optional(),
    status: z.string().min(1).max(64).optional(),
    lifecycle: z.enum(['ACTIVE', 'DECOMMISSIONED']).optional(),
    q: z.string().min(1).max(64).optional(),
  })
  .strict();

const waveSchema = z.union([
  z.object({ count: z.number().int().min(1).max(100_000) }).strict(),
  z.object({ percent: z.number().min(0.01).max(100) }).strict(),
]);

const FAILURE_TYPES: [ExecutionStatus, ...ExecutionStatus[]] = [
  'FAILED',
  'TIMEOUT',
  'EXPIRED',
  'CANCELLED',
  'REFUSED',
];

const windowSchema = z
  .object({
    timeZone: z.string().min(1).max(64),
    start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
    end: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
    days: z.array(z.number().int().min(0).max(6)).min(1).max(7).optional(),
  })
  .strict();

export const rolloutSchema = z
  .object({
    /** Operations started per minute at most. */
    ratePerMinute: z.number().int().min(1).max(1_000_000).optional(),
    /** Operations running at once at most. */
    maxInFlight: z.number().int().min(1).max(10_000).default(100),
    waves: z.array(waveSchema).max(100).default([]),
    successThresholdPercent: z.number().min(0).max(100).optional(),
    onThresholdMiss: z.enum(['pause', 'stop']).default('pause'),
    abort: z
      .object({
        failureTypes: z
          .array(z.enum(FAILURE_TYPES))
          .min(1)
          .max(5)
          .default([...DEFAULT_FAILURE_TYPES]),
        percent: z.number().min(0).max(100),
        minFinished: z.number().int().min(1).max(100_000).default(1),
        cancelRunning: z.boolean().default(false),
      })
      .strict()
      .optional(),
    deviceDeadlineMs: z
      .number()
      .int()
      .min(1_000)
      .max(30 * DAY)
      .optional(),
    approveWaves: z.boolean().default(false),
    window: windowSchema.optional(),
    /** When the job stops (ms since epoch), or how long after its creation: what has not started is skipped. */
    stopAt: z.number().int().min(0).max(8_640_000_000_000).optional(),
    stopAfterMs: z
      .number()
      .int()
      .min(1_000)
      .max(366 * DAY)
      .optional(),
  })
  .strict();

export const createJobSchema = z
  .object({
    operation: createOperationSchema,
    target: z.union([
      z
        .object({
          deviceIds: z.array(z.string().regex(DEVICE_ID_PATTERN, 'not a device id')).min(1).max(100_000),
        })
        .strict(),
      z.object({ filter: filterSchema, continuous: z.boolean().optional() }).strict(),
    ]),
    rollout: rolloutSchema.default({}),
    /** Tuning: the longest pause between looks at running operations, and a continuous job's refresh period. */
    pollMs: z.number().int().min(50).max(60_000).optional(),
    refreshMs: z.number().int().min(100).max(DAY).optional(),
    /** Tuning: the job continues as new past this many history events (default 10,000). */
    maxHistory: z.number().int().min(100).max(40_000).optional(),
  })
  .strict();

export type CreateJobBody = z.infer<typeof createJobSchema>;

export function toJobRequest(body: CreateJobBody): JobRequest {
  const { operation, target, rollout, pollMs, refreshMs, maxHistory } = body;
  return {
    order: operation,
    target,
    rollout: rollout,
    ...(pollMs !== undefined ? { pollMs } : {}),
    ...(refreshMs !== undefined ? { refreshMs } : {}),
    ...(maxHistory !== undefined ? { maxHistory } : {}),
  };
}

const JOB_STATUSES: [JobStatus, ...JobStatus[]] = [
  'RUNNING',
  'PAUSED',
  'WAITING_APPROVAL',
  'COMPLETED',
  'STOPPED',
  'ABORTED',
  'CANCELLED',
];

export const listJobsQuerySchema = z
  .object({
    status: z.enum(JOB_STATUSES).optional(),
    operation: z.string().min(1).max(64).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z
      .string()
      .regex(/^[a-z0-9]{9}-[a-f0-9]{10}$/, 'invalid cursor')
      .optional(),
  })
  .strict();

export const listExecutionsQuerySchema = z
  .object({
    status: z.enum(EXECUTION_STATUSES as [ExecutionStatus, ...ExecutionStatus[]]).optional(),
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
    cursor: z.coerce.number().int().min(0).max(1_000_000_000).optional(),
  })
  .strict();

export const cancelJobSchema = z
  .object({ cancelRunning: z.boolean().default(false) })
  .strict()
  .default({});

export const rateSchema = z
  .object({
    ratePerMinute: z.number().int().min(1).max(1_000_000).nullable().optional(),
    maxInFlight: z.number().int().min(1).max(10_000).optional(),
  })
  .strict()
  .refine((b) => b.ratePerMinute !== undefined || b.maxInFlight !== undefined, {
    message: 'give ratePerMinute, maxInFlight or both',
  });

/** The job as the API shows it. */
export function jobView({ doc, progress }: JobView, now: number) {
  const p = progress;
  const window = doc.rollout.window;
  return {
    id: doc.id,
    status: p?.status ?? doc.status,
    ...(p?.reason !== undefined ? { reason: p.reason } : {}),
    operation: doc.order,
    target:
      doc.target.kind === 'ids'
        ? { deviceIds: doc.target.count }
        : { filter: doc.target.filter, continuous: doc.target.continuous },
    rollout: doc.rollout,
    total: p?.total ?? (doc.target.kind === 'ids' ? doc.target.count : null),
    counts: p?.counts ?? null,
    running: p?.inFlight.length ?? 0,
    waves: (p?.waves ?? []).map((w, i) => ({
      wave: i + 1,
      start: w.start,
      end: w.end,
      started: w.started,
      finished: w.finished,
      successful: w.successful,
      current: p?.wave === i,
    })),
    rate: { ratePerMinute: p?.ratePerMinute ?? null, maxInFlight: p?.maxInFlight ?? doc.rollout.maxInFlight },
    ...(window && p && !isJobFinal(p.status)
      ? { window: { open: windowOpen(window, now), nextOpening: nextOpening(window, now) } }
      : {}),
    etaMs: p ? (eta(p, now) ?? null) : null,
    requestedBy: doc.requestedBy,
    ...(doc.scheduleId !== undefined ? { scheduleId: doc.scheduleId } : {}),
    createdAt: doc.createdAt,
    firstStartAt: p?.firstStartAt ?? null,
    finishedAt: p?.finishedAt ?? null,
  };
}

export function executionView(e: JobExecutionDoc) {
  return {
    seq: e.seq,
    deviceId: e.deviceId,
    status: e.status,
    operationId: e.operationId ?? null,
    operationStatus: e.operationStatus ?? null,
    ...(e.reason !== undefined ? { reason: e.reason } : {}),
    startedAt: e.startedAt ?? null,
    finishedAt: e.finishedAt ?? null,
  };
}
