// OpenGate's job body (`POST /north/v80/operation/jobs`), mapped onto a TwinFlow job so OpenGate scripts keep working.
import { z } from 'zod';
import type { JobRequest } from '../../operations/jobs.service';
import { DEVICE_ID_PATTERN } from '../../workflows/ids';
import { rolloutSchema } from './job.schemas';
import { createOperationSchema } from './operation.schemas';

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
            /** Accepted for compatibility; a TwinFlow job starts at once (schedules have their own routes). */
            schedule: z.record(z.unknown()).optional(),
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

export function fromOpenGateJob(body: z.infer<typeof openGateJobSchema>): JobRequest {
  const r = body.job.request;
  const p = r.operationParameters ?? {};
  return {
    order: {
      name: r.name,
      ...(r.parameters !== undefined ? { parameters: r.parameters } : {}),
      ...(p.timeout !== undefined ? { timeoutMs: p.timeout } : {}),
      ...(p.retries !== undefined ? { retries: p.retries } : {}),
      ...(p.retriesDelay !== undefined ? { retriesDelayMs: p.retriesDelay } : {}),
    },
    target: 'append' in r.target ? { deviceIds: r.target.append.entities } : { filter: r.target.filter },
    rollout: rolloutSchema.parse({}),
  };
}
