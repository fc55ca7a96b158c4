// Covers twin behaviours through the pure core: reactions (at once, held for a duration, a short spike, otherwise),
// every reaction effect, declared alarms and their lifecycle (raise, clear, re-raise, acknowledge, clear by hand),
// connectivity (OFFLINE after silence and back), the deadlines the shell arms timers for, and declaration checks.
import {
  type BehaviourState,
  OFFLINE_KEY,
  alarmSummary,
  behaviourDeadlines,
} from '../../../twins/behaviours';
import { type TwinType, defineTwin } from '../../../twins/define-twin';
import { electricityMeterTwin as meterType } from '../../../twins/electricity-meter.twin';
import {
  type Decision,
  type TwinEffect,
  type TwinInput,
  type TwinState,
  createTwinState,
  decide,
  toSnapshot,
} from '../../../twins/twin-core';
import type { DeviceProfile, Result } from '../../../twins/types';

const T0 = 1_700_000_000_000;

function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.message}`);
  return r.value;
}

/** The registry's view of a declared type: its state is the core's `unknown`. */
const asType = <S>(t: TwinType<S>): TwinType => t as unknown as TwinType;

interface Tank {
  readonly level: number | null;
}

/** A test type: a tank that reacts to its level. */
const tank = asType(
  defineTwin<Tank>({
    name: 'tank',
    description: 'test tank',
    initialState: () => ({ level: null }),
    applyDatapoint: (s, dp) => (dp.datastreamId === 'level' ? { level: Number(dp.value) } : s),
    status: (s) => (s.level === null ? 'NO_DATA' : 'OK'),
    operations: 'any',
    offlineAfterMs: 60_000,
    reactions: [
      {
        name: 'overflow',
        when: ({ state }) => (state.level ?? 0) > 90,
        then: ({ state }) => [
          { kind: 'operation', name: 'CLOSE_VALVE', parameters: { level: state.level } },
          { kind: 'event', name: 'overflow', data: { level: state.level } },
        ],
        otherwise: () => [{ kind: 'operation', name: 'OPEN_VALVE' }],
      },
      {
        name: 'low',
        when: ({ state }) => state.level !== null && state.level < 10,
        for: 30_000,
        then: () => [{ kind: 'raiseAlarm', alarm: 'LOW', severity: 'WARNING', message: 'low level' }],
        otherwise: () => [{ kind: 'clearAlarm', alarm: 'LOW' }],
      },
      {
        name: 'rising',
        when: ({ state, previous }) =>
          state.level !== null && previous.level !== null && state.level > previous.level,
        then: () => [{ kind: 'event', name: 'rising' }],
      },
    ],
    alarms: [
      {
        name: 'HIGH',
        severity: 'MAJOR',
        raise: ({ state }) => (state.level ?? 0) > 80,
        clear: ({ state }) => (state.level ?? 0) < 70,
        for: ({ attributes }) => (typeof attributes.highHoldMs === 'number' ? attributes.highHoldMs : 10_000),
        message: ({ state }) => `level ${state.level}`,
      },
      {
        name: 'EMPTY',
        severity: 'CRITICAL',
        raise: ({ state }) => state.level === 0,
        clearableByHand: false,
      },
    ],
  }),
);

const IDENTITY = { org: 'acme', deviceId: 'tank-1', twinType: 'tank' };
const PROFILE: DeviceProfile = { tags: ['site-a'], attributes: {} };

let batch = 0;
const level = (value: number): TwinInput => ({
  kind: 'telemetry',
  batch: {
    batchId: `b${++batch}`,
    channel: 'http',
    receivedAt: T0,
    datapoints: [{ datastreamId: 'level', feed: 'default', value, at: T0 + batch }],
    storedCount: 1,
  },
});

/** Runs inputs at the given times; answers the final state and every effect in order. */
function run(
  type: TwinType,
  steps: readonly [number, TwinInput][],
  state = createTwinState(type, IDENTITY, PROFILE, T0),
): { state: TwinState; effects: TwinEffect[]; decisions: Decision[] } {
  const effects: TwinEffect[] = [];
  const decisions: Decision[] = [];
  for (const [at, input] of steps) {
    const d = unwrap(decide(type, state, input, T0 + at));
    state = d.state;
    effects.push(...d.effects);
    decisions.push(d);
  }
  return { state, effects, decisions };
}

const behaviourOf = (s: TwinState): BehaviourState => s.behaviour!;
const kinds = (effects: readonly TwinEffect[], kind: TwinEffect['kind']) =>
  effects.filter((e) => e.kind === kind);
const timer = (key: string): TwinInput => ({ kind: 'behaviourTimer', key });

describe('reactions', () => {
  it('fires at once when a condition without a duration starts to hold, and only once while it holds', () => {
    const { effects } = run(tank, [
      [0, level(50)],
      [1, level(95)],
      [2, level(96)],
      [3, level(97)],
    ]);
    const ops = kinds(effects, 'reactionOperation');
    expect(ops).toEqual([
      { kind: 'reactionOperation', reaction: 'overflow', name: 'CLOSE_VALVE', parameters: { level: 95 } },
    ]);
    expect(
      kinds(effects, 'twinEvent').filter((e) => e.kind === 'twinEvent' && e.name === 'overflow'),
    ).toEqual([{ kind: 'twinEvent', name: 'overflow', data: { level: 95 }, at: T0 + 1 }]);
  });

  it('runs otherwise when the condition stops holding after firing, and fires again on the next rise', () => {
    const { effects } = run(tank, [
      [0, level(95)],
      [1, level(50)],
      [2, level(99)],
    ]);
    expect(kinds(effects, 'reactionOperation').map((e) => e.kind === 'reactionOperation' && e.name)).toEqual([
      'CLOSE_VALVE',
      'OPEN_VALVE',
      'CLOSE_VALVE',
    ]);
  });

  it('sees the previous state: rising fires only when the level went up', () => {
    const { effects } = run(tank, [
      [0, level(40)],
      [1, level(45)],
      [2, level(30)],
    ]);
    expect(kinds(effects, 'twinEvent').map((e) => e.kind === 'twinEvent' && e.at)).toEqual([T0 + 1]);
  });

  it('holds a condition with a duration pending until its timer, then fires once', () => {
    const first = run(tank, [[0, level(5)]]);
    expect(behaviourOf(first.state).conditions['reaction:low']).toEqual({
      since: T0,
      due: T0 + 30_000,
      fired: false,
    });
    expect(behaviourDeadlines(tank.behaviours, behaviourOf(first.state), {}).get('reaction:low')).toBe(
      T0 + 30_000,
    );
    expect(alarmSummary(first.state.behaviour).active).toBe(0);
    // Data meanwhile does not restart the duration.
    const later = run(
      tank,
      [
        [10_000, level(6)],
        [30_000, timer('reaction:low')],
        [40_000, timer('reaction:low')],
      ],
      first.state,
    );
    const alarms = kinds(later.effects, 'alarmChanged');
    expect(alarms).toHaveLength(1);
    expect(later.state.behaviour!.alarms.LOW).toMatchObject({ status: 'ACTIVE', severity: 'WARNING' });
    expect(behaviourDeadlines(tank.behaviours, behaviourOf(later.state), {}).has('reaction:low')).toBe(false);
  });

  it('a timer that fires early changes nothing', () => {
    const { state } = run(tank, [[0, level(5)]]);
    const d = unwrap(decide(tank, state, timer('reaction:low'), T0 + 29_999));
    expect(d.state).toBe(state);
    expect(d.effects).toEqual([]);
  });

  it('a short spike drops the pending condition: no deadline, no effect when the stale timer fires', () => {
    const { state, effects } = run(tank, [
      [0, level(5)],
      [1_000, level(50)],
      [30_000, timer('reaction:low')],
    ]);
    expect(behaviourOf(state).conditions['reaction:low']).toBeUndefined();
    expect(behaviourDeadlines(tank.behaviours, behaviourOf(state), {}).has('reaction:low')).toBe(false);
    expect(kinds(effects, 'alarmChanged')).toEqual([]);
  });
});

describe('declared alarms', () => {
  it('raises after the duration, keeps it active in the hysteresis band, clears below, counts re-raises', () => {
    const { state, effects } = run(tank, [
      [0, level(85)],
      [10_000, timer('alarm:HIGH')],
      [11_000, level(75)],
      [12_000, level(60)],
      [13_000, level(85)],
      [23_000, timer('alarm:HIGH')],
    ]);
    const changes = kinds(effects, 'alarmChanged').map((e) => (e.kind === 'alarmChanged' ? e.alarm : null));
    expect(changes.map((a) => [a!.status, a!.reRaises, a!.rev])).toEqual([
      ['ACTIVE', 0, 1],
      ['CLEARED', 0, 2],
      ['ACTIVE', 1, 3],
    ]);
    expect(state.behaviour!.alarms.HIGH).toMatchObject({
      severity: 'MAJOR',
      message: 'level 85',
      firstRaisedAt: T0 + 10_000,
      lastRaisedAt: T0 + 23_000,
      clearedAt: null,
      acknowledged: false,
    });
    expect(changes[1]).toMatchObject({ clearedBy: 'twin', clearedAt: T0 + 12_000 });
    expect(toSnapshot(state).alarms).toEqual({ active: 1, unacknowledged: 1, highestSeverity: 'MAJOR' });
  });

  it('reads its duration from the device: an attribute of 0 raises at once', () => {
    const profile = { tags: [], attributes: { highHoldMs: 0 } };
    const { state } = run(tank, [[0, level(85)]], createTwinState(tank, IDENTITY, profile, T0));
    expect(state.behaviour!.alarms.HIGH?.status).toBe('ACTIVE');
  });

  it('acknowledge is idempotent and kept; clear by hand needs the condition to fall and rise again', () => {
    const raised = run(tank, [
      [0, level(85)],
      [10_000, timer('alarm:HIGH')],
    ]).state;
    const acked = run(tank, [[11_000, { kind: 'acknowledgeAlarm', name: 'HIGH', by: 'op-1' }]], raised);
    expect(acked.state.behaviour!.alarms.HIGH).toMatchObject({
      acknowledged: true,
      acknowledgedBy: 'op-1',
      acknowledgedAt: T0 + 11_000,
    });
    expect(kinds(acked.effects, 'alarmChanged')).toHaveLength(1);
    const again = unwrap(
      decide(tank, acked.state, { kind: 'acknowledgeAlarm', name: 'HIGH', by: 'op-2' }, T0),
    );
    expect(again.state).toBe(acked.state);
    expect(toSnapshot(acked.state).alarms).toEqual({
      active: 1,
      unacknowledged: 0,
      highestSeverity: 'MAJOR',
    });

    const cleared = run(tank, [[12_000, { kind: 'clearAlarm', name: 'HIGH', by: 'op-1' }]], acked.state);
    expect(cleared.state.behaviour!.alarms.HIGH).toMatchObject({ status: 'CLEARED', clearedBy: 'op-1' });
    // Still over 80: not raised again until it falls below and rises.
    const still = run(tank, [[13_000, level(90)]], cleared.state);
    expect(still.state.behaviour!.alarms.HIGH?.status).toBe('CLEARED');
    const rise = run(
      tank,
      [
        [14_000, level(50)],
        [15_000, level(88)],
        [25_000, timer('alarm:HIGH')],
      ],
      still.state,
    );
    expect(rise.state.behaviour!.alarms.HIGH).toMatchObject({
      status: 'ACTIVE',
      acknowledged: false,
      reRaises: 1,
    });

    const twice = decide(tank, cleared.state, { kind: 'clearAlarm', name: 'HIGH', by: 'op-1' }, T0);
    expect(twice).toMatchObject({ ok: false, code: 'CONFLICT' });
    expect(decide(tank, raised, { kind: 'acknowledgeAlarm', name: 'NOPE', by: 'x' }, T0)).toMatchObject({
      ok: false,
      code: 'NOT_FOUND',
    });
  });

  it('refuses to clear by hand an alarm its type keeps', () => {
    const { state } = run(tank, [[0, level(0)]]);
    expect(state.behaviour!.alarms.EMPTY?.status).toBe('ACTIVE');
    expect(decide(tank, state, { kind: 'clearAlarm', name: 'EMPTY', by: 'op' }, T0 + 1)).toMatchObject({
      ok: false,
      code: 'INVALID_ARGUMENT',
    });
    expect(toSnapshot(state).alarms.highestSeverity).toBe('CRITICAL');
  });

  it('alarms raised by a reaction are cleared by its otherwise', () => {
    const { state } = run(tank, [
      [0, level(5)],
      [30_000, timer('reaction:low')],
      [31_000, level(50)],
    ]);
    expect(state.behaviour!.alarms.LOW).toMatchObject({ status: 'CLEARED', clearedBy: 'twin' });
  });
});

describe('connectivity', () => {
  it('goes OFFLINE when the timer finds the silence long enough, and back with the next data', () => {
    const first = run(tank, [[0, level(50)]]);
    expect(behaviourDeadlines(tank.behaviours, behaviourOf(first.state), {}).get(OFFLINE_KEY)).toBe(
      T0 + 60_000,
    );
    // Data meanwhile moves the deadline: the early timer changes nothing and the shell sleeps for the rest.
    const mid = run(
      tank,
      [
        [20_000, level(51)],
        [60_000, timer(OFFLINE_KEY)],
      ],
      first.state,
    );
    expect(mid.state.status).toBe('OK');
    expect(behaviourDeadlines(tank.behaviours, behaviourOf(mid.state), {}).get(OFFLINE_KEY)).toBe(
      T0 + 80_000,
    );
    const off = run(tank, [[80_000, timer(OFFLINE_KEY)]], mid.state);
    expect(off.state.status).toBe('OFFLINE');
    expect(off.effects).toContainEqual({ kind: 'statusChanged', from: 'OK', to: 'OFFLINE' });
    expect(off.effects).toContainEqual({ kind: 'publishSnapshot', urgent: true });
    // Offline: no deadline at all, so an idle twin has no timer.
    expect(behaviourDeadlines(tank.behaviours, behaviourOf(off.state), {}).size).toBe(0);
    const back = run(tank, [[500_000, level(52)]], off.state);
    expect(back.state.status).toBe('OK');
    expect(back.effects).toContainEqual({ kind: 'statusChanged', from: 'OFFLINE', to: 'OK' });
  });

  it('a device attribute overrides the delay; a twin that never had data has no timer', () => {
    const profile = { tags: [], attributes: { offlineAfterMs: 1_000 } };
    const fresh = createTwinState(tank, IDENTITY, profile, T0);
    expect(fresh.behaviour).toBeUndefined();
    const { state } = run(tank, [[0, level(50)]], fresh);
    expect(behaviourDeadlines(tank.behaviours, behaviourOf(state), profile.attributes).get(OFFLINE_KEY)).toBe(
      T0 + 1_000,
    );
  });
});

describe('the electricity meter', () => {
  const electricityMeterTwin = asType(meterType);
  const meterIdentity = { org: 'acme', deviceId: 'm-1', twinType: 'electricity-meter' };
  const power = (w: number): TwinInput => ({
    kind: 'telemetry',
    batch: {
      batchId: `p${++batch}`,
      channel: 'http',
      receivedAt: T0,
      datapoints: [{ datastreamId: 'power.active', feed: 'default', value: w, at: T0 + batch }],
      storedCount: 1,
    },
  });
  const fresh = () => createTwinState(electricityMeterTwin, meterIdentity, { tags: [], attributes: {} }, T0);

  it('an overload held for two minutes raises OVERLOAD and opens the breaker, once', () => {
    const { state, effects } = run(
      electricityMeterTwin,
      [
        [0, power(12_000)],
        [60_000, power(12_500)],
        [120_000, timer('reaction:overload-breaker')],
        [130_000, power(12_600)],
      ],
      fresh(),
    );
    expect(kinds(effects, 'reactionOperation')).toEqual([
      {
        kind: 'reactionOperation',
        reaction: 'overload-breaker',
        name: 'DISCONNECT_SUPPLY',
        parameters: { reason: 'overload' },
      },
    ]);
    expect(state.behaviour!.alarms.OVERLOAD).toMatchObject({ status: 'ACTIVE', severity: 'MAJOR' });
  });

  it('a spike shorter than the hold does nothing', () => {
    const { state, effects } = run(
      electricityMeterTwin,
      [
        [0, power(12_000)],
        [30_000, power(5_000)],
        [120_000, timer('reaction:overload-breaker')],
      ],
      fresh(),
    );
    expect(kinds(effects, 'reactionOperation')).toEqual([]);
    expect(kinds(effects, 'alarmChanged')).toEqual([]);
    expect(state.behaviour!.alarms).toEqual({});
  });
});

describe('declarations', () => {
  const base = {
    description: 'x',
    initialState: () => ({}),
    applyDatapoint: (s: object) => s,
    status: () => 'OK',
  };
  it('refuses bad names, duplicates, severities, durations and offline delays', () => {
    expect(() =>
      defineTwin({ ...base, name: 'a', reactions: [{ name: '1x', when: () => true, then: () => [] }] }),
    ).toThrow(/reaction name/);
    expect(() =>
      defineTwin({
        ...base,
        name: 'a',
        reactions: [
          { name: 'x', when: () => true, then: () => [] },
          { name: 'x', when: () => true, then: () => [] },
        ],
      }),
    ).toThrow(/declared twice/);
    expect(() =>
      defineTwin({
        ...base,
        name: 'a',
        alarms: [{ name: 'X', severity: 'HUGE' as never, raise: () => true }],
      }),
    ).toThrow(/severity/);
    expect(() =>
      defineTwin({
        ...base,
        name: 'a',
        reactions: [{ name: 'x', when: () => true, for: -1, then: () => [] }],
      }),
    ).toThrow(/for must be/);
    expect(() => defineTwin({ ...base, name: 'a', offlineAfterMs: -5 })).toThrow(/offlineAfterMs/);
  });

  it('a type without behaviours keeps its twin state free of them', () => {
    const plain = asType(defineTwin({ ...base, name: 'plain' }));
    const { state } = run(
      plain,
      [[0, level(1)]],
      createTwinState(plain, { ...IDENTITY, twinType: 'plain' }, PROFILE, T0),
    );
    expect(state.behaviour).toBeUndefined();
  });
});
