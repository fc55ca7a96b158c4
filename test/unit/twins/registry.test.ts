// Covers the twin type registry: lookup by name and the list of known types.
import { electricityMeterTwin } from '../../../twins/electricity-meter.twin';
import { genericTwin } from '../../../twins/generic.twin';
import { DEFAULT_TWIN_TYPE, getTwinType, listTwinTypes, resolveTwinType } from '../../../twins/registry';

describe('twin type registry', () => {
  it('finds the generic and electricity-meter types by name', () => {
    expect(getTwinType('generic')).toBe(genericTwin);
    expect(getTwinType('electricity-meter')).toBe(electricityMeterTwin);
  });

  it('answers undefined for an unknown name', () => {
    expect(getTwinType('gas-meter')).toBeUndefined();
    expect(getTwinType('')).toBeUndefined();
  });

  it('resolves a known name to its type for the core', () => {
    expect(resolveTwinType('electricity-meter')).toEqual({ ok: true, value: electricityMeterTwin });
  });

  it('fails with UNKNOWN_TWIN_TYPE for a type the registry does not know (a new twin, or one whose type vanished)', () => {
    expect(resolveTwinType('no-such-type')).toEqual({
      ok: false,
      code: 'UNKNOWN_TWIN_TYPE',
      message: 'unknown twin type "no-such-type"',
    });
    expect(resolveTwinType('vanished')).toMatchObject({ ok: false, code: 'UNKNOWN_TWIN_TYPE' });
  });

  it('lists every known type once, under its own name', () => {
    const names = listTwinTypes().map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['generic', 'electricity-meter']));
    expect(new Set(names).size).toBe(names.length);
    for (const type of listTwinTypes()) expect(getTwinType(type.name)).toBe(type);
  });

  it('uses generic as the default type, and it is registered', () => {
    expect(DEFAULT_TWIN_TYPE).toBe('generic');
    expect(getTwinType(DEFAULT_TWIN_TYPE)).toBeDefined();
  });

  it('gives the generic type the ACTIVE status and the datastreams it has seen', () => {
    const dp = (id: string) => ({ datastreamId: id, feed: 'default', value: 1, at: 0 });
    const state = [dp('a'), dp('b'), dp('a')].reduce(
      (s, d) => genericTwin.applyDatapoint(s, d),
      genericTwin.initialState(),
    );
    expect(state).toEqual({ datastreams: ['a', 'b'] });
    expect(genericTwin.status(state)).toBe('ACTIVE');
  });
});
