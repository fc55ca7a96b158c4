// The forwarder's round: long-poll the organization's log from the cursor, deliver what the subscription takes
// (one device's events in order, devices side by side), and answer the new cursor. A failed round is retried by
// Temporal from the same cursor, so the same events go out again with the same idempotency keys.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { FleetEvent } from '../events/event-types';
import { EventTail } from '../events/tail';
import type { EventRepository } from '../inventory/events.repo';
import type { ForwarderDoc, ForwarderRepository } from '../inventory/forwarders.repo';
import { deliverInLanes, type ForwardingTools } from './lanes';
import { selectEvent } from './subscription';

export interface ForwarderOptions {
  /** How long one round waits for matching events before it answers (ms). */
  readonly pollWindowMs: number;
  /** How often a waiting round reads the log (ms). */
  readonly pollIntervalMs: number;
  /** A failing round pauses the forwarder at this attempt. */
  readonly pauseAfter: number;
  /** Most events one round delivers. */
  readonly maxBatch: number;
}

export const DEFAULT_FORWARDER_OPTIONS: ForwarderOptions = {
  pollWindowMs: 20_000,
  pollIntervalMs: 250,
  pauseAfter: 10,
  maxBatch: 1_000,
};

export interface ForwarderActivityDeps extends ForwardingTools {
  readonly forwarders: ForwarderRepository;
  readonly events: EventRepository;
  readonly options: ForwarderOptions;
}

export interface ForwardRoundInput {
  readonly org: string;
  readonly id: string;
  readonly cursor: number;
}

export interface ForwardRoundResult {
  readonly state: 'active' | 'paused' | 'deleted';
  readonly cursor: number;
  readonly delivered: number;
}

/** The next events the subscription takes, at most `max`, and the seq up to which the log is read. */
function pick(docs: readonly FleetEvent[], fwd: ForwarderDoc, max: number, position: number) {
  const events: FleetEvent[] = [];
  for (const event of docs) {
    const selected = selectEvent(event, fwd.subscription);
    if (selected) events.push(selected);
    if (events.length === max) return { events, upto: event.seq };
  }
  return { events, upto: position };
}

export function createForwarderActivities(deps: ForwarderActivityDeps) {
  const o = deps.options;

  /** A failed round: retried by Temporal, or (at the pausing attempt) the forwarder pauses and says so. */
  async function failRound(fwd: ForwarderDoc, cursor: number, error: string): Promise<ForwardRoundResult> {
    const ctx = Context.current();
    const at = deps.now();
    await deps.forwarders.recordRound(fwd.org, fwd.id, { cursor, delivered: 0, at, error });
    if (ctx.info.attempt < o.pauseAfter) throw ApplicationFailure.retryable(error, 'ForwarderDeliveryFailed');
    const reason = `paused after ${ctx.info.attempt} failed attempts: ${error}`;
    await deps.forwarders.setStatus(fwd.org, fwd.id, 'paused', reason);
    await deps.events.append(fwd.org, [
      {
        type: 'forwarder.paused',
        at,
        body: { forwarderId: fwd.id, name: fwd.name, reason, cursor },
        key: `forwarder.paused/${fwd.id}/${ctx.info.workflowExecution?.runId ?? ''}/${ctx.info.activityId}`,
      },
    ]);
    return { state: 'paused', cursor, delivered: 0 };
  }

  async function forwardEvents(input: ForwardRoundInput): Promise<ForwardRoundResult> {
    const ctx = Context.current();
    const fwd = await deps.forwarders.get(input.org, input.id);
    if (!fwd) return { state: 'deleted', cursor: input.cursor, delivered: 0 };
    if (fwd.status === 'paused') return { state: 'paused', cursor: input.cursor, delivered: 0 };
    const tail = await EventTail.start(deps.events, input.org, input.cursor);
    const deadline = deps.now() + o.pollWindowMs;
    for (;;) {
      // A batch at a time: a long backlog is not read whole for the one batch a round delivers.
      const read = await tail.advance(o.maxBatch);
      const { events, upto } = pick(read, fwd, o.maxBatch, tail.position);
      if (events.length > 0) {
        const done = await deliverInLanes(fwd, events, deps, () => ctx.heartbeat());
        if (done.error !== undefined) return failRound(fwd, input.cursor, done.error);
        await deps.forwarders.recordRound(fwd.org, fwd.id, {
          cursor: upto,
          delivered: done.delivered,
          at: deps.now(),
        });
        return { state: 'active', cursor: upto, delivered: done.delivered };
      }
      ctx.heartbeat();
      if (deps.now() >= deadline) {
        if (upto !== input.cursor)
          await deps.forwarders.recordRound(fwd.org, fwd.id, { cursor: upto, delivered: 0, at: deps.now() });
        return { state: 'active', cursor: upto, delivered: 0 };
      }
      // A full read that matched nothing: read on at once.
      if (read.length < o.maxBatch) await ctx.sleep(o.pollIntervalMs);
    }
  }

  return { forwardEvents };
}

export type ForwarderActivities = ReturnType<typeof createForwarderActivities>;
