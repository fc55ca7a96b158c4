// Runs a twin's behaviours in the workflow: one durable timer per pending deadline, alarm and event writes in
// batches (a local activity), search attributes for alarms, and the operations reactions request.
import {
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  proxyLocalActivities,
  sleep,
  upsertSearchAttributes,
  uuid4,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { type AlarmRecord, alarmSummary, behaviourDeadlines } from '../twins/behaviours';
import type { TwinType } from '../twins/define-twin';
import { DESIRED_BY, DESIRED_KEY } from '../twins/desired';
import { OPERATION_DEFAULTS, type OperationRequest, chooseDelivery } from '../twins/operations';
import type { TwinEffect, TwinInput, TwinState } from '../twins/twin-core';
import type { Result } from '../twins/types';
import { TWINFLOW_ALARM } from './search-attributes';

/**
 * Twins run reactions, alarms and connectivity timers. Histories recorded before never reach this: the marker
 * is written only when a twin first has a behaviour effect or deadline to act on.
 */
export const TWIN_BEHAVIOURS = 'twin-behaviours';

const { writeAlarms, deviceDelivery, kickLiveDelivery } = proxyLocalActivities<
  ReturnType<typeof createActivities>
>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '10 seconds' },
});

interface RunningTimer {
  readonly at: number;
  readonly scope: CancellationScope;
}

/** The twin as behaviours see it. */
export interface BehaviourHost {
  readonly state: TwinState;
  readonly type: TwinType;
  tryApply(input: TwinInput): Result<readonly TwinEffect[]>;
  /** Resolves once an admitted operation's first record and the poll marker are stored. */
  admissionStored(id: string): Promise<void>;
}

/** An operation the twin asks for itself: a reaction's, or an attempt of the desired state's reconciliation. */
interface OwnOperation {
  readonly id: string;
  readonly by: string;
  readonly name: string;
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly timeoutMs?: number;
  readonly ttlMs?: number;
  readonly retries?: number;
  readonly refused?: (reason: string) => void;
}

export class TwinBehaviours {
  private readonly timers = new Map<string, RunningTimer>();
  private readonly dirty = new Map<string, AlarmRecord>();
  private events: { id: string; name: string; data: unknown; at: number }[] = [];
  private seq = 0;
  private writtenSeq = 0;
  private writer = false;
  private alarmAttribute: string;
  /** Operations the twin asked for itself, being looked up and admitted. */
  readonly inFlight = new Set<Promise<void>>();
  /** Per own operation id: its admission. */
  private readonly admitting = new Map<string, Promise<void>>();

  constructor(private readonly host: BehaviourHost) {
    this.alarmAttribute = alarmSummary(host.state.behaviour).highestSeverity;
  }

  private get enabled(): boolean {
    return patched(TWIN_BEHAVIOURS);
  }

  /** Runs one behaviour effect; answers false for an effect that is not a behaviour's. */
  run(effect: TwinEffect): boolean {
    switch (effect.kind) {
      case 'alarmChanged':
        if (!this.enabled) return true;
        this.dirty.set(effect.alarm.name, effect.alarm);
        this.changed();
        return true;
      case 'twinEvent':
        if (!this.enabled) return true;
        this.events.push({ id: uuid4(), name: effect.name, data: effect.data, at: effect.at });
        this.changed();
        return true;
      case 'reactionOperation':
        if (!this.enabled) return true;
        this.own({
          id: uuid4(),
          by: `twin:${effect.reaction}`,
          name: effect.name,
          parameters: effect.parameters,
          ...(effect.timeoutMs !== undefined ? { timeoutMs: effect.timeoutMs } : {}),
          ...(effect.ttlMs !== undefined ? { ttlMs: effect.ttlMs } : {}),
          ...(effect.retries !== undefined ? { retries: effect.retries } : {}),
        });
        return true;
      case 'desiredOperation':
        // Desired state is new: no recorded history has it, so it needs no patch of its own.
        this.own({
          id: effect.id,
          by: DESIRED_BY,
          name: effect.operation.name,
          parameters: effect.operation.parameters,
          timeoutMs: effect.timeoutMs,
          refused: (reason) =>
            void this.host.tryApply({ kind: 'desiredAdmissionFailed', id: effect.id, reason }),
        });
        return true;
      case 'reactionSetDesired':
        // The core turns it into a desired-state version before the shell sees it.
        return true;
      case 'desiredCancel':
        // Superseded: an operation that has ended meanwhile is simply not open any more.
        void this.host.tryApply({ kind: 'cancelOperation', id: effect.id, by: DESIRED_BY });
        return true;
      default:
        return false;
    }
  }

  /** After every change: the timers match the pending deadlines; the alarm search attribute matches the alarms. */
  afterChange(): void {
    const state = this.host.state;
    if (!state.behaviour && !state.desired) return;
    const deadlines = state.behaviour
      ? behaviourDeadlines(this.host.type.behaviours, state.behaviour, state.profile.attributes)
      : new Map<string, number>();
    if (state.desired?.retryAt != null) deadlines.set(DESIRED_KEY, state.desired.retryAt);
    const highest = alarmSummary(state.behaviour).highestSeverity;
    const timersMatch =
      [...this.timers.keys()].every((k) => deadlines.has(k)) &&
      [...deadlines].every(([k, at]) => {
        const t = this.timers.get(k);
        return t !== undefined && (t.at === at || (k === 'offline' && t.at <= at));
      });
    if (timersMatch && highest === this.alarmAttribute) return;
    if (!this.enabled) return;
    if (highest !== this.alarmAttribute) {
      this.alarmAttribute = highest;
      upsertSearchAttributes([{ key: TWINFLOW_ALARM, value: highest }]);
    }
    for (const [key, t] of this.timers) {
      const at = deadlines.get(key);
      // The offline check may fire early: it looks again and sleeps for the rest. Others are exact.
      if (at === undefined || (key === 'offline' ? t.at > at : t.at !== at)) {
        t.scope.cancel();
        this.timers.delete(key);
      }
    }
    for (const [key, at] of deadlines) if (!this.timers.has(key)) this.arm(key, at);
  }

  private arm(key: string, at: number): void {
    const scope = new CancellationScope();
    this.timers.set(key, { at, scope });
    scope
      .run(() => sleep(Math.max(1, at - Date.now())))
      .then(
        () => {
          if (this.timers.get(key)?.scope !== scope) return;
          this.timers.delete(key);
          void this.host.tryApply(
            key === DESIRED_KEY ? { kind: 'desiredRetry', newId: uuid4() } : { kind: 'behaviourTimer', key },
          );
        },
        (err: unknown) => {
          if (!isCancellation(err)) throw err;
        },
      );
  }

  private own(op: OwnOperation): void {
    const p = this.requestOperation(op);
    this.inFlight.add(p);
    this.admitting.set(op.id, p);
    void p.finally(() => {
      this.inFlight.delete(p);
      this.admitting.delete(op.id);
    });
  }

  /** Resolves once the operations these effects asked for are admitted (or refused). */
  async settled(effects: readonly TwinEffect[]): Promise<void> {
    const admissions: Promise<void>[] = [];
    for (const e of effects) {
      const p = e.kind === 'desiredOperation' ? this.admitting.get(e.id) : undefined;
      if (p) admissions.push(p);
    }
    await Promise.all(admissions);
  }

  private changed(): void {
    this.seq++;
    if (this.writer) return;
    this.writer = true;
    void this.keepWritten();
  }

  /** One write at a time: every alarm changed since the last write, and the events emitted meanwhile. */
  private async keepWritten(): Promise<void> {
    const { org, deviceId, twinType } = this.host.state.identity;
    for (;;) {
      await condition(() => this.seq > this.writtenSeq);
      const seq = this.seq;
      const alarms = [...this.dirty.values()];
      const events = this.events;
      this.dirty.clear();
      this.events = [];
      await writeAlarms({ org, deviceId, twinType, tags: [...this.host.state.profile.tags], alarms, events });
      this.writtenSeq = seq;
    }
  }

  /** Resolves once every alarm change made so far is stored. */
  async stored(): Promise<void> {
    const seq = this.seq;
    if (this.writtenSeq < seq) await condition(() => this.writtenSeq >= seq);
  }

  /** Nothing is being written or requested: safe to continue as new (timers are armed again from the state). */
  idle(): boolean {
    return this.writtenSeq === this.seq && this.inFlight.size === 0;
  }

  /** An operation the twin asks for itself: built from the device's transport, then admitted like any request. */
  private async requestOperation(op: OwnOperation): Promise<void> {
    const { org, deviceId, twinType } = this.host.state.identity;
    const transport = await deviceDelivery(org, deviceId);
    if (!transport) {
      log.warn('own operation dropped: the device record is gone', { by: op.by });
      op.refused?.('the device record is gone');
      return;
    }
    const chosen = chooseDelivery('auto', transport);
    if (!chosen.ok) {
      op.refused?.(chosen.message);
      return;
    }
    const push = chosen.value === 'push';
    const request: OperationRequest = {
      id: op.id,
      org,
      deviceId,
      twinType,
      name: op.name,
      parameters: op.parameters,
      delivery: chosen.value,
      ...(push && transport.http ? { operationUrl: transport.http.operationUrl } : {}),
      ...(push && transport.platformKey ? { platformKey: transport.platformKey } : {}),
      timeoutMs: op.timeoutMs ?? OPERATION_DEFAULTS.timeoutMs,
      ttlMs: op.ttlMs ?? OPERATION_DEFAULTS.ttlMs,
      retries: op.retries ?? OPERATION_DEFAULTS.retries,
      retriesDelayMs: OPERATION_DEFAULTS.retriesDelayMs,
      retryResultList: OPERATION_DEFAULTS.retryResultList,
      requestedBy: op.by,
      createdAt: Date.now(),
    };
    const admitted = this.host.tryApply({ kind: 'requestOperation', request });
    if (!admitted.ok) {
      log.warn('own operation refused', { by: op.by, code: admitted.code, message: admitted.message });
      op.refused?.(admitted.message);
      return;
    }
    // A device listening on MQTT gets a waiting operation at once, once its record and the marker are stored.
    if (!push && transport.mqtt) {
      await this.host.admissionStored(op.id);
      await kickLiveDelivery(org, deviceId);
    }
  }
}
