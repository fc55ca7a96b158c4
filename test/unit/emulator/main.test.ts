// Covers the emulator CLI's argument parsing, device ids, keys file and bulk provisioning (against a stand-in north API).
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  behaviorFor,
  type CliOptions,
  deviceIds,
  parseCliArgs,
  provisionFleet,
  readKeysFile,
  writeKeysFile,
} from '../../../emulator/main';

const options = (argv: string[]): CliOptions => {
  const parsed = parseCliArgs(argv);
  if (!parsed.ok || parsed.help) throw new Error(`unexpected parse: ${JSON.stringify(parsed)}`);
  return parsed.options;
};

describe('emulator CLI', () => {
  it('reads flags with their defaults', () => {
    expect(options(['--api', 'http://127.0.0.1:3000/', '--keys-file', 'k.json'])).toEqual({
      api: 'http://127.0.0.1:3000',
      key: undefined,
      devices: 10,
      behavior: 'sync',
      prefix: 'emu-',
      host: '127.0.0.1',
      port: 1123,
      provision: false,
      keysFile: 'k.json',
      pollMs: 1000,
      intervalMs: 20,
      delayMs: 5000,
    });
    const o = options([
      '--api',
      'http://x:1',
      '--key',
      'k',
      '--provision',
      '--devices',
      '5',
      '--behavior',
      'sleepy',
    ]);
    expect(o).toMatchObject({ provision: true, devices: 5, behavior: 'sleepy' });
    expect(behaviorFor({ ...o, pollMs: 250 })).toEqual({ kind: 'sleepy', pollIntervalMs: 250 });
    expect(parseCliArgs(['--help'])).toEqual({ ok: true, help: true });
  });

  it.each([
    [['--api', 'http://x:1', '--keys-file', 'k', '--bogus'], /bogus/],
    [['--keys-file', 'k'], /--api is required/],
    [['--api', 'nope', '--keys-file', 'k'], /must be a URL/],
    [['--api', 'http://x:1', '--keys-file', 'k', '--behavior', 'chatty'], /--behavior must be one of/],
    [['--api', 'http://x:1', '--keys-file', 'k', '--devices', '0'], /--devices must be an integer/],
    [['--api', 'http://x:1', '--keys-file', 'k', '--port', '1.5'], /--port must be an integer/],
    [['--api', 'http://x:1', '--provision'], /needs --key/],
    [['--api', 'http://x:1'], /--keys-file/],
  ])('rejects %j with a clear message', (argv, message) => {
    const parsed = parseCliArgs(argv);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(message);
  });

  it('numbers device ids so they sort', () => {
    expect(deviceIds('emu-', 3)).toEqual(['emu-0001', 'emu-0002', 'emu-0003']);
    expect(deviceIds('d', 12_345).at(-1)).toBe('d12345');
  });

  it('writes a keys file only its owner can read, and reads it back', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'emulator-keys-'));
    try {
      const file = path.join(dir, 'sub', 'keys.json');
      expect(await readKeysFile(file)).toEqual(new Map());
      await writeKeysFile(file, new Map([['emu-0001', 'secret']]));
      expect(await readKeysFile(file)).toEqual(new Map([['emu-0001', 'secret']]));
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ 'emu-0001': 'secret' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('provisions in batches of at most 1000 and sorts created, existing and failed devices', async () => {
    const batches: { key: unknown; devices: any[] }[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { devices } = JSON.parse(Buffer.concat(chunks).toString());
        batches.push({ key: req.headers['x-apikey'], devices });
        const results = devices.map((d: any) =>
          d.id.endsWith('0002')
            ? { id: d.id, status: 409, error: { code: 'CONFLICT', message: 'exists' } }
            : d.id.endsWith('0003')
              ? { id: d.id, status: 400, error: { code: 'INVALID_ARGUMENT', message: 'bad' } }
              : { id: d.id, status: 201, apiKey: `key-${d.id}` },
        );
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ results }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const ids = deviceIds('emu-', 1001);
      const report = await provisionFleet(api, 'admin', ids, (id) => ({ http: { operationUrl: `u/${id}` } }));
      expect(batches.map((b) => b.devices.length)).toEqual([1000, 1]);
      expect(batches[0]!.key).toBe('admin');
      expect(batches[0]!.devices[0]).toEqual({
        id: 'emu-0001',
        transport: { http: { operationUrl: 'u/emu-0001' } },
      });
      expect(report.created.size).toBe(999);
      expect(report.created.get('emu-0001')).toBe('key-emu-0001');
      expect(report.existing).toEqual(['emu-0002']);
      expect(report.failed).toEqual([{ id: 'emu-0003', status: 400, message: 'bad' }]);
    } finally {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await closed;
    }
  });
});
