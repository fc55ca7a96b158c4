// Covers desired state through the pure core: a change and its version (If-Match), the operation an attempt
// sends, sync per key and overall from reported data, success then confirmation, refusal (FAILED with the reason),
// retries with backoff until the limit, re-send after a reconnect, a newer version superseding an attempt.
import { z } from 'zod';
import { OFFLINE_KEY } from '../../../twins/behaviours';
import { type TwinType, defineTwin } from '../../../twins/define-twin';
import { defaultOperation, delta } from '../../../twins/desired';
import {
  type TwinEffect,
  type TwinInput,
  type TwinState,
  createTwinState,
  decide,
  desiredOf,
  toSnapshot,
} from '../../../twins/twin-core';
import type { Result } from '../../../twins/types';

const T0 = 1_700_000_000_000;
const unwrap = <T>(r: Result<T>): T => {
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.message}`);
  return r.value;
};

const thermostat = defineTwin<Record<string, never>>({
  name: 'thermostat',
  description: 'test',
  initialState: () => ({}),
  applyDatapoint: (s) => s,
  status: () => 'OK',
  operations: 'any',
  offlineAfterMs: 60_000,
  desired: {
    schema: z
      .object({ setpoint: z.number().min(5).max(30).optional(), mode: z.enum(['eco', 'comfort']).optional() })
      .strict(),
    maxAttempts: 3,
    retryInitialMs: 1_000,
    retryMaxMs: 10_000,
    confirmMs: 30_000,
  },
}) as unknown as TwinType;

const identity = { org: 'acme', deviceId: 't-1', twinType: 'thermostat' };
const fresh = () => createTwinState(thermostat, identity, { tags: [], attributes: {} }, T0);

let n = 0;
const report = (values: Record<string, unknown>): TwinInput => ({
  kind: 'telemetry',
  batch: {
    batchId: `b${++n}`,
    channel: 'http',
    receivedAt: T0,
    datapoints: Object.entries(values).map(([k, v]) => ({
      datastreamId: k,
      feed: 'default',
      value: v,
      at: T0 + n,
    })),
    storedCount: 1,
  },
});
const set = (values: Record<string, unknown>, ifVersion?: number): TwinInput => ({
  kind: 'setDesired',
  patch: values,
  ...(ifVersion !== undefined ? { ifVersion } : {}),
  by: 'op-1',
  newId: `op-${++n}`,
});
const ended = (id: string, status: string, resultCode?: string, resultDescription?: string): TwinInput => ({
  kind: 'desiredOperationEnded',
  id,
  status,
  resultCode: resultCode ?? null,
  resultDescription: resultDescription ?? null,
});

function step(
  state: TwinState,
  input: TwinInput,
  at = 0,
): { state: TwinState; effects: readonly TwinEffect[] } {
  return unwrap(decide(thermostat, state, input, T0 + at));
}
const sent = (effects: readonly TwinEffect[]) => effects.filter((e) => e.kind === 'desiredOperation');

describe('desired state', () => {
  it('a change makes a version and sends the difference as SET_DEVICE_PARAMETERS; reports bring it IN_SYNC', () => {
    const s0 = step(fresh(), report({ setpoint: 20 })).state;
    const a = step(s0, set({ setpoint: 22, mode: 'eco' }));
    expect(sent(a.effects)).toEqual([
      {
        kind: 'desiredOperation',
        id: expect.any(String),
        operation: {
          name: 'SET_DEVICE_PARAMETERS',
          parameters: {
            variableList: [
              { variableName: 'setpoint', variableValue: 22 },
              { variableName: 'mode', variableValue: 'eco' },
            ],
          },
        },
        timeoutMs: 60_000,
      },
    ]);
    const view = desiredOf(thermostat, a.state)!;
    expect(view).toMatchObject({ version: 1, status: 'PENDING', attempt: 1, updatedBy: 'op-1' });
    expect(view.keys.setpoint).toEqual({ desired: 22, reported: 20, status: 'PENDING' });
    const id = a.state.desired!.inflight!.id;
    const ok = step(a.state, ended(id, 'SUCCESSFUL', 'SUCCESSFUL'), 1_000);
    // Waiting for the device to report: a confirmation deadline, then IN_SYNC once it does.
    expect(ok.state.desired!.retryAt).toBe(T0 + 31_000);
    const half = step(ok.state, report({ setpoint: 22 }), 2_000);
    expect(desiredOf(thermostat, half.state)!.keys).toMatchObject({
      setpoint: { status: 'IN_SYNC' },
      mode: { status: 'PENDING' },
    });
    const synced = step(half.state, report({ mode: 'eco' }), 3_000);
    expect(desiredOf(thermostat, synced.state)!.status).toBe('IN_SYNC');
    expect(synced.state.desired!.retryAt).toBeNull();
    expect(toSnapshot(synced.state, thermostat).desired).toMatchObject({ status: 'IN_SYNC', version: 1 });
  });

  it('sends nothing when the device already reports the values', () => {
    const s0 = step(fresh(), report({ setpoint: 21 })).state;
    const a = step(s0, set({ setpoint: 21 }));
    expect(sent(a.effects)).toEqual([]);
    expect(desiredOf(thermostat, a.state)!.status).toBe('IN_SYNC');
  });

  it('refuses a stale If-Match and values outside the schema; null removes a key', () => {
    const a = step(fresh(), set({ setpoint: 22 }));
    expect(decide(thermostat, a.state, set({ setpoint: 23 }, 0), T0)).toMatchObject({
      ok: false,
      code: 'PRECONDITION_FAILED',
    });
    expect(decide(thermostat, a.state, set({ setpoint: 99 }), T0)).toMatchObject({
      ok: false,
      code: 'INVALID_ARGUMENT',
    });
    expect(decide(thermostat, a.state, set({ other: 1 }), T0)).toMatchObject({
      ok: false,
      code: 'INVALID_ARGUMENT',
    });
    const b = step(a.state, set({ mode: 'comfort' }, 1));
    expect(b.state.desired!.version).toBe(2);
    const c = step(b.state, set({ setpoint: null }, 2));
    expect(c.state.desired!.values).toEqual({ mode: 'comfort' });
  });

  it('a newer version supersedes the attempt under way: it is cancelled and its end is ignored', () => {
    const a = step(fresh(), set({ setpoint: 22 }));
    const first = a.state.desired!.inflight!.id;
    // The attempt's operation is open on the twin.
    const admitted = step(a.state, {
      kind: 'requestOperation',
      request: {
        id: first,
        org: 'acme',
        deviceId: 't-1',
        twinType: 'thermostat',
        name: 'SET_DEVICE_PARAMETERS',
        parameters: {},
        delivery: 'pending',
        timeoutMs: 60_000,
        ttlMs: 60_000,
        retries: 0,
        retriesDelayMs: 0,
        retryResultList: [],
        requestedBy: 'desired-state',
        createdAt: T0,
      },
    });
    const b = step(admitted.state, set({ setpoint: 24 }));
    expect(b.effects).toContainEqual({ kind: 'desiredCancel', id: first });
    const second = b.state.desired!.inflight!.id;
    expect(second).not.toBe(first);
    expect(sent(b.effects)).toHaveLength(1);
    const late = step(b.state, ended(first, 'CANCELLED'));
    expect(late.state).toBe(b.state);
  });

  it('a refusal fails at once with the reason', () => {
    const a = step(fresh(), set({ setpoint: 22 }));
    const id = a.state.desired!.inflight!.id;
    const f = step(a.state, ended(id, 'FAILED', 'ERROR_PROCESSING', 'read-only parameter'));
    const view = desiredOf(thermostat, f.state)!;
    expect(view.status).toBe('FAILED');
    expect(view.reason).toBe('the device refused: FAILED ERROR_PROCESSING read-only parameter');
    expect(view.keys.setpoint!.status).toBe('FAILED');
    expect(f.state.desired!.retryAt).toBeNull();
    // A new version starts over.
    const again = step(f.state, set({ setpoint: 23 }));
    expect(desiredOf(thermostat, again.state)!.status).toBe('PENDING');
    expect(sent(again.effects)).toHaveLength(1);
  });

  it('retries a timeout with doubling backoff, then fails after the last attempt', () => {
    let s = step(fresh(), set({ setpoint: 22 })).state;
    const delays: number[] = [];
    let at = 0;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const id = s.desired!.inflight!.id;
      s = step(s, ended(id, 'TIMEOUT', 'ERROR_TIMEOUT'), at).state;
      if (attempt === 3) break;
      delays.push(s.desired!.retryAt! - (T0 + at));
      // An early timer changes nothing; the due one starts the next attempt.
      expect(step(s, { kind: 'desiredRetry', newId: 'early' }, at + 1).state).toBe(s);
      at = s.desired!.retryAt! - T0;
      const r = step(s, { kind: 'desiredRetry', newId: `retry-${attempt}` }, at);
      expect(sent(r.effects)).toHaveLength(1);
      s = r.state;
    }
    expect(delays).toEqual([1_000, 2_000]);
    const view = desiredOf(thermostat, s)!;
    expect(view.status).toBe('FAILED');
    expect(view.reason).toMatch(/no success after 3 attempts \(TIMEOUT ERROR_TIMEOUT\)/);
  });

  it('a device back from OFFLINE gets the waiting difference at once', () => {
    let s = step(fresh(), report({ setpoint: 20 })).state;
    s = step(s, set({ setpoint: 22 })).state;
    s = step(s, ended(s.desired!.inflight!.id, 'TIMEOUT'), 1_000).state;
    expect(s.desired!.retryAt).toBe(T0 + 2_000);
    s = step(s, { kind: 'behaviourTimer', key: OFFLINE_KEY }, 60_000).state;
    expect(s.status).toBe('OFFLINE');
    // Suppose the retry had been pushed far out; data after OFFLINE brings it to now.
    s = { ...s, desired: { ...s.desired!, retryAt: T0 + 500_000 } };
    const back = step(s, report({ setpoint: 20 }), 100_000);
    expect(back.state.desired!.retryAt).toBe(T0 + 100_000);
  });

  it('a refused admission fails with the reason; delta and the default operation are plain', () => {
    const a = step(fresh(), set({ setpoint: 22 }));
    const f = step(a.state, {
      kind: 'desiredAdmissionFailed',
      id: a.state.desired!.inflight!.id,
      reason: 'no such operation',
    });
    expect(desiredOf(thermostat, f.state)!.reason).toBe('the operation was refused: no such operation');
    expect(delta({ a: 1, b: { x: 1 } }, { a: 1, b: { x: 2 } })).toEqual({ b: { x: 1 } });
    expect(defaultOperation({ a: 1 }).name).toBe('SET_DEVICE_PARAMETERS');
  });

  it('a type without desired state refuses a change', () => {
    const plain = defineTwin({
      name: 'plain',
      description: 'x',
      initialState: () => ({}),
      applyDatapoint: (s: object) => s,
      status: () => 'OK',
    }) as unknown as TwinType;
    const s = createTwinState(plain, { ...identity, twinType: 'plain' }, { tags: [], attributes: {} }, T0);
    expect(decide(plain, s, set({ a: 1 }), T0)).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
    expect(desiredOf(plain, s)).toBeNull();
  });

  it('a reaction sets desired values: a new version due at once, sent by the retry timer', () => {
    const eco = defineTwin<{ window: boolean }>({
      name: 'eco-thermostat',
      description: 'test',
      initialState: () => ({ window: false }),
      applyDatapoint: (s, dp) => (dp.datastreamId === 'window' ? { window: dp.value === true } : s),
      status: () => 'OK',
      operations: 'any',
      reactions: [
        {
          name: 'window-open',
          when: ({ state }) => state.window,
          then: () => [{ kind: 'setDesired', values: { mode: 'eco' } }],
        },
      ],
      desired: { schema: z.object({ mode: z.enum(['eco', 'comfort']).optional() }).strict() },
    }) as unknown as TwinType;
    const s0 = createTwinState(
      eco,
      { ...identity, twinType: 'eco-thermostat' },
      { tags: [], attributes: {} },
      T0,
    );
    const opened = unwrap(decide(eco, s0, report({ mode: 'comfort', window: true }), T0 + 10));
    expect(opened.effects.some((e) => e.kind === 'reactionSetDesired')).toBe(false);
    expect(opened.state.desired).toMatchObject({
      version: 1,
      values: { mode: 'eco' },
      updatedBy: 'twin:window-open',
      retryAt: T0 + 10,
      inflight: null,
    });
    const sentNow = unwrap(decide(eco, opened.state, { kind: 'desiredRetry', newId: 'r-1' }, T0 + 11));
    expect(sent(sentNow.effects)).toHaveLength(1);
    expect(sentNow.state.desired!.inflight).toEqual({ id: 'r-1', keys: ['mode'] });
  });
});
