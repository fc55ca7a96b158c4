// A job: one operation over many devices, as a durable rollout. Each device's operation is requested through its
// twin with an id derived from (job, device), so however often a step runs again no device is targeted twice.
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Control, JobProgress } from '../twins/job-plan';
import { type JobInput, JobRun } from './job-run';
import { controlJobUpdate, getJobProgressQuery } from './job.messages';

export type { JobInput } from './job-run';

/** A job continues as new before its history grows past this many events. */
const MAX_JOB_HISTORY = 10_000;

export async function jobWorkflow(input: JobInput): Promise<JobProgress> {
  const job = new JobRun(input);
  setHandler(getJobProgressQuery, () => job.progress);
  setHandler(controlJobUpdate, (c) => job.control(c), { validator: (c: Control) => job.validate(c) });
  await job.begin();
  for (;;) {
    await job.step();
    if (job.ended) break;
    await job.sleep();
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= (input.maxHistory ?? MAX_JOB_HISTORY)) {
      await condition(allHandlersFinished);
      await job.writeIfChanged();
      return await continueAsNew<typeof jobWorkflow>({ ...input, carried: job.carried() });
    }
  }
  await condition(allHandlersFinished);
  return job.progress;
}
