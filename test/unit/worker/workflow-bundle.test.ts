// The modules twins share in the worker's reusable V8 context are deep-frozen by the SDK before any workflow runs.
// Freeze them here the same way (own properties of objects, functions frozen but not walked), then use them as
// twins do: a module that exported a zod schema, or mutated what it exports, fails here rather than in a worker.
import { z } from 'zod';
import { SHARED_WORKFLOW_MODULES } from '../../../worker/workflow-bundle';
import { checkOperation } from '../../../twins/operation-catalogue';
import { listTwinTypes } from '../../../twins/registry';

/** What the SDK's reusable context does to each preloaded module (worker/lib/workflow/reusable-vm.js). */
function deepFreeze(value: unknown, visited = new WeakSet<object>()): void {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return;
  if (visited.has(value) || Object.isFrozen(value)) return;
  visited.add(value);
  if (typeof value === 'object')
    for (const key of Reflect.ownKeys(value))
      deepFreeze((value as Record<PropertyKey, unknown>)[key], visited);
  Object.freeze(value);
}

/** Every zod schema that deepFreeze would reach from a module's exports. */
function reachableSchemas(
  value: unknown,
  path: string,
  out: string[],
  visited = new WeakSet<object>(),
): void {
  if (value === null || typeof value !== 'object' || visited.has(value)) return;
  visited.add(value);
  if (value instanceof z.ZodType) {
    out.push(path);
    return;
  }
  for (const key of Reflect.ownKeys(value))
    reachableSchemas((value as Record<PropertyKey, unknown>)[key], `${path}.${String(key)}`, out, visited);
}

const ownModules = SHARED_WORKFLOW_MODULES.filter((m) => m !== 'zod');

describe('modules shared by every twin in the reusable V8 context', () => {
  it('are TwinFlow modules that exist, plus zod', () => {
    expect(SHARED_WORKFLOW_MODULES).toContain('zod');
    expect(ownModules.length).toBeGreaterThan(0);
    for (const m of ownModules) expect(() => require.resolve(m)).not.toThrow();
  });

  it('export no zod schema that the freeze would reach', () => {
    const probe: string[] = [];
    reachableSchemas({ nested: { schema: z.object({}) } }, 'probe', probe);
    expect(probe).toEqual(['probe.nested.schema']);
    const found: string[] = [];
    for (const m of ownModules) reachableSchemas(require(m), m, found);
    expect(found).toEqual([]);
  });

  it('still validate operations and apply data once frozen', () => {
    for (const m of ownModules) deepFreeze(require(m));
    const types = listTwinTypes();
    expect(types.length).toBeGreaterThan(1);
    for (const type of types) {
      // Twice: the second parse goes through whatever the first one cached.
      for (let i = 0; i < 2; i++) {
        const state = type.applyDatapoint(type.initialState(), {
          datastreamId: 'power.active',
          feed: 'default',
          value: 1,
          at: 1_700_000_000_000,
        });
        expect(typeof type.status(state)).toBe('string');
      }
      if (type.operations === 'any') continue;
      for (const name of Object.keys(type.operations)) {
        const refused = checkOperation(type.operations, type.name, name, { notAParameter: true });
        expect(refused.ok).toBe(false);
      }
    }
    const meter = types.find((t) => t.name === 'electricity-meter')!;
    for (let i = 0; i < 2; i++) {
      const read = checkOperation(meter.operations, meter.name, 'READ_METER', {});
      expect(read).toEqual({ ok: true, value: { registers: ['energy.import', 'power.active', 'voltage'] } });
      const limit = checkOperation(meter.operations, meter.name, 'SET_POWER_LIMIT', { limitW: -1 });
      expect(limit.ok).toBe(false);
    }
  });
});
