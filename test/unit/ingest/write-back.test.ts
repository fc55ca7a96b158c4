// The write-back: commits left in the log are read back and held; history goes down as one insert of all held
// points, latest values page by page; a commit leaves the log only once both are stored; failures keep
// everything held and in the log for the next round.
import { LatestValueGuard } from '../../../ingest/latest-value-guard';
import { WriteBack, latestEntries } from '../../../ingest/write-back';
import type { Commit, CommitLogRepository } from '../../../inventory/commit-log.repo';
import type { DatapointRepository } from '../../../inventory/datapoints.repo';
import type { DeviceRepository, LatestUpdate } from '../../../inventory/devices.repo';
import type { DatapointDoc } from '../../../inventory/documents';
import { RecentIngest } from '../../../inventory/recent-ingest';

const point = (deviceId: string, at: number, value: number): DatapointDoc => ({
  org: 'o',
  deviceId,
  ds: 'temp',
  feed: 'default',
  at,
  value,
  receivedAt: 5_000 + at,
});

function setup(left: Commit[], stored: Map<string, number> = new Map()) {
  const log = new Map(left.map((c) => [c.id, c]));
  const history: DatapointDoc[][] = [];
  const pages: LatestUpdate[][] = [];
  const fail = { history: false, latest: false };
  const commits = {
    heartbeat: async () => undefined,
    releaseDone: async () => undefined,
    adopt: async () => [...log.values()],
    remove: async (ids: string[]) => ids.forEach((id) => log.delete(id)),
  } as unknown as CommitLogRepository;
  const datapoints = {
    insertMany: async (docs: DatapointDoc[]) => {
      if (fail.history) throw new Error('history down');
      history.push(docs);
    },
  } as unknown as DatapointRepository;
  const devices = {
    storeLatest: async (_org: string, updates: LatestUpdate[]) => {
      if (fail.latest) throw new Error('latest down');
      pages.push(updates);
    },
  } as unknown as DeviceRepository;
  const recent = new RecentIngest();
  // The stored latest `at` per device, as the guard would read it from the latest pages.
  const guard = new LatestValueGuard({
    loadTimes: async (_org, deviceId) =>
      new Map(stored.has(deviceId) ? [['temp|default', stored.get(deviceId)!]] : []),
  });
  const warnings: string[] = [];
  const writeBack = new WriteBack(
    {
      commits,
      datapoints,
      devices,
      recent,
      newer: (org, deviceId, values) => guard.newer(org, deviceId, values),
      warn: (what) => warnings.push(what),
    },
    { historyIntervalMs: 60_000, latestIntervalMs: 60_000, latestPagesPerSecond: 1_000 },
  );
  return { log, history, pages, fail, recent, writeBack, warnings };
}

const held = (recent: RecentIngest, deviceId: string) =>
  recent.points('o', deviceId, 'temp', 0, Infinity).map((p) => p.value);

describe('WriteBack', () => {
  it('reads back commits left by a crash: held for reads at once, written back and deleted on close', async () => {
    const env = setup(
      [
        { id: 'a/0', points: [point('d1', 1, 10), point('d2', 1, 20)] },
        { id: 'a/1', points: [point('d1', 2, 11)] },
      ],
      new Map([['d2', 5]]), // d2's stored latest value is newer than the one left in the log
    );
    expect(await env.writeBack.start()).toBe(2);
    expect(held(env.recent, 'd1').sort()).toEqual([10, 11]);
    expect(env.recent.latestOf('o', 'd1')?.values['temp|default']).toMatchObject({ at: 2, value: 11 });
    // d2 was seen, but its stored value is newer than the one in the log.
    expect(env.recent.latestOf('o', 'd2')).toEqual({ values: {}, lastSeenAt: 5_001 });
    await env.writeBack.close();
    expect(env.history.map((h) => h.map((p) => p.value).sort())).toEqual([[10, 11, 20]]);
    expect(env.pages.flat().sort((a, b) => a.deviceId.localeCompare(b.deviceId))).toEqual([
      { deviceId: 'd1', values: [expect.objectContaining({ value: 11 })], lastSeenAt: 5_002 },
      { deviceId: 'd2', values: [], lastSeenAt: 5_001 },
    ]);
    expect(env.log.size).toBe(0);
    expect(held(env.recent, 'd1')).toEqual([]);
    expect(env.recent.latestOf('o', 'd1')).toBeUndefined();
  });

  it('keeps a commit in the log and its data held while either write-back fails', async () => {
    const env = setup([{ id: 'a/0', points: [point('d1', 1, 10)] }]);
    await env.writeBack.start();
    env.fail.history = true;
    env.fail.latest = true;
    await env.writeBack.close();
    expect(env.log.size).toBe(1);
    expect(held(env.recent, 'd1')).toEqual([10]); // still readable
    expect(env.recent.latestOf('o', 'd1')).toBeDefined();
    expect(env.warnings).toEqual(['could not write history back', 'could not write latest values back']);

    env.fail.history = false;
    await env.writeBack.close();
    expect(env.log.size).toBe(1); // history is stored, the latest value is not
    expect(held(env.recent, 'd1')).toEqual([]);
    expect(env.recent.latestOf('o', 'd1')).toBeDefined();

    env.fail.latest = false;
    await env.writeBack.close();
    expect(env.log.size).toBe(0);
    expect(env.history.flat().map((p) => p.value)).toEqual([10]);
    expect(env.pages).toHaveLength(1);
  });

  it('writes back on its own intervals while running', async () => {
    const env = setup([]);
    const wb = new WriteBack(
      {
        commits: {
          heartbeat: async () => undefined,
          releaseDone: async () => undefined,
          adopt: async () => [],
          remove: async (ids: string[]) => ids.forEach((id) => env.log.delete(id)),
        } as never,
        datapoints: { insertMany: async (d: DatapointDoc[]) => void env.history.push(d) } as never,
        devices: { storeLatest: async (_o: string, u: LatestUpdate[]) => void env.pages.push(u) } as never,
        recent: env.recent,
        newer: async (_o, _d, v) => v,
        warn: () => undefined,
      },
      { historyIntervalMs: 10, latestIntervalMs: 10, latestPagesPerSecond: 1_000 },
    );
    await wb.start();
    const points = [point('d1', 1, 10)];
    env.log.set('b/0', { id: 'b/0', points });
    env.recent.add(points, latestEntries(points));
    wb.committed('b/0');
    const deadline = Date.now() + 5_000;
    while (env.log.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(env.log.size).toBe(0);
    expect(env.history.flat().map((p) => p.value)).toEqual([10]);
    expect(env.pages.flat().map((u) => u.deviceId)).toEqual(['d1']);
    await wb.close();
  });
});

describe('RecentIngest', () => {
  it('keeps points readable while a history write-back runs, and gives them back when it fails', () => {
    const recent = new RecentIngest();
    recent.add([point('d1', 1, 10)], []);
    expect(recent.takeHistory().map((p) => p.value)).toEqual([10]);
    recent.add([point('d1', 2, 11)], []);
    expect(held(recent, 'd1').sort()).toEqual([10, 11]);
    expect(() => recent.takeHistory()).toThrow('already under way');
    recent.finishHistory(false);
    expect(recent.takeHistory().map((p) => p.value)).toEqual([10, 11]);
    recent.finishHistory(true);
    expect(held(recent, 'd1')).toEqual([]);
    expect(recent.counters()).toEqual({ heldPoints: 0, heldDevices: 0 });
  });

  it('forgets a written-back device only when nothing changed since it was taken', () => {
    const recent = new RecentIngest();
    recent.add([], latestEntries([point('d1', 1, 10), point('d2', 1, 20)]));
    const pages = recent.takeLatestPages();
    recent.add([], latestEntries([point('d1', 2, 11)]));
    for (const p of pages) recent.latestStored(p);
    expect(recent.latestOf('o', 'd2')).toBeUndefined();
    expect(recent.latestOf('o', 'd1')?.values['temp|default']?.value).toBe(11);
    // An older value never replaces a newer one.
    recent.add([], latestEntries([point('d1', 1, 9)]));
    expect(recent.latestOf('o', 'd1')?.values['temp|default']?.value).toBe(11);
  });
});
