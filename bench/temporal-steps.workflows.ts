// Workflows for bench/temporal-steps.ts: one message handler per internal Temporal step being measured.
import {
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  executeChild,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';

/** The bench's only activity; it answers at once, so a figure is the cost of the step, not of the work. */
export interface StepActivities {
  echo(n: number): Promise<number>;
}

export const returnNowUpdate = defineUpdate<number, [number]>('returnNow');
export const runLocalActivityUpdate = defineUpdate<number, [number]>('runLocalActivity');
export const runActivityUpdate = defineUpdate<number, [number]>('runActivity');
export const runChildUpdate = defineUpdate<number, [number]>('runChild');
export const runTimerUpdate = defineUpdate<number, [number]>('runTimer');
export const bumpCounterSignal = defineSignal('bumpCounter');
export const readCounterQuery = defineQuery<number>('readCounter');
export const stopSignal = defineSignal('stop');

const { echo } = proxyActivities<StepActivities>({ startToCloseTimeout: '10s' });
const { echo: echoLocal } = proxyLocalActivities<StepActivities>({ startToCloseTimeout: '10s' });

/** Returns at once: the child of `runChild`, and the workflow whose start is measured. */
export async function emptyWorkflow(n: number): Promise<number> {
  return n;
}

/** A long-lived workflow that receives the measured messages, like a twin. */
export async function stepsWorkflow(): Promise<void> {
  let counter = 0;
  let stopped = false;
  setHandler(returnNowUpdate, (n) => n);
  setHandler(runLocalActivityUpdate, (n) => echoLocal(n));
  setHandler(runActivityUpdate, (n) => echo(n));
  setHandler(runChildUpdate, (n) => executeChild(emptyWorkflow, { args: [n] }));
  setHandler(runTimerUpdate, async (n) => {
    await sleep(1);
    return n;
  });
  setHandler(bumpCounterSignal, () => void counter++);
  setHandler(readCounterQuery, () => counter);
  setHandler(stopSignal, () => void (stopped = true));
  await condition(() => stopped);
}
