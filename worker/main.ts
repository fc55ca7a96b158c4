// TwinFlow's process entry: `npm start` runs the whole stack on embedded defaults; TWINFLOW_ROLES picks api and/or worker.
import { EventWriter } from '../events/writer';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import pino, { type Logger } from 'pino';
import { hashPassword } from '../access/passwords';
import { CredentialFeed } from '../access/credential-feed';
import { createApp, handleClientError } from '../api/app';
import type { Services } from '../api/services';
import { type Inventory, openInventory } from '../inventory/inventory';
import { DeviceGateway } from '../mqtt/device-gateway';
import { EmbeddedBroker, type ListenOptions, type RequestChannel } from '../mqtt/embedded-broker';
import { ExternalMqttAdapter } from '../mqtt/external-adapter';
import { type Config, ConfigError, loadConfig, retiredSettings } from './config';
import {
  type ManagedProcess,
  PortInUseError,
  assertPortFree,
  startMongoServer,
  startTemporalDevServer,
} from './local-stack';
import { ensureRetentionSchedule } from './retention-schedule';
import { registerSearchAttributes } from './search-attributes';
import { ToolMissingError, ensureMongoServer, ensureTemporalCli } from './tools';
import {
  type BuiltServices,
  createForwarderActivityDeps,
  createJobActivityDeps,
  createRepositories,
  createServices,
} from './services';
import { createTwinWorker, installSdkRuntime } from './twin-worker';
import { loadUserTwins } from './user-twins';
import { localCaLine, loadTlsMaterial, serverTlsOptions, TlsFileError, type TlsMaterial } from './tls-files';

interface Running {
  stop(): Promise<void>;
}

/** Stops what was started, last first; a failure to stop one thing does not keep the rest running. */
class Lifecycle {
  private readonly closers: (() => Promise<unknown>)[] = [];
  readonly stack: ManagedProcess[] = [];

  constructor(private readonly logger: Logger) {}

  onStop(close: () => Promise<unknown>): void {
    this.closers.push(close);
  }

  async stop(): Promise<void> {
    for (const close of this.closers.reverse())
      await close().catch((err: unknown) => this.logger.warn({ err }, 'error while stopping'));
    for (const proc of this.stack.reverse()) await proc.stop();
  }
}

/** The Temporal and MongoDB addresses: the configured ones, or embedded servers started here. */
async function startStores(config: Config, life: Lifecycle, say: (line: string) => void) {
  let temporalAddress = config.temporal.address;
  let temporalUi: string | undefined;
  if (!temporalAddress) {
    const server = await startTemporalDevServer({
      bin: await ensureTemporalCli(process.env, say),
      port: config.temporal.embeddedPort,
      uiPort: config.temporal.embeddedUiPort,
      ui: config.temporal.embeddedUi,
      dataDir: config.dataDir,
      namespace: config.temporal.namespace,
    });
    life.stack.push(server);
    temporalAddress = server.address;
    temporalUi = server.uiUrl;
  }
  let mongoUri = config.mongo.uri;
  if (!mongoUri) {
    const tool = await ensureMongoServer(process.env, say);
    const server = await startMongoServer({
      tool,
      port: config.mongo.embeddedPort,
      dataDir: config.dataDir,
      sync: config.mongo.embeddedSync,
    });
    life.stack.push(server);
    mongoUri = server.uri;
  }
  return { temporalAddress, temporalUi, mongoUri };
}

/**
 * Where this process's MQTT gateway hands waiting operations to listening devices, once the API role has started
 * it: twins in the same process use it for the operations they queue themselves (reactions, desired state), and
 * jobs for the operations they request.
 */
const liveDeliveryHook: { deliver?: (org: string, deviceId: string) => Promise<void> } = {};
const liveDelivery = (org: string, deviceId: string): Promise<void> =>
  liveDeliveryHook.deliver?.(org, deviceId) ?? Promise.resolve();

/** The worker role: twins and their activities, and the datapoint retention schedule. */
async function startWorkerRole(
  config: Config,
  inventory: Inventory,
  temporalAddress: string,
  life: Lifecycle,
  logger: Logger,
) {
  installSdkRuntime({
    debug: config.logLevel === 'debug' || config.logLevel === 'trace',
    metricsPort: config.worker.metricsPort,
  });
  const repos = createRepositories(inventory, config.writeBack.instance);
  const { devices, operations, datapoints, alarms } = repos;
  const events = new EventWriter(repos.events);
  const jobs = await createJobActivityDeps(config, repos, temporalAddress, logger, events, liveDelivery);
  const forwarding = await createForwarderActivityDeps(config, repos);
  const { worker, connection } = await createTwinWorker({
    address: temporalAddress,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    deps: {
      devices,
      operations,
      datapoints,
      alarms,
      liveDelivery,
      jobs: jobs.deps,
      events,
      eventLog: repos.events,
    },
    forwarders: forwarding.deps,
    workflowBundlePath: config.workflowBundlePath,
    ...(config.twinsModule ? { twinsModule: config.twinsModule } : {}),
    tuning: config.worker,
  });
  if (!config.worker.stackTraces)
    logger.info(
      "twins run without workflow stack traces (the Web UI's Stack Trace tab): TWINFLOW_WORKFLOW_STACK_TRACES=on keeps them, at some CPU every workflow task",
    );
  const running = worker.run();
  life.onStop(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await running;
    await connection.close();
    await jobs.close();
    await forwarding.close();
  });
  const scheduleConnection = await Connection.connect({ address: temporalAddress });
  try {
    const client = new Client({ connection: scheduleConnection, namespace: config.temporal.namespace });
    return await ensureRetentionSchedule(client, {
      taskQueue: config.temporal.taskQueue,
      retentionMs: config.retention.datapointsMs,
      eventRetentionMs: config.retention.eventsMs,
      everyMs: config.retention.everyMs,
    });
  } finally {
    await scheduleConnection.close();
  }
}

/** The API role: services, the HTTP(S) servers and the MQTT side; answers the lines it adds to the banner. */
async function startApiRole(
  config: Config,
  inventory: Inventory,
  temporalAddress: string,
  logger: Logger,
  life: Lifecycle,
  material: TlsMaterial | undefined,
): Promise<{ api: string; admin: string; mqtt?: string }> {
  // The twins' client runs on the worker SDK's runtime: installed here, quiet, when no worker role did it first.
  installSdkRuntime({ debug: config.logLevel === 'debug' || config.logLevel === 'trace' });
  if (config.temporal.address) {
    const connection = await Connection.connect({ address: temporalAddress });
    const added = await registerSearchAttributes(connection, config.temporal.namespace).finally(() =>
      connection.close(),
    );
    if (added.length > 0) logger.info({ added }, 'registered search attributes');
  }
  const built = await createServices(config, inventory, temporalAddress, logger);
  life.onStop(() => built.close());
  const { services } = built;
  const feed = new CredentialFeed(services.credentialChanges, services.auth, (err) =>
    logger.warn({ err }, 'could not read credential changes'),
  ).start();
  life.onStop(async () => feed.stop());
  services.credentialChanges.warn = (err, waiting) =>
    logger.warn({ err, waiting }, 'could not announce a credential change to other processes; trying again');
  const admin = await bootstrapAdmin(config, services);
  const app = createApp(services);
  const lines: string[] = [];
  if (config.api.plain) {
    const server = await listen(app, config);
    life.onStop(() => closeServer(server));
    lines.push(`  API:             http://${config.api.host}:${config.api.port}  (try GET /readyz)`);
  }
  if (material) {
    const server = await listen(app, config, material);
    life.onStop(() => closeServer(server));
    lines.push(`  API (HTTPS):     https://${config.api.host}:${config.tls.httpsPort}`);
    if (material.localCa) lines.push(localCaLine(material.localCa));
  }
  const api = lines.join('\n');
  if (!config.mqtt.enabled) return { api, admin };
  return { api, admin, mqtt: await startMqtt(config, built, logger, life, material) };
}

async function bootstrapAdmin(config: Config, services: Services): Promise<string> {
  const boot = await services.keys.bootstrap(config.bootstrapApiKey, new Date());
  let line = adminKeyMessage(config, boot);
  const { adminEmail, adminPassword } = config.identity;
  if (adminEmail !== undefined && adminPassword !== undefined) {
    const created = await services.users.insertIfMissing({
      email: adminEmail,
      org: boot.org,
      role: 'platform-admin',
      passwordHash: () => hashPassword(adminPassword),
      createdBy: 'config:TWINFLOW_ADMIN_EMAIL',
      now: new Date(),
    });
    line += `\n  Admin user:      ${adminEmail} (platform admin${created ? ', created now' : ''})`;
  }
  return line;
}

/** The API on plain HTTP (PORT), or on HTTPS (TWINFLOW_HTTPS_PORT) with the TLS material. */
async function listen(
  app: ReturnType<typeof createApp>,
  config: Config,
  material?: TlsMaterial,
): Promise<Server> {
  const port = material ? config.tls.httpsPort : config.api.port;
  const tls = material ? { createServer: https.createServer, serverOptions: serverTlsOptions(material) } : {};
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, port, hostname: config.api.host, ...tls }, () =>
      resolve(s as Server),
    );
  });
  server.on('clientError', handleClientError);
  // A failed TLS handshake says nothing the API could answer; the client sees its own error.
  if (material) server.on('tlsClientError', () => undefined);
  return server;
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });

/** The MQTT side: an adapter on an external broker (MQTT_URL) or the embedded broker. */
async function startMqtt(
  config: Config,
  built: BuiltServices,
  logger: Logger,
  life: Lifecycle,
  material: TlsMaterial | undefined,
): Promise<string> {
  const { services } = built;
  const gateway = new DeviceGateway(
    {
      auth: services.auth,
      directory: services.directory,
      ingestor: services.ingestor,
      operations: services.operationsService,
      translator: services.functions,
    },
    logger,
  );
  services.operationsService.attachLiveDelivery((org, deviceId) => gateway.deliverPending(org, deviceId));
  liveDeliveryHook.deliver = (org, deviceId) => gateway.deliverPending(org, deviceId);
  let channel: RequestChannel;
  let line: string;
  if (config.mqtt.url) {
    const adapter = await ExternalMqttAdapter.start(
      { ...config.mqtt, url: config.mqtt.url, logger },
      gateway,
      (org, id) => gateway.brokerSession(org, id),
    );
    channel = adapter;
    life.onStop(() => adapter.close());
    const group = config.mqtt.sharedGroup ? `, shared group ${config.mqtt.sharedGroup}` : '';
    line = `  MQTT:            ${redactUri(config.mqtt.url)} (external broker, organization ${config.mqtt.org}${group})`;
  } else {
    const broker = await EmbeddedBroker.start({ logger }, gateway);
    life.onStop(() => broker.close());
    services.auth.onRevoked((hashes) => broker.disconnectKeys(hashes));
    channel = broker;
    line = await listenBroker(broker, config, material);
  }
  gateway.attach(channel);
  built.setMqttCounters(() => ({ ...channel.counters(), ...gateway.counters }));
  return line;
}

/** The embedded broker's listeners, plain and TLS as configured; answers their banner lines. */
async function listenBroker(broker: EmbeddedBroker, config: Config, material: TlsMaterial | undefined) {
  const lines: string[] = [];
  const host = config.mqtt.host;
  if (config.api.plain) {
    const plain = await listenOnPort(broker, { host }, 1883, config.mqtt.port, 'TWINFLOW_MQTT_PORT');
    lines.push(`  MQTT:            mqtt://${host}:${plain.port}${plain.note}`);
  }
  if (material) {
    const options = { host, tls: serverTlsOptions(material) };
    const secure = await listenOnPort(broker, options, 8883, config.tls.mqttsPort, 'TWINFLOW_MQTTS_PORT');
    lines.push(`  MQTT (TLS):      mqtts://${host}:${secure.port}${secure.note}`);
  }
  return lines.join('\n');
}

async function run(config: Config): Promise<Running> {
  const logger = pino({ level: config.logLevel, base: { svc: 'twinflow' } });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const life = new Lifecycle(logger);
  try {
    const api = config.roles.has('api');
    if (api && config.api.plain)
      await assertPortFree(config.api.port, 'PORT', 'the TwinFlow API', config.api.host);
    if (api && config.tls.enabled)
      await assertPortFree(
        config.tls.httpsPort,
        'TWINFLOW_HTTPS_PORT',
        'the TwinFlow HTTPS API',
        config.api.host,
      );
    // Twin types written outside TwinFlow: checked before anything starts, so a wrong one stops the start.
    if (config.twinsModule) {
      const types = await loadUserTwins(config.twinsModule);
      logger.info({ module: config.twinsModule, types: types.map((t) => t.name) }, 'twin types loaded');
    }
    // Before anything starts: a certificate that cannot be used is one clear error, not a half-started stack.
    const material = api && config.tls.enabled ? await loadTlsMaterial(config) : undefined;
    const { temporalAddress, temporalUi, mongoUri } = await startStores(config, life, say);
    const inventory = await openInventory(mongoUri, config.mongo.db);
    life.onStop(() => inventory.close());
    if (config.roles.has('worker')) {
      const change = await startWorkerRole(config, inventory, temporalAddress, life, logger);
      logger.info({ change, retentionMs: config.retention.datapointsMs }, 'datapoint retention schedule');
    }
    const roleLines = api
      ? await startApiRole(config, inventory, temporalAddress, logger, life, material)
      : undefined;
    say('');
    say('TwinFlow is running.');
    if (roleLines) say(roleLines.api);
    if (temporalUi) say(`  Temporal Web UI: ${temporalUi}`);
    say(
      `  Temporal:        ${temporalAddress} (namespace ${config.temporal.namespace}, task queue ${config.temporal.taskQueue})`,
    );
    say(`  MongoDB:         ${redactUri(mongoUri)} (database ${config.mongo.db})`);
    if (roleLines?.mqtt) say(roleLines.mqtt);
    if (config.roles.has('worker'))
      say(`  Worker:          running twins (keeps up to ${config.worker.cachedTwins} in memory)`);
    if (roleLines) say(roleLines.admin);
    if (life.stack.length > 0) say(`  Data:            ${config.dataDir}`);
    say('Press Ctrl-C to stop.');
    return { stop: () => life.stop() };
  } catch (err) {
    await life.stop();
    throw err;
  }
}

/**
 * Listens on the configured port when set (a taken port is an error naming it), otherwise on the default
 * port, or on a free port when that is taken (another broker often runs there), saying so.
 */
async function listenOnPort(
  broker: EmbeddedBroker,
  options: Omit<ListenOptions, 'port'>,
  defaultPort: number,
  configured: number | undefined,
  variable: string,
): Promise<{ port: number; note: string }> {
  const start = (port: number) => broker.listen({ ...options, port });
  const inUse = (err: unknown) => (err as { code?: string }).code === 'EADDRINUSE';
  if (configured !== undefined) {
    try {
      return { port: await start(configured), note: '' };
    } catch (err) {
      if (inUse(err)) throw new PortInUseError(configured, variable, 'the MQTT broker');
      throw err;
    }
  }
  try {
    return { port: await start(defaultPort), note: '' };
  } catch (err) {
    if (!inUse(err)) throw err;
    return { port: await start(0), note: ` (${defaultPort} is taken; set ${variable} to choose)` };
  }
}

const redactUri = (uri: string): string => uri.replace(/\/\/([^@/]+)@/, '//***@');

function adminKeyMessage(config: Config, boot: { created: boolean; org: string; secret?: string }): string {
  const keyFile = path.join(config.dataDir, 'admin-key');
  if (boot.created && boot.secret && !config.bootstrapApiKey) {
    // Generated on first start: keep it beside the embedded data so the next start can show it again.
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(keyFile, `${boot.secret}\n`, { mode: 0o600 });
    chmodSync(keyFile, 0o600);
  }
  if (config.bootstrapApiKey)
    return `  Admin API key:   ${config.bootstrapApiKey} (organization ${boot.org}, from TWINFLOW_BOOTSTRAP_API_KEY)`;
  if (existsSync(keyFile))
    return `  Admin API key:   ${readFileSync(keyFile, 'utf8').trim()} (organization ${boot.org}, saved in ${keyFile})`;
  return '  Admin API key:   created when this inventory was first set up; not stored here';
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  for (const line of retiredSettings(process.env)) process.stderr.write(`Note: ${line}\n`);
  let running: Running;
  try {
    running = await run(config);
  } catch (err) {
    if (err instanceof ToolMissingError || err instanceof PortInUseError || err instanceof TlsFileError) {
      process.stderr.write(`\nTwinFlow cannot start: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`\nTwinFlow cannot start: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  }
  let stoppingSince = 0;
  const stop = (signal: string) => {
    if (stoppingSince > 0) {
      // One Ctrl-C can arrive twice (terminal and a parent that relays it); only a later one forces the exit.
      if (Date.now() - stoppingSince < 3_000) return;
      process.stderr.write('Stopping now, without waiting.\n');
      process.exit(1);
    }
    stoppingSince = Date.now();
    process.stdout.write(`\n${signal}: stopping TwinFlow...\n`);
    running
      .stop()
      .then(() => {
        process.stdout.write('TwinFlow stopped.\n');
        process.exit(0);
      })
      .catch((err: unknown) => {
        process.stderr.write(`error while stopping: ${String(err)}\n`);
        process.exit(1);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // While stopping, a Temporal client call that was retrying when its connection closed retries from a timer and
  // grpc-js throws there ("Channel has been shut down"): the call's caller is gone, so the stop goes on.
  process.on('uncaughtException', (err) => {
    if (stoppingSince > 0 && err instanceof Error && err.message === 'Channel has been shut down') {
      process.stderr.write('A Temporal call retried after its connection closed while stopping; ignored.\n');
      return;
    }
    process.stderr.write(`\nTwinFlow stopped on an uncaught error: ${err.stack ?? String(err)}\n`);
    process.exit(1);
  });
}

void main();
