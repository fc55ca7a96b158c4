// The OpenGate v80 collect body (HTTP `collect/iot` and MQTT `odm/iot/{id}`), validated strictly on types, lenient on extras.
import { z } from 'zod';
import type { Datapoint } from '../twins/types';
import { DEVICE_ID_PATTERN } from '../workflows/ids';

export const MAX_DATASTREAMS_PER_MESSAGE = 500;
export const MAX_DATAPOINTS_PER_MESSAGE = 5_000;
/** Year 2500 in ms: anything later is a unit mistake (seconds or microseconds). */
const MAX_EPOCH_MS = 16_725_225_600_000;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const epochMs = z.number().int().min(0).max(MAX_EPOCH_MS, 'must be milliseconds since the Unix epoch');
const textId = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[^\u0000-\u001f]+$/, 'must not contain control characters')
    .refine((s) => !LONE_SURROGATE.test(s), 'must be well-formed Unicode');

const datapointSchema = z.object({
  value: z.unknown().refine((v) => v !== undefined, 'value is required'),
  at: epochMs.optional(),
  from: epochMs.optional(),
});

export const collectBodySchema = z.object({
  version: z.string().max(32).optional(),
  device: z.string().regex(DEVICE_ID_PATTERN, 'not a valid device id').optional(),
  path: z.array(z.string().max(128)).max(16).optional(),
  datastreams: z
    .array(
      z.object({
        id: textId(256),
        feed: textId(64).optional(),
        datapoints: z.array(datapointSchema).min(1),
      }),
    )
    .min(1)
    .max(MAX_DATASTREAMS_PER_MESSAGE),
});

export type CollectBody = z.infer<typeof collectBodySchema>;

/** Flattens a collect body into datapoints; a missing `at` means the time it was received. */
export function toDatapoints(body: CollectBody, receivedAt: number): Datapoint[] {
  const out: Datapoint[] = [];
  for (const ds of body.datastreams) {
    const feed = ds.feed ?? 'default';
    for (const dp of ds.datapoints) {
      out.push(
        dp.from === undefined
          ? { datastreamId: ds.id, feed, value: dp.value, at: dp.at ?? receivedAt }
          : { datastreamId: ds.id, feed, value: dp.value, at: dp.at ?? receivedAt, from: dp.from },
      );
    }
  }
  return out;
}
