// Message definitions of the job workflow. No other imports, so the API can use them without workflow code.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { Control, JobProgress } from '../twins/job-plan';

/** The job's progress as it stands now. */
export const getJobProgressQuery = defineQuery<JobProgress>('getJobProgress');
/** Pause, resume, cancel, approve the next wave, change the rate: answers the new progress, or CONFLICT. */
export const controlJobUpdate = defineUpdate<JobProgress, [Control]>('controlJob');
