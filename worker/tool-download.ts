// Downloads released builds of the local servers (Temporal CLI, FerretDB), checked against their published SHA-256 sums.
import { createHash } from 'node:crypto';
import { chmodSync, createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import * as tar from 'tar';

/** Give up when a download makes no progress for this long (covers DNS, connect, TLS and a stalled body). */
const DOWNLOAD_STALL_MS = 20_000;

/** The versions TwinFlow runs (tools.ts builds the same ones with Go). */
export const TEMPORAL_RELEASE = '1.5.1';
export const FERRETDB_RELEASE = '1.24.0';

const TEMPORAL_DOWNLOAD_URL = `https://github.com/temporalio/cli/releases/download/v${TEMPORAL_RELEASE}`;
const FERRETDB_DOWNLOAD_URL = `https://github.com/FerretDB/FerretDB/releases/download/v${FERRETDB_RELEASE}`;
/**
 * The CLI's .goreleaser.yml names its sums `checksums.txt`; goreleaser's default name is tried when that one is
 * absent, so either layout of the release works.
 */
const TEMPORAL_CHECKSUM_FILES = ['checksums.txt', `temporal_cli_${TEMPORAL_RELEASE}_checksums.txt`] as const;
/**
 * FerretDB v1 publishes static Linux binaries named `ferretdb-linux-<arch>`; the name of its sums file could not be
 * confirmed, so it is a constant (override: TWINFLOW_FERRETDB_CHECKSUMS) and the tests use a local server.
 */
const FERRETDB_CHECKSUM_FILE = 'SHA256SUMS';

/** What to fetch: `asset` beside one of `checksumFiles` under `baseUrl`; `archiveEntry` when the asset is a tar.gz. */
export interface ReleaseSource {
  readonly what: string;
  readonly baseUrl: string;
  readonly asset: string;
  readonly checksumFiles: readonly string[];
  readonly archiveEntry?: string;
}

export type DownloadOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: string };

class DownloadError extends Error {}

const GO_ARCH: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64' };

export function temporalSource(
  env: NodeJS.ProcessEnv,
  platform: string = process.platform,
  arch: string = process.arch,
): ReleaseSource | undefined {
  const goArch = GO_ARCH[arch];
  if ((platform !== 'linux' && platform !== 'darwin') || !goArch) return undefined;
  return {
    what: `the Temporal CLI v${TEMPORAL_RELEASE}`,
    baseUrl: trimSlash(env.TWINFLOW_TEMPORAL_DOWNLOAD_URL || TEMPORAL_DOWNLOAD_URL),
    asset: `temporal_cli_${TEMPORAL_RELEASE}_${platform}_${goArch}.tar.gz`,
    checksumFiles: TEMPORAL_CHECKSUM_FILES,
    archiveEntry: 'temporal',
  };
}

/** FerretDB releases static binaries for Linux only; elsewhere it is built with Go. */
export function ferretdbSource(
  env: NodeJS.ProcessEnv,
  platform: string = process.platform,
  arch: string = process.arch,
): ReleaseSource | undefined {
  const goArch = GO_ARCH[arch];
  if (platform !== 'linux' || !goArch) return undefined;
  return {
    what: `FerretDB v${FERRETDB_RELEASE}`,
    baseUrl: trimSlash(env.TWINFLOW_FERRETDB_DOWNLOAD_URL || FERRETDB_DOWNLOAD_URL),
    asset: `ferretdb-linux-${goArch}`,
    checksumFiles: [env.TWINFLOW_FERRETDB_CHECKSUMS || FERRETDB_CHECKSUM_FILE],
  };
}

const trimSlash = (url: string): string => url.replace(/\/+$/, '');

export const downloadsDisabled = (env: NodeJS.ProcessEnv): boolean =>
  ['1', 'true', 'yes', 'on'].includes((env.TWINFLOW_OFFLINE ?? '').toLowerCase());

/** The sum listed for `asset` in a sha256sum-style file ("<hex>  <name>", or "<hex> *<name>" in binary mode). */
export function parseChecksums(text: string, asset: string): string | undefined {
  for (const line of text.split('\n')) {
    const m = /^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$/.exec(line);
    if (m && (m[2] === asset || m[2] === `./${asset}`)) return m[1]!.toLowerCase();
  }
  return undefined;
}

/** Downloads, verifies and installs `source` at `bin` (rename from a staging folder beside it, so never half-written). */
export async function downloadTool(
  source: ReleaseSource,
  bin: string,
  stallMs = DOWNLOAD_STALL_MS,
): Promise<DownloadOutcome> {
  const staging = `${bin}.download-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    const expected = await fetchChecksum(source, stallMs);
    const file = path.join(staging, source.asset);
    const actual = await fetchToFile(`${source.baseUrl}/${source.asset}`, file, stallMs);
    if (actual !== expected)
      throw new DownloadError(`SHA-256 of ${source.asset} is ${actual}, the published sum is ${expected}`);
    const binary = source.archiveEntry
      ? await extractEntry(file, source.archiveEntry, path.join(staging, 'unpacked'))
      : file;
    chmodSync(binary, 0o755);
    renameSync(binary, bin);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: explain(err, stallMs) };
  } finally {
    // A failed or mismatching download leaves nothing behind in the cache.
    rmSync(staging, { recursive: true, force: true });
  }
}

async function fetchChecksum(source: ReleaseSource, stallMs: number): Promise<string> {
  for (const name of source.checksumFiles) {
    const url = `${source.baseUrl}/${name}`;
    const text = await fetchText(url, stallMs);
    if (text === undefined) continue;
    const sum = parseChecksums(text, source.asset);
    if (!sum) throw new DownloadError(`${url} lists no sum for ${source.asset}`);
    return sum;
  }
  throw new DownloadError(`no checksums file (${source.checksumFiles.join(', ')}) at ${source.baseUrl}`);
}

/** Aborts a request when nothing arrives for `ms`; `kick` on every chunk so a slow but moving download goes on. */
function watchdog(ms: number) {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const kick = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new DownloadError(`no progress for ${ms / 1000} s`)), ms);
  };
  kick();
  return { signal: controller.signal, kick, stop: () => clearTimeout(timer) };
}

/** fetch, with the failure named by host and cause: fetch's own message is only "fetch failed". */
async function request(url: string, signal: AbortSignal): Promise<Response> {
  try {
    return await fetch(url, { signal });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new DownloadError(
      `cannot reach ${new URL(url).host} (${cause?.code ?? cause?.message ?? String(err)})`,
    );
  }
}

/** The body of `url`, or undefined when the server says it has no such file (404). */
async function fetchText(url: string, stallMs: number): Promise<string | undefined> {
  const dog = watchdog(stallMs);
  try {
    const res = await request(url, dog.signal);
    if (res.status === 404) return undefined;
    if (!res.ok) throw new DownloadError(`HTTP ${res.status} from ${url}`);
    return await res.text();
  } finally {
    dog.stop();
  }
}

/** Streams `url` into `file` and answers its SHA-256 (hex). */
async function fetchToFile(url: string, file: string, stallMs: number): Promise<string> {
  const dog = watchdog(stallMs);
  try {
    const res = await request(url, dog.signal);
    if (!res.ok || !res.body) throw new DownloadError(`HTTP ${res.status} from ${url}`);
    const hash = createHash('sha256');
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        dog.kick();
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const body = Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>);
    await pipeline(body, tap, createWriteStream(file, { mode: 0o600 }));
    return hash.digest('hex');
  } finally {
    dog.stop();
  }
}

/** Unpacks one top-level file of a tar.gz; node-tar refuses absolute and `..` paths in the archive. */
async function extractEntry(archive: string, entry: string, into: string): Promise<string> {
  mkdirSync(into, { recursive: true });
  await tar.x({ file: archive, cwd: into, strict: true, filter: (p) => p.replace(/^\.\//, '') === entry });
  const out = path.join(into, entry);
  let isFile = false;
  try {
    isFile = statSync(out).isFile();
  } catch {
    // reported below
  }
  if (!isFile) throw new DownloadError(`${path.basename(archive)} holds no file named ${entry}`);
  return out;
}

/** One line a person can act on. */
function explain(err: unknown, stallMs: number): string {
  if (err instanceof DownloadError) return err.message;
  const e = err as Error | undefined;
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return `no progress for ${stallMs / 1000} s`;
  return String(e?.message ?? err);
}
