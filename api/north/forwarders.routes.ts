// Forwarders: where an organization's events go (a signed webhook or an external MQTT topic), which events, and
// how each is doing; dead letters and their replay; a test send. Secrets are write-only (`hasSecret`).
import { z } from 'zod';
import { EVENT_TYPES } from '../../events/event-types';
import type { Destination, ForwarderDoc } from '../../inventory/forwarders.repo';
import type { NewForwarder } from '../../forwarders/forwarders.service';
import { DEVICE_ID_PATTERN } from '../../workflows/ids';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { actorOf } from '../context';
import { ApiError } from '../errors';
import { patternParam } from '../validation';

export const forwardersRoutes = new RouteGroup('/north/v1/forwarders');
const tag = 'Forwarders';

const FORWARDER_ID = patternParam(/^fwd_[0-9a-f]{12}$/, (raw) => `forwarder ${raw} not found`);
const SEQ = patternParam(/^[1-9][0-9]{0,11}$/, (raw) => `dead letter ${raw} not found`);
const params = { forwarderId: FORWARDER_ID };

/** Headers TwinFlow sets itself: a forwarder may not override them. */
const RESERVED_HEADERS = /^(content-type|content-length|host|idempotency-key|x-twinflow-.*)$/i;
const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, 'not a header name')
  .refine((n) => !RESERVED_HEADERS.test(n), 'TwinFlow sets this header itself');

const httpUrl = z
  .string()
  .max(2048)
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL');
const mqttUrl = z
  .string()
  .max(2048)
  .url()
  .refine((u) => /^mqtts?:\/\//i.test(u), 'must be an mqtt:// or mqtts:// URL');

const webhookSchema = <S extends z.ZodTypeAny>(secret: S) =>
  z
    .object({
      kind: z.literal('webhook'),
      url: httpUrl,
      headers: z
        .record(
          headerName,
          z
            .string()
            .max(4096)
            .regex(/^[^\r\n]*$/, 'no line breaks'),
        )
        .refine((h) => Object.keys(h).length <= 20, 'at most 20 headers')
        .optional(),
      secret,
    })
    .strict();
const mqttSchema = <S extends z.ZodTypeAny>(password: S) =>
  z
    .object({
      kind: z.literal('mqtt'),
      url: mqttUrl,
      topic: z
        .string()
        .min(1)
        .max(256)
        .regex(/^[^#+\u0000]+$/, 'a topic to publish to: no wildcards'),
      username: z.string().min(1).max(256).optional(),
      password,
    })
    .strict();

const SECRET = z.string().min(16, 'at least 16 characters').max(256);
const PASSWORD = z.string().min(1).max(256);
const destinationSchema = z.discriminatedUnion('kind', [
  webhookSchema(SECRET),
  mqttSchema(PASSWORD.optional()),
]);
/** In a change the secret may be left out: the stored one stays (same kind of destination). */
const destinationChangeSchema = z.discriminatedUnion('kind', [
  webhookSchema(SECRET.optional()),
  mqttSchema(PASSWORD.optional()),
]);

const subscriptionSchema = z
  .object({
    types: z.array(z.enum(EVENT_TYPES)).max(EVENT_TYPES.length).optional(),
    deviceIds: z.array(z.string().regex(DEVICE_ID_PATTERN)).min(1).max(1_000).optional(),
    datastreams: z.array(z.string().min(1).max(128)).min(1).max(100).optional(),
  })
  .strict();

const createSchema = z
  .object({
    name: z.string().min(1).max(100),
    destination: destinationSchema,
    subscription: subscriptionSchema,
    connector: z.string().min(1).max(100_000).optional(),
  })
  .strict();
const changeSchema = z
  .object({
    name: z.string().min(1).max(100).optional(),
    destination: destinationChangeSchema.optional(),
    subscription: subscriptionSchema.optional(),
    connector: z.string().min(1).max(100_000).nullable().optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'nothing to change');
const listQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(1_000).default(100) }).strict();
const deadLettersQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
    after: z.coerce.number().int().min(0).optional(),
  })
  .strict();
const replaySchema = z.object({ seqs: z.array(z.number().int().min(1)).min(1).max(100).optional() }).strict();

const destinationView = (d: Destination) =>
  d.kind === 'webhook'
    ? { kind: d.kind, url: d.url, headerNames: d.headers.map((h) => h.name), hasSecret: true }
    : {
        kind: d.kind,
        url: d.url,
        topic: d.topic,
        ...(d.username !== undefined ? { username: d.username } : {}),
        hasSecret: d.password !== undefined,
      };

/** A forwarder as the API shows it: never its secret, password or header values. */
export const forwarderView = (f: ForwarderDoc) => ({
  id: f.id,
  name: f.name,
  destination: destinationView(f.destination),
  subscription: f.subscription,
  hasConnector: f.connector !== undefined,
  status: f.status,
  ...(f.pausedReason !== undefined ? { pausedReason: f.pausedReason } : {}),
  cursor: f.cursor,
  delivered: f.delivered,
  ...(f.lastDeliveredAt !== undefined ? { lastDeliveredAt: f.lastDeliveredAt } : {}),
  ...(f.lastError !== undefined ? { lastError: f.lastError } : {}),
  createdAt: f.createdAt,
  createdBy: f.createdBy,
  updatedAt: f.updatedAt,
});

type DestinationInput = z.infer<typeof destinationChangeSchema>;

/** The stored destination: headers as pairs; a secret left out of a change keeps the stored one. */
function toDestination(input: DestinationInput, before?: Destination): Destination {
  if (input.kind === 'webhook') {
    const secret = input.secret ?? (before?.kind === 'webhook' ? before.secret : undefined);
    if (secret === undefined)
      throw new ApiError('INVALID_ARGUMENT', 'invalid body: destination.secret: Required');
    const headers = Object.entries(input.headers ?? {}).map(([name, value]) => ({ name, value }));
    return { kind: 'webhook', url: input.url, headers, secret };
  }
  const password = input.password ?? (before?.kind === 'mqtt' ? before.password : undefined);
  return {
    kind: 'mqtt',
    url: input.url,
    topic: input.topic,
    ...(input.username !== undefined ? { username: input.username } : {}),
    ...(password !== undefined ? { password } : {}),
  };
}

forwardersRoutes.post(
  '/',
  can('forwarders:manage'),
  {
    summary: 'Create a forwarder (it forwards events logged from now on)',
    tag,
    body: createSchema,
    responses: [201],
  },
  async (c, { body }) => {
    const principal = c.get('principal');
    const input: NewForwarder = {
      name: body.name,
      destination: toDestination(body.destination),
      subscription: body.subscription,
      ...(body.connector !== undefined ? { connector: body.connector } : {}),
    };
    const doc = await c.get('services').forwarders.create(principal.org, actorOf(principal), input);
    await audit(c, 'forwarder.create', `forwarders/${doc.id}`, {
      name: doc.name,
      kind: doc.destination.kind,
      url: doc.destination.url,
    });
    return c.json(forwarderView(doc), 201);
  },
);

forwardersRoutes.get(
  '/',
  can('forwarders:read'),
  { summary: "List the organization's forwarders", tag, query: listQuerySchema },
  async (c, { query }) => {
    const docs = await c.get('services').forwarderRepo.list(c.get('principal').org, query.limit);
    return c.json({ forwarders: docs.map(forwarderView) });
  },
);

forwardersRoutes.get(
  '/:forwarderId',
  can('forwarders:read'),
  { summary: 'A forwarder: destination, subscription, status, cursor, last error', tag, params },
  async (c, { params: p }) => {
    const doc = await c.get('services').forwarders.get(c.get('principal').org, p.forwarderId);
    return c.json(forwarderView(doc));
  },
);

forwardersRoutes.patch(
  '/:forwarderId',
  can('forwarders:manage'),
  { summary: 'Change a forwarder (the secret stays unless given)', tag, params, body: changeSchema },
  async (c, { params: p, body }) => {
    const { org } = c.get('principal');
    const service = c.get('services').forwarders;
    const before = await service.get(org, p.forwarderId);
    const doc = await service.configure(org, p.forwarderId, {
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.destination ? { destination: toDestination(body.destination, before.destination) } : {}),
      ...(body.subscription ? { subscription: body.subscription } : {}),
      ...(typeof body.connector === 'string' ? { connector: body.connector } : {}),
      ...(body.connector === null ? { removeConnector: true } : {}),
    });
    await audit(c, 'forwarder.change', `forwarders/${doc.id}`, { fields: Object.keys(body) });
    return c.json(forwarderView(doc));
  },
);

forwardersRoutes.delete(
  '/:forwarderId',
  can('forwarders:manage'),
  { summary: 'Delete a forwarder and its dead letters', tag, params, responses: [204] },
  async (c, { params: p }) => {
    await c.get('services').forwarders.remove(c.get('principal').org, p.forwarderId);
    await audit(c, 'forwarder.delete', `forwarders/${p.forwarderId}`);
    return c.body(null, 204);
  },
);

forwardersRoutes.post(
  '/:forwarderId/pause',
  can('forwarders:manage'),
  { summary: 'Pause a forwarder (it keeps its place in the log)', tag, params },
  async (c, { params: p }) => {
    const principal = c.get('principal');
    const doc = await c.get('services').forwarders.pause(principal.org, p.forwarderId, actorOf(principal));
    await audit(c, 'forwarder.pause', `forwarders/${doc.id}`);
    return c.json(forwarderView(doc));
  },
);

forwardersRoutes.post(
  '/:forwarderId/resume',
  can('forwarders:manage'),
  { summary: 'Resume a paused forwarder from where it stopped', tag, params },
  async (c, { params: p }) => {
    const doc = await c.get('services').forwarders.resume(c.get('principal').org, p.forwarderId);
    await audit(c, 'forwarder.resume', `forwarders/${doc.id}`);
    return c.json(forwarderView(doc));
  },
);

forwardersRoutes.post(
  '/:forwarderId/test',
  can('forwarders:manage'),
  { summary: "Send a sample forwarder.test event now and show the destination's answer", tag, params },
  async (c, { params: p }) => {
    const r = await c.get('services').forwarders.test(c.get('principal').org, p.forwarderId);
    await audit(c, 'forwarder.test', `forwarders/${p.forwarderId}`, { result: r.kind });
    return c.json({
      delivered: r.kind === 'delivered',
      outcome: r.kind,
      ...(r.status !== undefined ? { status: r.status } : {}),
      ...(r.kind === 'delivered' ? { body: r.snippet } : { error: r.error }),
      durationMs: r.ms,
      event: r.event,
    });
  },
);

forwardersRoutes.get(
  '/:forwarderId/dead-letters',
  can('forwarders:read'),
  {
    summary: 'Events the destination refused, with the last error',
    tag,
    params,
    query: deadLettersQuerySchema,
  },
  async (c, { params: p, query }) => {
    const { org } = c.get('principal');
    await c.get('services').forwarders.get(org, p.forwarderId);
    const letters = await c
      .get('services')
      .forwarderRepo.listDeadLetters(org, p.forwarderId, query.limit, query.after ?? 0);
    return c.json({ deadLetters: letters });
  },
);

forwardersRoutes.post(
  '/:forwarderId/dead-letters/replay',
  can('forwarders:manage'),
  {
    summary: 'Send dead letters again (the seqs given, else the oldest 100)',
    tag,
    params,
    body: replaySchema,
  },
  async (c, { params: p, body }) => {
    const { org } = c.get('principal');
    const results = await c.get('services').forwarders.replay(org, p.forwarderId, body.seqs, 100);
    await audit(c, 'forwarder.replay', `forwarders/${p.forwarderId}`, {
      replayed: results.length,
      delivered: results.filter((r) => r.delivered).length,
    });
    return c.json({ results });
  },
);

forwardersRoutes.delete(
  '/:forwarderId/dead-letters/:seq',
  can('forwarders:manage'),
  { summary: 'Discard a dead letter', tag, params: { ...params, seq: SEQ }, responses: [204] },
  async (c, { params: p }) => {
    const { org } = c.get('principal');
    await c.get('services').forwarders.get(org, p.forwarderId);
    if (!(await c.get('services').forwarderRepo.removeDeadLetter(org, p.forwarderId, Number(p.seq))))
      throw new ApiError('NOT_FOUND', `dead letter ${p.seq} not found`);
    await audit(c, 'forwarder.discard', `forwarders/${p.forwarderId}/dead-letters/${p.seq}`);
    return c.body(null, 204);
  },
);
