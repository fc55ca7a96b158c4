// Desired state, the pure part: what an operator wants a device's configuration to be, compared with what the
// device reports, and the reconciliation that gets it there: an operation per attempt, retried with backoff,
// sent again after a reconnect, superseded by a newer version. No Temporal, no I/O.
import type { ZodType } from 'zod';
import type { LatestValue, Result } from './types';
import { fail, ok } from './types';

export type SyncStatus = 'IN_SYNC' | 'PENDING' | 'FAILED';

/** The operation a difference becomes. */
export interface DesiredOperation {
  readonly name: string;
  readonly parameters: Readonly<Record<string, unknown>>;
}

export interface DesiredSpec<S> {
  /** The desired document (a zod object); a PATCH is checked against it after merging. */
  readonly schema: ZodType;
  /** The reported value of each key. Default: the latest value of the datastream named like the key. */
  readonly reported?: (ctx: {
    state: S;
    reported: readonly LatestValue[];
  }) => Readonly<Record<string, unknown>>;
  /** How a difference becomes an operation. Default: SET_DEVICE_PARAMETERS with the changed keys. */
  readonly toOperation?: (delta: Readonly<Record<string, unknown>>) => DesiredOperation;
  /** Attempts per version before FAILED (a device that refuses fails at once). Default 5. */
  readonly maxAttempts?: number;
  /** Backoff before the next attempt: initial, doubling up to max (ms). Defaults 5 s and 5 min. */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /**
   * How long after a successful operation the device may take to report the values before the twin sends them
   * again (ms). Default 60 s.
   */
  readonly confirmMs?: number;
  /** Per operation: the device must answer within this once it has the request (ms). Default 60 s. */
  readonly operationTimeoutMs?: number;
}

export interface DesiredState {
  readonly version: number;
  readonly values: Readonly<Record<string, unknown>>;
  readonly updatedAt: number;
  readonly updatedBy: string;
  /** Attempts made for this version. */
  readonly attempt: number;
  /** The operation under way for this version, and the keys it carries. */
  readonly inflight: { readonly id: string; readonly keys: readonly string[] } | null;
  /** When the next attempt is due (a durable timer); null: none planned. */
  readonly retryAt: number | null;
  /** Why the current version failed, and for which keys. */
  readonly failure: { readonly reason: string; readonly keys: readonly string[] } | null;
  /** The last outcome, for operators. */
  readonly lastResult: string | null;
}

export interface KeySync {
  readonly desired: unknown;
  readonly reported: unknown;
  readonly status: SyncStatus;
}

export interface DesiredView {
  readonly version: number;
  readonly values: Readonly<Record<string, unknown>>;
  readonly status: SyncStatus;
  readonly keys: Readonly<Record<string, KeySync>>;
  readonly reason: string | null;
  readonly attempt: number;
  readonly operationId: string | null;
  readonly retryAt: number | null;
  readonly updatedAt: number | null;
  readonly updatedBy: string | null;
}

export const DESIRED_KEY = 'desired';
export const DESIRED_BY = 'desired-state';

export const emptyDesired = (): DesiredState => ({
  version: 0,
  values: {},
  updatedAt: 0,
  updatedBy: '',
  attempt: 0,
  inflight: null,
  retryAt: null,
  failure: null,
  lastResult: null,
});

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What the device reports for each desired key. */
export function reportedValues<S>(
  spec: DesiredSpec<S>,
  state: S,
  reported: readonly LatestValue[],
): Readonly<Record<string, unknown>> {
  if (spec.reported) return spec.reported({ state, reported });
  const out: Record<string, unknown> = {};
  for (const v of reported) if (!(v.id in out) || v.feed === 'default') out[v.id] = v.value;
  return out;
}

/** The keys whose reported value differs from the desired one, with the desired values. */
export function delta(
  desired: Readonly<Record<string, unknown>>,
  reported: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(desired)) if (!sameJson(v, reported[k])) out[k] = v;
  return out;
}

export function defaultOperation(d: Readonly<Record<string, unknown>>): DesiredOperation {
  return {
    name: 'SET_DEVICE_PARAMETERS',
    parameters: {
      variableList: Object.entries(d).map(([variableName, variableValue]) => ({
        variableName,
        variableValue,
      })),
    },
  };
}

/** Per key and overall sync. */
export function desiredView(d: DesiredState, reported: Readonly<Record<string, unknown>>): DesiredView {
  const keys: Record<string, KeySync> = {};
  let status: SyncStatus = 'IN_SYNC';
  for (const [k, v] of Object.entries(d.values)) {
    const inSync = sameJson(v, reported[k]);
    const s: SyncStatus = inSync ? 'IN_SYNC' : d.failure?.keys.includes(k) ? 'FAILED' : 'PENDING';
    keys[k] = { desired: v, reported: reported[k] ?? null, status: s };
    if (s === 'FAILED') status = 'FAILED';
    else if (s === 'PENDING' && status === 'IN_SYNC') status = 'PENDING';
  }
  return {
    version: d.version,
    values: d.values,
    status,
    keys,
    reason: status === 'FAILED' ? (d.failure?.reason ?? null) : null,
    attempt: d.attempt,
    operationId: d.inflight?.id ?? null,
    retryAt: d.retryAt,
    updatedAt: d.version > 0 ? d.updatedAt : null,
    updatedBy: d.version > 0 ? d.updatedBy : null,
  };
}

/** What a step asks the shell for: send an operation with this id, cancel a superseded one. */
export type DesiredEffect =
  | {
      readonly kind: 'desiredOperation';
      readonly id: string;
      readonly operation: DesiredOperation;
      readonly timeoutMs: number;
    }
  | { readonly kind: 'desiredCancel'; readonly id: string };

interface Step {
  readonly desired: DesiredState;
  readonly effects: DesiredEffect[];
}

const limits = <S>(spec: DesiredSpec<S>) => ({
  maxAttempts: spec.maxAttempts ?? 5,
  initial: spec.retryInitialMs ?? 5_000,
  max: spec.retryMaxMs ?? 300_000,
  confirm: spec.confirmMs ?? 60_000,
  timeout: spec.operationTimeoutMs ?? 60_000,
});

/** Starts an attempt when the device differs and nothing is under way; answers the state unchanged otherwise. */
export function reconcile<S>(
  spec: DesiredSpec<S>,
  d: DesiredState,
  reported: Readonly<Record<string, unknown>>,
  newId: string,
): Step {
  if (d.inflight || d.failure) return { desired: d, effects: [] };
  const diff = delta(d.values, reported);
  const keys = Object.keys(diff);
  if (keys.length === 0) return { desired: d.retryAt === null ? d : { ...d, retryAt: null }, effects: [] };
  const l = limits(spec);
  if (d.attempt >= l.maxAttempts) {
    return {
      desired: {
        ...d,
        retryAt: null,
        failure: { reason: `no success after ${d.attempt} attempts (${d.lastResult ?? 'no answer'})`, keys },
      },
      effects: [],
    };
  }
  const operation = (spec.toOperation ?? defaultOperation)(diff);
  return {
    desired: { ...d, attempt: d.attempt + 1, inflight: { id: newId, keys }, retryAt: null },
    effects: [{ kind: 'desiredOperation', id: newId, operation, timeoutMs: l.timeout }],
  };
}

/**
 * An operator's change: merged (null removes a key), checked against the schema, a new version. An attempt under
 * way for the older version is cancelled and a new one starts with the new difference.
 */
export function setDesired<S>(
  spec: DesiredSpec<S>,
  d: DesiredState,
  patch: Readonly<Record<string, unknown>>,
  o: {
    ifVersion?: number;
    by: string;
    now: number;
    /** The id an attempt started now would use; absent: the attempt is due at once (the twin's retry timer). */
    newId?: string;
    reported: Readonly<Record<string, unknown>>;
  },
): Result<Step> {
  if (o.ifVersion !== undefined && o.ifVersion !== d.version)
    return fail('PRECONDITION_FAILED', `desired state is at version ${d.version}, not ${o.ifVersion}`);
  const merged: Record<string, unknown> = { ...d.values };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete merged[k];
    else merged[k] = v;
  }
  const checked = spec.schema.safeParse(merged);
  if (!checked.success)
    return fail(
      'INVALID_ARGUMENT',
      checked.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; '),
    );
  const effects: DesiredEffect[] = d.inflight ? [{ kind: 'desiredCancel', id: d.inflight.id }] : [];
  const next: DesiredState = {
    version: d.version + 1,
    values: checked.data as Record<string, unknown>,
    updatedAt: o.now,
    updatedBy: o.by,
    attempt: 0,
    inflight: null,
    retryAt: null,
    failure: null,
    lastResult: d.lastResult,
  };
  if (o.newId === undefined) {
    const differs = Object.keys(delta(next.values, o.reported)).length > 0;
    return ok({ desired: differs ? { ...next, retryAt: o.now } : next, effects });
  }
  const started = reconcile(spec, next, o.reported, o.newId);
  return ok({ desired: started.desired, effects: [...effects, ...started.effects] });
}

const FINAL_REFUSAL = new Set(['FAILED']);

/** The attempt's operation ended. A refusal fails at once; a timeout or expiry retries with backoff. */
export function desiredOperationEnded<S>(
  spec: DesiredSpec<S>,
  d: DesiredState,
  ended: { id: string; status: string; resultCode?: string | null; resultDescription?: string | null },
  reported: Readonly<Record<string, unknown>>,
  now: number,
): Step {
  if (d.inflight?.id !== ended.id) return { desired: d, effects: [] };
  const l = limits(spec);
  const result = [ended.status, ended.resultCode, ended.resultDescription].filter(Boolean).join(' ');
  const keys = d.inflight.keys;
  const base: DesiredState = { ...d, inflight: null, lastResult: result };
  if (ended.status === 'SUCCESSFUL') {
    // The device took it: it should report the values soon; if not, it gets them again.
    const pending = Object.keys(delta(d.values, reported)).length > 0;
    return { desired: { ...base, retryAt: pending ? now + l.confirm : null }, effects: [] };
  }
  if (FINAL_REFUSAL.has(ended.status)) {
    return {
      desired: { ...base, retryAt: null, failure: { reason: `the device refused: ${result}`, keys } },
      effects: [],
    };
  }
  if (d.attempt >= l.maxAttempts) {
    return {
      desired: {
        ...base,
        retryAt: null,
        failure: { reason: `no success after ${d.attempt} attempts (${result})`, keys },
      },
      effects: [],
    };
  }
  const backoff = Math.min(l.max, l.initial * 2 ** Math.max(0, d.attempt - 1));
  return { desired: { ...base, retryAt: now + backoff }, effects: [] };
}

/** The operation could not be admitted (refused by the catalogue, or the device record is gone). */
export function desiredAdmissionFailed(d: DesiredState, id: string, reason: string): DesiredState {
  if (d.inflight?.id !== id) return d;
  return {
    ...d,
    inflight: null,
    retryAt: null,
    failure: { reason: `the operation was refused: ${reason}`, keys: d.inflight.keys },
    lastResult: reason,
  };
}

/** Data came after the device was OFFLINE: a difference waiting for its retry goes now. */
export function afterReconnect(d: DesiredState, now: number): DesiredState {
  return d.retryAt !== null && d.retryAt > now && !d.inflight ? { ...d, retryAt: now } : d;
}

/** New reports: once the device reports every desired value, no further attempt is planned. */
export function afterReport(d: DesiredState, reported: Readonly<Record<string, unknown>>): DesiredState {
  if (d.retryAt === null || d.inflight) return d;
  return Object.keys(delta(d.values, reported)).length === 0 ? { ...d, retryAt: null } : d;
}

/** The retry timer fired: a due attempt starts (an early timer changes nothing). */
export function desiredRetry<S>(
  spec: DesiredSpec<S>,
  d: DesiredState,
  reported: Readonly<Record<string, unknown>>,
  now: number,
  newId: string,
): Step {
  if (d.retryAt === null || now < d.retryAt) return { desired: d, effects: [] };
  return reconcile(spec, { ...d, retryAt: null }, reported, newId);
}
