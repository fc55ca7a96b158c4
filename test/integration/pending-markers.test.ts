// The pending-marker feed on the real inventory server: writes from one connection (a worker's twins) reach a
// view on another (an API process) before any poll that comes after them, however many race, and a view that
// falls behind starts again from the markers. The views here read the feed for every question (refreshMs 0);
// a view in the writing process hears its writes at once.
import { openInventory, type Inventory } from '../../inventory/inventory';
import { OperationRepository } from '../../inventory/operations.repo';
import { PENDING_RING } from '../../inventory/pending-feed';
import { PendingMarkerView } from '../../operations/pending-markers';
import { itEnv, uniqueName } from './harness';

describe('the pending-marker feed', () => {
  let writerSide: Inventory;
  let readerSide: Inventory;
  let writer: OperationRepository;
  let reader: OperationRepository;

  beforeAll(async () => {
    const db = uniqueName('markers');
    writerSide = await openInventory(itEnv('TWINFLOW_IT_MONGODB_URI'), db);
    readerSide = await openInventory(itEnv('TWINFLOW_IT_MONGODB_URI'), db);
    writer = new OperationRepository(writerSide.collections);
    reader = new OperationRepository(readerSide.collections);
  }, 30_000);
  afterAll(async () => {
    await writerSide?.db.dropDatabase().catch(() => undefined);
    await writerSide?.close();
    await readerSide?.close();
  });

  it('shows a view elsewhere every write that returned, with writes racing from two processes', async () => {
    const view = new PendingMarkerView(reader, { refreshMs: 0 });
    const other = new OperationRepository(readerSide.collections); // a second writing process
    const ids = Array.from({ length: 60 }, (_, i) => `race-${i}`);
    await Promise.all(ids.map((id) => writer.writePendingMarker('o', id, 0, Date.now())));
    expect(await Promise.all(ids.map((id) => view.waiting('o', id)))).toEqual(ids.map(() => 0));
    // Every device gets a write at once, half through each process; each is asked once its write returns.
    const seen = await Promise.all(
      ids.map(async (id, i) => {
        await (i % 2 ? other : writer).writePendingMarker('o', id, i + 1, Date.now());
        return view.waiting('o', id);
      }),
    );
    expect(seen).toEqual(ids.map((_, i) => i + 1));
    const writers = await reader.pendingWriters();
    expect(writers.map((w) => w.seq).sort((a, b) => a - b)).toEqual([30, 90]);
    expect(view.counters()).toEqual({ devices: ids.length, writers: 2 });
  }, 60_000);

  it('stores markers written at once in one update, one write of their feed slots and one publication', async () => {
    // The driver reports commands only to a client that monitors them: the repository gets one of its own.
    const { MongoClient } = await import('mongodb');
    const client = new MongoClient(itEnv('TWINFLOW_IT_MONGODB_URI'), { monitorCommands: true });
    await client.connect();
    try {
      const db = client.db(writerSide.db.databaseName);
      const name = (c: { collectionName: string }) => c.collectionName;
      const c = writerSide.collections;
      const repo = new OperationRepository({
        ...c,
        pendingMarkers: db.collection(name(c.pendingMarkers)),
        pendingChanges: db.collection(name(c.pendingChanges)),
        pendingWriters: db.collection(name(c.pendingWriters)),
      });
      await repo.writePendingMarker('o', 'batch-warm', 0, Date.now()); // the writer's start
      const commands: string[] = [];
      client.on('commandStarted', (e) => {
        const statements = (e.command.updates ?? e.command.documents ?? []) as unknown[];
        commands.push(`${e.commandName} ${String(e.command[e.commandName])} ${statements.length}`);
      });
      const ids = Array.from({ length: 40 }, (_, i) => `batch-${i}`);
      await Promise.all(ids.map((id, i) => repo.writePendingMarker('o', id, i + 1, Date.now())));
      // The first write goes out alone; the 39 asked meanwhile share the next three commands.
      expect(commands).toEqual([
        'update pending_markers 1',
        'update pending_changes 1',
        'update pending_writers 1',
        'update pending_markers 39',
        'update pending_changes 39',
        'update pending_writers 1',
      ]);
      const view = new PendingMarkerView(reader, { refreshMs: 0 });
      expect(await Promise.all(ids.map((id) => view.waiting('o', id)))).toEqual(ids.map((_, i) => i + 1));
      // A device written twice in one batch keeps the later count.
      const twice = [repo.writePendingMarker('o', 'batch-x', 0, Date.now())];
      twice.push(repo.writePendingMarker('o', 'batch-y', 5, Date.now()));
      twice.push(repo.writePendingMarker('o', 'batch-y', 6, Date.now()));
      await Promise.all(twice);
      await expect(view.waiting('o', 'batch-y')).resolves.toBe(6);
    } finally {
      await client.close();
    }
  }, 30_000);

  it('sees a device go from waiting to empty and back, without reading its marker again', async () => {
    const view = new PendingMarkerView(reader, { refreshMs: 0 });
    await writer.writePendingMarker('o', 'flip', 1, Date.now());
    await expect(view.waiting('o', 'flip')).resolves.toBe(1);
    for (const waiting of [0, 2, 0]) {
      await writer.writePendingMarker('o', 'flip', waiting, Date.now());
      await expect(view.waiting('o', 'flip')).resolves.toBe(waiting);
    }
    expect(view.counters().devices).toBe(1);
  }, 30_000);

  it('starts again from the markers after falling more than half a ring behind', async () => {
    let markerReads = 0;
    const view = new PendingMarkerView(
      {
        pendingMarker: (org, id) => (markerReads++, reader.pendingMarker(org, id)),
        pendingWriters: () => reader.pendingWriters(),
        pendingChanges: (wanted) => reader.pendingChanges(wanted),
      },
      { refreshMs: 0 },
    );
    await writer.writePendingMarker('o', 'behind', 0, Date.now());
    await writer.writePendingMarker('o', 'steady', 0, Date.now());
    await expect(view.waiting('o', 'behind')).resolves.toBe(0);
    await expect(view.waiting('o', 'steady')).resolves.toBe(0);
    for (let i = 0; i < PENDING_RING / 2; i += 16)
      await Promise.all(
        Array.from({ length: 16 }, (_, j) => writer.writePendingMarker('o', `filler-${j}`, i, Date.now())),
      );
    await writer.writePendingMarker('o', 'behind', 3, Date.now());
    await expect(view.waiting('o', 'behind')).resolves.toBe(3);
    // Everything held was dropped: the device that did not change is read from its marker again.
    expect(markerReads).toBe(3);
    await expect(view.waiting('o', 'steady')).resolves.toBe(0);
    expect(markerReads).toBe(4);
  }, 120_000);

  it('hears the writes made in its own process without reading the feed for them', async () => {
    let feedReads = 0;
    const here = new OperationRepository(writerSide.collections); // the worker role's, beside the API's
    const view = new PendingMarkerView(
      {
        pendingMarker: (org, id) => writer.pendingMarker(org, id),
        pendingWriters: () => (feedReads++, writer.pendingWriters()),
        pendingChanges: (wanted) => writer.pendingChanges(wanted),
        onLocalPendingWrite: (listener) => writer.onLocalPendingWrite(listener),
      },
      // No read of the feed after the first for a minute: what it answers, it heard.
      { refreshMs: 60_000 },
    );
    await here.writePendingMarker('o', 'local', 0, Date.now());
    await expect(view.waiting('o', 'local')).resolves.toBe(0);
    const reads = feedReads;
    for (const waiting of [1, 0, 4]) {
      await here.writePendingMarker('o', 'local', waiting, Date.now());
      await expect(view.waiting('o', 'local')).resolves.toBe(waiting);
    }
    expect(feedReads).toBe(reads);
    view.close();
  }, 30_000);
});
