// Covers the pure operation record: creation, attempts, device responses, verdicts, expiry, cancellation, parameters.
import {
  type DeviceResponse,
  type OperationRecord,
  type OperationRequest,
  ERROR_TIMEOUT,
  chooseDelivery,
  MAX_STEPS,
  applyResponse,
  attemptOpen,
  attemptVerdict,
  awaitNextAttempt,
  cancel,
  createOperationRecord,
  endAttempt,
  expire,
  finishWithResult,
  markDelivered,
  normalizeParameters,
  requestEnvelope,
  startAttempt,
  statusForResult,
} from '../../../twins/operations';
import type { Result } from '../../../twins/types';

const T0 = 1_700_000_000_000;

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.value;
}

const request = (overrides: Partial<OperationRequest> = {}): OperationRequest => ({
  id: 'op-1',
  org: 'acme',
  deviceId: 'dev-1',
  twinType: 'generic',
  name: 'REBOOT_EQUIPMENT',
  parameters: { type: 'SOFTWARE' },
  delivery: 'push',
  operationUrl: 'http://device.test/operations',
  requestedBy: 'key:k1',
  createdAt: T0,
  timeoutMs: 60_000,
  ttlMs: 3_600_000,
  retries: 0,
  retriesDelayMs: 1_000,
  retryResultList: ['ERROR_PROCESSING', ERROR_TIMEOUT],
  ...overrides,
});

/** A record with one open, delivered attempt. */
const delivered = (overrides: Partial<OperationRequest> = {}): OperationRecord =>
  markDelivered(startAttempt(createOperationRecord(request(overrides)), T0 + 10), T0 + 20);

/** A record whose attempts all ended with `code` (one attempt per code). */
function endedWith(codes: string[], overrides: Partial<OperationRequest> = {}): OperationRecord {
  let rec = createOperationRecord(request(overrides));
  codes.forEach((code, i) => {
    const at = T0 + 100 * (i + 1);
    rec = endAttempt(markDelivered(startAttempt(rec, at), at + 1), code, null, at + 2);
    if (i < codes.length - 1) rec = awaitNextAttempt(rec, at + 3);
  });
  return rec;
}

/** Every field except the ones a change always moves. */
const withoutRevision = ({ rev: _rev, updatedAt: _updatedAt, ...rest }: OperationRecord) => rest;

describe('createOperationRecord', () => {
  it('starts a pushed operation QUEUED at rev 1 with no attempts, steps or result', () => {
    const rec = createOperationRecord(request());
    expect(rec).toEqual({
      id: 'op-1',
      org: 'acme',
      deviceId: 'dev-1',
      twinType: 'generic',
      name: 'REBOOT_EQUIPMENT',
      parameters: { type: 'SOFTWARE' },
      delivery: 'push',
      status: 'QUEUED',
      resultCode: null,
      resultDescription: null,
      steps: [],
      attempts: [],
      limits: {
        timeoutMs: 60_000,
        ttlMs: 3_600_000,
        retries: 0,
        retriesDelayMs: 1_000,
        retryResultList: ['ERROR_PROCESSING', ERROR_TIMEOUT],
      },
      requestedBy: 'key:k1',
      createdAt: T0,
      updatedAt: T0,
      expiresAt: T0 + 3_600_000,
      deliveredAt: null,
      finishedAt: null,
      lateResponses: 0,
      rev: 1,
    });
  });

  it('starts a pending operation WAITING_FOR_CONNECTION', () => {
    expect(createOperationRecord(request({ delivery: 'pending' })).status).toBe('WAITING_FOR_CONNECTION');
  });

  it('expires ttlMs after creation', () => {
    expect(createOperationRecord(request({ createdAt: T0 + 5, ttlMs: 250 })).expiresAt).toBe(T0 + 255);
  });

  it('keeps the push URL and platform key out of the record', () => {
    const rec = createOperationRecord(request({ platformKey: 'secret' }));
    expect(rec).not.toHaveProperty('platformKey');
    expect(rec).not.toHaveProperty('operationUrl');
  });
});

describe('startAttempt and markDelivered', () => {
  it('opens attempt 1 with no transport errors, leaving the status alone', () => {
    const rec = startAttempt(createOperationRecord(request()), T0 + 10);
    expect(rec.attempts).toEqual([{ attempt: 1, startedAt: T0 + 10, transportErrors: 0 }]);
    expect(rec.status).toBe('QUEUED');
    expect(attemptOpen(rec)).toBe(true);
    expect(rec).toMatchObject({ rev: 2, updatedAt: T0 + 10 });
  });

  it('numbers a later attempt after the ones before it', () => {
    const rec = startAttempt(endedWith(['ERROR_PROCESSING']), T0 + 500);
    expect(rec.attempts.map((a) => a.attempt)).toEqual([1, 2]);
    expect(rec.attempts[1]).toEqual({ attempt: 2, startedAt: T0 + 500, transportErrors: 0 });
  });

  it('marks the operation and the attempt DELIVERED at the given time', () => {
    const rec = markDelivered(startAttempt(createOperationRecord(request()), T0 + 10), T0 + 20);
    expect(rec.status).toBe('DELIVERED');
    expect(rec.deliveredAt).toBe(T0 + 20);
    expect(rec.attempts[0]).toMatchObject({ attempt: 1, deliveredAt: T0 + 20 });
    expect(attemptOpen(rec)).toBe(true);
  });

  it('keeps the first delivery time and an IN_PROGRESS status when delivered again', () => {
    const progressing = applyResponse(delivered(), { steps: [{ name: 'S', result: 'SUCCESSFUL' }] }, T0 + 30);
    const again = markDelivered(progressing.record, T0 + 40);
    expect(again.status).toBe('IN_PROGRESS');
    expect(again.deliveredAt).toBe(T0 + 20);
    expect(again.attempts[0]!.deliveredAt).toBe(T0 + 20);
  });

  it('leaves a final record as it is', () => {
    const done = finishWithResult(endedWith(['SUCCESSFUL']), T0 + 1_000);
    expect(markDelivered(done, T0 + 2_000)).toBe(done);
  });
});

describe('applyResponse', () => {
  it('moves to IN_PROGRESS on a partial response and tags its steps with the attempt and arrival time', () => {
    const response: DeviceResponse = {
      steps: [
        { name: 'BEGINUPDATE', result: 'SUCCESSFUL', timestamp: T0 + 25, description: 'started' },
        { name: 'DOWNLOADFILE', result: 'SUCCESSFUL', response: { bytes: 10 } },
      ],
    };
    const { record, outcome } = applyResponse(delivered(), response, T0 + 30);
    expect(outcome).toBe('progress');
    expect(record.status).toBe('IN_PROGRESS');
    expect(record.resultCode).toBeNull();
    expect(record.steps).toEqual([
      {
        name: 'BEGINUPDATE',
        result: 'SUCCESSFUL',
        description: 'started',
        timestamp: T0 + 25,
        attempt: 1,
        receivedAt: T0 + 30,
      },
      // A step without a timestamp gets the arrival time.
      {
        name: 'DOWNLOADFILE',
        result: 'SUCCESSFUL',
        timestamp: T0 + 30,
        untimed: true,
        response: { bytes: 10 },
        attempt: 1,
        receivedAt: T0 + 30,
      },
    ]);
    expect(attemptOpen(record)).toBe(true);
  });

  it('tags steps of a second attempt with attempt 2', () => {
    const second = startAttempt(endedWith(['ERROR_PROCESSING'], { retries: 1 }), T0 + 500);
    const { record } = applyResponse(
      second,
      { steps: [{ name: 'S', result: 'ERROR', timestamp: 1 }] },
      T0 + 600,
    );
    expect(record.steps.map((s) => s.attempt)).toEqual([2]);
  });

  it('keeps a repeated step (same name, result and timestamp) once', () => {
    const step = { name: 'DOWNLOADFILE', result: 'SUCCESSFUL', timestamp: T0 + 25 };
    const first = applyResponse(delivered(), { steps: [step, step] }, T0 + 30).record;
    const second = applyResponse(first, { steps: [step] }, T0 + 40).record;
    expect(second.steps).toHaveLength(1);
    expect(second.steps[0]).toMatchObject({ ...step, receivedAt: T0 + 30 });
  });

  it('keeps steps that differ in result or timestamp', () => {
    const steps = [
      { name: 'S', result: 'SUCCESSFUL', timestamp: T0 + 1 },
      { name: 'S', result: 'ERROR', timestamp: T0 + 1 },
      { name: 'S', result: 'SUCCESSFUL', timestamp: T0 + 2 },
    ];
    expect(applyResponse(delivered(), { steps }, T0 + 30).record.steps).toHaveLength(3);
  });

  it('ends the attempt on a final response, with its result code, description and steps', () => {
    const response: DeviceResponse = {
      resultCode: 'SUCCESSFUL',
      resultDescription: 'done',
      steps: [{ name: 'ENDUPDATE', result: 'SUCCESSFUL', timestamp: T0 + 45 }],
    };
    const { record, outcome } = applyResponse(delivered(), response, T0 + 50);
    expect(outcome).toBe('attemptEnded');
    expect(record).toMatchObject({ resultCode: 'SUCCESSFUL', resultDescription: 'done', finishedAt: null });
    expect(record.attempts).toEqual([
      {
        attempt: 1,
        startedAt: T0 + 10,
        deliveredAt: T0 + 20,
        endedAt: T0 + 50,
        resultCode: 'SUCCESSFUL',
        resultDescription: 'done',
        transportErrors: 0,
      },
    ]);
    expect(record.steps.map((s) => s.name)).toEqual(['ENDUPDATE']);
    expect(attemptOpen(record)).toBe(false);
  });

  it('counts a final response that arrives before the push answer as the delivery', () => {
    const started = startAttempt(createOperationRecord(request()), T0 + 10);
    const { record } = applyResponse(started, { resultCode: 'SUCCESSFUL' }, T0 + 15);
    expect(record.deliveredAt).toBe(T0 + 15);
    expect(record.attempts[0]!.deliveredAt).toBe(T0 + 15);
  });

  it('counts a response after the final one as late and changes nothing else but rev and updatedAt', () => {
    const ended = applyResponse(delivered(), { resultCode: 'ERROR_PROCESSING' }, T0 + 50).record;
    const { record, outcome } = applyResponse(
      ended,
      { resultCode: 'SUCCESSFUL', steps: [{ name: 'S', result: 'SUCCESSFUL' }] },
      T0 + 60,
    );
    expect(outcome).toBe('late');
    expect(record.lateResponses).toBe(1);
    expect(record.rev).toBe(ended.rev + 1);
    expect(record.updatedAt).toBe(T0 + 60);
    expect(withoutRevision(record)).toEqual({ ...withoutRevision(ended), lateResponses: 1 });
  });

  it('counts a response to a finished operation as late', () => {
    const done = finishWithResult(endedWith(['SUCCESSFUL']), T0 + 1_000);
    const { record, outcome } = applyResponse(
      done,
      { steps: [{ name: 'S', result: 'SUCCESSFUL' }] },
      T0 + 2_000,
    );
    expect(outcome).toBe('late');
    expect(withoutRevision(record)).toEqual({ ...withoutRevision(done), lateResponses: 1 });
  });

  it('counts a response with no open attempt (before the first, or between attempts) as late', () => {
    const fresh = createOperationRecord(request());
    const before = applyResponse(fresh, { resultCode: 'SUCCESSFUL' }, T0 + 5);
    expect(before.outcome).toBe('late');
    expect(withoutRevision(before.record)).toEqual({ ...withoutRevision(fresh), lateResponses: 1 });

    const between = awaitNextAttempt(endedWith(['ERROR_PROCESSING'], { retries: 1 }), T0 + 800);
    const late = applyResponse(between, { steps: [{ name: 'S', result: 'ERROR' }] }, T0 + 900);
    expect(late.outcome).toBe('late');
    expect(late.record.status).toBe('QUEUED');
    expect(late.record.lateResponses).toBe(1);
  });
});

describe('attemptVerdict', () => {
  it('finishes after a SUCCESSFUL attempt even with retries left', () => {
    expect(attemptVerdict(endedWith(['SUCCESSFUL'], { retries: 3 }))).toBe('finish');
  });

  it('retries a listed result code while retries remain', () => {
    expect(attemptVerdict(endedWith(['ERROR_PROCESSING'], { retries: 1 }))).toBe('retry');
    expect(attemptVerdict(endedWith([ERROR_TIMEOUT, ERROR_TIMEOUT], { retries: 2 }))).toBe('retry');
  });

  it('finishes on a listed result code once the retries are used up', () => {
    expect(attemptVerdict(endedWith(['ERROR_PROCESSING'], { retries: 0 }))).toBe('finish');
    expect(attemptVerdict(endedWith(['ERROR_PROCESSING', 'ERROR_PROCESSING'], { retries: 1 }))).toBe(
      'finish',
    );
  });

  it('finishes on a result code that is not in retryResultList', () => {
    expect(attemptVerdict(endedWith(['NOT_SUPPORTED'], { retries: 5 }))).toBe('finish');
    expect(
      attemptVerdict(endedWith(['ERROR_PROCESSING'], { retries: 5, retryResultList: ['ERROR_IN_PARAM'] })),
    ).toBe('finish');
  });
});

describe('statusForResult', () => {
  it.each([
    ['SUCCESSFUL', 'SUCCESSFUL'],
    [ERROR_TIMEOUT, 'TIMEOUT'],
    ['ERROR_PROCESSING', 'FAILED'],
    ['NOT_SUPPORTED', 'FAILED'],
    ['SOMETHING_ELSE', 'FAILED'],
  ])('gives %s the status %s', (code, status) => {
    expect(statusForResult(code)).toBe(status);
  });
});

describe('finishWithResult', () => {
  it('ends the operation with the status of the last result code', () => {
    const done = finishWithResult(endedWith(['SUCCESSFUL']), T0 + 1_000);
    expect(done).toMatchObject({ status: 'SUCCESSFUL', resultCode: 'SUCCESSFUL', finishedAt: T0 + 1_000 });
    expect(finishWithResult(endedWith([ERROR_TIMEOUT]), T0 + 1_000).status).toBe('TIMEOUT');
    expect(finishWithResult(endedWith(['ERROR_IN_PARAM']), T0 + 1_000).status).toBe('FAILED');
  });
});

describe('awaitNextAttempt', () => {
  it('puts a pushed operation back to QUEUED and clears the result', () => {
    const ended = endAttempt(delivered(), 'ERROR_PROCESSING', 'busy', T0 + 50);
    const next = awaitNextAttempt(ended, T0 + 60);
    expect(next).toMatchObject({ status: 'QUEUED', resultCode: null, resultDescription: null });
    // The attempt keeps its own result.
    expect(next.attempts[0]).toMatchObject({ resultCode: 'ERROR_PROCESSING', resultDescription: 'busy' });
  });

  it('puts a pending operation back to WAITING_FOR_CONNECTION', () => {
    const ended = endAttempt(delivered({ delivery: 'pending' }), 'ERROR_PROCESSING', null, T0 + 50);
    expect(awaitNextAttempt(ended, T0 + 60)).toMatchObject({
      status: 'WAITING_FOR_CONNECTION',
      resultCode: null,
    });
  });
});

describe('expire', () => {
  it('ends an undelivered operation as EXPIRED', () => {
    const rec = expire(createOperationRecord(request({ delivery: 'pending' })), T0 + 3_600_000);
    expect(rec).toMatchObject({ status: 'EXPIRED', resultCode: 'EXPIRED', finishedAt: T0 + 3_600_000 });
    expect(rec.resultDescription).toEqual(expect.any(String));
  });

  it('leaves a final record as it is', () => {
    const done = finishWithResult(endedWith(['SUCCESSFUL']), T0 + 1_000);
    expect(expire(done, T0 + 2_000)).toBe(done);
  });
});

describe('cancel', () => {
  it('ends a queued operation as CANCELLED, saying who cancelled it', () => {
    const rec = cancel(createOperationRecord(request()), 'key:k2', T0 + 5);
    expect(rec).toMatchObject({
      status: 'CANCELLED',
      resultCode: 'CANCELLED',
      cancelledBy: 'key:k2',
      finishedAt: T0 + 5,
      attempts: [],
    });
    expect(rec.resultDescription).toContain('key:k2');
  });

  it('closes an open attempt with CANCELLED', () => {
    const rec = cancel(delivered(), 'decommission', T0 + 40);
    expect(rec.attempts).toEqual([
      {
        attempt: 1,
        startedAt: T0 + 10,
        deliveredAt: T0 + 20,
        endedAt: T0 + 40,
        resultCode: 'CANCELLED',
        transportErrors: 0,
      },
    ]);
    expect(attemptOpen(rec)).toBe(false);
    expect(rec.cancelledBy).toBe('decommission');
  });

  it('leaves an ended attempt alone', () => {
    const ended = endedWith(['ERROR_PROCESSING'], { retries: 1 });
    const rec = cancel(ended, 'key:k2', T0 + 900);
    expect(rec.attempts).toEqual(ended.attempts);
    expect(rec.status).toBe('CANCELLED');
  });

  it('leaves a final record as it is', () => {
    const done = finishWithResult(endedWith(['SUCCESSFUL']), T0 + 1_000);
    expect(cancel(done, 'key:k2', T0 + 2_000)).toBe(done);
    const expired = expire(createOperationRecord(request()), T0 + 1_000);
    expect(cancel(expired, 'key:k2', T0 + 2_000)).toBe(expired);
  });
});

describe('rev', () => {
  it('grows strictly with every change of a whole life with a retry', () => {
    const revs: number[] = [];
    let rec = createOperationRecord(request({ retries: 1 }));
    const step = (next: OperationRecord) => {
      rec = next;
      revs.push(rec.rev);
    };
    revs.push(rec.rev);
    step(startAttempt(rec, T0 + 1));
    step(markDelivered(rec, T0 + 2));
    step(applyResponse(rec, { steps: [{ name: 'S', result: 'SUCCESSFUL' }] }, T0 + 3).record);
    step(applyResponse(rec, { resultCode: 'ERROR_PROCESSING' }, T0 + 4).record);
    step(awaitNextAttempt(rec, T0 + 5));
    step(applyResponse(rec, { resultCode: 'SUCCESSFUL' }, T0 + 6).record);
    step(startAttempt(rec, T0 + 7));
    step(endAttempt(rec, ERROR_TIMEOUT, 'slow', T0 + 8));
    step(finishWithResult(rec, T0 + 9));
    for (let i = 1; i < revs.length; i++) expect(revs[i]).toBeGreaterThan(revs[i - 1]!);
    expect(rec.status).toBe('TIMEOUT');
  });

  it('grows on expire and cancel', () => {
    const fresh = createOperationRecord(request());
    expect(expire(fresh, T0 + 1).rev).toBeGreaterThan(fresh.rev);
    const open = delivered();
    expect(cancel(open, 'x', T0 + 30).rev).toBeGreaterThan(open.rev);
  });
});

describe('normalizeParameters', () => {
  it('passes an object through', () => {
    expect(unwrap(normalizeParameters({ a: 1, b: { c: [2] } }))).toEqual({ a: 1, b: { c: [2] } });
  });

  it.each([undefined, null])('answers an empty object for %p', (raw) => {
    expect(unwrap(normalizeParameters(raw))).toEqual({});
  });

  it('turns the legacy list form into an object', () => {
    expect(unwrap(normalizeParameters([{ name: 'type', value: { string: 'HARDWARE' } }]))).toEqual({
      type: 'HARDWARE',
    });
  });

  it('unwraps every typed value and keeps plain values as they are', () => {
    const raw = [
      { name: 's', value: { string: 'x' } },
      { name: 'n', value: { number: 5 } },
      { name: 'b', value: { boolean: false } },
      { name: 'o', value: { object: { k: 'v' } } },
      { name: 'a', value: { array: [1, 2] } },
      { name: 'plain', value: 7 },
      { name: 'text', value: 'y' },
      // Two keys: not a typed wrapper, kept whole.
      { name: 'both', value: { string: 'x', number: 1 } },
    ];
    expect(unwrap(normalizeParameters(raw))).toEqual({
      s: 'x',
      n: 5,
      b: false,
      o: { k: 'v' },
      a: [1, 2],
      plain: 7,
      text: 'y',
      both: { string: 'x', number: 1 },
    });
  });

  it.each([
    [
      'a duplicate name',
      [
        { name: 'a', value: 1 },
        { name: 'a', value: 2 },
      ],
      /twice/,
    ],
    ['the reserved name __proto__', [{ name: '__proto__', value: { string: 'x' } }], /reserved/],
    ['the reserved name constructor', [{ name: 'constructor', value: 1 }], /reserved/],
    ['an item without a name', [{ value: 1 }], /parameters\[0\]/],
    [
      'an item with an empty name',
      [
        { name: 'a', value: 1 },
        { name: '', value: 1 },
      ],
      /parameters\[1\]/,
    ],
    ['an item that is not an object', ['a'], /parameters\[0\]/],
    ['a string', 'a=1', /object or a list/],
    ['a number', 42, /object or a list/],
    ['a boolean', true, /object or a list/],
  ])('rejects %s with INVALID_ARGUMENT', (_what, raw, message) => {
    const result = normalizeParameters(raw);
    expect(result).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
    if (!result.ok) expect(result.message).toMatch(message);
  });
});

describe('requestEnvelope', () => {
  it('wraps the request as OpenGate v80 operation.request, timestamped now', () => {
    const req = request({ parameters: { type: 'HARDWARE' } });
    expect(requestEnvelope(req, T0 + 99)).toEqual({
      operation: {
        request: {
          id: 'op-1',
          deviceId: 'dev-1',
          name: 'REBOOT_EQUIPMENT',
          timestamp: T0 + 99,
          parameters: { type: 'HARDWARE' },
        },
      },
    });
  });
});

describe('step limit', () => {
  it('keeps at most MAX_STEPS steps, dropping later ones, while the operation still ends normally', () => {
    let rec = delivered();
    for (let i = 0; i < 3; i++) {
      const steps = Array.from({ length: 400 }, (_, j) => ({
        name: `S${i}_${j}`,
        result: 'SUCCESSFUL',
        timestamp: T0 + i * 1_000 + j,
      }));
      rec = applyResponse(rec, { steps }, T0 + 100 + i).record;
    }
    expect(rec.steps).toHaveLength(MAX_STEPS);
    expect(rec.steps.at(-1)?.name).toBe(`S2_${MAX_STEPS - 801}`);
    const ended = applyResponse(
      rec,
      { resultCode: 'SUCCESSFUL', steps: [{ name: 'LAST', result: 'SUCCESSFUL' }] },
      T0 + 200,
    );
    expect(ended.outcome).toBe('attemptEnded');
    expect(ended.record.steps).toHaveLength(MAX_STEPS);
    expect(ended.record.resultCode).toBe('SUCCESSFUL');
  });
});

describe('chooseDelivery', () => {
  const http = { http: { operationUrl: 'http://device.example/op' } };
  it('pushes to a device with an operation URL unless asked to hold the operation', () => {
    expect(chooseDelivery(undefined, http)).toEqual({ ok: true, value: 'push' });
    expect(chooseDelivery('auto', http)).toEqual({ ok: true, value: 'push' });
    expect(chooseDelivery('pending', http)).toEqual({ ok: true, value: 'pending' });
  });
  it('holds operations for sleepy devices and devices with no push channel', () => {
    expect(chooseDelivery('auto', { ...http, sleepy: true })).toEqual({ ok: true, value: 'pending' });
    expect(chooseDelivery(undefined, {})).toEqual({ ok: true, value: 'pending' });
  });
  it('refuses a push to a device that has nowhere to push to', () => {
    expect(chooseDelivery('push', { sleepy: true })).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
    expect(chooseDelivery('push', { ...http, sleepy: true })).toEqual({ ok: true, value: 'push' });
  });
});
