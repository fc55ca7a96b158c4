// The twin's pure core: decide(type, state, input, now) -> new state and effects. No Temporal, no I/O.
import {
  type AlarmSummary,
  type BehaviourContext,
  type BehaviourEffect,
  type BehaviourState,
  OFFLINE_KEY,
  OFFLINE_STATUS,
  acknowledgeAlarm,
  alarmSummary,
  checkOffline,
  clearAlarmByHand,
  dataReceived,
  emptyBehaviour,
  evaluateBehaviours,
  hasBehaviours,
} from './behaviours';
import type { TwinType } from './define-twin';
import {
  type DesiredEffect,
  type DesiredState,
  type DesiredView,
  afterReconnect,
  afterReport,
  desiredAdmissionFailed,
  desiredOperationEnded,
  desiredRetry,
  desiredView,
  emptyDesired,
  reportedValues,
  setDesired,
} from './desired';
import { type OperationRequest, type RequestEnvelope, requestEnvelope } from './operations';
import {
  type OperationEffect,
  type OperationTable,
  admitOperation,
  cancelAll,
  cancelOperation,
  claimPending,
  emptyOperationTable,
  operationCounts,
  operationEnded,
  operationWaiting,
} from './twin-operations';
import { validateOperationRequest, validateProfilePatch } from './twin-validators';
import {
  type AttributeValue,
  type Channel,
  type Datapoint,
  type DeviceProfile,
  type LatestValue,
  type Result,
  type TwinIdentity,
  datastreamKey,
  fail,
  ok,
} from './types';

export type Lifecycle = 'ACTIVE' | 'DECOMMISSIONED';

export interface TwinCounters {
  readonly batches: number;
  /** Datapoints the ingest path stored for this device and reported to the twin. */
  readonly datapoints: number;
  readonly duplicateBatches: number;
  readonly staleDatapoints: number;
  readonly attributeChanges: number;
}

export interface Connectivity {
  readonly lastSeenAt: number | null;
  readonly channel: Channel | null;
}

export interface TwinState {
  readonly identity: TwinIdentity;
  readonly profile: DeviceProfile;
  readonly lifecycle: Lifecycle;
  /** Latest value per datastream and feed, sorted by id then feed. */
  readonly reported: readonly LatestValue[];
  /** The twin type's own state (see defineTwin). */
  readonly typeState: unknown;
  readonly status: string;
  readonly connectivity: Connectivity;
  readonly counters: TwinCounters;
  /** Ids of the most recent telemetry batches, so a redelivered batch changes nothing. */
  readonly recentBatchIds: readonly string[];
  /** Open operations in order of request, and the pending queue of a device that polls. */
  readonly operations: OperationTable;
  /** Reactions, alarms and connectivity (absent in runs carried over from before behaviours existed). */
  readonly behaviour?: BehaviourState;
  /** The desired configuration and its reconciliation (absent until an operator first sets it). */
  readonly desired?: DesiredState;
  /** Grows with every change; read models keep the highest version they have seen. */
  readonly version: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** A coalesced report of stored datapoints: the newest value per datastream, plus how many were stored. */
export interface TelemetryBatch {
  readonly batchId: string;
  readonly channel: Channel;
  readonly receivedAt: number;
  readonly datapoints: readonly Datapoint[];
  /** How many datapoints were stored in all (at least datapoints.length). */
  readonly storedCount: number;
}

export interface ProfilePatch {
  readonly name?: string | null;
  readonly tags?: readonly string[];
  /** Keys set to null are removed. */
  readonly attributes?: Readonly<Record<string, AttributeValue | null>>;
}

export type TwinInput =
  | { readonly kind: 'telemetry'; readonly batch: TelemetryBatch }
  | { readonly kind: 'updateProfile'; readonly patch: ProfilePatch }
  | { readonly kind: 'decommission' }
  | { readonly kind: 'requestOperation'; readonly request: OperationRequest }
  | { readonly kind: 'operationEnded'; readonly id: string }
  | { readonly kind: 'operationWaiting'; readonly id: string }
  | { readonly kind: 'claimPending'; readonly limit: number }
  | { readonly kind: 'cancelOperation'; readonly id: string; readonly by: string }
  /** A behaviour's durable timer fired (a pending condition's `due`, or the offline check). */
  | { readonly kind: 'behaviourTimer'; readonly key: string }
  | { readonly kind: 'acknowledgeAlarm'; readonly name: string; readonly by: string }
  | { readonly kind: 'clearAlarm'; readonly name: string; readonly by: string }
  /** An operator's change of the desired state; newId names the operation an attempt would use. */
  | {
      readonly kind: 'setDesired';
      readonly patch: Readonly<Record<string, unknown>>;
      readonly ifVersion?: number;
      readonly by: string;
      readonly newId: string;
    }
  | { readonly kind: 'desiredRetry'; readonly newId: string }
  | {
      readonly kind: 'desiredOperationEnded';
      readonly id: string;
      readonly status: string;
      readonly resultCode?: string | null;
      readonly resultDescription?: string | null;
    }
  | { readonly kind: 'desiredAdmissionFailed'; readonly id: string; readonly reason: string };

export type TwinEffect =
  /** Urgent: what lists filter by changed (status, profile, lifecycle, first contact); else only counters and times. */
  | { readonly kind: 'publishSnapshot'; readonly urgent: boolean }
  | { readonly kind: 'statusChanged'; readonly from: string; readonly to: string }
  | OperationEffect
  | BehaviourEffect
  | DesiredEffect;

export interface Decision {
  readonly state: TwinState;
  readonly effects: readonly TwinEffect[];
}

export const RECENT_BATCH_IDS = 256;
export { MAX_TAGS } from './twin-validators';
export const MAX_ATTRIBUTES = 64;

/** A new twin of the given type (the shell looks the type up once, from `identity.twinType`). */
export function createTwinState(
  type: TwinType,
  identity: TwinIdentity,
  profile: DeviceProfile,
  now: number,
): TwinState {
  const typeState = type.initialState();
  return {
    identity,
    profile: { name: profile.name, tags: [...profile.tags], attributes: { ...profile.attributes } },
    lifecycle: 'ACTIVE',
    reported: [],
    typeState,
    status: type.status(typeState),
    connectivity: { lastSeenAt: null, channel: null },
    counters: { batches: 0, datapoints: 0, duplicateBatches: 0, staleDatapoints: 0, attributeChanges: 0 },
    recentBatchIds: [],
    operations: emptyOperationTable(),
    version: 1,
    createdAt: now,
    updatedAt: now,
  };
}

/** How an input changes a twin of `type` (the type the twin's identity names). */
export function decide(type: TwinType, state: TwinState, input: TwinInput, now: number): Result<Decision> {
  // The end of an operation is news even after decommissioning: the table must empty.
  if (input.kind === 'operationEnded')
    return withTable(state, now, operationEnded(state.operations, input.id, type.maxConcurrentOperations));
  if (state.lifecycle === 'DECOMMISSIONED') {
    return fail('DECOMMISSIONED', `device ${state.identity.deviceId} is decommissioned`);
  }
  switch (input.kind) {
    case 'requestOperation':
      return requestOperation(type, state, input.request, now);
    case 'operationWaiting':
      return withTable(state, now, operationWaiting(state.operations, input.id));
    case 'claimPending':
      return withTable(state, now, claimPending(state.operations, input.limit, now));
    case 'cancelOperation': {
      const cancelled = cancelOperation(state.operations, input.id, input.by);
      return cancelled.ok ? withTable(state, now, cancelled.value) : cancelled;
    }
    case 'telemetry':
      return withReactionDesired(type, applyTelemetry(type, state, input.batch, now), now);
    case 'updateProfile':
      return withReactionDesired(type, applyProfilePatch(type, state, input.patch, now), now);
    case 'behaviourTimer':
      return withReactionDesired(type, behaviourTimer(type, state, input.key, now), now);
    case 'setDesired':
    case 'desiredRetry':
    case 'desiredOperationEnded':
    case 'desiredAdmissionFailed':
      return applyDesired(type, state, input, now);
    case 'acknowledgeAlarm':
    case 'clearAlarm': {
      const behaviour = state.behaviour ?? emptyBehaviour();
      const act = input.kind === 'acknowledgeAlarm' ? acknowledgeAlarm : clearAlarmByHand;
      const done = act(behaviour, input.name, input.by, now);
      if (!done.ok) return done;
      if (done.value.behaviour === behaviour) return ok({ state, effects: [] });
      return ok(withBehaviour(state, done.value.behaviour, done.value.effects, now, []));
    }
    case 'decommission': {
      const cancelled = cancelAll(state.operations, 'decommission');
      return ok({
        state: {
          ...state,
          operations: cancelled.table,
          lifecycle: 'DECOMMISSIONED',
          status: 'DECOMMISSIONED',
          version: state.version + 1,
          updatedAt: now,
        },
        effects: [
          { kind: 'statusChanged', from: state.status, to: 'DECOMMISSIONED' },
          { kind: 'publishSnapshot', urgent: true },
          ...cancelled.effects,
        ],
      });
    }
  }
}

function withTable(
  state: TwinState,
  now: number,
  decision: { table: OperationTable; effects: readonly OperationEffect[] },
): Result<Decision> {
  if (decision.table === state.operations) return ok({ state, effects: [] });
  return ok({
    state: { ...state, operations: decision.table, version: state.version + 1, updatedAt: now },
    effects: [...decision.effects, { kind: 'publishSnapshot', urgent: false }],
  });
}

/** Checks the request against the device and its type's catalogue, then queues it. */
function requestOperation(
  type: TwinType,
  state: TwinState,
  request: OperationRequest,
  now: number,
): Result<Decision> {
  const checked = validateOperationRequest(type, state, request);
  if (!checked.ok) return checked;
  const admitted = admitOperation(state.operations, request, type.maxConcurrentOperations);
  if (!admitted.ok) return admitted;
  return withTable(state, now, admitted.value);
}

function applyTelemetry(
  type: TwinType,
  state: TwinState,
  batch: TelemetryBatch,
  now: number,
): Result<Decision> {
  if (state.recentBatchIds.includes(batch.batchId)) {
    return ok({
      state: {
        ...state,
        counters: { ...state.counters, duplicateBatches: state.counters.duplicateBatches + 1 },
      },
      effects: [],
    });
  }
  const latest = new Map(state.reported.map((v) => [datastreamKey(v.id, v.feed), v]));
  let typeState = state.typeState;
  let stale = 0;
  // Oldest first, so the type sees values in the order they were measured.
  const ordered = [...batch.datapoints].sort((a, b) => a.at - b.at);
  for (const dp of ordered) {
    const key = datastreamKey(dp.datastreamId, dp.feed);
    const current = latest.get(key);
    if (current && current.at > dp.at) {
      stale++;
      continue;
    }
    latest.set(key, { id: dp.datastreamId, feed: dp.feed, value: dp.value, at: dp.at });
    typeState = type.applyDatapoint(typeState, dp);
  }
  const status = type.status(typeState);
  const lastSeenAt = Math.max(state.connectivity.lastSeenAt ?? 0, batch.receivedAt);
  const reported = [...latest.values()].sort(compareLatest);
  const behaviours = type.behaviours;
  let behaviourEffects: readonly BehaviourEffect[] = [];
  let behaviour = state.behaviour;
  if (hasBehaviours(behaviours)) {
    const ctx = contextOf(type, { ...state, typeState, reported }, state.typeState);
    const evaluated = evaluateBehaviours(
      behaviours,
      dataReceived(state.behaviour ?? emptyBehaviour(), now),
      ctx,
      now,
    );
    behaviour = evaluated.behaviour;
    behaviourEffects = evaluated.effects;
  }
  let desired = state.desired;
  if (desired && type.desired) {
    if (state.behaviour?.offline) desired = afterReconnect(desired, now);
    desired = afterReport(desired, reportedValues(type.desired, typeState, reported));
  }
  const next: TwinState = {
    ...state,
    reported,
    typeState,
    status,
    ...(behaviour ? { behaviour } : {}),
    ...(desired ? { desired } : {}),
    connectivity: { lastSeenAt, channel: batch.channel },
    counters: {
      ...state.counters,
      batches: state.counters.batches + 1,
      datapoints: state.counters.datapoints + Math.max(batch.storedCount, batch.datapoints.length),
      staleDatapoints: state.counters.staleDatapoints + stale,
    },
    recentBatchIds: [...state.recentBatchIds, batch.batchId].slice(-RECENT_BATCH_IDS),
    version: state.version + 1,
    updatedAt: now,
  };
  const firstContact = state.connectivity.lastSeenAt === null;
  const alarmsChanged = behaviourEffects.some((e) => e.kind === 'alarmChanged');
  const effects: TwinEffect[] = [
    { kind: 'publishSnapshot', urgent: status !== state.status || firstContact || alarmsChanged },
    ...behaviourEffects,
  ];
  if (status !== state.status) effects.unshift({ kind: 'statusChanged', from: state.status, to: status });
  return ok({ state: next, effects });
}

function applyProfilePatch(
  type: TwinType,
  state: TwinState,
  patch: ProfilePatch,
  now: number,
): Result<Decision> {
  const checked = validateProfilePatch(patch);
  if (!checked.ok) return checked;
  const attributes: Record<string, AttributeValue> = { ...state.profile.attributes };
  for (const [key, value] of Object.entries(patch.attributes ?? {})) {
    if (value === null) delete attributes[key];
    else attributes[key] = value;
  }
  if (Object.keys(attributes).length > MAX_ATTRIBUTES) {
    return fail('INVALID_ARGUMENT', `a device has at most ${MAX_ATTRIBUTES} attributes`);
  }
  const name = patch.name === null ? undefined : (patch.name ?? state.profile.name);
  const profile: DeviceProfile = {
    name,
    tags: patch.tags ? [...new Set(patch.tags)] : state.profile.tags,
    attributes,
  };
  const patched: TwinState = {
    ...state,
    profile,
    counters: { ...state.counters, attributeChanges: state.counters.attributeChanges + 1 },
    version: state.version + 1,
    updatedAt: now,
  };
  // Conditions may read attributes and tags: they are evaluated again (a twin that never had data is left alone).
  if (hasBehaviours(type.behaviours) && state.behaviour) {
    const evaluated = evaluateBehaviours(
      type.behaviours,
      state.behaviour,
      contextOf(type, patched, state.typeState),
      now,
    );
    return ok({
      state: { ...patched, behaviour: evaluated.behaviour },
      effects: [{ kind: 'publishSnapshot', urgent: true }, ...evaluated.effects],
    });
  }
  return ok({ state: patched, effects: [{ kind: 'publishSnapshot', urgent: true }] });
}

type DesiredInput = Extract<
  TwinInput,
  { kind: 'setDesired' | 'desiredRetry' | 'desiredOperationEnded' | 'desiredAdmissionFailed' }
>;

/** Desired state: an operator's change, a retry, the end of an attempt's operation, a refused admission. */
function applyDesired(type: TwinType, state: TwinState, input: DesiredInput, now: number): Result<Decision> {
  const spec = type.desired;
  if (!spec) return fail('INVALID_ARGUMENT', `twin type ${type.name} declares no desired state`);
  const before = state.desired ?? emptyDesired();
  const reported = reportedValues(spec, state.typeState, state.reported);
  let desired: DesiredState;
  let effects: DesiredEffect[] = [];
  switch (input.kind) {
    case 'setDesired': {
      const step = setDesired(spec, before, input.patch, {
        ...(input.ifVersion !== undefined ? { ifVersion: input.ifVersion } : {}),
        by: input.by,
        now,
        newId: input.newId,
        reported,
      });
      if (!step.ok) return step;
      ({ desired, effects } = step.value);
      break;
    }
    case 'desiredRetry':
      ({ desired, effects } = desiredRetry(spec, before, reported, now, input.newId));
      break;
    case 'desiredOperationEnded':
      ({ desired, effects } = desiredOperationEnded(spec, before, input, reported, now));
      break;
    case 'desiredAdmissionFailed':
      desired = desiredAdmissionFailed(before, input.id, input.reason);
      break;
  }
  if (desired === before && effects.length === 0) return ok({ state, effects: [] });
  return ok({
    state: { ...state, desired, version: state.version + 1, updatedAt: now },
    effects: [{ kind: 'publishSnapshot', urgent: true }, ...effects],
  });
}

/**
 * Reactions that set desired values: each makes a new version (by `twin:<reaction>`), due at once, so the twin's
 * retry timer starts its attempt. Values the schema refuses are dropped (the reaction is the type's own code).
 */
function withReactionDesired(type: TwinType, result: Result<Decision>, now: number): Result<Decision> {
  if (!result.ok || !result.value.effects.some((e) => e.kind === 'reactionSetDesired')) return result;
  let { state } = result.value;
  const effects: TwinEffect[] = [];
  for (const e of result.value.effects) {
    if (e.kind !== 'reactionSetDesired') {
      effects.push(e);
      continue;
    }
    if (!type.desired) continue;
    const step = setDesired(type.desired, state.desired ?? emptyDesired(), e.values, {
      by: `twin:${e.reaction}`,
      now,
      reported: reportedValues(type.desired, state.typeState, state.reported),
    });
    if (!step.ok) continue;
    state = { ...state, desired: step.value.desired };
    effects.push(...step.value.effects);
  }
  return ok({ state, effects });
}

/** The desired state as operators see it (null: the type has none, or nobody set it yet). */
export function desiredOf(type: TwinType, state: TwinState): DesiredView | null {
  if (!type.desired) return null;
  return desiredView(
    state.desired ?? emptyDesired(),
    reportedValues(type.desired, state.typeState, state.reported),
  );
}

/** What reactions and alarm conditions see. */
function contextOf(type: TwinType, state: TwinState, previous: unknown): BehaviourContext<unknown> {
  return {
    state: state.typeState,
    previous,
    status: type.status(state.typeState),
    reported: state.reported,
    attributes: state.profile.attributes,
    tags: state.profile.tags,
  };
}

/** A timer fired: the offline check, or a pending condition whose duration may now be over. */
function behaviourTimer(type: TwinType, state: TwinState, key: string, now: number): Result<Decision> {
  const before = state.behaviour;
  if (!before) return ok({ state, effects: [] });
  if (key === OFFLINE_KEY) {
    const behaviour = checkOffline(type.behaviours, before, state.profile.attributes, now);
    if (behaviour === before) return ok({ state, effects: [] });
    const effects: TwinEffect[] = [];
    if (state.status !== OFFLINE_STATUS)
      effects.push({ kind: 'statusChanged', from: state.status, to: OFFLINE_STATUS });
    return ok(withBehaviour({ ...state, status: OFFLINE_STATUS }, behaviour, [], now, effects));
  }
  const evaluated = evaluateBehaviours(type.behaviours, before, contextOf(type, state, state.typeState), now);
  if (evaluated.behaviour === before) return ok({ state, effects: [] });
  return ok(withBehaviour(state, evaluated.behaviour, evaluated.effects, now, []));
}

function withBehaviour(
  state: TwinState,
  behaviour: BehaviourState,
  behaviourEffects: readonly BehaviourEffect[],
  now: number,
  extra: readonly TwinEffect[],
): Decision {
  const urgent = extra.length > 0 || behaviourEffects.some((e) => e.kind === 'alarmChanged');
  return {
    state: { ...state, behaviour, version: state.version + 1, updatedAt: now },
    effects: [...extra, { kind: 'publishSnapshot', urgent }, ...behaviourEffects],
  };
}

function compareLatest(a: LatestValue, b: LatestValue): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : a.feed < b.feed ? -1 : a.feed > b.feed ? 1 : 0;
}

/** The envelopes a poll answers with: the operations its decision handed over, in order. */
export function handedOverEnvelopes(
  effects: readonly TwinEffect[],
  deviceId: string,
  now: number,
): RequestEnvelope[] {
  return effects.flatMap((e) =>
    e.kind === 'handOverOperations'
      ? e.operations.map((op) => requestEnvelope({ ...op, deviceId }, now))
      : [],
  );
}

/** none: read model is current; routine: counters and times changed; urgent: what lists filter by changed. */
export type SnapshotPending = 'none' | 'routine' | 'urgent';

/** What is pending after a change asks for a snapshot: urgent wins, routine never lowers it. */
export const snapshotPendingAfter = (current: SnapshotPending, urgent: boolean): SnapshotPending =>
  urgent ? 'urgent' : current === 'none' ? 'routine' : current;

/** What the twin publishes to the read model (the device document's `twin` field). */
export interface TwinSnapshot {
  readonly version: number;
  readonly twinType: string;
  readonly lifecycle: Lifecycle;
  readonly status: string;
  readonly profile: DeviceProfile;
  readonly typeState: unknown;
  readonly connectivity: Connectivity;
  readonly counters: TwinCounters;
  /** Open operations, and how many wait for their turn or for the device to poll. */
  readonly operations: { readonly open: number; readonly waiting: number };
  /** Active alarms, unacknowledged ones, and the highest active severity. */
  readonly alarms: AlarmSummary;
  /** The desired state and its sync, for types that declare one. */
  readonly desired?: DesiredView | null;
  readonly updatedAt: number;
}

export function toSnapshot(state: TwinState, type?: TwinType): TwinSnapshot {
  return {
    version: state.version,
    twinType: state.identity.twinType,
    lifecycle: state.lifecycle,
    status: state.status,
    profile: state.profile,
    typeState: state.typeState,
    connectivity: state.connectivity,
    counters: state.counters,
    operations: operationCounts(state.operations),
    alarms: alarmSummary(state.behaviour),
    ...(type?.desired && state.desired ? { desired: desiredOf(type, state) } : {}),
    updatedAt: state.updatedAt,
  };
}

/** One line for the Temporal Web UI, so an operator sees the device's state without opening the query. */
export function describeTwin(state: TwinState): string {
  const seen =
    state.connectivity.lastSeenAt === null
      ? 'never seen'
      : `last seen ${new Date(state.connectivity.lastSeenAt).toISOString()} via ${state.connectivity.channel}`;
  const ops = operationCounts(state.operations);
  return `${state.identity.deviceId} (${state.identity.twinType}) · ${state.status} · ${seen} · ${state.counters.datapoints} datapoints · ${state.reported.length} datastreams · ${ops.open} open operations (${ops.waiting} waiting)`;
}
