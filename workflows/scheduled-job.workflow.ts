// One run of a job schedule: it stores a job and runs it as a child, so the schedule's overlap policy (skip) sees
// a run as lasting until its job has ended.
import { ParentClosePolicy, executeChild, proxyActivities, uuid4 } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { JobRequest } from '../operations/jobs.service';
import type { JobProgress } from '../twins/job-plan';
import { jobWorkflowId } from './ids';
import { jobWorkflow } from './job.workflow';
import { TWINFLOW_JOB, TWINFLOW_OPERATION, TWINFLOW_ORG, TWINFLOW_STATUS } from './search-attributes';

export interface ScheduledJobInput {
  readonly org: string;
  readonly actor: string;
  readonly scheduleId: string;
  readonly request: JobRequest;
}

const { createScheduledJob } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
});

export async function scheduledJobWorkflow(input: ScheduledJobInput): Promise<JobProgress> {
  // Chosen in the workflow (time, and randomness Temporal records), so a retried activity stores the same job.
  const jobId = `${Date.now().toString(36).padStart(9, '0')}-${uuid4().replace(/-/g, '').slice(0, 10)}`;
  const jobInput = await createScheduledJob(input.org, input.actor, input.request, jobId, input.scheduleId);
  return executeChild(jobWorkflow, {
    workflowId: jobWorkflowId(input.org, jobId),
    args: [jobInput],
    parentClosePolicy: ParentClosePolicy.ABANDON,
    typedSearchAttributes: [
      { key: TWINFLOW_ORG, value: input.org },
      { key: TWINFLOW_JOB, value: jobId },
      { key: TWINFLOW_OPERATION, value: input.request.order.name },
      { key: TWINFLOW_STATUS, value: 'RUNNING' },
    ],
  });
}
