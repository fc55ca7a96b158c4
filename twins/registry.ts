// The twin types this runtime knows. Add a new type here after declaring it with defineTwin.
import type { TwinType } from './define-twin';
import { electricityMeterTwin } from './electricity-meter.twin';
import { genericTwin } from './generic.twin';
import { type Result, fail, ok } from './types';

export const DEFAULT_TWIN_TYPE = genericTwin.name;

const TWIN_TYPES: ReadonlyMap<string, TwinType> = new Map<string, TwinType>(
  [genericTwin, electricityMeterTwin].map((t) => [t.name, t as TwinType]),
);

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
