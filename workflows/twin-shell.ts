// The twin's state holder: one method per message, each a call into the pure core whose effects TwinEffects runs.
import {
  allHandlersFinished,
  condition,
  log,
  patched,
  proxyLocalActivities,
  setCurrentDetails,
  uuid4,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { TwinType } from '../twins/define-twin';
import type { DeviceResponse, OperationRequest, RequestEnvelope } from '../twins/operations';
import { operationCounts, waitingForPoll } from '../twins/twin-operations';
import {
  type ProfilePatch,
  type SnapshotPending,
  type TelemetryBatch,
  type TwinEffect,
  type TwinInput,
  type TwinSnapshot,
  type TwinState,
  decide,
  describeTwin,
  desiredOf,
  handedOverEnvelopes,
  snapshotPendingAfter,
  toSnapshot,
} from '../twins/twin-core';
import { type DeviceProfile, type Result, ok } from '../twins/types';
import { ensureOk } from './failures';
import type { AlarmRecord } from '../twins/behaviours';
import type { DesiredView } from '../twins/desired';
import { TwinBehaviours } from './twin-behaviours';
import { CLAIM_WAITS_FOR_MARKER, TWIN_ADMITS_OPERATIONS, TwinEffects } from './twin-effects';
import type { DesiredPatch, OperationAdmission } from './twin.messages';

const { writePendingMarker } = proxyLocalActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '10 seconds' },
});

/** The count of operations waiting for a poll, as the twin wants it stored and as it last stored it. */
interface PendingMarker {
  waiting: number;
  seq: number;
  writtenSeq: number;
  writer: boolean;
}

/** Built once per run inside the workflow function. */
export class TwinShell {
  private readonly effects: TwinEffects;
  private readonly behaviours: TwinBehaviours;
  private readonly marker: PendingMarker;
  /** While true, routine snapshot requests are noted in heldWanted instead of made. */
  private holding = false;
  private heldWanted = false;
  private held = { end: false };
  /** Operations the twin's own push ended, until their request's update has answered. */
  private readonly endedHere = new Set<string>();

  constructor(
    readonly type: TwinType,
    public state: TwinState,
    public snapshotPending: SnapshotPending,
    options: { readonly firstPushBudgetMs: number },
  ) {
    this.effects = new TwinEffects(state.identity, options.firstPushBudgetMs, {
      operationStartFailed: (id) => void this.apply({ kind: 'operationEnded', id }),
      operationEndedHere: (id, record) => {
        this.held.end = this.holdRoutineSnapshot(() => this.apply({ kind: 'operationEnded', id }));
        this.endedHere.add(id);
        this.desiredOperationEnded({ ...record, id });
      },
      snapshotWanted: (urgent) => {
        if (this.holding && !urgent) this.heldWanted = true;
        else this.snapshotPending = snapshotPendingAfter(this.snapshotPending, urgent);
      },
    });
    this.marker = { waiting: waitingForPoll(state.operations), seq: 0, writtenSeq: 0, writer: false };
    setCurrentDetails(describeTwin(state));
    this.behaviours = new TwinBehaviours(this);
    // A new run arms the timers its state needs (a run carried over holds its pending conditions).
    this.behaviours.afterChange();
  }

  /** Runs the core; a refused input changes nothing and is answered as a failure. */
  tryApply(input: TwinInput): Result<readonly TwinEffect[]> {
    const decision = decide(this.type, this.state, input, Date.now());
    if (!decision.ok) return decision;
    this.state = decision.value.state;
    for (const effect of decision.value.effects) {
      if (!this.behaviours.run(effect)) this.effects.run(effect);
      setCurrentDetails(describeTwin(this.state));
    }
    this.behaviours.afterChange();
    const waiting = waitingForPoll(this.state.operations);
    if (waiting !== this.marker.waiting) this.markerChanged(waiting);
    return ok(decision.value.effects);
  }

  /** For updates: a refused input fails the update with the core's code. */
  apply(input: TwinInput): readonly TwinEffect[] {
    return ensureOk(this.tryApply(input));
  }

  reportTelemetry(batch: TelemetryBatch): void {
    // A signal cannot answer with an error; a bad batch is logged and dropped (its data are stored anyway).
    const applied = this.tryApply({ kind: 'telemetry', batch });
    if (!applied.ok) {
      log.warn('telemetry batch rejected', {
        code: applied.code,
        message: applied.message,
        batchId: batch.batchId,
      });
    }
  }

  /** Answers once the first record (and, for a pending one, the poll marker) is stored: at once for old runs. */
  async requestOperation(request: OperationRequest): Promise<OperationAdmission> {
    const before = this.state.operations;
    const countsBefore = JSON.stringify(operationCounts(before));
    const wanted = this.holdRoutineSnapshot(() => this.apply({ kind: 'requestOperation', request }));
    const duplicate = this.state.operations === before;
    // A repeated request queued nothing: the API answers it from the store.
    const admitted = duplicate ? undefined : this.effects.admissions.get(request.id);
    if (!admitted) {
      this.releaseRoutineSnapshot(wanted);
      return { id: request.id, duplicate };
    }
    const [record] = await Promise.all([admitted, this.markerStored()]);
    // An operation the twin pushed and ended here, leaving the counts as they were, needs no snapshot.
    const endedHere = this.endedHere.delete(request.id);
    const unchanged = endedHere && JSON.stringify(operationCounts(this.state.operations)) === countsBefore;
    if (!unchanged) this.releaseRoutineSnapshot(wanted || (endedHere && this.held.end));
    return { id: request.id, duplicate, ...(record ? { record } : {}) };
  }

  /** Runs fn; answers whether it asked for a routine snapshot, which is not made yet. */
  private holdRoutineSnapshot(fn: () => void): boolean {
    this.holding = true;
    this.heldWanted = false;
    try {
      fn();
    } finally {
      this.holding = false;
    }
    return this.heldWanted;
  }

  private releaseRoutineSnapshot(wanted: boolean): void {
    if (wanted) this.snapshotPending = snapshotPendingAfter(this.snapshotPending, false);
  }

  async claimPending({ limit }: { limit: number }): Promise<RequestEnvelope[]> {
    this.effects.handedOver = [];
    const effects = this.apply({ kind: 'claimPending', limit });
    const deviceId = this.state.identity.deviceId;
    if (patched(TWIN_ADMITS_OPERATIONS)) {
      // An operation holds a response that overtakes its hand-over, so the poll need not wait for the signals.
      // A twin that has not stored its marker in this run stores it, so the device's next empty poll skips it.
      if (this.marker.seq === 0) this.markerChanged(this.marker.waiting);
      const envelopes = handedOverEnvelopes(effects, deviceId, Date.now());
      if (patched(CLAIM_WAITS_FOR_MARKER)) await this.markerStored();
      return envelopes;
    }
    // Runs recorded before: each operation knew it was handed over before the device could answer it.
    await Promise.all(this.effects.handedOver);
    return handedOverEnvelopes(effects, deviceId, Date.now());
  }

  /** A response for an operation that has no workflow yet (the twin is pushing it, or starting its workflow). */
  async forwardResponse(input: { id: string; response: DeviceResponse; receivedAt: number }): Promise<void> {
    await this.effects.forwardResponse(input.id, { response: input.response, receivedAt: input.receivedAt });
  }

  /** Answers once the operation workflow has been told (and any start of it has finished). */
  async cancelOperation({ id, by }: { id: string; by: string }): Promise<void> {
    this.apply({ kind: 'cancelOperation', id, by });
    await this.effects.starting.get(id);
    await Promise.all([...this.effects.inFlight]);
  }

  /** News from operation workflows; after decommissioning a waiting notice is refused and changes nothing. */
  operationEnded(ended: {
    id: string;
    status: string;
    resultCode?: string | null;
    resultDescription?: string | null;
  }): void {
    void this.tryApply({ kind: 'operationEnded', id: ended.id });
    this.desiredOperationEnded(ended);
  }

  /** The end of an operation the desired state's reconciliation is waiting for. */
  private desiredOperationEnded(ended: {
    id: string;
    status: string;
    resultCode?: string | null;
    resultDescription?: string | null;
  }): void {
    if (this.state.desired?.inflight?.id !== ended.id) return;
    void this.tryApply({
      kind: 'desiredOperationEnded',
      id: ended.id,
      status: ended.status,
      resultCode: ended.resultCode ?? null,
      resultDescription: ended.resultDescription ?? null,
    });
  }

  /** An operator changes the desired state; answers once any operation it starts is admitted. */
  async setDesired(patch: DesiredPatch): Promise<DesiredView | null> {
    const effects = this.apply({
      kind: 'setDesired',
      patch: patch.values,
      ...(patch.ifVersion !== undefined ? { ifVersion: patch.ifVersion } : {}),
      by: patch.by,
      newId: uuid4(),
    });
    await this.behaviours.settled(effects);
    return desiredOf(this.type, this.state);
  }

  /** Resolves once the operation's first record and the poll marker are stored. */
  async admissionStored(id: string): Promise<void> {
    await Promise.all([this.effects.admissions.get(id), this.markerStored()]);
  }

  operationWaiting({ id }: { id: string }): void {
    void this.tryApply({ kind: 'operationWaiting', id });
  }

  updateProfile(patch: ProfilePatch): DeviceProfile {
    this.apply({ kind: 'updateProfile', patch });
    return this.state.profile;
  }

  decommission(): TwinState {
    this.apply({ kind: 'decommission' });
    return this.state;
  }

  /** An operator acknowledges or clears an alarm; answers once the alarm is stored. */
  async alarmAction(input: {
    name: string;
    action: 'acknowledge' | 'clear';
    by: string;
  }): Promise<AlarmRecord> {
    const kind = input.action === 'acknowledge' ? 'acknowledgeAlarm' : 'clearAlarm';
    this.apply({ kind, name: input.name, by: input.by });
    await this.behaviours.stored();
    return this.state.behaviour!.alarms[input.name]!;
  }

  get decommissioned(): boolean {
    return this.state.lifecycle === 'DECOMMISSIONED';
  }

  /** No handler is running and no signal, child start or marker write is under way: safe to end or continue. */
  idle(): boolean {
    return (
      allHandlersFinished() &&
      this.effects.inFlight.size === 0 &&
      this.marker.writtenSeq === this.marker.seq &&
      this.behaviours.idle()
    );
  }

  /** The count of operations waiting for a poll changed: runs that store a marker write it (in order). */
  private markerChanged(waiting: number): void {
    this.marker.waiting = waiting;
    if (!patched(TWIN_ADMITS_OPERATIONS)) return;
    this.marker.seq++;
    if (this.marker.writer) return;
    this.marker.writer = true;
    void this.keepMarkerWritten();
  }

  /** One write at a time, always the latest count, so the stored marker never goes back to an older one. */
  private async keepMarkerWritten(): Promise<void> {
    const { org, deviceId } = this.state.identity;
    for (;;) {
      await condition(() => this.marker.seq > this.marker.writtenSeq);
      const { seq, waiting } = this.marker;
      await writePendingMarker(org, deviceId, waiting);
      this.marker.writtenSeq = seq;
    }
  }

  /** Resolves once the marker as it stands now is stored (at once when nothing is waiting to be written). */
  private async markerStored(): Promise<void> {
    const seq = this.marker.seq;
    if (this.marker.writtenSeq < seq) await condition(() => this.marker.writtenSeq >= seq);
  }

  /** The snapshot to publish now; nothing is pending any more. */
  takeSnapshot(): TwinSnapshot {
    this.snapshotPending = 'none';
    return toSnapshot(this.state, this.type);
  }
}
