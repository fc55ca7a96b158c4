// Dynamic config for the embedded Temporal dev server: one node, one history shard, tuned for latency.
export type DynamicConfig = Readonly<Record<string, string | number | boolean>>;

/**
 * What TwinFlow sets on `temporal server start-dev` (CLI 1.5.1, server 1.29.1); figures from `BENCH_ONLY=temporal-steps
 * npm run bench` on a 2-core machine. A real cluster spreads these queues over many shards and hosts: none of this
 * is meant for one.
 */
export const DEV_SERVER_DYNAMIC_CONFIG: DynamicConfig = {
  // One task queue partition: with the default four, a task may land on a partition no poller waits on and be
  // forwarded, which costs tens of milliseconds per workflow task on a single node.
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
  // The transfer queue (workflow start, signal, activity and child dispatch, child completion) is read at most 20
  // times a second per shard by default, and the dev server has one shard: each such step waited about 50 ms.
  'history.transferProcessorMaxPollRPS': 1000,
  // Same limit on the timer queue: a timer (the twin's snapshot debounce, an operation's retry delay) fired late.
  'history.timerProcessorMaxPollRPS': 1000,
  // Same limit on the visibility queue: a started or closed workflow showed in lists (Web UI, tests) late.
  'history.visibilityProcessorMaxPollRPS': 1000,
};
