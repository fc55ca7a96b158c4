// DeviceDirectory: cached lookups, one lookup per device however many messages wait on it, refreshed in the
// background before they expire.
import { DeviceDirectory } from '../../../ingest/device-directory';
import type { DeviceDoc } from '../../../inventory/documents';
import type { DeviceRepository } from '../../../inventory/devices.repo';

const doc = (org: string, id: string, lifecycle: DeviceDoc['lifecycle'] = 'ACTIVE') =>
  ({ _id: `${org}/${id}`, org, id, type: 'generic', lifecycle, transport: {} }) as unknown as DeviceDoc;

function fakeRepo(known: DeviceDoc[]) {
  const calls = { get: [] as string[], scans: [] as string[] };
  const byKey = new Map(known.map((d) => [d._id, d]));
  const releases: (() => void)[] = [];
  const scan = { held: false, fail: false, release: undefined as (() => void) | undefined };
  const repo = {
    lookupInfo: async (org: string, id: string) => {
      calls.get.push(`${org}/${id}`);
      if (gate.held) await new Promise<void>((r) => releases.push(r));
      return byKey.get(`${org}/${id}`) ?? null;
    },
    allInfo: async function* (org: string) {
      calls.scans.push(org);
      if (scan.held) await new Promise<void>((r) => (scan.release = r));
      if (scan.fail) throw new Error('scan failed');
      for (const d of byKey.values()) if (d.org === org) yield { deviceId: d.id, ...d };
    },
  } as unknown as DeviceRepository;
  const gate = {
    held: false,
    /** Lets the lookups waiting on the gate answer, one at a time, oldest first. */
    open: async () => {
      gate.held = false;
      while (releases.length > 0) {
        releases.shift()!();
        await new Promise((t) => setImmediate(t));
      }
    },
  };
  return { repo, calls, byKey, gate, scan };
}

/** A directory whose entries live 10 s (at most 100), on a clock and a random draw the test sets. */
const tenSeconds = (repo: DeviceRepository, now: () => number, random: number) =>
  new DeviceDirectory(repo, 10_000, 100, now, () => random);

describe('DeviceDirectory', () => {
  it('looks a device up once for many concurrent messages, then serves it from the cache', async () => {
    const { repo, calls } = fakeRepo([doc('o', 'd1')]);
    const dir = new DeviceDirectory(repo);
    const infos = await Promise.all(Array.from({ length: 5 }, () => dir.get('o', 'd1')));
    expect(infos.every((i) => i?.deviceId === 'd1' && i.active)).toBe(true);
    await dir.get('o', 'd1');
    expect(calls.get).toEqual(['o/d1']);
  });

  it('looks each of many devices up once, unknown ids answering null', async () => {
    const known = Array.from({ length: 40 }, (_, i) => doc(i % 2 ? 'a' : 'b', `d${i}`));
    const { repo, calls } = fakeRepo(known);
    const dir = new DeviceDirectory(repo);
    const asked = [...known.map((d) => [d.org, d.id] as const), ['a', 'missing'] as const];
    const infos = await Promise.all([...asked, ...asked].map(([org, id]) => dir.get(org, id)));
    expect(infos.slice(0, 40).map((i) => i?.deviceId)).toEqual(known.map((d) => d.id));
    expect(infos[40]).toBeNull();
    expect(calls.get).toHaveLength(41);
  });

  it('reads a device again after its entry expires or is forgotten', async () => {
    let now = 0;
    const { repo, calls } = fakeRepo([doc('o', 'd1', 'DECOMMISSIONED')]);
    const dir = tenSeconds(repo, () => now, 1);
    expect((await dir.get('o', 'd1'))?.active).toBe(false);
    now = 10_001;
    await dir.get('o', 'd1');
    dir.forget('o', 'd1');
    await dir.get('o', 'd1');
    expect(calls.get).toHaveLength(3);
  });

  it('fails every waiting lookup when the store fails, and tries again next time', async () => {
    let fail = true;
    const repo = {
      lookupInfo: async () => {
        if (fail) throw new Error('store down');
        return doc('o', 'd1');
      },
    } as unknown as DeviceRepository;
    const dir = new DeviceDirectory(repo);
    await expect(Promise.all([dir.get('o', 'd1'), dir.get('o', 'd1')])).rejects.toThrow('store down');
    fail = false;
    expect((await dir.get('o', 'd1'))?.deviceId).toBe('d1');
  });

  it('serves a due entry at once and refreshes it in the background, never past its time to live', async () => {
    let now = 0;
    const { repo, calls, byKey } = fakeRepo([doc('o', 'd1')]);
    // Due halfway through its 10 s (random 0), gone at 10 s.
    const dir = tenSeconds(repo, () => now, 0);
    expect((await dir.get('o', 'd1'))?.active).toBe(true);
    now = 4_999;
    await dir.get('o', 'd1');
    expect(calls.get).toHaveLength(1);
    // Due: answered from the entry (still active) while the refresh reads the decommissioned record.
    byKey.set('o/d1', doc('o', 'd1', 'DECOMMISSIONED'));
    now = 5_000;
    expect((await dir.get('o', 'd1'))?.active).toBe(true);
    expect(calls.get).toHaveLength(2);
    await new Promise((r) => setImmediate(r));
    expect((await dir.get('o', 'd1'))?.active).toBe(false);
    expect(dir.counters()).toMatchObject({ refreshes: 1, lookups: 2 });
  });

  it('refreshes at most four entries at once, each once, and waits for a lookup past the time to live', async () => {
    let now = 0;
    const known = Array.from({ length: 10 }, (_, i) => doc('o', `d${i}`));
    const { repo, calls, gate } = fakeRepo(known);
    const dir = tenSeconds(repo, () => now, 0);
    await Promise.all(known.map((d) => dir.get('o', d.id)));
    expect(calls.get).toHaveLength(10);
    gate.held = true;
    now = 6_000;
    // Every message is answered from its due entry while four refreshes are under way and six wait.
    for (let round = 0; round < 3; round++) {
      const infos = await Promise.all(known.map((d) => dir.get('o', d.id)));
      expect(infos.every((i) => i?.active)).toBe(true);
    }
    expect(calls.get).toHaveLength(14);
    expect(dir.counters()).toMatchObject({ refreshQueue: 6 });
    await gate.open();
    expect(calls.get).toHaveLength(20);
    expect(dir.counters()).toMatchObject({ refreshes: 10, refreshQueue: 0 });
    // Refreshed at 6 s, so gone at 16 s: a message then waits for its own lookup.
    now = 16_000;
    gate.held = true;
    let answered = false;
    const waiting = dir.get('o', 'd0').then(() => (answered = true));
    await new Promise((r) => setImmediate(r));
    expect(answered).toBe(false);
    await gate.open();
    await waiting;
    expect(calls.get).toHaveLength(21);
  });

  it('keeps serving a due entry when its refresh fails, until its time to live ends', async () => {
    let now = 0;
    let fail = false;
    const repo = {
      lookupInfo: async () => {
        if (fail) throw new Error('store down');
        return doc('o', 'd1');
      },
    } as unknown as DeviceRepository;
    const dir = tenSeconds(repo, () => now, 0);
    await dir.get('o', 'd1');
    fail = true;
    now = 7_000;
    expect((await dir.get('o', 'd1'))?.deviceId).toBe('d1');
    await new Promise((r) => setImmediate(r));
    expect(dir.counters()).toMatchObject({ refreshFailures: 1 });
    expect((await dir.get('o', 'd1'))?.deviceId).toBe('d1');
    now = 10_000;
    await expect(dir.get('o', 'd1')).rejects.toThrow('store down');
  });

  it('reads the whole organization in one scan when many lookups wait at once', async () => {
    const known = Array.from({ length: 200 }, (_, i) => doc('o', `d${i}`));
    const { repo, calls, gate, scan } = fakeRepo([...known, doc('other', 'x')]);
    const dir = new DeviceDirectory(repo);
    gate.held = true;
    scan.held = true;
    // 64 lookups wait; the 65th miss starts a scan, and every later miss waits for it.
    const answers = known.map((d) => dir.get('o', d.id));
    const unknown = dir.get('o', 'missing');
    await new Promise((r) => setImmediate(r));
    expect(calls.get).toHaveLength(64);
    expect(calls.scans).toEqual(['o']);
    dir.forget('o', 'd150'); // changed meanwhile: not taken from the scan
    scan.release!();
    await new Promise((r) => setImmediate(r));
    await gate.open();
    const infos = await Promise.all(answers);
    expect(infos.map((i) => i?.deviceId)).toEqual(known.map((d) => d.id));
    expect(await unknown).toBeNull();
    // The 64 before the scan, the forgotten one, the unknown one: every other device came from the scan.
    expect(calls.get).toHaveLength(66);
    expect(calls.get.slice(64).sort()).toEqual(['o/d150', 'o/missing']);
    await Promise.all(known.map((d) => dir.get('o', d.id)));
    expect(calls.get).toHaveLength(66);
    expect(dir.counters()).toMatchObject({ scans: 1, scanFailures: 0 });
  });

  it('looks devices up one by one when the scan fails', async () => {
    const known = Array.from({ length: 100 }, (_, i) => doc('o', `d${i}`));
    const { repo, calls, gate, scan } = fakeRepo(known);
    const dir = new DeviceDirectory(repo);
    gate.held = true;
    scan.fail = true;
    const answers = known.map((d) => dir.get('o', d.id));
    await new Promise((r) => setImmediate(r));
    await gate.open();
    expect((await Promise.all(answers)).every((i) => i?.active)).toBe(true);
    expect(calls.get).toHaveLength(100);
    expect(dir.counters()).toMatchObject({ scans: 1, scanFailures: 1 });
  });

  it('keeps a large, active organization fresh with one scan each half time to live, and stops when it is idle', async () => {
    let now = 0;
    const known = Array.from({ length: 80 }, (_, i) => doc('o', `d${i}`));
    const { repo, calls, byKey } = fakeRepo([...known, doc('o', 'never-heard'), doc('small', 's1')]);
    const dir = tenSeconds(repo, () => now, 0.5);
    for (const d of known) await dir.get('o', d.id);
    await dir.get('small', 's1');
    expect(calls.get).toHaveLength(81);
    // Half a time to live later the scan refreshes what is held, and sees the decommission.
    byKey.set('o/d3', doc('o', 'd3', 'DECOMMISSIONED'));
    now = 5_000;
    await dir.keepWarm();
    expect(calls.scans).toEqual(['o']);
    // Past the first lookups' time to live: still no lookup, and the scan added no device it did not hold.
    now = 12_000;
    expect((await dir.get('o', 'd3'))?.active).toBe(false);
    for (const d of known) await dir.get('o', d.id);
    expect(calls.get).toHaveLength(81);
    expect(dir.counters().cached).toBe(81);
    // An hour without a message: no more scans, and entries expire as before.
    now = 12_000 + 3_600_000;
    await dir.keepWarm();
    expect(calls.scans).toEqual(['o']);
    dir.close();
  });
});
