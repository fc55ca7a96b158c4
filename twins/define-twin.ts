// The typed API workflow authors use to declare a twin type: its state, how data change it, its status.
import { type AlarmSpec, type Behaviours, type ReactionSpec, checkBehaviours } from './behaviours';
import type { DesiredSpec } from './desired';
import type { OperationCatalogue } from './operation-catalogue';
import type { Datapoint, LatestValue } from './types';

export interface TwinTypeSpec<S> {
  /** Unique name, used as the device `type` and the `TwinflowTwinType` search attribute. */
  readonly name: string;
  readonly description: string;
  /** The type's own state for a new device. Must be plain JSON. */
  initialState: () => S;
  /** How one datapoint changes the type's state. Pure: return a new state, do not mutate. */
  applyDatapoint: (state: S, datapoint: Datapoint) => S;
  /** The status operators see and filter by (`TwinflowStatus`), derived from the state. */
  status: (state: S) => string;
  /**
   * Whether a datapoint should reach the twin now rather than with the next periodic update.
   * Called on the ingest path with the last value sent to the twin, so keep it cheap.
   * Default: a datastream the twin has not heard of yet is significant.
   */
  isSignificant?: (datapoint: Datapoint, previous: LatestValue | undefined) => boolean;
  /** Longest a changed value may wait before the twin hears of it (ms). Default 5000. */
  readonly maxSignalDelayMs?: number;
  /**
   * Longest the twin goes without hearing from a device that keeps sending values the twin already has
   * (ms). Such repeats change nothing, so they wait this long instead of `maxSignalDelayMs`, which keeps
   * Temporal's load flat however often devices repeat themselves. At least `maxSignalDelayMs`.
   * Default 60000.
   */
  readonly heartbeatMs?: number;
  /**
   * The operations devices of this type accept, with their parameters and steps. An operation not listed
   * is refused before it is queued. Default: none.
   */
  readonly operations?: OperationCatalogue;
  /** How many pushed operations may run on one device at a time; the rest wait their turn. Default 1. */
  readonly maxConcurrentOperations?: number;
  /**
   * Rules over the state that act: request an operation, raise or clear an alarm, emit an event. A rule with
   * `for` fires only once its condition has held that long (a durable timer). Default: none.
   */
  readonly reactions?: readonly ReactionSpec<S>[];
  /** Alarms the type raises and clears by itself. Default: none. */
  readonly alarms?: readonly AlarmSpec<S>[];
  /**
   * The device becomes OFFLINE after this long without data (ms; a device attribute `offlineAfterMs`
   * overrides it), and comes back with its next data. Default 0: never.
   */
  readonly offlineAfterMs?: number;
  /**
   * The device's desired configuration: its schema, how reported values are read, and how a difference becomes
   * an operation (default SET_DEVICE_PARAMETERS with the changed keys). Default: none (no desired state).
   */
  readonly desired?: DesiredSpec<S>;
}

export interface TwinType<S = unknown> extends Required<
  Omit<
    TwinTypeSpec<S>,
    | 'isSignificant'
    | 'operations'
    | 'maxConcurrentOperations'
    | 'reactions'
    | 'alarms'
    | 'offlineAfterMs'
    | 'desired'
  >
> {
  readonly desired?: DesiredSpec<unknown>;
  readonly operations: OperationCatalogue;
  readonly behaviours: Behaviours;
  readonly maxConcurrentOperations: number;
  isSignificant: (datapoint: Datapoint, previous: LatestValue | undefined) => boolean;
}

const NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
export const DEFAULT_MAX_SIGNAL_DELAY_MS = 5_000;
export const DEFAULT_HEARTBEAT_MS = 60_000;

/** Declares a twin type. Throws at load time when the declaration itself is wrong. */
export function defineTwin<S>(spec: TwinTypeSpec<S>): TwinType<S> {
  if (!NAME_PATTERN.test(spec.name)) {
    throw new Error(`twin type name ${JSON.stringify(spec.name)} must match ${NAME_PATTERN}`);
  }
  const maxSignalDelayMs = spec.maxSignalDelayMs ?? DEFAULT_MAX_SIGNAL_DELAY_MS;
  if (!Number.isFinite(maxSignalDelayMs) || maxSignalDelayMs < 0) {
    throw new Error(`twin type ${spec.name}: maxSignalDelayMs must be a non-negative number`);
  }
  const heartbeatMs = spec.heartbeatMs ?? Math.max(DEFAULT_HEARTBEAT_MS, maxSignalDelayMs);
  if (!Number.isFinite(heartbeatMs) || heartbeatMs < maxSignalDelayMs) {
    throw new Error(`twin type ${spec.name}: heartbeatMs must be a number at least maxSignalDelayMs`);
  }
  const maxConcurrentOperations = spec.maxConcurrentOperations ?? 1;
  if (
    !Number.isInteger(maxConcurrentOperations) ||
    maxConcurrentOperations < 1 ||
    maxConcurrentOperations > 64
  ) {
    throw new Error(`twin type ${spec.name}: maxConcurrentOperations must be an integer from 1 to 64`);
  }
  const operations = spec.operations ?? {};
  if (operations !== 'any') {
    for (const name of Object.keys(operations)) {
      if (!/^[A-Z][A-Z0-9_]{0,63}$/.test(name)) {
        throw new Error(
          `twin type ${spec.name}: operation name ${JSON.stringify(name)} must be UPPER_SNAKE_CASE`,
        );
      }
    }
  }
  const behaviours: Behaviours = Object.freeze({
    reactions: Object.freeze([...(spec.reactions ?? [])]) as readonly ReactionSpec<unknown>[],
    alarms: Object.freeze([...(spec.alarms ?? [])]) as readonly AlarmSpec<unknown>[],
    offlineAfterMs: spec.offlineAfterMs ?? 0,
  });
  checkBehaviours(spec.name, behaviours);
  const isSignificant =
    spec.isSignificant ?? ((_dp: Datapoint, previous?: LatestValue) => previous === undefined);
  return Object.freeze({
    name: spec.name,
    description: spec.description,
    initialState: spec.initialState,
    applyDatapoint: spec.applyDatapoint,
    status: spec.status,
    isSignificant,
    maxSignalDelayMs,
    heartbeatMs,
    operations,
    maxConcurrentOperations,
    behaviours,
    ...(spec.desired ? { desired: spec.desired as DesiredSpec<unknown> } : {}),
  });
}
