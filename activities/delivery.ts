// Delivery of an operation request to a device's HTTP server (OpenGate v80, TwinFlow -> device).
import http from 'node:http';
import https from 'node:https';
import { Context } from '@temporalio/activity';
import { responseEnvelopeSchema, toDeviceResponse } from '../twins/operation-envelopes';
import type { DeliveryOutcome } from '../twins/operation-flow';
import type { DeviceResponse, RequestEnvelope } from '../twins/operations';

export interface DeliveryRequest {
  readonly url: string;
  /** Sent as X-ApiKey when the device expects one. */
  readonly platformKey?: string;
  readonly envelope: RequestEnvelope;
  /** When the attempt's time runs out (ms since epoch). */
  readonly deadline: number;
  /**
   * One try only: a transport failure answers `unreachable` at once instead of being retried until the deadline.
   * The twin's first push uses it, and leaves retries to the operation's own workflow.
   */
  readonly once?: boolean;
  /** Transport errors of an earlier try of the same attempt (the twin's own push), counted on from here. */
  readonly prior?: PriorTransportErrors;
}

export interface PriorTransportErrors {
  readonly transportErrors: number;
  readonly lastTransportError: string;
}

// What a push came to: declared with the pure operation flow that interprets it.
export type { DeliveryOutcome } from '../twins/operation-flow';

/** Larger answers are not read (a device's response envelope is small). */
const MAX_DEVICE_ANSWER_BYTES = 1024 * 1024;

/**
 * Kept-alive connections to devices, shared by every push of this process: a synchronous push is one request on a
 * warm connection. node:http rather than fetch: fetch cost this process several times the CPU a push (its streams
 * and abort plumbing), on the path every synchronous operation takes. Idle connections close after a minute.
 */
const AGENT_OPTIONS = { keepAlive: true, maxFreeSockets: 1024, timeout: 60_000, scheduling: 'lifo' } as const;
const agents = { http: new http.Agent(AGENT_OPTIONS), https: new https.Agent(AGENT_OPTIONS) };

interface DeviceAnswer {
  readonly status: number;
  /** Empty when the answer was larger than MAX_DEVICE_ANSWER_BYTES. */
  readonly text: string;
}

/**
 * POSTs the body; an answer of any status resolves. A failure to get one rejects with the signal's reason when it
 * aborted, else with an error whose message is the errno code (ECONNREFUSED) or what Node said.
 */
function post(
  url: URL,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
): Promise<DeviceAnswer> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const send = (retried: boolean): void => {
      const req = (secure ? https : http).request(url, {
        method: 'POST',
        agent: secure ? agents.https : agents.http,
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        signal,
      });
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        // The status is what counts: the rest of an oversized answer is not read, nor its connection kept.
        const tooLarge = () => {
          res.destroy();
          resolve({ status, text: '' });
        };
        if (Number(res.headers['content-length'] ?? '0') > MAX_DEVICE_ANSWER_BYTES) return tooLarge();
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          if (text.length > MAX_DEVICE_ANSWER_BYTES) tooLarge();
        });
        res.on('end', () => resolve({ status, text }));
        res.on('error', (err) => reject(toTransportError(err, signal)));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection the device closed as the request went out: the device never read it, so it
        // goes once more on a fresh connection (as Node's documentation advises).
        if (req.reusedSocket && err.code === 'ECONNRESET' && !retried && !signal.aborted) send(true);
        else reject(toTransportError(err, signal));
      });
      req.end(body);
    };
    send(false);
  });
}

function toTransportError(err: NodeJS.ErrnoException, signal: AbortSignal): Error {
  if (signal.aborted) return (signal.reason as Error | undefined) ?? err;
  return new Error(err.code ?? err.message);
}

function parseResponse(text: string, operationId: string): DeviceResponse | undefined {
  if (text.trim() === '') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = responseEnvelopeSchema.safeParse(json);
  if (!parsed.success || parsed.data.operation.response.id !== operationId) return undefined;
  return toDeviceResponse(parsed.data.operation.response);
}

/** How often a delivery in progress tells Temporal it is alive (a long synchronous answer is fine). */
const DELIVERY_HEARTBEAT_MS = 5_000;
const FIRST_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5_000;
const NO_ANSWER = 'no answer before the deadline';

interface Progress {
  transportErrors: number;
  lastError?: string;
}

/**
 * Pushes the request until the device answers or the attempt's deadline passes. Network errors, 5xx, 408
 * and 429 are transport failures: retried here with backoff, counted, and reported if time runs out.
 */
export async function deliverOperation(req: DeliveryRequest): Promise<DeliveryOutcome> {
  const ctx = Context.current();
  // After a worker crash the activity runs again; the count so far comes back in the heartbeat details.
  const fromPrior: Progress = req.prior
    ? { transportErrors: req.prior.transportErrors, lastError: req.prior.lastTransportError }
    : { transportErrors: 0 };
  const progress: Progress = { ...fromPrior, ...(ctx.info.heartbeatDetails as Progress | undefined) };
  // Local activities have no heartbeats: the workflow task that runs them keeps itself alive.
  const beat = () => {
    if (!ctx.info.isLocal) ctx.heartbeat(progress);
  };
  const heartbeat = setInterval(beat, DELIVERY_HEARTBEAT_MS);
  const retried = () => ({
    transportErrors: progress.transportErrors,
    ...(progress.lastError ? { lastTransportError: progress.lastError } : {}),
  });
  const operationId = req.envelope.operation.request.id;
  let backoff = FIRST_BACKOFF_MS;
  try {
    for (;;) {
      const left = req.deadline - Date.now();
      if (left <= 0) return { kind: 'unreachable', ...retried() };
      let failure: string | undefined;
      let res: DeviceAnswer | undefined;
      try {
        res = await post(
          new URL(req.url),
          {
            'content-type': 'application/json',
            ...(req.platformKey ? { 'x-apikey': req.platformKey } : {}),
          },
          JSON.stringify(req.envelope),
          AbortSignal.any([ctx.cancellationSignal, AbortSignal.timeout(left)]),
        );
      } catch (err) {
        if (ctx.cancellationSignal.aborted) throw err;
        failure =
          (err as Error).name === 'TimeoutError'
            ? NO_ANSWER
            : `device unreachable: ${(err as Error).message}`;
      }
      if (res) {
        if (res.status >= 500 || res.status === 408 || res.status === 429) {
          failure = `device answered HTTP ${res.status}`;
        } else {
          const response = parseResponse(res.text, operationId);
          if (res.status >= 200 && res.status < 300) {
            if (response?.resultCode !== undefined) return { kind: 'final', response, ...retried() };
            return { kind: 'accepted', ...(response ? { response } : {}), ...retried() };
          }
          // 3xx (not followed) and 4xx end the operation.
          const resultCode =
            response?.resultCode ??
            (res.status === 400 || res.status === 422 ? 'ERROR_IN_PARAM' : 'NOT_SUPPORTED');
          return {
            kind: 'rejected',
            httpStatus: res.status,
            resultCode,
            resultDescription: response?.resultDescription ?? `the device answered HTTP ${res.status}`,
            ...retried(),
          };
        }
      }
      progress.transportErrors++;
      // A try the attempt's own deadline cut short says less than what the device answered before it.
      const cutShort = failure === NO_ANSWER && progress.lastError !== undefined;
      if (!cutShort) progress.lastError = failure;
      if (req.once) return { kind: 'unreachable', ...retried() };
      beat();
      const pause = Math.min(backoff, req.deadline - Date.now());
      if (pause > 0) await ctx.sleep(pause);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  } finally {
    clearInterval(heartbeat);
  }
}
