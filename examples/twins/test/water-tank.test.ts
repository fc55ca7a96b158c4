// The example package's own tests: the twin type through TwinFlow's pure core, no server needed.
import { type TwinType } from '../../../twins/define-twin';
import {
  type TwinEffect,
  type TwinInput,
  type TwinState,
  createTwinState,
  decide,
} from '../../../twins/twin-core';
import { checkTwinTypes } from '../../../worker/user-twins';
import twins from '../index';
import { waterTankTwin } from '../water-tank.twin';

const T0 = 1_700_000_000_000;
const type = waterTankTwin as unknown as TwinType;
let n = 0;
const level = (levelPct: number, inletOpen = true): TwinInput => ({
  kind: 'telemetry',
  batch: {
    batchId: `b${++n}`,
    channel: 'http',
    receivedAt: T0,
    datapoints: [
      { datastreamId: 'level', feed: 'default', value: levelPct, at: T0 + n },
      { datastreamId: 'inlet.open', feed: 'default', value: inletOpen, at: T0 + n },
    ],
    storedCount: 2,
  },
});

function run(steps: [number, TwinInput][]): { state: TwinState; effects: TwinEffect[] } {
  let state = createTwinState(
    type,
    { org: 'o', deviceId: 'tank-1', twinType: 'water-tank' },
    { tags: [], attributes: {} },
    T0,
  );
  const effects: TwinEffect[] = [];
  for (const [at, input] of steps) {
    const d = decide(type, state, input, T0 + at);
    if (!d.ok) throw new Error(d.message);
    state = d.value.state;
    effects.push(...d.value.effects);
  }
  return { state, effects };
}

describe('the water-tank example', () => {
  it('passes the checks the worker runs at start', () => {
    expect(checkTwinTypes(twins).map((t) => t.name)).toEqual(['water-tank']);
  });

  it('closes the inlet once the level stayed high for 30 s', () => {
    const { state, effects } = run([
      [0, level(95)],
      [30_000, { kind: 'behaviourTimer', key: 'reaction:close-inlet' }],
    ]);
    expect(effects.filter((e) => e.kind === 'reactionOperation')).toEqual([
      { kind: 'reactionOperation', reaction: 'close-inlet', name: 'CLOSE_INLET', parameters: {} },
    ]);
    expect(state.status).toBe('HIGH');
    expect(state.behaviour?.alarms.OVERFLOW_RISK?.status).toBe('ACTIVE');
  });

  it('does nothing for a wave that falls back within the hold', () => {
    const { effects } = run([
      [0, level(95)],
      [5_000, level(80)],
      [30_000, { kind: 'behaviourTimer', key: 'reaction:close-inlet' }],
    ]);
    expect(effects.filter((e) => e.kind === 'reactionOperation' || e.kind === 'alarmChanged')).toEqual([]);
  });

  it('raises LOW_LEVEL after a minute and clears it only clearly above the threshold', () => {
    const { state } = run([
      [0, level(8)],
      [60_000, { kind: 'behaviourTimer', key: 'alarm:LOW_LEVEL' }],
      [61_000, level(12)],
    ]);
    expect(state.behaviour?.alarms.LOW_LEVEL?.status).toBe('ACTIVE');
    const after = run([
      [0, level(8)],
      [60_000, { kind: 'behaviourTimer', key: 'alarm:LOW_LEVEL' }],
      [61_000, level(20)],
    ]);
    expect(after.state.behaviour?.alarms.LOW_LEVEL?.status).toBe('CLEARED');
  });
});
