// Helpers for integration tests: run real TwinFlow processes against the test servers, and talk to them over HTTP.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { commitPoints } from '../../inventory/commit-log.repo';
import type { CommitDoc } from '../../inventory/documents';
import { ingestDbName } from '../../inventory/inventory';
import { getFreePort } from '../../worker/local-stack';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

export function itEnv(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(
      `${name} is not set: run integration tests through jest (global setup starts the servers)`,
    );
  return value;
}

export const uniqueName = (prefix: string): string => `${prefix}_${randomBytes(4).toString('hex')}`;

export interface TwinflowProcess {
  readonly baseUrl: string;
  readonly adminKey: string;
  /** The embedded MQTT broker, `mqtt://127.0.0.1:<port>`. */
  readonly mqttUrl: string;
  readonly env: Readonly<Record<string, string>>;
  output(): string;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<number | null>;
  /** SIGKILL: the process gets no chance to clean up. */
  kill(): Promise<void>;
}

export interface StartOptions {
  readonly roles?: string;
  /** Shares a database, task queue and admin key with another process of the same test. */
  readonly db?: string;
  readonly taskQueue?: string;
  readonly adminKey?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Use the real embedded stack (TwinFlow starts its own servers) instead of the shared test servers. */
  readonly embedded?: boolean;
}

export async function startTwinflow(options: StartOptions = {}): Promise<TwinflowProcess> {
  const port = await getFreePort();
  const mqttPort = await getFreePort();
  const adminKey = options.adminKey ?? `it-admin-${randomBytes(12).toString('hex')}`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    PORT: String(port),
    TWINFLOW_MQTT_PORT: String(mqttPort),
    TWINFLOW_ROLES: options.roles ?? 'api,worker',
    MONGODB_DB: options.db ?? uniqueName('it'),
    TWINFLOW_TASK_QUEUE: options.taskQueue ?? uniqueName('tq'),
    TWINFLOW_BOOTSTRAP_API_KEY: adminKey,
    TWINFLOW_WORKFLOW_BUNDLE: itEnv('TWINFLOW_IT_WORKFLOW_BUNDLE'),
    TWINFLOW_SNAPSHOT_DEBOUNCE_MS: '100',
    TWINFLOW_SNAPSHOT_INTERVAL_MS: '300',
    TWINFLOW_TWIN_SIGNAL_INTERVAL_MS: '50',
    LOG_LEVEL: 'warn',
    // Retention runs on the hour and counts from each datapoint's `at`: off unless a test turns it on.
    TWINFLOW_DATAPOINT_RETENTION_DAYS: '0',
    TWINFLOW_EVENT_RETENTION_DAYS: '0',
    // Tests that speak TLS turn it on with ports and a data directory of their own.
    TWINFLOW_TLS: 'off',
    ...(options.embedded
      ? { TWINFLOW_TEMPORAL_BIN: itEnv('TWINFLOW_IT_TEMPORAL_BIN'), ...mongoBinEnv() }
      : {
          TEMPORAL_ADDRESS: itEnv('TWINFLOW_IT_TEMPORAL_ADDRESS'),
          MONGODB_URI: itEnv('TWINFLOW_IT_MONGODB_URI'),
        }),
    ...options.env,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitForReady(child, () => output, exited);
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    mqttUrl: `mqtt://127.0.0.1:${env.TWINFLOW_MQTT_PORT ?? mqttPort}`,
    adminKey,
    env,
    output: () => output,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function mongoBinEnv(): Record<string, string> {
  const bin = itEnv('TWINFLOW_IT_MONGO_BIN');
  return itEnv('TWINFLOW_IT_MONGO_KIND') === 'mongod'
    ? { TWINFLOW_MONGOD_BIN: bin }
    : { TWINFLOW_FERRETDB_BIN: bin, TWINFLOW_PREFER_FERRETDB: '1' };
}

async function waitForReady(
  child: ChildProcess,
  output: () => string,
  exited: Promise<number | null>,
): Promise<void> {
  let done = false;
  const deadline = Date.now() + 90_000;
  void exited.then(() => (done = true));
  while (!output().includes('TwinFlow is running.')) {
    if (done) throw new Error(`TwinFlow exited before it was ready:\n${output()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`TwinFlow was not ready within 90 s:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface ApiResponse<T = any> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

/** A small HTTP client for the API under test. */
/** The text a streamed body sends within `ms`; the stream is closed after. */
async function readFor(res: Response, ms: number): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const decoder = new TextDecoder();
  let text = '';
  const timer = setTimeout(() => void reader.cancel(), ms);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    return text;
  } finally {
    clearTimeout(timer);
  }
}

export function apiClient(baseUrl: string, key?: string) {
  const request = async <T = any>(
    method: string,
    urlPath: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> => {
    const init: RequestInit = { method, headers: { ...(key ? { 'X-ApiKey': key } : {}), ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${baseUrl}${urlPath}`, init);
    // A live stream never ends: what it sends in its first half second is the answer.
    if (res.headers.get('content-type')?.startsWith('text/event-stream'))
      return { status: res.status, body: (await readFor(res, 500)) as T, headers: res.headers };
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  };
  return {
    request,
    get: <T = any>(p: string, h?: Record<string, string>) => request<T>('GET', p, undefined, h),
    post: <T = any>(p: string, b?: unknown, h?: Record<string, string>) => request<T>('POST', p, b, h),
    patch: <T = any>(p: string, b?: unknown, h?: Record<string, string>) => request<T>('PATCH', p, b, h),
    delete: <T = any>(p: string, h?: Record<string, string>) => request<T>('DELETE', p, undefined, h),
  };
}

export type ApiClient = ReturnType<typeof apiClient>;

export async function temporalClient(): Promise<{ client: Client; close(): Promise<void> }> {
  const connection = await Connection.connect({ address: itEnv('TWINFLOW_IT_TEMPORAL_ADDRESS') });
  return { client: new Client({ connection }), close: () => connection.close() };
}

export async function mongoClient(): Promise<MongoClient> {
  return MongoClient.connect(itEnv('TWINFLOW_IT_MONGODB_URI'));
}

/** Polls until `check` returns a value (not undefined) or throws its last error at the deadline. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw lastError instanceof Error ? lastError : new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const collectBody = (
  datastreams: { id: string; feed?: string; datapoints: { value: unknown; at?: number }[] }[],
) => ({
  version: '1.0.0',
  datastreams,
});

/** Waits until the ingest write-back has emptied the commit log: every datapoint is in the history chunks. */
export async function writtenBack(mongo: MongoClient, db: string, timeoutMs = 30_000): Promise<void> {
  await eventually(
    async () =>
      (await mongo.db(ingestDbName(db)).collection('ingest_commits').countDocuments({})) === 0
        ? true
        : undefined,
    timeoutMs,
  );
}

/**
 * Every stored datapoint, for tests that count what was stored: the history chunks and the ingest commits
 * not yet written back into them (both are stored; a point in both counts once).
 */
export async function storedPoints(
  mongo: MongoClient,
  db: string,
  filter: { org?: string; deviceId?: string; ds?: string } = {},
): Promise<{ org: string; deviceId: string; ds: string; at: number }[]> {
  type Point = { org: string; deviceId: string; ds: string; feed: string; at: number; receivedAt: number };
  // Commits first: the write-back deletes a commit only after its chunks are stored.
  const commits = await mongo.db(ingestDbName(db)).collection<CommitDoc>('ingest_commits').find({}).toArray();
  const chunks = await mongo
    .db(db)
    .collection<{ org: string; deviceId: string; ds: string; level: number; points?: Point[] }>('datapoints')
    .find({ ...filter, level: 0 })
    .toArray();
  const all = [
    ...commits.flatMap((c) => commitPoints(c) as Point[]),
    ...chunks.flatMap((c) =>
      (c.points ?? []).map((p) => ({ ...p, org: c.org, deviceId: c.deviceId, ds: c.ds })),
    ),
  ].filter(
    (p) =>
      (filter.org === undefined || p.org === filter.org) &&
      (filter.deviceId === undefined || p.deviceId === filter.deviceId) &&
      (filter.ds === undefined || p.ds === filter.ds),
  );
  const byKey = new Map(
    all.map((p) => [
      JSON.stringify([p.org, p.deviceId, p.ds, p.feed, p.at, p.receivedAt, (p as { value?: unknown }).value]),
      p,
    ]),
  );
  return [...byKey.values()].map((p) => ({ org: p.org, deviceId: p.deviceId, ds: p.ds, at: p.at }));
}
