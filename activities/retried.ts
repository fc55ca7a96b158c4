// Whether an activity's writes may be stored already: it runs again after an earlier try, or it is a local
// activity (a worker that dies before its workflow task completes runs it again from the first attempt).
import { Context } from '@temporalio/activity';

/** False only for the first try of a normal activity; true outside an activity (a direct call). */
export function retriedRun(): boolean {
  try {
    const info = Context.current().info;
    return info.isLocal || info.attempt > 1;
  } catch {
    return true;
  }
}
