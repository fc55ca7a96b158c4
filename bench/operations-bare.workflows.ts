// Workflows for the operations benchmark's bare reference: a long-lived workflow per device, like a twin, whose
// Update runs one local activity that POSTs the request to the device, and a no-op Update for polls.
import {
  condition,
  defineSignal,
  defineUpdate,
  proxyLocalActivities,
  setHandler,
} from '@temporalio/workflow';

export interface BareActivities {
  /** POSTs the body to the URL and answers the response's result code (or the HTTP status). */
  postToDevice(url: string, body: unknown): Promise<string>;
}

export const pushUpdate = defineUpdate<string, [string, unknown]>('push');
export const noopUpdate = defineUpdate<number, []>('noop');
export const stopSignal = defineSignal('stop');

const { postToDevice } = proxyLocalActivities<BareActivities>({ startToCloseTimeout: '30s' });

export async function bareTwinWorkflow(): Promise<void> {
  let stopped = false;
  let polls = 0;
  setHandler(pushUpdate, (url, body) => postToDevice(url, body));
  setHandler(noopUpdate, () => ++polls);
  setHandler(stopSignal, () => void (stopped = true));
  await condition(() => stopped);
}
