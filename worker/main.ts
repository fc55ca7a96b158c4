// TwinFlow's process entry: `npm start` runs the whole stack on embedded defaults; TWINFLOW_ROLES picks api and/or worker.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import type { NativeConnection, Worker } from '@temporalio/worker';
import pino, { type Logger } from 'pino';
import { createApp, handleClientError } from '../api/app';
import { LoginLimiter } from '../access/login-limiter';
import { hashPassword } from '../access/passwords';
import { RoleResolver } from '../access/roles';
import { TokenService } from '../access/tokens';
import { Authenticator } from '../access/authenticator';
import {
  AuditRepository,
  OrganizationRepository,
  RoleRepository,
  SessionRepository,
  sharedSecret,
  UserRepository,
} from '../inventory/identity.repo';
import { DeviceDirectory } from '../ingest/device-directory';
import { Ingestor } from '../ingest/ingestor';
import { LatestValueGuard } from '../ingest/latest-value-guard';
import { TwinGoneError, TwinNotifier } from '../ingest/twin-notifier';
import type { Services } from '../api/services';
import { TwinGateway } from '../operations/twin-gateway';
import { DatapointRepository } from '../inventory/datapoints.repo';
import { DeviceRepository } from '../inventory/devices.repo';
import { OperationRepository } from '../inventory/operations.repo';
import { type Inventory, openInventory } from '../inventory/inventory';
import { KeyRepository } from '../inventory/keys.repo';
import { createMetrics } from '../api/metrics';
import { DeviceGateway } from '../mqtt/device-gateway';
import { EmbeddedBroker, type RequestChannel } from '../mqtt/embedded-broker';
import { ExternalMqttAdapter } from '../mqtt/external-adapter';
import { FunctionRepository } from '../inventory/functions.repo';
import { ConnectorFunctions } from '../functions/connector';
import { FunctionEngine } from '../functions/engine';
import { type Config, ConfigError, loadConfig } from './config';
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
import { createTwinWorker, installSdkLogger } from './twin-worker';

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), ms).unref()),
  ]);

interface Running {
  stop(): Promise<void>;
}

async function run(config: Config): Promise<Running> {
  const logger = pino({ level: config.logLevel, base: { svc: 'twinflow' } });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const stack: ManagedProcess[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const close of closers.reverse())
      await close().catch((err: unknown) => logger.warn({ err }, 'error while stopping'));
    for (const proc of stack.reverse()) await proc.stop();
  };

  try {
    if (config.roles.has('api'))
      await assertPortFree(config.api.port, 'PORT', 'the TwinFlow API', config.api.host);

    let temporalAddress = config.temporal.address;
    let temporalUi: string | undefined;
    if (!temporalAddress) {
      const bin = await ensureTemporalCli(process.env, say);
      const server = await startTemporalDevServer({
        bin,
        port: config.temporal.embeddedPort,
        uiPort: config.temporal.embeddedUiPort,
        ui: config.temporal.embeddedUi,
        dataDir: config.dataDir,
        namespace: config.temporal.namespace,
      });
      stack.push(server);
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
      });
      stack.push(server);
      mongoUri = server.uri;
    }

    const inventory: Inventory = await openInventory(mongoUri, config.mongo.db);
    closers.push(() => inventory.close());
    const devices = new DeviceRepository(inventory.collections);
    const keys = new KeyRepository(inventory.collections);
    const operations = new OperationRepository(inventory.collections);
    const datapoints = new DatapointRepository(inventory.collections);

    let worker: Worker | undefined;
    let workerRun: Promise<void> | undefined;
    let nativeConnection: NativeConnection | undefined;
    if (config.roles.has('worker')) {
      installSdkLogger(config.logLevel === 'debug' || config.logLevel === 'trace');
      ({ worker, connection: nativeConnection } = await createTwinWorker({
        address: temporalAddress,
        namespace: config.temporal.namespace,
        taskQueue: config.temporal.taskQueue,
        deps: { devices, operations, datapoints },
        workflowBundlePath: config.workflowBundlePath,
      }));
      workerRun = worker.run();
      const w = worker;
      const nc = nativeConnection;
      closers.push(async () => {
        if (w.getState() === 'RUNNING') w.shutdown();
        await workerRun;
        await nc.close();
      });
      const scheduleConnection = await Connection.connect({ address: temporalAddress });
      try {
        const change = await ensureRetentionSchedule(
          new Client({ connection: scheduleConnection, namespace: config.temporal.namespace }),
          {
            taskQueue: config.temporal.taskQueue,
            retentionMs: config.retention.datapointsMs,
            everyMs: config.retention.everyMs,
          },
        );
        logger.info({ change, retentionMs: config.retention.datapointsMs }, 'datapoint retention schedule');
      } finally {
        await scheduleConnection.close();
      }
    }

    let server: Server | undefined;
    let adminKeyLine = '';
    let mqttLine = '';
    if (config.roles.has('api')) {
      const connection = await Connection.connect({ address: temporalAddress });
      closers.push(() => connection.close());
      if (config.temporal.address) {
        const added = await registerSearchAttributes(connection, config.temporal.namespace);
        if (added.length > 0) logger.info({ added }, 'registered search attributes');
      }
      const client = new Client({ connection, namespace: config.temporal.namespace });
      const twins = new TwinGateway(client, {
        taskQueue: config.temporal.taskQueue,
        twinOptions: {
          snapshotDebounceMs: config.twin.snapshotDebounceMs,
          snapshotIntervalMs: config.twin.snapshotIntervalMs,
          maxHistoryEvents: config.twin.maxHistoryEvents,
        },
      });
      const notifier = new TwinNotifier(
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
        },
        {
          minIntervalMs: config.twin.signalIntervalMs,
          maxInFlight: 64,
          retryDelayMs: 1_000,
          maxSignalsPerSecond: config.twin.signalRate,
        },
      );
      closers.push(async () => {
        await withTimeout(notifier.close(), 10_000, 'flushing twin signals');
        logger.info({ twinSignals: notifier.stats() }, 'twin notifier stopped');
      });
      const directory = new DeviceDirectory(devices);
      const users = new UserRepository(inventory.collections);
      const roles = new RoleRepository(inventory.collections);
      const sessions = new SessionRepository(inventory.collections);
      const roleResolver = new RoleResolver(roles);
      const tokens = new TokenService(
        await sharedSecret(inventory.collections, 'jwt-secret', config.identity.jwtSecret),
        { accessTtlMs: config.identity.accessTokenTtlMs, issuer: 'twinflow' },
      );
      let gateway: DeviceGateway | undefined;
      let broker: RequestChannel | undefined;
      const ingestor = new Ingestor({
        devices,
        datapoints,
        directory,
        notifier,
        latestGuard: new LatestValueGuard({ loadTimes: (org, id) => devices.latestTimes(org, id) }),
        now: Date.now,
      });
      const metrics = createMetrics({
        ingest: () => ingestor.counters(),
        twinSignals: () => notifier.stats(),
        ...(config.mqtt.enabled
          ? { mqtt: () => ({ ...(broker?.counters() ?? {}), ...(gateway?.counters ?? {}) }) }
          : {}),
      });
      const functionEngine = await FunctionEngine.create();
      closers.push(async () => functionEngine.dispose());
      const services: Services = {
        devices,
        keys,
        datapoints,
        operations,
        auth: new Authenticator({ keys, users, sessions, roles: roleResolver, tokens }),
        organizations: new OrganizationRepository(inventory.collections),
        users,
        roles,
        roleResolver,
        sessions,
        audit: new AuditRepository(inventory.collections),
        loginLimiter: new LoginLimiter(),
        refreshTtlMs: config.identity.refreshTokenTtlMs,
        metrics,
        mqtt: {
          deliverPending: (org, deviceId) => gateway?.deliverPending(org, deviceId) ?? Promise.resolve(),
        },
        twins,
        directory,
        ingestor,
        functions: new ConnectorFunctions(new FunctionRepository(inventory.collections), functionEngine),
        logger,
        now: Date.now,
        readiness: async () => {
          const check = async (p: Promise<unknown>) => {
            try {
              await withTimeout(p, 2_000, 'check');
              return { ok: true };
            } catch (err) {
              return { ok: false, error: (err as Error).message };
            }
          };
          const [temporal, mongodb] = await Promise.all([
            check(connection.workflowService.getSystemInfo({})),
            check(inventory.ping()),
          ]);
          return { temporal, mongodb };
        },
      };

      const boot = await keys.bootstrap(config.bootstrapApiKey, new Date());
      adminKeyLine = adminKeyMessage(config, boot);
      const { adminEmail, adminPassword } = config.identity;
      if (adminEmail !== undefined && adminPassword !== undefined) {
        const created = await users.insertIfMissing({
          email: adminEmail,
          org: boot.org,
          role: 'platform-admin',
          passwordHash: () => hashPassword(adminPassword),
          createdBy: 'config:TWINFLOW_ADMIN_EMAIL',
          now: new Date(),
        });
        adminKeyLine += `\n  Admin user:      ${adminEmail} (platform admin${created ? ', created now' : ''})`;
      }

      const app = createApp(services);
      server = await new Promise<Server>((resolve) => {
        const s = serve({ fetch: app.fetch, port: config.api.port, hostname: config.api.host }, () =>
          resolve(s as Server),
        );
      });
      const srv = server;
      srv.on('clientError', handleClientError);
      closers.push(
        () =>
          new Promise<void>((resolve) => {
            srv.close(() => resolve());
            srv.closeAllConnections?.();
          }),
      );

      if (config.mqtt.enabled && config.mqtt.url) {
        const devices = new DeviceGateway(services, logger);
        const adapter = await ExternalMqttAdapter.start(
          { ...config.mqtt, url: config.mqtt.url, logger },
          devices,
          (org, deviceId) => devices.brokerSession(org, deviceId),
        );
        devices.attach(adapter);
        gateway = devices;
        broker = adapter;
        closers.push(() => adapter.close());
        mqttLine = `  MQTT:            ${config.mqtt.url.replace(/\/\/([^@/]+)@/, '//***@')} (external broker, organization ${config.mqtt.org}${config.mqtt.sharedGroup ? `, shared group ${config.mqtt.sharedGroup}` : ''})`;
      } else if (config.mqtt.enabled) {
        const devices = new DeviceGateway(services, logger);
        const started = await startBroker(config.mqtt, logger, devices);
        const running = started.broker;
        devices.attach(running);
        gateway = devices;
        broker = running;
        services.auth.onRevoked((hashes) => running.disconnectKeys(hashes));
        closers.push(() => running.close());
        mqttLine = `  MQTT:            mqtt://${config.mqtt.host}:${running.port}${started.note}`;
      }
    }

    say('');
    say('TwinFlow is running.');
    if (server) say(`  API:             http://${config.api.host}:${config.api.port}  (try GET /readyz)`);
    if (temporalUi) say(`  Temporal Web UI: ${temporalUi}`);
    say(
      `  Temporal:        ${temporalAddress} (namespace ${config.temporal.namespace}, task queue ${config.temporal.taskQueue})`,
    );
    say(`  MongoDB:         ${redactUri(mongoUri)} (database ${config.mongo.db})`);
    if (mqttLine) say(mqttLine);
    if (worker) say('  Worker:          running twins');
    if (adminKeyLine) say(adminKeyLine);
    if (stack.length > 0) say(`  Data:            ${config.dataDir}`);
    say('Press Ctrl-C to stop.');

    return { stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Starts the embedded broker: on TWINFLOW_MQTT_PORT when set (a taken port is an error naming it), otherwise
 * on 1883, or on a free port when 1883 is taken (another broker often runs there), saying so.
 */
async function startBroker(
  mqtt: Config['mqtt'],
  logger: Logger,
  hooks: DeviceGateway,
): Promise<{ broker: EmbeddedBroker; note: string }> {
  const start = (port: number) => EmbeddedBroker.start({ port, host: mqtt.host, logger }, hooks);
  const inUse = (err: unknown) => (err as { code?: string }).code === 'EADDRINUSE';
  if (mqtt.port !== undefined) {
    try {
      return { broker: await start(mqtt.port), note: '' };
    } catch (err) {
      if (inUse(err)) throw new PortInUseError(mqtt.port, 'TWINFLOW_MQTT_PORT', 'the MQTT broker');
      throw err;
    }
  }
  try {
    return { broker: await start(1883), note: '' };
  } catch (err) {
    if (!inUse(err)) throw err;
    return { broker: await start(0), note: ' (1883 is taken; set TWINFLOW_MQTT_PORT to choose)' };
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
  let running: Running;
  try {
    running = await run(config);
  } catch (err) {
    if (err instanceof ToolMissingError || err instanceof PortInUseError) {
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
}

void main();
