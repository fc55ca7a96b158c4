// One operation on one device: a child of the device's twin, so each operation has its own history in the
// Temporal Web UI. A thin shell around twins/operation-flow.ts: it waits for its turn (or a poll), delivers,
// collects responses, retries, times out, expires or is cancelled, and keeps its read-model record current.
import {
  ActivityFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { PriorTransportErrors } from '../activities/delivery';
import {
  type DeliveryOutcome,
  type EarlyResponse,
  afterAttempt,
  afterWaitingForTurn,
  applyDeliveryFailure,
  applyDeliveryOutcome,
  attemptDeadline,
} from '../twins/operation-flow';
import {
  type OperationRecord,
  type OperationRequest,
  attemptOpen,
  requestEnvelope,
} from '../twins/operations';
import {
  cancelRequestedSignal,
  getOperationQuery,
  handedOverSignal,
  proceedSignal,
  reportResponseSignal,
} from './operation.messages';
import { OperationRun, remaining } from './operation-run';
import { operationEndedSignal, operationWaitingSignal } from './twin.messages';

export interface OperationWorkflowInput {
  readonly request: OperationRequest;
  /** Push: the twin gave it a slot at once. Otherwise it waits for proceed (push) or handedOver (pending). */
  readonly startNow: boolean;
  readonly twinWorkflowId: string;
  /** The record revision written before this workflow started (1, the first record); later ones are ours. */
  readonly recordWrittenRev: number;
  /** The twin pushed it already and the device took it: the workflow goes on from there. */
  readonly pushed?: PushedSoFar;
  /** Responses that came while the twin was pushing, before this workflow existed. */
  readonly early?: readonly EarlyResponse[];
  /** The twin's own push could not reach the device: the first attempt goes on counting from these. */
  readonly firstTry?: PriorTransportErrors;
  /** What code started the run (OPERATION_RUN_REVISION); none for runs started before it was given. */
  readonly revision?: number;
}

/** Where the twin's own push left the operation: its record (attempt 1 under way) and whether it was refused. */
export interface PushedSoFar {
  readonly record: OperationRecord;
  readonly rejected: boolean;
}

/** Time the delivery activity gets beyond the attempt's deadline to report that it ran out. */
const DELIVERY_GRACE_MS = 5_000;
/** An operation ends once its history reaches this many events (Temporal's hard limit is 51,200). */
const MAX_OPERATION_HISTORY = 20_000;

// Local activities: a synchronous device's operation runs from delivery to its final record in one workflow
// task, without a round trip to the server per step.
const { writeOperationRecord } = proxyLocalActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '10 seconds' },
});

export async function operationWorkflow(input: OperationWorkflowInput): Promise<OperationRecord> {
  const op = new OperationRun(input.request, input.startNow, input.recordWrittenRev, input.revision ?? 1);
  let pushed = input.pushed;
  if (pushed) op.apply([pushed.record]);
  op.hold(input.early ?? []);

  setHandler(getOperationQuery, () => op.record);
  setHandler(reportResponseSignal, (response) => op.reportResponse(response));
  setHandler(proceedSignal, () => op.proceed());
  setHandler(handedOverSignal, () => op.handOver());
  setHandler(cancelRequestedSignal, (cancel) => op.requestCancel(cancel));

  const writer = keepRecordWritten(op);
  const historyFull = (): boolean => workflowInfo().historyLength >= MAX_OPERATION_HISTORY;
  // One attempt per turn. The loop stays in this function, so its awaits interleave with the writer's as in
  // recorded histories (a helper's extra await could reorder two commands of one workflow task).
  for (;;) {
    let rejected = pushed?.rejected ?? false;
    if (!pushed) {
      // Wait for the turn (push) or a poll (pending), as long as the time to live allows.
      const came = await op.waitUntil(() => op.readyToAttempt(), op.record.expiresAt);
      const waited = afterWaitingForTurn(op.record, { came, cancelBy: op.cancelBy }, Date.now());
      op.apply(waited.records);
      op.turnTaken = true;
      if (waited.next === 'end') break;
      const deadline = attemptDeadline(op.record, Date.now());
      const firstTry = op.takeFirstTry(input.firstTry);
      rejected = op.request.delivery === 'push' ? await push(op, deadline, firstTry) : false;
    }
    pushed = undefined;
    op.applyHeld();
    const deadline = attemptDeadline(op.record, Date.now());
    if (!rejected && attemptOpen(op.record)) {
      await op.waitUntil(
        () => !attemptOpen(op.record) || op.cancelBy !== undefined || historyFull(),
        deadline,
      );
    }
    const end = { rejected, cancelBy: op.cancelBy, historyFull: historyFull() };
    const closed = afterAttempt(op.record, end, Date.now());
    op.apply(closed.records);
    if (closed.next === 'end') break;
    if (op.request.delivery === 'pending') {
      op.handedOver = false;
      op.turnTaken = false;
      await tellTwin(op, input.twinWorkflowId, 'waiting');
    }
    await condition(() => op.cancelBy !== undefined, Math.max(1, op.record.limits.retriesDelayMs));
  }

  // Responses still held never met their hand-over: they count as late.
  op.applyHeld();
  op.finished = true;
  // A signal still in flight when the workflow completes is dropped: wait for both.
  await Promise.all([writer, tellTwin(op, input.twinWorkflowId, 'ended')]);
  // Responses that came while the twin was being told are late; their count goes into the record too.
  while (op.record.rev > op.written) {
    const snapshot = op.record;
    await writeOperationRecord(snapshot);
    op.written = snapshot.rev;
  }
  return op.record;
}

/** One writer keeps the read model current; a burst of changes becomes one write. */
async function keepRecordWritten(op: OperationRun): Promise<void> {
  for (;;) {
    await condition(() => (op.record.rev > op.written && !op.delivering) || op.finished);
    if (op.record.rev <= op.written) return;
    const snapshot = op.record;
    await writeOperationRecord(snapshot);
    op.written = snapshot.rev;
  }
}

/** Pushes the request to the device's HTTP server; true when the device refused it (4xx), which ends it. */
async function push(op: OperationRun, deadline: number, firstTry?: PriorTransportErrors): Promise<boolean> {
  const req = op.request;
  const { deliverOperation } = proxyLocalActivities<ReturnType<typeof createActivities>>({
    // The activity retries transport failures itself until the deadline; Temporal runs it again only when
    // a worker dies under it.
    scheduleToCloseTimeout: remaining(deadline) + DELIVERY_GRACE_MS,
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
  });
  let outcome: DeliveryOutcome | undefined;
  let failure: unknown;
  let failed = false;
  const scope = new CancellationScope();
  op.delivering = true;
  const delivery = scope
    .run(() =>
      deliverOperation({
        url: req.operationUrl ?? '',
        platformKey: req.platformKey,
        envelope: requestEnvelope(req, Date.now()),
        deadline,
        ...(firstTry ? { prior: firstTry } : {}),
      }),
    )
    .then(
      (o) => {
        outcome = o;
      },
      (err: unknown) => {
        failure = err;
        failed = true;
      },
    );
  // A fast device may post its final response before its HTTP answer to the push arrives.
  await condition(
    () => outcome !== undefined || failed || op.cancelBy !== undefined || !attemptOpen(op.record),
  );
  op.delivering = false;
  if (outcome === undefined && !failed) {
    scope.cancel();
    await delivery;
    return false;
  }
  if (failed) {
    if (isCancellation(failure)) return false;
    const cause =
      failure instanceof ActivityFailure ? (failure.cause?.message ?? failure.message) : String(failure);
    op.apply(applyDeliveryFailure(op.record, cause, Date.now()));
    return false;
  }
  const applied = applyDeliveryOutcome(op.record, outcome!, Date.now());
  op.apply(applied.records);
  return applied.rejected;
}

async function tellTwin(op: OperationRun, twinWorkflowId: string, what: 'ended' | 'waiting'): Promise<void> {
  const twin = getExternalWorkflowHandle(twinWorkflowId);
  try {
    if (what === 'ended')
      await twin.signal(operationEndedSignal, {
        id: op.request.id,
        status: op.record.status,
        resultCode: op.record.resultCode,
        resultDescription: op.record.resultDescription,
      });
    else await twin.signal(operationWaitingSignal, { id: op.request.id });
  } catch (err) {
    // The twin is gone (decommissioned): nobody waits for the news.
    log.warn('could not tell the twin', { what, error: err instanceof Error ? err.message : String(err) });
  }
}
