// Roles: the built-in ones, and custom roles an organization defines as sets of actions.
import type { Context } from 'hono';
import { z } from 'zod';
import type { RoleDoc } from '../../inventory/documents';
import { roleDocId } from '../../inventory/identity.repo';
import {
  ACTIONS,
  BUILTIN_ROLES,
  canGrant,
  isBuiltinRole,
  ROLE_NAME_PATTERN,
  type Action,
} from '../../access/permissions';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import type { AppEnv } from '../context';
import { ApiError } from '../errors';
import { patternParam } from '../validation';

export const rolesRoutes = new RouteGroup('/north/v1/roles');
const tag = 'Roles';

/** organizations:manage belongs to platform admins alone; no custom role can hold it. */
const customActions = ACTIONS.filter((a) => a !== 'organizations:manage') as [Action, ...Action[]];
const permissionsSchema = z.array(z.enum(customActions)).max(ACTIONS.length);
const roleBodySchema = z
  .object({ description: z.string().max(500).optional(), permissions: permissionsSchema })
  .strict();
const createRoleSchema = roleBodySchema
  .extend({ name: z.string().regex(ROLE_NAME_PATTERN, 'lower-case letters, digits and dashes, 2 to 48') })
  .strict();

const roleView = (r: {
  name: string;
  description?: string;
  permissions: readonly string[];
  builtin: boolean;
}) => ({
  name: r.name,
  ...(r.description !== undefined ? { description: r.description } : {}),
  permissions: [...r.permissions].sort(),
  builtin: r.builtin,
});

const roleName = patternParam(ROLE_NAME_PATTERN, (raw) => `role ${raw ?? ''} not found`);

function checkGrant(c: Context<AppEnv>, permissions: readonly Action[]): void {
  if (!canGrant(c.get('principal').permissions, permissions)) {
    throw new ApiError('PERMISSION_DENIED', 'a role may hold only rights you have yourself');
  }
}

rolesRoutes.get('/', can('roles:read'), { summary: 'List built-in and custom roles', tag }, async (c) => {
  const custom = await c.get('services').roles.listForOrg(c.get('principal').org);
  return c.json({
    roles: [
      ...Object.values(BUILTIN_ROLES).map(roleView),
      ...custom.map((r) => roleView({ ...r, builtin: false })),
    ],
  });
});

rolesRoutes.get(
  '/:name',
  can('roles:read'),
  { summary: 'Get a role', tag, params: { name: roleName } },
  async (c, { params: { name } }) => {
    if (isBuiltinRole(name)) return c.json(roleView(BUILTIN_ROLES[name]));
    const doc = await c.get('services').roles.get(c.get('principal').org, name);
    if (!doc) throw new ApiError('NOT_FOUND', `role ${name} not found`);
    return c.json(roleView({ ...doc, builtin: false }));
  },
);

rolesRoutes.post(
  '/',
  can('roles:manage'),
  { summary: 'Create a custom role', tag, body: createRoleSchema, responses: [201, 409] },
  async (c, { body }) => {
    const services = c.get('services');
    const org = c.get('principal').org;
    if (isBuiltinRole(body.name)) throw new ApiError('CONFLICT', `${body.name} is a built-in role`);
    const permissions = [...new Set(body.permissions)];
    checkGrant(c, permissions);
    const now = new Date(services.now());
    const doc: RoleDoc = {
      _id: roleDocId(org, body.name),
      org,
      name: body.name,
      permissions,
      createdAt: now,
      updatedAt: now,
      ...(body.description !== undefined ? { description: body.description } : {}),
    };
    if (!(await services.roles.insert(doc))) throw new ApiError('CONFLICT', `role ${body.name} exists`);
    services.roleResolver.forget(org, body.name);
    await audit(c, 'role.create', `roles/${body.name}`, { permissions });
    return c.json(roleView({ ...doc, builtin: false }), 201);
  },
);

rolesRoutes.put(
  '/:name',
  can('roles:manage'),
  { summary: "Replace a custom role's permissions", tag, params: { name: roleName }, body: roleBodySchema },
  async (c, { params: { name }, body }) => {
    const services = c.get('services');
    const org = c.get('principal').org;
    if (isBuiltinRole(name)) throw new ApiError('CONFLICT', `built-in role ${name} cannot be changed`);
    const existing = await services.roles.get(org, name);
    if (!existing) throw new ApiError('NOT_FOUND', `role ${name} not found`);
    const permissions = [...new Set(body.permissions)];
    // Both the old and the new set: taking rights away from a role is also a way to act on its holders.
    checkGrant(c, [...permissions, ...(existing.permissions as Action[])]);
    const doc: RoleDoc = {
      ...existing,
      permissions,
      updatedAt: new Date(services.now()),
      ...(body.description !== undefined ? { description: body.description } : {}),
    };
    await services.roles.replace(doc);
    services.roleResolver.forget(org, name);
    await audit(c, 'role.update', `roles/${name}`, { before: existing.permissions, after: permissions });
    return c.json(roleView({ ...doc, builtin: false }));
  },
);

rolesRoutes.delete(
  '/:name',
  can('roles:manage'),
  { summary: 'Delete a custom role no one holds', tag, params: { name: roleName }, responses: [204, 409] },
  async (c, { params: { name } }) => {
    const services = c.get('services');
    const org = c.get('principal').org;
    if (isBuiltinRole(name)) throw new ApiError('CONFLICT', `built-in role ${name} cannot be deleted`);
    const existing = await services.roles.get(org, name);
    if (!existing) throw new ApiError('NOT_FOUND', `role ${name} not found`);
    checkGrant(c, existing.permissions as Action[]);
    if (await services.roles.inUse(org, name)) {
      throw new ApiError('CONFLICT', `role ${name} is held by users or keys; give them another role first`);
    }
    await services.roles.delete(org, name);
    services.roleResolver.forget(org, name);
    await audit(c, 'role.delete', `roles/${name}`);
    return c.body(null, 204);
  },
);
