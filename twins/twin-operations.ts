// The twin's side of operations: which operations a device has open, whose turn it is, and the pending
// queue a sleepy device drains when it polls. Pure; the twin workflow turns the effects into messages.
import type { DeliveryMode, OperationRequest } from './operations';
import { type Result, fail, ok } from './types';

/**
 * queued: a pushed operation waiting its turn · running: pushed, its turn came · waiting: held until the
 * device polls · handedOver: the device took it at a poll · cancelling: cancel sent, waiting for the end.
 */
export type OperationPhase = 'queued' | 'running' | 'waiting' | 'handedOver' | 'cancelling';

export interface TwinOperation {
  readonly id: string;
  readonly name: string;
  readonly delivery: DeliveryMode;
  readonly phase: OperationPhase;
  /** A pushed operation that got its turn keeps its slot until it ends, even while being cancelled. */
  readonly holdsSlot: boolean;
  /** Kept for pending operations, to build the envelope handed over at a poll. */
  readonly parameters?: Readonly<Record<string, unknown>>;
  readonly createdAt: number;
  readonly expiresAt: number;
}

/** A device holds at most this many open operations; more are refused (the queue is part of the twin's state). */
export const MAX_OPEN_OPERATIONS = 500;
/** Ids of recently ended operations, so a repeated request or a late end signal changes nothing. */
export const RECENT_OPERATION_IDS = 256;

export interface OperationTable {
  readonly open: readonly TwinOperation[];
  readonly recentlyEnded: readonly string[];
}

export const emptyOperationTable = (): OperationTable => ({ open: [], recentlyEnded: [] });

export type OperationEffect =
  /** Start the operation's workflow; startNow: it may deliver at once (its turn has come). */
  | { readonly kind: 'startOperation'; readonly request: OperationRequest; readonly startNow: boolean }
  /** A queued pushed operation's turn has come. */
  | { readonly kind: 'proceedOperation'; readonly id: string }
  /** The device took these at a poll. */
  | {
      readonly kind: 'handOverOperations';
      readonly operations: readonly {
        id: string;
        name: string;
        parameters: Readonly<Record<string, unknown>>;
      }[];
    }
  | { readonly kind: 'cancelOperation'; readonly id: string; readonly by: string };

export interface TableDecision {
  readonly table: OperationTable;
  readonly effects: readonly OperationEffect[];
}

const running = (t: OperationTable): number => t.open.filter((o) => o.holdsSlot).length;

/** Admits a new operation: it runs now if the device has a free slot, otherwise it waits its turn. */
export function admitOperation(
  table: OperationTable,
  request: OperationRequest,
  maxConcurrent: number,
): Result<TableDecision & { readonly duplicate: boolean }> {
  if (table.open.some((o) => o.id === request.id) || table.recentlyEnded.includes(request.id)) {
    return ok({ table, effects: [], duplicate: true });
  }
  if (table.open.length >= MAX_OPEN_OPERATIONS) {
    return fail(
      'RESOURCE_EXHAUSTED',
      `device ${request.deviceId} already has ${MAX_OPEN_OPERATIONS} open operations`,
    );
  }
  const startNow = request.delivery === 'push' && running(table) < maxConcurrent;
  const op: TwinOperation = {
    id: request.id,
    name: request.name,
    delivery: request.delivery,
    phase: request.delivery === 'pending' ? 'waiting' : startNow ? 'running' : 'queued',
    holdsSlot: startNow,
    ...(request.delivery === 'pending' ? { parameters: request.parameters } : {}),
    createdAt: request.createdAt,
    expiresAt: request.createdAt + request.ttlMs,
  };
  return ok({
    table: { ...table, open: [...table.open, op] },
    effects: [{ kind: 'startOperation', request, startNow }],
    duplicate: false,
  });
}

/** Gives free slots to queued pushed operations, oldest first. */
function promote(table: OperationTable, maxConcurrent: number): TableDecision {
  let free = maxConcurrent - running(table);
  if (free <= 0) return { table, effects: [] };
  const effects: OperationEffect[] = [];
  const open = table.open.map((o) => {
    if (free > 0 && o.phase === 'queued') {
      free--;
      effects.push({ kind: 'proceedOperation', id: o.id });
      return { ...o, phase: 'running' as const, holdsSlot: true };
    }
    return o;
  });
  return { table: { ...table, open }, effects };
}

/** An operation's workflow ended: forget it and let the next one run. Unknown ids change nothing. */
export function operationEnded(table: OperationTable, id: string, maxConcurrent: number): TableDecision {
  if (!table.open.some((o) => o.id === id)) return { table, effects: [] };
  const next: OperationTable = {
    open: table.open.filter((o) => o.id !== id),
    recentlyEnded: [...table.recentlyEnded, id].slice(-RECENT_OPERATION_IDS),
  };
  return promote(next, maxConcurrent);
}

/** A pending operation goes back to the queue for another attempt. */
export function operationWaiting(table: OperationTable, id: string): TableDecision {
  const target = table.open.find((o) => o.id === id);
  if (!target || target.delivery !== 'pending' || target.phase !== 'handedOver')
    return { table, effects: [] };
  const open = table.open.map((o) =>
    o.id === id && o.delivery === 'pending' && o.phase === 'handedOver'
      ? { ...o, phase: 'waiting' as const }
      : o,
  );
  return { table: { ...table, open }, effects: [] };
}

/** A poll: hands over up to `limit` waiting operations that have not expired, oldest first, each once. */
export function claimPending(table: OperationTable, limit: number, now: number): TableDecision {
  const taken: { id: string; name: string; parameters: Readonly<Record<string, unknown>> }[] = [];
  const open = table.open.map((o) => {
    if (taken.length < limit && o.phase === 'waiting' && o.expiresAt > now) {
      taken.push({ id: o.id, name: o.name, parameters: o.parameters ?? {} });
      return { ...o, phase: 'handedOver' as const };
    }
    return o;
  });
  if (taken.length === 0) return { table, effects: [] };
  return { table: { ...table, open }, effects: [{ kind: 'handOverOperations', operations: taken }] };
}

/** Cancel: the operation is never handed over or promoted again; its workflow ends it. */
export function cancelOperation(table: OperationTable, id: string, by: string): Result<TableDecision> {
  const op = table.open.find((o) => o.id === id);
  if (!op) return fail('NOT_FOUND', `operation ${id} is not open on this device`);
  if (op.phase === 'cancelling') return ok({ table, effects: [] });
  const open = table.open.map((o) => (o.id === id ? { ...o, phase: 'cancelling' as const } : o));
  return ok({ table: { ...table, open }, effects: [{ kind: 'cancelOperation', id, by }] });
}

/** Decommission: every open operation is cancelled. */
export function cancelAll(table: OperationTable, by: string): TableDecision {
  const effects: OperationEffect[] = table.open
    .filter((o) => o.phase !== 'cancelling')
    .map((o) => ({ kind: 'cancelOperation', id: o.id, by }));
  return {
    table: { ...table, open: table.open.map((o) => ({ ...o, phase: 'cancelling' as const })) },
    effects,
  };
}

export function operationCounts(table: OperationTable): { open: number; waiting: number } {
  return {
    open: table.open.length,
    waiting: table.open.filter((o) => o.phase === 'waiting' || o.phase === 'queued').length,
  };
}

/** How many operations a poll would hand over now (ignoring expiry): the marker an empty poll is answered from. */
export const waitingForPoll = (table: OperationTable): number =>
  table.open.filter((o) => o.phase === 'waiting').length;
