// Starts and stops the embedded servers (Temporal dev server, MongoDB-compatible server) as child processes.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { TWINFLOW_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { DEV_SERVER_DYNAMIC_CONFIG, type DynamicConfig } from './dev-server-config';
import type { Log, MongoTool } from './tools';
import { ensureMongoServer, ensureTemporalCli, isAlive } from './tools';

export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    readonly variable: string,
    what: string,
  ) {
    super(
      `Port ${port} for ${what} is already in use. Stop what uses it, or choose another port with ${variable}=<port>.`,
    );
    this.name = 'PortInUseError';
  }
}

function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export async function assertPortFree(
  port: number,
  variable: string,
  what: string,
  host = '127.0.0.1',
): Promise<void> {
  if (!(await isPortFree(port, host))) throw new PortInUseError(port, variable, what);
}

/** A free TCP port on loopback (for tests and benchmarks). */
export function getFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
// Last resort: a Node process that exits normally takes its servers with it.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
};

/** A server left behind by a TwinFlow process that was killed (SIGKILL) is stopped before a new one starts. */
async function stopStale(pidFile: string, binary: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8'));
  } catch {
    return;
  }
  if (pid > 0 && isAlive(pid) && cmdline(pid).includes(binary)) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(pidFile, { force: true });
}

function tail(file: string, chars = 1500): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-chars);
  } catch {
    return '(no log)';
  }
}

export interface PortCheck {
  readonly port: number;
  readonly variable: string;
  readonly what: string;
  readonly host: string;
}

/** Starts a server as a child process and waits until `isReady`; its log and pid file go in `runDir`. */
export async function launch(
  name: string,
  bin: string,
  args: string[],
  runDir: string,
  ports: readonly PortCheck[],
  isReady: () => Promise<boolean>,
  timeoutMs: number,
): Promise<ManagedProcess> {
  mkdirSync(runDir, { recursive: true });
  const pidFile = path.join(runDir, `${name}.pid`);
  const logFile = path.join(runDir, `${name}.log`);
  // First the server a killed TwinFlow left behind (it may hold the port), then the port check.
  await stopStale(pidFile, bin);
  for (const p of ports) await assertPortFree(p.port, p.variable, p.what, p.host);
  const fd = openSync(logFile, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  children.add(child);
  let exited: number | null | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = code ?? (signal ? -1 : null);
      children.delete(child);
      rmSync(pidFile, { force: true });
      resolve();
    });
  });
  child.once('error', () => undefined);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${bin})`);
  writeFileSync(pidFile, String(child.pid));

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited !== undefined)
      throw new Error(
        `${name} exited (code ${exited}) while starting; its log ${logFile} ends with:\n${tail(logFile)}`,
      );
    if (await isReady().catch(() => false)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `${name} did not become ready within ${timeoutMs / 1000} s; its log ${logFile} ends with:\n${tail(logFile)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    name,
    pid: child.pid,
    logFile,
    stop: async () => {
      if (exited !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
}

export interface TemporalDevServerOptions {
  readonly bin: string;
  readonly port: number;
  readonly uiPort: number;
  readonly ui: boolean;
  readonly dataDir: string;
  readonly namespace: string;
  /** Extra dynamic config on top of the base, e.g. a low continue-as-new threshold in tests. */
  readonly dynamicConfig?: DynamicConfig;
  /** Replaces TwinFlow's tuned config (worker/dev-server-config.ts); `{}` runs on the dev server's own defaults. */
  readonly baseDynamicConfig?: DynamicConfig;
  readonly host?: string;
}

export interface TemporalDevServer extends ManagedProcess {
  readonly address: string;
  readonly uiUrl?: string;
}

export async function startTemporalDevServer(o: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const host = o.host ?? '127.0.0.1';
  mkdirSync(o.dataDir, { recursive: true });
  const address = `${host}:${o.port}`;
  const args = [
    'server',
    'start-dev',
    '--ip',
    host,
    '--port',
    String(o.port),
    '--namespace',
    o.namespace,
    '--db-filename',
    path.join(o.dataDir, 'temporal.sqlite'),
    '--sqlite-pragma',
    'journal_mode=wal',
    '--sqlite-pragma',
    'synchronous=normal',
    '--log-level',
    'warn',
    ...Object.entries(TWINFLOW_SEARCH_ATTRIBUTES).flatMap(([k, t]) => ['--search-attribute', `${k}=${t}`]),
    ...Object.entries({ ...(o.baseDynamicConfig ?? DEV_SERVER_DYNAMIC_CONFIG), ...o.dynamicConfig }).flatMap(
      ([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`],
    ),
    ...(o.ui ? ['--ui-ip', host, '--ui-port', String(o.uiPort)] : ['--headless']),
  ];
  const ready = async (): Promise<boolean> => {
    const connection = await Connection.connect({ address, connectTimeout: 1_000 });
    try {
      await connection.workflowService.describeNamespace({ namespace: o.namespace });
      return true;
    } finally {
      await connection.close();
    }
  };
  const ports: PortCheck[] = [
    { port: o.port, variable: 'TWINFLOW_TEMPORAL_PORT', what: 'the Temporal server', host },
  ];
  if (o.ui)
    ports.push({ port: o.uiPort, variable: 'TWINFLOW_TEMPORAL_UI_PORT', what: 'the Temporal Web UI', host });
  const proc = await launch('temporal', o.bin, args, path.join(o.dataDir, 'run'), ports, ready, 120_000);
  return { ...proc, address, uiUrl: o.ui ? `http://${host}:${o.uiPort}` : undefined };
}

/**
 * How the embedded FerretDB's SQLite commits (its WAL mode). `normal`: a commit is written to the operating system
 * before it is acknowledged, and synced to the disk at checkpoints, so it survives any crash of the server or of
 * TwinFlow, while a power loss or an operating-system crash can take the last commits, as MongoDB's default write
 * concern can; an insert measured 0.55 ms of the server's CPU here against 1.06 ms with `full`, which syncs every
 * commit and survives those too. mongod keeps its own journal either way.
 */
export type EmbeddedStoreSync = 'normal' | 'full';

export interface MongoServerOptions {
  readonly tool: MongoTool;
  readonly port: number;
  readonly dataDir: string;
  readonly host?: string;
  /** Default `normal`. */
  readonly sync?: EmbeddedStoreSync;
}

export interface MongoServer extends ManagedProcess {
  readonly uri: string;
}

/** The command line for each kind of server: mongod, TwinFlow's FerretDB launcher, or FerretDB's released binary. */
export function mongoServerArgs(
  tool: MongoTool,
  host: string,
  port: number,
  dbDir: string,
  sync: EmbeddedStoreSync = 'normal',
): string[] {
  // Immediate transactions wait on the busy timeout instead of failing with SQLITE_BUSY when two writers meet.
  const sqliteParams = `_txlock=immediate&_pragma=synchronous(${sync})`;
  switch (tool.kind) {
    case 'mongod':
      return ['--dbpath', dbDir, '--port', String(port), '--bind_ip', host, '--quiet'];
    case 'ferretdb':
      return [
        '--listen',
        `${host}:${port}`,
        '--data-dir',
        dbDir,
        '--log-level',
        'warn',
        '--sqlite-params',
        sqliteParams,
      ];
    case 'ferretdb-release':
      return [
        `--listen-addr=${host}:${port}`,
        '--handler=sqlite',
        `--sqlite-url=file:${dbDir}/?${sqliteParams}`,
        // The state file (instance id) would land in the working directory; the debug HTTP server would take
        // port 8088, which a second stack on the machine would then fail to get.
        `--state-dir=${dbDir}`,
        '--debug-addr=-',
        '--telemetry=disable',
        '--log-level=warn',
      ];
  }
}

export async function startMongoServer(o: MongoServerOptions): Promise<MongoServer> {
  const host = o.host ?? '127.0.0.1';
  const dbDir = path.join(o.dataDir, o.tool.kind === 'mongod' ? 'mongodb' : 'ferretdb');
  mkdirSync(dbDir, { recursive: true });
  const args = mongoServerArgs(o.tool, host, o.port, dbDir, o.sync);
  const uri = `mongodb://${host}:${o.port}/`;
  const ready = async (): Promise<boolean> => {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 1_000, directConnection: true });
    try {
      await client.db('admin').command({ ping: 1 });
      return true;
    } finally {
      await client.close();
    }
  };
  const ports = [
    { port: o.port, variable: 'TWINFLOW_MONGODB_PORT', what: 'the MongoDB-compatible server', host },
  ];
  const proc = await launch(
    o.tool.kind === 'mongod' ? 'mongod' : 'ferretdb',
    o.tool.path,
    args,
    path.join(o.dataDir, 'run'),
    ports,
    ready,
    60_000,
  );
  return { ...proc, uri };
}

/**
 * A headless Temporal dev server and a MongoDB-compatible server on free ports under `dir`, for the test
 * suites and the history recorder: the tools are found, downloaded or built as for `npm start`.
 */
export async function startHeadlessServers(
  env: NodeJS.ProcessEnv,
  dir: string,
  log: Log,
  dynamicConfig?: DynamicConfig,
) {
  const [temporalBin, mongoTool] = await Promise.all([
    ensureTemporalCli(env, log),
    ensureMongoServer(env, log),
  ]);
  const [temporal, mongo] = await Promise.all([
    startTemporalDevServer({
      bin: temporalBin,
      port: await getFreePort(),
      uiPort: 0,
      ui: false,
      dataDir: path.join(dir, 'temporal'),
      namespace: 'default',
      ...(dynamicConfig ? { dynamicConfig } : {}),
    }),
    startMongoServer({ tool: mongoTool, port: await getFreePort(), dataDir: path.join(dir, 'mongo') }),
  ]);
  return { temporal, mongo, temporalBin, mongoTool };
}
