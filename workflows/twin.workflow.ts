// The twin: one long-running workflow per device, a thin shell around twins/twin-core.
import {
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { TwinType } from '../twins/define-twin';
import { resolveTwinType } from '../twins/registry';
import type { OperationRequest } from '../twins/operations';
import {
  type ProfilePatch,
  type SnapshotPending,
  type TwinState,
  createTwinState,
  toSnapshot,
} from '../twins/twin-core';
import { emptyOperationTable } from '../twins/twin-operations';
import {
  validateAlarmAction,
  validateCancelOperation,
  validateClaimPending,
  validateDesiredPatch,
  validateDecommission,
  validateOperationRequest,
  validateProfileUpdate,
} from '../twins/twin-validators';
import type { DeviceProfile, TwinIdentity } from '../twins/types';
import { ensureOk } from './failures';
import { TwinShell } from './twin-shell';
import {
  type AlarmAction,
  type DesiredPatch,
  alarmActionUpdate,
  setDesiredUpdate,
  cancelOperationUpdate,
  claimPendingOperationsUpdate,
  decommissionUpdate,
  forwardOperationResponseUpdate,
  getTwinStateQuery,
  operationEndedSignal,
  operationWaitingSignal,
  reportTelemetrySignal,
  requestOperationUpdate,
  updateProfileUpdate,
} from './twin.messages';

export type { SnapshotPending } from '../twins/twin-core';

export interface TwinWorkflowOptions {
  /** How long changes gather before the twin publishes a snapshot to the read model (ms). */
  readonly snapshotDebounceMs: number;
  /** How long a snapshot that only updates counters and times may wait (ms); urgent ones wait snapshotDebounceMs. */
  readonly snapshotIntervalMs: number;
  /** Continue as new after this many history events even if the server has not suggested it yet. */
  readonly maxHistoryEvents: number;
  /**
   * How long the twin itself waits for a device to answer the push of an operation whose turn came at once (ms).
   * The twin takes no other message meanwhile; a device slower than this gets the request again (same id) from
   * the operation's workflow. 0: operation workflows make every push.
   */
  readonly firstPushBudgetMs: number;
}

const MIN_EVENTS_BEFORE_CONTINUE = 20;

/** Patch: a routine snapshot published when its interval ran out, without the debounce urgent ones wait. */
export const ROUTINE_SNAPSHOT_WITHOUT_DEBOUNCE = 'routine-snapshot-without-debounce';

const DEFAULT_TWIN_OPTIONS: TwinWorkflowOptions = {
  snapshotDebounceMs: 1_000,
  snapshotIntervalMs: 30_000,
  maxHistoryEvents: 10_000,
  firstPushBudgetMs: 2_000,
};

export interface TwinWorkflowInput {
  readonly identity: TwinIdentity;
  readonly profile: DeviceProfile;
  readonly options?: Partial<TwinWorkflowOptions>;
  /** Carried across continue-as-new. */
  readonly state?: TwinState;
  readonly snapshotPending?: SnapshotPending;
}

const { publishTwinSnapshot } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

export async function twinWorkflow(input: TwinWorkflowInput): Promise<TwinState> {
  const options: TwinWorkflowOptions = { ...DEFAULT_TWIN_OPTIONS, ...input.options };
  const type = ensureOk(resolveTwinType(input.identity.twinType));
  // Provisioning writes the first snapshot itself; later runs carry what is pending.
  const twin = new TwinShell(type, initialState(type, input), input.snapshotPending ?? 'none', options);

  setHandler(reportTelemetrySignal, (batch) => twin.reportTelemetry(batch));
  setHandler(getTwinStateQuery, () => twin.state);
  setHandler(requestOperationUpdate, (request) => twin.requestOperation(request), {
    validator: (request: OperationRequest) =>
      void ensureOk(validateOperationRequest(type, twin.state, request)),
  });
  setHandler(claimPendingOperationsUpdate, (claim) => twin.claimPending(claim), {
    validator: (claim: { limit: number }) => void ensureOk(validateClaimPending(twin.state, claim)),
  });
  setHandler(cancelOperationUpdate, (cancel) => twin.cancelOperation(cancel), {
    validator: (cancel: { id: string; by: string }) =>
      void ensureOk(validateCancelOperation(twin.state, cancel)),
  });
  setHandler(forwardOperationResponseUpdate, (input) => twin.forwardResponse(input), {
    validator: (input: { id: string }) => void ensureOk(validateCancelOperation(twin.state, input)),
  });
  setHandler(operationEndedSignal, (ended) => twin.operationEnded(ended));
  setHandler(operationWaitingSignal, (waiting) => twin.operationWaiting(waiting));
  setHandler(updateProfileUpdate, (patch) => twin.updateProfile(patch), {
    validator: (patch: ProfilePatch) => void ensureOk(validateProfileUpdate(twin.state, patch)),
  });
  setHandler(alarmActionUpdate, (action) => twin.alarmAction(action), {
    validator: (action: AlarmAction) => void ensureOk(validateAlarmAction(type, twin.state, action)),
  });
  setHandler(setDesiredUpdate, (patch) => twin.setDesired(patch), {
    validator: (patch: DesiredPatch) => void ensureOk(validateDesiredPatch(type, twin.state, patch)),
  });
  setHandler(decommissionUpdate, () => twin.decommission(), {
    validator: () => void ensureOk(validateDecommission(twin.state)),
  });

  const { org, deviceId } = twin.state.identity;
  // The loop stays in this function, so its awaits interleave with the handlers' as in recorded histories.
  const historyTooLong = (): boolean => {
    const info = workflowInfo();
    // A fresh run never continues at once, so a suggestion driven by a large carried state cannot loop.
    if (info.historyLength < MIN_EVENTS_BEFORE_CONTINUE) return false;
    return info.continueAsNewSuggested || info.historyLength >= options.maxHistoryEvents;
  };
  for (;;) {
    await condition(() => twin.snapshotPending !== 'none' || twin.decommissioned || historyTooLong());
    if (twin.decommissioned) {
      await condition(() => twin.idle());
      await publishTwinSnapshot(org, deviceId, toSnapshot(twin.state, type));
      return twin.state;
    }
    // Before the next snapshot: under steady traffic a snapshot is nearly always pending, and the history
    // must still stay bounded. The pending snapshot goes along to the next run.
    if (historyTooLong()) {
      await condition(() => twin.idle());
      const { state, snapshotPending } = twin;
      return await continueAsNew<typeof twinWorkflow>({ ...input, state, snapshotPending });
    }
    // Routine changes wait for the interval (or until something urgent comes); an urgent one waits a short
    // debounce that turns a burst into one write. The read model's latest values do not wait: the ingest path
    // writes them.
    let waitedInterval = false;
    if (twin.snapshotPending === 'routine') {
      waitedInterval = !(await condition(
        () => twin.snapshotPending === 'urgent' || twin.decommissioned || historyTooLong(),
        options.snapshotIntervalMs,
      ));
      if (twin.decommissioned || historyTooLong()) continue;
    }
    // A routine snapshot that waited out the whole interval has gathered its burst already: a debounce on top
    // would cost every such snapshot a second workflow task (10,000 busy twins: up to 333 extra tasks a second).
    if (!(waitedInterval && patched(ROUTINE_SNAPSHOT_WITHOUT_DEBOUNCE)))
      await sleep(options.snapshotDebounceMs);
    await publishTwinSnapshot(org, deviceId, twin.takeSnapshot());
  }
}

/** A new twin, or the state the previous run carried over. */
function initialState(type: TwinType, input: TwinWorkflowInput): TwinState {
  // Runs carried over from before operations existed have no table yet.
  if (input.state) return { ...input.state, operations: input.state.operations ?? emptyOperationTable() };
  return createTwinState(type, input.identity, input.profile, Date.now());
}
