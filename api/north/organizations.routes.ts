// Organizations (tenants): created by a platform admin, each with its first admin user.
import { z } from 'zod';
import type { OrganizationDoc, UserDoc } from '../../inventory/documents';
import { hashPassword } from '../../access/passwords';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { actorOf } from '../context';
import { ApiError } from '../errors';
import { emailSchema, newPasswordSchema } from './auth.routes';
import { userView } from './users.routes';

export const organizationsRoutes = new RouteGroup('/north/v1/organizations');
const tag = 'Organizations';

const ORG_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,47}$/;

const createOrgSchema = z
  .object({
    id: z.string().regex(ORG_ID_PATTERN, 'lower-case letters, digits and dashes, 2 to 48'),
    name: z.string().min(1).max(200),
    admin: z
      .object({
        email: emailSchema,
        password: newPasswordSchema,
        name: z.string().min(1).max(200).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
const listOrgsQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(500).default(100),
    cursor: z.string().max(48).optional(),
  })
  .strict();

const orgView = (o: OrganizationDoc) => ({ id: o._id, name: o.name, createdAt: o.createdAt.toISOString() });

organizationsRoutes.post(
  '/',
  can('organizations:manage'),
  {
    summary: 'Create an organization and its first admin',
    tag,
    body: createOrgSchema,
    responses: [201, 409],
  },
  async (c, { body }) => {
    const principal = c.get('principal');
    const services = c.get('services');
    const now = new Date(services.now());
    let admin: UserDoc | undefined;
    if (body.admin) {
      admin = {
        _id: body.admin.email,
        org: body.id,
        role: 'org-admin',
        passwordHash: await hashPassword(body.admin.password),
        disabled: false,
        sessionsValidAfter: 0,
        createdAt: now,
        createdBy: actorOf(principal),
        updatedAt: now,
        ...(body.admin.name !== undefined ? { name: body.admin.name } : {}),
      };
      // The address first: a taken one must not leave an organization without its admin.
      if (await services.users.get(admin._id))
        throw new ApiError('CONFLICT', `the address ${admin._id} is taken`);
    }
    const org: OrganizationDoc = { _id: body.id, name: body.name, createdAt: now };
    if (!(await services.organizations.insert(org)))
      throw new ApiError('CONFLICT', `organization ${body.id} exists`);
    if (admin && !(await services.users.insert(admin))) {
      throw new ApiError(
        'CONFLICT',
        `organization ${body.id} was created, but the address ${admin._id} is taken`,
      );
    }
    await audit(
      c,
      'organization.create',
      `organizations/${org._id}`,
      admin ? { admin: admin._id } : undefined,
      org._id,
    );
    return c.json({ ...orgView(org), ...(admin ? { admin: userView(admin) } : {}) }, 201);
  },
);

organizationsRoutes.get(
  '/',
  can('organizations:manage'),
  { summary: 'List organizations', tag, query: listOrgsQuerySchema },
  async (c, { query: { limit, cursor } }) => {
    const orgs = await c.get('services').organizations.list(limit + 1, cursor);
    const page = orgs.slice(0, limit);
    return c.json({
      organizations: page.map(orgView),
      ...(orgs.length > limit ? { nextCursor: page[page.length - 1]?._id } : {}),
    });
  },
);

organizationsRoutes.get(
  '/:orgId',
  can('organizations:read'),
  { summary: 'Get an organization (your own, or any for a platform admin)', tag },
  async (c) => {
    const id = c.req.param('orgId') ?? '';
    const principal = c.get('principal');
    // Another organization answers 404 like a missing one, so existence does not leak.
    const visible = ORG_ID_PATTERN.test(id) && (principal.platformAdmin || id === principal.org);
    const org = visible ? await c.get('services').organizations.get(id) : null;
    if (!org) throw new ApiError('NOT_FOUND', `organization ${id} not found`);
    return c.json(orgView(org));
  },
);

export const auditRoutes = new RouteGroup('/north/v1/audit');

const auditQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(500).default(100),
    cursor: z.string().max(200).optional(),
    action: z
      .string()
      .regex(/^[a-z]+\.[a-z.]+$/)
      .max(64)
      .optional(),
  })
  .strict();

auditRoutes.get(
  '/',
  can('audit:read'),
  { summary: "The organization's audit log, newest first", tag: 'Audit', query: auditQuerySchema },
  async (c, { query: { limit, cursor, action } }) => {
    const org = c.get('principal').org;
    if (cursor !== undefined && !cursor.startsWith(`${org}/`))
      throw new ApiError('INVALID_ARGUMENT', 'bad cursor');
    const entries = await c.get('services').audit.list(org, limit + 1, cursor, action);
    const page = entries.slice(0, limit);
    return c.json({
      entries: page.map((e) => ({
        id: e._id.slice(org.length + 1),
        at: e.at.toISOString(),
        actor: e.actor,
        action: e.action,
        resource: e.resource,
        outcome: e.outcome,
        ...(e.details !== undefined ? { details: e.details } : {}),
        ...(e.requestId !== undefined ? { requestId: e.requestId } : {}),
      })),
      ...(entries.length > limit ? { nextCursor: page[page.length - 1]?._id } : {}),
    });
  },
);
