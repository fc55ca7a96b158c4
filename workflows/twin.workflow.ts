// The twin: one long-running workflow per device, a thin shell around twins/twin-core.
import {
  ApplicationFailure,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { type OperationRequest, type RequestEnvelope, requestEnvelope } from '../twins/operations';
import {
  type ProfilePatch,
  type TwinEffect,
  type TwinInput,
  type TwinState,
  checkRequest,
  createTwinState,
  decide,
  describeTwin,
  toSnapshot,
  validateProfilePatch,
} from '../twins/twin-core';
import { emptyOperationTable } from '../twins/twin-operations';
import { type DeviceProfile, type Result, type TwinIdentity, ok } from '../twins/types';
import { operationWorkflowId } from './ids';
import { cancelRequestedSignal, handedOverSignal, proceedSignal } from './operation.messages';
import { operationWorkflow } from './operation.workflow';
import {
  TWINFLOW_DEVICE_ID,
  TWINFLOW_OPERATION,
  TWINFLOW_ORG,
  TWINFLOW_STATUS,
  TWINFLOW_TWIN_TYPE,
} from './search-attributes';
import {
  type OperationAdmission,
  cancelOperationUpdate,
  claimPendingOperationsUpdate,
  decommissionUpdate,
  getTwinStateQuery,
  operationEndedSignal,
  operationWaitingSignal,
  reportTelemetrySignal,
  requestOperationUpdate,
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

const DEFAULT_TWIN_OPTIONS: TwinWorkflowOptions = {
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
    // Runs carried over from before operations existed have no table yet.
    state = { ...input.state, operations: input.state.operations ?? emptyOperationTable() };
  } else {
    const created = createTwinState(input.identity, input.profile, Date.now());
    if (!created.ok) throw ApplicationFailure.nonRetryable(created.message, created.code);
    state = created.value;
  }
  // Provisioning writes the first snapshot itself; later runs carry what is pending.
  let snapshotPending: SnapshotPending = input.snapshotPending ?? 'none';

  /** Runs the core; a refused input changes nothing and is answered as a failure. */
  const tryApply = (twinInput: TwinInput): Result<readonly TwinEffect[]> => {
    const decision = decide(state, twinInput, Date.now());
    if (!decision.ok) return decision;
    state = decision.value.state;
    decision.value.effects.forEach(runEffect);
    return ok(decision.value.effects);
  };
  /** For updates: a refused input fails the update with the core's code. */
  const apply = (twinInput: TwinInput): readonly TwinEffect[] => {
    const applied = tryApply(twinInput);
    if (!applied.ok) throw ApplicationFailure.nonRetryable(applied.message, applied.code);
    return applied.value;
  };
  /** Signals to operation workflows still under way; they finish before the twin continues as new or ends. */
  const inFlight = new Set<Promise<void>>();
  /** Child starts still under way, so a signal never overtakes the start of its workflow. */
  const starting = new Map<string, Promise<void>>();
  const track = (p: Promise<void>): Promise<void> => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    return p;
  };
  const opWorkflowId = (id: string) => operationWorkflowId(state.identity.org, state.identity.deviceId, id);
  const signalOperation = (
    id: string,
    send: (h: ReturnType<typeof getExternalWorkflowHandle>) => Promise<void>,
  ) =>
    track(
      (async () => {
        await starting.get(id);
        try {
          await send(getExternalWorkflowHandle(opWorkflowId(id)));
        } catch (err) {
          // The operation ended meanwhile; its end signal tidies the table.
          log.warn('could not signal an operation', { operationId: id, error: String(err) });
        }
      })(),
    );
  const startOperation = (request: OperationRequest, startNow: boolean): void => {
    const { org, deviceId, twinType } = state.identity;
    const started = (async () => {
      try {
        await startChild(operationWorkflow, {
          workflowId: opWorkflowId(request.id),
          args: [{ request, startNow, twinWorkflowId: workflowInfo().workflowId, recordWrittenRev: 1 }],
          // The twin continues as new while operations run; they must outlive each run.
          parentClosePolicy: ParentClosePolicy.ABANDON,
          typedSearchAttributes: [
            { key: TWINFLOW_ORG, value: org },
            { key: TWINFLOW_DEVICE_ID, value: deviceId },
            { key: TWINFLOW_TWIN_TYPE, value: twinType },
            { key: TWINFLOW_OPERATION, value: request.name },
            {
              key: TWINFLOW_STATUS,
              value: request.delivery === 'pending' ? 'WAITING_FOR_CONNECTION' : 'QUEUED',
            },
          ],
          staticSummary: `${request.name} on ${deviceId} (${request.delivery}) requested by ${request.requestedBy}`,
        });
      } catch (err) {
        log.error('could not start an operation', { operationId: request.id, error: String(err) });
        apply({ kind: 'operationEnded', id: request.id });
      } finally {
        starting.delete(request.id);
      }
    })();
    starting.set(request.id, started);
    void track(started);
  };
  let handedOver: Promise<void>[] = [];
  const runEffect = (effect: TwinEffect): void => {
    switch (effect.kind) {
      case 'startOperation':
        startOperation(effect.request, effect.startNow);
        break;
      case 'proceedOperation':
        void signalOperation(effect.id, (h) => h.signal(proceedSignal));
        break;
      case 'handOverOperations': {
        const at = Date.now();
        handedOver = effect.operations.map((op) =>
          signalOperation(op.id, (h) => h.signal(handedOverSignal, { at })),
        );
        break;
      }
      case 'cancelOperation':
        void signalOperation(effect.id, (h) => h.signal(cancelRequestedSignal, { by: effect.by }));
        break;
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
    const applied = tryApply({ kind: 'telemetry', batch });
    if (!applied.ok) {
      log.warn('telemetry batch rejected', {
        code: applied.code,
        message: applied.message,
        batchId: batch.batchId,
      });
    }
  });
  setHandler(getTwinStateQuery, () => state);

  setHandler(
    requestOperationUpdate,
    (request): OperationAdmission => {
      const before = state.operations;
      apply({ kind: 'requestOperation', request });
      return { id: request.id, duplicate: state.operations === before };
    },
    {
      validator: (request: OperationRequest) => {
        const checked = checkRequest(state, request);
        if (!checked.ok) throw ApplicationFailure.nonRetryable(checked.message, checked.code);
      },
    },
  );
  setHandler(
    claimPendingOperationsUpdate,
    async ({ limit }): Promise<RequestEnvelope[]> => {
      handedOver = [];
      const effects = apply({ kind: 'claimPending', limit });
      // Each operation knows it was handed over before the device can answer it.
      await Promise.all(handedOver);
      const now = Date.now();
      return effects.flatMap((e) =>
        e.kind === 'handOverOperations'
          ? e.operations.map((op) => requestEnvelope({ ...op, deviceId: state.identity.deviceId }, now))
          : [],
      );
    },
    {
      validator: ({ limit }: { limit: number }) => {
        if (!Number.isInteger(limit) || limit < 1)
          throw ApplicationFailure.nonRetryable('limit must be a positive integer', 'INVALID_ARGUMENT');
        if (state.lifecycle !== 'ACTIVE')
          throw ApplicationFailure.nonRetryable('device is decommissioned', 'DECOMMISSIONED');
      },
    },
  );
  setHandler(
    cancelOperationUpdate,
    async ({ id, by }) => {
      apply({ kind: 'cancelOperation', id, by });
      await starting.get(id);
      await Promise.all([...inFlight]);
    },
    {
      validator: ({ id }: { id: string; by: string }) => {
        if (!state.operations.open.some((o) => o.id === id)) {
          throw ApplicationFailure.nonRetryable(`operation ${id} is not open on this device`, 'NOT_FOUND');
        }
      },
    },
  );
  // News from operation workflows; after decommissioning a waiting notice is refused and changes nothing.
  setHandler(operationEndedSignal, ({ id }) => void tryApply({ kind: 'operationEnded', id }));
  setHandler(operationWaitingSignal, ({ id }) => void tryApply({ kind: 'operationWaiting', id }));
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
      await condition(() => allHandlersFinished() && inFlight.size === 0);
      await publishTwinSnapshot(state.identity.org, state.identity.deviceId, toSnapshot(state));
      return state;
    }
    // Before the next snapshot: under steady traffic a snapshot is nearly always pending, and the history
    // must still stay bounded. The pending snapshot goes along to the next run.
    if (historyTooLong()) {
      await condition(() => allHandlersFinished() && inFlight.size === 0);
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
