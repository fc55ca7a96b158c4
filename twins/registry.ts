// The twin types this runtime knows: the built-in ones, and those of the module TWINFLOW_TWINS names (see
// worker/user-twins.ts), which the worker registers at start and bundles into the workflow code.
import type { TwinType } from './define-twin';
import { electricityMeterTwin } from './electricity-meter.twin';
import { genericTwin } from './generic.twin';
import { type Result, fail, ok } from './types';

export const DEFAULT_TWIN_TYPE = genericTwin.name;

const BUILTIN_TWIN_TYPES: readonly TwinType[] = [genericTwin, electricityMeterTwin].map((t) => t as TwinType);
const TWIN_TYPES = new Map<string, TwinType>(BUILTIN_TWIN_TYPES.map((t) => [t.name, t]));

export const isBuiltinTwinType = (name: string): boolean => BUILTIN_TWIN_TYPES.some((t) => t.name === name);

/**
 * Adds twin types written outside TwinFlow. Called once at start, before any twin runs: by the process (API and
 * activities) and by the workflow bundle's entry. A name already known is refused.
 */
export function registerTwinTypes(types: readonly TwinType[]): void {
  for (const t of types) {
    const known = TWIN_TYPES.get(t.name);
    if (known && known !== t) throw new Error(`twin type ${t.name} is already defined`);
  }
  for (const t of types) TWIN_TYPES.set(t.name, t);
}

export function getTwinType(name: string): TwinType | undefined {
  return TWIN_TYPES.get(name);
}

/** The type a twin's identity names, or UNKNOWN_TWIN_TYPE: shells look it up once and give it to the core. */
export function resolveTwinType(name: string): Result<TwinType> {
  const type = TWIN_TYPES.get(name);
  return type ? ok(type) : fail('UNKNOWN_TWIN_TYPE', `unknown twin type ${JSON.stringify(name)}`);
}

export function listTwinTypes(): readonly TwinType[] {
  return [...TWIN_TYPES.values()];
}
