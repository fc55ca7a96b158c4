// The real-deployment files: docker-compose.yml renders (through `docker compose config` when the client has the
// compose plugin, otherwise through the yaml parser and compose's interpolation rules), refuses to render without
// TWINFLOW_BOOTSTRAP_API_KEY, wires the services together; the Dockerfile runs what tsconfig.build.json emits.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as ts from 'typescript';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../worker/config';

const root = path.resolve(__dirname, '..', '..');
const composeFile = path.join(root, 'docker-compose.yml');
const BOOTSTRAP_KEY = 'compose-test-bootstrap-key-0123456789abcdef';

// ---------- running docker compose ----------

/** The environment without anything that would change how the compose file renders. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'TWINFLOW_BOOTSTRAP_API_KEY' || k === 'TEMPORAL_POSTGRES_PASSWORD' || k.startsWith('COMPOSE_'))
      continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

const hasCompose = (() => {
  const r = spawnSync('docker', ['compose', 'version'], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  return r.status === 0;
})();

let emptyEnvDir: string;
beforeAll(() => {
  // An empty --env-file, so a developer's own .env cannot supply the key and hide a missing guard.
  emptyEnvDir = mkdtempSync(path.join(os.tmpdir(), 'twinflow-compose-'));
  writeFileSync(path.join(emptyEnvDir, 'empty.env'), '');
});
afterAll(() => rmSync(emptyEnvDir, { recursive: true, force: true }));

function compose(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(
    'docker',
    ['compose', '-f', 'docker-compose.yml', '--env-file', path.join(emptyEnvDir, 'empty.env'), ...args],
    {
      cwd: root,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  if (r.error) throw r.error;
  return r;
}

// ---------- compose's variable interpolation, for when docker is absent ----------

/** `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `$VAR`, `$$`, as compose does. */
function interpolate(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-|:\?|\?)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (
      match,
      name: string | undefined,
      op: string | undefined,
      arg: string | undefined,
      bare: string | undefined,
    ) => {
      if (match === '$$') return '$';
      if (bare !== undefined) return env[bare] ?? '';
      const v = env[name!];
      switch (op) {
        case undefined:
          return v ?? '';
        case ':-':
          return v ? v : (arg ?? '');
        case '-':
          return v ?? arg ?? '';
        case ':?':
          if (!v) throw new Error(`required variable ${name} is missing a value: ${arg}`);
          return v;
        default:
          if (v === undefined) throw new Error(`required variable ${name} is missing a value: ${arg}`);
          return v;
      }
    },
  );
}

function interpolateAll(node: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((n) => interpolateAll(n, env));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateAll(v, env)]));
  }
  return node;
}

// ---------- one normalized shape for `docker compose config --format json` and for the raw YAML ----------

interface ServiceModel {
  image?: string;
  build?: { context: string; dockerfile: string };
  restart?: string;
  environment: Record<string, string>;
  ports: string[];
  dependsOn: Record<string, string>;
  volumes: { type: string; source: string; target: string; readOnly: boolean }[];
  healthcheck: { disabled: boolean; test?: string[] };
}
interface ComposeModel {
  name?: string;
  services: Record<string, ServiceModel>;
  volumes: string[];
}

type Raw = Record<string, unknown>;
const asRecord = (v: unknown): Raw => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : {});

function normalizeEnvironment(env: unknown): Record<string, string> {
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((entry) => {
        const s = String(entry);
        const i = s.indexOf('=');
        return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(
    Object.entries(asRecord(env)).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)]),
  );
}

function normalizePort(p: unknown): string {
  if (typeof p === 'string' || typeof p === 'number') return String(p);
  const o = asRecord(p);
  const hostIp = o.host_ip ? `${String(o.host_ip)}:` : '';
  return `${hostIp}${String(o.published)}:${String(o.target)}`;
}

function normalizeVolume(v: unknown) {
  if (typeof v === 'string') {
    const [source = '', target = '', mode = ''] = v.split(':');
    const bind = source.startsWith('.') || source.startsWith('/');
    return {
      type: bind ? 'bind' : 'volume',
      source: bind ? path.resolve(root, source) : source,
      target,
      readOnly: mode.split(',').includes('ro'),
    };
  }
  const o = asRecord(v);
  const type = String(o.type);
  const source = String(o.source);
  return {
    type,
    source: type === 'bind' ? path.resolve(root, source) : source,
    target: String(o.target),
    readOnly: o.read_only === true,
  };
}

function normalizeService(raw: Raw): ServiceModel {
  const dependsOn: Record<string, string> = Array.isArray(raw.depends_on)
    ? Object.fromEntries(raw.depends_on.map((s) => [String(s), 'service_started']))
    : Object.fromEntries(
        Object.entries(asRecord(raw.depends_on)).map(([k, v]) => [
          k,
          String(asRecord(v).condition ?? 'service_started'),
        ]),
      );
  let build: ServiceModel['build'];
  if (typeof raw.build === 'string')
    build = { context: path.resolve(root, raw.build), dockerfile: 'Dockerfile' };
  else if (raw.build) {
    const b = asRecord(raw.build);
    build = {
      context: path.resolve(root, String(b.context ?? '.')),
      dockerfile: String(b.dockerfile ?? 'Dockerfile'),
    };
  }
  const hc = asRecord(raw.healthcheck);
  const test =
    hc.test === undefined
      ? undefined
      : Array.isArray(hc.test)
        ? hc.test.map(String)
        : ['CMD-SHELL', String(hc.test)];
  return {
    ...(raw.image === undefined ? {} : { image: String(raw.image) }),
    ...(build ? { build } : {}),
    ...(raw.restart === undefined ? {} : { restart: String(raw.restart) }),
    environment: normalizeEnvironment(raw.environment),
    ports: Array.isArray(raw.ports) ? raw.ports.map(normalizePort) : [],
    dependsOn,
    volumes: Array.isArray(raw.volumes) ? raw.volumes.map(normalizeVolume) : [],
    healthcheck: { disabled: hc.disable === true, ...(test ? { test } : {}) },
  };
}

function normalize(doc: unknown): ComposeModel {
  const d = asRecord(doc);
  return {
    ...(d.name === undefined ? {} : { name: String(d.name) }),
    services: Object.fromEntries(
      Object.entries(asRecord(d.services)).map(([k, v]) => [k, normalizeService(asRecord(v))]),
    ),
    volumes: Object.keys(asRecord(d.volumes)).sort(),
  };
}

/** The compose file as the YAML parser and compose's interpolation see it (throws like compose on a missing required variable). */
function modelFromYaml(env: NodeJS.ProcessEnv): ComposeModel {
  return normalize(interpolateAll(parseYaml(readFileSync(composeFile, 'utf8')), env));
}

function modelFromDocker(env: NodeJS.ProcessEnv): ComposeModel {
  const r = compose(['config', '--format', 'json'], env);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
  return normalize(JSON.parse(r.stdout));
}

// ---------- the Dockerfile ----------

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

function parseDockerfile(text: string): Instruction[][] {
  const logical = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const stages: Instruction[][] = [];
  const preamble: Instruction[] = [];
  for (const line of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const ins = { keyword: m[1]!.toUpperCase(), args: m[2]!.trim() };
    if (ins.keyword === 'FROM') stages.push([ins]);
    else (stages.at(-1) ?? preamble).push(ins);
  }
  return stages;
}

const dockerfileText = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfileText);
const runtime = stages.at(-1) ?? [];
const last = (keyword: string) => runtime.filter((i) => i.keyword === keyword).at(-1);
const execForm = (args: string): string[] => {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string'))
    throw new Error(`not an exec-form array: ${args}`);
  return parsed;
};
const runtimeEnv = (): Record<string, string> => {
  const env: Record<string, string> = {};
  for (const ins of runtime.filter((i) => i.keyword === 'ENV')) {
    for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g))
      env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  return env;
};

// ---------- the tests ----------

const mode = hasCompose ? 'docker compose config' : 'yaml parser (no docker compose on this machine)';
const withKey = () => cleanEnv({ TWINFLOW_BOOTSTRAP_API_KEY: BOOTSTRAP_KEY });
const model = (): ComposeModel => (hasCompose ? modelFromDocker(withKey()) : modelFromYaml(withKey()));

describe(`docker-compose.yml via ${mode}`, () => {
  it('renders when TWINFLOW_BOOTSTRAP_API_KEY is set', () => {
    if (hasCompose) {
      const r = compose(['config', '--quiet'], withKey());
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    }
    const m = modelFromYaml(withKey());
    expect(Object.keys(m.services).length).toBeGreaterThan(0);
  });

  it('refuses to render without TWINFLOW_BOOTSTRAP_API_KEY', () => {
    if (hasCompose) {
      const r = compose(['config', '--quiet'], cleanEnv());
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('TWINFLOW_BOOTSTRAP_API_KEY');
    }
    expect(() => modelFromYaml(cleanEnv())).toThrow(
      /required variable TWINFLOW_BOOTSTRAP_API_KEY is missing a value/,
    );
    expect(() => modelFromYaml(cleanEnv({ TWINFLOW_BOOTSTRAP_API_KEY: '' }))).toThrow(
      /TWINFLOW_BOOTSTRAP_API_KEY/,
    );
  });

  if (hasCompose) {
    it('reads the same in the yaml parser as in docker compose', () => {
      expect(modelFromYaml(withKey())).toEqual(modelFromDocker(withKey()));
    });
  }

  it('has every service of the deployment, restarting unless stopped', () => {
    const m = model();
    expect(m.name).toBe('twinflow');
    expect(Object.keys(m.services).sort()).toEqual([
      'mongo',
      'mosquitto',
      'postgresql',
      'temporal',
      'temporal-ui',
      'twinflow-api',
      'twinflow-worker',
    ]);
    for (const [name, s] of Object.entries(m.services))
      expect({ name, restart: s.restart }).toEqual({ name, restart: 'unless-stopped' });
    expect(m.volumes).toEqual(['mongo-data', 'mosquitto-data', 'postgresql-data']);
  });

  it('pins every image it pulls', () => {
    const m = model();
    for (const [name, s] of Object.entries(m.services)) {
      if (s.build) continue;
      const match = /^([a-z0-9][a-z0-9._/-]*):([A-Za-z0-9_][A-Za-z0-9_.-]*)$/.exec(s.image ?? '');
      expect({
        name,
        image: s.image,
        pinned: match !== null && match[2] !== 'latest' && /\d/.test(match[2]!),
      }).toEqual({ name, image: s.image, pinned: true });
    }
    expect(m.services.postgresql!.image).toMatch(/^postgres:16(\.|$)/);
    expect(m.services.temporal!.image).toMatch(/^temporalio\/auto-setup:1\.29\.\d+$/);
    expect(m.services['temporal-ui']!.image).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
    expect(m.services.mongo!.image).toMatch(/^mongo:7(\.|$)/);
    expect(m.services.mosquitto!.image).toMatch(/^eclipse-mosquitto:2(\.|$)/);
  });

  it('runs Temporal on PostgreSQL, with health checks and data on named volumes', () => {
    const { services: s } = model();
    expect(s.postgresql!.volumes).toEqual([
      { type: 'volume', source: 'postgresql-data', target: '/var/lib/postgresql/data', readOnly: false },
    ]);
    expect(s.postgresql!.healthcheck.test?.join(' ')).toContain('pg_isready');
    expect(s.temporal!.environment).toMatchObject({
      DB: 'postgres12',
      DB_PORT: '5432',
      POSTGRES_SEEDS: 'postgresql',
      POSTGRES_USER: s.postgresql!.environment.POSTGRES_USER,
    });
    // Same password on both sides (both come from one variable with one default).
    expect(s.temporal!.environment.POSTGRES_PWD).toBe(s.postgresql!.environment.POSTGRES_PASSWORD);
    expect(s.temporal!.environment.POSTGRES_PWD).not.toBe('');
    expect(s.temporal!.dependsOn).toEqual({ postgresql: 'service_healthy' });
    expect(s.temporal!.healthcheck.test?.join(' ')).toContain('temporal:7233');
    expect(s['temporal-ui']!.environment.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(s['temporal-ui']!.ports.map((p) => p.split(':').slice(-2).join(':'))).toEqual(['8233:8080']);
    expect(s['temporal-ui']!.dependsOn).toEqual({ temporal: 'service_healthy' });
    expect(s.mongo!.volumes).toEqual([
      { type: 'volume', source: 'mongo-data', target: '/data/db', readOnly: false },
    ]);
    expect(s.mongo!.healthcheck.test).toEqual(expect.arrayContaining(['mongosh']));
    expect(s.mongo!.healthcheck.test?.join(' ')).toContain('ping');
  });

  it('mounts a Mosquitto configuration that exists, listens on 1883 and keeps anonymous clients out', () => {
    const { services: s } = model();
    const conf = s.mosquitto!.volumes.find((v) => v.target === '/mosquitto/config/mosquitto.conf');
    expect(conf).toEqual({
      type: 'bind',
      source: path.join(root, 'deploy', 'mosquitto', 'mosquitto.conf'),
      target: '/mosquitto/config/mosquitto.conf',
      readOnly: true,
    });
    expect(existsSync(conf!.source)).toBe(true);
    const directives = readFileSync(conf!.source, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(directives).toContain('listener 1883');
    expect(directives).not.toContain('allow_anonymous true');
    expect(s.mosquitto!.ports).toEqual(['1883:1883']);
  });

  it('runs the TwinFlow worker and API from the Dockerfile, wired to the servers', () => {
    const { services: s } = model();
    const worker = s['twinflow-worker']!;
    const api = s['twinflow-api']!;
    const servers = {
      TEMPORAL_ADDRESS: 'temporal:7233',
      MONGODB_URI: 'mongodb://mongo:27017',
      MQTT_URL: 'mqtt://mosquitto:1883',
    };
    for (const svc of [worker, api]) {
      expect(svc.build).toEqual({ context: root, dockerfile: 'Dockerfile' });
      expect(svc.environment).toMatchObject(servers);
    }
    expect(worker.environment.TWINFLOW_ROLES).toBe('worker');
    expect(worker.environment.TWINFLOW_BOOTSTRAP_API_KEY).toBeUndefined();
    expect(worker.ports).toEqual([]);
    expect(worker.dependsOn).toEqual({ temporal: 'service_healthy', mongo: 'service_healthy' });

    expect(api.environment.TWINFLOW_ROLES).toBe('api');
    expect(api.environment.TWINFLOW_BOOTSTRAP_API_KEY).toBe(BOOTSTRAP_KEY);
    expect(api.ports).toEqual(['8080:8080', '8443:8443']);
    expect(api.dependsOn).toEqual({
      temporal: 'service_healthy',
      mongo: 'service_healthy',
      mosquitto: 'service_started',
    });
    // Every server a TwinFlow service talks to is a service of this file, on the port it listens on.
    for (const url of Object.values(servers)) {
      const host = /^(?:[a-z]+:\/\/)?([^:/]+)/.exec(url)![1]!;
      expect(Object.keys(s)).toContain(host);
    }
  });

  it("gives each TwinFlow service an environment that TwinFlow's own configuration accepts", () => {
    const { services: s } = model();
    const imageEnv = runtimeEnv();
    const worker = loadConfig({ ...imageEnv, ...s['twinflow-worker']!.environment });
    expect([...worker.roles]).toEqual(['worker']);
    expect(worker.temporal.address).toBe('temporal:7233');
    expect(worker.mongo.uri).toBe('mongodb://mongo:27017');

    const api = loadConfig({ ...imageEnv, ...s['twinflow-api']!.environment });
    expect([...api.roles]).toEqual(['api']);
    expect(api.bootstrapApiKey).toBe(BOOTSTRAP_KEY);
    // The API listens on all interfaces inside the container, on the port compose publishes.
    expect(api.api.host).toBe('0.0.0.0');
    expect(s['twinflow-api']!.ports.map((p) => Number(p.split(':').at(-1)))).toEqual([
      api.api.port,
      api.tls.httpsPort,
    ]);
  });
});

describe('Dockerfile', () => {
  const buildConfig = (() => {
    const file = path.join(root, 'tsconfig.build.json');
    const read = ts.readConfigFile(file, (f) => ts.sys.readFile(f));
    if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
    const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root, undefined, file);
    if (parsed.errors.length > 0)
      throw new Error(
        parsed.errors.map((e) => ts.flattenDiagnosticMessageText(e.messageText, '\n')).join('\n'),
      );
    return parsed;
  })();
  /** Where `tsc -p tsconfig.build.json` writes the JavaScript for one source file. */
  const emitted = (source: string): string => {
    const input = path.join(root, source);
    expect(buildConfig.fileNames.map((f) => path.normalize(f))).toContain(input);
    const js = ts.getOutputFileNames(buildConfig, input, false).find((f) => f.endsWith('.js'));
    if (!js) throw new Error(`tsconfig.build.json emits no JavaScript for ${source}`);
    return path.relative(root, js).split(path.sep).join('/');
  };
  const workdir = () => runtime.filter((i) => i.keyword === 'WORKDIR').at(-1)?.args ?? '/';

  it('builds in one stage and runs on Node 20 bookworm-slim in another', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.find((st) => /\bAS\s+build\b/i.test(st[0]!.args))!;
    expect(build).toBeDefined();
    const runs = (st: Instruction[]) => st.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(runs(build).join('\n')).toMatch(/npm ci\b/);
    expect(runs(build).join('\n')).toMatch(/npm run build\b/);
    expect(runs(runtime).join('\n')).toMatch(/npm ci --omit=dev\b/);
    expect(
      runtime.some((i) => i.keyword === 'COPY' && /--from=build\b/.test(i.args) && /\bdist\b/.test(i.args)),
    ).toBe(true);
    const nodeImage = /^ARG\s+NODE_IMAGE=(\S+)/m.exec(dockerfileText)?.[1];
    expect(nodeImage).toBe('node:20-bookworm-slim');
    for (const st of stages) expect(st[0]!.args).toMatch(/^\$\{NODE_IMAGE\}\s+AS\s+\w+$/);
  });

  it('starts the file that tsconfig.build.json emits for worker/main.ts', () => {
    expect(existsSync(path.join(root, 'worker', 'main.ts'))).toBe(true);
    const cmd = execForm(last('CMD')!.args);
    expect(cmd[0]).toBe('node');
    expect(workdir()).toBe('/app');
    expect(path.posix.relative(workdir(), path.posix.resolve(workdir(), cmd[1]!))).toBe(
      emitted('worker/main.ts'),
    );
    expect(cmd).toEqual(['node', 'dist/worker/main.js']);
    // The worker bundles require.resolve('../workflows') from worker/twin-worker: that lands on the emitted workflows.
    const twinWorker = emitted('worker/twin-worker.ts');
    expect(path.posix.join(path.posix.dirname(twinWorker), '../workflows/index.js')).toBe(
      emitted('workflows/index.ts'),
    );
  });

  it('runs as a non-root user, listening on all interfaces on port 8080, in production mode', () => {
    const user = last('USER')?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(runtimeEnv()).toMatchObject({ NODE_ENV: 'production', TWINFLOW_HOST: '0.0.0.0' });
    expect(last('EXPOSE')?.args).toBe('8080 8443 8883');
  });

  it('keeps build outputs, dependencies and git out of the build context', () => {
    const ignored = readFileSync(path.join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    expect(ignored).toEqual(
      expect.arrayContaining(['node_modules', 'dist', '.twinflow', '.git', 'coverage']),
    );
  });

  describe('HEALTHCHECK', () => {
    const healthcheck = () => {
      const ins = last('HEALTHCHECK');
      expect(ins).toBeDefined();
      const cmdAt = ins!.args.indexOf('CMD ');
      expect(cmdAt).toBeGreaterThanOrEqual(0);
      return execForm(ins!.args.slice(cmdAt + 4).trim());
    };
    const runCheck = (env: Record<string, string>) => {
      const [bin, ...args] = healthcheck();
      expect(bin).toBe('node');
      return new Promise<number | null>((resolve, reject) => {
        // Asynchronous: the check calls this test's own HTTP server.
        const child = spawn(process.execPath, args, {
          env: { PATH: process.env.PATH ?? '', ...env },
          stdio: 'ignore',
        });
        child.on('error', reject);
        child.on('exit', (code) => resolve(code));
      });
    };
    let server: Server;
    let port = 0;
    let status = 200;
    const paths: string[] = [];
    beforeAll(async () => {
      server = createServer((req, res) => {
        paths.push(req.url ?? '');
        res.writeHead(req.url === '/healthz' ? status : 404, { 'content-type': 'application/json' });
        res.end('{"status":"ok"}');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('asks the API for /healthz on PORT and passes only on 2xx', async () => {
      status = 200;
      await expect(runCheck({ TWINFLOW_ROLES: 'api', PORT: String(port) })).resolves.toBe(0);
      expect(paths).toContain('/healthz');
      status = 503;
      await expect(runCheck({ TWINFLOW_ROLES: 'api', PORT: String(port) })).resolves.toBe(1);
    });

    it('fails when nothing listens', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const freePort = (closed.address() as AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      await expect(runCheck({ TWINFLOW_ROLES: 'api,worker', PORT: String(freePort) })).resolves.toBe(1);
    });

    it('passes in a worker-only container, which serves no HTTP', async () => {
      const before = paths.length;
      await expect(runCheck({ TWINFLOW_ROLES: 'worker', PORT: String(port) })).resolves.toBe(0);
      expect(paths.length).toBe(before);
    });
  });
});
