// Operations, the pure part: the record of one operation and how requests, deliveries, device responses,
// timeouts, expiry and cancellation change it. No Temporal, no I/O: the operation workflow is a thin shell.
import { type Result, fail, ok } from './types';

export type OperationStatus =
  | 'QUEUED'
  | 'WAITING_FOR_CONNECTION'
  | 'DELIVERED'
  | 'IN_PROGRESS'
  | 'SUCCESSFUL'
  | 'FAILED'
  | 'TIMEOUT'
  | 'EXPIRED'
  | 'CANCELLED';

const FINAL_STATUSES: ReadonlySet<OperationStatus> = new Set([
  'SUCCESSFUL',
  'FAILED',
  'TIMEOUT',
  'EXPIRED',
  'CANCELLED',
]);
export const isFinal = (status: OperationStatus): boolean => FINAL_STATUSES.has(status);

/** How a request reaches the device: pushed to its HTTP server, or held until it polls. */
export type DeliveryMode = 'push' | 'pending';

export type StepResult = 'SUCCESSFUL' | 'ERROR' | 'SKIPPED' | 'NOT_EXECUTED';

export const ERROR_TIMEOUT = 'ERROR_TIMEOUT';
/** Steps kept per operation; later ones are dropped. */
export const MAX_STEPS = 1_000;

export interface OperationLimits {
  /** From delivery to the final answer, per attempt (ms). */
  readonly timeoutMs: number;
  /** From creation: an operation not delivered by then expires (ms). */
  readonly ttlMs: number;
  /** Further attempts after the first. */
  readonly retries: number;
  readonly retriesDelayMs: number;
  /** Result codes that start another attempt while retries remain. */
  readonly retryResultList: readonly string[];
}

/** Operation ids: TwinFlow's UUIDs, or an OpenGate client's own id. */
export const OPERATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;

export const OPERATION_DEFAULTS: OperationLimits = {
  timeoutMs: 60_000,
  ttlMs: 24 * 3_600_000,
  retries: 0,
  retriesDelayMs: 5_000,
  retryResultList: ['ERROR_PROCESSING', ERROR_TIMEOUT],
};

/** What the twin needs to run an operation; fixed at creation. */
/** How a device can be reached, as its transport says (the inventory's `transport`). */
export interface DeliveryChannels {
  readonly http?: { readonly operationUrl: string };
  readonly sleepy?: boolean;
}

/**
 * The delivery of a request: as asked, or from the device's transport. A device that is sleepy or has no
 * push channel polls for its operations.
 */
export function chooseDelivery(
  requested: 'auto' | 'push' | 'pending' | undefined,
  channels: DeliveryChannels,
): Result<DeliveryMode> {
  const url = channels.http?.operationUrl;
  if (requested === 'push') {
    return url ? ok('push') : fail('INVALID_ARGUMENT', 'the device has no operation URL to push to');
  }
  return requested === 'pending' || channels.sleepy === true || !url ? ok('pending') : ok('push');
}

export interface OperationRequest extends OperationLimits {
  readonly id: string;
  readonly org: string;
  readonly deviceId: string;
  readonly twinType: string;
  readonly name: string;
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly delivery: DeliveryMode;
  /** For push delivery: where to POST the request, and the key the device expects (never logged or shown). */
  readonly operationUrl?: string;
  readonly platformKey?: string;
  /** Who asked: the credential's id. */
  readonly requestedBy: string;
  readonly createdAt: number;
}

export interface OperationStep {
  readonly name: string;
  readonly result: string;
  readonly description?: string;
  readonly timestamp: number;
  /** The device gave no timestamp; `timestamp` is when TwinFlow received the step. */
  readonly untimed?: true;
  readonly response?: unknown;
  readonly attempt: number;
  readonly receivedAt: number;
}

export interface OperationAttempt {
  readonly attempt: number;
  readonly startedAt: number;
  readonly deliveredAt?: number;
  readonly endedAt?: number;
  readonly resultCode?: string;
  readonly resultDescription?: string;
  /** Network errors and 5xx answers retried inside this attempt. */
  readonly transportErrors: number;
  readonly lastTransportError?: string;
}

export interface OperationRecord extends Pick<
  OperationRequest,
  'id' | 'org' | 'deviceId' | 'twinType' | 'name' | 'parameters' | 'delivery' | 'requestedBy' | 'createdAt'
> {
  readonly status: OperationStatus;
  readonly resultCode: string | null;
  readonly resultDescription: string | null;
  readonly steps: readonly OperationStep[];
  readonly attempts: readonly OperationAttempt[];
  readonly limits: OperationLimits;
  readonly cancelledBy?: string;
  readonly updatedAt: number;
  readonly expiresAt: number;
  readonly deliveredAt: number | null;
  readonly finishedAt: number | null;
  /** Responses that came after the end (or between attempts) and changed nothing. */
  readonly lateResponses: number;
  /** Grows with every change; the read model keeps the highest it has seen. */
  readonly rev: number;
}

/** A device's response, partial (no resultCode) or final, as the south API and delivery hand it over. */
export interface DeviceResponse {
  readonly resultCode?: string;
  readonly resultDescription?: string;
  readonly timestamp?: number;
  readonly steps?: readonly {
    readonly name: string;
    readonly result: string;
    readonly description?: string;
    readonly timestamp?: number;
    readonly response?: unknown;
  }[];
}

/** The request envelope pushed to a device or handed over at a poll (OpenGate v80). */
export interface RequestEnvelope {
  readonly operation: {
    readonly request: {
      readonly id: string;
      readonly deviceId: string;
      readonly name: string;
      readonly timestamp: number;
      readonly parameters: Readonly<Record<string, unknown>>;
    };
  };
}

export function requestEnvelope(
  op: Pick<OperationRequest, 'id' | 'deviceId' | 'name' | 'parameters'>,
  now: number,
): RequestEnvelope {
  return {
    operation: {
      request: { id: op.id, deviceId: op.deviceId, name: op.name, timestamp: now, parameters: op.parameters },
    },
  };
}

export function createOperationRecord(req: OperationRequest): OperationRecord {
  return {
    id: req.id,
    org: req.org,
    deviceId: req.deviceId,
    twinType: req.twinType,
    name: req.name,
    parameters: req.parameters,
    delivery: req.delivery,
    status: req.delivery === 'pending' ? 'WAITING_FOR_CONNECTION' : 'QUEUED',
    resultCode: null,
    resultDescription: null,
    steps: [],
    attempts: [],
    limits: {
      timeoutMs: req.timeoutMs,
      ttlMs: req.ttlMs,
      retries: req.retries,
      retriesDelayMs: req.retriesDelayMs,
      retryResultList: req.retryResultList,
    },
    requestedBy: req.requestedBy,
    createdAt: req.createdAt,
    updatedAt: req.createdAt,
    expiresAt: req.createdAt + req.ttlMs,
    deliveredAt: null,
    finishedAt: null,
    lateResponses: 0,
    rev: 1,
  };
}

const touch = (rec: OperationRecord, now: number, patch: Partial<OperationRecord>): OperationRecord => ({
  ...rec,
  ...patch,
  updatedAt: now,
  rev: rec.rev + 1,
});

const currentAttempt = (rec: OperationRecord): OperationAttempt | undefined => rec.attempts.at(-1);

const replaceCurrentAttempt = (
  rec: OperationRecord,
  patch: Partial<OperationAttempt>,
): OperationAttempt[] => {
  const last = currentAttempt(rec);
  if (!last) return [...rec.attempts];
  return [...rec.attempts.slice(0, -1), { ...last, ...patch }];
};

/** An attempt is open from its start until its final answer (or timeout). */
export const attemptOpen = (rec: OperationRecord): boolean => {
  const last = currentAttempt(rec);
  return last !== undefined && last.endedAt === undefined;
};

/** Starts the next attempt: a push about to be sent, or a pending operation handed over at a poll. */
export function startAttempt(rec: OperationRecord, now: number): OperationRecord {
  const attempt: OperationAttempt = { attempt: rec.attempts.length + 1, startedAt: now, transportErrors: 0 };
  return touch(rec, now, { attempts: [...rec.attempts, attempt] });
}

/** The device has the request: the push was accepted, or the poll handed it over. */
export function markDelivered(rec: OperationRecord, now: number): OperationRecord {
  if (isFinal(rec.status)) return rec;
  return touch(rec, now, {
    status: rec.status === 'IN_PROGRESS' ? 'IN_PROGRESS' : 'DELIVERED',
    deliveredAt: rec.deliveredAt ?? now,
    attempts: replaceCurrentAttempt(rec, { deliveredAt: currentAttempt(rec)?.deliveredAt ?? now }),
  });
}

export function recordTransportErrors(rec: OperationRecord, count: number, lastError: string, now: number) {
  return touch(rec, now, {
    attempts: replaceCurrentAttempt(rec, { transportErrors: count, lastTransportError: lastError }),
  });
}

export type ResponseOutcome =
  /** Steps added; the operation goes on. */
  | 'progress'
  /** The attempt ended with a result code; see attemptVerdict for what follows. */
  | 'attemptEnded'
  /** Came after the end or between attempts: counted, nothing else changes. */
  | 'late';

/** Steps are the same when name, result and the device's timestamp (or description, when untimed) agree. */
const stepKey = (
  s: { name: string; result: string; description?: string },
  deviceTimestamp: number | undefined,
) => `${s.name}\u0000${s.result}\u0000${deviceTimestamp ?? `untimed\u0000${s.description ?? ''}`}`;

/** Applies a device response. A repeated step (same name, result and timestamp) is kept once. */
export function applyResponse(
  rec: OperationRecord,
  response: DeviceResponse,
  now: number,
): { record: OperationRecord; outcome: ResponseOutcome } {
  if (isFinal(rec.status) || !attemptOpen(rec)) {
    return { record: touch(rec, now, { lateResponses: rec.lateResponses + 1 }), outcome: 'late' };
  }
  const attempt = currentAttempt(rec)?.attempt ?? 1;
  const seen = new Set(
    rec.steps
      .filter((s) => s.attempt === attempt)
      .map((s) => stepKey(s, s.untimed ? undefined : s.timestamp)),
  );
  const added: OperationStep[] = [];
  for (const s of response.steps ?? []) {
    const key = stepKey(s, s.timestamp);
    if (seen.has(key)) continue;
    seen.add(key);
    added.push({
      name: s.name,
      result: s.result,
      ...(s.description !== undefined ? { description: s.description } : {}),
      timestamp: s.timestamp ?? now,
      ...(s.timestamp === undefined ? { untimed: true as const } : {}),
      ...(s.response !== undefined ? { response: s.response } : {}),
      attempt,
      receivedAt: now,
    });
  }
  // A device that reports without end must not grow the record (and the read model) without bound.
  const steps = [...rec.steps, ...added].slice(0, MAX_STEPS);
  const deliveredAt = rec.deliveredAt ?? now;
  const attempts = replaceCurrentAttempt(rec, { deliveredAt: currentAttempt(rec)?.deliveredAt ?? now });
  if (response.resultCode === undefined) {
    return {
      record: touch(rec, now, { status: 'IN_PROGRESS', steps, deliveredAt, attempts }),
      outcome: 'progress',
    };
  }
  const ended = touch(rec, now, { steps, deliveredAt, attempts });
  return {
    record: endAttempt(ended, response.resultCode, response.resultDescription ?? null, now),
    outcome: 'attemptEnded',
  };
}

/** Closes the open attempt with a result code (the device's, or ERROR_TIMEOUT). */
export function endAttempt(
  rec: OperationRecord,
  resultCode: string,
  resultDescription: string | null,
  now: number,
): OperationRecord {
  return touch(rec, now, {
    resultCode,
    resultDescription,
    attempts: replaceCurrentAttempt(rec, {
      endedAt: now,
      resultCode,
      ...(resultDescription !== null ? { resultDescription } : {}),
    }),
  });
}

/** After an attempt ended: finish, or try again (the result code is listed and retries remain). */
export function attemptVerdict(rec: OperationRecord): 'finish' | 'retry' {
  const code = rec.resultCode;
  if (code === null || code === 'SUCCESSFUL') return 'finish';
  const attemptsSoFar = rec.attempts.length;
  return attemptsSoFar <= rec.limits.retries && rec.limits.retryResultList.includes(code)
    ? 'retry'
    : 'finish';
}

/** The status an ended attempt's result code gives the operation. */
export function statusForResult(resultCode: string): OperationStatus {
  if (resultCode === 'SUCCESSFUL') return 'SUCCESSFUL';
  if (resultCode === ERROR_TIMEOUT) return 'TIMEOUT';
  return 'FAILED';
}

/** Ends the operation with the last attempt's result. */
export function finishWithResult(rec: OperationRecord, now: number): OperationRecord {
  const code = rec.resultCode ?? 'ERROR_PROCESSING';
  return touch(rec, now, { status: statusForResult(code), resultCode: code, finishedAt: now });
}

/** Between attempts: back to QUEUED (push) or WAITING_FOR_CONNECTION (pending). */
export function awaitNextAttempt(rec: OperationRecord, now: number): OperationRecord {
  return touch(rec, now, {
    status: rec.delivery === 'pending' ? 'WAITING_FOR_CONNECTION' : 'QUEUED',
    resultCode: null,
    resultDescription: null,
  });
}

export function expire(rec: OperationRecord, now: number): OperationRecord {
  if (isFinal(rec.status)) return rec;
  return touch(rec, now, {
    status: 'EXPIRED',
    resultCode: 'EXPIRED',
    resultDescription: 'the device did not take the operation before its time to live ran out',
    finishedAt: now,
  });
}

export function cancel(rec: OperationRecord, by: string, now: number): OperationRecord {
  if (isFinal(rec.status)) return rec;
  const open = attemptOpen(rec);
  const cancelled = touch(rec, now, {
    status: 'CANCELLED',
    resultCode: 'CANCELLED',
    resultDescription: `cancelled by ${by}`,
    cancelledBy: by,
    finishedAt: now,
  });
  return open
    ? {
        ...cancelled,
        attempts: replaceCurrentAttempt(cancelled, { endedAt: now, resultCode: 'CANCELLED' }),
      }
    : cancelled;
}

// ---- Parsing what devices and clients send ----

const NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
export const OPERATION_NAME_PATTERN = NAME;

const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parameters arrive as an object, or in the legacy list form `[{ name, value: { string | number | object |
 * array: v } }]`; both become a plain object.
 */
export function normalizeParameters(raw: unknown): Result<Record<string, unknown>> {
  if (raw === undefined || raw === null) return ok({});
  if (isPlainObject(raw)) {
    const reserved = Object.keys(raw).find((k) => RESERVED.has(k));
    return reserved ? fail('INVALID_ARGUMENT', `parameter name ${reserved} is reserved`) : ok(raw);
  }
  if (!Array.isArray(raw))
    return fail('INVALID_ARGUMENT', 'parameters must be an object or a list of {name, value}');
  const out: Record<string, unknown> = {};
  for (const [i, item] of raw.entries()) {
    if (!isPlainObject(item) || typeof item.name !== 'string' || item.name.length === 0) {
      return fail('INVALID_ARGUMENT', `parameters[${i}] must be {name, value}`);
    }
    if (RESERVED.has(item.name)) {
      return fail('INVALID_ARGUMENT', `parameters[${i}].name is reserved`);
    }
    if (Object.prototype.hasOwnProperty.call(out, item.name)) {
      return fail('INVALID_ARGUMENT', `parameter ${item.name} appears twice`);
    }
    const value = item.value;
    if (isPlainObject(value)) {
      const typed = ['string', 'number', 'boolean', 'object', 'array'].filter((k) => k in value);
      if (typed.length === 1 && Object.keys(value).length === 1) {
        out[item.name] = value[typed[0]!];
        continue;
      }
    }
    out[item.name] = value;
  }
  return ok(out);
}
