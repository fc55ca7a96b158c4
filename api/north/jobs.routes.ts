// North API for jobs: one operation over many devices as a durable rollout. Create (202), list, get (counts,
// waves, rate, ETA), per-device executions, and the live controls; and OpenGate's job body on its own path.
import type { Context } from 'hono';
import { z } from 'zod';
import type { Control } from '../../twins/job-plan';
import { JOB_ID_PATTERN } from '../../operations/jobs.service';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import type { AppEnv } from '../context';
import { actorOf } from '../context';
import { ApiError, orThrow } from '../errors';
import { patternParam } from '../validation';
import {
  cancelJobSchema,
  createJobSchema,
  executionView,
  jobView,
  listExecutionsQuerySchema,
  listJobsQuerySchema,
  rateSchema,
  toJobRequest,
} from './job.schemas';
import { openGateJobSchema, fromOpenGateJob, openGateStart } from './opengate-job';

export const jobsRoutes = new RouteGroup('/north/v1/jobs');
export const openGateJobsRoutes = new RouteGroup('/north/v80/operation/jobs');
const tag = 'Jobs';

const JOB_ID = patternParam(JOB_ID_PATTERN, (raw) => `job ${raw} not found`);
const noBody = z.object({}).strict().default({});

jobsRoutes.post(
  '/',
  can('jobs:manage'),
  { summary: 'Create a job: one operation over many devices', tag, body: createJobSchema, responses: [202] },
  async (c, { body }) => {
    const principal = c.get('principal');
    const { jobsService, now } = c.get('services');
    const view = orThrow(await jobsService.create(principal.org, actorOf(principal), toJobRequest(body)));
    await audit(c, 'job.create', `jobs/${view.doc.id}`, {
      name: body.operation.name,
      target: view.doc.target.kind === 'ids' ? { deviceIds: view.doc.target.count } : view.doc.target,
    });
    c.header('Location', `/north/v1/jobs/${view.doc.id}`);
    return c.json(jobView(view, now()), 202);
  },
);

jobsRoutes.get(
  '/',
  can('jobs:read'),
  { summary: 'List jobs, newest first', tag, query: listJobsQuerySchema },
  async (c, { query }) => {
    const { org } = c.get('principal');
    const { jobs, now } = c.get('services');
    const page = await jobs.list(
      org,
      {
        ...(query.status ? { status: query.status } : {}),
        ...(query.operation ? { operation: query.operation } : {}),
      },
      query.limit,
      query.cursor,
    );
    return c.json({
      items: page.items.map((doc) => jobView({ doc, progress: doc.progress }, now())),
      nextCursor: page.nextAfter ?? null,
    });
  },
);

jobsRoutes.get(
  '/:jobId',
  can('jobs:read'),
  { summary: 'Get a job: counts by status, waves, rate, ETA', tag, params: { jobId: JOB_ID } },
  async (c, { params: { jobId } }) => {
    const { jobsService, now } = c.get('services');
    const view = orThrow(await jobsService.get(c.get('principal').org, jobId));
    return c.json(jobView(view, now()));
  },
);

jobsRoutes.get(
  '/:jobId/executions',
  can('jobs:read'),
  {
    summary: "A job's devices and their operations",
    tag,
    params: { jobId: JOB_ID },
    query: listExecutionsQuerySchema,
  },
  async (c, { params: { jobId }, query }) => {
    const { org } = c.get('principal');
    const { jobs, jobsService } = c.get('services');
    orThrow(await jobsService.get(org, jobId));
    const page = await jobs.listExecutions(org, jobId, query.limit, {
      ...(query.status ? { status: query.status } : {}),
      ...(query.cursor !== undefined ? { after: query.cursor } : {}),
    });
    return c.json({ items: page.items.map(executionView), nextCursor: page.nextAfter ?? null });
  },
);

/** Runs a control on the job and answers its new state; every control is audited. */
async function controlJob(c: Context<AppEnv>, jobId: string, control: Control) {
  const principal = c.get('principal');
  const { jobsService, now } = c.get('services');
  const view = orThrow(await jobsService.control(principal.org, jobId, control));
  const { kind, ...details } = control;
  await audit(c, `job.${kind}`, `jobs/${jobId}`, details);
  return c.json(jobView(view, now()));
}

const controlDoc = (summary: string) => ({
  summary,
  tag,
  params: { jobId: JOB_ID },
  responses: [200, 409],
});

jobsRoutes.post(
  '/:jobId/pause',
  can('jobs:manage'),
  { ...controlDoc('Pause a job'), body: noBody },
  (c, { params }) => controlJob(c, params.jobId, { kind: 'pause' }),
);
jobsRoutes.post(
  '/:jobId/resume',
  can('jobs:manage'),
  { ...controlDoc('Resume a paused job'), body: noBody },
  (c, { params }) => controlJob(c, params.jobId, { kind: 'resume' }),
);
jobsRoutes.post(
  '/:jobId/approve',
  can('jobs:manage'),
  { ...controlDoc("Approve a job's next wave"), body: noBody },
  (c, { params }) => controlJob(c, params.jobId, { kind: 'approve' }),
);
jobsRoutes.post(
  '/:jobId/cancel',
  can('jobs:manage'),
  { ...controlDoc('Cancel a job (and, if asked, its running operations)'), body: cancelJobSchema },
  (c, { params, body }) => controlJob(c, params.jobId, { kind: 'cancel', cancelRunning: body.cancelRunning }),
);
jobsRoutes.post(
  '/:jobId/rate',
  can('jobs:manage'),
  { ...controlDoc("Change a job's rate or operations in flight"), body: rateSchema },
  (c, { params, body }) =>
    controlJob(c, params.jobId, {
      kind: 'rate',
      ...(body.ratePerMinute !== undefined ? { ratePerMinute: body.ratePerMinute } : {}),
      ...(body.maxInFlight !== undefined ? { maxInFlight: body.maxInFlight } : {}),
    }),
);

openGateJobsRoutes.post(
  '/',
  can('jobs:manage'),
  {
    // schedule.start later than now makes a one-time job schedule, answered with the schedule.
    summary: 'Create a job from an OpenGate job body (a later schedule.start schedules it)',
    tag,
    body: openGateJobSchema,
    responses: [202],
  },
  async (c, { body }) => {
    const principal = c.get('principal');
    const { jobsService, jobSchedules, now } = c.get('services');
    const start = openGateStart(body, now());
    if ('error' in start) throw new ApiError('INVALID_ARGUMENT', start.error);
    if (start.at !== undefined) {
      const timing = { at: start.at };
      const schedule = orThrow(
        await jobSchedules.create(principal.org, actorOf(principal), fromOpenGateJob(body), timing),
      );
      await audit(c, 'job.schedule', `job-schedules/${schedule.id}`, {
        name: body.job.request.name,
        timing,
        via: 'opengate',
      });
      c.header('Location', `/north/v1/job-schedules/${schedule.id}`);
      return c.json({ id: schedule.id, schedule }, 202);
    }
    const view = orThrow(await jobsService.create(principal.org, actorOf(principal), fromOpenGateJob(body)));
    await audit(c, 'job.create', `jobs/${view.doc.id}`, { name: view.doc.order.name, via: 'opengate' });
    c.header('Location', `/north/v1/jobs/${view.doc.id}`);
    return c.json({ id: view.doc.id, job: jobView(view, now()) }, 202);
  },
);
