// History figures on the embedded MongoDB-compatible server: writes, one-series range reads among many series,
// bucketed reads and retention deletes, for the chunk layout beside the former one-document-per-point layout.
// `npx tsx bench/history.ts`; BENCH_HISTORY_DEVICES, BENCH_HISTORY_STREAMS, BENCH_HISTORY_POINTS scale it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aggregateBuckets } from '../api/north/history-buckets';
import { DatapointRepository } from '../inventory/datapoints.repo';
import type { DatapointDoc } from '../inventory/documents';
import { openInventory } from '../inventory/inventory';
import { fromStoredValue } from '../inventory/storable';
import { getFreePort, startMongoServer } from '../worker/local-stack';
import { ensureMongoServer } from '../worker/tools';

export interface HistoryBenchOptions {
  readonly say: (line: string) => void;
  /** Series = devices x streams; each device sends one message every 5 minutes with a point per stream. */
  readonly devices?: number;
  readonly streams?: number;
  readonly points?: number;
  /** Messages in flight at once, as concurrent devices would send them. */
  readonly concurrency?: number;
}

export interface LayoutFigures {
  readonly insertPointsPerS: number;
  readonly lastHourP50Ms: number;
  readonly fullRangeP50Ms: number;
  readonly bucketsP50Ms: number;
  readonly retentionDocsPerS: number;
  readonly retentionPointsDeleted: number;
}

export interface HistoryBenchResult {
  readonly series: number;
  readonly points: number;
  readonly chunks: LayoutFigures;
  readonly flat: LayoutFigures;
}

const T0 = Date.UTC(2026, 0, 1);
const MIN = 60_000;
const HOUR = 3_600_000;
/** A point every five minutes, so the data spans several hour chunks. */
const STEP = 5 * MIN;
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function p50(times: number, fn: () => Promise<unknown>): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  out.sort((a, b) => a - b);
  return out[Math.floor(out.length / 2)] ?? NaN;
}

async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

interface Layout {
  write(docs: DatapointDoc[]): Promise<void>;
  range(deviceId: string, ds: string, from: number, to: number, limit: number): Promise<DatapointDoc[]>;
  deleteBefore(cutoff: number): Promise<number>;
}

export async function runHistoryBench(o: HistoryBenchOptions): Promise<HistoryBenchResult> {
  const devices = o.devices ?? 50;
  const streams = o.streams ?? 10;
  const points = o.points ?? 40;
  const concurrency = o.concurrency ?? 8;
  const series = devices * streams;
  const tool = await ensureMongoServer({ ...process.env, TWINFLOW_PREFER_FERRETDB: '1' }, o.say);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-bench-history-'));
  const server = await startMongoServer({ tool, port: await getFreePort(), dataDir: dir });
  try {
    o.say(
      `\nHistory on ${tool.kind}: ${series} series (${devices} devices x ${streams} streams), ${points} points each ` +
        `(one every 5 minutes, one message per device and time, ${concurrency} messages in flight)`,
    );
    const chunksInv = await openInventory(server.uri, 'bench_chunks');
    const flatInv = await openInventory(server.uri, 'bench_flat');
    const repo = new DatapointRepository(chunksInv.collections);
    const flatCol = flatInv.db.collection<DatapointDoc>('datapoints_flat');
    await flatCol.createIndex({ org: 1, deviceId: 1, ds: 1, at: -1 }, { name: 'series_time' });
    const layouts: Record<'chunks' | 'flat', Layout> = {
      chunks: {
        write: (docs) => repo.insertMany(docs),
        range: (deviceId, ds, from, to, limit) => repo.range('bench', deviceId, ds, from, to, limit),
        deleteBefore: (cutoff) => repo.deleteEndedBefore(cutoff),
      },
      // The layout TwinFlow used before: one document per point, read and deleted by a field filter.
      flat: {
        write: async (docs) => {
          await flatCol.insertMany(
            docs.map((d) => ({ ...d })),
            { ordered: false },
          );
        },
        range: (deviceId, ds, from, to, limit) =>
          flatCol
            .find({ org: 'bench', deviceId, ds, at: { $gte: from, $lte: to } }, { projection: { _id: 0 } })
            .sort({ at: -1 })
            .limit(limit)
            .toArray(),
        deleteBefore: async (cutoff) => (await flatCol.deleteMany({ at: { $lt: cutoff } })).deletedCount,
      },
    };
    await new Promise((r) => setTimeout(r, 2_500)); // the launcher indexes new tables' _id every 2 s
    const messages: DatapointDoc[][] = [];
    for (let m = 0; m < points; m++)
      for (let d = 0; d < devices; d++)
        messages.push(
          Array.from({ length: streams }, (_, s) => ({
            org: 'bench',
            deviceId: `dev-${d}`,
            ds: `stream.${s}`,
            feed: 'default',
            at: T0 + m * STEP,
            value: m,
            receivedAt: T0 + m * STEP,
          })),
        );

    const figures = {} as Record<'chunks' | 'flat', LayoutFigures>;
    for (const name of ['chunks', 'flat'] as const) {
      const layout = layouts[name];
      let t = performance.now();
      await pool(messages, concurrency, (docs) => layout.write(docs));
      const insertPointsPerS = (series * points) / ((performance.now() - t) / 1000);
      await new Promise((r) => setTimeout(r, 2_500)); // the launcher indexes new tables' _id every 2 s
      const end = T0 + (points - 1) * STEP;
      const reads = name === 'flat' ? 3 : 9;
      let probe = 0;
      const one = () => `dev-${(probe++ * 37) % devices}`;
      const lastHourP50Ms = await p50(reads, async () => {
        const rows = await layout.range(one(), 'stream.3', end - HOUR + 1, end, 1_000);
        if (rows.length !== Math.min(HOUR / STEP, points))
          throw new Error(`${name}: ${rows.length} points in the last hour`);
      });
      const fullRangeP50Ms = await p50(reads, async () => {
        const rows = await layout.range(one(), 'stream.3', 0, end, 10_000);
        if (rows.length !== points) throw new Error(`${name}: ${rows.length} points in the full range`);
      });
      const bucketsP50Ms = await p50(reads, async () => {
        const rows = await layout.range(one(), 'stream.3', T0, end, 200_001);
        aggregateBuckets(
          rows.map((r) => ({ at: r.at, value: fromStoredValue(r) })),
          { from: T0, to: end + 1, bucketMs: 5 * MIN, agg: 'avg' },
        );
      });
      // Retention: every whole hour before the hour of the newest point.
      const cutoffHour = Math.floor(end / HOUR) * HOUR;
      t = performance.now();
      const deleted = await layout.deleteBefore(cutoffHour);
      const deleteS = (performance.now() - t) / 1000;
      const left = await layout.range('dev-0', 'stream.3', 0, end, 10_000);
      figures[name] = {
        insertPointsPerS,
        lastHourP50Ms,
        fullRangeP50Ms,
        bucketsP50Ms,
        retentionDocsPerS: deleted / deleteS,
        retentionPointsDeleted: points - left.length,
      };
      o.say(
        `  ${name.padEnd(6)} insert ${Math.round(insertPointsPerS)} points/s; one series: last hour ${ms(lastHourP50Ms)}, ` +
          `all ${points} points ${ms(fullRangeP50Ms)}, 5-minute buckets ${ms(bucketsP50Ms)} (p50); ` +
          `retention deleted ${deleted} documents (${points - left.length} points a series) in ${ms(deleteS * 1000)}`,
      );
    }
    await chunksInv.close();
    await flatInv.close();
    return { series, points: series * points, chunks: figures.chunks, flat: figures.flat };
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const env = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
  runHistoryBench({
    say: (line) => process.stdout.write(`${line}\n`),
    devices: env('BENCH_HISTORY_DEVICES'),
    streams: env('BENCH_HISTORY_STREAMS'),
    points: env('BENCH_HISTORY_POINTS'),
  }).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
