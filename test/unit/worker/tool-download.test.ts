// Covers the release downloads of the local servers over real HTTP on loopback: cache, checksum, fallback, offline.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mongoServerArgs } from '../../../worker/local-stack';
import { ferretdbSource, parseChecksums, temporalSource } from '../../../worker/tool-download';
import { ToolMissingError, ensureMongoServer, ensureTemporalCli, ferretdbKind } from '../../../worker/tools';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const noGo = { findGo: () => undefined };

/** A release server: serves `files` by path, answers 404 otherwise, and counts what was asked. */
async function startReleaseServer(files: Map<string, Buffer>) {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const body = files.get(req.url ?? '');
    res.writeHead(body ? 200 : 404).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A tar.gz holding one `temporal` shell script, as the CLI's release archives hold the binary at the top. */
function temporalArchive(dir: string): Buffer {
  const src = mkdtempSync(path.join(dir, 'src-'));
  writeFileSync(path.join(src, 'temporal'), '#!/bin/sh\necho "temporal version 1.5.1"\n', { mode: 0o755 });
  writeFileSync(path.join(src, 'LICENSE'), 'MIT\n');
  const file = path.join(dir, 'archive.tar.gz');
  // The system tar writes it, so the archive does not come from the reader under test.
  execFileSync('tar', ['-czf', file, '-C', src, 'LICENSE', 'temporal']);
  rmSync(src, { recursive: true });
  return readFileSync(file);
}

const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.join(e.parentPath, e.name));

const isExecutable = (file: string): boolean => {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

describe('release downloads of the local servers', () => {
  let tmp: string;
  let cache: string;
  let lines: string[];
  const log = (line: string) => lines.push(line);
  const baseEnv = (): NodeJS.ProcessEnv => ({ PATH: '/usr/bin:/bin', TWINFLOW_TOOLS_DIR: cache });

  beforeEach(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'twinflow-download-'));
    cache = path.join(tmp, 'cache');
    lines = [];
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  const temporalAsset = temporalSource({})!.asset;

  async function temporalRelease(sumOf?: (archive: Buffer) => string) {
    const archive = temporalArchive(tmp);
    const sums = `${'0'.repeat(64)}  temporal_cli_1.5.1_windows_amd64.zip\n${(sumOf ?? sha256)(archive)}  ${temporalAsset}\n`;
    return startReleaseServer(
      new Map([
        [`/temporal/${temporalAsset}`, archive],
        ['/temporal/checksums.txt', Buffer.from(sums)],
      ]),
    );
  }

  it('downloads the Temporal CLI into the cache, runnable, and does not download it again', async () => {
    const server = await temporalRelease();
    try {
      const env = { ...baseEnv(), TWINFLOW_TEMPORAL_DOWNLOAD_URL: `${server.url}/temporal/` };
      const bin = await ensureTemporalCli(env, log, noGo);
      expect(bin.startsWith(cache)).toBe(true);
      expect(isExecutable(bin)).toBe(true);
      expect(execFileSync(bin, ['--version']).toString()).toContain('temporal version 1.5.1');
      expect(filesUnder(cache)).toEqual([bin]);
      const asked = server.requests.length;
      expect(asked).toBe(2);
      expect(await ensureTemporalCli(env, log, noGo)).toBe(bin);
      expect(server.requests.length).toBe(asked);
    } finally {
      await server.close();
    }
  });

  it("reads goreleaser's default sums file name when the release has no checksums.txt", async () => {
    const archive = temporalArchive(tmp);
    const server = await startReleaseServer(
      new Map([
        [`/${temporalAsset}`, archive],
        ['/temporal_cli_1.5.1_checksums.txt', Buffer.from(`${sha256(archive)}  ${temporalAsset}\n`)],
      ]),
    );
    try {
      const env = { ...baseEnv(), TWINFLOW_TEMPORAL_DOWNLOAD_URL: server.url };
      const bin = await ensureTemporalCli(env, log, noGo);
      expect(execFileSync(bin, ['--version']).toString()).toContain('temporal version 1.5.1');
      expect(server.requests).toEqual([
        '/checksums.txt',
        '/temporal_cli_1.5.1_checksums.txt',
        `/${temporalAsset}`,
      ]);
    } finally {
      await server.close();
    }
  });

  it('caches nothing when the sum does not match, and says both ways out when Go is absent too', async () => {
    const server = await temporalRelease(() => 'f'.repeat(64));
    try {
      const env = { ...baseEnv(), TWINFLOW_TEMPORAL_DOWNLOAD_URL: `${server.url}/temporal` };
      const failure = ensureTemporalCli(env, log, noGo);
      await expect(failure).rejects.toThrow(ToolMissingError);
      await expect(failure).rejects.toThrow(/SHA-256 of .* is [0-9a-f]{64}, the published sum is f{64}/);
      await expect(failure).rejects.toThrow(/TWINFLOW_TEMPORAL_DOWNLOAD_URL.*Install Go/);
      expect(filesUnder(cache)).toEqual([]);
      expect(lines.filter((l) => l.startsWith('Could not download'))).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('builds with Go when the download fails', async () => {
    const server = await temporalRelease(() => 'f'.repeat(64));
    // A stand-in for `go install`: it writes the binary into GOBIN, as the real one does.
    const go = path.join(tmp, 'go');
    writeFileSync(
      go,
      '#!/bin/sh\nprintf \'#!/bin/sh\\necho built\\n\' > "$GOBIN/temporal"\nchmod +x "$GOBIN/temporal"\n',
      {
        mode: 0o755,
      },
    );
    try {
      const env = { ...baseEnv(), TWINFLOW_TEMPORAL_DOWNLOAD_URL: `${server.url}/temporal` };
      const bin = await ensureTemporalCli(env, log, { findGo: () => go });
      expect(execFileSync(bin).toString()).toBe('built\n');
      expect(lines.some((l) => l.startsWith('Building the Temporal CLI'))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('falls back at once when the server refuses connections', async () => {
    const server = await startReleaseServer(new Map());
    await server.close();
    const env = { ...baseEnv(), TWINFLOW_TEMPORAL_DOWNLOAD_URL: server.url };
    await expect(ensureTemporalCli(env, log, noGo)).rejects.toThrow(/ECONNREFUSED/);
    expect(filesUnder(cache)).toEqual([]);
  });

  it('gives up on a server that stops answering', async () => {
    const stalled = http.createServer(() => undefined);
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    const { port } = stalled.address() as AddressInfo;
    try {
      const env = { ...baseEnv(), TWINFLOW_TEMPORAL_DOWNLOAD_URL: `http://127.0.0.1:${port}` };
      const failure = ensureTemporalCli(env, log, { ...noGo, downloadStallMs: 300 });
      await expect(failure).rejects.toThrow(/no progress for 0.3 s/);
    } finally {
      stalled.closeAllConnections();
      await new Promise((resolve) => stalled.close(resolve));
    }
  });

  it('gives up on a download whose body stops coming, and caches nothing', async () => {
    const sums = `${'a'.repeat(64)}  ${temporalAsset}\n`;
    const stalled = http.createServer((req, res) => {
      if (req.url === '/checksums.txt') return void res.end(sums);
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000));
    });
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    const { port } = stalled.address() as AddressInfo;
    try {
      const env = { ...baseEnv(), TWINFLOW_TEMPORAL_DOWNLOAD_URL: `http://127.0.0.1:${port}` };
      const failure = ensureTemporalCli(env, log, { ...noGo, downloadStallMs: 300 });
      await expect(failure).rejects.toThrow(/no progress for 0.3 s/);
      expect(filesUnder(cache)).toEqual([]);
    } finally {
      stalled.closeAllConnections();
      await new Promise((resolve) => stalled.close(resolve));
    }
  });

  it('asks nothing of the network when TWINFLOW_OFFLINE is set', async () => {
    const server = await temporalRelease();
    try {
      const env = { ...baseEnv(), TWINFLOW_OFFLINE: '1', TWINFLOW_TEMPORAL_DOWNLOAD_URL: server.url };
      await expect(ensureTemporalCli(env, log, noGo)).rejects.toThrow(/TWINFLOW_OFFLINE/);
      expect(server.requests).toEqual([]);
    } finally {
      await server.close();
    }
  });

  const onLinux = process.platform === 'linux' ? it : it.skip;

  onLinux('downloads FerretDB without Go, as the release binary the launcher knows by its kind', async () => {
    const binary = Buffer.from('#!/bin/sh\necho "ferretdb v1.24.0"\n');
    const asset = ferretdbSource({})!.asset;
    const server = await startReleaseServer(
      new Map([
        [`/ferretdb/${asset}`, binary],
        ['/ferretdb/SHA256SUMS', Buffer.from(`${sha256(binary)}  ${asset}\n`)],
      ]),
    );
    try {
      const env = {
        ...baseEnv(),
        TWINFLOW_PREFER_FERRETDB: '1',
        TWINFLOW_FERRETDB_DOWNLOAD_URL: `${server.url}/ferretdb`,
      };
      const tool = await ensureMongoServer(env, log, noGo);
      expect(tool.kind).toBe('ferretdb-release');
      expect(isExecutable(tool.path)).toBe(true);
      expect(execFileSync(tool.path).toString()).toContain('ferretdb v1.24.0');
      const asked = server.requests.length;
      expect(await ensureMongoServer(env, log, noGo)).toEqual(tool);
      expect(server.requests.length).toBe(asked);
    } finally {
      await server.close();
    }
  });

  onLinux('names both ways out when FerretDB cannot be downloaded and Go is absent', async () => {
    const server = await startReleaseServer(new Map());
    try {
      const env = {
        ...baseEnv(),
        TWINFLOW_PREFER_FERRETDB: '1',
        TWINFLOW_FERRETDB_DOWNLOAD_URL: server.url,
      };
      const failure = ensureMongoServer(env, log, noGo);
      await expect(failure).rejects.toThrow(ToolMissingError);
      await expect(failure).rejects.toThrow(
        /no checksums file.*TWINFLOW_FERRETDB_DOWNLOAD_URL.*Install Go.*MONGODB_URI/,
      );
    } finally {
      await server.close();
    }
  });
});

describe('ferretdbKind', () => {
  let tmp: string;
  beforeEach(() => (tmp = mkdtempSync(path.join(os.tmpdir(), 'twinflow-kind-'))));
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));
  const script = (body: string): string => {
    const file = path.join(tmp, 'ferretdb');
    writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  };

  it('tells the released binary, which prints its version, from the launcher, which rejects the flag', () => {
    expect(ferretdbKind(script('echo "version: v1.24.0"; echo "commit: abc"'))).toBe('ferretdb-release');
    expect(ferretdbKind(script('echo "flag provided but not defined: -version" >&2; exit 2'))).toBe(
      'ferretdb',
    );
  });
});

describe('parseChecksums', () => {
  const a = 'a'.repeat(64);
  const b = 'B'.repeat(64);

  it('answers the sum on the line that names the asset, in text or binary mode', () => {
    const text = `${a}  other.tar.gz\n${b} *temporal_cli_1.5.1_linux_amd64.tar.gz\n`;
    expect(parseChecksums(text, 'temporal_cli_1.5.1_linux_amd64.tar.gz')).toBe('b'.repeat(64));
    expect(parseChecksums(text, 'other.tar.gz')).toBe(a);
  });

  it('answers nothing for an asset that is not listed or a line that is not a sum', () => {
    expect(parseChecksums(`${a}  other.tar.gz\n`, 'temporal.tar.gz')).toBeUndefined();
    expect(parseChecksums('abc  temporal.tar.gz\n', 'temporal.tar.gz')).toBeUndefined();
  });
});

describe('release sources', () => {
  it('names the assets after the release layouts, and only for platforms that have a release build', () => {
    expect(temporalSource({}, 'darwin', 'arm64')?.asset).toBe('temporal_cli_1.5.1_darwin_arm64.tar.gz');
    expect(temporalSource({}, 'linux', 'x64')?.baseUrl).toBe(
      'https://github.com/temporalio/cli/releases/download/v1.5.1',
    );
    expect(temporalSource({}, 'win32', 'x64')).toBeUndefined();
    expect(ferretdbSource({}, 'linux', 'arm64')?.asset).toBe('ferretdb-linux-arm64');
    expect(ferretdbSource({}, 'darwin', 'arm64')).toBeUndefined();
    expect(
      ferretdbSource({ TWINFLOW_FERRETDB_CHECKSUMS: 'sums.txt' }, 'linux', 'x64')?.checksumFiles,
    ).toEqual(['sums.txt']);
  });
});

describe('mongoServerArgs', () => {
  it('launches the released FerretDB with its own flags: SQLite in the data dir, no telemetry, no debug port', () => {
    const args = mongoServerArgs(
      { kind: 'ferretdb-release', path: '/x/ferretdb' },
      '127.0.0.1',
      27100,
      '/d/ferretdb',
    );
    expect(args).toEqual([
      '--listen-addr=127.0.0.1:27100',
      '--handler=sqlite',
      '--sqlite-url=file:/d/ferretdb/?_txlock=immediate&_pragma=synchronous(normal)',
      '--state-dir=/d/ferretdb',
      '--debug-addr=-',
      '--telemetry=disable',
      '--log-level=warn',
    ]);
    expect(mongoServerArgs({ kind: 'ferretdb', path: '/x/f' }, '127.0.0.1', 27100, '/d')).toEqual([
      '--listen',
      '127.0.0.1:27100',
      '--data-dir',
      '/d',
      '--log-level',
      'warn',
      '--sqlite-params',
      '_txlock=immediate&_pragma=synchronous(normal)',
    ]);
  });

  it('syncs every commit of the embedded store when asked to', () => {
    expect(mongoServerArgs({ kind: 'ferretdb', path: '/x/f' }, '127.0.0.1', 27100, '/d', 'full').at(-1)).toBe(
      '_txlock=immediate&_pragma=synchronous(full)',
    );
    expect(
      mongoServerArgs({ kind: 'ferretdb-release', path: '/x/f' }, '127.0.0.1', 27100, '/d', 'full'),
    ).toContain('--sqlite-url=file:/d/?_txlock=immediate&_pragma=synchronous(full)');
    expect(mongoServerArgs({ kind: 'mongod', path: '/x/mongod' }, '127.0.0.1', 27100, '/d', 'full')).toEqual([
      '--dbpath',
      '/d',
      '--port',
      '27100',
      '--bind_ip',
      '127.0.0.1',
      '--quiet',
    ]);
  });
});
