// `npm run emulator`: plays a fleet of OpenGate v80 HTTP devices against a running TwinFlow, optionally provisioning them.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BEHAVIOR_KINDS, type BehaviorKind } from './behaviors';
import { type Behavior, type DeviceEmulator, startDeviceEmulator } from './device-emulator';

export const USAGE = `Usage: npm run emulator -- --api <url> [options]

Plays many HTTP devices that speak the OpenGate v80 operation protocol against TwinFlow.

  --api <url>            TwinFlow base URL (responses and polls go to <url>/south/v80/...)   [required]
  --key <key>            admin X-ApiKey for provisioning through <url>/north/v1/devices/bulk
  --devices <n>          number of devices (default 10)
  --behavior <kind>      ${BEHAVIOR_KINDS.join('|')} (default sync)
  --prefix <p>           device id prefix (default emu-); ids are <p>0001, <p>0002, ...
  --host <host>          emulator listen address (default 127.0.0.1)
  --port <port>          emulator port (default 1123, the OpenGate device port; 0 = any free port)
  --provision            provision the devices first (needs --key); saves their keys to --keys-file
  --keys-file <path>     JSON object mapping device id -> device API key; read at start, written after
                         provisioning. Without --provision, device keys come only from this file.
  --poll-ms <ms>         poll interval of sleepy devices (default 1000)
  --interval-ms <ms>     time between responses of async and firmware devices (default 20)
  --delay-ms <ms>        answer delay of slow devices (default 5000)
  --help                 print this help

Behaviours: failing devices answer their first request 503 and their first operation ERROR_PROCESSING,
then SUCCESSFUL. Devices that already exist (409) keep their old operation URL and are only played when
their key is in --keys-file. Stop with Ctrl-C.`;

export interface CliOptions {
  api: string;
  key?: string;
  devices: number;
  behavior: BehaviorKind;
  prefix: string;
  host: string;
  port: number;
  provision: boolean;
  keysFile?: string;
  pollMs: number;
  intervalMs: number;
  delayMs: number;
}

export type CliParse =
  { ok: true; help: true } | { ok: true; help?: false; options: CliOptions } | { ok: false; message: string };

const MAX_DEVICES = 1_000_000;
/** The bulk provisioning endpoint takes at most this many devices a request. */
export const PROVISION_BATCH = 1_000;
const PROVISION_TIMEOUT_MS = 5 * 60_000;
const STATS_EVERY_MS = 5_000;
const ERRORS_SHOWN = 5;

function integerFlag(name: string, raw: string | undefined, fallback: number, min: number, max: number) {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}

/** Reads the command line; never exits, so it can be tested. */
export function parseCliArgs(argv: string[]): CliParse {
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        api: { type: 'string' },
        key: { type: 'string' },
        devices: { type: 'string' },
        behavior: { type: 'string' },
        prefix: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        provision: { type: 'boolean' },
        'keys-file': { type: 'string' },
        'poll-ms': { type: 'string' },
        'interval-ms': { type: 'string' },
        'delay-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) return { ok: true, help: true };
    if (!values.api) throw new Error('--api is required, for example --api http://127.0.0.1:3000');
    let api: URL;
    try {
      api = new URL(values.api);
    } catch {
      throw new Error(`--api must be a URL, got "${values.api}"`);
    }
    if (api.protocol !== 'http:' && api.protocol !== 'https:')
      throw new Error('--api must be an http(s) URL');
    const behavior = values.behavior ?? 'sync';
    if (!(BEHAVIOR_KINDS as readonly string[]).includes(behavior))
      throw new Error(`--behavior must be one of ${BEHAVIOR_KINDS.join(', ')}, got "${behavior}"`);
    const provision = values.provision ?? false;
    if (provision && !values.key) throw new Error('--provision needs --key <admin X-ApiKey>');
    if (!provision && !values['keys-file'])
      throw new Error(
        'without --provision, device keys come from --keys-file <path>: give one, or --provision',
      );
    const prefix = values.prefix ?? 'emu-';
    if (!/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,100}$/.test(prefix))
      throw new Error('--prefix must start with a letter or digit and use letters, digits and . _ : @ -');
    return {
      ok: true,
      options: {
        api: api.href.replace(/\/+$/, ''),
        key: values.key,
        devices: integerFlag('devices', values.devices, 10, 1, MAX_DEVICES),
        behavior: behavior as BehaviorKind,
        prefix,
        host: values.host ?? '127.0.0.1',
        port: integerFlag('port', values.port, 1123, 0, 65_535),
        provision,
        keysFile: values['keys-file'],
        pollMs: integerFlag('poll-ms', values['poll-ms'], 1_000, 1, 86_400_000),
        intervalMs: integerFlag('interval-ms', values['interval-ms'], 20, 0, 86_400_000),
        delayMs: integerFlag('delay-ms', values['delay-ms'], 5_000, 0, 86_400_000),
      },
    };
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
}

export function behaviorFor(options: CliOptions): Behavior {
  switch (options.behavior) {
    case 'sync':
      return { kind: 'sync' };
    case 'async':
      return { kind: 'async', intervalMs: options.intervalMs };
    case 'firmware':
      return { kind: 'firmware', intervalMs: options.intervalMs };
    case 'slow':
      return { kind: 'slow', delayMs: options.delayMs };
    case 'failing':
      return { kind: 'failing', transportFailures: 1, failures: 1 };
    case 'unsupported':
      return { kind: 'unsupported' };
    case 'silent':
      return { kind: 'silent' };
    case 'sleepy':
      return { kind: 'sleepy', pollIntervalMs: options.pollMs };
  }
}

/** `emu-0001` ... `emu-1000`: zero-padded so the ids sort in order. */
export function deviceIds(prefix: string, count: number): string[] {
  const width = Math.max(4, String(count).length);
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(width, '0')}`);
}

export async function readKeysFile(file: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error(`${file} is not a JSON object of device id -> key`);
  const keys = new Map<string, string>();
  for (const [id, key] of Object.entries(parsed)) if (typeof key === 'string') keys.set(id, key);
  return keys;
}

/** Writes through a temporary file, readable by the owner only: the file holds secrets. */
export async function writeKeysFile(file: string, keys: Map<string, string>): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(Object.fromEntries(keys), null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export interface ProvisionReport {
  /** Keys of the devices created now. */
  created: Map<string, string>;
  /** Devices that already existed (409). */
  existing: string[];
  failed: { id: string; status: number; message: string }[];
}

interface BulkResult {
  id: string;
  status: number;
  apiKey?: string;
  error?: { code?: string; message?: string };
}

/** Provisions the devices through the north bulk endpoint, PROVISION_BATCH at a time. */
export async function provisionFleet(
  api: string,
  adminKey: string,
  ids: string[],
  transportOf: (id: string) => unknown,
  onBatch: (done: number) => void = () => undefined,
): Promise<ProvisionReport> {
  const report: ProvisionReport = { created: new Map(), existing: [], failed: [] };
  for (let start = 0; start < ids.length; start += PROVISION_BATCH) {
    const batch = ids.slice(start, start + PROVISION_BATCH);
    const res = await fetch(`${api}/north/v1/devices/bulk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-apikey': adminKey },
      body: JSON.stringify({ devices: batch.map((id) => ({ id, transport: transportOf(id) })) }),
      signal: AbortSignal.timeout(PROVISION_TIMEOUT_MS),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`provisioning failed: HTTP ${res.status} ${text.slice(0, 500)}`);
    const body = JSON.parse(text) as { results?: BulkResult[] };
    for (const r of body.results ?? []) {
      if (r.status === 201 && typeof r.apiKey === 'string') report.created.set(r.id, r.apiKey);
      else if (r.status === 409) report.existing.push(r.id);
      else
        report.failed.push({ id: r.id, status: r.status, message: r.error?.message ?? r.error?.code ?? '' });
    }
    onBatch(Math.min(ids.length, start + PROVISION_BATCH));
  }
  return report;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const complain = (line: string) => process.stderr.write(`${line}\n`);
const listSome = (ids: string[]) => (ids.length > 5 ? `${ids.slice(0, 5).join(', ')}, ...` : ids.join(', '));

/** Device keys for the run: from provisioning and the keys file; devices without a key are reported and skipped. */
async function gatherKeys(
  options: CliOptions,
  emulator: DeviceEmulator,
  ids: string[],
): Promise<Map<string, string>> {
  const fileKeys = options.keysFile ? await readKeysFile(options.keysFile) : new Map<string, string>();
  if (!options.provision) {
    const missing = ids.filter((id) => !fileKeys.has(id));
    if (missing.length > 0)
      complain(
        `${missing.length} devices have no key in ${options.keysFile} and are skipped: ${listSome(missing)}`,
      );
    return fileKeys;
  }
  const transport =
    options.behavior === 'sleepy'
      ? () => ({ sleepy: true })
      : (id: string) => ({ http: { operationUrl: emulator.operationUrl(id) } });
  say(`Provisioning ${ids.length} devices at ${options.api} ...`);
  const report = await provisionFleet(options.api, options.key ?? '', ids, transport, (done) =>
    say(`  ${done}/${ids.length}`),
  );
  say(`Provisioned ${report.created.size} new devices.`);
  for (const f of report.failed.slice(0, ERRORS_SHOWN)) complain(`  ${f.id}: HTTP ${f.status} ${f.message}`);
  if (report.failed.length > 0)
    complain(`${report.failed.length} devices could not be provisioned and are skipped.`);
  if (report.existing.length > 0) {
    const unknown = report.existing.filter((id) => !fileKeys.has(id));
    say(
      `${report.existing.length} devices already existed; they keep their operation URL` +
        (unknown.length < report.existing.length ? ', keys from the keys file.' : '.'),
    );
    if (unknown.length > 0)
      complain(
        `${unknown.length} existing devices have no known key and are skipped (give their keys with --keys-file): ${listSome(unknown)}`,
      );
  }
  const keys = new Map([...fileKeys, ...report.created]);
  if (options.keysFile && report.created.size > 0) {
    await writeKeysFile(options.keysFile, keys);
    say(`Saved device keys to ${options.keysFile}.`);
  } else if (!options.keysFile && report.created.size > 0) {
    say('Device keys were not saved (no --keys-file): a later run cannot play these devices.');
  }
  return keys;
}

async function main(): Promise<number> {
  const parsed = parseCliArgs(process.argv.slice(2));
  if (!parsed.ok) {
    complain(`emulator: ${parsed.message}\nRun with --help for usage.`);
    return 2;
  }
  if (parsed.help) {
    say(USAGE);
    return 0;
  }
  const options = parsed.options;

  let errorCount = 0;
  let lastError = '';
  let emulator: DeviceEmulator;
  try {
    emulator = await startDeviceEmulator({
      twinflowUrl: options.api,
      host: options.host,
      port: options.port,
      onError: (err) => {
        errorCount++;
        lastError = err instanceof Error ? err.message : String(err);
        if (errorCount <= ERRORS_SHOWN) complain(`error: ${lastError}`);
        else if (errorCount === ERRORS_SHOWN + 1) complain('(further errors are counted in the stats line)');
      },
    });
  } catch (err) {
    complain(
      `emulator: cannot listen on ${options.host}:${options.port}: ${err instanceof Error ? err.message : String(err)}`,
    );
    return 1;
  }

  const stop = async () => {
    await emulator.close();
  };
  try {
    const ids = deviceIds(options.prefix, options.devices);
    const keys = await gatherKeys(options, emulator, ids);
    const behavior = behaviorFor(options);
    let added = 0;
    for (const id of ids) {
      const apiKey = keys.get(id);
      if (apiKey === undefined) continue;
      emulator.addDevice({ id, apiKey, behavior });
      added++;
    }
    if (added === 0) {
      complain('No device to play.');
      await stop();
      return 1;
    }
    say(
      `Playing ${added} ${options.behavior} devices` +
        (options.behavior === 'sleepy'
          ? `, polling ${options.api} every ${options.pollMs} ms.`
          : ` at ${emulator.url}/v80/devices/{id}/operation/request.`),
    );
  } catch (err) {
    complain(`emulator: ${err instanceof Error ? err.message : String(err)}`);
    await stop();
    return 1;
  }

  let last = { ...emulator.stats(), at: Date.now(), errors: 0 };
  const statsLine = () => {
    const now = { ...emulator.stats(), at: Date.now(), errors: errorCount };
    const secs = Math.max(0.001, (now.at - last.at) / 1000);
    const rate = (k: 'requests' | 'responsesPosted' | 'polls') => Math.round((now[k] - last[k]) / secs);
    let line =
      `requests ${now.requests} (${rate('requests')}/s)  responses ${now.responsesPosted} (${rate('responsesPosted')}/s)` +
      `  response errors ${now.responseErrors}  polls ${now.polls} (${rate('polls')}/s)`;
    if (now.errors > last.errors) line += `  errors +${now.errors - last.errors} (last: ${lastError})`;
    say(`[${new Date(now.at).toISOString().slice(11, 19)}] ${line}`);
    last = now;
  };
  const ticker = setInterval(statsLine, STATS_EVERY_MS);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        complain(`Second ${signal}: exiting now.`);
        process.exit(130);
      }
      stopping = true;
      say(`${signal}: stopping ...`);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  clearInterval(ticker);
  await stop();
  statsLine();
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      complain(`emulator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exitCode = 1;
    },
  );
}
