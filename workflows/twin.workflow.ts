// The twin: one long-running workflow per device, a thin shell around twins/twin-core.
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  type ProfilePatch,
  type TwinEffect,
  type TwinInput,
  type TwinState,
  createTwinState,
  decide,
  describeTwin,
  toSnapshot,
  validateProfilePatch,
} from '../twins/twin-core';
import type { DeviceProfile, TwinIdentity } from '../twins/types';
import { TWINFLOW_STATUS } from './search-attributes';
import {
  decommissionUpdate,
  getTwinStateQuery,
  reportTelemetrySignal,
  updateProfileUpdate,
} from './twin.messages';

export interface TwinWorkflowOptions {
  /** How long changes gather before the twin publishes a snapshot to the read model (ms). */
  readonly snapshotDebounceMs: number;
  /** How long a snapshot that only updates counters and times may wait (ms); urgent ones wait snapshotDebounceMs. */
  readonly snapshotIntervalMs: number;
  /** Continue as new after this many history events even if the server has not suggested it yet. */
  readonly maxHistoryEvents: number;
}

const MIN_EVENTS_BEFORE_CONTINUE = 20;

export const DEFAULT_TWIN_OPTIONS: TwinWorkflowOptions = {
  snapshotDebounceMs: 1_000,
  snapshotIntervalMs: 30_000,
  maxHistoryEvents: 10_000,
};

export interface TwinWorkflowInput {
  readonly identity: TwinIdentity;
  readonly profile: DeviceProfile;
  readonly options?: Partial<TwinWorkflowOptions>;
  /** Carried across continue-as-new. */
  readonly state?: TwinState;
  readonly snapshotPending?: SnapshotPending;
}

/** none: read model is current; routine: counters and times changed; urgent: what lists filter by changed. */
export type SnapshotPending = 'none' | 'routine' | 'urgent';

const { publishTwinSnapshot } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

export async function twinWorkflow(input: TwinWorkflowInput): Promise<TwinState> {
  const options: TwinWorkflowOptions = { ...DEFAULT_TWIN_OPTIONS, ...input.options };
  let state: TwinState;
  if (input.state) {
    state = input.state;
  } else {
    const created = createTwinState(input.identity, input.profile, Date.now());
    if (!created.ok) throw ApplicationFailure.nonRetryable(created.message, created.code);
    state = created.value;
  }
  // Provisioning writes the first snapshot itself; later runs carry what is pending.
  let snapshotPending: SnapshotPending = input.snapshotPending ?? 'none';

  const apply = (twinInput: TwinInput): void => {
    const decision = decide(state, twinInput, Date.now());
    if (!decision.ok) throw ApplicationFailure.nonRetryable(decision.message, decision.code);
    state = decision.value.state;
    decision.value.effects.forEach(runEffect);
  };
  const runEffect = (effect: TwinEffect): void => {
    switch (effect.kind) {
      case 'publishSnapshot':
        if (effect.urgent) snapshotPending = 'urgent';
        else if (snapshotPending === 'none') snapshotPending = 'routine';
        break;
      case 'statusChanged':
        upsertSearchAttributes([{ key: TWINFLOW_STATUS, value: effect.to }]);
        break;
    }
    setCurrentDetails(describeTwin(state));
  };
  setCurrentDetails(describeTwin(state));

  setHandler(reportTelemetrySignal, (batch) => {
    // A signal cannot answer with an error; a bad batch is logged and dropped (its data are stored anyway).
    const decision = decide(state, { kind: 'telemetry', batch }, Date.now());
    if (!decision.ok) {
      log.warn('telemetry batch rejected', {
        code: decision.code,
        message: decision.message,
        batchId: batch.batchId,
      });
      return;
    }
    state = decision.value.state;
    decision.value.effects.forEach(runEffect);
  });
  setHandler(getTwinStateQuery, () => state);
  setHandler(
    updateProfileUpdate,
    (patch) => {
      apply({ kind: 'updateProfile', patch });
      return state.profile;
    },
    {
      validator: (patch: ProfilePatch) => {
        if (state.lifecycle !== 'ACTIVE')
          throw ApplicationFailure.nonRetryable('device is decommissioned', 'DECOMMISSIONED');
        const checked = validateProfilePatch(patch);
        if (!checked.ok) throw ApplicationFailure.nonRetryable(checked.message, checked.code);
      },
    },
  );
  setHandler(
    decommissionUpdate,
    () => {
      apply({ kind: 'decommission' });
      return state;
    },
    {
      validator: () => {
        if (state.lifecycle !== 'ACTIVE')
          throw ApplicationFailure.nonRetryable('device is decommissioned', 'DECOMMISSIONED');
      },
    },
  );

  const historyTooLong = (): boolean => {
    const info = workflowInfo();
    // A fresh run never continues at once, so a suggestion driven by a large carried state cannot loop.
    if (info.historyLength < MIN_EVENTS_BEFORE_CONTINUE) return false;
    return info.continueAsNewSuggested || info.historyLength >= options.maxHistoryEvents;
  };

  for (;;) {
    await condition(
      () => snapshotPending !== 'none' || state.lifecycle === 'DECOMMISSIONED' || historyTooLong(),
    );
    if (state.lifecycle === 'DECOMMISSIONED') {
      await condition(allHandlersFinished);
      await publishTwinSnapshot(state.identity.org, state.identity.deviceId, toSnapshot(state));
      return state;
    }
    // Before the next snapshot: under steady traffic a snapshot is nearly always pending, and the history
    // must still stay bounded. The pending snapshot goes along to the next run.
    if (historyTooLong()) {
      await condition(allHandlersFinished);
      return await continueAsNew<typeof twinWorkflow>({ ...input, state, snapshotPending });
    }
    // Routine changes wait for the interval (or until something urgent comes); then a short debounce turns a
    // burst into one write. The read model's latest values do not wait: the ingest path writes them.
    if (snapshotPending === 'routine') {
      await condition(
        () => snapshotPending === 'urgent' || state.lifecycle !== 'ACTIVE' || historyTooLong(),
        options.snapshotIntervalMs,
      );
      if (state.lifecycle !== 'ACTIVE' || historyTooLong()) continue;
    }
    await sleep(options.snapshotDebounceMs);
    snapshotPending = 'none';
    await publishTwinSnapshot(state.identity.org, state.identity.deviceId, toSnapshot(state));
  }
}
