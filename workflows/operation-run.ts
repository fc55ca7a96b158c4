// The operation workflow's state holder: the record, what the twin and the device said, and what the read model has.
import {
  condition,
  log,
  patched,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { type EarlyResponse, readyToAttempt, startHandedOverAttempt } from '../twins/operation-flow';
import {
  type DeviceResponse,
  type OperationRecord,
  type OperationRequest,
  applyResponse,
  attemptOpen,
  createOperationRecord,
  isFinal,
} from '../twins/operations';
import { TWINFLOW_STATUS } from './search-attributes';

/** One line for the Temporal Web UI: status, result, attempt and last step. */
export function describeOperation(rec: OperationRecord): string {
  const attempt =
    rec.attempts.length > 0 ? ` · attempt ${rec.attempts.length}/${rec.limits.retries + 1}` : '';
  const code = rec.resultCode ? ` · ${rec.resultCode}` : '';
  const last = rec.steps.at(-1);
  const step = last ? ` · last step ${last.name} ${last.result}` : '';
  return `${rec.name} on ${rec.deviceId} · ${rec.status}${code}${attempt}${step}`;
}

/**
 * A poll answers without waiting for the operation to hear of its hand-over, so the device's response may come
 * first: the operation holds it until the hand-over. Runs recorded before never saw that order.
 */
const HOLDS_EARLY_RESPONSES = 'operation-holds-early-responses';
/**
 * Patch: a response that comes in the same workflow task as its hand-over (after the hand-over, before the loop
 * opens the attempt) is held too. Without it the response met a record with no attempt open, was not applied,
 * and the operation stayed DELIVERED until its timeout.
 */
const HOLDS_UNTIL_ATTEMPT_OPENS = 'operation-holds-until-attempt-opens';
/**
 * Patch: a response that comes after the hand-over but before the loop takes its turn is held until it has. The
 * hand-over opens the attempt; a final response applied at once closed it, and the loop, finding no attempt open,
 * started a second one that waited for its timeout (the operation stayed DELIVERED).
 */
const HOLDS_UNTIL_TURN_TAKEN = 'operation-holds-until-turn-taken';

/**
 * The revision of the code that starts an operation run, passed in its input. From 2, a run takes the three
 * patches above as applied without asking `patched()` (each asked once records a marker and upserts
 * `TemporalChangeVersion`: two of each for a sleepy device's operation). It publishes the status a change
 * leaves, not each status the change went through, and not the one the twin started it with. Runs started
 * before (no revision) replay as recorded.
 */
export const OPERATION_RUN_REVISION = 2;

/** Built once per run inside the workflow function. */
export class OperationRun {
  record: OperationRecord;
  /** Push: the twin gave it a slot. */
  private turn: boolean;
  /** Pending: the device took it at a poll (cleared before another attempt). */
  handedOver = false;
  /** Pending: the loop has taken the hand-over's turn (cleared with handedOver). */
  turnTaken = false;
  /** Who asked the twin to cancel it; the first asker is kept. */
  cancelBy: string | undefined;
  /** The highest revision the read model has. */
  written: number;
  /** The loop is over: the writer stops once the read model is current. */
  finished = false;
  /** While a push is under way its outcome follows at once: the record waits for it rather than being written twice. */
  delivering = false;
  /** Responses that came before the operation knew it was delivered; applied once it knows. */
  private held: EarlyResponse[] = [];
  /** The twin's failed first try has been counted into an attempt. */
  private firstTryTaken = false;
  /** The status the search attribute holds (runs of revision 2 and later). */
  private published: string | undefined;

  constructor(
    readonly request: OperationRequest,
    startNow: boolean,
    recordWrittenRev: number,
    private readonly revision: number,
  ) {
    this.record = createOperationRecord(request);
    this.turn = startNow;
    this.written = recordWrittenRev;
    if (revision >= 2) this.published = workflowInfo().typedSearchAttributes.get(TWINFLOW_STATUS);
    setCurrentDetails(describeOperation(this.record));
  }

  /** Takes the record's next versions in order, and publishes the status they leave it in. */
  apply(records: readonly OperationRecord[]): void {
    for (const next of records) {
      if (next.status !== this.record.status && this.revision < 2)
        upsertSearchAttributes([{ key: TWINFLOW_STATUS, value: next.status }]);
      this.record = next;
      setCurrentDetails(describeOperation(this.record));
    }
    if (this.revision >= 2 && this.record.status !== this.published) {
      this.published = this.record.status;
      upsertSearchAttributes([{ key: TWINFLOW_STATUS, value: this.record.status }]);
    }
  }

  /** Whether a patch holds: always, for runs of revision 2 and later (see OPERATION_RUN_REVISION). */
  private applied(patch: string): boolean {
    return this.revision >= 2 || patched(patch);
  }

  reportResponse(early: { response: DeviceResponse; receivedAt: number }): void {
    if (this.mayBeOvertaken() && this.applied(HOLDS_EARLY_RESPONSES)) {
      this.held.push(early);
      return;
    }
    this.applyResponse(early);
  }

  /** A pending operation whose attempt is not open yet (its hand-over may be on its way, or just came). */
  private mayBeOvertaken(): boolean {
    if (this.request.delivery !== 'pending' || isFinal(this.record.status)) return false;
    if (this.handedOver && !this.turnTaken && this.applied(HOLDS_UNTIL_TURN_TAKEN)) return true;
    if (attemptOpen(this.record)) return false;
    return !this.handedOver || this.applied(HOLDS_UNTIL_ATTEMPT_OPENS);
  }

  /** The twin's failed first try, for the first push of this workflow only. */
  takeFirstTry<T>(firstTry: T | undefined): T | undefined {
    if (this.firstTryTaken) return undefined;
    this.firstTryTaken = true;
    return firstTry;
  }

  /** Takes responses that came before the workflow knew the device had the operation. */
  hold(responses: readonly EarlyResponse[]): void {
    this.held.push(...responses);
  }

  /** Applies held responses (after a hand-over or a push, or as late ones at the end). */
  applyHeld(): void {
    const held = this.held;
    this.held = [];
    for (const early of held) this.applyResponse(early);
  }

  private applyResponse({ response, receivedAt }: EarlyResponse): void {
    const applied = applyResponse(this.record, response, receivedAt);
    if (applied.outcome === 'late') {
      log.info('late operation response ignored', {
        status: this.record.status,
        resultCode: response.resultCode,
      });
    }
    this.apply([applied.record]);
  }

  proceed(): void {
    this.turn = true;
  }

  handOver(): void {
    this.handedOver = true;
    // Held responses wait for the loop: it must see the attempt open before they close it.
    this.apply(startHandedOverAttempt(this.record, this.cancelBy, Date.now()));
  }

  requestCancel({ by }: { by: string }): void {
    this.cancelBy ??= by;
  }

  readyToAttempt(): boolean {
    return readyToAttempt({
      delivery: this.request.delivery,
      turn: this.turn,
      handedOver: this.handedOver,
      cancelBy: this.cancelBy,
    });
  }

  /** Waits until fn holds or the time `until` (ms since epoch) passes; answers whether fn held. */
  async waitUntil(fn: () => boolean, until: number): Promise<boolean> {
    return fn() || (remaining(until) > 0 && (await condition(fn, remaining(until))));
  }
}

/** Time left until `until` (ms since epoch), never negative. */
export const remaining = (until: number): number => Math.max(0, until - Date.now());
