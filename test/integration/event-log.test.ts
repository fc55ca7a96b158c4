// The event log's repository on the real inventory server: one insert an append (the batch and its keys),
// keyed events logged once across writers and restarts (keys from the collection they used to have included),
// numbering without gaps or repeats while the end hint lags, and retention taking keys with their events.
import type { NewEvent } from '../../events/event-types';
import { EventRepository, HEAD_EVERY_MS } from '../../inventory/events.repo';
import { openInventory, type Inventory } from '../../inventory/inventory';
import { itEnv, uniqueName } from './harness';

const event = (n: number, key?: string, at = Date.now()): NewEvent => ({
  type: 'device.changed',
  deviceId: `d-${n}`,
  at,
  body: { n },
  ...(key !== undefined ? { key } : {}),
});

describe('the event log repository', () => {
  let inventory: Inventory;
  let other: Inventory;

  beforeAll(async () => {
    const db = uniqueName('eventlog');
    inventory = await openInventory(itEnv('TWINFLOW_IT_MONGODB_URI'), db);
    other = await openInventory(itEnv('TWINFLOW_IT_MONGODB_URI'), db);
  }, 30_000);
  afterAll(async () => {
    await inventory?.db.dropDatabase().catch(() => undefined);
    await inventory?.close();
    await other?.close();
  });

  it('stores an append with its keys in one insert command, and writes the end hint soon after', async () => {
    const commands: string[] = [];
    const listen = (e: { commandName: string; command: Record<string, unknown> }) => {
      if (e.commandName !== 'endSessions')
        commands.push(`${e.commandName} ${String(e.command[e.commandName])}`);
    };
    // The driver reports commands only to a client that monitors them: the repository gets one of its own.
    const { MongoClient } = await import('mongodb');
    const client = new MongoClient(itEnv('TWINFLOW_IT_MONGODB_URI'), { monitorCommands: true });
    await client.connect();
    try {
      const db = client.db(inventory.db.databaseName);
      const log = new EventRepository({
        ...inventory.collections,
        events: db.collection(inventory.collections.events.collectionName),
        eventHeads: db.collection(inventory.collections.eventHeads.collectionName),
        eventKeys: db.collection(inventory.collections.eventKeys.collectionName),
      });
      await log.append('one', [event(0)]); // finds where the log ends
      client.on('commandStarted', listen);
      const logged = await log.append('one', [event(1, 'k-1'), event(2, 'k-2'), event(3)], {
        checkKeys: false,
      });
      expect(commands).toEqual(['insert events']);
      expect(logged.map((e) => e.deviceId)).toEqual(['d-1', 'd-2', 'd-3']);
      await new Promise((r) => setTimeout(r, HEAD_EVERY_MS + 300));
      expect(commands.filter((c) => c.startsWith('update'))).toEqual(['update event_heads']);
      const head = await inventory.collections.eventHeads.findOne({ _id: 'one' });
      expect(head?.batch).toBe(2);
    } finally {
      client.off('commandStarted', listen);
      await client.close();
    }
  }, 30_000);

  it('logs a keyed event once, across writers and a restart', async () => {
    const first = new EventRepository(inventory.collections);
    const second = new EventRepository(other.collections);
    expect(await first.append('keys', [event(1, 'once'), event(2)])).toHaveLength(2);
    expect(await second.append('keys', [event(1, 'once'), event(3, 'new')])).toHaveLength(1);
    const restarted = new EventRepository(inventory.collections);
    expect(await restarted.append('keys', [event(1, 'once'), event(3, 'new')])).toHaveLength(0);
    const all = await restarted.readAfter('keys', 0, 100);
    expect(all.map((e) => e.deviceId)).toEqual(['d-1', 'd-2', 'd-3']);
  }, 30_000);

  it('stores a batch whose key another writer logged meanwhile, and every key after that one', async () => {
    const log = new EventRepository(inventory.collections);
    await log.append('race', [event(1, 'taken')]);
    // Told not to check (as a writer that just inserted the record its events stand for): the insert meets the key.
    const logged = await log.append('race', [event(2, 'before'), event(3, 'taken'), event(4, 'after')], {
      checkKeys: false,
    });
    expect(logged.map((e) => e.deviceId)).toEqual(['d-2', 'd-3', 'd-4']);
    const again = await new EventRepository(other.collections).append('race', [
      event(2, 'before'),
      event(4, 'after'),
      event(5, 'fresh'),
    ]);
    expect(again.map((e) => e.deviceId)).toEqual(['d-5']);
  }, 30_000);

  it('honours keys logged in the collection they had before', async () => {
    await inventory.collections.eventKeys.insertOne({ _id: 'legacy/old-key' });
    const log = new EventRepository(other.collections);
    expect(await log.append('legacy', [event(1, 'old-key'), event(2, 'new-key')])).toHaveLength(1);
  }, 30_000);

  it('numbers batches from two writers without gaps or repeats while the end hint lags', async () => {
    const a = new EventRepository(inventory.collections);
    const b = new EventRepository(other.collections);
    const ids: number[] = [];
    for (let round = 0; round < 10; round++) {
      const [x, y] = await Promise.all([
        a.append('pair', [event(round * 2)]),
        b.append('pair', [event(round * 2 + 1)]),
      ]);
      ids.push(...x.map((e) => e.seq), ...y.map((e) => e.seq));
    }
    const batches = ids.map((id) => Math.floor(id / 1000)).sort((p, q) => p - q);
    expect(batches).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // A process started now finds the end past the hint.
    await expect(new EventRepository(other.collections).counter('pair')).resolves.toBe(20_000);
  }, 30_000);

  it('deletes the keys of events retention deletes, with them', async () => {
    const log = new EventRepository(inventory.collections);
    const old = Date.now() - 10 * 86_400_000;
    await log.append('aged', [event(1, 'aged-key', old)]);
    await log.append('aged', [event(2, 'kept-key')]);
    expect(await log.deleteBefore(Date.now() - 86_400_000)).toBeGreaterThanOrEqual(2);
    expect(await inventory.collections.events.findOne({ _id: 'aged/key/aged-key' })).toBeNull();
    expect(await inventory.collections.events.findOne({ _id: 'aged/key/kept-key' })).not.toBeNull();
    const all = await log.readAfter('aged', 0, 100);
    expect(all.map((e) => e.deviceId)).toEqual(['d-2']);
  }, 30_000);
});
