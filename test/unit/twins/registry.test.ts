// Covers the twin type registry: lookup by name and the list of known types.
import { electricityMeterTwin } from '../../../twins/electricity-meter.twin';
import { genericTwin } from '../../../twins/generic.twin';
import { DEFAULT_TWIN_TYPE, getTwinType, listTwinTypes } from '../../../twins/registry';

describe('twin type registry', () => {
  it('finds the generic and electricity-meter types by name', () => {
    expect(getTwinType('generic')).toBe(genericTwin);
    expect(getTwinType('electricity-meter')).toBe(electricityMeterTwin);
  });

  it('answers undefined for an unknown name', () => {
    expect(getTwinType('gas-meter')).toBeUndefined();
    expect(getTwinType('')).toBeUndefined();
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
