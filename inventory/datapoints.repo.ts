// Datapoint history: insert-only chunk and marker documents, read by `_id` lookups (see history-layout.ts).
import type { ChunkPointDoc, DatapointChunkDoc, DatapointDoc } from './documents';
import {
  type Level,
  MAX_CHUNK_SEQ,
  type SeriesKey,
  TOP_LEVEL,
  chunkId,
  periodEnd,
  periodId,
  periodOf,
  periodStart,
  periodsNewestFirst,
} from './history-layout';
import type { Collections } from './inventory';
import type { RecentIngest } from './recent-ingest';
import { duplicatesOnly } from './write-errors';

/** Below this many child periods a read looks at the children directly instead of at markers. */
const DIRECT_CHILDREN = 48;
/** Lookups a read has in flight at once. */
const READ_PARALLELISM = 8;
const CACHE_LIMIT = 50_000;

/** A Map that forgets its oldest entries past a size. */
class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly limit: number) {
    super();
  }
  override set(key: K, value: V): this {
    if (!this.has(key) && this.size >= this.limit) {
      const oldest = this.keys().next();
      if (!oldest.done) this.delete(oldest.value);
    }
    return super.set(key, value);
  }
}

interface ChunkDraft {
  readonly series: SeriesKey;
  readonly hour: number;
  readonly points: ChunkPointDoc[];
}

const hourKey = (s: SeriesKey, hour: number) => chunkId(s, hour, 0);

/** Everything that tells two points apart. */
const pointKey = (p: DatapointDoc): string =>
  JSON.stringify([p.feed, p.at, p.from, p.receivedAt, p.value, p.valueJson]);

/**
 * Lookups run at most this many at once: a write of thousands of new series must not open thousands of
 * requests together (the embedded FerretDB stalls when its connections are all taken).
 */
const LOOKUP_CONCURRENCY = 8;
/** Documents sent in one insert at most. */
const INSERT_SLICE = 250;

/** Maps with at most `limit` calls under way; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T);
      }
    }),
  );
  return out;
}

export class DatapointRepository {
  /** Next free chunk seq per series hour, as this process last saw it (a guess: inserts confirm it). */
  private readonly nextSeq = new BoundedMap<string, number>(CACHE_LIMIT);
  /** Marker ids this process knows exist. */
  private readonly markers = new BoundedMap<string, true>(CACHE_LIMIT);

  /** `recent`: points this process has committed but not yet written back, merged into reads. */
  constructor(
    private readonly c: Collections,
    private readonly recent?: RecentIngest,
  ) {}

  /**
   * Stores datapoints: one chunk per series and hour, after the markers of its periods. Resolves once
   * everything is written; a rejected write leaves at most duplicate-free partial data, never a hole.
   */
  async insertMany(docs: readonly DatapointDoc[]): Promise<void> {
    const drafts = new Map<string, ChunkDraft>();
    for (const d of docs) {
      const series = { org: d.org, deviceId: d.deviceId, ds: d.ds };
      const hour = periodOf(d.at, 0);
      const key = hourKey(series, hour);
      let draft = drafts.get(key);
      if (!draft) drafts.set(key, (draft = { series, hour, points: [] }));
      draft.points.push({
        feed: d.feed,
        at: d.at,
        ...(d.from === undefined ? {} : { from: d.from }),
        ...(d.valueJson === undefined ? { value: d.value } : { valueJson: d.valueJson }),
        receivedAt: d.receivedAt,
      });
    }
    if (drafts.size === 0) return;
    // Markers first: a chunk is visible to reads only through the markers above it.
    const markerDocs = new Map<string, DatapointChunkDoc>();
    for (const { series, hour } of drafts.values()) {
      const at = periodStart(hour, 0);
      for (const level of [1, 2, 3] as const) {
        const period = periodOf(at, level);
        const _id = periodId(series, level, period);
        if (!this.markers.has(_id) && !markerDocs.has(_id))
          markerDocs.set(_id, this.doc(series, level, period, _id));
      }
    }
    await this.insertIgnoringDuplicates([...markerDocs.values()]);
    for (const id of markerDocs.keys()) this.markers.set(id, true);
    await this.insertChunks([...drafts.values()]);
  }

  /**
   * Points of one datastream (all feeds) with from <= at <= to, newest first, at most `limit`: the stored
   * ones and those this process holds for write-back. Exact duplicates (a commit written back again after
   * a crash, or a point moved to the store while this read ran) count once.
   */
  async range(
    org: string,
    deviceId: string,
    ds: string,
    from: number,
    to: number,
    limit: number,
  ): Promise<DatapointDoc[]> {
    // What is held first, the store second (see recent-ingest.ts).
    const held = this.recent?.points(org, deviceId, ds, from, to) ?? [];
    const stored = await this.storedRange({ org, deviceId, ds }, from, to, limit);
    const seen = new Set<string>();
    const out: DatapointDoc[] = [];
    for (const p of [...held, ...stored].sort((a, b) => b.at - a.at)) {
      const key = pointKey(p);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(p);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** The stored points of a series in [from, to], newest first; at least the newest `limit` (more may come). */
  private async storedRange(
    series: SeriesKey,
    from: number,
    to: number,
    limit: number,
  ): Promise<DatapointDoc[]> {
    const out: DatapointDoc[] = [];
    for await (const hour of this.hoursWithData(series, TOP_LEVEL, from, to)) {
      const points = (await this.readHour(series, hour)).filter((p) => p.at >= from && p.at <= to);
      for (const p of points) out.push({ ...series, ...p });
      // Hours come newest first, so once the limit is reached no later hour can hold a newer point. The
      // caller drops duplicates, so this hour is returned whole.
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Deletes every history document whose period ended at or before `cutoff`: whole hours of points and
   * markers of periods with nothing left to mark. Returns how many documents went.
   */
  async deleteEndedBefore(cutoff: number): Promise<number> {
    const res = await this.c.datapoints.deleteMany({ end: { $lte: cutoff } });
    this.nextSeq.clear();
    this.markers.clear();
    return res.deletedCount;
  }

  /** Hours of [from, to] that may hold points of the series, newest first, found through the markers. */
  private async *hoursWithData(s: SeriesKey, level: Level, from: number, to: number): AsyncGenerator<number> {
    if (level === 0) {
      yield* periodsNewestFirst(0, from, to);
      return;
    }
    const child = (level - 1) as Level;
    if (periodOf(to, child) - periodOf(from, child) < DIRECT_CHILDREN) {
      yield* this.hoursWithData(s, child, from, to);
      return;
    }
    const periods = periodsNewestFirst(level, from, to);
    for (let i = 0; i < periods.length; i += READ_PARALLELISM) {
      const batch = periods.slice(i, i + READ_PARALLELISM);
      const found = await Promise.all(batch.map((p) => this.exists(periodId(s, level, p))));
      for (let j = 0; j < batch.length; j++) {
        if (!found[j]) continue;
        const p = batch[j]!;
        yield* this.hoursWithData(
          s,
          child,
          Math.max(from, periodStart(p, level)),
          Math.min(to, periodEnd(p, level) - 1),
        );
      }
    }
  }

  /**
   * Every point of one series hour: chunks 0, 1, 2... up to the first missing one. Waves grow from one
   * lookup, so an empty hour costs one lookup and a busy one a few round trips.
   */
  private async readHour(s: SeriesKey, hour: number): Promise<ChunkPointDoc[]> {
    const points: ChunkPointDoc[] = [];
    let wave = 1;
    for (let seq = 0; seq <= MAX_CHUNK_SEQ; seq += wave, wave = Math.min(wave * 2, READ_PARALLELISM)) {
      const ids = Array.from({ length: wave }, (_, i) => seq + i)
        .filter((n) => n <= MAX_CHUNK_SEQ)
        .map((n) => chunkId(s, hour, n));
      const chunks = await Promise.all(ids.map((_id) => this.c.datapoints.findOne({ _id })));
      for (const chunk of chunks) {
        if (!chunk) return points;
        points.push(...(chunk.points ?? []));
      }
    }
    return points;
  }

  private async exists(_id: string): Promise<boolean> {
    return (await this.c.datapoints.findOne({ _id }, { projection: { _id: 1 } })) !== null;
  }

  private doc(s: SeriesKey, level: Level, period: number, _id: string): DatapointChunkDoc {
    return {
      _id,
      org: s.org,
      deviceId: s.deviceId,
      ds: s.ds,
      level,
      start: periodStart(period, level),
      end: periodEnd(period, level),
    };
  }

  /** Inserts chunks, each at the first free seq of its hour; a seq taken meanwhile moves it to the next. */
  private async insertChunks(drafts: ChunkDraft[]): Promise<void> {
    // An hour this process has not written yet starts at seq 0 without a lookup: it usually is free (a new
    // hour), and when it is not (a restart, another process) the insert says so and the search below runs.
    let pending = drafts.map((d) => ({ draft: d, seq: this.nextSeq.get(hourKey(d.series, d.hour)) ?? 0 }));
    while (pending.length > 0) {
      for (const p of pending)
        if (p.seq > MAX_CHUNK_SEQ)
          throw new Error(`too many writes to one hour of ${p.draft.series.ds} (${MAX_CHUNK_SEQ + 1})`);
      const docs = pending.map(({ draft, seq }) => ({
        ...this.doc(draft.series, 0, draft.hour, chunkId(draft.series, draft.hour, seq)),
        points: draft.points,
      }));
      const taken = await this.insertReportingDuplicates(docs);
      for (const [i, p] of pending.entries())
        if (!taken.has(i)) this.nextSeq.set(hourKey(p.draft.series, p.draft.hour), p.seq + 1);
      pending = await mapLimit(
        pending.filter((_, i) => taken.has(i)),
        LOOKUP_CONCURRENCY,
        async (p) => ({ ...p, seq: await this.firstFreeSeq(p.draft.series, p.draft.hour, p.seq + 1) }),
      );
    }
  }

  /**
   * The first seq of an hour at or after `start` not yet taken. Seqs have no gaps, so doubling steps then
   * halving finds it in a few lookups even after a restart or when other processes wrote meanwhile.
   */
  private async firstFreeSeq(s: SeriesKey, hour: number, start: number): Promise<number> {
    if (!(await this.exists(chunkId(s, hour, start)))) return start;
    let taken = start;
    let step = 1;
    let free = start + 1;
    while (free <= MAX_CHUNK_SEQ && (await this.exists(chunkId(s, hour, free)))) {
      taken = free;
      step *= 2;
      free = start + step;
    }
    free = Math.min(free, MAX_CHUNK_SEQ + 1);
    while (free - taken > 1) {
      const mid = Math.floor((taken + free) / 2);
      if (await this.exists(chunkId(s, hour, mid))) taken = mid;
      else free = mid;
    }
    return free;
  }

  private async insertIgnoringDuplicates(docs: DatapointChunkDoc[]): Promise<void> {
    await this.insertReportingDuplicates(docs);
  }

  /** Inserts every document it can; returns the indexes refused as duplicates, throws on anything else. */
  private async insertReportingDuplicates(docs: DatapointChunkDoc[]): Promise<Set<number>> {
    if (docs.length === 0) return new Set();
    if (docs.length > INSERT_SLICE) {
      // In slices, one after another (see LOOKUP_CONCURRENCY); indexes stay those of the whole list.
      const taken = new Set<number>();
      for (let i = 0; i < docs.length; i += INSERT_SLICE) {
        const refused = await this.insertReportingDuplicates(docs.slice(i, i + INSERT_SLICE));
        for (const j of refused) taken.add(i + j);
      }
      return taken;
    }
    try {
      await this.c.datapoints.insertMany(docs, { ordered: false });
      return new Set();
    } catch (err) {
      const duplicates = duplicatesOnly(err, docs.length);
      if (duplicates === undefined) throw err;
      return duplicates;
    }
  }
}
