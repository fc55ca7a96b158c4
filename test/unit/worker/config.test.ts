// Covers loadConfig: defaults, the choice of external servers, and errors listing every bad variable.
import path from 'node:path';
import v8 from 'node:v8';
import {
  ConfigError,
  defaultCachedTwins,
  defaultInstance,
  loadConfig,
  retiredSettings,
} from '../../../worker/config';
import { INSTANCE_NAME_PATTERN } from '../../../inventory/commit-log.repo';

describe('loadConfig', () => {
  it('answers the defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config.api).toEqual({ port: 8080, host: '127.0.0.1', plain: true });
    expect(config.tls).toEqual({
      enabled: true,
      certFile: undefined,
      keyFile: undefined,
      httpsPort: 8443,
      mqttsPort: undefined,
    });
    expect(path.isAbsolute(config.dataDir)).toBe(true);
    expect(config.dataDir).toBe(path.resolve('.twinflow'));
    expect([...config.roles].sort()).toEqual(['api', 'worker']);
    expect(config.bootstrapApiKey).toBeUndefined();
    expect(config.temporal).toEqual({
      address: undefined,
      namespace: 'default',
      taskQueue: 'twinflow',
      embeddedPort: 7233,
      embeddedUiPort: 8233,
      embeddedUi: true,
    });
    expect(config.mongo).toEqual({
      uri: undefined,
      db: 'twinflow',
      embeddedPort: 27017,
      embeddedSync: 'normal',
    });
    expect(config.logLevel).toBe('info');
    expect(config.twin.signalRate).toBe(200);
    expect(loadConfig({ TWINFLOW_TWIN_SIGNAL_RATE: '0' }).twin.signalRate).toBe(0);
  });

  it('sizes the worker cache to the heap, each figure overridable', () => {
    expect(loadConfig({}).worker).toEqual({
      cachedTwins: defaultCachedTwins(v8.getHeapStatistics().heap_size_limit / 2 ** 20),
      workflowTasks: 40,
      activities: 100,
      metricsPort: undefined,
      stackTraces: false,
    });
    expect(
      loadConfig({
        TWINFLOW_WORKER_CACHED_TWINS: '500',
        TWINFLOW_WORKER_WORKFLOW_TASKS: '8',
        TWINFLOW_WORKER_ACTIVITIES: '20',
        TWINFLOW_WORKER_METRICS_PORT: '9464',
        TWINFLOW_WORKFLOW_STACK_TRACES: 'on',
      }).worker,
    ).toEqual({ cachedTwins: 500, workflowTasks: 8, activities: 20, metricsPort: 9464, stackTraces: true });
    expect(() => loadConfig({ TWINFLOW_WORKFLOW_STACK_TRACES: 'yes' })).toThrow(
      /TWINFLOW_WORKFLOW_STACK_TRACES/,
    );
  });

  it('caches as many twins as a heap holds, 10,000 and more on a 2 GiB heap, at most 20,000', () => {
    expect(defaultCachedTwins(4144)).toBe(20_000);
    expect(defaultCachedTwins(2096)).toBe(16_896);
    expect(defaultCachedTwins(1024)).toBe(5_461);
    expect(defaultCachedTwins(16_384)).toBe(20_000);
    expect(defaultCachedTwins(256)).toBe(100);
  });

  it('refuses worker figures the SDK cannot run with', () => {
    expect(() => loadConfig({ TWINFLOW_WORKER_WORKFLOW_TASKS: '1' })).toThrow(
      /TWINFLOW_WORKER_WORKFLOW_TASKS/,
    );
    expect(() => loadConfig({ TWINFLOW_WORKER_CACHED_TWINS: '-1' })).toThrow(/TWINFLOW_WORKER_CACHED_TWINS/);
    expect(() => loadConfig({ TWINFLOW_WORKER_METRICS_PORT: '70000' })).toThrow(
      /TWINFLOW_WORKER_METRICS_PORT/,
    );
  });

  it('syncs every commit of the embedded store only when asked to', () => {
    expect(loadConfig({ TWINFLOW_MONGODB_SYNC: 'full' }).mongo.embeddedSync).toBe('full');
    expect(() => loadConfig({ TWINFLOW_MONGODB_SYNC: 'always' })).toThrow(/TWINFLOW_MONGODB_SYNC/);
  });

  it('puts the Temporal UI 1000 above the Temporal port unless it is set', () => {
    expect(loadConfig({ TWINFLOW_TEMPORAL_PORT: '7300' }).temporal).toMatchObject({
      embeddedPort: 7300,
      embeddedUiPort: 8300,
    });
    expect(
      loadConfig({ TWINFLOW_TEMPORAL_PORT: '7300', TWINFLOW_TEMPORAL_UI_PORT: '9000' }).temporal
        .embeddedUiPort,
    ).toBe(9000);
  });

  it('resolves a relative data dir to an absolute path and keeps an absolute one', () => {
    expect(loadConfig({ TWINFLOW_DATA_DIR: 'data/tf' }).dataDir).toBe(path.resolve('data/tf'));
    expect(loadConfig({ TWINFLOW_DATA_DIR: '/var/lib/tf' }).dataDir).toBe(path.resolve('/var/lib/tf'));
  });

  it('reads PORT and the roles, trimming blanks', () => {
    const config = loadConfig({ PORT: '9090', TWINFLOW_ROLES: ' worker , ' });
    expect(config.api.port).toBe(9090);
    expect([...config.roles]).toEqual(['worker']);
  });

  it('uses an external Temporal server when TEMPORAL_ADDRESS is set, trimmed', () => {
    expect(loadConfig({ TEMPORAL_ADDRESS: ' temporal.example:7233 ' }).temporal.address).toBe(
      'temporal.example:7233',
    );
  });

  it('starts the embedded Temporal server when TEMPORAL_ADDRESS is empty or blank', () => {
    expect(loadConfig({ TEMPORAL_ADDRESS: '' }).temporal.address).toBeUndefined();
    expect(loadConfig({ TEMPORAL_ADDRESS: '   ' }).temporal.address).toBeUndefined();
  });

  it.each(['mongodb://db.example:27017/?replicaSet=rs0', 'mongodb+srv://cluster.example'])(
    'uses the MongoDB at %s',
    (uri) => {
      expect(loadConfig({ MONGODB_URI: uri }).mongo.uri).toBe(uri);
    },
  );

  it('starts the embedded MongoDB-compatible server when MONGODB_URI is empty', () => {
    expect(loadConfig({ MONGODB_URI: '' }).mongo.uri).toBeUndefined();
  });

  it('takes a database name of up to 56 characters (the commit log adds _ingest) and refuses a longer one', () => {
    expect(loadConfig({ MONGODB_DB: 'a'.repeat(56) }).mongo.db).toBe('a'.repeat(56));
    expect(() => loadConfig({ MONGODB_DB: 'a'.repeat(57) })).toThrow(/MONGODB_DB.*1 to 56 letters/);
  });

  it('takes a signal share under pressure between 0 and 1 and refuses one outside', () => {
    expect(loadConfig({}).twin.signalPressureShare).toBe(0.1);
    expect(loadConfig({ TWINFLOW_TWIN_SIGNAL_PRESSURE_SHARE: '0.25' }).twin.signalPressureShare).toBe(0.25);
    for (const bad of ['1.5', '-0.1', 'half'])
      expect(() => loadConfig({ TWINFLOW_TWIN_SIGNAL_PRESSURE_SHARE: bad })).toThrow(
        /TWINFLOW_TWIN_SIGNAL_PRESSURE_SHARE/,
      );
  });

  it('keeps a valid bootstrap API key', () => {
    expect(loadConfig({ TWINFLOW_BOOTSTRAP_API_KEY: 'tfk_0123abcd_long-enough' }).bootstrapApiKey).toBe(
      'tfk_0123abcd_long-enough',
    );
  });

  it('names a retired setting still set, and starts all the same', () => {
    const env = { TWINFLOW_REVOCATION_POLL_S: '1' };
    expect(retiredSettings(env)).toEqual([
      expect.stringMatching(/^TWINFLOW_REVOCATION_POLL_S is no longer read: .*credential changes/),
    ]);
    expect(retiredSettings({})).toEqual([]);
    expect(() => loadConfig(env)).not.toThrow();
  });

  it('throws a ConfigError listing every bad variable at once', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'abc',
        TWINFLOW_ROLES: 'foo',
        MONGODB_URI: 'http://x',
        TWINFLOW_BOOTSTRAP_API_KEY: 'short',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    const variables = problems.map((p) => p.split(/[.:]/)[0]);
    expect(variables.sort()).toEqual(['MONGODB_URI', 'PORT', 'TWINFLOW_BOOTSTRAP_API_KEY', 'TWINFLOW_ROLES']);
    expect(message).toContain('4 problem(s)');
    for (const name of ['PORT', 'TWINFLOW_ROLES', 'MONGODB_URI', 'TWINFLOW_BOOTSTRAP_API_KEY'])
      expect(message).toContain(name);
    expect(problems.find((p) => p.startsWith('MONGODB_URI'))).toContain('must start with mongodb://');
    expect(problems.find((p) => p.startsWith('TWINFLOW_BOOTSTRAP_API_KEY'))).toContain(
      'at least 16 characters',
    );
  });

  it.each<[string, NodeJS.ProcessEnv]>([
    ['a port out of range', { PORT: '70000' }],
    ['an empty role list', { TWINFLOW_ROLES: ' , ' }],
    ['a bootstrap key with a space', { TWINFLOW_BOOTSTRAP_API_KEY: 'has a space in the middle' }],
    ['an unknown log level', { LOG_LEVEL: 'loud' }],
    ['a Temporal UI switch that is not on or off', { TWINFLOW_TEMPORAL_UI: 'yes' }],
    ['a negative twin signal rate', { TWINFLOW_TWIN_SIGNAL_RATE: '-1' }],
    ['a twin signal rate that is not a whole number', { TWINFLOW_TWIN_SIGNAL_RATE: 'fast' }],
    ['a fractional twin signal rate', { TWINFLOW_TWIN_SIGNAL_RATE: '2.5' }],
    ['a negative first-push budget', { TWINFLOW_FIRST_PUSH_BUDGET_MS: '-1' }],
    ['a first-push budget past the workflow task it holds open', { TWINFLOW_FIRST_PUSH_BUDGET_MS: '60000' }],
  ])('rejects %s', (_label, env) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
  });

  it('takes the first admin only as an address and a password together', () => {
    expect(() => loadConfig({ TWINFLOW_ADMIN_EMAIL: 'ana@example.com' })).toThrow(
      /set TWINFLOW_ADMIN_EMAIL and TWINFLOW_ADMIN_PASSWORD together/,
    );
    expect(() =>
      loadConfig({ TWINFLOW_ADMIN_EMAIL: 'not-an-address', TWINFLOW_ADMIN_PASSWORD: 'x'.repeat(12) }),
    ).toThrow(/TWINFLOW_ADMIN_EMAIL/);
    expect(() =>
      loadConfig({ TWINFLOW_ADMIN_EMAIL: 'ana@example.com', TWINFLOW_ADMIN_PASSWORD: 'short' }),
    ).toThrow(/at least 12/);
    expect(
      loadConfig({ TWINFLOW_ADMIN_EMAIL: 'ana@example.com', TWINFLOW_ADMIN_PASSWORD: 'long enough pass' })
        .identity,
    ).toMatchObject({ adminEmail: 'ana@example.com', accessTokenTtlMs: 900_000 });
    expect(() => loadConfig({ TWINFLOW_JWT_SECRET: 'too short' })).toThrow(/TWINFLOW_JWT_SECRET/);
  });

  it('checks the MQTT settings', () => {
    expect(loadConfig({}).mqtt).toMatchObject({
      enabled: true,
      port: undefined,
      url: undefined,
      org: 'default',
      sharedGroup: 'twinflow',
    });
    expect(
      loadConfig({ MQTT_URL: 'mqtt://user:pass@broker:1883', TWINFLOW_MQTT_SHARED: 'off' }).mqtt,
    ).toMatchObject({
      url: 'mqtt://user:pass@broker:1883',
      sharedGroup: undefined,
    });
    expect(() => loadConfig({ MQTT_URL: 'http://broker' })).toThrow(/MQTT_URL/);
    expect(() => loadConfig({ TWINFLOW_MQTT_PORT: '70000' })).toThrow(/TWINFLOW_MQTT_PORT/);
    expect(() => loadConfig({ TWINFLOW_MQTT_ORG: 'Not An Org' })).toThrow(/TWINFLOW_MQTT_ORG/);
  });

  it('opens several external-broker connections only with a shared subscription', () => {
    expect(loadConfig({}).mqtt.connections).toBe(16);
    expect(loadConfig({ TWINFLOW_MQTT_CONNECTIONS: '4' }).mqtt.connections).toBe(4);
    expect(loadConfig({ TWINFLOW_MQTT_CONNECTIONS: '4', TWINFLOW_MQTT_SHARED: 'off' }).mqtt.connections).toBe(
      1,
    );
    for (const bad of ['0', '-1', '1.5', 'many', '257'])
      expect(() => loadConfig({ TWINFLOW_MQTT_CONNECTIONS: bad })).toThrow(/TWINFLOW_MQTT_CONNECTIONS/);
  });

  it('wants the TLS certificate and key together, and something to listen on', () => {
    expect(() => loadConfig({ TWINFLOW_TLS_CERT: '/etc/tf/cert.pem' })).toThrow(
      'TWINFLOW_TLS_KEY: set TWINFLOW_TLS_CERT and TWINFLOW_TLS_KEY together',
    );
    expect(() => loadConfig({ TWINFLOW_TLS: 'off', TWINFLOW_PLAIN: 'off' })).toThrow(/nothing would listen/);
    expect(loadConfig({ TWINFLOW_TLS_CERT: '/c.pem', TWINFLOW_TLS_KEY: '/k.pem' }).tls).toMatchObject({
      certFile: '/c.pem',
      keyFile: '/k.pem',
    });
  });

  it('names the ingest instance by host and data directory on the embedded store, by host and port on a shared one', () => {
    const embedded = defaultInstance(undefined, 8080, '/data/a');
    expect(embedded).toMatch(INSTANCE_NAME_PATTERN);
    expect(defaultInstance(undefined, 9090, '/data/a')).toBe(embedded); // a restart on another port
    expect(defaultInstance(undefined, 8080, '/data/b')).not.toBe(embedded);
    const shared = defaultInstance('mongodb://db:27017/', 8080, '/data/a');
    expect(shared).toMatch(INSTANCE_NAME_PATTERN);
    expect(shared.endsWith(':8080')).toBe(true);
    expect(defaultInstance('mongodb://db:27017/', 8081, '/data/a')).not.toBe(shared);
    expect(() => loadConfig({ TWINFLOW_INSTANCE: 'has/slash' })).toThrow(ConfigError);
  });
});
