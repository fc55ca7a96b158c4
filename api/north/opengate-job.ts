// OpenGate's job body (`POST /north/v80/operation/jobs`), mapped onto a TwinFlow job so OpenGate scripts keep working.
import { z } from 'zod';
import type { JobRequest } from '../../operations/jobs.service';
import { DEVICE_ID_PATTERN } from '../../workflows/ids';
import { rolloutSchema } from './job.schemas';
import { createOperationSchema } from './operation.schemas';

const DAY = 86_400_000;
/** The latest time a job or schedule takes (ms since epoch, in the year 2243), as the north API's own bodies. */
const LATEST = 8_640_000_000_000;

/** A moment in OpenGate's schedule: a date, or a delay in ms from now. */
const openGateMoment = z.union([
  z
    .object({
      date: z
        .string()
        .datetime({ offset: true })
        .refine((d) => Date.parse(d) <= LATEST, 'a date before the year 2243'),
    })
    .strict(),
  z
    .object({
      delayed: z
        .number()
        .int()
        .min(0)
        .max(366 * DAY),
    })
    .strict(),
]);

/**
 * OpenGate's job schedule: when the job starts (later: a one-time job schedule) and when it stops (nothing starts
 * after it). Its other parts have their TwinFlow forms on /north/v1, and are refused here rather than ignored.
 */
const openGateScheduleSchema = z
  .object({ start: openGateMoment.optional(), stop: openGateMoment.optional() })
  .strict(
    'schedule takes start and stop here; for a maintenance window use rollout.window on POST /north/v1/jobs, ' +
      'for a recurring job POST /north/v1/job-schedules',
  );

export const openGateJobSchema = z
  .object({
    job: z
      .object({
        request: z
          .object({
            name: createOperationSchema.shape.name,
            parameters: createOperationSchema.shape.parameters,
            operationParameters: z
              .object({
                timeout: z
                  .number()
                  .int()
                  .min(100)
                  .max(7 * 86_400_000)
                  .optional(),
                retries: z.number().int().min(0).max(10).optional(),
                retriesDelay: z.number().int().min(0).max(86_400_000).optional(),
              })
              .strict()
              .optional(),
            schedule: openGateScheduleSchema.optional(),
            target: z.union([
              z
                .object({
                  append: z
                    .object({
                      entities: z
                        .array(z.string().regex(DEVICE_ID_PATTERN, 'not a device id'))
                        .min(1)
                        .max(100_000),
                    })
                    .strict(),
                })
                .strict(),
              z
                .object({
                  filter: z
                    .object({
                      type: z.string().min(1).max(64).optional(),
                      tag: z.string().min(1).max(64).optional(),
                      q: z.string().min(1).max(64).optional(),
                    })
                    .strict(),
                })
                .strict(),
            ]),
          })
          .strict(),
      })
      .strict(),
  })
  .strict();

export type OpenGateJobBody = z.infer<typeof openGateJobSchema>;
type Moment = z.infer<typeof openGateMoment>;

const momentAt = (m: Moment, now: number): number => ('date' in m ? Date.parse(m.date) : now + m.delayed);

/**
 * When an OpenGate job starts: `undefined` for at once (no start, or one due now), else its time (ms); an error
 * when it stops before it starts or has stopped already.
 */
export function openGateStart(body: OpenGateJobBody, now: number): { at?: number } | { error: string } {
  const { start, stop } = body.job.request.schedule ?? {};
  const at = start ? momentAt(start, now) : undefined;
  const later = at !== undefined && at > now ? at : undefined;
  if (stop) {
    const from = later ?? now;
    const end = 'date' in stop ? Date.parse(stop.date) : from + stop.delayed;
    if (end <= from)
      return { error: `schedule.stop comes before the job ${later ? 'starts' : 'could start'}` };
    if ('delayed' in stop && stop.delayed < 1_000)
      return { error: 'schedule.stop.delayed is at least 1000 ms' };
  }
  return later !== undefined ? { at: later } : {};
}

export function fromOpenGateJob(body: OpenGateJobBody): JobRequest {
  const r = body.job.request;
  const p = r.operationParameters ?? {};
  const stop = r.schedule?.stop;
  return {
    order: {
      name: r.name,
      ...(r.parameters !== undefined ? { parameters: r.parameters } : {}),
      ...(p.timeout !== undefined ? { timeoutMs: p.timeout } : {}),
      ...(p.retries !== undefined ? { retries: p.retries } : {}),
      ...(p.retriesDelay !== undefined ? { retriesDelayMs: p.retriesDelay } : {}),
    },
    target: 'append' in r.target ? { deviceIds: r.target.append.entities } : { filter: r.target.filter },
    rollout: rolloutSchema.parse(
      stop === undefined
        ? {}
        : 'date' in stop
          ? { stopAt: Date.parse(stop.date) }
          : { stopAfterMs: stop.delayed },
    ),
  };
}
