// The write-back: turns the commit log into history chunks and latest pages at a bounded rate.
//
// An acknowledged message is already stored, in its commit document (inventory/commit-log.repo.ts), and
// readable here through what the process holds (inventory/recent-ingest.ts). This writes that down in the
// layout reads use: every `historyIntervalMs`, one chunk per series for all points held (not one per
// series and group commit); and in rounds at least `latestIntervalMs` apart, the latest pages of the
// devices that changed, at most `latestPagesPerSecond`. Each loop writes at most `busyShare` of the time,
// so the commit inserts acknowledgements wait for keep the store. A commit is deleted once both its points and its
// latest values are stored. On start, commits a crashed process left behind are read back and written
// back like new ones: nothing acknowledged depends on the write-back having run.
import type { DatapointRepository } from '../inventory/datapoints.repo';
import type { DeviceRepository } from '../inventory/devices.repo';
import type { CommitLogRepository } from '../inventory/commit-log.repo';
import type { DatapointDoc } from '../inventory/documents';
import type { LatestEntry, LatestPageTake, RecentIngest } from '../inventory/recent-ingest';

export interface WriteBackOptions {
  /** Time between history write-backs. */
  readonly historyIntervalMs: number;
  /** Least time from the start of one latest round to the start of the next. */
  readonly latestIntervalMs: number;
  /** Latest-page updates per second at most (each rewrites a whole page on the embedded FerretDB). */
  readonly latestPagesPerSecond: number;
  /**
   * The share of time each write-back loop may spend writing: after a write, it waits long enough for
   * the store to serve the hot path's commit inserts (the embedded FerretDB writes one thing at a time,
   * and a steady stream of page rewrites starved the inserts for tens of seconds).
   */
  readonly busyShare: number;
  /**
   * How long another process's silence must last before this one adopts its commits (TWINFLOW_INGEST_LEASE_MS).
   * Each process beats three times a lease. Longer than any pause a live process may take (a long GC, a
   * starved machine): a process adopted while alive would write its points back twice.
   */
  readonly leaseMs: number;
}

export const WRITE_BACK_DEFAULTS: WriteBackOptions = {
  historyIntervalMs: 2_000,
  latestIntervalMs: 5_000,
  latestPagesPerSecond: 4,
  busyShare: 0.25,
  leaseMs: 60_000,
};

/**
 * Series whose chunks one history insert writes at most, before the write-back lets the hot path in: a
 * commit insert waits for a whole insert command on the embedded FerretDB (with 250 series, commits
 * waited seconds on a busy machine).
 */
const HISTORY_SLICE_SERIES = 50;

export interface WriteBackDeps {
  readonly commits: CommitLogRepository;
  readonly datapoints: DatapointRepository;
  readonly devices: DeviceRepository;
  readonly recent: RecentIngest;
  /** Latest values newer than what is stored, per device (see LatestValueGuard). */
  readonly newer: (
    org: string,
    deviceId: string,
    values: LatestEntry['values'],
  ) => Promise<LatestEntry['values']>;
  readonly warn: (what: string, err: unknown) => void;
  /**
   * Logs the points of a history write-back to the event log before they are written (for forwarders). A failure
   * fails the write-back, which runs again: points are logged at least once.
   */
  readonly logPoints?: (points: readonly DatapointDoc[]) => Promise<void>;
}

/** Each device's newest value per datastream in some points, and when it was last seen. */
export function latestEntries(points: readonly DatapointDoc[]): LatestEntry[] {
  const devices = new Map<
    string,
    { org: string; deviceId: string; values: Map<string, DatapointDoc>; seen: number }
  >();
  for (const p of points) {
    const key = `${p.org}\u0000${p.deviceId}`;
    let d = devices.get(key);
    if (!d) devices.set(key, (d = { org: p.org, deviceId: p.deviceId, values: new Map(), seen: 0 }));
    d.seen = Math.max(d.seen, p.receivedAt);
    const k = `${p.ds}\u0000${p.feed}`;
    const prev = d.values.get(k);
    if (!prev || prev.at <= p.at) d.values.set(k, p);
  }
  return [...devices.values()].map((d) => ({
    org: d.org,
    deviceId: d.deviceId,
    lastSeenAt: d.seen,
    values: [...d.values.values()].map((p) => ({
      id: p.ds,
      feed: p.feed,
      at: p.at,
      receivedAt: p.receivedAt,
      ...(p.valueJson === undefined ? { value: p.value } : { valueJson: p.valueJson }),
    })),
  }));
}

/** Points in slices of at most `maxSeries` series each (a series never split over two slices). */
function sliceBySeries(points: readonly DatapointDoc[], maxSeries: number): DatapointDoc[][] {
  const bySeries = new Map<string, DatapointDoc[]>();
  for (const p of points) {
    const key = `${p.org}\u0000${p.deviceId}\u0000${p.ds}`;
    const list = bySeries.get(key);
    if (list) list.push(p);
    else bySeries.set(key, [p]);
  }
  const series = [...bySeries.values()];
  const slices: DatapointDoc[][] = [];
  for (let i = 0; i < series.length; i += maxSeries) slices.push(series.slice(i, i + maxSeries).flat());
  return slices;
}

export class WriteBack {
  private readonly options: WriteBackOptions;
  /** Commits held, and which of their two write-backs are done. */
  private readonly pending = new Map<string, { history: boolean; latest: boolean }>();
  /** Commits taken by the history write-back under way. */
  private historyTake: string[] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];
  /** Pauses under way: a stop ends them at once. */
  private readonly wake = new Set<() => void>();
  private readonly stats = {
    historyWrites: 0,
    historySeconds: 0,
    latestPages: 0,
    latestSeconds: 0,
    failures: 0,
    /** Commits read back from earlier starts of this instance or adopted from silent ones. */
    adoptedCommits: 0,
  };

  constructor(
    private readonly deps: WriteBackDeps,
    options: Partial<WriteBackOptions> = {},
  ) {
    this.options = { ...WRITE_BACK_DEFAULTS, ...options };
  }

  /** Records a stored commit whose points and latest values the process now holds. */
  committed(id: string): void {
    this.pending.set(id, { history: false, latest: false });
  }

  /**
   * Reads back the commits earlier starts of this instance left in the log (a crash), and those of instances
   * silent for longer than the lease, and holds them like new ones; then starts the loops, one of which goes
   * on beating for this instance and adopting from silent ones.
   */
  async start(): Promise<number> {
    await this.deps.commits.heartbeat(Date.now());
    const adopted = await this.adopt();
    this.loops = [
      this.loop(() => this.writeHistory(), this.options.historyIntervalMs),
      this.latestLoop(),
      this.loop(() => this.beat(), this.options.leaseMs / 3),
    ];
    return adopted;
  }

  private async adopt(): Promise<number> {
    const left = await this.deps.commits.adopt(Date.now(), this.options.leaseMs);
    for (const commit of left) {
      if (this.pending.has(commit.id)) continue;
      const latest: LatestEntry[] = [];
      for (const e of latestEntries(commit.points)) {
        const values = await this.deps.newer(e.org, e.deviceId, e.values);
        latest.push({ ...e, values });
      }
      this.deps.recent.add(commit.points, latest);
      this.committed(commit.id);
    }
    this.stats.adoptedCommits += left.length;
    return left.length;
  }

  private async beat(): Promise<void> {
    try {
      await this.deps.commits.heartbeat(Date.now());
      await this.adopt();
    } catch (err) {
      this.stats.failures += 1;
      this.deps.warn('could not beat for this ingest instance, or adopt a silent one', err);
    }
  }

  /** Stops the loops and writes back everything held (a clean stop leaves the commit log empty). */
  async close(): Promise<void> {
    this.stopped = true;
    for (const w of [...this.wake]) w();
    await Promise.all(this.loops);
    await this.writeHistory();
    await this.writeLatest(Infinity);
    await this.deps.commits
      .releaseDone()
      .catch((err: unknown) => this.deps.warn('could not release adopted ingest instances', err));
  }

  counters() {
    return { ...this.stats, pendingCommits: this.pending.size, ...this.deps.recent.counters() };
  }

  private async loop(step: () => Promise<void>, intervalMs: number): Promise<void> {
    while (!this.stopped) {
      await this.pause(intervalMs);
      if (this.stopped) return;
      await step();
    }
  }

  private async latestLoop(): Promise<void> {
    let started = performance.now();
    while (!this.stopped) {
      await this.pause(this.options.latestIntervalMs - (performance.now() - started));
      if (this.stopped) return;
      started = performance.now();
      await this.writeLatest(this.options.latestPagesPerSecond);
    }
  }

  /** Waits `ms`, or less when the write-back is stopping. */
  private pause(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.wake.add(done);
    });
  }

  /** After a write that took `spentMs`: the pause that keeps the loop's writes within `busyShare`. */
  private breather(spentMs: number): Promise<void> {
    const share = this.options.busyShare;
    return this.pause((spentMs * (1 - share)) / share);
  }

  /** Writes every held point as history chunks (one per series and hour), a slice of series at a time. */
  private async writeHistory(): Promise<void> {
    this.historyTake = [...this.pending].filter(([, s]) => !s.history).map(([id]) => id);
    const points = this.deps.recent.takeHistory();
    const slices = sliceBySeries(points, HISTORY_SLICE_SERIES);
    try {
      if (this.deps.logPoints && points.length > 0) await this.deps.logPoints(points);
      for (const slice of slices) {
        const t = performance.now();
        try {
          await this.deps.datapoints.insertMany(slice);
        } finally {
          this.stats.historySeconds += (performance.now() - t) / 1000;
        }
        await this.breather(performance.now() - t);
      }
      this.deps.recent.finishHistory(true);
      for (const id of this.historyTake) this.mark(id, 'history');
      this.stats.historyWrites += 1;
    } catch (err) {
      this.deps.recent.finishHistory(false);
      this.stats.failures += 1;
      this.deps.warn('could not write history back', err);
    }
    await this.removeDone();
  }

  /**
   * One latest round: writes the pages of every device held when it starts, `pagesPerSecond` at most; the
   * commits held at its start are then written back as far as latest values go.
   */
  private async writeLatest(pagesPerSecond: number): Promise<void> {
    const commits = [...this.pending].filter(([, s]) => !s.latest).map(([id]) => id);
    const pages = this.deps.recent.takeLatestPages();
    let ok = true;
    for (const take of pages) {
      const t = performance.now();
      ok = (await this.writePage(take)) && ok;
      const spent = performance.now() - t;
      this.stats.latestSeconds += spent / 1000;
      if (Number.isFinite(pagesPerSecond)) {
        await this.pause(1000 / pagesPerSecond - spent);
        await this.breather(spent);
      }
    }
    if (ok) for (const id of commits) this.mark(id, 'latest');
    await this.removeDone();
  }

  private async writePage(take: LatestPageTake): Promise<boolean> {
    try {
      await this.deps.devices.storeLatest(
        take.org,
        take.entries.map(({ held }) => ({
          deviceId: held.deviceId,
          values: [...held.values.values()],
          lastSeenAt: held.lastSeenAt,
        })),
      );
      this.deps.recent.latestStored(take);
      this.stats.latestPages += 1;
      return true;
    } catch (err) {
      this.stats.failures += 1;
      this.deps.warn('could not write latest values back', err);
      return false;
    }
  }

  private mark(id: string, what: 'history' | 'latest'): void {
    const s = this.pending.get(id);
    if (s) s[what] = true;
  }

  /** Deletes the commits whose points and latest values are both stored. */
  private async removeDone(): Promise<void> {
    const done = [...this.pending].filter(([, s]) => s.history && s.latest).map(([id]) => id);
    if (done.length === 0) return;
    try {
      await this.deps.commits.remove(done);
      for (const id of done) this.pending.delete(id);
    } catch (err) {
      // They stay in the log and are tried again; a restart would write them back once more (harmless).
      this.deps.warn('could not delete written-back commits', err);
    }
  }
}
