// TwinFlow's configuration: one zod schema, parsed once at start, every problem listed.
import { createHash } from 'node:crypto';
import os from 'node:os';
import v8 from 'node:v8';
import path from 'node:path';
import { z } from 'zod';

const port = z.coerce.number().int().min(1).max(65535);
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const ROLES = ['api', 'worker'] as const;

/**
 * The worker's cache and concurrency, in one place (each has an environment override beside it in the schema).
 * Measured with `BENCH_ONLY=twin-memory npm run bench` (README: "Twin memory").
 */
export const WORKER_DEFAULTS = {
  /** Upper bound of the cached-twins default: twice a 10,000-device fleet, with its operation workflows. */
  maxCachedTwins: 20_000,
  /**
   * V8 heap one cached twin keeps on the workflow thread: 87 KiB measured (bench/twin-heap.ts) now that twins
   * share the pure twin modules (worker/workflow-bundle.ts; 319 KiB when each twin evaluated them); rounded up
   * for the state a busy twin holds.
   */
  twinHeapKiB: 96,
  /** Heap the workflow thread needs besides its cached twins: the bundle, activations, a replay's history. */
  workflowThreadReserveMiB: 512,
  /**
   * Workflow tasks run at once (TWINFLOW_WORKER_WORKFLOW_TASKS, maxConcurrentWorkflowTaskExecutions). The
   * workflows run on one thread, so more only queues tasks inside the worker; the SDK's 40 keeps the thread busy.
   */
  workflowTasks: 40,
  /**
   * Activities run at once (TWINFLOW_WORKER_ACTIVITIES, maxConcurrentActivityTaskExecutions): snapshots and
   * operation deliveries, each waiting on the store or a device, not on this process's CPU.
   */
  activities: 100,
} as const;

/**
 * Twins kept in memory between their workflow tasks (TWINFLOW_WORKER_CACHED_TWINS, the SDK's maxCachedWorkflows)
 * when not set: as many as the workflow thread's heap holds, up to 20,000. A twin that is not cached replays its
 * whole history on its next task. The SDK's own default assumes about 1.7 MiB a workflow (2,300 on a 4 GiB heap),
 * so a fleet of 10,000 replayed on nearly every signal; on a 2 GiB heap this answers 16,896, and on a 1 GiB
 * heap 5,461 (`--max-old-space-size` sets it, and the workflow thread follows it too).
 */
export function defaultCachedTwins(heapLimitMiB: number): number {
  const fit = Math.floor(
    ((heapLimitMiB - WORKER_DEFAULTS.workflowThreadReserveMiB) * 1024) / WORKER_DEFAULTS.twinHeapKiB,
  );
  return Math.max(100, Math.min(WORKER_DEFAULTS.maxCachedTwins, fit));
}

export type Role = (typeof ROLES)[number];

/**
 * The ingest instance name when TWINFLOW_INSTANCE is not set: one that no other running process has and that
 * the same process has again after a restart. On the embedded store only one process runs per data directory,
 * so host and directory; on a shared store, host and API port (two processes on a host cannot share a port).
 */
export function defaultInstance(mongoUri: string | undefined, port: number, dataDir: string): string {
  const host =
    os
      .hostname()
      .replace(/[^A-Za-z0-9._:-]/g, '-')
      .slice(0, 64) || 'host';
  if (mongoUri) return `${host}:${port}`;
  return `${host}-${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12)}`;
}

const envSchema = z.object({
  PORT: port.default(8080),
  TWINFLOW_HOST: z.string().min(1).default('127.0.0.1'),
  TWINFLOW_DATA_DIR: z.string().min(1).default('.twinflow'),
  TWINFLOW_BOOTSTRAP_API_KEY: optionalText.pipe(
    z
      .string()
      .min(16, 'must be at least 16 characters')
      .max(256)
      .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
      .optional(),
  ),
  TWINFLOW_JWT_SECRET: optionalText.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  TWINFLOW_ADMIN_EMAIL: optionalText.pipe(z.string().email('must be an e-mail address').optional()),
  TWINFLOW_ADMIN_PASSWORD: optionalText.pipe(
    z.string().min(12, 'must be at least 12 characters').max(1024).optional(),
  ),
  TWINFLOW_ACCESS_TOKEN_TTL_S: z.coerce.number().int().min(30).max(86_400).default(900),
  TWINFLOW_REFRESH_TOKEN_TTL_S: z.coerce
    .number()
    .int()
    .min(60)
    .max(90 * 86_400)
    .default(30 * 86_400),
  TWINFLOW_ROLES: z
    .string()
    .default('api,worker')
    .transform((v) =>
      v
        .split(',')
        .map((r) => r.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.enum(ROLES)).min(1, 'name at least one of api, worker')),
  TWINFLOW_TEMPORAL_PORT: port.default(7233),
  TWINFLOW_TEMPORAL_UI_PORT: port.optional(),
  TWINFLOW_MONGODB_PORT: port.default(27017),
  TWINFLOW_MONGODB_SYNC: z.enum(['normal', 'full']).default('normal'),
  TEMPORAL_ADDRESS: optionalText,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TWINFLOW_TASK_QUEUE: z.string().min(1).default('twinflow'),
  MONGODB_URI: optionalText.pipe(
    z
      .string()
      .regex(/^mongodb(\+srv)?:\/\//, 'must start with mongodb:// or mongodb+srv://')
      .optional(),
  ),
  // At most 56 characters: the ingest commit log's database adds `_ingest` (inventory/inventory.ts), and
  // MongoDB names stay under 64.
  MONGODB_DB: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,56}$/, 'must be 1 to 56 letters, digits, _ or -')
    .default('twinflow'),
  TWINFLOW_WORKFLOW_BUNDLE: optionalText,
  /** A module of twin types written outside TwinFlow (`export default [defineTwin(...), ...]`). */
  TWINFLOW_TWINS: optionalText,
  TWINFLOW_SNAPSHOT_DEBOUNCE_MS: z.coerce.number().int().min(0).max(600_000).default(1_000),
  TWINFLOW_SNAPSHOT_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
  TWINFLOW_FIRST_PUSH_BUDGET_MS: z.coerce.number().int().min(0).max(8_000).default(2_000),
  TWINFLOW_TWIN_MAX_HISTORY: z.coerce.number().int().min(20).max(50_000).default(10_000),
  TWINFLOW_TWIN_SIGNAL_INTERVAL_MS: z.coerce.number().int().min(0).max(600_000).default(250),
  TWINFLOW_TWIN_SIGNAL_RATE: z.coerce.number().int().min(0).max(1_000_000).default(200),
  TWINFLOW_TWIN_SIGNAL_PRESSURE_SHARE: z.coerce.number().min(0).max(1).default(0.1),
  TWINFLOW_FORWARDER_POLL_MS: z.coerce.number().int().min(100).max(60_000).default(20_000),
  TWINFLOW_FORWARDER_PAUSE_AFTER: z.coerce.number().int().min(1).max(1_000).default(10),
  TWINFLOW_FORWARDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  TWINFLOW_FORWARDER_LANES: z.coerce.number().int().min(1).max(256).default(8),
  TWINFLOW_FORWARDER_HEARTBEAT_MS: z.coerce.number().int().min(1_000).max(600_000).default(30_000),
  TWINFLOW_FORWARDER_RETRY_INITIAL_MS: z.coerce.number().int().min(10).max(600_000).default(1_000),
  TWINFLOW_FORWARDER_RETRY_MAX_MS: z.coerce.number().int().min(10).max(3_600_000).default(60_000),
  TWINFLOW_WORKER_CACHED_TWINS: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(() => defaultCachedTwins(v8.getHeapStatistics().heap_size_limit / 2 ** 20)),
  TWINFLOW_WORKER_WORKFLOW_TASKS: z.coerce
    .number()
    .int()
    .min(2)
    .max(10_000)
    .default(WORKER_DEFAULTS.workflowTasks),
  TWINFLOW_WORKER_ACTIVITIES: z.coerce.number().int().min(1).max(10_000).default(WORKER_DEFAULTS.activities),
  TWINFLOW_WORKER_METRICS_PORT: port.optional(),
  TWINFLOW_WORKFLOW_STACK_TRACES: z.enum(['on', 'off']).default('off'),
  TWINFLOW_WRITEBACK_HISTORY_MS: z.coerce.number().int().min(10).max(3_600_000).default(2_000),
  TWINFLOW_WRITEBACK_LATEST_MS: z.coerce.number().int().min(10).max(3_600_000).default(5_000),
  TWINFLOW_WRITEBACK_PAGES_PER_S: z.coerce.number().int().min(1).max(100_000).default(4),
  /** Names this process's ingest commits (default host:port); unique among the processes running. */
  TWINFLOW_INSTANCE: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits and . _ : -, at most 128')
    .optional(),
  TWINFLOW_INGEST_LEASE_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(60_000),
  TWINFLOW_DATAPOINT_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(30),
  TWINFLOW_EVENT_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(30),
  TWINFLOW_DATAPOINT_RETENTION_EVERY_S: z.coerce
    .number()
    .int()
    .min(1)
    .max(7 * 86_400)
    .default(3_600),
  TWINFLOW_TEMPORAL_UI: z.enum(['on', 'off']).default('on'),
  TWINFLOW_MQTT: z.enum(['on', 'off']).default('on'),
  TWINFLOW_MQTT_PORT: port.optional(),
  MQTT_URL: optionalText.pipe(
    z
      .string()
      .regex(/^mqtts?:\/\/[^\s]+$/, 'must start with mqtt:// or mqtts://')
      .optional(),
  ),
  TWINFLOW_MQTT_ORG: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{1,47}$/)
    .default('default'),
  TWINFLOW_MQTT_SHARE_GROUP: optionalText.pipe(
    z
      .string()
      .regex(/^[\w-]{1,64}$/)
      .optional(),
  ),
  TWINFLOW_MQTT_SHARED: z.enum(['on', 'off']).default('on'),
  TWINFLOW_MQTT_CONNECTIONS: z.coerce.number().int().min(1).max(256).default(16),
  TWINFLOW_MQTT_CLIENT_ID: optionalText.pipe(
    z
      .string()
      .regex(/^[\w.-]{1,64}$/)
      .optional(),
  ),
  TWINFLOW_TLS: z.enum(['on', 'off']).default('on'),
  TWINFLOW_PLAIN: z.enum(['on', 'off']).default('on'),
  TWINFLOW_TLS_CERT: optionalText,
  TWINFLOW_TLS_KEY: optionalText,
  TWINFLOW_HTTPS_PORT: port.default(8443),
  TWINFLOW_MQTTS_PORT: port.optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

type ParsedEnv = z.output<typeof envSchema>;

function tlsSettings(env: ParsedEnv) {
  return {
    enabled: env.TWINFLOW_TLS === 'on',
    /** Both unset: a local CA and server certificate made under the data directory on first start. */
    certFile: env.TWINFLOW_TLS_CERT,
    keyFile: env.TWINFLOW_TLS_KEY,
    httpsPort: env.TWINFLOW_HTTPS_PORT,
    /** Unset: 8883, or a free port when 8883 is taken (said at start). */
    mqttsPort: env.TWINFLOW_MQTTS_PORT,
  };
}

function mongoSettings(env: ParsedEnv) {
  return {
    /** Set: use this server; unset: start the embedded one on `embeddedPort`. */
    uri: env.MONGODB_URI,
    db: env.MONGODB_DB,
    embeddedPort: env.TWINFLOW_MONGODB_PORT,
    /** The embedded store's commits: see `EmbeddedStoreSync` (worker/local-stack.ts). */
    embeddedSync: env.TWINFLOW_MONGODB_SYNC,
  };
}

function mqttSettings(env: ParsedEnv) {
  return {
    enabled: env.TWINFLOW_MQTT === 'on',
    /** Unset: 1883, or a free port when 1883 is taken (said at start). */
    port: env.TWINFLOW_MQTT_PORT,
    host: env.TWINFLOW_HOST,
    /** Set: use this broker through the adapter instead of the embedded one. */
    url: env.MQTT_URL,
    org: env.TWINFLOW_MQTT_ORG,
    sharedGroup:
      env.TWINFLOW_MQTT_SHARED === 'on' ? (env.TWINFLOW_MQTT_SHARE_GROUP ?? 'twinflow') : undefined,
    /**
     * Connections to an external broker, each one message in flight (its PUBACK waits for the store). Only
     * with a shared subscription: plain subscribers would each receive every message.
     */
    connections: env.TWINFLOW_MQTT_SHARED === 'on' ? env.TWINFLOW_MQTT_CONNECTIONS : 1,
    clientId:
      env.TWINFLOW_MQTT_CLIENT_ID ??
      `twinflow-${os
        .hostname()
        .replace(/[^\w.-]/g, '-')
        .slice(0, 40)}-${env.PORT}`,
  };
}

const configSchema = envSchema
  .superRefine((env, ctx) => {
    if ((env.TWINFLOW_ADMIN_EMAIL === undefined) !== (env.TWINFLOW_ADMIN_PASSWORD === undefined)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['TWINFLOW_ADMIN_PASSWORD'],
        message: 'set TWINFLOW_ADMIN_EMAIL and TWINFLOW_ADMIN_PASSWORD together',
      });
    }
    if ((env.TWINFLOW_TLS_CERT === undefined) !== (env.TWINFLOW_TLS_KEY === undefined)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['TWINFLOW_TLS_KEY'],
        message: 'set TWINFLOW_TLS_CERT and TWINFLOW_TLS_KEY together',
      });
    }
    if (env.TWINFLOW_TLS === 'off' && env.TWINFLOW_PLAIN === 'off') {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['TWINFLOW_PLAIN'],
        message: 'TWINFLOW_TLS and TWINFLOW_PLAIN are both off: nothing would listen',
      });
    }
  })
  .transform((env) => ({
    api: { port: env.PORT, host: env.TWINFLOW_HOST, plain: env.TWINFLOW_PLAIN === 'on' },
    tls: tlsSettings(env),
    mqtt: mqttSettings(env),
    roles: new Set<Role>(env.TWINFLOW_ROLES),
    dataDir: path.resolve(env.TWINFLOW_DATA_DIR),
    bootstrapApiKey: env.TWINFLOW_BOOTSTRAP_API_KEY,
    identity: {
      jwtSecret: env.TWINFLOW_JWT_SECRET,
      adminEmail: env.TWINFLOW_ADMIN_EMAIL,
      adminPassword: env.TWINFLOW_ADMIN_PASSWORD,
      accessTokenTtlMs: env.TWINFLOW_ACCESS_TOKEN_TTL_S * 1000,
      refreshTokenTtlMs: env.TWINFLOW_REFRESH_TOKEN_TTL_S * 1000,
    },
    temporal: {
      /** Set: use this server; unset: start the embedded dev server on `embeddedPort`. */
      address: env.TEMPORAL_ADDRESS,
      namespace: env.TEMPORAL_NAMESPACE,
      taskQueue: env.TWINFLOW_TASK_QUEUE,
      embeddedPort: env.TWINFLOW_TEMPORAL_PORT,
      embeddedUiPort: env.TWINFLOW_TEMPORAL_UI_PORT ?? env.TWINFLOW_TEMPORAL_PORT + 1000,
      embeddedUi: env.TWINFLOW_TEMPORAL_UI === 'on',
    },
    mongo: mongoSettings(env),
    workflowBundlePath: env.TWINFLOW_WORKFLOW_BUNDLE,
    /** Set: twin types from this module are registered at start and bundled into the workflow code. */
    twinsModule: env.TWINFLOW_TWINS,
    worker: {
      cachedTwins: env.TWINFLOW_WORKER_CACHED_TWINS,
      workflowTasks: env.TWINFLOW_WORKER_WORKFLOW_TASKS,
      activities: env.TWINFLOW_WORKER_ACTIVITIES,
      /** Set: the SDK's own Prometheus figures (sticky cache hits, misses, size) on 127.0.0.1:port/metrics. */
      metricsPort: env.TWINFLOW_WORKER_METRICS_PORT,
      /** Off: no stack traces for the Web UI, and less CPU every workflow task (measured: at most a tenth of TwinFlow's per operation). */
      stackTraces: env.TWINFLOW_WORKFLOW_STACK_TRACES === 'on',
    },
    twin: {
      snapshotDebounceMs: env.TWINFLOW_SNAPSHOT_DEBOUNCE_MS,
      snapshotIntervalMs: env.TWINFLOW_SNAPSHOT_INTERVAL_MS,
      maxHistoryEvents: env.TWINFLOW_TWIN_MAX_HISTORY,
      /** How long a twin waits for a device to answer a push itself (0: operation workflows push). */
      firstPushBudgetMs: env.TWINFLOW_FIRST_PUSH_BUDGET_MS,
      signalIntervalMs: env.TWINFLOW_TWIN_SIGNAL_INTERVAL_MS,
      /** Data signals per second to twins, across all devices of this process; 0: no limit. */
      signalRate: env.TWINFLOW_TWIN_SIGNAL_RATE,
      /** The share of signalRate used while the ingest is backed up (significant signals first). */
      signalPressureShare: env.TWINFLOW_TWIN_SIGNAL_PRESSURE_SHARE,
    },
    /** Forwarders (forwarders/): the round's long poll, when a failing one pauses, request limits, retries. */
    forwarder: {
      pollWindowMs: env.TWINFLOW_FORWARDER_POLL_MS,
      pauseAfter: env.TWINFLOW_FORWARDER_PAUSE_AFTER,
      requestTimeoutMs: env.TWINFLOW_FORWARDER_TIMEOUT_MS,
      lanes: env.TWINFLOW_FORWARDER_LANES,
      timing: {
        heartbeatMs: env.TWINFLOW_FORWARDER_HEARTBEAT_MS,
        retryInitialMs: env.TWINFLOW_FORWARDER_RETRY_INITIAL_MS,
        retryMaxMs: env.TWINFLOW_FORWARDER_RETRY_MAX_MS,
      },
    },
    /** How the ingest write-back turns commits into history chunks and latest pages (ingest/write-back.ts). */
    writeBack: {
      historyIntervalMs: env.TWINFLOW_WRITEBACK_HISTORY_MS,
      latestIntervalMs: env.TWINFLOW_WRITEBACK_LATEST_MS,
      latestPagesPerSecond: env.TWINFLOW_WRITEBACK_PAGES_PER_S,
      leaseMs: env.TWINFLOW_INGEST_LEASE_MS,
      /** Names this process's ingest commits: unique among running processes, the same across its restarts. */
      instance: env.TWINFLOW_INSTANCE ?? defaultInstance(env.MONGODB_URI, env.PORT, env.TWINFLOW_DATA_DIR),
    },
    retention: {
      /** 0 keeps datapoints forever. */
      datapointsMs: env.TWINFLOW_DATAPOINT_RETENTION_DAYS * 86_400_000,
      /** 0 keeps the event log forever. */
      eventsMs: env.TWINFLOW_EVENT_RETENTION_DAYS * 86_400_000,
      everyMs: env.TWINFLOW_DATAPOINT_RETENTION_EVERY_S * 1000,
    },
    logLevel: env.LOG_LEVEL,
  }));

export type Config = z.output<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(
      `TwinFlow's configuration has ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}

/** Reads the configuration from the environment; throws ConfigError listing every problem. */
/** Settings earlier versions read and this one does not, with what took their place. */
const RETIRED_SETTINGS: Readonly<Record<string, string>> = {
  TWINFLOW_REVOCATION_POLL_S:
    'revoked certificates now reach every process through the credential changes, within about a second',
};

/** One line for each retired setting the environment still sets (said at start; nothing else changes). */
export function retiredSettings(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(RETIRED_SETTINGS)
    .filter(([name]) => env[name] !== undefined)
    .map(([name, why]) => `${name} is no longer read: ${why}`);
}

export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const result = configSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`),
    );
  }
  return result.data;
}
