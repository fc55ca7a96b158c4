// Pure part of the device emulator: behaviour types, OpenGate v80 envelopes, and what a device does with one request.

export type ResultCode =
  'SUCCESSFUL' | 'ERROR_IN_PARAM' | 'NOT_SUPPORTED' | 'ERROR_PROCESSING' | (string & {});

export type StepResult = 'SUCCESSFUL' | 'ERROR' | 'SKIPPED' | 'NOT_EXECUTED';

export interface StepSpec {
  name: string;
  result?: StepResult;
  description?: string;
}

export const FIRMWARE_STEPS = ['BEGINUPDATE', 'DOWNLOADFILE', 'ENDINSTALL', 'ENDUPDATE'] as const;
export type FirmwareStep = (typeof FIRMWARE_STEPS)[number];

export type Behavior =
  | { kind: 'sync'; resultCode?: ResultCode; delayMs?: number; steps?: StepSpec[] }
  | { kind: 'async'; partials?: number; intervalMs?: number; resultCode?: ResultCode }
  | { kind: 'firmware'; intervalMs?: number; failAtStep?: FirmwareStep }
  | { kind: 'slow'; delayMs: number; resultCode?: ResultCode }
  | { kind: 'failing'; transportFailures?: number; failures?: number; failureCode?: ResultCode }
  | { kind: 'unsupported'; status?: number }
  | { kind: 'silent' }
  | { kind: 'sleepy'; pollIntervalMs?: number; answer?: Behavior };

export type BehaviorKind = Behavior['kind'];
export const BEHAVIOR_KINDS: readonly BehaviorKind[] = [
  'sync',
  'async',
  'firmware',
  'slow',
  'failing',
  'unsupported',
  'silent',
  'sleepy',
];

export const DEFAULT_ASYNC_PARTIALS = 2;
export const DEFAULT_INTERVAL_MS = 20;
export const DEFAULT_POLL_INTERVAL_MS = 1_000;
export const DEFAULT_UNSUPPORTED_STATUS = 400;

/** The fields of a request envelope the emulator needs. */
export interface OperationRequest {
  id: string;
  deviceId?: string;
  name: string;
  timestamp?: number;
  parameters?: unknown;
}

/** One response before it is stamped: partial when it has no resultCode. */
export interface ResponseSpec {
  resultCode?: ResultCode;
  resultDescription?: string;
  steps: StepSpec[];
}

export interface ResponseEnvelope {
  version: '8.0';
  operation: {
    response: {
      id: string;
      deviceId: string;
      name: string;
      timestamp: number;
      resultCode?: ResultCode;
      resultDescription?: string;
      steps: { name: string; timestamp: number; result: StepResult; description: string; response: [] }[];
    };
  };
}

/**
 * What a device does with one request: either it answers in the HTTP body (`reply`, after
 * `delayMs`; no `response` means a bare transport failure), or it acknowledges and then posts
 * `posts` one after the other, each `delayMs` after the previous one went out.
 */
export type AnswerPlan =
  | { kind: 'reply'; delayMs: number; status: number; response?: ResponseSpec }
  | { kind: 'post'; status: number; posts: { delayMs: number; response: ResponseSpec }[] };

/** How much of a `failing` behaviour a device has used up; kept per device and behaviour. */
export interface FailureCounter {
  transportFailures: number;
  failures: number;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const isCount = (v: unknown): boolean => v === undefined || (Number.isInteger(v) && (v as number) >= 0);
const isDelay = (v: unknown): boolean =>
  v === undefined || (typeof v === 'number' && Number.isFinite(v) && v >= 0);

/** Returns what is wrong with a behaviour, or undefined when it is usable. */
export function checkBehavior(b: Behavior, path = 'behavior'): string | undefined {
  switch (b.kind) {
    case 'sync':
      if (!isDelay(b.delayMs)) return `${path}.delayMs must be a number >= 0`;
      if (b.steps && !b.steps.every((s) => typeof s.name === 'string' && s.name.length > 0))
        return `${path}.steps need names`;
      return undefined;
    case 'async':
      if (!isCount(b.partials)) return `${path}.partials must be an integer >= 0`;
      return isDelay(b.intervalMs) ? undefined : `${path}.intervalMs must be a number >= 0`;
    case 'firmware':
      if (b.failAtStep !== undefined && !FIRMWARE_STEPS.includes(b.failAtStep))
        return `${path}.failAtStep must be one of ${FIRMWARE_STEPS.join(', ')}`;
      return isDelay(b.intervalMs) ? undefined : `${path}.intervalMs must be a number >= 0`;
    case 'slow':
      return isDelay(b.delayMs) && b.delayMs !== undefined
        ? undefined
        : `${path}.delayMs must be a number >= 0`;
    case 'failing':
      if (!isCount(b.transportFailures)) return `${path}.transportFailures must be an integer >= 0`;
      return isCount(b.failures) ? undefined : `${path}.failures must be an integer >= 0`;
    case 'unsupported':
      return b.status === undefined || (Number.isInteger(b.status) && b.status >= 400 && b.status <= 499)
        ? undefined
        : `${path}.status must be a 4xx status`;
    case 'silent':
      return undefined;
    case 'sleepy':
      if (b.pollIntervalMs !== undefined && !(isDelay(b.pollIntervalMs) && b.pollIntervalMs > 0))
        return `${path}.pollIntervalMs must be a number > 0`;
      if (b.answer?.kind === 'sleepy') return `${path}.answer cannot itself be sleepy`;
      return b.answer ? checkBehavior(b.answer, `${path}.answer`) : undefined;
    default:
      return `${path}.kind ${String((b as { kind: unknown }).kind)} is unknown`;
  }
}

/** Reads a pushed or polled request envelope `{ operation: { request: {...} } }`. */
export function parseRequestEnvelope(raw: unknown): ParseResult<OperationRequest> {
  const request = isRecord(raw) && isRecord(raw.operation) ? raw.operation.request : undefined;
  if (!isRecord(request)) return { ok: false, message: 'body is not { "operation": { "request": {...} } }' };
  const { id, deviceId, name, timestamp, parameters } = request;
  if (typeof id !== 'string' || id.length === 0) return { ok: false, message: 'request.id must be a string' };
  if (typeof name !== 'string' || name.length === 0)
    return { ok: false, message: 'request.name must be a string' };
  if (deviceId !== undefined && typeof deviceId !== 'string')
    return { ok: false, message: 'request.deviceId must be a string' };
  if (timestamp !== undefined && typeof timestamp !== 'number')
    return { ok: false, message: 'request.timestamp must be a number' };
  return { ok: true, value: { id, deviceId, name, timestamp, parameters } };
}

export function describeResult(code: ResultCode, operation: string): string {
  switch (code) {
    case 'SUCCESSFUL':
      return 'Success';
    case 'NOT_SUPPORTED':
      return `Operation ${operation} is not supported`;
    case 'ERROR_IN_PARAM':
      return 'Invalid parameters';
    case 'ERROR_PROCESSING':
      return 'Emulated processing error';
    default:
      return `Emulated result ${code}`;
  }
}

const finalResponse = (code: ResultCode, operation: string, steps: StepSpec[]): ResponseSpec => ({
  resultCode: code,
  resultDescription: describeResult(code, operation),
  steps,
});

/** A synchronous answer reports one step named after the operation unless steps are given. */
const syncSteps = (code: ResultCode, operation: string, steps: StepSpec[] | undefined): StepSpec[] =>
  steps ?? [{ name: operation, result: code === 'SUCCESSFUL' ? 'SUCCESSFUL' : 'ERROR' }];

const syncReply = (code: ResultCode, operation: string, delayMs: number, steps?: StepSpec[]): AnswerPlan => ({
  kind: 'reply',
  delayMs,
  status: 200,
  response: finalResponse(code, operation, syncSteps(code, operation, steps)),
});

function firmwarePosts(failAt: FirmwareStep | undefined): ResponseSpec[] {
  const failIndex = failAt === undefined ? -1 : FIRMWARE_STEPS.indexOf(failAt);
  if (failIndex < 0) {
    return [
      ...FIRMWARE_STEPS.map((name) => ({ steps: [{ name, result: 'SUCCESSFUL' as const }] })),
      finalResponse('SUCCESSFUL', 'UPDATE', []),
    ];
  }
  // Each step is reported once: the ones that ran in partials, the skipped rest in the final response.
  const ran = FIRMWARE_STEPS.slice(0, failIndex + 1).map((name, i) => ({
    steps: [{ name, result: i === failIndex ? ('ERROR' as const) : ('SUCCESSFUL' as const) }],
  }));
  const notRun = FIRMWARE_STEPS.slice(failIndex + 1).map((name) => ({
    name,
    result: 'NOT_EXECUTED' as const,
  }));
  return [
    ...ran,
    {
      resultCode: 'ERROR_PROCESSING',
      resultDescription: `Firmware update failed at ${failAt}`,
      steps: notRun,
    },
  ];
}

/**
 * Decides how a device answers one request. `failing` behaviours consume `counter` (mutated);
 * transport failures only exist for pushed requests (`via: 'push'`): a polled request has no
 * HTTP answer to fail.
 */
export function planAnswer(
  behavior: Behavior,
  operation: string,
  counter: FailureCounter,
  via: 'push' | 'poll',
): AnswerPlan {
  switch (behavior.kind) {
    case 'sync':
      return syncReply(behavior.resultCode ?? 'SUCCESSFUL', operation, behavior.delayMs ?? 0, behavior.steps);
    case 'slow':
      return syncReply(behavior.resultCode ?? 'SUCCESSFUL', operation, behavior.delayMs);
    case 'async': {
      const intervalMs = behavior.intervalMs ?? DEFAULT_INTERVAL_MS;
      const partials = behavior.partials ?? DEFAULT_ASYNC_PARTIALS;
      const posts: { delayMs: number; response: ResponseSpec }[] = Array.from(
        { length: partials },
        (_, i) => ({
          delayMs: intervalMs,
          response: { steps: [{ name: `STEP_${i + 1}`, result: 'SUCCESSFUL' }] },
        }),
      );
      posts.push({
        delayMs: intervalMs,
        response: finalResponse(behavior.resultCode ?? 'SUCCESSFUL', operation, []),
      });
      return { kind: 'post', status: 202, posts };
    }
    case 'firmware': {
      const intervalMs = behavior.intervalMs ?? DEFAULT_INTERVAL_MS;
      const posts = firmwarePosts(behavior.failAtStep).map((response) => ({
        delayMs: intervalMs,
        response,
      }));
      return { kind: 'post', status: 202, posts };
    }
    case 'failing': {
      if (via === 'push' && counter.transportFailures < (behavior.transportFailures ?? 0)) {
        counter.transportFailures++;
        return { kind: 'reply', delayMs: 0, status: 503 };
      }
      if (counter.failures < (behavior.failures ?? 0)) {
        counter.failures++;
        return syncReply(behavior.failureCode ?? 'ERROR_PROCESSING', operation, 0);
      }
      return syncReply('SUCCESSFUL', operation, 0);
    }
    case 'unsupported':
      return {
        kind: 'reply',
        delayMs: 0,
        status: behavior.status ?? DEFAULT_UNSUPPORTED_STATUS,
        response: finalResponse('NOT_SUPPORTED', operation, []),
      };
    case 'silent':
      return { kind: 'post', status: 202, posts: [] };
    case 'sleepy':
      // A sleepy behaviour met where an answer is needed answers as its `answer` says.
      return behavior.answer && behavior.answer.kind !== 'sleepy'
        ? planAnswer(behavior.answer, operation, counter, via)
        : syncReply('SUCCESSFUL', operation, 0);
  }
}

/** Stamps a response for the wire; step descriptions default to their result. */
export function responseEnvelope(
  request: OperationRequest,
  deviceId: string,
  spec: ResponseSpec,
  now: number,
): ResponseEnvelope {
  const response: ResponseEnvelope['operation']['response'] = {
    id: request.id,
    deviceId,
    name: request.name,
    timestamp: now,
    ...(spec.resultCode !== undefined
      ? {
          resultCode: spec.resultCode,
          resultDescription: spec.resultDescription ?? describeResult(spec.resultCode, request.name),
        }
      : {}),
    steps: spec.steps.map((s) => {
      const result = s.result ?? 'SUCCESSFUL';
      return { name: s.name, timestamp: now, result, description: s.description ?? result, response: [] };
    }),
  };
  return { version: '8.0', operation: { response } };
}

/** A mixed fleet: the share of devices that succeed, fail, never answer (time out) and sleep (poll). */
export interface FleetMix {
  readonly succeed?: number;
  readonly fail?: number;
  readonly timeout?: number;
  readonly sleep?: number;
}

const MIX_BEHAVIORS: Readonly<Record<keyof FleetMix, Behavior>> = {
  succeed: { kind: 'sync' },
  fail: { kind: 'sync', resultCode: 'ERROR_PROCESSING' },
  timeout: { kind: 'silent' },
  sleep: { kind: 'sleepy' },
};

/** Checks a mix: shares of 0..1 that add up to 1 (within rounding). */
export function checkFleetMix(mix: FleetMix): string | undefined {
  const shares = Object.values(mix) as number[];
  if (shares.some((s) => !(s >= 0 && s <= 1))) return 'fleet shares are between 0 and 1';
  const sum = shares.reduce((a, b) => a + b, 0);
  return Math.abs(sum - 1) > 1e-6 ? `fleet shares add up to ${sum}, not 1` : undefined;
}

/**
 * The behaviour of each of `count` devices for a mix: exact counts (rounded), spread evenly through the fleet so
 * every wave of a rollout sees the same mix.
 */
export function fleetBehaviors(mix: FleetMix, count: number): Behavior[] {
  const kinds = (Object.keys(MIX_BEHAVIORS) as (keyof FleetMix)[]).filter((k) => (mix[k] ?? 0) > 0);
  const assigned = new Map(kinds.map((k) => [k, 0]));
  const out: Behavior[] = [];
  for (let i = 0; i < count; i++) {
    // The kind furthest behind its share so far goes next.
    let best = kinds[0]!;
    let lag = -Infinity;
    for (const k of kinds) {
      const behind = (mix[k] ?? 0) * (i + 1) - assigned.get(k)!;
      if (behind > lag) {
        lag = behind;
        best = k;
      }
    }
    assigned.set(best, assigned.get(best)! + 1);
    out.push(MIX_BEHAVIORS[best]);
  }
  return out;
}
