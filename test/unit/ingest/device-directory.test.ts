// DeviceDirectory: cached lookups, one lookup per device however many messages wait on it.
import { DeviceDirectory } from '../../../ingest/device-directory';
import type { DeviceDoc } from '../../../inventory/documents';
import type { DeviceRepository } from '../../../inventory/devices.repo';

const doc = (org: string, id: string, lifecycle: DeviceDoc['lifecycle'] = 'ACTIVE') =>
  ({ _id: `${org}/${id}`, org, id, type: 'generic', lifecycle, transport: {} }) as unknown as DeviceDoc;

function fakeRepo(known: DeviceDoc[]) {
  const calls = { get: [] as string[] };
  const byKey = new Map(known.map((d) => [d._id, d]));
  const repo = {
    get: async (org: string, id: string) => {
      calls.get.push(`${org}/${id}`);
      return byKey.get(`${org}/${id}`) ?? null;
    },
  } as unknown as DeviceRepository;
  return { repo, calls };
}

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
    const dir = new DeviceDirectory(repo, 10_000, 100, () => now);
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
      get: async () => {
        if (fail) throw new Error('store down');
        return doc('o', 'd1');
      },
    } as unknown as DeviceRepository;
    const dir = new DeviceDirectory(repo);
    await expect(Promise.all([dir.get('o', 'd1'), dir.get('o', 'd1')])).rejects.toThrow('store down');
    fail = false;
    expect((await dir.get('o', 'd1'))?.deviceId).toBe('d1');
  });
});
