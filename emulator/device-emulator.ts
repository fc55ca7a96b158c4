// Plays many HTTP devices that speak the OpenGate v80 operation protocol, for tests and benchmarks of TwinFlow.
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  type AnswerPlan,
  type Behavior,
  checkBehavior,
  DEFAULT_POLL_INTERVAL_MS,
  type FailureCounter,
  type OperationRequest,
  parseRequestEnvelope,
  planAnswer,
  type ResponseSpec,
  responseEnvelope,
} from './behaviors';

export type { Behavior, ResultCode, StepSpec } from './behaviors';

export interface EmulatedDevice {
  id: string;
  /** The device's own key, sent as X-ApiKey on its calls to TwinFlow. */
  apiKey: string;
  behavior: Behavior;
  /** Behaviours for particular operation names, in place of `behavior`. */
  perOperation?: Record<string, Behavior>;
  /** When set, pushes must carry this X-ApiKey or get 401. */
  expectedPlatformKey?: string;
}

export interface DeviceEmulatorOptions {
  /** TwinFlow's base URL; its south face is under `/south/v80`. */
  twinflowUrl: string;
  host?: string;
  /** 0 (the default) takes a free port. */
  port?: number;
  devices?: EmulatedDevice[];
  /** Failed response posts (after retries), failed polls, unexpected errors. Default: ignored. */
  onError?: (err: unknown) => void;
  /** Received requests kept per device for `received()`, oldest dropped first (default 1000). */
  receivedLimit?: number;
  /** Outbound calls (response posts and polls) in flight at once; the rest wait their turn (default 128). */
  maxConcurrentRequests?: number;
}

export interface ReceivedRequest {
  deviceId: string;
  operationId: string;
  name: string;
  parameters: unknown;
  receivedAt: number;
  via: 'push' | 'poll';
  platformKey?: string;
}

export interface EmulatorStats {
  /**
   * Operation requests that reached a device: pushes that passed the key and body checks (whatever
   * the answer, emulated 503s included) and operations returned by polls.
   */
  requests: number;
  responsesPosted: number;
  responseErrors: number;
  polls: number;
}

export interface DeviceEmulator {
  readonly url: string;
  operationUrl(deviceId: string): string;
  addDevice(d: EmulatedDevice): void;
  removeDevice(id: string): void;
  received(deviceId?: string): ReceivedRequest[];
  stats(): EmulatorStats;
  /** Resolves when every response the emulator started to post has been posted (or failed). */
  idle(): Promise<void>;
  /** Stops the server, pollers and pending timers. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;
const POST_RETRIES = 3;
const RETRY_BACKOFF_MS = 50;
const OUTBOUND_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_MS = 30_000;
/** Idle outbound sockets close before TwinFlow's (Node's default 5 s) would, so a reused one is rarely dead. */
const FREE_SOCKET_MS = 4_000;
const DEFAULT_MAX_CONCURRENT_REQUESTS = 128;
const DEFAULT_RECEIVED_LIMIT = 1_000;
/** Operations asked for per poll; a full page means more wait, so the device polls again at once. */
const POLL_LIMIT = 100;
const OPERATION_PATH = /^\/v80\/devices\/([^/?]+)\/operation\/request(?:\?.*)?$/;

interface DeviceState {
  readonly spec: EmulatedDevice;
  /** Aborted on removeDevice and close: ends the device's timers, posts and poller. */
  readonly controller: AbortController;
  readonly received: ReceivedRequest[];
  readonly counters: Map<Behavior, FailureCounter>;
  readonly responseUrl: URL;
  readonly pendingUrl: URL;
}

/** Waits `ms`; resolves false instead when `signal` aborts first. Never keeps the process alive. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

interface OutboundAnswer {
  ok: boolean;
  status: number;
  text: string;
}

/**
 * One outbound POST on a keep-alive agent; rejects on network errors, after OUTBOUND_TIMEOUT_MS of
 * silence, or when `signal` aborts. (node:http rather than global fetch: fetch cost about 3.5 times
 * the CPU a call and held asynchronous devices near 1,000 posts/s on two cores.)
 */
function post(
  agent: http.Agent,
  url: URL,
  headers: http.OutgoingHttpHeaders,
  body: string,
  signal: AbortSignal,
): Promise<OutboundAnswer> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(body);
    const onAbort = () => req.destroy(new Error('aborted'));
    const fail = (err: Error) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    };
    const req = (url.protocol === 'https:' ? https : http).request(
      url,
      {
        method: 'POST',
        agent,
        timeout: OUTBOUND_TIMEOUT_MS,
        headers: { ...headers, 'content-length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) req.destroy(new Error(`answer over ${MAX_BODY_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on('end', () => {
          signal.removeEventListener('abort', onAbort);
          const status = res.statusCode ?? 0;
          resolve({
            ok: status >= 200 && status < 300,
            status,
            text: Buffer.concat(chunks, size).toString('utf8'),
          });
        });
        res.on('error', fail);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', fail);
    signal.addEventListener('abort', onAbort, { once: true });
    req.end(payload);
  });
}

/**
 * Caps outbound calls in flight: without it a burst of asynchronous operations opens thousands of
 * sockets at once, and calls time out in the crowd instead of queueing.
 */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  /** Runs `fn` when a slot is free; resolves undefined without running it if `signal` aborts first. */
  async run<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T | undefined> {
    if (this.active >= this.max) {
      const admitted = await new Promise<boolean>((resolve) => {
        const onAbort = () => {
          const i = this.waiting.indexOf(admit);
          if (i >= 0) this.waiting.splice(i, 1);
          resolve(false);
        };
        const admit = () => {
          signal.removeEventListener('abort', onAbort);
          resolve(true);
        };
        this.waiting.push(admit);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      // The slot was handed over by the finisher (active not decremented), so do not take another.
      if (!admitted) return undefined;
    } else {
      this.active++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

const errorMessage = (err: unknown): string =>
  err instanceof Error
    ? err.cause instanceof Error
      ? `${err.message}: ${err.cause.message}`
      : err.message
    : String(err);

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const errorBody = (code: string, message: string) => ({ error: { code, message } });

/** Reads the whole body, or undefined when it is larger than MAX_BODY_BYTES. */
function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

class Emulator implements DeviceEmulator {
  private baseUrl = '';
  private readonly devices = new Map<string, DeviceState>();
  private readonly jobs = new Set<Promise<void>>();
  private readonly pollers = new Set<Promise<void>>();
  private readonly southBase: string;
  private readonly onError: (err: unknown) => void;
  private readonly receivedLimit: number;
  private readonly limiter: Limiter;
  private readonly agent: http.Agent;
  private readonly counts: EmulatorStats = { requests: 0, responsesPosted: 0, responseErrors: 0, polls: 0 };
  private closing: Promise<void> | undefined;

  constructor(
    private readonly server: http.Server,
    options: DeviceEmulatorOptions,
  ) {
    this.southBase = `${options.twinflowUrl.replace(/\/+$/, '')}/south/v80/devices/`;
    this.onError = options.onError ?? (() => undefined);
    this.receivedLimit = options.receivedLimit ?? DEFAULT_RECEIVED_LIMIT;
    const maxSockets = options.maxConcurrentRequests ?? DEFAULT_MAX_CONCURRENT_REQUESTS;
    this.limiter = new Limiter(maxSockets);
    const agentOptions = { keepAlive: true, maxSockets, timeout: FREE_SOCKET_MS };
    this.agent = this.southBase.startsWith('https:')
      ? new https.Agent(agentOptions)
      : new http.Agent(agentOptions);
  }

  get url(): string {
    return this.baseUrl;
  }

  /** Called once the server listens. */
  setAddress(host: string, port: number): void {
    this.baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  operationUrl(deviceId: string): string {
    return `${this.url}/v80/devices/${encodeURIComponent(deviceId)}/operation/request`;
  }

  addDevice(d: EmulatedDevice): void {
    if (this.closing) throw new Error('the device emulator is closed');
    if (this.devices.has(d.id)) throw new Error(`device ${d.id} is already emulated`);
    const problem =
      checkBehavior(d.behavior) ??
      Object.entries(d.perOperation ?? {})
        .map(([name, b]) => checkBehavior(b, `perOperation.${name}`))
        .find((p) => p !== undefined);
    if (problem) throw new TypeError(`device ${d.id}: ${problem}`);
    const controller = new AbortController();
    // Every pending timer and post of the device listens to this one signal.
    setMaxListeners(0, controller.signal);
    const base = `${this.southBase}${encodeURIComponent(d.id)}/operation/`;
    const state: DeviceState = {
      spec: d,
      controller,
      received: [],
      counters: new Map(),
      responseUrl: new URL(`${base}response`),
      pendingUrl: new URL(`${base}pending?limit=${POLL_LIMIT}`),
    };
    this.devices.set(d.id, state);
    if (d.behavior.kind === 'sleepy')
      this.startPoller(state, d.behavior.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
  }

  removeDevice(id: string): void {
    const state = this.devices.get(id);
    if (!state) return;
    this.devices.delete(id);
    state.controller.abort();
  }

  received(deviceId?: string): ReceivedRequest[] {
    if (deviceId !== undefined) return [...(this.devices.get(deviceId)?.received ?? [])];
    return [...this.devices.values()].flatMap((d) => d.received).sort((a, b) => a.receivedAt - b.receivedAt);
  }

  stats(): EmulatorStats {
    return { ...this.counts };
  }

  async idle(): Promise<void> {
    while (this.jobs.size > 0) await Promise.all([...this.jobs]);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const state of this.devices.values()) state.controller.abort();
    this.devices.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    await Promise.all([...this.pollers]);
    await this.idle();
    this.agent.destroy();
  }

  /** The node:http request handler; every path ends in an answer, never an exception. */
  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.route(req, res).catch((err: unknown) => {
      this.onError(err);
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, errorBody('INTERNAL', errorMessage(err)));
    });
  };

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const match = OPERATION_PATH.exec(req.url ?? '');
    if (!match?.[1]) return sendJson(res, 404, errorBody('NOT_FOUND', 'no such route'));
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return sendJson(res, 405, errorBody('METHOD_NOT_ALLOWED', 'use POST'));
    }
    let deviceId: string;
    try {
      deviceId = decodeURIComponent(match[1]);
    } catch {
      return sendJson(res, 404, errorBody('NOT_FOUND', 'bad device id in the path'));
    }
    const state = this.devices.get(deviceId);
    if (!state || state.spec.behavior.kind === 'sleepy') {
      // A sleepy device runs no server: to TwinFlow it is as absent as an unknown one.
      req.resume();
      return sendJson(res, 404, errorBody('NOT_FOUND', `device ${deviceId} is not emulated here`));
    }
    const platformKey = req.headers['x-apikey'];
    const key = Array.isArray(platformKey) ? platformKey[0] : platformKey;
    if (state.spec.expectedPlatformKey !== undefined && key !== state.spec.expectedPlatformKey) {
      req.resume();
      return sendJson(res, 401, errorBody('UNAUTHENTICATED', 'missing or wrong X-ApiKey'));
    }
    const raw = await readBody(req);
    if (!raw) return sendJson(res, 413, errorBody('PAYLOAD_TOO_LARGE', `body over ${MAX_BODY_BYTES} bytes`));
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return sendJson(res, 400, errorBody('INVALID_ARGUMENT', 'body is not JSON'));
    }
    const parsed = parseRequestEnvelope(body);
    if (!parsed.ok) return sendJson(res, 400, errorBody('INVALID_ARGUMENT', parsed.message));
    const request = parsed.value;
    if (request.deviceId !== undefined && request.deviceId !== deviceId)
      return sendJson(
        res,
        400,
        errorBody('INVALID_ARGUMENT', `request.deviceId ${request.deviceId} is not ${deviceId}`),
      );

    this.counts.requests++;
    this.record(state, request, 'push', key);
    const plan = this.plan(state, request, 'push');
    if (plan.kind === 'reply') {
      if (plan.delayMs > 0 && !(await sleep(plan.delayMs, state.controller.signal))) {
        res.destroy();
        return;
      }
      const envelope = plan.response && responseEnvelope(request, deviceId, plan.response, Date.now());
      return sendJson(res, plan.status, envelope ?? errorBody('UNAVAILABLE', 'emulated transport failure'));
    }
    res.writeHead(plan.status, { 'content-length': 0 });
    res.end();
    if (plan.posts.length > 0) this.track(this.postAll(state, request, plan.posts));
  }

  private plan(state: DeviceState, request: OperationRequest, via: 'push' | 'poll'): AnswerPlan {
    const behavior = state.spec.perOperation?.[request.name] ?? state.spec.behavior;
    let counter = state.counters.get(behavior);
    if (!counter) {
      counter = { transportFailures: 0, failures: 0 };
      state.counters.set(behavior, counter);
    }
    return planAnswer(behavior, request.name, counter, via);
  }

  private record(state: DeviceState, request: OperationRequest, via: 'push' | 'poll', platformKey?: string) {
    const entry: ReceivedRequest = {
      deviceId: state.spec.id,
      operationId: request.id,
      name: request.name,
      parameters: request.parameters,
      receivedAt: Date.now(),
      via,
    };
    if (platformKey !== undefined) entry.platformKey = platformKey;
    state.received.push(entry);
    if (state.received.length > this.receivedLimit) state.received.shift();
  }

  private track(job: Promise<void>): void {
    this.jobs.add(job);
    void job.then(() => this.jobs.delete(job));
  }

  /** Posts the responses in order, each after its delay; never rejects. */
  private async postAll(
    state: DeviceState,
    request: OperationRequest,
    posts: { delayMs: number; response: ResponseSpec }[],
  ): Promise<void> {
    const { signal } = state.controller;
    try {
      for (const { delayMs, response } of posts) {
        if (delayMs > 0 && !(await sleep(delayMs, signal))) return;
        // A response that finally failed still lets the next one go: TwinFlow may take a final after a lost partial.
        await this.postResponse(state, responseEnvelope(request, state.spec.id, response, Date.now()));
        if (signal.aborted) return;
      }
    } catch (err) {
      this.onError(err);
    }
  }

  /** One response POST, retried on network errors and 5xx. */
  private async postResponse(state: DeviceState, envelope: unknown): Promise<void> {
    const { signal } = state.controller;
    const body = JSON.stringify(envelope);
    const headers = { 'content-type': 'application/json', 'x-apikey': state.spec.apiKey };
    let failure = '';
    for (let attempt = 0; attempt <= POST_RETRIES; attempt++) {
      if (attempt > 0 && !(await sleep(RETRY_BACKOFF_MS * 2 ** (attempt - 1), signal))) return;
      try {
        const answer = await this.call(state.responseUrl, headers, body, signal);
        if (!answer) return;
        if (answer.ok) {
          this.counts.responsesPosted++;
          return;
        }
        failure = `HTTP ${answer.status} ${answer.text.slice(0, 200)}`;
        if (answer.status < 500) break;
      } catch (err) {
        if (signal.aborted) return;
        failure = errorMessage(err);
      }
    }
    this.counts.responseErrors++;
    this.onError(
      new Error(
        `device ${state.spec.id}: posting a response to ${state.responseUrl.href} failed: ${failure}`,
      ),
    );
  }

  /** One outbound call when the limiter lets it go; undefined when the device went away first. */
  private call(
    url: URL,
    headers: http.OutgoingHttpHeaders,
    body: string,
    signal: AbortSignal,
  ): Promise<OutboundAnswer | undefined> {
    return this.limiter.run(signal, () => post(this.agent, url, headers, body, signal));
  }

  private startPoller(state: DeviceState, intervalMs: number): void {
    const poller = this.pollLoop(state, intervalMs);
    this.pollers.add(poller);
    void poller.then(() => this.pollers.delete(poller));
  }

  private async pollLoop(state: DeviceState, intervalMs: number): Promise<void> {
    const { signal } = state.controller;
    // The first poll comes at a random point of the first interval, so a fleet's polls spread out.
    let wait = Math.random() * intervalMs;
    while (await sleep(wait, signal)) {
      wait = intervalMs;
      try {
        if ((await this.pollOnce(state)) >= POLL_LIMIT) wait = 0;
      } catch (err) {
        if (signal.aborted) return;
        this.onError(err);
      }
    }
  }

  /** Polls once and answers what it gets; returns how many operations came. */
  private async pollOnce(state: DeviceState): Promise<number> {
    const { signal } = state.controller;
    this.counts.polls++;
    const answer = await this.call(state.pendingUrl, { 'x-apikey': state.spec.apiKey }, '', signal);
    if (!answer) return 0;
    if (!answer.ok)
      throw new Error(
        `device ${state.spec.id}: polling ${state.pendingUrl.href} got HTTP ${answer.status} ${answer.text.slice(0, 200)}`,
      );
    const list: unknown = answer.text.length === 0 ? [] : JSON.parse(answer.text);
    if (!Array.isArray(list)) throw new Error(`device ${state.spec.id}: pending operations are not an array`);
    for (const item of list) {
      const parsed = parseRequestEnvelope(item);
      if (!parsed.ok) {
        this.onError(new Error(`device ${state.spec.id}: bad pending operation: ${parsed.message}`));
        continue;
      }
      if (signal.aborted) break;
      this.counts.requests++;
      this.record(state, parsed.value, 'poll');
      this.answerPolled(state, parsed.value);
    }
    return list.length;
  }

  /** A polled operation gets the same answer a push would, posted instead of returned in the HTTP body. */
  private answerPolled(state: DeviceState, request: OperationRequest): void {
    const plan = this.plan(state, request, 'poll');
    if (plan.kind === 'post') {
      if (plan.posts.length > 0) this.track(this.postAll(state, request, plan.posts));
      return;
    }
    if (plan.response)
      this.track(this.postAll(state, request, [{ delayMs: plan.delayMs, response: plan.response }]));
  }
}

export async function startDeviceEmulator(options: DeviceEmulatorOptions): Promise<DeviceEmulator> {
  const host = options.host ?? '127.0.0.1';
  const twinflow = URL.canParse(options.twinflowUrl) ? new URL(options.twinflowUrl) : undefined;
  if (twinflow?.protocol !== 'http:' && twinflow?.protocol !== 'https:')
    throw new TypeError(`twinflowUrl must be an http(s) URL, got "${options.twinflowUrl}"`);
  const server = http.createServer();
  // Longer than the 5 s default, so a busy platform's keep-alive connections are reused rather than redialled.
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  const emulator = new Emulator(server, options);
  server.on('request', emulator.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => options.onError?.(err));
  emulator.setAddress(host, (server.address() as AddressInfo).port);
  try {
    for (const d of options.devices ?? []) emulator.addDevice(d);
  } catch (err) {
    await emulator.close();
    throw err;
  }
  return emulator;
}
