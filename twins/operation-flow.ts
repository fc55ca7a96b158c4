// How one operation runs, the pure part: what each turn of the operation workflow's loop and each delivery outcome
// does to the record. Every function answers the record's successive versions in order, because the shell
// publishes each status change as it happens (a search-attribute upsert), and whether the operation goes on.
import {
  ERROR_TIMEOUT,
  type DeviceResponse,
  type OperationRecord,
  applyResponse,
  attemptOpen,
  attemptVerdict,
  awaitNextAttempt,
  cancel,
  endAttempt,
  expire,
  finishWithResult,
  isFinal,
  markDelivered,
  recordTransportErrors,
  startAttempt,
} from './operations';

/** What a push to the device's HTTP server came to (the delivery activity's answer). */
export type DeliveryOutcome = (
  | /** The device answered with its final response in the body (synchronous). */
    { readonly kind: 'final'; readonly response: DeviceResponse }
    /** The device took the request and will answer later; it may have sent a first partial response. */
  | { readonly kind: 'accepted'; readonly response?: DeviceResponse }
  /** The device could not be reached (network errors, 5xx) before the deadline. */
  | { readonly kind: 'unreachable' }
  /** A 4xx: the device refused the operation; it ends with this result code. */
  | {
      readonly kind: 'rejected';
      readonly httpStatus: number;
      readonly resultCode: string;
      readonly resultDescription: string;
    }
) & {
  /** Network errors and 5xx answers retried before this outcome. */
  readonly transportErrors: number;
  readonly lastTransportError?: string;
};

/** The record's versions after a step, oldest first (possibly none), and what the workflow does next. */
export interface FlowStep<Next extends string> {
  readonly records: readonly OperationRecord[];
  readonly next: Next;
}

/** Collects successive versions of a record. */
class Versions {
  readonly records: OperationRecord[] = [];
  constructor(public current: OperationRecord) {}
  add(next: OperationRecord): this {
    this.records.push(next);
    this.current = next;
    return this;
  }
}

/** The operation may start an attempt: its turn came (push) or the device polled (pending). */
export interface Readiness {
  readonly delivery: OperationRecord['delivery'];
  readonly turn: boolean;
  readonly handedOver: boolean;
  readonly cancelBy: string | undefined;
}

export const readyToAttempt = (r: Readiness): boolean =>
  (r.delivery === 'push' ? r.turn : r.handedOver) || r.cancelBy !== undefined;

/**
 * A poll handed the operation over: its attempt starts at once, since the device's answer may arrive in the same
 * workflow task and must find it open. Nothing changes once it is final, already attempting or being cancelled.
 */
export function startHandedOverAttempt(
  rec: OperationRecord,
  cancelBy: string | undefined,
  now: number,
): OperationRecord[] {
  if (isFinal(rec.status) || attemptOpen(rec) || cancelBy !== undefined) return [];
  return [markDelivered(startAttempt(rec, now), now)];
}

/** After waiting for the turn or a poll: cancelled, expired (the time to live ran out), or an attempt runs. */
export function afterWaitingForTurn(
  rec: OperationRecord,
  wait: { readonly came: boolean; readonly cancelBy: string | undefined },
  now: number,
): FlowStep<'attempt' | 'end'> {
  if (wait.cancelBy !== undefined) return { records: [cancel(rec, wait.cancelBy, now)], next: 'end' };
  if (!wait.came) return { records: [expire(rec, now)], next: 'end' };
  // A hand-over started its attempt already; a push starts it here.
  return { records: attemptOpen(rec) ? [] : [startAttempt(rec, now)], next: 'attempt' };
}

/** When the current attempt runs out of time. */
export const attemptDeadline = (rec: OperationRecord, now: number): number =>
  (rec.attempts.at(-1)?.startedAt ?? now) + rec.limits.timeoutMs;

/** What the push's outcome does to the record; rejected (a 4xx) ends the operation. */
export function applyDeliveryOutcome(
  rec: OperationRecord,
  o: DeliveryOutcome,
  now: number,
): { readonly records: readonly OperationRecord[]; readonly rejected: boolean } {
  const v = new Versions(rec);
  if (o.transportErrors > 0) {
    v.add(
      recordTransportErrors(v.current, o.transportErrors, o.lastTransportError ?? 'transport failure', now),
    );
  }
  const open = attemptOpen(v.current);
  switch (o.kind) {
    case 'final':
    case 'accepted':
      if (open) {
        v.add(markDelivered(v.current, now));
        if (o.response) v.add(applyResponse(v.current, o.response, now).record);
      }
      return { records: v.records, rejected: false };
    case 'unreachable':
      if (open) {
        const why = o.lastTransportError ?? 'no answer';
        v.add(endAttempt(v.current, ERROR_TIMEOUT, `the device could not be reached in time (${why})`, now));
      }
      return { records: v.records, rejected: false };
    case 'rejected':
      if (open)
        v.add(markDelivered(v.current, now)).add(
          endAttempt(v.current, o.resultCode, o.resultDescription, now),
        );
      return { records: v.records, rejected: true };
  }
}

/** The push failed for good (not cancelled): the attempt ends as a timeout, with the cause. */
export function applyDeliveryFailure(rec: OperationRecord, cause: string, now: number): OperationRecord[] {
  const v = new Versions(rec);
  v.add(recordTransportErrors(v.current, v.current.attempts.at(-1)?.transportErrors ?? 0, cause, now));
  v.add(endAttempt(v.current, ERROR_TIMEOUT, `the device could not be reached in time: ${cause}`, now));
  return v.records;
}

/** What ended the wait for the attempt's answer, besides the answer itself. */
export interface AttemptEnd {
  /** The device refused the push (4xx). */
  readonly rejected: boolean;
  readonly cancelBy: string | undefined;
  /** The operation's history is as long as it may grow. */
  readonly historyFull: boolean;
}

/**
 * After the attempt's answer, its deadline, a cancel or a full history: how the attempt closes, and whether the
 * operation finishes or waits for another attempt.
 */
export function afterAttempt(rec: OperationRecord, end: AttemptEnd, now: number): FlowStep<'end' | 'retry'> {
  const v = new Versions(rec);
  if (end.historyFull && attemptOpen(v.current)) {
    // A device that never stops sending partial responses would otherwise exhaust the history.
    v.add(
      endAttempt(
        v.current,
        'ERROR_PROCESSING',
        'the device sent more responses than one operation can hold',
        now,
      ),
    );
    v.add(finishWithResult(v.current, now));
    return { records: v.records, next: 'end' };
  }
  if (end.cancelBy !== undefined && !isFinal(v.current.status) && attemptOpen(v.current)) {
    v.add(cancel(v.current, end.cancelBy, now));
    return { records: v.records, next: 'end' };
  }
  if (attemptOpen(v.current)) {
    v.add(
      endAttempt(v.current, ERROR_TIMEOUT, `no final response within ${v.current.limits.timeoutMs} ms`, now),
    );
  }
  if (end.rejected || attemptVerdict(v.current) === 'finish') {
    v.add(finishWithResult(v.current, now));
    return { records: v.records, next: 'end' };
  }
  // Another attempt: pending operations go back to the twin's queue for the next poll.
  v.add(awaitNextAttempt(v.current, now));
  return { records: v.records, next: 'retry' };
}

/** A device response that came while the twin was still pushing the operation itself. */
export interface EarlyResponse {
  readonly response: DeviceResponse;
  readonly receivedAt: number;
}

/** Where the twin's own first push of an operation left it. */
export interface FirstPush {
  /** The record's versions after the push, oldest first. */
  readonly records: readonly OperationRecord[];
  /** The device refused it (4xx). */
  readonly rejected: boolean;
  /**
   * ended: final, nothing more to do · continue: the operation's workflow goes on from the push (waits for the
   * answer, retries) · retryPush: the device could not be reached; the workflow delivers it from the start.
   */
  readonly next: 'ended' | 'continue' | 'retryPush';
}

/**
 * What the twin's first push answers: the device's outcome and the time its records took from it. Histories
 * recorded before carry the push's latest record version instead of the time (`pushed`).
 */
export type FirstPushResult =
  | { readonly outcome: DeliveryOutcome; readonly at: number }
  | { readonly outcome: DeliveryOutcome; readonly pushed: FirstPush };

/** The records a first push stored, worked out again from its result (or read from an older one). */
export function firstPushOf(first: OperationRecord, result: FirstPushResult): FirstPush {
  return 'pushed' in result ? result.pushed : afterFirstPush(first, result.outcome, [], result.at);
}

/**
 * The twin pushed an operation whose turn came at once (one try, within a short budget). A device that answered
 * for good ends it here: the common synchronous case, one workflow task. Anything else goes on in the
 * operation's workflow, which picks up from the records answered here.
 */
export function afterFirstPush(
  first: OperationRecord,
  outcome: DeliveryOutcome,
  early: readonly EarlyResponse[],
  now: number,
): FirstPush {
  if (outcome.kind === 'unreachable') return { records: [], rejected: false, next: 'retryPush' };
  const v = new Versions(first);
  v.add(startAttempt(v.current, now));
  const applied = applyDeliveryOutcome(v.current, outcome, now);
  for (const r of applied.records) v.add(r);
  for (const e of early) v.add(applyResponse(v.current, e.response, e.receivedAt).record);
  if (!applied.rejected && attemptOpen(v.current))
    return { records: v.records, rejected: false, next: 'continue' };
  const closed = afterAttempt(
    v.current,
    { rejected: applied.rejected, cancelBy: undefined, historyFull: false },
    now,
  );
  if (closed.next === 'end') {
    for (const r of closed.records) v.add(r);
    return { records: v.records, rejected: applied.rejected, next: 'ended' };
  }
  return { records: v.records, rejected: applied.rejected, next: 'continue' };
}
