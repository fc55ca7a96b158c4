// Covers twin types written outside TwinFlow: the module's export shapes, the checks the worker runs at start,
// registration beside the built-in types, and twinPatched outside a workflow.
import { z } from 'zod';
import { defineTwin } from '../../../twins/define-twin';
import { getTwinType, registerTwinTypes } from '../../../twins/registry';
import { twinTypesOf } from '../../../twins/twin-module';
import { twinPatched } from '../../../workflows/versioning';
import { checkTwinTypes } from '../../../worker/user-twins';

const base = {
  description: 'x',
  initialState: () => ({ n: 0 }),
  applyDatapoint: (s: { n: number }) => s,
  status: () => 'OK',
};

describe('twin types from a module', () => {
  it('reads `export default [...]`, `export const twinTypes` and refuses anything else', () => {
    const t = defineTwin({ ...base, name: 'mod-a' });
    expect(twinTypesOf({ default: [t] })).toEqual([t]);
    expect(twinTypesOf({ twinTypes: [t] })).toEqual([t]);
    expect(twinTypesOf({ default: { twinTypes: [t] } })).toEqual([t]);
    expect(() => twinTypesOf({ something: t })).toThrow(/export default/);
  });

  it('checks each type before any twin runs', () => {
    const ok = defineTwin({ ...base, name: 'mod-ok' });
    expect(checkTwinTypes([ok])).toEqual([ok]);
    expect(() => checkTwinTypes([{ name: 'raw' }])).toThrow(/declare it with defineTwin/);
    expect(() => checkTwinTypes([defineTwin({ ...base, name: 'generic' })])).toThrow(/built-in/);
    expect(() => checkTwinTypes([ok, ok])).toThrow(/declared twice/);
    expect(() =>
      checkTwinTypes([
        defineTwin({ ...base, name: 'mod-date', initialState: () => ({ at: new Date(0) }) as never }),
      ]),
    ).toThrow(/plain JSON/);
    expect(() => checkTwinTypes([defineTwin({ ...base, name: 'mod-status', status: () => '' })])).toThrow(
      /status/,
    );
    const throwing = defineTwin({
      ...base,
      name: 'mod-throws',
      reactions: [
        {
          name: 'boom',
          when: ({ state }) => (state as unknown as { a: { b: number } }).a.b > 1,
          then: () => [],
        },
      ],
    });
    expect(() => checkTwinTypes([throwing])).toThrow(/mod-throws/);
    const badDesired = defineTwin({ ...base, name: 'mod-desired', desired: { schema: {} as z.ZodType } });
    expect(() => checkTwinTypes([badDesired])).toThrow(/zod/);
  });

  it('registers types beside the built-in ones and refuses a second type of the same name', () => {
    const t = defineTwin({ ...base, name: 'mod-registered' });
    registerTwinTypes([t as never]);
    expect(getTwinType('mod-registered')).toBe(t);
    registerTwinTypes([t as never]); // the same type again: harmless
    expect(() => registerTwinTypes([defineTwin({ ...base, name: 'mod-registered' }) as never])).toThrow(
      /already defined/,
    );
    expect(getTwinType('generic')).toBeDefined();
  });

  it('twinPatched is true outside a workflow', () => {
    expect(twinPatched('any-change')).toBe(true);
  });
});
