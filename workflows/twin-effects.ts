// Runs the twin core's effects: starts operation workflows, signals them, upserts the status search attribute.
import {
  ParentClosePolicy,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyLocalActivities,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  type DeliveryOutcome,
  type EarlyResponse,
  type FirstPush,
  afterFirstPush,
  firstPushOf,
  attemptDeadline,
} from '../twins/operation-flow';
import {
  type OperationRecord,
  type OperationRequest,
  createOperationRecord,
  requestEnvelope,
} from '../twins/operations';
import type { TwinEffect } from '../twins/twin-core';
import type { TwinIdentity } from '../twins/types';
import { operationWorkflowId } from './ids';
import {
  cancelRequestedSignal,
  handedOverSignal,
  proceedSignal,
  reportResponseSignal,
} from './operation.messages';
import { OPERATION_RUN_REVISION } from './operation-run';
import { type OperationWorkflowInput, operationWorkflow } from './operation.workflow';
import {
  TWINFLOW_DEVICE_ID,
  TWINFLOW_OPERATION,
  TWINFLOW_ORG,
  TWINFLOW_STATUS,
  TWINFLOW_TWIN_TYPE,
} from './search-attributes';

/**
 * Twins write an operation's first record before they answer its request, and push an operation whose turn came
 * at once themselves (a local activity), so that a synchronous device's operation is one workflow task. Runs
 * recorded before this keep their old commands on replay.
 */
export const TWIN_ADMITS_OPERATIONS = 'twin-admits-operations';

/**
 * Patch: a poll that hands operations over answers once the twin has stored its poll marker (a local activity
 * in the same workflow task), so the device's next poll finds the count it left and an empty one is answered
 * from the store without a workflow round trip. Runs recorded before answered first and wrote after.
 */
export const CLAIM_WAITS_FOR_MARKER = 'claim-waits-for-marker';

/** Beyond the first push's own budget, for the record write before it and the activity's start. */
const FIRST_PUSH_GRACE_MS = 5_000;

const { admitOperationRecord } = proxyLocalActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '2 seconds', maximumAttempts: 5 },
});
// The final record of an operation the twin ended: written before the request is answered, however long it takes.
const { writeOperationRecord } = proxyLocalActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '10 seconds' },
});

/** What the effects need from the twin that runs them. */
export interface TwinEffectHooks {
  /** An operation workflow could not be started: the twin forgets the operation. */
  readonly operationStartFailed: (id: string) => void;
  /** The twin's own push ended the operation (within the update that requested it). */
  readonly operationEndedHere: (id: string, record: OperationRecord) => void;
  /** The read model should hear of the change; urgent when what lists filter by changed. */
  readonly snapshotWanted: (urgent: boolean) => void;
}

type ExternalHandle = ReturnType<typeof getExternalWorkflowHandle>;

/** One per twin run (never at module level: workflow modules are shared between workflows). */
export class TwinEffects {
  /** Signals and child starts still under way; they finish before the twin continues as new or ends. */
  readonly inFlight = new Set<Promise<void>>();
  /** Child starts still under way, so a signal never overtakes the start of its workflow. */
  readonly starting = new Map<string, Promise<void>>();
  /** The hand-over signals of the last poll; the poll answers once each operation knows. */
  handedOver: Promise<void>[] = [];
  /** Per admitted operation: the record written before the request is answered (undefined: none was). */
  readonly admissions = new Map<string, Promise<OperationRecord | undefined>>();
  /** Responses for operations the twin is pushing itself, held until the push is over. */
  private readonly early = new Map<string, EarlyResponse[]>();

  constructor(
    private readonly identity: TwinIdentity,
    private readonly firstPushBudgetMs: number,
    private readonly hooks: TwinEffectHooks,
  ) {}

  run(effect: TwinEffect): void {
    switch (effect.kind) {
      case 'startOperation':
        this.startOperation(effect.request, effect.startNow);
        break;
      case 'proceedOperation':
        void this.signalOperation(effect.id, (h) => h.signal(proceedSignal));
        break;
      case 'handOverOperations': {
        const at = Date.now();
        this.handedOver = effect.operations.map((op) =>
          this.signalOperation(op.id, (h) => h.signal(handedOverSignal, { at })),
        );
        break;
      }
      case 'cancelOperation':
        void this.signalOperation(effect.id, (h) => h.signal(cancelRequestedSignal, { by: effect.by }));
        break;
      case 'publishSnapshot':
        this.hooks.snapshotWanted(effect.urgent);
        break;
      case 'statusChanged':
        upsertSearchAttributes([{ key: TWINFLOW_STATUS, value: effect.to }]);
        break;
    }
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
    return p;
  }

  private opWorkflowId(id: string): string {
    return operationWorkflowId(this.identity.org, this.identity.deviceId, id);
  }

  private signalOperation(id: string, send: (h: ExternalHandle) => Promise<void>): Promise<void> {
    return this.track(
      (async () => {
        await this.starting.get(id);
        try {
          await send(getExternalWorkflowHandle(this.opWorkflowId(id)));
        } catch (err) {
          // The operation ended meanwhile; its end signal tidies the table.
          log.warn('could not signal an operation', { operationId: id, error: String(err) });
        }
      })(),
    );
  }

  /** A device's response for an operation without a workflow yet: held while the twin pushes, else passed on. */
  forwardResponse(id: string, response: EarlyResponse): Promise<void> {
    const held = this.early.get(id);
    if (held) {
      held.push(response);
      return Promise.resolve();
    }
    return this.signalOperation(id, (h) => h.signal(reportResponseSignal, response));
  }

  private startOperation(request: OperationRequest, startNow: boolean): void {
    if (!patched(TWIN_ADMITS_OPERATIONS)) {
      this.starting.set(
        request.id,
        this.launch(request, () => this.startChildOperation(request, startNow)),
      );
      return;
    }
    let answer: (record: OperationRecord | undefined) => void = () => undefined;
    this.admissions.set(request.id, new Promise((resolve) => (answer = resolve)));
    const fast =
      this.firstPushBudgetMs > 0 &&
      startNow &&
      request.delivery === 'push' &&
      request.operationUrl !== undefined;
    const admit = fast
      ? () => this.pushFirst(request, answer)
      : () => this.admitQueued(request, startNow, answer);
    this.starting.set(
      request.id,
      this.launch(request, admit, () => answer(undefined)),
    );
  }

  /** Runs the start of an operation; a failure forgets it. Signals to it wait until this is over. */
  private launch(request: OperationRequest, start: () => Promise<void>, onError?: () => void): Promise<void> {
    const started = (async () => {
      try {
        await start();
      } catch (err) {
        log.error('could not start an operation', { operationId: request.id, error: String(err) });
        this.hooks.operationStartFailed(request.id);
        onError?.();
      } finally {
        this.starting.delete(request.id);
        this.admissions.delete(request.id);
      }
    })();
    void this.track(started);
    return started;
  }

  /** Queued or pending: the first record is written, then the operation's workflow takes over. */
  private async admitQueued(
    request: OperationRequest,
    startNow: boolean,
    answer: (record: OperationRecord | undefined) => void,
  ): Promise<void> {
    const record = createOperationRecord(request);
    const written = admitOperationRecord(record).then(
      () => answer(record),
      (err: unknown) => {
        // The workflow writes the record soon after; the request is queued all the same.
        log.warn('could not write the first operation record', {
          operationId: request.id,
          error: String(err),
        });
        answer(undefined);
      },
    );
    await Promise.all([written, this.startChildOperation(request, startNow)]);
  }

  /** Pushes an operation whose turn came at once: a device that answers for good ends it in this task. */
  private async pushFirst(
    request: OperationRequest,
    answer: (record: OperationRecord | undefined) => void,
  ): Promise<void> {
    const first = createOperationRecord(request);
    const early: EarlyResponse[] = [];
    this.early.set(request.id, early);
    let pushed: FirstPush | undefined;
    let outcome: DeliveryOutcome | undefined;
    try {
      const deadline = Math.min(attemptDeadline(first, Date.now()), Date.now() + this.firstPushBudgetMs);
      const { pushOperationOnce } = proxyLocalActivities<ReturnType<typeof createActivities>>({
        startToCloseTimeout: this.firstPushBudgetMs + FIRST_PUSH_GRACE_MS,
        retry: { initialInterval: '200 milliseconds', maximumInterval: '2 seconds', maximumAttempts: 3 },
      });
      const delivery = {
        url: request.operationUrl ?? '',
        ...(request.platformKey ? { platformKey: request.platformKey } : {}),
        envelope: requestEnvelope(request, Date.now()),
        deadline,
      };
      const done = await pushOperationOnce(first, delivery);
      outcome = done.outcome;
      // The activity stored its records; responses that came meanwhile are applied here, and stored below.
      pushed =
        early.length > 0 ? afterFirstPush(first, outcome, early, Date.now()) : firstPushOf(first, done);
    } catch (err) {
      log.warn('the first push failed; the operation workflow delivers it', { error: String(err) });
    } finally {
      this.early.delete(request.id);
    }
    const latest = pushed?.records.at(-1) ?? first;
    if (pushed && early.length > 0) await writeOperationRecord(latest);
    if (pushed?.next === 'ended') {
      this.hooks.operationEndedHere(request.id, latest);
      answer(latest);
      return;
    }
    // Without a push the first record may not have been written: the API writes it then.
    answer(pushed ? latest : undefined);
    const soFar = pushed?.next === 'continue' ? { record: latest, rejected: pushed.rejected } : undefined;
    // A device that could not be reached: the workflow's push goes on counting the transport errors.
    const failed = outcome?.kind === 'unreachable' ? outcome : undefined;
    const firstTry = failed
      ? { transportErrors: failed.transportErrors, lastTransportError: failed.lastTransportError ?? '' }
      : undefined;
    await this.startChildOperation(request, true, { pushed: soFar, early: soFar ? [] : early, firstTry });
  }

  /** Starts the operation's workflow (a child that outlives the twin's run). */
  private async startChildOperation(
    request: OperationRequest,
    startNow: boolean,
    from: Pick<OperationWorkflowInput, 'pushed' | 'early' | 'firstTry'> = {},
  ): Promise<void> {
    const { pushed, early, firstTry } = from;
    const { org, deviceId, twinType } = this.identity;
    await startChild(operationWorkflow, {
      workflowId: this.opWorkflowId(request.id),
      args: [
        {
          request,
          startNow,
          twinWorkflowId: workflowInfo().workflowId,
          recordWrittenRev: 1,
          revision: OPERATION_RUN_REVISION,
          ...(pushed ? { pushed } : {}),
          ...(early && early.length > 0 ? { early } : {}),
          ...(firstTry ? { firstTry } : {}),
        },
      ],
      // The twin continues as new while operations run; they must outlive each run.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [
        { key: TWINFLOW_ORG, value: org },
        { key: TWINFLOW_DEVICE_ID, value: deviceId },
        { key: TWINFLOW_TWIN_TYPE, value: twinType },
        { key: TWINFLOW_OPERATION, value: request.name },
        {
          key: TWINFLOW_STATUS,
          value: pushed
            ? pushed.record.status
            : request.delivery === 'pending'
              ? 'WAITING_FOR_CONNECTION'
              : 'QUEUED',
        },
      ],
      staticSummary: `${request.name} on ${deviceId} (${request.delivery}) requested by ${request.requestedBy}`,
    });
  }
}
