// A Temporal server on PostgreSQL for the optional benchmark mode (BENCH_TEMPORAL=postgres): its config for one
// machine, databases of its own per run with the schema set up by temporal-sql-tool, and the namespace and search
// attributes TwinFlow needs.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { DEV_SERVER_DYNAMIC_CONFIG, type DynamicConfig } from './dev-server-config';
import { type ManagedProcess, getFreePort, launch } from './local-stack';
import { registerSearchAttributes } from './search-attributes';
import type { TemporalServerTools } from './tools';

export interface PostgresTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
}

export interface TemporalDatabases {
  readonly main: string;
  readonly visibility: string;
}

/** Each Temporal service's gRPC and membership ports; the frontend also serves HTTP. */
export interface TemporalServerPorts {
  readonly frontend: number;
  readonly frontendHttp: number;
  readonly frontendMembership: number;
  readonly history: number;
  readonly historyMembership: number;
  readonly matching: number;
  readonly matchingMembership: number;
  readonly worker: number;
  readonly workerMembership: number;
}

/**
 * TwinFlow's dev-server tuning plus what `temporal server start-dev` (CLI 1.5.1) sets on its own, so that both
 * servers run the same dynamic config; only the namespace refresh is added, so a namespace registered at start
 * is usable within a second instead of ten.
 */
export const POSTGRES_DYNAMIC_CONFIG: DynamicConfig = {
  'history.hostLevelCacheMaxSize': 8096,
  'frontend.namespaceRPS.visibility': 100,
  'system.forceSearchAttributesCacheRefreshOnRead': true,
  'frontend.persistenceMaxQPS': 10000,
  'history.persistenceMaxQPS': 45000,
  'system.namespaceCacheRefreshInterval': '1s',
  ...DEV_SERVER_DYNAMIC_CONFIG,
};

/** Database names for one run: a run never meets another's data, and a name is plain PostgreSQL. */
export function temporalDatabaseNames(runId: string): TemporalDatabases {
  if (!/^[a-z0-9_]{1,40}$/.test(runId))
    throw new Error(`run id ${JSON.stringify(runId)} must be 1 to 40 of a-z, 0-9 and _`);
  return { main: `twinflow_temporal_${runId}`, visibility: `twinflow_temporal_${runId}_visibility` };
}

/** The server's dynamic config file: each key with one unconstrained value. */
export function dynamicConfigYaml(config: DynamicConfig): string {
  return Object.entries(config)
    .map(([key, value]) => `${key}:\n  - value: ${JSON.stringify(value)}\n`)
    .join('');
}

function datastore(pg: PostgresTarget, database: string, maxConns: number): string[] {
  return [
    '    sql:',
    '      pluginName: "postgres12"',
    `      databaseName: ${JSON.stringify(database)}`,
    `      connectAddr: ${JSON.stringify(`${pg.host}:${pg.port}`)}`,
    '      connectProtocol: "tcp"',
    `      user: ${JSON.stringify(pg.user)}`,
    `      password: ${JSON.stringify(pg.password ?? '')}`,
    `      maxConns: ${maxConns}`,
    `      maxIdleConns: ${maxConns}`,
    '      maxConnLifetime: "1h"',
  ];
}

function service(grpc: number, membership: number, http?: number): string[] {
  return [
    '    rpc:',
    `      grpcPort: ${grpc}`,
    `      membershipPort: ${membership}`,
    '      bindOnLocalHost: true',
    ...(http === undefined ? [] : [`      httpPort: ${http}`]),
  ];
}

export interface PostgresServerConfigOptions {
  readonly pg: PostgresTarget;
  readonly databases: TemporalDatabases;
  readonly ports: TemporalServerPorts;
  readonly dynamicConfigFile: string;
  /** One machine: one shard, as the dev server has; more only spread one host's work thinner. */
  readonly shards?: number;
}

/** The server's static config (YAML): PostgreSQL for history and visibility, every service on loopback. */
export function postgresServerConfig(o: PostgresServerConfigOptions): string {
  const p = o.ports;
  return [
    'log:',
    '  stdout: true',
    '  level: warn',
    'persistence:',
    '  defaultStore: postgres-default',
    '  visibilityStore: postgres-visibility',
    `  numHistoryShards: ${o.shards ?? 1}`,
    '  datastores:',
    '    postgres-default:',
    ...datastore(o.pg, o.databases.main, 20).map((l) => `  ${l}`),
    '    postgres-visibility:',
    ...datastore(o.pg, o.databases.visibility, 10).map((l) => `  ${l}`),
    'global:',
    '  membership:',
    '    maxJoinDuration: 30s',
    '    broadcastAddress: "127.0.0.1"',
    'services:',
    '  frontend:',
    ...service(p.frontend, p.frontendMembership, p.frontendHttp).map((l) => `  ${l}`),
    '  history:',
    ...service(p.history, p.historyMembership).map((l) => `  ${l}`),
    '  matching:',
    ...service(p.matching, p.matchingMembership).map((l) => `  ${l}`),
    '  worker:',
    ...service(p.worker, p.workerMembership).map((l) => `  ${l}`),
    'clusterMetadata:',
    '  enableGlobalNamespace: false',
    '  failoverVersionIncrement: 10',
    '  masterClusterName: "active"',
    '  currentClusterName: "active"',
    '  clusterInformation:',
    '    active:',
    '      enabled: true',
    '      initialFailoverVersion: 1',
    '      rpcName: "frontend"',
    `      rpcAddress: "127.0.0.1:${p.frontend}"`,
    `      httpAddress: "127.0.0.1:${p.frontendHttp}"`,
    'dcRedirectionPolicy:',
    '  policy: "noop"',
    'publicClient:',
    `  hostPort: "127.0.0.1:${p.frontend}"`,
    'dynamicConfigClient:',
    `  filepath: ${JSON.stringify(o.dynamicConfigFile)}`,
    '  pollInterval: "10s"',
    '',
  ].join('\n');
}

/** temporal-sql-tool's arguments for one database: create it, then the versioned schema up to the latest. */
export function schemaSteps(
  pg: PostgresTarget,
  database: string,
  schema: 'temporal' | 'visibility',
): string[][] {
  const common = ['--plugin', 'postgres12', '--ep', pg.host, '--port', String(pg.port), '--user', pg.user];
  const withDb = [...common, ...(pg.password ? ['--password', pg.password] : []), '--db', database];
  return [
    [...withDb, 'create-database'],
    [...withDb, 'setup-schema', '--version', '0.0'],
    [...withDb, 'update-schema', '--schema-name', `postgresql/v12/${schema}`],
  ];
}

/** Answers why PostgreSQL cannot be used, or undefined when something accepts connections at its address. */
export function postgresUnreachable(pg: PostgresTarget, timeoutMs = 2_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: pg.host, port: pg.port });
    const done = (reason?: string) => {
      socket.destroy();
      resolve(reason);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer from ${pg.host}:${pg.port} within ${timeoutMs} ms`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (err) => done(`${pg.host}:${pg.port}: ${err.message}`));
  });
}

function runTool(bin: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => out.push(d));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0
        ? resolve()
        : reject(
            new Error(
              `${path.basename(bin)} ${args.join(' ')} failed (exit ${code}):\n${Buffer.concat(out).toString().slice(-1500)}`,
            ),
          ),
    );
  });
}

/** Highest port the server can record for membership: PostgreSQL keeps it in a smallint column. */
export const MEMBERSHIP_PORT_LIMIT = 32_767;

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A free loopback port from 10,000 to MEMBERSHIP_PORT_LIMIT: the system hands out ports above 32,767, which the
 * server cannot store for its membership ring ("value out of range for type smallint") and then exits.
 */
export async function freeMembershipPort(taken: ReadonlySet<number> = new Set()): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 10_000 + Math.floor(Math.random() * (MEMBERSHIP_PORT_LIMIT - 10_000));
    if (!taken.has(port) && (await canListen(port))) return port;
  }
  throw new Error(`no free port between 10000 and ${MEMBERSHIP_PORT_LIMIT} after 200 tries`);
}

async function freePorts(): Promise<TemporalServerPorts> {
  const taken = new Set<number>();
  const membership = async () => {
    const port = await freeMembershipPort(taken);
    taken.add(port);
    return port;
  };
  return {
    frontend: await getFreePort(),
    frontendHttp: await getFreePort(),
    frontendMembership: await membership(),
    history: await getFreePort(),
    historyMembership: await membership(),
    matching: await getFreePort(),
    matchingMembership: await membership(),
    worker: await getFreePort(),
    workerMembership: await membership(),
  };
}

/** Registers the namespace once the frontend answers, then waits until the namespace can be used. */
async function ensureNamespace(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 5_000 });
  try {
    await connection.workflowService
      .registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') })
      .catch((err: { code?: number }) => {
        if (err.code !== 6) throw err; // ALREADY_EXISTS
      });
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    await registerSearchAttributes(connection, namespace);
  } finally {
    await connection.close();
  }
}

export interface PostgresTemporal extends ManagedProcess {
  readonly address: string;
  readonly databases: TemporalDatabases;
  /** Stops the server and drops this run's databases. */
  stopAndDrop(): Promise<void>;
}

export interface PostgresTemporalOptions {
  readonly tools: TemporalServerTools;
  readonly pg: PostgresTarget;
  readonly runDir: string;
  readonly runId: string;
  readonly namespace: string;
}

/**
 * Creates this run's databases, starts the server on free ports, registers the namespace and search attributes;
 * on any failure, stops what it started and drops the databases again.
 */
export async function startPostgresTemporal(o: PostgresTemporalOptions): Promise<PostgresTemporal> {
  const databases = temporalDatabaseNames(o.runId);
  const configDir = path.join(o.runDir, 'config');
  mkdirSync(configDir, { recursive: true });
  const dynamicConfigFile = path.join(configDir, 'dynamic.yaml');
  writeFileSync(dynamicConfigFile, dynamicConfigYaml(POSTGRES_DYNAMIC_CONFIG));
  const ports = await freePorts();
  writeFileSync(
    path.join(configDir, 'development.yaml'),
    postgresServerConfig({ pg: o.pg, databases, ports, dynamicConfigFile }),
  );
  const address = `127.0.0.1:${ports.frontend}`;
  const ready = async () => {
    const connection = await Connection.connect({ address, connectTimeout: 1_000 });
    await connection.close();
    return true;
  };
  const args = ['--root', o.runDir, '--config', 'config', '--env', 'development', '--allow-no-auth', 'start'];
  const drop = async () => {
    for (const db of [databases.main, databases.visibility])
      await runTool(o.tools.sqlTool, [
        ...schemaSteps(o.pg, db, 'temporal')[0]!.slice(0, -1),
        'drop-database',
        '--force',
      ]);
  };
  let proc: ManagedProcess | undefined;
  try {
    for (const step of schemaSteps(o.pg, databases.main, 'temporal')) await runTool(o.tools.sqlTool, step);
    for (const step of schemaSteps(o.pg, databases.visibility, 'visibility'))
      await runTool(o.tools.sqlTool, step);
    proc = await launch('temporal-postgres', o.tools.server, args, o.runDir, [], ready, 120_000);
    await ensureNamespace(address, o.namespace);
  } catch (err) {
    await proc?.stop();
    await drop().catch(() => undefined);
    throw err;
  }
  const started = proc;
  return {
    ...started,
    address,
    databases,
    stopAndDrop: async () => {
      await started.stop();
      await drop();
    },
  };
}
