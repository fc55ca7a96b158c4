// The twin's state holder: one method per message, each a call into the pure core whose effects TwinEffects runs.
import { allHandlersFinished, log, setCurrentDetails } from '@temporalio/workflow';
import type { TwinType } from '../twins/define-twin';
import type { OperationRequest, RequestEnvelope } from '../twins/operations';
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
  handedOverEnvelopes,
  snapshotPendingAfter,
  toSnapshot,
} from '../twins/twin-core';
import { type DeviceProfile, type Result, ok } from '../twins/types';
import { ensureOk } from './failures';
import { TwinEffects } from './twin-effects';
import type { OperationAdmission } from './twin.messages';

/** Built once per run inside the workflow function. */
export class TwinShell {
  private readonly effects: TwinEffects;

  constructor(
    private readonly type: TwinType,
    public state: TwinState,
    public snapshotPending: SnapshotPending,
  ) {
    this.effects = new TwinEffects(state.identity, {
      operationStartFailed: (id) => void this.apply({ kind: 'operationEnded', id }),
      snapshotWanted: (urgent) => {
        this.snapshotPending = snapshotPendingAfter(this.snapshotPending, urgent);
      },
    });
    setCurrentDetails(describeTwin(state));
  }

  /** Runs the core; a refused input changes nothing and is answered as a failure. */
  tryApply(input: TwinInput): Result<readonly TwinEffect[]> {
    const decision = decide(this.type, this.state, input, Date.now());
    if (!decision.ok) return decision;
    this.state = decision.value.state;
    for (const effect of decision.value.effects) {
      this.effects.run(effect);
      setCurrentDetails(describeTwin(this.state));
    }
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

  requestOperation(request: OperationRequest): OperationAdmission {
    const before = this.state.operations;
    this.apply({ kind: 'requestOperation', request });
    return { id: request.id, duplicate: this.state.operations === before };
  }

  async claimPending({ limit }: { limit: number }): Promise<RequestEnvelope[]> {
    this.effects.handedOver = [];
    const effects = this.apply({ kind: 'claimPending', limit });
    // Each operation knows it was handed over before the device can answer it.
    await Promise.all(this.effects.handedOver);
    return handedOverEnvelopes(effects, this.state.identity.deviceId, Date.now());
  }

  /** Answers once the operation workflow has been told (and any start of it has finished). */
  async cancelOperation({ id, by }: { id: string; by: string }): Promise<void> {
    this.apply({ kind: 'cancelOperation', id, by });
    await this.effects.starting.get(id);
    await Promise.all([...this.effects.inFlight]);
  }

  /** News from operation workflows; after decommissioning a waiting notice is refused and changes nothing. */
  operationEnded({ id }: { id: string }): void {
    void this.tryApply({ kind: 'operationEnded', id });
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

  get decommissioned(): boolean {
    return this.state.lifecycle === 'DECOMMISSIONED';
  }

  /** No handler is running and no signal or child start is under way: safe to end or continue as new. */
  idle(): boolean {
    return allHandlersFinished() && this.effects.inFlight.size === 0;
  }

  /** The snapshot to publish now; nothing is pending any more. */
  takeSnapshot(): TwinSnapshot {
    this.snapshotPending = 'none';
    return toSnapshot(this.state);
  }
}
