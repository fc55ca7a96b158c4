// Where datapoint history lives: chunk and marker document ids built from the series and fixed time periods.
//
// FerretDB serves only `_id` equality from an index (ranges, `$in` and other fields scan the whole
// collection), so every history read is a set of `_id` lookups: a chunk holds one series' points of one
// hour from one write, and insert-only marker documents say which days, 32-day and 512-day periods hold
// data, so a read walks down from coarse periods to the hours that have data.

/** Period lengths, finest first: level 0 is the chunk hour, levels 1-3 are markers. */
export const LEVEL_MS = [3_600_000, 86_400_000, 32 * 86_400_000, 512 * 86_400_000] as const;
export type Level = 0 | 1 | 2 | 3;
export const TOP_LEVEL: Level = 3;
const LEVEL_TAG = ['h', 'd', 'm', 'y'] as const;
/** Fixed width keeps ids of one series sorted by time (36^8 hours is far beyond year 2500). */
const PERIOD_WIDTH = 8;
const SEQ_WIDTH = 4;

export interface SeriesKey {
  readonly org: string;
  readonly deviceId: string;
  readonly ds: string;
}

/** Any character may appear in a datastream id; percent-encoding keeps `/` a separator only. */
const encode = (s: string): string => encodeURIComponent(s);

export const seriesPrefix = (s: SeriesKey): string =>
  `${encode(s.org)}/${encode(s.deviceId)}/${encode(s.ds)}/`;

/** The period of `level` that holds time `at` (ms since the epoch, not negative). */
export function periodOf(at: number, level: Level): number {
  if (!Number.isSafeInteger(at) || at < 0)
    throw new RangeError(`time must be a whole, non-negative number: ${at}`);
  return Math.floor(at / LEVEL_MS[level]);
}

export const periodStart = (period: number, level: Level): number => period * LEVEL_MS[level];
/** Exclusive end. */
export const periodEnd = (period: number, level: Level): number => (period + 1) * LEVEL_MS[level];

function fixed(n: number, width: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} must be a whole, non-negative number: ${n}`);
  const text = n.toString(36);
  if (text.length > width) throw new RangeError(`${what} ${n} does not fit ${width} base-36 digits`);
  return text.padStart(width, '0');
}

/** Marker id for a period of level 1-3, or the id prefix of the chunks of an hour (level 0). */
export const periodId = (s: SeriesKey, level: Level, period: number): string =>
  `${seriesPrefix(s)}${LEVEL_TAG[level]}${fixed(period, PERIOD_WIDTH, 'period')}`;

/** Chunk `seq` of an hour: seqs of one hour are claimed 0, 1, 2... by unique inserts, without gaps. */
export const chunkId = (s: SeriesKey, hour: number, seq: number): string =>
  `${periodId(s, 0, hour)}/${fixed(seq, SEQ_WIDTH, 'chunk sequence')}`;

export const MAX_CHUNK_SEQ = 36 ** SEQ_WIDTH - 1;

/** Periods of `level` that overlap [from, to] (inclusive), newest first. */
export function periodsNewestFirst(level: Level, from: number, to: number): number[] {
  if (to < from) return [];
  const out: number[] = [];
  for (let p = periodOf(to, level); p >= periodOf(from, level); p--) out.push(p);
  return out;
}
