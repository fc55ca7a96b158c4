// API keys: service keys with a role, and device keys. The secret is shown once, at creation or rotation.
import type { Context } from 'hono';
import { z } from 'zod';
import type { ApiKeyDoc } from '../../inventory/documents';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { type AppEnv, actorOf } from '../context';
import { ApiError } from '../errors';
import { checkGrantableRole } from './users.routes';

export const keysRoutes = new RouteGroup('/north/v1/keys');
const tag = 'API keys';

const KEY_ID_PATTERN = /^tfk_[0-9a-f]{8}$/;

const createKeySchema = z
  .object({ name: z.string().min(1).max(100), role: z.string().min(1).max(48) })
  .strict();
const listKeysQuerySchema = z
  .object({
    kind: z.enum(['service', 'device', 'admin']).optional(),
    deviceId: z.string().min(1).max(128).optional(),
    includeRevoked: z.enum(['true', 'false']).optional(),
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
  })
  .strict();

const keyView = (k: Omit<ApiKeyDoc, '_id'>) => ({
  keyId: k.keyId,
  kind: k.kind,
  ...(k.role !== undefined ? { role: k.role } : {}),
  ...(k.deviceId !== undefined ? { deviceId: k.deviceId } : {}),
  ...(k.name !== undefined ? { name: k.name } : {}),
  ...(k.createdBy !== undefined ? { createdBy: k.createdBy } : {}),
  createdAt: k.createdAt.toISOString(),
  ...(k.revokedAt !== undefined ? { revokedAt: k.revokedAt.toISOString() } : {}),
  ...(k.replacedBy !== undefined ? { replacedBy: k.replacedBy } : {}),
});

/** An active key of the caller's organization that the caller may manage. */
async function manageableKey(c: Context<AppEnv>): Promise<ApiKeyDoc> {
  const raw = c.req.param('keyId') ?? '';
  const principal = c.get('principal');
  const services = c.get('services');
  const doc = KEY_ID_PATTERN.test(raw) ? await services.keys.getByKeyId(principal.org, raw) : null;
  if (!doc || doc.revokedAt !== undefined) throw new ApiError('NOT_FOUND', `key ${raw} not found`);
  if (doc.kind === 'admin' && !principal.platformAdmin) {
    throw new ApiError('PERMISSION_DENIED', 'only a platform admin manages the platform admin key');
  }
  if (doc.kind === 'service' && doc.role !== undefined) await checkGrantableRole(c, doc.role);
  return doc;
}

keysRoutes.post(
  '/',
  can('keys:manage'),
  { summary: 'Create a service key with a role', tag, body: createKeySchema, responses: [201] },
  async (c, { body }) => {
    const principal = c.get('principal');
    const services = c.get('services');
    await checkGrantableRole(c, body.role);
    const { doc, secret } = services.keys.newKey(
      principal.org,
      'service',
      new Date(services.now()),
      undefined,
      {
        role: body.role,
        name: body.name,
        createdBy: actorOf(principal),
      },
    );
    await services.keys.insertMany([doc]);
    await audit(c, 'key.create', `keys/${doc.keyId}`, { role: body.role, name: body.name });
    return c.json({ ...keyView(doc), apiKey: secret }, 201);
  },
);

keysRoutes.get(
  '/',
  can('keys:read'),
  { summary: "List the organization's keys (never their secrets)", tag, query: listKeysQuerySchema },
  async (c, { query: q }) => {
    const keys = await c.get('services').keys.listForOrg(
      c.get('principal').org,
      {
        ...(q.kind !== undefined ? { kind: q.kind } : {}),
        ...(q.deviceId !== undefined ? { deviceId: q.deviceId } : {}),
        includeRevoked: q.includeRevoked === 'true',
      },
      q.limit,
    );
    return c.json({ keys: keys.map(keyView) });
  },
);

keysRoutes.post(
  '/:keyId/rotate',
  can('keys:manage'),
  { summary: 'Replace a key with a new secret (the old one stops working)', tag, responses: [201] },
  async (c) => {
    const principal = c.get('principal');
    const services = c.get('services');
    const old = await manageableKey(c);
    const now = new Date(services.now());
    const { doc, secret } = services.keys.newKey(old.org, old.kind, now, old.deviceId, {
      ...(old.role !== undefined ? { role: old.role } : {}),
      ...(old.name !== undefined ? { name: old.name } : {}),
      createdBy: actorOf(principal),
    });
    // The new key first: a crash between the two leaves both working, never neither.
    await services.keys.insertMany([doc]);
    const hash = await services.keys.revoke(old.org, old.keyId, now, doc.keyId);
    if (hash) services.auth.forget([hash]);
    await audit(c, 'key.rotate', `keys/${old.keyId}`, { replacedBy: doc.keyId });
    return c.json({ ...keyView(doc), apiKey: secret }, 201);
  },
);

keysRoutes.delete('/:keyId', can('keys:manage'), { summary: 'Revoke a key at once', tag }, async (c) => {
  const services = c.get('services');
  const old = await manageableKey(c);
  const now = new Date(services.now());
  const hash = await services.keys.revoke(old.org, old.keyId, now);
  if (hash) services.auth.forget([hash]);
  await audit(c, 'key.revoke', `keys/${old.keyId}`, { kind: old.kind });
  const { _id: _hash, ...rest } = old;
  return c.json(keyView({ ...rest, revokedAt: now }));
});
