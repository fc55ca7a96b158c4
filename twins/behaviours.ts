// Twin behaviours, the pure part: reactions (conditions, optionally held for a duration, that fire effects),
// declared alarms and their lifecycle, and connectivity (OFFLINE after silence). No Temporal, no I/O: the twin
// shell arms one durable timer per pending deadline (see behaviourDeadlines) and runs the effects.
import type { AttributeValue, LatestValue, Result } from './types';
import { fail, ok } from './types';

export const ALARM_SEVERITIES = ['CRITICAL', 'MAJOR', 'MINOR', 'WARNING', 'INDETERMINATE'] as const;
export type AlarmSeverity = (typeof ALARM_SEVERITIES)[number];
const SEVERITY_RANK: Readonly<Record<AlarmSeverity, number>> = {
  CRITICAL: 5,
  MAJOR: 4,
  MINOR: 3,
  WARNING: 2,
  INDETERMINATE: 1,
};

/** What a reaction or an alarm condition sees: the type's state now and before the change, and the device. */
export interface BehaviourContext<S> {
  readonly state: S;
  /** The type's state before the change being evaluated (equal to `state` when a timer fires). */
  readonly previous: S;
  /** The type's status (never OFFLINE: connectivity is separate). */
  readonly status: string;
  readonly reported: readonly LatestValue[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly tags: readonly string[];
}

/** What a reaction may ask for. */
export type ReactionEffect =
  /** Request an operation on this device, through the twin's own operation admission. */
  | {
      readonly kind: 'operation';
      readonly name: string;
      readonly parameters?: Readonly<Record<string, unknown>>;
      readonly timeoutMs?: number;
      readonly ttlMs?: number;
      readonly retries?: number;
    }
  | {
      readonly kind: 'raiseAlarm';
      readonly alarm: string;
      readonly severity: AlarmSeverity;
      readonly message?: string;
    }
  | { readonly kind: 'clearAlarm'; readonly alarm: string }
  /** A custom event, stored with the device's events. */
  | { readonly kind: 'event'; readonly name: string; readonly data?: unknown }
  /** Change the device's desired state (merged; null removes a key): a new version the twin reconciles. */
  | { readonly kind: 'setDesired'; readonly values: Readonly<Record<string, unknown>> };

/** A duration: fixed, or read from the device (for example an attribute that overrides a default). */
export type Duration<S> = number | ((ctx: BehaviourContext<S>) => number);

export interface ReactionSpec<S> {
  readonly name: string;
  /** The condition. Pure. */
  readonly when: (ctx: BehaviourContext<S>) => boolean;
  /** How long the condition must hold before the reaction fires (ms, durable timer). Default 0: at once. */
  readonly for?: Duration<S>;
  /** The effects of one firing. A reaction fires again only after its condition was false in between. */
  readonly then: (ctx: BehaviourContext<S>) => readonly ReactionEffect[];
  /** Effects when the condition stops holding after having fired. */
  readonly otherwise?: (ctx: BehaviourContext<S>) => readonly ReactionEffect[];
}

export interface AlarmSpec<S> {
  readonly name: string;
  readonly severity: AlarmSeverity;
  readonly description?: string;
  readonly raise: (ctx: BehaviourContext<S>) => boolean;
  /** Default: the raise condition no longer holds. */
  readonly clear?: (ctx: BehaviourContext<S>) => boolean;
  /** How long the raise condition must hold (ms). Default 0. */
  readonly for?: Duration<S>;
  /** Whether an operator may clear it by hand. Default true. */
  readonly clearableByHand?: boolean;
  readonly message?: (ctx: BehaviourContext<S>) => string;
}

export type AlarmStatus = 'ACTIVE' | 'CLEARED';

export interface AlarmRecord {
  readonly name: string;
  readonly severity: AlarmSeverity;
  readonly status: AlarmStatus;
  readonly message: string | null;
  readonly acknowledged: boolean;
  readonly acknowledgedBy: string | null;
  readonly acknowledgedAt: number | null;
  readonly firstRaisedAt: number;
  readonly lastRaisedAt: number;
  /** Raises after the first while the alarm existed. */
  readonly reRaises: number;
  readonly clearedAt: number | null;
  /** `twin` when its condition cleared it, else who cleared it by hand. */
  readonly clearedBy: string | null;
  readonly clearableByHand: boolean;
  /** Grows with every change; the read model keeps the highest. */
  readonly rev: number;
}

/** A condition that holds: since when, when it fires (`due`), and whether it has fired. */
export interface ConditionState {
  readonly since: number;
  readonly due: number;
  readonly fired: boolean;
}

export interface BehaviourState {
  /** Keyed `reaction:<name>` or `alarm:<name>`; present only while the condition holds. */
  readonly conditions: Readonly<Record<string, ConditionState>>;
  readonly alarms: Readonly<Record<string, AlarmRecord>>;
  /** Workflow time of the last data; null before the first. */
  readonly lastDataAt: number | null;
  readonly offline: boolean;
}

export const emptyBehaviour = (): BehaviourState => ({
  conditions: {},
  alarms: {},
  lastDataAt: null,
  offline: false,
});

/** Effects of behaviours, for the shell to run. */
export type BehaviourEffect =
  | { readonly kind: 'alarmChanged'; readonly alarm: AlarmRecord }
  | {
      readonly kind: 'reactionOperation';
      readonly reaction: string;
      readonly name: string;
      readonly parameters: Readonly<Record<string, unknown>>;
      readonly timeoutMs?: number;
      readonly ttlMs?: number;
      readonly retries?: number;
    }
  | { readonly kind: 'twinEvent'; readonly name: string; readonly data: unknown; readonly at: number }
  /** The core turns this into a new desired-state version (see twin-core). */
  | {
      readonly kind: 'reactionSetDesired';
      readonly reaction: string;
      readonly values: Readonly<Record<string, unknown>>;
    };

/** What behaviours need from a twin type (defineTwin fills it). */
export interface Behaviours {
  readonly reactions: readonly ReactionSpec<unknown>[];
  readonly alarms: readonly AlarmSpec<unknown>[];
  /** 0: never OFFLINE. A device attribute `offlineAfterMs` (a positive number) overrides it. */
  readonly offlineAfterMs: number;
}

export const OFFLINE_STATUS = 'OFFLINE';
export const OFFLINE_KEY = 'offline';
/** Reactions and alarms per type, and alarms per device (reaction-raised ones included). */
export const MAX_REACTIONS = 64;
export const MAX_ALARMS_PER_DEVICE = 64;

export const hasBehaviours = (b: Behaviours): boolean =>
  b.reactions.length > 0 || b.alarms.length > 0 || b.offlineAfterMs > 0;

/** The offline delay of a device: its attribute `offlineAfterMs` when a positive number, else the type's. */
export function offlineAfterMs(b: Behaviours, attributes: Readonly<Record<string, AttributeValue>>): number {
  const own = attributes.offlineAfterMs;
  return typeof own === 'number' && Number.isFinite(own) && own > 0 ? own : b.offlineAfterMs;
}

const durationOf = <S>(d: Duration<S> | undefined, ctx: BehaviourContext<S>): number => {
  const ms = typeof d === 'function' ? d(ctx) : (d ?? 0);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
};

interface Outcome {
  behaviour: BehaviourState;
  effects: BehaviourEffect[];
}

/**
 * Evaluates every reaction and declared alarm at `now` after a change (or a timer). Conditions that start to
 * hold either fire at once or become pending until `due`; a pending one that stops holding is dropped (its
 * timer cancelled); one whose `due` has come fires once.
 */
export function evaluateBehaviours<S>(
  b: Behaviours,
  behaviour: BehaviourState,
  ctx: BehaviourContext<S>,
  now: number,
): Outcome {
  const out: Outcome = { behaviour, effects: [] };
  const conditions: Record<string, ConditionState> = { ...behaviour.conditions };
  let changed = false;
  const step = (
    key: string,
    holds: boolean,
    duration: Duration<S> | undefined,
    fire: () => void,
    stop: () => void,
  ): void => {
    const current = conditions[key];
    if (!holds) {
      if (current) {
        delete conditions[key];
        changed = true;
        if (current.fired) stop();
      }
      return;
    }
    const entry = current ?? { since: now, due: now + durationOf(duration, ctx), fired: false };
    if (!current) changed = true;
    if (!entry.fired && now >= entry.due) {
      conditions[key] = { ...entry, fired: true };
      changed = true;
      fire();
    } else {
      conditions[key] = entry;
    }
  };
  for (const r of b.reactions as readonly ReactionSpec<S>[]) {
    step(
      `reaction:${r.name}`,
      r.when(ctx),
      r.for,
      () => applyReactionEffects(out, r.name, r.then(ctx), now),
      () => r.otherwise && applyReactionEffects(out, r.name, r.otherwise(ctx), now),
    );
  }
  for (const a of b.alarms as readonly AlarmSpec<S>[]) {
    const raising = a.raise(ctx);
    step(
      `alarm:${a.name}`,
      raising,
      a.for,
      () =>
        raiseAlarm(out, a.name, a.severity, a.message?.(ctx) ?? a.description ?? null, now, {
          clearableByHand: a.clearableByHand ?? true,
        }),
      () => undefined,
    );
    const active = out.behaviour.alarms[a.name];
    const clears = a.clear ? a.clear(ctx) : !raising;
    if (active?.status === 'ACTIVE' && clears && !conditions[`alarm:${a.name}`]?.fired) {
      clearAlarm(out, a.name, 'twin', now);
    }
  }
  if (changed) out.behaviour = { ...out.behaviour, conditions };
  return out;
}

function applyReactionEffects(
  out: Outcome,
  reaction: string,
  effects: readonly ReactionEffect[],
  now: number,
): void {
  for (const e of effects) {
    switch (e.kind) {
      case 'operation':
        out.effects.push({
          kind: 'reactionOperation',
          reaction,
          name: e.name,
          parameters: e.parameters ?? {},
          ...(e.timeoutMs !== undefined ? { timeoutMs: e.timeoutMs } : {}),
          ...(e.ttlMs !== undefined ? { ttlMs: e.ttlMs } : {}),
          ...(e.retries !== undefined ? { retries: e.retries } : {}),
        });
        break;
      case 'raiseAlarm':
        raiseAlarm(out, e.alarm, e.severity, e.message ?? null, now, { clearableByHand: true });
        break;
      case 'clearAlarm':
        clearAlarm(out, e.alarm, 'twin', now);
        break;
      case 'event':
        out.effects.push({ kind: 'twinEvent', name: e.name, data: e.data ?? null, at: now });
        break;
      case 'setDesired':
        out.effects.push({ kind: 'reactionSetDesired', reaction, values: e.values });
        break;
    }
  }
}

function setAlarm(out: Outcome, alarm: AlarmRecord): void {
  out.behaviour = { ...out.behaviour, alarms: { ...out.behaviour.alarms, [alarm.name]: alarm } };
  const i = out.effects.findIndex((e) => e.kind === 'alarmChanged' && e.alarm.name === alarm.name);
  if (i >= 0) out.effects.splice(i, 1);
  out.effects.push({ kind: 'alarmChanged', alarm });
}

/** Raises an alarm: a new one, a cleared one again (a re-raise, unacknowledged), or an active one (no change). */
function raiseAlarm(
  out: Outcome,
  name: string,
  severity: AlarmSeverity,
  message: string | null,
  now: number,
  o: { clearableByHand: boolean },
): void {
  const current = out.behaviour.alarms[name];
  if (current?.status === 'ACTIVE') {
    if (current.severity === severity) return;
    setAlarm(out, { ...current, severity, message, lastRaisedAt: now, rev: current.rev + 1 });
    return;
  }
  if (!current && Object.keys(out.behaviour.alarms).length >= MAX_ALARMS_PER_DEVICE) return;
  setAlarm(out, {
    name,
    severity,
    status: 'ACTIVE',
    message,
    acknowledged: false,
    acknowledgedBy: null,
    acknowledgedAt: null,
    firstRaisedAt: current?.firstRaisedAt ?? now,
    lastRaisedAt: now,
    reRaises: current ? current.reRaises + 1 : 0,
    clearedAt: null,
    clearedBy: null,
    clearableByHand: o.clearableByHand,
    rev: (current?.rev ?? 0) + 1,
  });
}

function clearAlarm(out: Outcome, name: string, by: string, now: number): void {
  const current = out.behaviour.alarms[name];
  if (current?.status !== 'ACTIVE') return;
  setAlarm(out, { ...current, status: 'CLEARED', clearedAt: now, clearedBy: by, rev: current.rev + 1 });
}

/** An operator acknowledges an alarm: idempotent; a cleared alarm can still be acknowledged. */
export function acknowledgeAlarm(
  behaviour: BehaviourState,
  name: string,
  by: string,
  now: number,
): Result<Outcome> {
  const current = behaviour.alarms[name];
  if (!current) return fail('NOT_FOUND', `alarm ${name} not found`);
  const out: Outcome = { behaviour, effects: [] };
  if (current.acknowledged) return ok(out);
  setAlarm(out, {
    ...current,
    acknowledged: true,
    acknowledgedBy: by,
    acknowledgedAt: now,
    rev: current.rev + 1,
  });
  return ok(out);
}

/**
 * An operator clears an alarm where its type allows. Its condition must stop holding and hold again before it is
 * raised again.
 */
export function clearAlarmByHand(
  behaviour: BehaviourState,
  name: string,
  by: string,
  now: number,
): Result<Outcome> {
  const current = behaviour.alarms[name];
  if (!current) return fail('NOT_FOUND', `alarm ${name} not found`);
  if (!current.clearableByHand) return fail('INVALID_ARGUMENT', `alarm ${name} cannot be cleared by hand`);
  if (current.status !== 'ACTIVE') return fail('CONFLICT', `alarm ${name} is already cleared`);
  const out: Outcome = { behaviour, effects: [] };
  clearAlarm(out, name, by, now);
  return ok(out);
}

/** The earliest instant each pending condition (and the offline check) needs the twin again, by key. */
export function behaviourDeadlines(
  b: Behaviours,
  behaviour: BehaviourState,
  attributes: Readonly<Record<string, AttributeValue>>,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, c] of Object.entries(behaviour.conditions)) if (!c.fired) out.set(key, c.due);
  const after = offlineAfterMs(b, attributes);
  if (after > 0 && !behaviour.offline && behaviour.lastDataAt !== null)
    out.set(OFFLINE_KEY, behaviour.lastDataAt + after);
  return out;
}

/** Data came: the device is online again (answers whether it was offline). */
export function dataReceived(behaviour: BehaviourState, now: number): BehaviourState {
  return { ...behaviour, lastDataAt: now, offline: false };
}

/** The offline check at `now`: OFFLINE when nothing came for the device's offline delay. */
export function checkOffline(
  b: Behaviours,
  behaviour: BehaviourState,
  attributes: Readonly<Record<string, AttributeValue>>,
  now: number,
): BehaviourState {
  const after = offlineAfterMs(b, attributes);
  if (after <= 0 || behaviour.offline || behaviour.lastDataAt === null) return behaviour;
  return now >= behaviour.lastDataAt + after ? { ...behaviour, offline: true } : behaviour;
}

export interface AlarmSummary {
  readonly active: number;
  readonly unacknowledged: number;
  /** The highest severity among active alarms, or NONE. */
  readonly highestSeverity: AlarmSeverity | 'NONE';
}

export function alarmSummary(behaviour: BehaviourState | undefined): AlarmSummary {
  let active = 0;
  let unacknowledged = 0;
  let highest: AlarmSeverity | 'NONE' = 'NONE';
  for (const a of Object.values(behaviour?.alarms ?? {})) {
    if (a.status !== 'ACTIVE') continue;
    active++;
    if (!a.acknowledged) unacknowledged++;
    if (highest === 'NONE' || SEVERITY_RANK[a.severity] > SEVERITY_RANK[highest]) highest = a.severity;
  }
  return { active, unacknowledged, highestSeverity: highest };
}

/** Checks a type's behaviours at load time; throws on a wrong declaration. */
export function checkBehaviours(typeName: string, b: Behaviours): void {
  const problem = (msg: string): never => {
    throw new Error(`twin type ${typeName}: ${msg}`);
  };
  if (!Number.isFinite(b.offlineAfterMs) || b.offlineAfterMs < 0)
    problem('offlineAfterMs must be a non-negative number');
  if (b.reactions.length + b.alarms.length > MAX_REACTIONS)
    problem(`at most ${MAX_REACTIONS} reactions and alarms`);
  const names = new Set<string>();
  for (const [kind, list] of [
    ['reaction', b.reactions],
    ['alarm', b.alarms],
  ] as const) {
    for (const r of list) {
      if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(r.name))
        problem(`${kind} name ${JSON.stringify(r.name)} must be a letter then letters, digits, _ . -`);
      if (names.has(`${kind}:${r.name}`)) problem(`${kind} ${r.name} is declared twice`);
      names.add(`${kind}:${r.name}`);
      if (typeof r.for === 'number' && (!Number.isFinite(r.for) || r.for < 0))
        problem(`${kind} ${r.name}: for must be a non-negative number of ms`);
    }
  }
  for (const a of b.alarms) {
    if (!ALARM_SEVERITIES.includes(a.severity))
      problem(`alarm ${a.name}: severity must be one of ${ALARM_SEVERITIES.join(', ')}`);
  }
}
