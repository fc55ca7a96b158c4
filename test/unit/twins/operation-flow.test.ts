// Covers the operation workflow's pure decisions: readiness, hand-over, the turn, delivery outcomes and failures,
// and how an attempt closes (finish, retry, cancel, timeout, full history), with every intermediate record.
import {
  type DeliveryOutcome,
  afterAttempt,
  afterFirstPush,
  afterWaitingForTurn,
  applyDeliveryFailure,
  applyDeliveryOutcome,
  attemptDeadline,
  readyToAttempt,
  startHandedOverAttempt,
} from '../../../twins/operation-flow';
import {
  type OperationRecord,
  type OperationRequest,
  ERROR_TIMEOUT,
  attemptOpen,
  createOperationRecord,
  endAttempt,
  finishWithResult,
  markDelivered,
  startAttempt,
} from '../../../twins/operations';

const T0 = 1_700_000_000_000;

const request = (overrides: Partial<OperationRequest> = {}): OperationRequest => ({
  id: 'op-1',
  org: 'acme',
  deviceId: 'dev-1',
  twinType: 'generic',
  name: 'REBOOT_EQUIPMENT',
  parameters: {},
  delivery: 'push',
  operationUrl: 'http://device.test/operations',
  requestedBy: 'key:k1',
  createdAt: T0,
  timeoutMs: 60_000,
  ttlMs: 3_600_000,
  retries: 1,
  retriesDelayMs: 1_000,
  retryResultList: ['ERROR_PROCESSING', ERROR_TIMEOUT],
  ...overrides,
});

const queued = (overrides: Partial<OperationRequest> = {}) => createOperationRecord(request(overrides));
/** A pushed operation whose attempt started at T0 + 10 and is not delivered yet. */
const attempting = (overrides: Partial<OperationRequest> = {}) => startAttempt(queued(overrides), T0 + 10);
const statuses = (records: readonly OperationRecord[]) => records.map((r) => r.status);
const last = (records: readonly OperationRecord[]) => records.at(-1)!;
const outcome = (o: Partial<DeliveryOutcome> & Pick<DeliveryOutcome, 'kind'>): DeliveryOutcome =>
  ({ transportErrors: 0, ...o }) as DeliveryOutcome;

describe('readyToAttempt', () => {
  it('lets a push go on its turn, a pending operation on a hand-over, and either on a cancel', () => {
    const base = { turn: false, handedOver: false, cancelBy: undefined };
    expect(readyToAttempt({ ...base, delivery: 'push' })).toBe(false);
    expect(readyToAttempt({ ...base, delivery: 'push', turn: true })).toBe(true);
    expect(readyToAttempt({ ...base, delivery: 'push', handedOver: true })).toBe(false);
    expect(readyToAttempt({ ...base, delivery: 'pending', turn: true })).toBe(false);
    expect(readyToAttempt({ ...base, delivery: 'pending', handedOver: true })).toBe(true);
    expect(readyToAttempt({ ...base, delivery: 'pending', cancelBy: 'key:k2' })).toBe(true);
  });
});

describe('startHandedOverAttempt', () => {
  it('starts and delivers the attempt in one version', () => {
    const records = startHandedOverAttempt(queued({ delivery: 'pending' }), undefined, T0 + 5);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ status: 'DELIVERED', deliveredAt: T0 + 5 });
    expect(records[0]!.attempts).toEqual([
      { attempt: 1, startedAt: T0 + 5, deliveredAt: T0 + 5, transportErrors: 0 },
    ]);
  });

  it('changes nothing while being cancelled, with an attempt open, or once final', () => {
    const pending = queued({ delivery: 'pending' });
    expect(startHandedOverAttempt(pending, 'key:k2', T0 + 5)).toEqual([]);
    expect(startHandedOverAttempt(startAttempt(pending, T0 + 1), undefined, T0 + 5)).toEqual([]);
    const done = finishWithResult(
      endAttempt(startAttempt(pending, T0 + 1), 'SUCCESSFUL', null, T0 + 2),
      T0 + 3,
    );
    expect(startHandedOverAttempt(done, undefined, T0 + 5)).toEqual([]);
  });
});

describe('afterWaitingForTurn', () => {
  it('cancels first, even when the turn came too', () => {
    const step = afterWaitingForTurn(queued(), { came: true, cancelBy: 'key:k2' }, T0 + 5);
    expect(step.next).toBe('end');
    expect(statuses(step.records)).toEqual(['CANCELLED']);
    expect(step.records[0]).toMatchObject({ cancelledBy: 'key:k2', resultCode: 'CANCELLED' });
  });

  it('expires when the time to live ran out', () => {
    const step = afterWaitingForTurn(queued(), { came: false, cancelBy: undefined }, T0 + 5);
    expect(step).toMatchObject({ next: 'end', records: [{ status: 'EXPIRED', resultCode: 'EXPIRED' }] });
  });

  it('starts a push attempt, and keeps the attempt a hand-over already started', () => {
    const push = afterWaitingForTurn(queued(), { came: true, cancelBy: undefined }, T0 + 5);
    expect(push.next).toBe('attempt');
    expect(push.records).toHaveLength(1);
    expect(push.records[0]!.attempts).toEqual([{ attempt: 1, startedAt: T0 + 5, transportErrors: 0 }]);
    const handedOver = startHandedOverAttempt(queued({ delivery: 'pending' }), undefined, T0 + 1)[0]!;
    expect(afterWaitingForTurn(handedOver, { came: true, cancelBy: undefined }, T0 + 5)).toEqual({
      next: 'attempt',
      records: [],
    });
  });
});

describe('attemptDeadline', () => {
  it("is the attempt's start plus the operation's timeout", () => {
    expect(attemptDeadline(attempting(), T0 + 99)).toBe(T0 + 10 + 60_000);
    expect(attemptDeadline(queued(), T0 + 99)).toBe(T0 + 99 + 60_000);
  });
});

describe('applyDeliveryOutcome', () => {
  it('marks a final answer delivered, then applies its response (two versions)', () => {
    const o = outcome({ kind: 'final', response: { resultCode: 'SUCCESSFUL', steps: [] } });
    const { records, rejected } = applyDeliveryOutcome(attempting(), o, T0 + 20);
    expect(rejected).toBe(false);
    expect(statuses(records)).toEqual(['DELIVERED', 'DELIVERED']);
    expect(last(records)).toMatchObject({ resultCode: 'SUCCESSFUL', deliveredAt: T0 + 20 });
    expect(attemptOpen(last(records))).toBe(false);
  });

  it('marks an accepted push delivered; a first partial response makes it IN_PROGRESS', () => {
    expect(
      statuses(applyDeliveryOutcome(attempting(), outcome({ kind: 'accepted' }), T0 + 20).records),
    ).toEqual(['DELIVERED']);
    const partial = outcome({ kind: 'accepted', response: { steps: [{ name: 'S', result: 'SUCCESSFUL' }] } });
    const { records } = applyDeliveryOutcome(attempting(), partial, T0 + 20);
    expect(statuses(records)).toEqual(['DELIVERED', 'IN_PROGRESS']);
    expect(attemptOpen(last(records))).toBe(true);
  });

  it('records transport errors first, as their own version', () => {
    const o = outcome({ kind: 'accepted', transportErrors: 2, lastTransportError: 'ECONNRESET' });
    const { records } = applyDeliveryOutcome(attempting(), o, T0 + 20);
    expect(records).toHaveLength(2);
    expect(records[0]!.attempts[0]).toMatchObject({ transportErrors: 2, lastTransportError: 'ECONNRESET' });
    expect(records[0]!.status).toBe('QUEUED');
    const unnamed = applyDeliveryOutcome(
      attempting(),
      outcome({ kind: 'unreachable', transportErrors: 1 }),
      T0,
    );
    expect(unnamed.records[0]!.attempts[0]!.lastTransportError).toBe('transport failure');
  });

  it('ends an unreachable attempt as a timeout, naming the last error', () => {
    const o = outcome({ kind: 'unreachable', transportErrors: 3, lastTransportError: 'HTTP 503' });
    const { records, rejected } = applyDeliveryOutcome(attempting(), o, T0 + 20);
    expect(rejected).toBe(false);
    expect(last(records)).toMatchObject({
      resultCode: ERROR_TIMEOUT,
      resultDescription: 'the device could not be reached in time (HTTP 503)',
    });
    const quiet = applyDeliveryOutcome(attempting(), outcome({ kind: 'unreachable' }), T0 + 20);
    expect(last(quiet.records).resultDescription).toBe('the device could not be reached in time (no answer)');
  });

  it('marks a rejected push delivered and ends its attempt with the refusal; rejected ends the operation', () => {
    const o = outcome({
      kind: 'rejected',
      httpStatus: 400,
      resultCode: 'ERROR_IN_PARAM',
      resultDescription: 'bad',
    });
    const { records, rejected } = applyDeliveryOutcome(attempting(), o, T0 + 20);
    expect(rejected).toBe(true);
    expect(statuses(records)).toEqual(['DELIVERED', 'DELIVERED']);
    expect(last(records)).toMatchObject({ resultCode: 'ERROR_IN_PARAM', resultDescription: 'bad' });
  });

  it('leaves an attempt the device already closed alone (only transport errors are recorded)', () => {
    const closed = endAttempt(markDelivered(attempting(), T0 + 11), 'SUCCESSFUL', null, T0 + 12);
    const final = outcome({ kind: 'final', response: { resultCode: 'SUCCESSFUL' } });
    expect(applyDeliveryOutcome(closed, final, T0 + 20).records).toEqual([]);
    const rejected = outcome({ kind: 'rejected', httpStatus: 409, resultCode: 'X', resultDescription: 'x' });
    expect(applyDeliveryOutcome(closed, rejected, T0 + 20)).toEqual({ records: [], rejected: true });
    const withErrors = applyDeliveryOutcome(
      closed,
      outcome({ kind: 'unreachable', transportErrors: 1 }),
      T0 + 20,
    );
    expect(withErrors.records).toHaveLength(1);
    expect(last(withErrors.records).resultCode).toBe('SUCCESSFUL');
  });
});

describe('applyDeliveryFailure', () => {
  it('keeps the count, records the cause and ends the attempt as a timeout', () => {
    const records = applyDeliveryFailure(attempting(), 'worker lost', T0 + 30);
    expect(records).toHaveLength(2);
    expect(records[0]!.attempts[0]).toMatchObject({ transportErrors: 0, lastTransportError: 'worker lost' });
    expect(last(records)).toMatchObject({
      resultCode: ERROR_TIMEOUT,
      resultDescription: 'the device could not be reached in time: worker lost',
    });
    expect(attemptOpen(last(records))).toBe(false);
  });
});

describe('afterAttempt', () => {
  const answered = (code: string, overrides: Partial<OperationRequest> = {}) =>
    endAttempt(markDelivered(attempting(overrides), T0 + 11), code, null, T0 + 12);
  const quiet = { rejected: false, cancelBy: undefined, historyFull: false };

  it('finishes with the answer when the device succeeded', () => {
    const step = afterAttempt(answered('SUCCESSFUL'), quiet, T0 + 20);
    expect(step.next).toBe('end');
    expect(statuses(step.records)).toEqual(['SUCCESSFUL']);
    expect(last(step.records).finishedAt).toBe(T0 + 20);
  });

  it('times out an attempt still open at its deadline, then retries while retries remain', () => {
    const step = afterAttempt(markDelivered(attempting(), T0 + 11), quiet, T0 + 60_010);
    expect(step.next).toBe('retry');
    expect(step.records).toHaveLength(2);
    expect(step.records[0]).toMatchObject({
      resultCode: ERROR_TIMEOUT,
      resultDescription: 'no final response within 60000 ms',
    });
    expect(step.records[1]).toMatchObject({ status: 'QUEUED', resultCode: null });
    expect(afterAttempt(step.records[1]!, quiet, T0).records).toEqual([
      finishWithResult(step.records[1]!, T0),
    ]);
  });

  it('puts a pending operation back to WAITING_FOR_CONNECTION for another attempt', () => {
    const step = afterAttempt(answered('ERROR_PROCESSING', { delivery: 'pending' }), quiet, T0 + 20);
    expect(step).toMatchObject({ next: 'retry', records: [{ status: 'WAITING_FOR_CONNECTION' }] });
  });

  it('finishes when retries are used up or the code is not retried', () => {
    expect(afterAttempt(answered('ERROR_PROCESSING', { retries: 0 }), quiet, T0 + 20)).toMatchObject({
      next: 'end',
      records: [{ status: 'FAILED' }],
    });
    expect(afterAttempt(answered('NOT_SUPPORTED'), quiet, T0 + 20)).toMatchObject({
      next: 'end',
      records: [{ status: 'FAILED', resultCode: 'NOT_SUPPORTED' }],
    });
  });

  it('finishes a rejected push even when its code would be retried', () => {
    const step = afterAttempt(answered('ERROR_PROCESSING'), { ...quiet, rejected: true }, T0 + 20);
    expect(step).toMatchObject({
      next: 'end',
      records: [{ status: 'FAILED', resultCode: 'ERROR_PROCESSING' }],
    });
  });

  it('cancels an open attempt, closing it as CANCELLED', () => {
    const step = afterAttempt(
      markDelivered(attempting(), T0 + 11),
      { ...quiet, cancelBy: 'key:k2' },
      T0 + 20,
    );
    expect(step.next).toBe('end');
    expect(statuses(step.records)).toEqual(['CANCELLED']);
    expect(last(step.records).attempts[0]).toMatchObject({ endedAt: T0 + 20, resultCode: 'CANCELLED' });
  });

  it('does not cancel an attempt the device already answered: its answer stands', () => {
    const step = afterAttempt(answered('SUCCESSFUL'), { ...quiet, cancelBy: 'key:k2' }, T0 + 20);
    expect(statuses(step.records)).toEqual(['SUCCESSFUL']);
  });

  it('ends an open attempt with ERROR_PROCESSING when the history is full, before any cancel', () => {
    const open = markDelivered(attempting(), T0 + 11);
    const step = afterAttempt(open, { rejected: false, cancelBy: 'key:k2', historyFull: true }, T0 + 20);
    expect(step.next).toBe('end');
    expect(step.records).toHaveLength(2);
    expect(step.records[0]).toMatchObject({
      resultCode: 'ERROR_PROCESSING',
      resultDescription: 'the device sent more responses than one operation can hold',
    });
    expect(step.records[1]).toMatchObject({ status: 'FAILED', resultCode: 'ERROR_PROCESSING' });
  });

  it('gives every version a higher revision than the one before', () => {
    const step = afterAttempt(markDelivered(attempting(), T0 + 11), quiet, T0 + 60_010);
    const revs = step.records.map((r) => r.rev);
    expect(revs).toEqual([...revs].sort((a, b) => a - b));
    expect(new Set(revs).size).toBe(revs.length);
  });
});

describe('afterFirstPush (the twin pushes an operation whose turn came at once)', () => {
  const ok = (resultCode: string): DeliveryOutcome => ({
    kind: 'final',
    response: { resultCode, steps: [] },
    transportErrors: 0,
  });

  it('ends a synchronous success in the twin, with the attempt, the delivery and the final result', () => {
    const pushed = afterFirstPush(queued({ retries: 0 }), ok('SUCCESSFUL'), [], T0 + 5);
    expect(pushed.next).toBe('ended');
    expect(last(pushed.records).status).toBe('SUCCESSFUL');
    expect(last(pushed.records).attempts).toHaveLength(1);
    const revs = pushed.records.map((r) => r.rev);
    expect(revs).toEqual([...revs].sort((a, b) => a - b));
    expect(new Set(revs).size).toBe(revs.length);
  });

  it('leaves a result the operation retries to its workflow, before the attempt is closed', () => {
    const pushed = afterFirstPush(queued({ retries: 1 }), ok('ERROR_PROCESSING'), [], T0 + 5);
    expect(pushed.next).toBe('continue');
    expect(attemptOpen(last(pushed.records))).toBe(false);
    // The workflow closes the attempt and schedules the retry from here.
    expect(
      afterAttempt(last(pushed.records), { rejected: false, cancelBy: undefined, historyFull: false }, T0 + 6)
        .next,
    ).toBe('retry');
  });

  it('ends a refused push (4xx) with the device result code', () => {
    const rejected: DeliveryOutcome = {
      kind: 'rejected',
      httpStatus: 404,
      resultCode: 'NOT_SUPPORTED',
      resultDescription: 'no such operation',
      transportErrors: 0,
    };
    const pushed = afterFirstPush(queued({ retries: 3 }), rejected, [], T0 + 5);
    expect(pushed).toMatchObject({ next: 'ended', rejected: true });
    expect(last(pushed.records).resultCode).toBe('NOT_SUPPORTED');
  });

  it('hands an asynchronous device to the workflow with the attempt open, applying responses that came early', () => {
    const accepted: DeliveryOutcome = { kind: 'accepted', transportErrors: 0 };
    const partial = afterFirstPush(queued(), accepted, [], T0 + 5);
    expect(partial.next).toBe('continue');
    expect(attemptOpen(last(partial.records))).toBe(true);
    const early = [{ response: { resultCode: 'SUCCESSFUL', steps: [] }, receivedAt: T0 + 4 }];
    const answered = afterFirstPush(queued({ retries: 0 }), accepted, early, T0 + 5);
    expect(answered.next).toBe('ended');
    expect(last(answered.records).status).toBe('SUCCESSFUL');
  });

  it('changes nothing when the device could not be reached: the workflow delivers it from the start', () => {
    const unreachable: DeliveryOutcome = {
      kind: 'unreachable',
      transportErrors: 1,
      lastTransportError: 'ECONNREFUSED',
    };
    expect(afterFirstPush(queued(), unreachable, [], T0 + 5)).toEqual({
      records: [],
      rejected: false,
      next: 'retryPush',
    });
  });
});
