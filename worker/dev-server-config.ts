// Dynamic config for the embedded Temporal dev server: one node, one history shard, tuned for latency.
export type DynamicConfig = Readonly<Record<string, string | number | boolean>>;

/**
 * What TwinFlow sets on `temporal server start-dev` (CLI 1.5.1, server 1.29.1); figures are p50 one at a time from
 * `BENCH_ONLY=temporal-steps npm run bench` on a busy 2-core machine (BENCH_STEPS_WITHOUT=key,... measures the config
 * without some keys). The dev server accepts unknown keys silently: each key here is in the server's
 * common/dynamicconfig/constants.go and showed its effect in the bench. Left out: `history.outboundProcessorMaxPollRPS`
 * (Nexus and callbacks, which TwinFlow does not use). A real cluster spreads these queues over many shards and
 * hosts: none of this is meant for one.
 */
export const DEV_SERVER_DYNAMIC_CONFIG: DynamicConfig = {
  // One task queue partition: with the default four, a task may land on a partition no poller waits on and be
  // forwarded, which costs tens of milliseconds per workflow task on a single node.
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
  // The transfer queue (workflow start, signal, activity and child dispatch, child completion) is read at most 20
  // times a second per shard by default, and the dev server has one shard: each such step waited about 50 ms (an
  // Update running an activity: 99 ms p50 on the defaults, 37 ms with this).
  'history.transferProcessorMaxPollRPS': 1000,
  // Same limit on the timer queue, which a timer (the twin's snapshot debounce, an operation's retry delay) passes
  // through: without it a 1 ms timer took about 200 ms instead of 105.
  'history.timerProcessorMaxPollRPS': 1000,
  // A new timer fires no sooner than now + this shift (1 s by default, room for clock skew between hosts; one host
  // here): a 1 ms timer took 1,010 ms, with 100 ms about 105 ms.
  'history.timerProcessorMaxTimeShift': '100ms',
  // Same limit on the visibility queue: a started workflow showed in lists (Web UI, tests) after 51 ms instead of 23.
  'history.visibilityProcessorMaxPollRPS': 1000,
};
