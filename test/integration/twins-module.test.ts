// A twin type written outside TwinFlow's source tree: the module TWINFLOW_TWINS names lives in its own directory
// (with its own node_modules), is checked at start, and is bundled into the workflow code, so its reactions,
// alarms and desired state run in real twins. A module that fails its checks stops the start. The replay command
// an author runs before deploying passes the running twins' histories through the same module and fails them
// through a module whose reaction decides differently.
import { spawn } from 'node:child_process';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { apiClient, collectBody, eventually, itEnv, startTwinflow, uniqueName } from './harness';

const REPO = path.resolve(__dirname, '..', '..');

/** A package directory outside the repository: index.ts, and node_modules as its own install would give it. */
function writeTwinsPackage(source: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'my-twins-'));
  symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  const file = path.join(dir, 'index.ts');
  writeFileSync(file, source);
  return file;
}

const PUMP = `
import { z } from 'zod';
import { defineTwin } from ${JSON.stringify(path.join(REPO, 'twins', 'define-twin'))};

interface Pump { readonly flow: number | null; readonly running: boolean }

export const pumpStation = defineTwin<Pump>({
  name: 'pump-station',
  description: 'A pump that must never run dry.',
  initialState: () => ({ flow: null, running: false }),
  applyDatapoint: (s, dp) =>
    dp.datastreamId === 'flow' && typeof dp.value === 'number'
      ? { ...s, flow: dp.value }
      : dp.datastreamId === 'running' && typeof dp.value === 'boolean'
        ? { ...s, running: dp.value }
        : s,
  status: (s) => (s.running ? 'RUNNING' : 'STOPPED'),
  isSignificant: () => true,
  operations: 'any',
  reactions: [
    {
      name: 'dry-run',
      when: ({ state }) => state.running && state.flow === 0,
      then: () => [
        { kind: 'raiseAlarm', alarm: 'DRY_RUN', severity: 'CRITICAL', message: 'running without flow' },
        { kind: 'operation', name: 'STOP_PUMP' },
      ],
      otherwise: () => [{ kind: 'clearAlarm', alarm: 'DRY_RUN' }],
    },
  ],
  desired: { schema: z.object({ speedPct: z.number().min(0).max(100).optional() }).strict() },
});

export default [pumpStation];
`;

/** `npm run replay` as an author runs it, against the test Temporal server. */
function runReplay(twins: string, query: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(REPO, 'scripts', 'replay-twins.ts'), '--twins', twins, '--query', query],
      {
        cwd: REPO,
        env: { ...process.env, TEMPORAL_ADDRESS: itEnv('TWINFLOW_IT_TEMPORAL_ADDRESS') },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('twin types from a module outside the source tree', () => {
  it('runs their reactions, alarms and desired state in real twins', async () => {
    const tf = await startTwinflow({ env: { TWINFLOW_TWINS: writeTwinsPackage(PUMP) } });
    try {
      const admin = apiClient(tf.baseUrl, tf.adminKey);
      const id = uniqueName('pump').replace(/_/g, '-');
      const created = await admin.post('/north/v1/devices', {
        id,
        type: 'pump-station',
        transport: { sleepy: true },
      });
      expect(created.status).toBe(201);
      const device = apiClient(tf.baseUrl, created.body.apiKey as string);
      const send = (values: Record<string, unknown>, at: number) =>
        device.post(
          `/south/v80/devices/${id}/collect/iot`,
          collectBody(Object.entries(values).map(([ds, value]) => ({ id: ds, datapoints: [{ value, at }] }))),
        );
      expect((await send({ running: true, flow: 12 }, 1_700_000_000_000)).status).toBe(201);
      expect((await send({ flow: 0 }, 1_700_000_001_000)).status).toBe(201);
      const alarm = await eventually(async () => {
        const items = (await admin.get(`/north/v1/devices/${id}/alarms`)).body.items as any[];
        return items.find((a) => a.name === 'DRY_RUN' && a.status === 'ACTIVE');
      }, 30_000);
      expect(alarm).toMatchObject({ severity: 'CRITICAL', twinType: 'pump-station' });
      // The reaction's operation waits for the sleepy pump's next poll.
      const ops = await eventually(async () => {
        const items = (await admin.get(`/north/v1/devices/${id}/operations`)).body.items as any[];
        return items.length === 1 ? items : undefined;
      });
      expect(ops[0]).toMatchObject({ name: 'STOP_PUMP', delivery: 'pending', requestedBy: 'twin:dry-run' });
      const view = await admin.get(`/north/v1/devices/${id}`);
      expect(view.body.status).toBe('RUNNING');
      const desired = await admin.request('PATCH', `/north/v1/devices/${id}/desired`, { speedPct: 150 });
      expect(desired.status).toBe(400);

      const query = `TwinflowTwinType = 'pump-station'`;
      const same = await runReplay(writeTwinsPackage(PUMP), query);
      expect(same).toMatchObject({ code: 0 });
      // The twin and the operation its reaction asked for (it carries the twin's type too).
      expect(same.out).toMatch(/^ok {3}twin\/.*pump/m);
      expect(same.out).toMatch(/^ok {3}op\/.*pump/m);
      expect(same.out).toMatch(/\b2 histories replayed, 0 failed/);
      // The reaction no longer asks for STOP_PUMP: the recorded history holds a command the new code does not give.
      const changed = PUMP.replace("{ kind: 'operation', name: 'STOP_PUMP' },", '');
      expect(changed).not.toBe(PUMP);
      const differs = await runReplay(writeTwinsPackage(changed), query);
      expect(differs).toMatchObject({ code: 1 });
      expect(differs.out).toMatch(/^FAIL twin\/.*pump/m);
      expect(differs.out).toMatch(/\b2 histories replayed, 1 failed/);
    } finally {
      await tf.stop();
    }
  });

  it('refuses to start with a module whose types fail the checks', async () => {
    const bad = writeTwinsPackage(`
import { defineTwin } from ${JSON.stringify(path.join(REPO, 'twins', 'define-twin'))};
const t = defineTwin({ name: 'generic', description: 'clash', initialState: () => ({}), applyDatapoint: (s) => s, status: () => 'OK' });
export default [t];
`);
    await expect(startTwinflow({ env: { TWINFLOW_TWINS: bad } })).rejects.toThrow(
      /the name of a built-in type/,
    );
  });
});
