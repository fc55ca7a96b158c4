// Ingestor with two writes at a time: pipelined writes keep the latest values in batch order, one batch at a time, and never ahead
// of their history; a failed history write fails its messages without stopping the next batch.
import { Ingestor } from '../../../ingest/ingestor';
import type { DeviceDirectory } from '../../../ingest/device-directory';
import { LatestValueGuard } from '../../../ingest/latest-value-guard';
import type { TwinNotifier } from '../../../ingest/twin-notifier';
import type { Principal } from '../../../access/principal';
import type { DatapointRepository } from '../../../inventory/datapoints.repo';
import type { DeviceRepository, LatestUpdate } from '../../../inventory/devices.repo';

const flush = () => new Promise((r) => setImmediate(r));

function setup() {
  const events: string[] = [];
  const histories: { values: number[]; finish(err?: Error): void }[] = [];
  let latestRunning = 0;
  let latestMax = 0;
  const datapoints = {
    insertMany: (docs: { value?: unknown }[]) =>
      new Promise<void>((resolve, reject) => {
        const values = docs.map((d) => Number(d.value));
        events.push(`history start ${values.join(',')}`);
        histories.push({
          values,
          finish: (err) => {
            events.push(`history ${err ? 'failed' : 'done'} ${values.join(',')}`);
            if (err) reject(err);
            else resolve();
          },
        });
      }),
  } as unknown as DatapointRepository;
  const devices = {
    storeLatest: async (_org: string, updates: readonly LatestUpdate[]) => {
      latestRunning++;
      latestMax = Math.max(latestMax, latestRunning);
      events.push(`latest ${updates.flatMap((u) => u.values.map((v) => v.value)).join(',')}`);
      await flush();
      latestRunning--;
    },
  } as unknown as DeviceRepository;
  const directory = {
    get: async (org: string, deviceId: string) =>
      deviceId === 'unknown'
        ? undefined
        : { org, deviceId, twinType: 'generic', active: deviceId !== 'retired', transport: {} },
  } as unknown as DeviceDirectory;
  const notifier = { report: () => undefined } as unknown as TwinNotifier;
  const ingestor = new Ingestor({
    devices,
    datapoints,
    directory,
    notifier,
    latestGuard: new LatestValueGuard({ loadTimes: async () => new Map() }),
    now: () => 1_000,
    groupCommit: { concurrency: 2 },
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
  return { events, histories, send, ingestor, principal, latestMax: () => latestMax };
}

describe('Ingestor', () => {
  it('writes the next batch history while the last one finishes, and latest values in batch order', async () => {
    const env = setup();
    const first = env.send('d1', 1);
    await flush();
    const second = env.send('d1', 2); // the same device, newer: must land last
    await flush();
    expect(env.histories.map((h) => h.values)).toEqual([[1], [2]]); // two histories under way at once
    env.histories[1]!.finish(); // the newer history finishes first
    await flush();
    expect(env.events.filter((e) => e.startsWith('latest'))).toEqual([]); // waits for the older batch
    env.histories[0]!.finish();
    await Promise.all([first, second]);
    expect(env.events.filter((e) => e.startsWith('latest'))).toEqual(['latest 1', 'latest 2']);
    expect(env.latestMax()).toBe(1);
  });

  it('fails the messages of a batch whose history failed, stores no latest values for it, and goes on', async () => {
    const env = setup();
    const first = env.send('d1', 1);
    await flush();
    const second = env.send('d2', 2);
    await flush();
    env.histories[0]!.finish(new Error('store down'));
    env.histories[1]!.finish();
    await expect(first).rejects.toThrow('store down');
    await expect(second).resolves.toEqual({ ok: true, value: { deviceId: 'd2', stored: 1 } });
    expect(env.events.filter((e) => e.startsWith('latest'))).toEqual(['latest 2']);
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
      expect(env.histories).toHaveLength(0);
    });
  });
});
