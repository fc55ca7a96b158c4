// What a twin accepts before it changes anything: pure checks behind the twin workflow's update validators.
import { acknowledgeAlarm, clearAlarmByHand, emptyBehaviour } from './behaviours';
import type { TwinType } from './define-twin';
import { emptyDesired, reportedValues, setDesired } from './desired';
import { checkOperation } from './operation-catalogue';
import type { OperationRequest } from './operations';
import type { ProfilePatch, TwinState } from './twin-core';
import { type Result, fail, ok } from './types';

/** Updates that only an active twin takes. */
function requireActive(state: TwinState): Result<TwinState> {
  return state.lifecycle === 'ACTIVE' ? ok(state) : fail('DECOMMISSIONED', 'device is decommissioned');
}

/** Shared by the requestOperation validator and decide: the request is this device's and its type accepts it. */
export function validateOperationRequest(
  type: TwinType,
  state: TwinState,
  request: OperationRequest,
): Result<OperationRequest> {
  if (state.lifecycle !== 'ACTIVE')
    return fail('DECOMMISSIONED', `device ${state.identity.deviceId} is decommissioned`);
  if (request.org !== state.identity.org || request.deviceId !== state.identity.deviceId) {
    return fail('INVALID_ARGUMENT', 'the operation is for another device');
  }
  const params = checkOperation(type.operations, type.name, request.name, request.parameters);
  return params.ok ? ok(request) : params;
}

/** A poll asks for a positive whole number of operations, on an active twin. */
export function validateClaimPending(state: TwinState, input: { limit: number }): Result<{ limit: number }> {
  if (!Number.isInteger(input.limit) || input.limit < 1)
    return fail('INVALID_ARGUMENT', 'limit must be a positive integer');
  const active = requireActive(state);
  return active.ok ? ok(input) : active;
}

/** Only an operation still open on this device can be cancelled. */
export function validateCancelOperation(state: TwinState, input: { id: string }): Result<{ id: string }> {
  return state.operations.open.some((o) => o.id === input.id)
    ? ok(input)
    : fail('NOT_FOUND', `operation ${input.id} is not open on this device`);
}

/** A profile changes only on an active twin, and only with a well-formed patch. */
export function validateProfileUpdate(state: TwinState, patch: ProfilePatch): Result<ProfilePatch> {
  const active = requireActive(state);
  return active.ok ? validateProfilePatch(patch) : active;
}

/** A twin is decommissioned once. */
export function validateDecommission(state: TwinState): Result<TwinState> {
  return requireActive(state);
}

export const MAX_TAGS = 32;
/** Names that would reach Object.prototype machinery rather than be plain data. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const ATTRIBUTE_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** Checks a profile patch; shared by the workflow's update validator and the API. */
export function validateProfilePatch(patch: ProfilePatch): Result<ProfilePatch> {
  if (
    patch.name !== undefined &&
    patch.name !== null &&
    (typeof patch.name !== 'string' || patch.name.length > 200)
  ) {
    return fail('INVALID_ARGUMENT', 'name must be a string of at most 200 characters');
  }
  if (patch.tags !== undefined) {
    if (!Array.isArray(patch.tags) || patch.tags.length > MAX_TAGS) {
      return fail('INVALID_ARGUMENT', `tags must be an array of at most ${MAX_TAGS} strings`);
    }
    if (patch.tags.some((t) => typeof t !== 'string' || t.length === 0 || t.length > 64)) {
      return fail('INVALID_ARGUMENT', 'each tag must be a string of 1 to 64 characters');
    }
  }
  for (const [key, value] of Object.entries(patch.attributes ?? {})) {
    if (!ATTRIBUTE_KEY.test(key) || RESERVED_KEYS.has(key))
      return fail('INVALID_ARGUMENT', `attribute name ${JSON.stringify(key)} is not allowed`);
    const t = typeof value;
    if (value !== null && t !== 'string' && t !== 'number' && t !== 'boolean') {
      return fail('INVALID_ARGUMENT', `attribute ${key} must be a string, number, boolean or null`);
    }
    if (t === 'string' && (value as string).length > 1024) {
      return fail('INVALID_ARGUMENT', `attribute ${key} is longer than 1024 characters`);
    }
  }
  return ok(patch);
}

/** An operator's acknowledge or clear: the alarm exists on an active twin, and a clear is allowed. */
export function validateAlarmAction(
  _type: TwinType,
  state: TwinState,
  input: { name: string; action: 'acknowledge' | 'clear'; by: string },
): Result<{ name: string }> {
  const active = requireActive(state);
  if (!active.ok) return active;
  if (input.action !== 'acknowledge' && input.action !== 'clear')
    return fail('INVALID_ARGUMENT', 'action must be acknowledge or clear');
  const behaviour = state.behaviour ?? emptyBehaviour();
  const act = input.action === 'acknowledge' ? acknowledgeAlarm : clearAlarmByHand;
  const done = act(behaviour, input.name, input.by, 0);
  return done.ok ? ok({ name: input.name }) : done;
}

/** An operator's desired-state change: the type declares one, the twin is active, the version and values fit. */
export function validateDesiredPatch(
  type: TwinType,
  state: TwinState,
  patch: { values: Readonly<Record<string, unknown>>; ifVersion?: number; by: string },
): Result<{ version: number }> {
  const active = requireActive(state);
  if (!active.ok) return active;
  if (!type.desired) return fail('INVALID_ARGUMENT', `twin type ${type.name} declares no desired state`);
  if (typeof patch.values !== 'object' || patch.values === null || Array.isArray(patch.values))
    return fail('INVALID_ARGUMENT', 'desired values must be an object');
  const step = setDesired(type.desired, state.desired ?? emptyDesired(), patch.values, {
    ...(patch.ifVersion !== undefined ? { ifVersion: patch.ifVersion } : {}),
    by: patch.by,
    now: 0,
    newId: 'check',
    reported: reportedValues(type.desired, state.typeState, state.reported),
  });
  return step.ok ? ok({ version: step.value.desired.version }) : step;
}
