// North API for job schedules: a job started at a time or recurring (cron or interval), with pause, resume,
// delete and what ran when. Runs never overlap: one due while the last job still runs is skipped.
import { z } from 'zod';
import { SCHEDULE_ID_PATTERN, type JobTiming } from '../../operations/job-schedules.service';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { actorOf } from '../context';
import { orThrow } from '../errors';
import { patternParam } from '../validation';
import { createJobSchema, toJobRequest } from './job.schemas';

export const jobSchedulesRoutes = new RouteGroup('/north/v1/job-schedules');
const tag = 'Jobs';
const SCHEDULE_ID = patternParam(SCHEDULE_ID_PATTERN, (raw) => `schedule ${raw} not found`);
const noBody = z.object({}).strict().default({});

const timingSchema = z.union([
  z.object({ at: z.number().int().min(0).max(8_640_000_000_000) }).strict(),
  z
    .object({
      cron: z.array(z.string().min(9).max(128)).min(1).max(10),
      timeZone: z.string().min(1).max(64).optional(),
    })
    .strict(),
  z
    .object({
      everyMs: z
        .number()
        .int()
        .min(1_000)
        .max(366 * 86_400_000),
    })
    .strict(),
]);

const createScheduleSchema = z.object({ job: createJobSchema, schedule: timingSchema }).strict();

jobSchedulesRoutes.post(
  '/',
  can('jobs:manage'),
  {
    summary: 'Schedule a job: once at a time, or recurring',
    tag,
    body: createScheduleSchema,
    responses: [201],
  },
  async (c, { body }) => {
    const principal = c.get('principal');
    const { jobSchedules } = c.get('services');
    const timing = body.schedule as JobTiming;
    const view = orThrow(
      await jobSchedules.create(principal.org, actorOf(principal), toJobRequest(body.job), timing),
    );
    await audit(c, 'job.schedule', `job-schedules/${view.id}`, { name: body.job.operation.name, timing });
    return c.json(view, 201);
  },
);

jobSchedulesRoutes.get('/', can('jobs:read'), { summary: 'List job schedules', tag }, async (c) => {
  const { jobSchedules } = c.get('services');
  return c.json({ items: await jobSchedules.list(c.get('principal').org) });
});

jobSchedulesRoutes.get(
  '/:scheduleId',
  can('jobs:read'),
  {
    summary: 'A job schedule: its timing, state, what ran when and what runs next',
    tag,
    params: { scheduleId: SCHEDULE_ID },
  },
  async (c, { params: { scheduleId } }) => {
    const { jobSchedules } = c.get('services');
    return c.json(orThrow(await jobSchedules.get(c.get('principal').org, scheduleId)));
  },
);

for (const [action, paused] of [
  ['pause', true],
  ['resume', false],
] as const) {
  jobSchedulesRoutes.post(
    `/:scheduleId/${action}`,
    can('jobs:manage'),
    {
      summary: `${paused ? 'Pause' : 'Resume'} a job schedule`,
      tag,
      params: { scheduleId: SCHEDULE_ID },
      body: noBody,
    },
    async (c, { params: { scheduleId } }) => {
      const { jobSchedules } = c.get('services');
      const view = orThrow(await jobSchedules.pause(c.get('principal').org, scheduleId, paused));
      await audit(c, `job.schedule.${action}`, `job-schedules/${scheduleId}`);
      return c.json(view);
    },
  );
}

jobSchedulesRoutes.delete(
  '/:scheduleId',
  can('jobs:manage'),
  { summary: 'Delete a job schedule (jobs it started run on)', tag, params: { scheduleId: SCHEDULE_ID } },
  async (c, { params: { scheduleId } }) => {
    const { jobSchedules } = c.get('services');
    const out = orThrow(await jobSchedules.delete(c.get('principal').org, scheduleId));
    await audit(c, 'job.schedule.delete', `job-schedules/${scheduleId}`);
    return c.json(out);
  },
);
