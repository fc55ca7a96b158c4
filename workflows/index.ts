// Every workflow the TwinFlow worker runs; the worker bundles this file.
export { twinWorkflow } from './twin.workflow';
export { operationWorkflow } from './operation.workflow';
export { retentionWorkflow } from './retention.workflow';
export { jobWorkflow } from './job.workflow';
export { scheduledJobWorkflow } from './scheduled-job.workflow';
export { forwarderWorkflow } from './forwarder.workflow';
