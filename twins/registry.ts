// The twin types this runtime knows. Add a new type here after declaring it with defineTwin.
import type { TwinType } from './define-twin';
import { electricityMeterTwin } from './electricity-meter.twin';
import { genericTwin } from './generic.twin';

export const DEFAULT_TWIN_TYPE = genericTwin.name;

const TWIN_TYPES: ReadonlyMap<string, TwinType> = new Map<string, TwinType>(
  [genericTwin, electricityMeterTwin].map((t) => [t.name, t as TwinType]),
);

export function getTwinType(name: string): TwinType | undefined {
  return TWIN_TYPES.get(name);
}

export function listTwinTypes(): readonly TwinType[] {
  return [...TWIN_TYPES.values()];
}
