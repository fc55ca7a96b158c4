// North API for the fleet event log: a page of an organization's events, and a live stream of them as
// Server-Sent Events that a client resumes with Last-Event-ID, missing nothing and getting nothing twice.
import { streamSSE } from 'hono/streaming';
import type { Context } from 'hono';
import { z } from 'zod';
import { EVENT_TYPES, type EventFilter, type EventType, type FleetEvent } from '../../events/event-types';
import { can, RouteGroup } from '../access/route-group';
import type { AppEnv } from '../context';
import { ApiError } from '../errors';

export const eventsRoutes = new RouteGroup('/north/v1/events');
const tag = 'Events';

/** Devices a tag filter follows at most; a stream reads the tag's devices again every TAG_REFRESH_MS. */
const MAX_TAG_DEVICES = 10_000;
const TAG_REFRESH_MS = 5_000;

const SEQ = z
  .string()
  .regex(/^\d{1,15}$/, 'an event id (a decimal number)')
  .transform(Number);

const filterFields = {
  /** Comma-separated event types; none: every type but `datapoints`. */
  types: z
    .string()
    .max(2_000)
    .transform((raw, ctx) => {
      const types = raw.split(',').filter((t) => t.length > 0);
      const unknown = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
      if (unknown.length > 0)
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `unknown event types: ${unknown.join(', ')}` });
      return types as EventType[];
    })
    .optional(),
  deviceId: z.string().min(1).max(128).optional(),
  tag: z.string().min(1).max(64).optional(),
  /** Events at or after this time: ISO 8601 or ms since the epoch. */
  since: z
    .string()
    .max(40)
    .transform((raw, ctx) => {
      const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
      if (!Number.isFinite(ms)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'since is not a time' });
      return ms;
    })
    .optional(),
};

const listQuerySchema = z
  .object({
    ...filterFields,
    /** The id of the last event of the previous page (or of the last one seen). */
    after: SEQ.optional(),
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
  })
  .strict();

const streamQuerySchema = z
  .object({
    ...filterFields,
    /** Resume after this event id (as Last-Event-ID does; the header wins). */
    after: SEQ.optional(),
    /** How often a quiet stream sends a heartbeat comment (ms). */
    heartbeatMs: z.coerce.number().int().min(1_000).max(120_000).default(15_000),
  })
  .strict();

type FilterQuery = { types?: EventType[]; deviceId?: string; tag?: string; since?: number };

/** The filter a query asks for; a tag becomes the devices that carry it now. */
async function filterOf(c: Context<AppEnv>, org: string, q: FilterQuery): Promise<EventFilter> {
  let deviceIds: string[] | undefined = q.deviceId !== undefined ? [q.deviceId] : undefined;
  if (q.tag !== undefined) {
    const tagged = await c.get('services').devices.idsWithTag(org, q.tag, MAX_TAG_DEVICES);
    deviceIds = deviceIds ? deviceIds.filter((id) => tagged.includes(id)) : tagged;
  }
  return {
    ...(q.types && q.types.length > 0 ? { types: q.types } : {}),
    ...(deviceIds ? { deviceIds } : {}),
    ...(q.since !== undefined ? { since: q.since } : {}),
  };
}

export const eventView = (e: FleetEvent) => ({
  id: e.id,
  type: e.type,
  at: e.at,
  ...(e.deviceId !== undefined ? { deviceId: e.deviceId } : {}),
  body: e.body,
});

eventsRoutes.get(
  '/',
  can('events:read'),
  { summary: "A page of the organization's events, oldest first", tag, query: listQuerySchema },
  async (c, { query }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    const filter = await filterOf(c, org, query);
    const upto = await services.eventHub.settled(org);
    const after = query.after ?? 0;
    const page = await services.events.list(org, filter, { afterSeq: after, uptoSeq: upto }, query.limit);
    return c.json({
      items: page.items.map(eventView),
      // Where to go on from: the last event read (a page may end before the log does: a selective filter reads
      // a bounded part of the log per call), never before what was asked for.
      next: String(Math.max(page.scannedTo, after)),
    });
  },
);

/** Last-Event-ID, when the client sent one: it must be an event id. */
function lastEventId(c: Context<AppEnv>): number | undefined {
  const raw = c.req.header('last-event-id');
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw new ApiError('INVALID_ARGUMENT', 'Last-Event-ID must be an event id');
  return Number(raw);
}

eventsRoutes.get(
  '/stream',
  can('events:read'),
  {
    summary: "The organization's events as they happen (Server-Sent Events; resume with Last-Event-ID)",
    tag,
    query: streamQuerySchema,
    rawResponse: 'text/event-stream',
  },
  async (c, { query }) => {
    const { org } = c.get('principal');
    const services = c.get('services');
    const after = lastEventId(c) ?? query.after;
    const filter = await filterOf(c, org, query);
    return streamSSE(c, async (stream) => {
      const queue: FleetEvent[] = [];
      let wake: (() => void) | undefined;
      let closed = false;
      const stop = () => {
        closed = true;
        wake?.();
      };
      const sub = await services.eventHub.subscribe(
        org,
        after,
        filter,
        (e) => {
          queue.push(e);
          wake?.();
        },
        stop,
      );
      stream.onAbort(stop);
      // A tag's devices are read again on a timer of their own, so a quiet stream follows them too.
      const refresh =
        query.tag === undefined
          ? undefined
          : setInterval(() => {
              filterOf(c, org, query).then(
                (f) => sub.setFilter(f),
                (err: unknown) => services.logger.warn({ err }, 'could not read the devices of a tag'),
              );
            }, TAG_REFRESH_MS);
      try {
        await stream.writeSSE({ event: 'ready', data: JSON.stringify({ position: String(sub.position()) }) });
        while (!closed) {
          if (queue.length === 0)
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, query.heartbeatMs);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
          wake = undefined;
          if (closed) break;
          if (queue.length === 0) await stream.write(': heartbeat\n\n');
          for (const e of queue.splice(0)) {
            await stream.writeSSE({ id: e.id, event: e.type, data: JSON.stringify(eventView(e)) });
          }
        }
      } finally {
        clearInterval(refresh);
        sub.close();
      }
    });
  },
);
