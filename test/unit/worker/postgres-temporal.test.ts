// Covers the PostgreSQL benchmark mode's pure parts: server config, dynamic config, schema steps, database names,
// and how the server build is found or refused.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { DEV_SERVER_DYNAMIC_CONFIG } from '../../../worker/dev-server-config';
import {
  POSTGRES_DYNAMIC_CONFIG,
  dynamicConfigYaml,
  postgresServerConfig,
  postgresUnreachable,
  schemaSteps,
  temporalDatabaseNames,
} from '../../../worker/postgres-temporal';
import { TEMPORAL_SERVER_VERSION, ToolMissingError, ensureTemporalServer } from '../../../worker/tools';

const pg = { host: '127.0.0.1', port: 5432, user: 'postgres' };
const ports = {
  frontend: 7301,
  frontendHttp: 7302,
  frontendMembership: 7303,
  history: 7304,
  historyMembership: 7305,
  matching: 7306,
  matchingMembership: 7307,
  worker: 7308,
  workerMembership: 7309,
};

describe('postgresServerConfig', () => {
  const config = parse(
    postgresServerConfig({
      pg,
      databases: temporalDatabaseNames('run_1'),
      ports,
      dynamicConfigFile: '/tmp/run/config/dynamic.yaml',
    }),
  );

  it('keeps history and visibility in their own PostgreSQL databases on the postgres12 plugin', () => {
    expect(config.persistence.defaultStore).toBe('postgres-default');
    expect(config.persistence.visibilityStore).toBe('postgres-visibility');
    const main = config.persistence.datastores['postgres-default'].sql;
    const visibility = config.persistence.datastores['postgres-visibility'].sql;
    expect(main).toMatchObject({
      pluginName: 'postgres12',
      databaseName: 'twinflow_temporal_run_1',
      connectAddr: '127.0.0.1:5432',
      user: 'postgres',
    });
    expect(visibility).toMatchObject({
      pluginName: 'postgres12',
      databaseName: 'twinflow_temporal_run_1_visibility',
    });
  });

  it('runs one history shard and every service on the ports it was given, on loopback', () => {
    expect(config.persistence.numHistoryShards).toBe(1);
    expect(config.services.frontend.rpc).toEqual({
      grpcPort: 7301,
      membershipPort: 7303,
      bindOnLocalHost: true,
      httpPort: 7302,
    });
    expect(config.services.history.rpc.grpcPort).toBe(7304);
    expect(config.services.matching.rpc.membershipPort).toBe(7307);
    expect(config.services.worker.rpc.grpcPort).toBe(7308);
    expect(config.clusterMetadata.clusterInformation.active.rpcAddress).toBe('127.0.0.1:7301');
    expect(config.publicClient.hostPort).toBe('127.0.0.1:7301');
    expect(config.dynamicConfigClient.filepath).toBe('/tmp/run/config/dynamic.yaml');
  });

  it('quotes a password so that YAML reads it back unchanged', () => {
    const text = postgresServerConfig({
      pg: { ...pg, password: 'p: "x" #y' },
      databases: temporalDatabaseNames('r'),
      ports,
      dynamicConfigFile: 'd.yaml',
      shards: 4,
    });
    const parsed = parse(text);
    expect(parsed.persistence.datastores['postgres-default'].sql.password).toBe('p: "x" #y');
    expect(parsed.persistence.numHistoryShards).toBe(4);
  });
});

describe('dynamicConfigYaml', () => {
  it('writes every key of the dev server config with its value, as the server reads it', () => {
    const parsed = parse(dynamicConfigYaml(POSTGRES_DYNAMIC_CONFIG));
    for (const [key, value] of Object.entries(DEV_SERVER_DYNAMIC_CONFIG))
      expect(parsed[key]).toEqual([{ value }]);
    expect(parsed['system.forceSearchAttributesCacheRefreshOnRead']).toEqual([{ value: true }]);
    expect(parsed['history.timerProcessorMaxTimeShift']).toEqual([{ value: '100ms' }]);
  });
});

describe('temporalDatabaseNames', () => {
  it('names both databases after the run', () => {
    expect(temporalDatabaseNames('abc_123')).toEqual({
      main: 'twinflow_temporal_abc_123',
      visibility: 'twinflow_temporal_abc_123_visibility',
    });
  });

  it('refuses a run id that is not a plain identifier', () => {
    expect(() => temporalDatabaseNames('a; drop database x')).toThrow(/must be 1 to 40/);
    expect(() => temporalDatabaseNames('')).toThrow(/must be 1 to 40/);
    expect(() => temporalDatabaseNames('UPPER')).toThrow(/must be 1 to 40/);
  });
});

describe('schemaSteps', () => {
  it('creates the database, sets up versioning, then applies the embedded versioned schema', () => {
    const steps = schemaSteps(pg, 'db1', 'visibility');
    expect(steps.map((s) => s.slice(s.indexOf('db1') + 1))).toEqual([
      ['create-database'],
      ['setup-schema', '--version', '0.0'],
      ['update-schema', '--schema-name', 'postgresql/v12/visibility'],
    ]);
    expect(steps[0]).toEqual(
      expect.arrayContaining(['--plugin', 'postgres12', '--ep', '127.0.0.1', '--port', '5432']),
    );
    expect(steps[0]).not.toContain('--password');
    expect(schemaSteps({ ...pg, password: 'pw' }, 'db1', 'temporal')[0]).toContain('--password');
  });
});

describe('postgresUnreachable', () => {
  it('says why when nothing listens at the address', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((r) => server.close(r));
    expect(await postgresUnreachable({ ...pg, port })).toMatch(
      new RegExp(`127.0.0.1:${port}: .*ECONNREFUSED`),
    );
  });

  it('answers undefined when something accepts connections', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    try {
      expect(await postgresUnreachable({ ...pg, port })).toBeUndefined();
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('ensureTemporalServer', () => {
  let cache: string;
  beforeEach(() => {
    cache = mkdtempSync(path.join(os.tmpdir(), 'twinflow-server-tools-'));
  });
  afterEach(() => rmSync(cache, { recursive: true, force: true }));

  it('uses the server and the SQL tool already in the tool cache', async () => {
    const dir = path.join(cache, `temporal-server-${TEMPORAL_SERVER_VERSION}`);
    mkdirSync(dir, { recursive: true });
    for (const name of ['temporal-server', 'temporal-sql-tool']) {
      writeFileSync(path.join(dir, name), '#!/bin/sh\n');
      chmodSync(path.join(dir, name), 0o755);
    }
    const tools = await ensureTemporalServer({ TWINFLOW_TOOLS_DIR: cache }, () => undefined, {
      findGo: () => undefined,
    });
    expect(tools).toEqual({
      server: path.join(dir, 'temporal-server'),
      sqlTool: path.join(dir, 'temporal-sql-tool'),
    });
  });

  it('says that Go is needed when nothing is cached and Go is missing', async () => {
    const failure = ensureTemporalServer({ TWINFLOW_TOOLS_DIR: cache }, () => undefined, {
      findGo: () => undefined,
    });
    await expect(failure).rejects.toThrow(ToolMissingError);
    await expect(failure).rejects.toThrow(/built with Go, and Go is not installed/);
  });
});
