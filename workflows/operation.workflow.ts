// One operation on one device: a child of the device's twin, so each operation has its own history in the
// Temporal Web UI. A thin shell around twins/operations.ts: it waits for its turn (or a poll), delivers,
// collects responses, retries, times out, expires or is cancelled, and keeps its read-model record current.
import {
  ActivityFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { DeliveryOutcome } from '../activities/delivery';
import {
  ERROR_TIMEOUT,
  type OperationRecord,
  type OperationRequest,
  applyResponse,
  attemptOpen,
  attemptVerdict,
  awaitNextAttempt,
  cancel,
  createOperationRecord,
  endAttempt,
  expire,
  finishWithResult,
  isFinal,
  markDelivered,
  recordTransportErrors,
  requestEnvelope,
  startAttempt,
} from '../twins/operations';
import {
  cancelRequestedSignal,
  getOperationQuery,
  handedOverSignal,
  proceedSignal,
  reportResponseSignal,
} from './operation.messages';
import { TWINFLOW_STATUS } from './search-attributes';
import { operationEndedSignal, operationWaitingSignal } from './twin.messages';

export interface OperationWorkflowInput {
  readonly request: OperationRequest;
  /** Push: the twin gave it a slot at once. Otherwise it waits for proceed (push) or handedOver (pending). */
  readonly startNow: boolean;
  readonly twinWorkflowId: string;
  /** The record revision the API writes itself when it accepts the request (1); later ones are ours. */
  readonly recordWrittenRev: number;
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

function describeOperation(rec: OperationRecord): string {
  const attempt =
    rec.attempts.length > 0 ? ` · attempt ${rec.attempts.length}/${rec.limits.retries + 1}` : '';
  const code = rec.resultCode ? ` · ${rec.resultCode}` : '';
  const last = rec.steps.at(-1);
  const step = last ? ` · last step ${last.name} ${last.result}` : '';
  return `${rec.name} on ${rec.deviceId} · ${rec.status}${code}${attempt}${step}`;
}

export async function operationWorkflow(input: OperationWorkflowInput): Promise<OperationRecord> {
  const req = input.request;
  let rec = createOperationRecord(req);
  let turn = input.startNow;
  let handedOver = false;
  let cancelBy: string | undefined;
  let written = input.recordWrittenRev;
  let finished = false;
  /** While a push is under way its outcome follows at once: the record waits for it rather than being written twice. */
  let delivering = false;

  const set = (next: OperationRecord): void => {
    if (next.status !== rec.status) upsertSearchAttributes([{ key: TWINFLOW_STATUS, value: next.status }]);
    rec = next;
    setCurrentDetails(describeOperation(rec));
  };
  setCurrentDetails(describeOperation(rec));

  setHandler(getOperationQuery, () => rec);
  setHandler(reportResponseSignal, ({ response, receivedAt }) => {
    const applied = applyResponse(rec, response, receivedAt);
    if (applied.outcome === 'late') {
      log.info('late operation response ignored', { status: rec.status, resultCode: response.resultCode });
    }
    set(applied.record);
  });
  setHandler(proceedSignal, () => {
    turn = true;
  });
  setHandler(handedOverSignal, () => {
    handedOver = true;
    // The attempt starts here, not in the main loop: the device's answer may arrive in the same workflow
    // task as this notice, and must find the attempt open.
    if (!isFinal(rec.status) && !attemptOpen(rec) && cancelBy === undefined) {
      const now = Date.now();
      set(markDelivered(startAttempt(rec, now), now));
    }
  });
  setHandler(cancelRequestedSignal, ({ by }) => {
    cancelBy ??= by;
  });

  // One writer keeps the read model current; a burst of changes becomes one write.
  const writer = (async () => {
    for (;;) {
      await condition(() => (rec.rev > written && !delivering) || finished);
      if (rec.rev <= written) return;
      const snapshot = rec;
      await writeOperationRecord(snapshot);
      written = snapshot.rev;
    }
  })();

  const historyFull = (): boolean => workflowInfo().historyLength >= MAX_OPERATION_HISTORY;
  const remaining = (until: number): number => Math.max(0, until - Date.now());
  const waitUntil = async (fn: () => boolean, until: number): Promise<boolean> =>
    fn() || (remaining(until) > 0 && (await condition(fn, remaining(until))));

  for (;;) {
    // Wait for the turn (push) or a poll (pending), as long as the time to live allows.
    const ready = () => (req.delivery === 'push' ? turn : handedOver) || cancelBy !== undefined;
    const came = await waitUntil(ready, rec.expiresAt);
    if (cancelBy !== undefined) {
      set(cancel(rec, cancelBy, Date.now()));
      break;
    }
    if (!came) {
      set(expire(rec, Date.now()));
      break;
    }

    // A hand-over starts its attempt in the signal handler; a push starts it here.
    if (!attemptOpen(rec)) set(startAttempt(rec, Date.now()));
    const deadline = (rec.attempts.at(-1)?.startedAt ?? Date.now()) + rec.limits.timeoutMs;
    let rejected = false;
    if (req.delivery === 'push') {
      rejected = await push(deadline);
    }
    if (!rejected && attemptOpen(rec)) {
      await waitUntil(() => !attemptOpen(rec) || cancelBy !== undefined || historyFull(), deadline);
    }
    if (historyFull() && attemptOpen(rec)) {
      // A device that never stops sending partial responses would otherwise exhaust the history.
      set(
        endAttempt(
          rec,
          'ERROR_PROCESSING',
          'the device sent more responses than one operation can hold',
          Date.now(),
        ),
      );
      set(finishWithResult(rec, Date.now()));
      break;
    }
    if (cancelBy !== undefined && !isFinal(rec.status) && attemptOpen(rec)) {
      set(cancel(rec, cancelBy, Date.now()));
      break;
    }
    if (attemptOpen(rec)) {
      set(endAttempt(rec, ERROR_TIMEOUT, `no final response within ${rec.limits.timeoutMs} ms`, Date.now()));
    }
    if (rejected || attemptVerdict(rec) === 'finish') {
      set(finishWithResult(rec, Date.now()));
      break;
    }
    // Another attempt: pending operations go back to the twin's queue for the next poll.
    set(awaitNextAttempt(rec, Date.now()));
    if (req.delivery === 'pending') {
      handedOver = false;
      await tellTwin('waiting');
    }
    await condition(() => cancelBy !== undefined, Math.max(1, rec.limits.retriesDelayMs));
  }

  finished = true;
  // A signal still in flight when the workflow completes is dropped: wait for both.
  await Promise.all([writer, tellTwin('ended')]);
  // Responses that came while the twin was being told are late; their count goes into the record too.
  while (rec.rev > written) {
    const snapshot = rec;
    await writeOperationRecord(snapshot);
    written = snapshot.rev;
  }
  return rec;

  /** Pushes the request to the device's HTTP server; true when the device refused it (4xx), which ends it. */
  async function push(deadline: number): Promise<boolean> {
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
    delivering = true;
    const delivery = scope
      .run(() =>
        deliverOperation({
          url: req.operationUrl ?? '',
          platformKey: req.platformKey,
          envelope: requestEnvelope(req, Date.now()),
          deadline,
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
    await condition(() => outcome !== undefined || failed || cancelBy !== undefined || !attemptOpen(rec));
    delivering = false;
    if (outcome === undefined && !failed) {
      scope.cancel();
      await delivery;
      return false;
    }
    if (failed) {
      if (isCancellation(failure)) return false;
      const cause =
        failure instanceof ActivityFailure ? (failure.cause?.message ?? failure.message) : String(failure);
      set(recordTransportErrors(rec, rec.attempts.at(-1)?.transportErrors ?? 0, cause, Date.now()));
      set(endAttempt(rec, ERROR_TIMEOUT, `the device could not be reached in time: ${cause}`, Date.now()));
      return false;
    }
    const o = outcome!;
    if (o.transportErrors > 0) {
      set(
        recordTransportErrors(
          rec,
          o.transportErrors,
          o.lastTransportError ?? 'transport failure',
          Date.now(),
        ),
      );
    }
    switch (o.kind) {
      case 'final':
      case 'accepted':
        if (attemptOpen(rec)) {
          set(markDelivered(rec, Date.now()));
          if (o.response) set(applyResponse(rec, o.response, Date.now()).record);
        }
        return false;
      case 'unreachable':
        if (attemptOpen(rec)) {
          const why = o.lastTransportError ?? 'no answer';
          set(endAttempt(rec, ERROR_TIMEOUT, `the device could not be reached in time (${why})`, Date.now()));
        }
        return false;
      case 'rejected':
        if (attemptOpen(rec)) {
          set(markDelivered(rec, Date.now()));
          set(endAttempt(rec, o.resultCode, o.resultDescription, Date.now()));
        }
        return true;
    }
  }

  async function tellTwin(what: 'ended' | 'waiting'): Promise<void> {
    const twin = getExternalWorkflowHandle(input.twinWorkflowId);
    try {
      if (what === 'ended') await twin.signal(operationEndedSignal, { id: req.id, status: rec.status });
      else await twin.signal(operationWaitingSignal, { id: req.id });
    } catch (err) {
      // The twin is gone (decommissioned): nobody waits for the news.
      log.warn('could not tell the twin', { what, error: err instanceof Error ? err.message : String(err) });
    }
  }
}
