// For twin type authors: changing a type's logic while its twins run. A change that makes a running twin act
// differently on history it has already recorded (another operation, alarm, timer) is guarded, so recorded
// histories replay as they were and new decisions take the new path:
//
//   when: ({ state }) => (twinPatched('tank-high-85') ? state.levelPct >= 85 : state.levelPct >= 90),
//
// Run `npm run replay` on histories of real twins before deploying (see examples/twins/README.md); once no
// running twin predates the change, `deprecatePatch` in @temporalio/workflow, then remove the old branch.
import { inWorkflowContext, patched } from '@temporalio/workflow';

/**
 * Inside a twin (workflow code): Temporal's patched(id), true for new decisions and false while a twin replays
 * history recorded before the change. Outside one (the ingest path, unit tests, the start-up checks): true.
 */
export function twinPatched(id: string): boolean {
  return inWorkflowContext() ? patched(id) : true;
}
