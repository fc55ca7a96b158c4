// Users of an organization: created with a role by someone who holds every right of that role.
import { z } from 'zod';
import type { UserDoc } from '../../inventory/documents';
import { hashPassword } from '../../access/passwords';
import { assignableRole, canGrant } from '../../access/permissions';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { type AppEnv, actorOf } from '../context';
import { ApiError } from '../errors';
import { emailSchema, newPasswordSchema } from './auth.routes';
import type { Context } from 'hono';

export const usersRoutes = new RouteGroup('/north/v1/users');
const tag = 'Users';

const roleNameSchema = z.string().min(1).max(48);
const createUserSchema = z
  .object({
    email: emailSchema,
    password: newPasswordSchema,
    role: roleNameSchema,
    name: z.string().min(1).max(200).optional(),
  })
  .strict();
const patchUserSchema = z
  .object({
    role: roleNameSchema.optional(),
    disabled: z.boolean().optional(),
    name: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((v) => Object.keys(v).length > 0, 'name at least one of role, disabled, name');
const listUsersQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(500).default(100),
    cursor: z.string().max(254).optional(),
  })
  .strict();

export const userView = (u: UserDoc) => ({
  email: u._id,
  org: u.org,
  ...(u.name !== undefined ? { name: u.name } : {}),
  role: u.role,
  disabled: u.disabled,
  createdAt: u.createdAt.toISOString(),
  createdBy: u.createdBy,
  updatedAt: u.updatedAt.toISOString(),
});

/** Refuses a role that does not exist in the organization or that grants more than the caller holds. */
export async function checkGrantableRole(c: Context<AppEnv>, role: string): Promise<void> {
  const principal = c.get('principal');
  if (!assignableRole(role)) throw new ApiError('INVALID_ARGUMENT', `role ${role} cannot be assigned here`);
  const permissions = await c.get('services').roleResolver.resolve(principal.org, role);
  if (!permissions)
    throw new ApiError('INVALID_ARGUMENT', `organization ${principal.org} has no role ${role}`);
  if (!canGrant(principal.permissions, [...permissions])) {
    throw new ApiError('PERMISSION_DENIED', `role ${role} holds rights you do not have`);
  }
}

const emailParam = (raw: string | undefined): string => {
  const parsed = emailSchema.safeParse(raw ?? '');
  if (!parsed.success) throw new ApiError('NOT_FOUND', 'user not found');
  return parsed.data;
};

async function userInOrg(c: Context<AppEnv>): Promise<UserDoc> {
  const email = emailParam(c.req.param('email'));
  const user = await c.get('services').users.getInOrg(c.get('principal').org, email);
  if (!user) throw new ApiError('NOT_FOUND', `user ${email} not found`);
  return user;
}

usersRoutes.post(
  '/',
  can('users:manage'),
  { summary: 'Create a user', tag, body: createUserSchema, responses: [201, 409] },
  async (c, { body }) => {
    const principal = c.get('principal');
    const services = c.get('services');
    await checkGrantableRole(c, body.role);
    const now = new Date(services.now());
    const doc: UserDoc = {
      _id: body.email,
      org: principal.org,
      role: body.role,
      passwordHash: await hashPassword(body.password),
      disabled: false,
      sessionsValidAfter: 0,
      createdAt: now,
      createdBy: actorOf(principal),
      updatedAt: now,
      ...(body.name !== undefined ? { name: body.name } : {}),
    };
    // E-mail addresses are unique across organizations; the answer does not say where one is taken.
    if (!(await services.users.insert(doc)))
      throw new ApiError('CONFLICT', `the address ${body.email} is taken`);
    await audit(c, 'user.create', `users/${doc._id}`, { role: doc.role });
    return c.json(userView(doc), 201);
  },
);

usersRoutes.get(
  '/',
  can('users:read'),
  { summary: "List the organization's users", tag, query: listUsersQuerySchema },
  async (c, { query: { limit, cursor } }) => {
    const users = await c.get('services').users.listForOrg(c.get('principal').org, limit + 1, cursor);
    const page = users.slice(0, limit);
    return c.json({
      users: page.map(userView),
      ...(users.length > limit ? { nextCursor: page[page.length - 1]?._id } : {}),
    });
  },
);

usersRoutes.get('/:email', can('users:read'), { summary: 'Get a user', tag }, async (c) =>
  c.json(userView(await userInOrg(c))),
);

usersRoutes.patch(
  '/:email',
  can('users:manage'),
  { summary: "Change a user's role, name or state", tag, body: patchUserSchema },
  async (c, { body }) => {
    const services = c.get('services');
    const user = await userInOrg(c);
    // Changing someone who holds more than you would let you take their rights away or hand them on.
    const theirs = await services.roleResolver.resolve(user.org, user.role);
    if (theirs && !canGrant(c.get('principal').permissions, [...theirs])) {
      throw new ApiError('PERMISSION_DENIED', `user ${user._id} holds rights you do not have`);
    }
    if (body.role !== undefined) await checkGrantableRole(c, body.role);
    const now = services.now();
    const set: Partial<UserDoc> = { updatedAt: new Date(now) };
    if (body.role !== undefined) set.role = body.role;
    if (body.name !== undefined) set.name = body.name;
    if (body.disabled !== undefined) set.disabled = body.disabled;
    if (body.disabled === true) set.sessionsValidAfter = now + 1;
    await services.users.update(user._id, set);
    services.auth.forgetUser(user._id);
    await audit(c, 'user.update', `users/${user._id}`, { ...body });
    return c.json(userView({ ...user, ...set }));
  },
);

usersRoutes.delete(
  '/:email',
  can('users:manage'),
  { summary: 'Delete a user (ends their sessions)', tag, responses: [204] },
  async (c) => {
    const services = c.get('services');
    const user = await userInOrg(c);
    const theirs = await services.roleResolver.resolve(user.org, user.role);
    if (theirs && !canGrant(c.get('principal').permissions, [...theirs])) {
      throw new ApiError('PERMISSION_DENIED', `user ${user._id} holds rights you do not have`);
    }
    await services.users.delete(user._id);
    services.auth.forgetUser(user._id);
    await audit(c, 'user.delete', `users/${user._id}`);
    return c.body(null, 204);
  },
);
