// Covers the pure checks behind the twin workflow's update validators, and the small helpers the shell uses.
import { resolveTwinType } from '../../../twins/registry';
import type { OperationRequest } from '../../../twins/operations';
import {
  type TwinEffect,
  type TwinState,
  createTwinState,
  decide,
  handedOverEnvelopes,
  snapshotPendingAfter,
} from '../../../twins/twin-core';
import {
  validateCancelOperation,
  validateClaimPending,
  validateDecommission,
  validateOperationRequest,
  validateProfileUpdate,
} from '../../../twins/twin-validators';
import type { Result, TwinIdentity } from '../../../twins/types';

const T0 = 1_700_000_000_000;
const GENERIC: TwinIdentity = { org: 'acme', deviceId: 'dev-1', twinType: 'generic' };

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.value;
}

const genericTwin = unwrap(resolveTwinType('generic'));
const electricityMeterTwin = unwrap(resolveTwinType('electricity-meter'));
const active = (): TwinState => createTwinState(genericTwin, GENERIC, { tags: [], attributes: {} }, T0);
const decommissioned = (): TwinState =>
  unwrap(decide(genericTwin, active(), { kind: 'decommission' }, T0 + 1)).state;

const operation = (overrides: Partial<OperationRequest> = {}): OperationRequest => ({
  id: 'op-1',
  org: 'acme',
  deviceId: 'dev-1',
  twinType: 'generic',
  name: 'REBOOT_EQUIPMENT',
  parameters: {},
  delivery: 'pending',
  requestedBy: 'key:k1',
  createdAt: T0,
  timeoutMs: 60_000,
  ttlMs: 3_600_000,
  retries: 0,
  retriesDelayMs: 1_000,
  retryResultList: [],
  ...overrides,
});

describe('validateOperationRequest', () => {
  it('accepts a request for this device that its type accepts', () => {
    const request = operation();
    expect(validateOperationRequest(genericTwin, active(), request)).toEqual({ ok: true, value: request });
  });

  it('refuses a decommissioned device with its id in the message', () => {
    expect(validateOperationRequest(genericTwin, decommissioned(), operation())).toEqual({
      ok: false,
      code: 'DECOMMISSIONED',
      message: 'device dev-1 is decommissioned',
    });
  });

  it('refuses a request for another device', () => {
    expect(validateOperationRequest(genericTwin, active(), operation({ deviceId: 'dev-2' }))).toEqual({
      ok: false,
      code: 'INVALID_ARGUMENT',
      message: 'the operation is for another device',
    });
  });

  it("checks the request against the given type's catalogue", () => {
    const result = validateOperationRequest(
      electricityMeterTwin,
      active(),
      operation({ name: 'NO_SUCH_OP' }),
    );
    expect(result).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
  });
});

describe('validateClaimPending', () => {
  it('accepts a positive whole limit on an active twin', () => {
    expect(validateClaimPending(active(), { limit: 3 })).toEqual({ ok: true, value: { limit: 3 } });
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses the limit %p first, even on a decommissioned twin', (limit) => {
    const expected = { ok: false, code: 'INVALID_ARGUMENT', message: 'limit must be a positive integer' };
    expect(validateClaimPending(active(), { limit })).toEqual(expected);
    expect(validateClaimPending(decommissioned(), { limit })).toEqual(expected);
  });

  it('refuses a decommissioned twin', () => {
    expect(validateClaimPending(decommissioned(), { limit: 1 })).toEqual({
      ok: false,
      code: 'DECOMMISSIONED',
      message: 'device is decommissioned',
    });
  });
});

describe('validateCancelOperation', () => {
  it('accepts an operation open on the device', () => {
    const state = unwrap(
      decide(genericTwin, active(), { kind: 'requestOperation', request: operation() }, T0 + 1),
    ).state;
    expect(validateCancelOperation(state, { id: 'op-1' })).toEqual({ ok: true, value: { id: 'op-1' } });
  });

  it('refuses an operation that is not open', () => {
    expect(validateCancelOperation(active(), { id: 'op-9' })).toEqual({
      ok: false,
      code: 'NOT_FOUND',
      message: 'operation op-9 is not open on this device',
    });
  });
});

describe('validateProfileUpdate', () => {
  it('accepts a well-formed patch on an active twin', () => {
    expect(validateProfileUpdate(active(), { name: 'n' })).toEqual({ ok: true, value: { name: 'n' } });
  });

  it('refuses a decommissioned twin before looking at the patch', () => {
    expect(validateProfileUpdate(decommissioned(), { tags: [''] })).toEqual({
      ok: false,
      code: 'DECOMMISSIONED',
      message: 'device is decommissioned',
    });
  });

  it('refuses a malformed patch', () => {
    expect(validateProfileUpdate(active(), { tags: [''] })).toMatchObject({
      ok: false,
      code: 'INVALID_ARGUMENT',
    });
  });
});

describe('validateDecommission', () => {
  it('accepts an active twin once', () => {
    expect(validateDecommission(active())).toMatchObject({ ok: true });
    expect(validateDecommission(decommissioned())).toEqual({
      ok: false,
      code: 'DECOMMISSIONED',
      message: 'device is decommissioned',
    });
  });
});

describe('snapshotPendingAfter', () => {
  it('raises none to routine, anything to urgent, and never lowers urgent', () => {
    expect(snapshotPendingAfter('none', false)).toBe('routine');
    expect(snapshotPendingAfter('routine', false)).toBe('routine');
    expect(snapshotPendingAfter('urgent', false)).toBe('urgent');
    expect(snapshotPendingAfter('none', true)).toBe('urgent');
    expect(snapshotPendingAfter('routine', true)).toBe('urgent');
  });
});

describe('handedOverEnvelopes', () => {
  it('answers a poll with the envelopes of the handed-over operations, in order, and nothing else', () => {
    const effects: TwinEffect[] = [
      { kind: 'proceedOperation', id: 'op-0' },
      {
        kind: 'handOverOperations',
        operations: [
          { id: 'op-1', name: 'A', parameters: { x: 1 } },
          { id: 'op-2', name: 'B', parameters: {} },
        ],
      },
      { kind: 'publishSnapshot', urgent: false },
    ];
    expect(handedOverEnvelopes(effects, 'dev-1', T0)).toEqual([
      {
        operation: {
          request: { id: 'op-1', deviceId: 'dev-1', name: 'A', timestamp: T0, parameters: { x: 1 } },
        },
      },
      { operation: { request: { id: 'op-2', deviceId: 'dev-1', name: 'B', timestamp: T0, parameters: {} } } },
    ]);
    expect(handedOverEnvelopes([{ kind: 'publishSnapshot', urgent: true }], 'dev-1', T0)).toEqual([]);
  });
});
