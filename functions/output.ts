// The contract of a transform's answer, checked on the host: a list of datapoints, turned into an OpenGate collect body.
import { z } from 'zod';
import {
  type CollectBody,
  collectBodySchema,
  MAX_DATAPOINTS_PER_MESSAGE,
} from '../api/ingest/collect.schema';

/** One datapoint as a function returns it: `{ id, value, at?, from?, feed? }`. */
const outputDatapointSchema = z
  .object({
    id: z.string().min(1).max(256),
    value: z
      .unknown()
      .refine((v) => v !== undefined && v !== null, 'value is required (null is not a value)'),
    at: z.number().int().min(0).optional(),
    from: z.number().int().min(0).optional(),
    feed: z.string().min(1).max(64).optional(),
  })
  .strict();

export const transformOutputSchema = z
  .array(outputDatapointSchema)
  .max(MAX_DATAPOINTS_PER_MESSAGE, `at most ${MAX_DATAPOINTS_PER_MESSAGE} datapoints per call`);

export type OutputDatapoint = z.infer<typeof outputDatapointSchema>;

export type Conversion =
  | { readonly ok: true; readonly datapoints: OutputDatapoint[]; readonly body: CollectBody | null }
  | { readonly ok: false; readonly error: string };

const describe = (error: z.ZodError): string => {
  const issue = error.issues[0];
  if (!issue) return 'bad shape';
  const path = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  return `${path}: ${issue.message}`;
};

/**
 * Validates what transform returned and groups it into datastreams (by id and feed, in first-seen order).
 * An empty list is valid: the message carried nothing to store (`body` is null).
 */
export function toCollectBody(output: unknown): Conversion {
  const parsed = transformOutputSchema.safeParse(output);
  if (!parsed.success) {
    return {
      ok: false,
      error: `transform must return [{ id, value, at?, from?, feed? }, ...]; ${describe(parsed.error)}`,
    };
  }
  const datapoints = parsed.data;
  if (datapoints.length === 0) return { ok: true, datapoints, body: null };
  const streams = new Map<string, { id: string; feed?: string; datapoints: Record<string, unknown>[] }>();
  for (const dp of datapoints) {
    const key = `${dp.feed ?? 'default'}\u0000${dp.id}`;
    let ds = streams.get(key);
    if (!ds) {
      ds =
        dp.feed === undefined ? { id: dp.id, datapoints: [] } : { id: dp.id, feed: dp.feed, datapoints: [] };
      streams.set(key, ds);
    }
    ds.datapoints.push({
      value: dp.value,
      ...(dp.at !== undefined ? { at: dp.at } : {}),
      ...(dp.from !== undefined ? { from: dp.from } : {}),
    });
  }
  // The same schema devices' own collect bodies pass: ids, feeds, times and the datastream count.
  const body = collectBodySchema.safeParse({ version: '1.0.0', datastreams: [...streams.values()] });
  if (!body.success) return { ok: false, error: `transform output refused: ${describe(body.error)}` };
  return { ok: true, datapoints, body: body.data };
}
