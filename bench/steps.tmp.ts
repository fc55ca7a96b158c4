import { openInventory } from '../inventory/inventory';
import { DeviceRepository } from '../inventory/devices.repo';
import { KeyRepository } from '../inventory/keys.repo';
import { DatapointRepository } from '../inventory/datapoints.repo';
(async () => {
  const inv = await openInventory('mongodb://127.0.0.1:37122/', 'steps');
  const devices = new DeviceRepository(inv.collections);
  const keys = new KeyRepository(inv.collections);
  const dps = new DatapointRepository(inv.collections);
  const now = new Date();
  const docs = Array.from({ length: 200 }, (_, i) => ({
    _id: `default/d${i}`,
    org: 'default',
    id: `d${i}`,
    type: 'generic',
    tags: [],
    attributes: {},
    transport: {},
    lifecycle: 'ACTIVE' as const,
    createdAt: now,
    createdBy: 'x',
    updatedAt: now,
    latest: {},
  }));
  await devices.insertMany(docs);
  const ks = docs.map((d) => keys.newKey('default', 'device', now, d.id));
  await keys.insertMany(ks.map((k) => k.doc));
  const time = async (label: string, fn: (i: number) => Promise<unknown>) => {
    const t = performance.now();
    for (let i = 0; i < 50; i++) await fn(i);
    console.log(label.padEnd(22), ((performance.now() - t) / 50).toFixed(2), 'ms');
  };
  await time('key findActive', (i) => keys.findActive(ks[i]!.secret));
  await time('device get', (i) => devices.get('default', `d${i}`));
  await time('latestTimes', (i) => devices.latestTimes('default', `d${i}`));
  await time('datapoints insert 3', (i) =>
    dps.insertMany(
      [0, 1, 2].map((k) => ({
        org: 'default',
        deviceId: `d${i}`,
        ds: `s${k}`,
        feed: 'default',
        at: Date.now(),
        value: k,
        receivedAt: Date.now(),
      })),
    ),
  );
  await time('storeLatest', (i) =>
    devices.storeLatest('default', [
      {
        deviceId: `d${i}`,
        values: [0, 1, 2].map((k) => ({
          id: `s${k}`,
          feed: 'default',
          at: Date.now(),
          receivedAt: Date.now(),
          value: k,
        })),
        lastSeenAt: Date.now(),
      },
    ]),
  );
  await time('writeTwinSnapshot', (i) =>
    devices.writeTwinSnapshot('default', `d${i}`, { version: 5 + i } as never),
  );
  await inv.close();
})();
