// The composition root: builds every service of an API process from the configuration and open connections.
// Nothing else constructs services; tests build the same graph and drive createApp(services) in-process.
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Logger } from 'pino';
import { Authenticator } from '../access/authenticator';
import { LoginLimiter } from '../access/login-limiter';
import { RoleResolver } from '../access/roles';
import { TokenService } from '../access/tokens';
import { createMetrics } from '../api/metrics';
import { ApplicationFailure } from '@temporalio/common';
import type { CreateJobPort, JobActivityDeps } from '../activities/jobs';
import type { ReadinessCheck, Services } from '../api/services';
import { ConnectorFunctions } from '../functions/connector';
import { FunctionEngine } from '../functions/engine';
import { DeviceDirectory } from '../ingest/device-directory';
import { Ingestor } from '../ingest/ingestor';
import { LatestValueGuard } from '../ingest/latest-value-guard';
import { TwinGoneError, TwinNotifier } from '../ingest/twin-notifier';
import { CommitLogRepository } from '../inventory/commit-log.repo';
import { DatapointRepository } from '../inventory/datapoints.repo';
import { CredentialChanges } from '../inventory/credential-changes.repo';
import { CertificateRepository } from '../inventory/certificates.repo';
import { AlarmRepository } from '../inventory/alarms.repo';
import { createPointLogger } from '../events/datapoints-log';
import { EventHub } from '../events/hub';
import { EventWriter } from '../events/writer';
import { EventRepository } from '../inventory/events.repo';
import { ForwarderRepository } from '../inventory/forwarders.repo';
import { MqttClients } from '../forwarders/deliver';
import { ForwardersService } from '../forwarders/forwarders.service';
import { BodyShaper } from '../forwarders/shaper';
import { DEFAULT_FORWARDER_OPTIONS, type ForwarderActivityDeps } from '../forwarders/forwarder.activities';
import { FunctionSandbox } from '../functions/sandbox';
import { DeviceRepository } from '../inventory/devices.repo';
import { FunctionRepository } from '../inventory/functions.repo';
import {
  AuditRepository,
  OrganizationRepository,
  RoleRepository,
  SessionRepository,
  UserRepository,
  sharedSecret,
} from '../inventory/identity.repo';
import type { Inventory } from '../inventory/inventory';
import { JobRepository } from '../inventory/jobs.repo';
import { KeyRepository } from '../inventory/keys.repo';
import { OperationRepository } from '../inventory/operations.repo';
import { RecentIngest } from '../inventory/recent-ingest';
import { JobSchedulesService } from '../operations/job-schedules.service';
import { JobsService } from '../operations/jobs.service';
import { type LiveDelivery, OperationsService } from '../operations/operations.service';
import { TwinGateway } from '../operations/twin-gateway';
import type { Config } from './config';

/** Counters the MQTT side reports for /metrics, once a broker runs. */
export type MqttCounters = () => Readonly<Record<string, number>>;

/** Services plus what only the process entry needs: closing them and the MQTT metrics hook. */
export interface BuiltServices {
  readonly services: Services;
  /** Stops what the services run (signals still due, the sandbox, the Temporal connection), in order. */
  close(): Promise<void>;
  /** The MQTT adapter reports its counters here once it runs. */
  setMqttCounters(read: MqttCounters): void;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), ms).unref()),
  ]);

/**
 * Repositories over the inventory, one of each per process. Device and history reads merge what this
 * process's ingest holds for write-back (`recent`).
 */
export function createRepositories(inventory: Inventory, instance: string) {
  const c = inventory.collections;
  const recent = new RecentIngest();
  const credentialChanges = new CredentialChanges(c);
  return {
    recent,
    commits: new CommitLogRepository(c, instance),
    devices: new DeviceRepository(c, recent),
    keys: new KeyRepository(c, credentialChanges),
    operations: new OperationRepository(c),
    jobs: new JobRepository(c),
    datapoints: new DatapointRepository(c, recent),
    users: new UserRepository(c, credentialChanges),
    roles: new RoleRepository(c, credentialChanges),
    sessions: new SessionRepository(c, credentialChanges),
    organizations: new OrganizationRepository(c),
    audit: new AuditRepository(c),
    functions: new FunctionRepository(c),
    certificates: new CertificateRepository(c, credentialChanges),
    credentialChanges,
    alarms: new AlarmRepository(c),
    events: new EventRepository(c),
    forwarderRepo: new ForwarderRepository(c),
  };
}

export type Repositories = ReturnType<typeof createRepositories>;

/** The twin notifier: coalesced, rate-bounded signals from the ingest path to the twins. */
function createNotifier(
  config: Config,
  twins: TwinGateway,
  logger: Logger,
  underPressure: () => boolean,
): TwinNotifier {
  return new TwinNotifier(
    {
      signal: async (org, deviceId, batch) => {
        try {
          await twins.reportTelemetry(org, deviceId, batch);
        } catch (err) {
          throw err instanceof WorkflowNotFoundError ? new TwinGoneError(err.message) : err;
        }
      },
      now: Date.now,
      setTimer: (fn, ms) => {
        const t = setTimeout(fn, ms);
        return { cancel: () => clearTimeout(t) };
      },
      onError: (org, deviceId, err) => logger.warn({ err, org, deviceId }, 'could not signal twin'),
      underPressure,
    },
    {
      minIntervalMs: config.twin.signalIntervalMs,
      maxInFlight: 64,
      retryDelayMs: 1_000,
      maxSignalsPerSecond: config.twin.signalRate,
      shareUnderPressure: config.twin.signalPressureShare,
    },
  );
}

/**
 * The twins' gateway. `waitClient` serves the long polls that wait for an operation's end (by default `client`):
 * they must stop at their deadline, which a client on the worker SDK's connection cannot do yet (its abort
 * signal is not passed on in SDK 1.24).
 */
export function createTwinGateway(config: Config, client: Client, waitClient: Client = client): TwinGateway {
  return new TwinGateway(
    client,
    {
      taskQueue: config.temporal.taskQueue,
      twinOptions: {
        snapshotDebounceMs: config.twin.snapshotDebounceMs,
        snapshotIntervalMs: config.twin.snapshotIntervalMs,
        maxHistoryEvents: config.twin.maxHistoryEvents,
        firstPushBudgetMs: config.twin.firstPushBudgetMs,
      },
    },
    waitClient,
  );
}

/**
 * What the worker's job activities need: the operations service (over a Temporal client of its own), so a job
 * requests each device's operation exactly as the API does. `liveDelivery` is this process's MQTT hand-over (where
 * the API role runs beside the worker): a job's operation for a device listening on MQTT goes out at once, as one
 * requested through the API does; without a broker here it goes at the device's next subscribe.
 */
export async function createJobActivityDeps(
  config: Config,
  repos: Pick<Repositories, 'devices' | 'operations' | 'jobs'>,
  temporalAddress: string,
  logger: Logger,
  events?: EventWriter,
  liveDelivery?: LiveDelivery,
): Promise<{ deps: JobActivityDeps; close(): Promise<void> }> {
  const connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const twins = createTwinGateway(config, client);
  const jobsService = new JobsService({
    client,
    jobs: repos.jobs,
    taskQueue: config.temporal.taskQueue,
    now: Date.now,
  });
  const createJob: CreateJobPort = async (org, actor, request, id, scheduleId) => {
    const prepared = await jobsService.prepare(org, actor, request, id, scheduleId);
    if (!prepared.ok) throw ApplicationFailure.nonRetryable(prepared.message, prepared.code);
    return prepared.value.input;
  };
  const service = new OperationsService({
    twins,
    operations: repos.operations,
    devices: repos.devices,
    directory: new DeviceDirectory(repos.devices),
    now: Date.now,
    warn: (what, fields) => logger.warn(fields, what),
  });
  if (liveDelivery) service.attachLiveDelivery(liveDelivery);
  return {
    deps: {
      jobs: repos.jobs,
      operations: repos.operations,
      service,
      createJob,
      ...(events ? { events } : {}),
    },
    close: () => connection.close(),
  };
}

function createJobsServices(config: Config, connection: Connection, jobs: JobRepository) {
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const taskQueue = config.temporal.taskQueue;
  return {
    jobsService: new JobsService({ client, jobs, taskQueue, now: Date.now }),
    jobSchedules: new JobSchedulesService({ client, taskQueue, now: Date.now }),
  };
}

/** Named checks of what the API depends on, each answering within 2 s. */
function readinessOf(connection: Connection, inventory: Inventory) {
  const check = async (p: Promise<unknown>): Promise<ReadinessCheck> => {
    try {
      await withTimeout(p, 2_000, 'check');
      return { ok: true };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  };
  return async () => {
    const [temporal, mongodb] = await Promise.all([
      check(connection.workflowService.getSystemInfo({})),
      check(inventory.ping()),
    ]);
    return { temporal, mongodb };
  };
}

function createForwardersService(
  config: Config,
  connection: Connection,
  repos: Repositories,
  engine: FunctionEngine,
  mqtt: MqttClients,
): ForwardersService {
  return new ForwardersService({
    client: new Client({ connection, namespace: config.temporal.namespace }),
    taskQueue: config.temporal.taskQueue,
    repo: repos.forwarderRepo,
    forwarders: repos.forwarderRepo,
    events: repos.events,
    timing: config.forwarder.timing,
    shaper: new BodyShaper(engine.sandbox),
    mqtt,
    now: Date.now,
    requestTimeoutMs: config.forwarder.requestTimeoutMs,
    lanes: config.forwarder.lanes,
  });
}

/** The ingest: group commits, the write-back, and the datapoints batches forwarders subscribe to. */
function createIngestor(
  config: Config,
  repos: Repositories,
  directory: DeviceDirectory,
  notifier: TwinNotifier,
  logger: Logger,
): Ingestor {
  return new Ingestor({
    devices: repos.devices,
    datapoints: repos.datapoints,
    commits: repos.commits,
    recent: repos.recent,
    directory,
    notifier,
    latestGuard: new LatestValueGuard({ loadTimes: (org, id) => repos.devices.latestTimes(org, id) }),
    now: Date.now,
    writeBack: config.writeBack,
    logPoints: createPointLogger({
      interest: () => repos.forwarderRepo.pointInterest(),
      append: (org, events) => repos.events.append(org, events, { checkKeys: false }),
      now: Date.now,
    }),
    warn: (what, err) => logger.warn({ err }, what),
  });
}

/**
 * The API's connections to Temporal, and the twins' gateway over them. The twins' requests (every operation,
 * poll and signal) go over the worker SDK's connection: its Rust client costs this process about a quarter less
 * CPU a call than the JavaScript one. Long polls, schedules and jobs keep the JavaScript `connection`.
 */
async function connectTwins(config: Config, temporalAddress: string) {
  const connection = await Connection.connect({ address: temporalAddress });
  const native = await NativeConnection.connect({ address: temporalAddress });
  const namespace = config.temporal.namespace;
  const twins = createTwinGateway(
    config,
    new Client({ connection: native, namespace }),
    new Client({ connection, namespace }),
  );
  return { connection, native, twins };
}

/** Builds every service an API process serves from; connects to Temporal at `temporalAddress`. */
export async function createServices(
  config: Config,
  inventory: Inventory,
  temporalAddress: string,
  logger: Logger,
): Promise<BuiltServices> {
  const repos = createRepositories(inventory, config.writeBack.instance);
  const { connection, native, twins } = await connectTwins(config, temporalAddress);
  // The notifier asks the ingestor, made after it (the ingestor reports to the notifier), about its pressure.
  const made: { ingestor?: Ingestor } = {};
  const notifier = createNotifier(config, twins, logger, () => made.ingestor?.underPressure() ?? false);
  const directory = new DeviceDirectory(repos.devices);
  const roleResolver = new RoleResolver(repos.roles);
  const secret = await sharedSecret(inventory.collections, 'jwt-secret', config.identity.jwtSecret);
  const tokens = new TokenService(secret, {
    accessTtlMs: config.identity.accessTokenTtlMs,
    issuer: 'twinflow',
  });
  const ingestor = createIngestor(config, repos, directory, notifier, logger);
  made.ingestor = ingestor;
  const recovered = await ingestor.start();
  if (recovered > 0) logger.info({ commits: recovered }, 'read back ingest commits not yet written back');
  let mqttCounters: MqttCounters | undefined;
  let pendingCounters = () => ({ devices: 0, writers: 0 });
  const metrics = createMetrics({
    ingest: () => ingestor.counters(),
    twinSignals: () => notifier.stats(),
    ...(config.mqtt.enabled ? { mqtt: () => mqttCounters?.() ?? {} } : {}),
    directory: () => directory.counters(),
    pendingMarkers: () => pendingCounters(),
  });
  const functionEngine = await FunctionEngine.create();
  const operationsService = new OperationsService({
    twins,
    operations: repos.operations,
    devices: repos.devices,
    directory,
    now: Date.now,
    warn: (what, fields) => logger.warn(fields, what),
  });
  pendingCounters = () => operationsService.pendingCounters();
  const forwarderMqtt = new MqttClients();
  const forwarders = createForwardersService(config, connection, repos, functionEngine, forwarderMqtt);
  const services: Services = {
    ...repos,
    auth: new Authenticator({ ...repos, roles: roleResolver, tokens }),
    roleResolver,
    loginLimiter: new LoginLimiter(),
    refreshTtlMs: config.identity.refreshTokenTtlMs,
    metrics,
    twins,
    operationsService,
    ...createJobsServices(config, connection, repos.jobs),
    directory,
    ingestor,
    functions: new ConnectorFunctions(repos.functions, functionEngine),
    forwarders,
    logger,
    now: Date.now,
    readiness: readinessOf(connection, inventory),
    eventWriter: new EventWriter(repos.events),
    eventHub: new EventHub(repos.events, {
      onError: (err) => logger.warn({ err }, 'could not read the event log for streams'),
    }),
  };
  return {
    services,
    setMqttCounters: (read) => (mqttCounters = read),
    close: async () => {
      services.eventHub.close();
      await withTimeout(ingestor.close(), 30_000, 'writing back ingested data');
      await withTimeout(notifier.close(), 10_000, 'flushing twin signals');
      logger.info({ twinSignals: notifier.stats() }, 'twin notifier stopped');
      await forwarderMqtt.close();
      functionEngine.dispose();
      await connection.close();
      await native.close();
    },
  };
}

/** What the worker's forwarder rounds need: the repositories, a sandbox for connectors, MQTT connections. */
export async function createForwarderActivityDeps(
  config: Config,
  repos: Pick<Repositories, 'forwarderRepo' | 'events'>,
): Promise<{ deps: ForwarderActivityDeps; close(): Promise<void> }> {
  const sandbox = await FunctionSandbox.create();
  const mqtt = new MqttClients();
  const f = config.forwarder;
  return {
    deps: {
      forwarders: repos.forwarderRepo,
      events: repos.events,
      shaper: new BodyShaper(sandbox),
      mqtt,
      now: Date.now,
      requestTimeoutMs: f.requestTimeoutMs,
      lanes: f.lanes,
      options: { ...DEFAULT_FORWARDER_OPTIONS, pollWindowMs: f.pollWindowMs, pauseAfter: f.pauseAfter },
    },
    close: async () => {
      await mqtt.close();
      sandbox.dispose();
    },
  };
}
