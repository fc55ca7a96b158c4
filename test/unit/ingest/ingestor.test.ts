// Ingestor: one commit document per group commit, acknowledged only once stored; the points and latest values are
// then held for reads (newest value wins whatever order commits finish in); a failed commit fails its messages,
// holds nothing of them and does not stop the next batch.
import { Ingestor } from '../../../ingest/ingestor';
import type { DeviceDirectory } from '../../../ingest/device-directory';
import { LatestValueGuard } from '../../../ingest/latest-value-guard';
import type { TwinNotifier } from '../../../ingest/twin-notifier';
import type { Principal } from '../../../access/principal';
import type { CommitLogRepository } from '../../../inventory/commit-log.repo';
import type { DatapointRepository } from '../../../inventory/datapoints.repo';
import type { DeviceRepository } from '../../../inventory/devices.repo';
import { RecentIngest } from '../../../inventory/recent-ingest';

const flush = () => new Promise((r) => setImmediate(r));

function setup(groupCommit: { concurrency: number; maxBatchItems?: number } = { concurrency: 2 }) {
  const commits: { values: number[]; finish(err?: Error): void }[] = [];
  const log = {
    timings: { encodeSeconds: 0, insertSeconds: 0 },
    append: (docs: { value?: unknown }[]) =>
      new Promise<string>((resolve, reject) => {
        const values = docs.map((d) => Number(d.value));
        const id = `c${commits.length}`;
        commits.push({ values, finish: (err) => (err ? reject(err) : resolve(id)) });
      }),
  } as unknown as CommitLogRepository;
  const untouched = new Proxy(
    {},
    {
      get: () => () => {
        throw new Error('the hot path must not write history or latest pages');
      },
    },
  );
  const directory = {
    get: async (org: string, deviceId: string) =>
      deviceId === 'unknown'
        ? undefined
        : { org, deviceId, twinType: 'generic', active: deviceId !== 'retired', transport: {} },
  } as unknown as DeviceDirectory;
  const notifier = { report: () => undefined } as unknown as TwinNotifier;
  const recent = new RecentIngest();
  const ingestor = new Ingestor({
    devices: untouched as DeviceRepository,
    datapoints: untouched as DatapointRepository,
    commits: log,
    recent,
    directory,
    notifier,
    latestGuard: new LatestValueGuard({ loadTimes: async () => new Map() }),
    now: () => 1_000,
    groupCommit,
  });
  const principal = {
    kind: 'service',
    org: 'o',
    id: 'k',
    role: 'org-admin',
    permissions: new Set(),
    platformAdmin: false,
  } as unknown as Principal;
  const send = (device: string, value: number) =>
    ingestor.ingest(
      principal,
      device,
      { datastreams: [{ id: 'reading', datapoints: [{ value, at: value }] }] },
      'mqtt',
    );
  const held = (device: string) => recent.points('o', device, 'reading', 0, Infinity).map((p) => p.value);
  const latest = (device: string) => recent.latestOf('o', device)?.values['reading|default']?.value;
  return { commits, send, ingestor, principal, recent, held, latest };
}

describe('Ingestor', () => {
  it('is under pressure while more messages wait for the group commit than a quarter of a batch', async () => {
    const env = setup({ concurrency: 1, maxBatchItems: 8 });
    const sent = [1, 2, 3, 4].map((v) => env.send(`d${v}`, v));
    await flush();
    // One commit under way (the first message); three wait, more than 8 / 4.
    expect(env.commits).toHaveLength(1);
    expect(env.ingestor.underPressure()).toBe(true);
    env.commits[0]!.finish();
    await flush();
    expect(env.ingestor.underPressure()).toBe(false); // the three go in the next commit
    env.commits[1]!.finish();
    await Promise.all(sent);
  });

  it('writes one commit per batch and acknowledges a message only once its commit is stored', async () => {
    const env = setup();
    let acked = 0;
    const first = env.send('d1', 1).then(() => acked++);
    await flush();
    const second = env.send('d1', 2).then(() => acked++);
    await flush();
    const third = env.send('d2', 3).then(() => acked++);
    await flush();
    // Two commits under way; the third message waits for a free write and goes alone.
    expect(env.commits.map((c) => c.values)).toEqual([[1], [2]]);
    expect(env.held('d1')).toEqual([]); // nothing readable before it is stored
    env.commits[0]!.finish();
    await first;
    expect(acked).toBe(1);
    expect(env.held('d1')).toEqual([1]);
    expect(env.latest('d1')).toBe(1);
    env.commits[1]!.finish();
    await second;
    await flush();
    expect(env.commits.map((c) => c.values)).toEqual([[1], [2], [3]]);
    env.commits[2]!.finish();
    await third;
    expect(acked).toBe(3);
    expect(env.held('d1').sort()).toEqual([1, 2]);
    expect(env.latest('d1')).toBe(2);
    expect(env.latest('d2')).toBe(3);
    expect(env.ingestor.counters()).toMatchObject({ batches: 3, items: 3, pendingCommits: 3, heldPoints: 3 });
  });

  it('keeps the newest latest value when commits finish out of order', async () => {
    const env = setup();
    const first = env.send('d1', 1);
    await flush();
    const second = env.send('d1', 2);
    await flush();
    env.commits[1]!.finish(); // the newer commit is stored first
    await second;
    env.commits[0]!.finish();
    await first;
    expect(env.latest('d1')).toBe(2);
    expect(env.held('d1').sort()).toEqual([1, 2]);
  });

  it('fails the messages of a batch whose commit failed, holds nothing of it, and goes on', async () => {
    const env = setup();
    const first = env.send('d1', 1);
    await flush();
    const second = env.send('d2', 2);
    await flush();
    env.commits[0]!.finish(new Error('store down'));
    env.commits[1]!.finish();
    await expect(first).rejects.toThrow('store down');
    await expect(second).resolves.toEqual({ ok: true, value: { deviceId: 'd2', stored: 1 } });
    expect(env.held('d1')).toEqual([]);
    expect(env.latest('d1')).toBeUndefined();
    expect(env.latest('d2')).toBe(2);
    // The guard forgot d1, so the same value is taken again when resent.
    const again = env.send('d1', 1);
    await flush();
    env.commits[2]!.finish();
    await expect(again).resolves.toMatchObject({ ok: true });
    expect(env.latest('d1')).toBe(1);
  });

  describe('refusals', () => {
    const body = (n: number) => ({
      datastreams: [{ id: 'r', datapoints: Array.from({ length: n }, (_, i) => ({ value: i, at: i })) }],
    });
    const device = (deviceId: string) =>
      ({
        kind: 'device',
        org: 'o',
        id: 'k',
        role: 'device',
        permissions: new Set(),
        platformAdmin: false,
        deviceId,
      }) as unknown as Principal;

    it('answers typed refusals and stores nothing', async () => {
      const env = setup();
      const { ingestor, principal } = env;
      await expect(ingestor.ingest(principal, 'unknown', body(1), 'http')).resolves.toMatchObject({
        ok: false,
        code: 'NOT_FOUND',
      });
      await expect(ingestor.ingest(principal, 'retired', body(1), 'http')).resolves.toMatchObject({
        ok: false,
        code: 'GONE',
      });
      await expect(ingestor.ingest(device('a'), 'b', body(1), 'http')).resolves.toMatchObject({
        ok: false,
        code: 'PERMISSION_DENIED',
      });
      await expect(
        ingestor.ingest(device('a'), 'a', { ...body(1), device: 'b' }, 'http'),
      ).resolves.toMatchObject({ ok: false, code: 'PERMISSION_DENIED' });
      await expect(ingestor.ingest(principal, 'd1', body(5_001), 'http')).resolves.toMatchObject({
        ok: false,
        code: 'PAYLOAD_TOO_LARGE',
      });
      expect(env.commits).toHaveLength(0);
    });
  });
});
