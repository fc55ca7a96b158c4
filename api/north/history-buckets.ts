// Time buckets for datapoint history: the query's `bucket` duration and the pure aggregation over [from, to).
import { z } from 'zod';

export const AGGREGATES = ['avg', 'min', 'max', 'sum', 'count'] as const;
export type Aggregate = (typeof AGGREGATES)[number];
export const MAX_BUCKETS = 10_000;

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** A whole number of milliseconds, or with a unit: `500ms`, `60s`, `5m`, `1h`, `1d`. */
const DURATION = /^(\d{1,12})(ms|s|m|h|d)?$/;

/** Parses a bucket duration; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[(m[2] ?? 'ms') as keyof typeof UNIT_MS];
  return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
}

export const bucketSchema = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: 'must be a positive duration: milliseconds, or a number with ms, s, m, h or d (e.g. 5m)',
    });
    return z.NEVER;
  }
  return ms;
});

export interface Bucket {
  /** Inclusive start, ms. */
  readonly start: number;
  /** Exclusive end, ms (the last bucket ends at `to`). */
  readonly end: number;
  /** The aggregate; for count, the number of points of any type. */
  readonly value: number;
  /** Points that went into `value`. */
  readonly count: number;
}

export interface BucketOptions {
  readonly from: number;
  readonly to: number;
  readonly bucketMs: number;
  readonly agg: Aggregate;
}

export const bucketCount = (o: Pick<BucketOptions, 'from' | 'to' | 'bucketMs'>): number =>
  Math.ceil((o.to - o.from) / o.bucketMs);

/**
 * Aggregates points into buckets aligned on `from`: bucket i is [from + i*bucket, from + (i+1)*bucket), cut at
 * `to`. `count` counts every point; avg, min, max and sum use finite numbers only. Buckets with nothing to
 * aggregate are left out, oldest bucket first.
 */
export function aggregateBuckets(
  points: readonly { readonly at: number; readonly value: unknown }[],
  o: BucketOptions,
): Bucket[] {
  const acc = new Map<number, { sum: number; min: number; max: number; count: number }>();
  for (const p of points) {
    if (p.at < o.from || p.at >= o.to) continue;
    const numeric = typeof p.value === 'number' && Number.isFinite(p.value);
    if (o.agg !== 'count' && !numeric) continue;
    const i = Math.floor((p.at - o.from) / o.bucketMs);
    const v = numeric ? p.value : 0;
    const a = acc.get(i);
    if (!a) acc.set(i, { sum: v, min: v, max: v, count: 1 });
    else {
      a.sum += v;
      a.min = Math.min(a.min, v);
      a.max = Math.max(a.max, v);
      a.count += 1;
    }
  }
  return [...acc.entries()]
    .sort(([a], [b]) => a - b)
    .map(([i, a]) => ({
      start: o.from + i * o.bucketMs,
      end: Math.min(o.to, o.from + (i + 1) * o.bucketMs),
      value: pick(o.agg, a),
      count: a.count,
    }));
}

function pick(agg: Aggregate, a: { sum: number; min: number; max: number; count: number }): number {
  switch (agg) {
    case 'avg':
      return a.sum / a.count;
    case 'min':
      return a.min;
    case 'max':
      return a.max;
    case 'sum':
      return a.sum;
    case 'count':
      return a.count;
  }
}
