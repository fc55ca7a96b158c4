// Replays recorded histories (test/fixtures/histories) through today's workflow code: a change that would
// break running twins or operations fails here. Re-record only for a deliberate change guarded by patched().
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  DefaultLogger,
  Runtime,
  Worker,
  type WorkflowBundleWithSourceMap,
  bundleWorkflowCode,
} from '@temporalio/worker';
import { workflowBundleOptions } from '../../../worker/workflow-bundle';
import { type History, historyFromJson } from '../../fixtures/history-json';

const HISTORIES_DIR = path.resolve(__dirname, '..', '..', 'fixtures', 'histories');

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: (message: string) => process.stderr.write(`[bundle] ${message}\n`),
};

/** The recorded histories; the file name (without .json) stands for the workflow id. */
function loadHistories(): { workflowId: string; history: History }[] {
  return readdirSync(HISTORIES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({
      workflowId: f.replace(/\.json$/, ''),
      history: historyFromJson(JSON.parse(readFileSync(path.join(HISTORIES_DIR, f), 'utf8'))),
    }));
}

describe('recorded workflow histories', () => {
  let bundle: WorkflowBundleWithSourceMap;
  const histories = loadHistories();

  beforeAll(async () => {
    try {
      Runtime.install({ logger: new DefaultLogger('ERROR') });
    } catch {
      // Another test file in this process installed it.
    }
    bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../../workflows'),
      ...workflowBundleOptions(),
      logger: quietLogger,
    });
  }, 120_000);

  it('cover both workflows and the scenarios that matter', () => {
    const names = histories.map((h) => h.workflowId);
    expect(names.filter((n) => n.startsWith('twin-')).length).toBeGreaterThanOrEqual(4);
    expect(names.filter((n) => n.startsWith('operation-')).length).toBeGreaterThanOrEqual(4);
    expect(names).toEqual(expect.arrayContaining(['twin-continue-as-new-first-run', 'operation-expired']));
    // Recorded after twins began to admit operations themselves (a patch): both versions must replay.
    const patchedTwins = histories.filter(
      (h) =>
        h.workflowId.startsWith('v2-twin-') &&
        (h.history.events ?? []).some((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch'),
    );
    expect(patchedTwins.length).toBeGreaterThanOrEqual(4);
    // Recorded after twins began to run behaviours (reactions, alarms, timers): their patch is in the history.
    const patchIds = (h: { history: History }) =>
      (h.history.events ?? []).flatMap((e) =>
        e.markerRecordedEventAttributes?.markerName === 'core_patch'
          ? (e.markerRecordedEventAttributes.details?.['patch-data']?.payloads ?? []).map(
              (p) =>
                (JSON.parse(Buffer.from(p.data ?? new Uint8Array()).toString('utf8')) as { id: string }).id,
            )
          : [],
      );
    const behaving = histories.find((h) => h.workflowId === 'v3-twin-behaviours-alarms-desired-offline');
    expect(behaving && patchIds(behaving)).toEqual(expect.arrayContaining(['twin-behaviours']));
  });

  it('replay through the current workflow code without a determinism or replay error', async () => {
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(histories.length);
  }, 120_000);
});
