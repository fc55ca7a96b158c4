// Covers the operation inputs of the twin's pure core: decide with requests, ends, polls, cancels and decommission.
import type { OperationRequest } from '../../../twins/operations';
import {
  type TwinInput,
  type TwinState,
  createTwinState,
  decide as decideWithType,
  toSnapshot,
} from '../../../twins/twin-core';
import type { TwinType } from '../../../twins/define-twin';
import { resolveTwinType } from '../../../twins/registry';
import type { DeviceProfile, Result, TwinIdentity } from '../../../twins/types';

const T0 = 1_700_000_000_000;
const GENERIC: TwinIdentity = { org: 'acme', deviceId: 'dev-1', twinType: 'generic' };
const METER: TwinIdentity = { org: 'acme', deviceId: 'meter-1', twinType: 'electricity-meter' };
const EMPTY_PROFILE: DeviceProfile = { tags: [], attributes: {} };

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.value;
}

/** The type the registry knows by the identity's name, as the twin workflow looks it up once per run. */
const typeOf = (identity: TwinIdentity): TwinType => unwrap(resolveTwinType(identity.twinType));

const newTwin = (identity: TwinIdentity = GENERIC, profile: DeviceProfile = EMPTY_PROFILE): TwinState =>
  createTwinState(typeOf(identity), identity, profile, T0);

/** The core with the twin's own type, as the workflow passes it. */
const decide = (state: TwinState, input: TwinInput, now: number) =>
  decideWithType(typeOf(state.identity), state, input, now);

const operation = (
  identity: TwinIdentity,
  id: string,
  overrides: Partial<OperationRequest> = {},
): OperationRequest => ({
  id,
  org: identity.org,
  deviceId: identity.deviceId,
  twinType: identity.twinType,
  name: 'REBOOT_EQUIPMENT',
  parameters: {},
  delivery: 'push',
  requestedBy: 'key:k1',
  createdAt: T0,
  timeoutMs: 60_000,
  ttlMs: 3_600_000,
  retries: 0,
  retriesDelayMs: 1_000,
  retryResultList: [],
  ...overrides,
});

const requestOp = (request: OperationRequest): TwinInput => ({ kind: 'requestOperation', request });

/** Applies the inputs in order, each at a later time, failing on the first refusal. */
function run(state: TwinState, ...inputs: TwinInput[]): TwinState {
  return inputs.reduce((s, input, i) => unwrap(decide(s, input, T0 + 1_000 * (i + 1))).state, state);
}

describe('operations', () => {
  describe('requestOperation', () => {
    it('admits the request with a startOperation effect and a routine snapshot', () => {
      const state = newTwin();
      const req = operation(GENERIC, 'op-1');
      const { state: next, effects } = unwrap(decide(state, requestOp(req), T0 + 5));
      expect(effects).toEqual([
        { kind: 'startOperation', request: req, startNow: true },
        { kind: 'publishSnapshot', urgent: false },
      ]);
      expect(next.operations.open.map((o) => [o.id, o.phase])).toEqual([['op-1', 'running']]);
      expect(next).toMatchObject({ version: state.version + 1, updatedAt: T0 + 5 });
    });

    it('queues a second pushed operation behind the first (one at a time by default)', () => {
      const state = run(newTwin(), requestOp(operation(GENERIC, 'op-1')));
      const { effects } = unwrap(decide(state, requestOp(operation(GENERIC, 'op-2')), T0 + 5));
      expect(effects).toContainEqual(expect.objectContaining({ kind: 'startOperation', startNow: false }));
    });

    it('accepts any UPPER_SNAKE name with any parameters on a generic twin', () => {
      const req = operation(GENERIC, 'op-1', {
        name: 'DO_SOMETHING_2',
        parameters: { anything: [1, { x: 2 }] },
      });
      const { effects } = unwrap(decide(newTwin(), requestOp(req), T0));
      expect(effects).toContainEqual({ kind: 'startOperation', request: req, startNow: true });
    });

    it.each(['lowercase', 'Mixed_Case', '1STARTS_WITH_DIGIT', 'HAS-DASH', ''])(
      'rejects the malformed name %j on a generic twin with INVALID_ARGUMENT',
      (name) => {
        const result = decide(newTwin(), requestOp(operation(GENERIC, 'op-1', { name })), T0);
        expect(result).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
      },
    );

    it('accepts a catalogued operation with good parameters on an electricity meter', () => {
      const req = operation(METER, 'op-1', { name: 'SET_POWER_LIMIT', parameters: { limitW: 5_000 } });
      const { effects } = unwrap(decide(newTwin(METER), requestOp(req), T0));
      expect(effects).toContainEqual(expect.objectContaining({ kind: 'startOperation' }));
    });

    it('rejects an operation the electricity meter does not know with INVALID_ARGUMENT', () => {
      const result = decide(
        newTwin(METER),
        requestOp(operation(METER, 'op-1', { name: 'FACTORY_RESET' })),
        T0,
      );
      expect(result).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
      if (!result.ok) expect(result.message).toContain('FACTORY_RESET');
    });

    it.each([
      ['a negative limit', { limitW: -1 }],
      ['a missing limit', {}],
      ['an unknown field', { limitW: 5_000, extra: true }],
    ])('rejects SET_POWER_LIMIT with %s with INVALID_ARGUMENT', (_what, parameters) => {
      const req = operation(METER, 'op-1', { name: 'SET_POWER_LIMIT', parameters });
      expect(decide(newTwin(METER), requestOp(req), T0)).toMatchObject({
        ok: false,
        code: 'INVALID_ARGUMENT',
      });
    });

    it.each([
      ['another org', { org: 'other' }],
      ['another device', { deviceId: 'dev-2' }],
    ])('rejects a request for %s with INVALID_ARGUMENT', (_what, overrides) => {
      const result = decide(newTwin(), requestOp(operation(GENERIC, 'op-1', overrides)), T0);
      expect(result).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
    });

    it('rejects a request to a decommissioned twin with DECOMMISSIONED', () => {
      const state = run(newTwin(), { kind: 'decommission' });
      const result = decide(state, requestOp(operation(GENERIC, 'op-1')), T0 + 10_000);
      expect(result).toMatchObject({ ok: false, code: 'DECOMMISSIONED' });
    });

    it('changes nothing for a request whose id is already known', () => {
      const state = run(newTwin(), requestOp(operation(GENERIC, 'op-1')));
      const decision = unwrap(decide(state, requestOp(operation(GENERIC, 'op-1')), T0 + 10_000));
      expect(decision.state).toBe(state);
      expect(decision.effects).toEqual([]);
    });
  });

  describe('operationEnded', () => {
    it('frees the slot and lets the next queued operation proceed', () => {
      const state = run(
        newTwin(),
        requestOp(operation(GENERIC, 'op-1')),
        requestOp(operation(GENERIC, 'op-2')),
      );
      const { state: next, effects } = unwrap(decide(state, { kind: 'operationEnded', id: 'op-1' }, T0 + 9));
      expect(effects).toEqual([
        { kind: 'proceedOperation', id: 'op-2' },
        { kind: 'publishSnapshot', urgent: false },
      ]);
      expect(next.operations.open.map((o) => o.id)).toEqual(['op-2']);
      expect(next.version).toBe(state.version + 1);
    });

    it('changes nothing for an unknown id', () => {
      const state = run(newTwin(), requestOp(operation(GENERIC, 'op-1')));
      const decision = unwrap(decide(state, { kind: 'operationEnded', id: 'nope' }, T0 + 9));
      expect(decision.state).toBe(state);
      expect(decision.effects).toEqual([]);
    });

    it('is accepted after decommission, so the table empties', () => {
      const state = run(newTwin(), requestOp(operation(GENERIC, 'op-1')), { kind: 'decommission' });
      const { state: next } = unwrap(decide(state, { kind: 'operationEnded', id: 'op-1' }, T0 + 9_000));
      expect(next.operations.open).toEqual([]);
      expect(next.lifecycle).toBe('DECOMMISSIONED');
    });
  });

  describe('the pending queue', () => {
    it('hands waiting operations over at a poll, and a second poll gets nothing', () => {
      const state = run(
        newTwin(),
        requestOp(operation(GENERIC, 'p-1', { delivery: 'pending', parameters: { a: 1 } })),
      );
      const claimed = unwrap(decide(state, { kind: 'claimPending', limit: 5 }, T0 + 5_000));
      expect(claimed.effects).toEqual([
        {
          kind: 'handOverOperations',
          operations: [{ id: 'p-1', name: 'REBOOT_EQUIPMENT', parameters: { a: 1 } }],
        },
        { kind: 'publishSnapshot', urgent: false },
      ]);
      const again = unwrap(decide(claimed.state, { kind: 'claimPending', limit: 5 }, T0 + 6_000));
      expect(again.state).toBe(claimed.state);
      expect(again.effects).toEqual([]);
    });

    it('puts a handed-over operation back in the queue on operationWaiting', () => {
      const state = run(
        newTwin(),
        requestOp(operation(GENERIC, 'p-1', { delivery: 'pending' })),
        { kind: 'claimPending', limit: 5 },
        { kind: 'operationWaiting', id: 'p-1' },
      );
      expect(state.operations.open.map((o) => o.phase)).toEqual(['waiting']);
    });

    it('refuses a poll on a decommissioned twin', () => {
      const state = run(newTwin(), { kind: 'decommission' });
      expect(decide(state, { kind: 'claimPending', limit: 5 }, T0 + 9_000)).toMatchObject({
        ok: false,
        code: 'DECOMMISSIONED',
      });
    });
  });

  describe('cancelOperation', () => {
    it('marks the operation cancelling and asks its workflow to cancel', () => {
      const state = run(newTwin(), requestOp(operation(GENERIC, 'op-1')));
      const { state: next, effects } = unwrap(
        decide(state, { kind: 'cancelOperation', id: 'op-1', by: 'key:k2' }, T0 + 9_000),
      );
      expect(effects).toEqual([
        { kind: 'cancelOperation', id: 'op-1', by: 'key:k2' },
        { kind: 'publishSnapshot', urgent: false },
      ]);
      expect(next.operations.open[0]!.phase).toBe('cancelling');
    });

    it('fails with NOT_FOUND for an operation that is not open', () => {
      expect(decide(newTwin(), { kind: 'cancelOperation', id: 'nope', by: 'key:k2' }, T0)).toMatchObject({
        ok: false,
        code: 'NOT_FOUND',
      });
    });
  });

  describe('decommission', () => {
    it('cancels every open operation, by decommission', () => {
      const state = run(
        newTwin(),
        requestOp(operation(GENERIC, 'op-1')),
        requestOp(operation(GENERIC, 'op-2')),
        requestOp(operation(GENERIC, 'p-1', { delivery: 'pending' })),
      );
      const { state: next, effects } = unwrap(decide(state, { kind: 'decommission' }, T0 + 9_000));
      expect(effects.filter((e) => e.kind === 'cancelOperation')).toEqual([
        { kind: 'cancelOperation', id: 'op-1', by: 'decommission' },
        { kind: 'cancelOperation', id: 'op-2', by: 'decommission' },
        { kind: 'cancelOperation', id: 'p-1', by: 'decommission' },
      ]);
      expect(effects).toContainEqual({ kind: 'publishSnapshot', urgent: true });
      expect(next.operations.open.map((o) => o.phase)).toEqual(['cancelling', 'cancelling', 'cancelling']);
    });

    it('asks for no cancellation when nothing is open', () => {
      const { effects } = unwrap(decide(newTwin(), { kind: 'decommission' }, T0));
      expect(effects.some((e) => e.kind === 'cancelOperation')).toBe(false);
    });
  });

  describe('toSnapshot', () => {
    it('carries how many operations are open and how many wait', () => {
      expect(toSnapshot(newTwin()).operations).toEqual({ open: 0, waiting: 0 });
      const state = run(
        newTwin(),
        requestOp(operation(GENERIC, 'op-1')),
        requestOp(operation(GENERIC, 'op-2')),
        requestOp(operation(GENERIC, 'p-1', { delivery: 'pending' })),
      );
      // op-1 running; op-2 queued and p-1 waiting for a poll.
      expect(toSnapshot(state).operations).toEqual({ open: 3, waiting: 2 });
    });
  });
});
