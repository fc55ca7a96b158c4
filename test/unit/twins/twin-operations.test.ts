// Covers the twin's operation table: admission, turns, the pending queue, cancellation and counts.
import type { OperationRequest } from '../../../twins/operations';
import {
  type OperationTable,
  type TwinOperation,
  MAX_OPEN_OPERATIONS,
  RECENT_OPERATION_IDS,
  admitOperation,
  cancelAll,
  cancelOperation,
  claimPending,
  emptyOperationTable,
  operationCounts,
  operationEnded,
  operationWaiting,
} from '../../../twins/twin-operations';
import type { Result } from '../../../twins/types';

const T0 = 1_700_000_000_000;
const TTL = 3_600_000;

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.value;
}

const request = (id: string, overrides: Partial<OperationRequest> = {}): OperationRequest => ({
  id,
  org: 'acme',
  deviceId: 'dev-1',
  twinType: 'generic',
  name: 'REBOOT_EQUIPMENT',
  parameters: { n: id },
  delivery: 'push',
  requestedBy: 'key:k1',
  createdAt: T0,
  timeoutMs: 60_000,
  ttlMs: TTL,
  retries: 0,
  retriesDelayMs: 1_000,
  retryResultList: [],
  ...overrides,
});

const pending = (id: string, overrides: Partial<OperationRequest> = {}): OperationRequest =>
  request(id, { delivery: 'pending', ...overrides });

/** Admits the requests in order into an empty table. */
function tableWith(requests: OperationRequest[], maxConcurrent = 1): OperationTable {
  return requests.reduce(
    (table, req) => unwrap(admitOperation(table, req, maxConcurrent)).table,
    emptyOperationTable(),
  );
}

const phases = (table: OperationTable): Record<string, string> =>
  Object.fromEntries(table.open.map((o) => [o.id, o.phase]));

describe('admitOperation', () => {
  it('runs a pushed operation at once when the device has a free slot', () => {
    const req = request('a');
    const decision = unwrap(admitOperation(emptyOperationTable(), req, 1));
    expect(decision.duplicate).toBe(false);
    expect(decision.table.open).toEqual([
      {
        id: 'a',
        name: 'REBOOT_EQUIPMENT',
        delivery: 'push',
        phase: 'running',
        holdsSlot: true,
        createdAt: T0,
        expiresAt: T0 + TTL,
      },
    ]);
    expect(decision.effects).toEqual([{ kind: 'startOperation', request: req, startNow: true }]);
  });

  it('queues a second pushed operation when maxConcurrent is 1', () => {
    const decision = unwrap(admitOperation(tableWith([request('a')]), request('b'), 1));
    expect(phases(decision.table)).toEqual({ a: 'running', b: 'queued' });
    expect(decision.effects).toEqual([{ kind: 'startOperation', request: request('b'), startNow: false }]);
  });

  it('runs a second pushed operation when maxConcurrent is 2', () => {
    const decision = unwrap(admitOperation(tableWith([request('a')], 2), request('b'), 2));
    expect(phases(decision.table)).toEqual({ a: 'running', b: 'running' });
    expect(decision.effects).toMatchObject([{ kind: 'startOperation', startNow: true }]);
  });

  it('holds a pending operation as waiting, keeping its parameters, without taking a slot', () => {
    const req = pending('p', { parameters: { type: 'HARDWARE' } });
    const decision = unwrap(admitOperation(emptyOperationTable(), req, 1));
    expect(decision.table.open).toEqual([
      {
        id: 'p',
        name: 'REBOOT_EQUIPMENT',
        delivery: 'pending',
        phase: 'waiting',
        holdsSlot: false,
        parameters: { type: 'HARDWARE' },
        createdAt: T0,
        expiresAt: T0 + TTL,
      },
    ]);
    expect(decision.effects).toEqual([{ kind: 'startOperation', request: req, startNow: false }]);
    expect(phases(unwrap(admitOperation(decision.table, request('a'), 1)).table).a).toBe('running');
  });

  it('does not keep the parameters of a pushed operation in the table', () => {
    expect(tableWith([request('a')]).open[0]).not.toHaveProperty('parameters');
  });

  it('answers duplicate, with the same table and no effects, for an id already open', () => {
    const table = tableWith([request('a')]);
    const decision = unwrap(admitOperation(table, request('a', { name: 'OTHER' }), 1));
    expect(decision).toEqual({ table, effects: [], duplicate: true });
    expect(decision.table).toBe(table);
  });

  it('answers duplicate for an id that ended recently', () => {
    const ended = operationEnded(tableWith([request('a')]), 'a', 1).table;
    const decision = unwrap(admitOperation(ended, request('a'), 1));
    expect(decision.duplicate).toBe(true);
    expect(decision.table).toBe(ended);
    expect(decision.effects).toEqual([]);
  });

  it('refuses with RESOURCE_EXHAUSTED once MAX_OPEN_OPERATIONS are open', () => {
    const open: TwinOperation[] = Array.from({ length: MAX_OPEN_OPERATIONS }, (_, i) => ({
      id: `w${i}`,
      name: 'X',
      delivery: 'pending',
      phase: 'waiting',
      holdsSlot: false,
      createdAt: T0,
      expiresAt: T0 + TTL,
    }));
    const full: OperationTable = { open, recentlyEnded: [] };
    expect(admitOperation(full, pending('one-more'), 1)).toMatchObject({
      ok: false,
      code: 'RESOURCE_EXHAUSTED',
    });
    const almost: OperationTable = { open: open.slice(1), recentlyEnded: [] };
    expect(admitOperation(almost, pending('one-more'), 1).ok).toBe(true);
  });

  it('does not change the table it was given', () => {
    const table = tableWith([request('a')]);
    const copy = structuredClone(table);
    admitOperation(table, request('b'), 1);
    expect(table).toEqual(copy);
  });
});

describe('operationEnded', () => {
  it('forgets the operation and remembers its id', () => {
    const decision = operationEnded(tableWith([request('a'), pending('p')]), 'a', 1);
    expect(decision.table.open.map((o) => o.id)).toEqual(['p']);
    expect(decision.table.recentlyEnded).toEqual(['a']);
    expect(decision.effects).toEqual([]);
  });

  it('gives the freed slot to the oldest queued pushed operation', () => {
    const table = tableWith([request('a'), request('b'), request('c')]);
    const decision = operationEnded(table, 'a', 1);
    expect(phases(decision.table)).toEqual({ b: 'running', c: 'queued' });
    expect(decision.effects).toEqual([{ kind: 'proceedOperation', id: 'b' }]);
  });

  it('promotes two queued operations when maxConcurrent is 2 and two slots are free', () => {
    const table = tableWith([request('a'), request('b'), request('c'), request('d')], 1);
    const decision = operationEnded(table, 'a', 2);
    expect(phases(decision.table)).toEqual({ b: 'running', c: 'running', d: 'queued' });
    expect(decision.effects).toEqual([
      { kind: 'proceedOperation', id: 'b' },
      { kind: 'proceedOperation', id: 'c' },
    ]);
  });

  it('promotes nothing while another pushed operation still runs', () => {
    const table = tableWith([request('a'), request('b'), request('c')], 2);
    const decision = operationEnded(table, 'a', 1);
    expect(phases(decision.table)).toEqual({ b: 'running', c: 'queued' });
    expect(decision.effects).toEqual([]);
  });

  it('answers the same table and no effects for an unknown id', () => {
    const table = tableWith([request('a'), request('b')]);
    const decision = operationEnded(table, 'nope', 1);
    expect(decision.table).toBe(table);
    expect(decision.effects).toEqual([]);
  });

  it('changes nothing when an end arrives twice', () => {
    const once = operationEnded(tableWith([request('a'), request('b')]), 'a', 1).table;
    const twice = operationEnded(once, 'a', 1);
    expect(twice.table).toBe(once);
    expect(twice.effects).toEqual([]);
  });

  it('keeps at most RECENT_OPERATION_IDS ended ids, dropping the oldest', () => {
    let table = emptyOperationTable();
    const total = RECENT_OPERATION_IDS + 3;
    for (let i = 0; i < total; i++) {
      table = unwrap(admitOperation(table, pending(`op-${i}`), 1)).table;
      table = operationEnded(table, `op-${i}`, 1).table;
    }
    expect(table.recentlyEnded).toHaveLength(RECENT_OPERATION_IDS);
    expect(table.recentlyEnded[0]).toBe('op-3');
    expect(table.recentlyEnded.at(-1)).toBe(`op-${total - 1}`);
  });
});

describe('operationWaiting', () => {
  it('puts a handed-over pending operation back to waiting, so the next poll takes it again', () => {
    const claimed = claimPending(tableWith([pending('p'), pending('q')]), 10, T0).table;
    const decision = operationWaiting(claimed, 'p');
    expect(phases(decision.table)).toEqual({ p: 'waiting', q: 'handedOver' });
    expect(decision.effects).toEqual([]);
    expect(claimPending(decision.table, 10, T0).effects).toMatchObject([
      { kind: 'handOverOperations', operations: [{ id: 'p' }] },
    ]);
  });

  it('leaves running, queued, waiting and cancelling operations as they are', () => {
    const base = tableWith([request('a'), request('b'), pending('w'), pending('c')]);
    const table = unwrap(cancelOperation(base, 'c', 'key:k1')).table;
    for (const id of ['a', 'b', 'w', 'c']) {
      const decision = operationWaiting(table, id);
      expect(decision.table.open).toEqual(table.open);
      expect(decision.effects).toEqual([]);
    }
  });

  // A new table would make decide() bump the twin's version and publish a snapshot for nothing.
  it('answers the same table object when no handed-over operation has that id', () => {
    const table = tableWith([request('a'), pending('w')]);
    expect(operationWaiting(table, 'nope').table).toBe(table);
    expect(operationWaiting(table, 'w').table).toBe(table);
  });
});

describe('claimPending', () => {
  it('hands over waiting operations oldest first, with their parameters, and marks them handedOver', () => {
    const table = tableWith([
      pending('p1', { parameters: { k: 1 } }),
      request('a'),
      pending('p2', { name: 'REFRESH_INFO', parameters: {} }),
    ]);
    const decision = claimPending(table, 10, T0 + 1);
    expect(decision.effects).toEqual([
      {
        kind: 'handOverOperations',
        operations: [
          { id: 'p1', name: 'REBOOT_EQUIPMENT', parameters: { k: 1 } },
          { id: 'p2', name: 'REFRESH_INFO', parameters: {} },
        ],
      },
    ]);
    expect(phases(decision.table)).toEqual({ p1: 'handedOver', a: 'running', p2: 'handedOver' });
  });

  it('hands over at most limit operations, the oldest', () => {
    const table = tableWith([pending('p1'), pending('p2'), pending('p3')]);
    const first = claimPending(table, 2, T0);
    expect(first.effects).toMatchObject([{ operations: [{ id: 'p1' }, { id: 'p2' }] }]);
    expect(phases(first.table)).toEqual({ p1: 'handedOver', p2: 'handedOver', p3: 'waiting' });
    const second = claimPending(first.table, 2, T0);
    expect(second.effects).toMatchObject([{ operations: [{ id: 'p3' }] }]);
  });

  it('skips operations whose time to live has run out (expiresAt <= now)', () => {
    const table = tableWith([
      pending('old', { createdAt: T0, ttlMs: 1_000 }),
      pending('fresh', { createdAt: T0, ttlMs: 1_001 }),
    ]);
    const decision = claimPending(table, 10, T0 + 1_000);
    expect(decision.effects).toMatchObject([{ operations: [{ id: 'fresh' }] }]);
    expect(phases(decision.table)).toEqual({ old: 'waiting', fresh: 'handedOver' });
  });

  it('skips queued, running and cancelling operations', () => {
    const base = tableWith([request('a'), request('b'), pending('c'), pending('w')]);
    const table = unwrap(cancelOperation(base, 'c', 'key:k1')).table;
    const decision = claimPending(table, 10, T0);
    expect(decision.effects).toMatchObject([{ operations: [{ id: 'w' }] }]);
    expect(phases(decision.table)).toEqual({ a: 'running', b: 'queued', c: 'cancelling', w: 'handedOver' });
  });

  it('hands each operation over once: a second claim answers nothing', () => {
    const first = claimPending(tableWith([pending('p1')]), 10, T0);
    const second = claimPending(first.table, 10, T0);
    expect(second.table).toBe(first.table);
    expect(second.effects).toEqual([]);
  });

  it('answers the same table object and no effects when nothing waits', () => {
    const table = tableWith([request('a'), request('b')]);
    const decision = claimPending(table, 10, T0);
    expect(decision.table).toBe(table);
    expect(decision.effects).toEqual([]);
  });
});

describe('cancelOperation', () => {
  it.each([
    ['running', request('x')],
    ['waiting', pending('x')],
  ])('marks a %s operation cancelling and asks its workflow to cancel', (_phase, req) => {
    const table = tableWith([req]);
    const decision = unwrap(cancelOperation(table, 'x', 'key:k2'));
    expect(phases(decision.table)).toEqual({ x: 'cancelling' });
    expect(decision.effects).toEqual([{ kind: 'cancelOperation', id: 'x', by: 'key:k2' }]);
  });

  it('does nothing more for an operation already cancelling', () => {
    const table = unwrap(cancelOperation(tableWith([request('x')]), 'x', 'key:k2')).table;
    const again = unwrap(cancelOperation(table, 'x', 'key:k3'));
    expect(again.table).toBe(table);
    expect(again.effects).toEqual([]);
  });

  it('fails with NOT_FOUND for an operation that is not open', () => {
    expect(cancelOperation(tableWith([request('a')]), 'nope', 'key:k2')).toMatchObject({
      ok: false,
      code: 'NOT_FOUND',
    });
    const ended = operationEnded(tableWith([request('a')]), 'a', 1).table;
    expect(cancelOperation(ended, 'a', 'key:k2')).toMatchObject({ ok: false, code: 'NOT_FOUND' });
  });

  it('never hands over a cancelled waiting operation', () => {
    const table = unwrap(cancelOperation(tableWith([pending('p')]), 'p', 'key:k2')).table;
    const decision = claimPending(table, 10, T0);
    expect(decision.effects).toEqual([]);
    expect(phases(decision.table)).toEqual({ p: 'cancelling' });
  });

  it('lets a cancelling running operation hold its slot until it ends', () => {
    const table = unwrap(cancelOperation(tableWith([request('a'), request('b')]), 'a', 'key:k2')).table;
    expect(phases(table)).toEqual({ a: 'cancelling', b: 'queued' });
    expect(phases(unwrap(admitOperation(table, request('c'), 1)).table).c).toBe('queued');
    const ended = operationEnded(table, 'a', 1);
    expect(phases(ended.table)).toEqual({ b: 'running' });
    expect(ended.effects).toEqual([{ kind: 'proceedOperation', id: 'b' }]);
  });

  it('never promotes a cancelled queued operation', () => {
    const table = unwrap(cancelOperation(tableWith([request('a'), request('b')]), 'b', 'key:k2')).table;
    const ended = operationEnded(table, 'a', 1);
    expect(phases(ended.table)).toEqual({ b: 'cancelling' });
    expect(ended.effects).toEqual([]);
  });
});

describe('cancelAll', () => {
  it('marks every open operation cancelling and asks each one not yet cancelling to cancel', () => {
    const base = tableWith([request('a'), request('b'), pending('p'), pending('q')]);
    const table = claimPending(unwrap(cancelOperation(base, 'q', 'key:k1')).table, 1, T0).table;
    const decision = cancelAll(table, 'decommission');
    expect(phases(decision.table)).toEqual({
      a: 'cancelling',
      b: 'cancelling',
      p: 'cancelling',
      q: 'cancelling',
    });
    expect(decision.effects).toEqual([
      { kind: 'cancelOperation', id: 'a', by: 'decommission' },
      { kind: 'cancelOperation', id: 'b', by: 'decommission' },
      { kind: 'cancelOperation', id: 'p', by: 'decommission' },
    ]);
  });

  it('asks nothing of an empty table', () => {
    expect(cancelAll(emptyOperationTable(), 'decommission').effects).toEqual([]);
  });
});

describe('operationCounts', () => {
  it('counts open operations, and as waiting those queued for a slot or waiting for a poll', () => {
    const base = tableWith([request('a'), request('b'), pending('p'), pending('q'), pending('r')]);
    // a running, b queued, p handed over, q waiting, r cancelling.
    const claimed = claimPending(base, 1, T0).table;
    const table = unwrap(cancelOperation(claimed, 'r', 'key:k1')).table;
    expect(operationCounts(table)).toEqual({ open: 5, waiting: 2 });
  });

  it('counts nothing in an empty table', () => {
    expect(operationCounts(emptyOperationTable())).toEqual({ open: 0, waiting: 0 });
  });
});
