// The contract of a transform's answer, checked on the host: a list of datapoints, turned into an OpenGate collect body.
import { z } from 'zod';
import {
  type CollectBody,
  collectBodySchema,
  MAX_DATAPOINTS_PER_MESSAGE,
  MAX_DATASTREAMS_PER_MESSAGE,
} from '../ingest/collect.schema';

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

const transformOutputSchema = z
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

const MAX_EPOCH_MS = 16_725_225_600_000;
const CONTROL = /[\u0000-\u001f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const KEYS = new Set(['id', 'value', 'at', 'from', 'feed']);
const goodText = (v: unknown, max: number): boolean =>
  typeof v === 'string' && v.length >= 1 && v.length <= max && !CONTROL.test(v) && !LONE_SURROGATE.test(v);
const goodTime = (v: unknown): boolean =>
  v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_EPOCH_MS);

/**
 * The checks of both schemas (the output's and the collect body's) written out, for the hot path: zod costs
 * several times the function call itself. Anything this refuses goes through zod for the exact message.
 */
function fastCheck(output: unknown): OutputDatapoint[] | undefined {
  if (!Array.isArray(output) || output.length > MAX_DATAPOINTS_PER_MESSAGE) return undefined;
  for (const dp of output as unknown[]) {
    if (typeof dp !== 'object' || dp === null || Array.isArray(dp)) return undefined;
    const o = dp as Record<string, unknown>;
    for (const k in o) if (!KEYS.has(k)) return undefined;
    if (!goodText(o.id, 256) || o.value === undefined || o.value === null) return undefined;
    if (!goodTime(o.at) || !goodTime(o.from)) return undefined;
    if (o.feed !== undefined && !goodText(o.feed, 64)) return undefined;
  }
  return output as OutputDatapoint[];
}

type Stream = CollectBody['datastreams'][number];

function group(datapoints: readonly OutputDatapoint[]): Stream[] {
  const streams = new Map<string, Stream>();
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
  return [...streams.values()];
}

/**
 * Validates what transform returned and groups it into datastreams (by id and feed, in first-seen order).
 * An empty list is valid: the message carried nothing to store (`body` is null).
 */
export function toCollectBody(output: unknown): Conversion {
  const fast = fastCheck(output);
  if (fast) {
    if (fast.length === 0) return { ok: true, datapoints: fast, body: null };
    const datastreams = group(fast);
    if (datastreams.length <= MAX_DATASTREAMS_PER_MESSAGE) {
      return { ok: true, datapoints: fast, body: { version: '1.0.0', datastreams } };
    }
  }
  const parsed = transformOutputSchema.safeParse(output);
  if (!parsed.success) {
    return {
      ok: false,
      error: `transform must return [{ id, value, at?, from?, feed? }, ...]; ${describe(parsed.error)}`,
    };
  }
  const datapoints = parsed.data;
  if (datapoints.length === 0) return { ok: true, datapoints, body: null };
  // The same schema devices' own collect bodies pass: ids, feeds, times and the datastream count.
  const body = collectBodySchema.safeParse({ version: '1.0.0', datastreams: group(datapoints) });
  if (!body.success) return { ok: false, error: `transform output refused: ${describe(body.error)}` };
  return { ok: true, datapoints, body: body.data };
}
