// Finds, downloads or builds the local servers: the Temporal CLI and a MongoDB-compatible server (mongod or FerretDB).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  FERRETDB_RELEASE,
  type ReleaseSource,
  TEMPORAL_RELEASE,
  downloadTool,
  downloadsDisabled,
  ferretdbSource,
  temporalSource,
} from './tool-download';

const TEMPORAL_CLI_VERSION = `v${TEMPORAL_RELEASE}`;
const FERRETDB_VERSION = `v${FERRETDB_RELEASE}`;
const REPO_ROOT = path.resolve(__dirname, '..');
const FERRETDB_SOURCE = path.join(REPO_ROOT, 'tools', 'ferretdb');

export type Log = (message: string) => void;

export class ToolMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToolMissingError';
  }
}

/** `ferretdb` is TwinFlow's Go launcher (tools/ferretdb); `ferretdb-release` is FerretDB's released binary, another CLI. */
export interface MongoTool {
  readonly kind: 'mongod' | 'ferretdb' | 'ferretdb-release';
  readonly path: string;
}

/** Seams for tests: where Go is (`() => undefined` acts as a machine without Go), and the download stall timeout. */
export interface ToolOptions {
  readonly findGo?: (env: NodeJS.ProcessEnv) => string | undefined;
  readonly downloadStallMs?: number;
}

function toolsCacheDir(env: NodeJS.ProcessEnv): string {
  if (env.TWINFLOW_TOOLS_DIR) return path.resolve(env.TWINFLOW_TOOLS_DIR);
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'twinflow', 'tools');
}

const isExecutable = (file: string): boolean => {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
};

function findOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

function findGo(env: NodeJS.ProcessEnv): string | undefined {
  return findOnPath('go', env) ?? ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'].find(isExecutable);
}

function explicitPath(env: NodeJS.ProcessEnv, variable: string): string | undefined {
  const value = env[variable];
  if (!value) return undefined;
  if (!isExecutable(value)) throw new ToolMissingError(`${variable}=${value} is not an executable file`);
  return value;
}

function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env: NodeJS.ProcessEnv; logFile: string },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => out.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      writeFileSync(options.logFile, Buffer.concat(out));
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${path.basename(cmd)} ${args.join(' ')} failed (exit ${code}); see ${options.logFile}:\n${Buffer.concat(out).toString().slice(-2000)}`,
          ),
        );
    });
  });
}

/** One build at a time per tool, across processes (two test runs, or a test run and `npm start`). */
async function withLock<T>(lockDir: string, log: Log, what: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 30 * 60_000;
  let told = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(path.join(lockDir, 'pid'), String(process.pid));
      break;
    } catch {
      const owner = Number(readFileSafe(path.join(lockDir, 'pid')));
      if (owner && !isAlive(owner)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for another process building ${what} (lock ${lockDir})`);
      if (!told) log(`Waiting for another TwinFlow process that is getting ${what}...`);
      told = true;
      await new Promise((r) => setTimeout(r, 2_000));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

const readFileSafe = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const goHowTo =
  'Install Go 1.24 or newer (https://go.dev/dl, or your package manager), or put the binary on PATH, or set its path in the variable named above.';

/** Tries the release download: logs its start and its outcome, and answers the reason when it failed. */
async function tryDownload(
  env: NodeJS.ProcessEnv,
  source: ReleaseSource | undefined,
  bin: string,
  log: Log,
  options: ToolOptions,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (downloadsDisabled(env)) return { ok: false, reason: 'TWINFLOW_OFFLINE is set' };
  if (!source) return { ok: false, reason: `no released build for ${process.platform}/${process.arch}` };
  log(`Downloading ${source.what} from ${source.baseUrl} (first run only)...`);
  const started = Date.now();
  const outcome = await downloadTool(source, bin, options.downloadStallMs);
  if (outcome.ok) log(`Downloaded ${source.what} in ${Math.round((Date.now() - started) / 1000)} s: ${bin}`);
  else log(`Could not download ${source.what}: ${outcome.reason}.`);
  return outcome;
}

/** Both ways out, or only Go where no release build exists for this platform. */
const waysOut = (source: ReleaseSource | undefined, variable: string): string =>
  source
    ? `Either let TwinFlow reach ${source.baseUrl} (or a mirror named in ${variable}), or: ${goHowTo}`
    : goHowTo;

/** The Temporal CLI: TWINFLOW_TEMPORAL_BIN, `temporal` on PATH, the tool cache, a verified release download, a Go build. */
export async function ensureTemporalCli(
  env: NodeJS.ProcessEnv,
  log: Log,
  options: ToolOptions = {},
): Promise<string> {
  const explicit = explicitPath(env, 'TWINFLOW_TEMPORAL_BIN');
  if (explicit) return explicit;
  const onPath = findOnPath('temporal', env);
  if (onPath) return onPath;
  const dir = path.join(toolsCacheDir(env), `temporal-${TEMPORAL_CLI_VERSION}`);
  const bin = path.join(dir, 'temporal');
  if (isExecutable(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  return withLock(`${dir}.lock`, log, 'the Temporal CLI', async () => {
    if (isExecutable(bin)) return bin;
    const source = temporalSource(env);
    const downloaded = await tryDownload(env, source, bin, log, options);
    if (downloaded.ok) return bin;
    const go = (options.findGo ?? findGo)(env);
    if (!go) {
      throw new ToolMissingError(
        `The Temporal CLI ${TEMPORAL_CLI_VERSION} is needed to run the embedded Temporal server and was not found ` +
          `(TWINFLOW_TEMPORAL_BIN, PATH, ${dir}). There was no download (${downloaded.reason}) and Go, to build it, ` +
          `is not installed. ${waysOut(source, 'TWINFLOW_TEMPORAL_DOWNLOAD_URL')} ` +
          'Or set TEMPORAL_ADDRESS to use a Temporal server you already run.',
      );
    }
    return buildTemporalCli(go, env, dir, bin, log);
  });
}

async function buildTemporalCli(
  go: string,
  env: NodeJS.ProcessEnv,
  dir: string,
  bin: string,
  log: Log,
): Promise<string> {
  log(
    `Building the Temporal CLI ${TEMPORAL_CLI_VERSION} with Go (first run only; a few minutes on 2 cores)...`,
  );
  const staging = `${dir}.staging`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const started = Date.now();
  await run(go, ['install', `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`], {
    env: { ...env, GOBIN: staging, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' },
    logFile: path.join(toolsCacheDir(env), 'temporal-build.log'),
  });
  renameSync(path.join(staging, 'temporal'), bin);
  rmSync(staging, { recursive: true, force: true });
  log(`Built the Temporal CLI in ${Math.round((Date.now() - started) / 1000)} s: ${bin}`);
  return bin;
}

/**
 * Which CLI a FerretDB binary named by the user speaks: the released one prints `version: ...` for `--version`;
 * TwinFlow's launcher (Go's flag package) rejects the flag.
 */
export function ferretdbKind(bin: string): 'ferretdb' | 'ferretdb-release' {
  const probe = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return probe.status === 0 && /^version:/m.test(probe.stdout ?? '') ? 'ferretdb-release' : 'ferretdb';
}

function ferretdbSourceHash(): string {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) h.update(readFileSync(path.join(FERRETDB_SOURCE, f)));
  return h.digest('hex').slice(0, 12);
}

/**
 * A MongoDB-compatible server: TWINFLOW_MONGOD_BIN or `mongod` on PATH, TWINFLOW_FERRETDB_BIN, a cached FerretDB,
 * else FerretDB built with Go or, without Go, FerretDB's released binary. The Go build comes first because its
 * launcher also indexes `_id` (tools/ferretdb/main.go: lookups by `_id` about 6 times faster), which the released
 * binary cannot do.
 */
export async function ensureMongoServer(
  env: NodeJS.ProcessEnv,
  log: Log,
  options: ToolOptions = {},
): Promise<MongoTool> {
  const mongod =
    explicitPath(env, 'TWINFLOW_MONGOD_BIN') ??
    (env.TWINFLOW_PREFER_FERRETDB ? undefined : findOnPath('mongod', env));
  if (mongod) return { kind: 'mongod', path: mongod };
  const explicit = explicitPath(env, 'TWINFLOW_FERRETDB_BIN');
  if (explicit) return { kind: ferretdbKind(explicit), path: explicit };
  const dir = path.join(toolsCacheDir(env), `ferretdb-${FERRETDB_VERSION}-${ferretdbSourceHash()}`);
  const bin = path.join(dir, 'twinflow-ferretdb');
  if (isExecutable(bin)) return { kind: 'ferretdb', path: bin };
  const releaseDir = path.join(toolsCacheDir(env), `ferretdb-${FERRETDB_VERSION}-release`);
  const releaseBin = path.join(releaseDir, 'ferretdb');
  if (isExecutable(releaseBin)) return { kind: 'ferretdb-release', path: releaseBin };
  const go = (options.findGo ?? findGo)(env);
  if (go) return { kind: 'ferretdb', path: await buildFerretdb(go, env, dir, bin, log) };
  mkdirSync(releaseDir, { recursive: true });
  return withLock(`${releaseDir}.lock`, log, 'FerretDB', async () => {
    if (isExecutable(releaseBin)) return { kind: 'ferretdb-release' as const, path: releaseBin };
    const source = ferretdbSource(env);
    const downloaded = await tryDownload(env, source, releaseBin, log, options);
    if (downloaded.ok) return { kind: 'ferretdb-release' as const, path: releaseBin };
    throw new ToolMissingError(
      `A MongoDB-compatible server is needed and none was found (TWINFLOW_MONGOD_BIN, mongod on PATH, TWINFLOW_FERRETDB_BIN, ${dir}, ${releaseDir}). ` +
        `There was no download of FerretDB ${FERRETDB_VERSION} (${downloaded.reason}) and Go, to build it, is not installed. ` +
        `${waysOut(source, 'TWINFLOW_FERRETDB_DOWNLOAD_URL')} ` +
        'Or set MONGODB_URI to use a MongoDB server you already run.',
    );
  });
}

async function buildFerretdb(
  go: string,
  env: NodeJS.ProcessEnv,
  dir: string,
  bin: string,
  log: Log,
): Promise<string> {
  if (!existsSync(path.join(FERRETDB_SOURCE, 'main.go')))
    throw new ToolMissingError(`FerretDB launcher source missing at ${FERRETDB_SOURCE}`);
  mkdirSync(dir, { recursive: true });
  return withLock(`${dir}.lock`, log, 'FerretDB', async () => {
    if (isExecutable(bin)) return bin;
    log(`Building FerretDB ${FERRETDB_VERSION} with Go (first run only; a few minutes on 2 cores)...`);
    const started = Date.now();
    const staging = `${bin}.staging`;
    await run(go, ['build', '-o', staging, '.'], {
      cwd: FERRETDB_SOURCE,
      env: { ...env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
      logFile: path.join(toolsCacheDir(env), 'ferretdb-build.log'),
    });
    renameSync(staging, bin);
    log(`Built FerretDB in ${Math.round((Date.now() - started) / 1000)} s: ${bin}`);
    return bin;
  });
}

/** The Temporal server release the CLI's dev server embeds (CLI v1.5.1): the PostgreSQL mode runs the same one. */
export const TEMPORAL_SERVER_VERSION = 'v1.29.1';

export interface TemporalServerTools {
  /** `go.temporal.io/server/cmd/server`. */
  readonly server: string;
  /** `go.temporal.io/server/cmd/tools/sql`, which carries the SQL schemas it sets up. */
  readonly sqlTool: string;
}

/** The Temporal server and its SQL schema tool from the tool cache, else built with Go (no released build is used). */
export async function ensureTemporalServer(
  env: NodeJS.ProcessEnv,
  log: Log,
  options: ToolOptions = {},
): Promise<TemporalServerTools> {
  const dir = path.join(toolsCacheDir(env), `temporal-server-${TEMPORAL_SERVER_VERSION}`);
  const tools = { server: path.join(dir, 'temporal-server'), sqlTool: path.join(dir, 'temporal-sql-tool') };
  const built = () => isExecutable(tools.server) && isExecutable(tools.sqlTool);
  if (built()) return tools;
  const go = (options.findGo ?? findGo)(env);
  if (!go)
    throw new ToolMissingError(
      `The Temporal server ${TEMPORAL_SERVER_VERSION} is built with Go, and Go is not installed (${dir} is empty). ${goHowTo}`,
    );
  mkdirSync(dir, { recursive: true });
  return withLock(`${dir}.lock`, log, 'the Temporal server', async () => {
    if (built()) return tools;
    log(
      `Building the Temporal server ${TEMPORAL_SERVER_VERSION} with Go (first run only; several minutes on 2 cores)...`,
    );
    const started = Date.now();
    const staging = `${dir}.staging`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    const mod = `go.temporal.io/server`;
    await run(
      go,
      [
        'install',
        `${mod}/cmd/server@${TEMPORAL_SERVER_VERSION}`,
        `${mod}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`,
      ],
      {
        env: { ...env, GOBIN: staging, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' },
        logFile: path.join(toolsCacheDir(env), 'temporal-server-build.log'),
      },
    );
    renameSync(path.join(staging, 'sql'), tools.sqlTool);
    renameSync(path.join(staging, 'server'), tools.server);
    rmSync(staging, { recursive: true, force: true });
    log(`Built the Temporal server in ${Math.round((Date.now() - started) / 1000)} s: ${dir}`);
    return tools;
  });
}
