// Resolves a role name to its permissions: built-in roles from code, custom roles from MongoDB (cached briefly).
import type { RoleRepository } from '../inventory/identity.repo';
import { type Action, BUILTIN_ROLES, isAction, isBuiltinRole } from './permissions';

const EMPTY: ReadonlySet<Action> = new Set();

export class RoleResolver {
  private readonly builtins = new Map<string, ReadonlySet<Action>>(
    Object.values(BUILTIN_ROLES).map((r) => [r.name, new Set(r.permissions)]),
  );
  private readonly cache = new Map<string, { permissions: ReadonlySet<Action> | undefined; until: number }>();

  constructor(
    private readonly roles: RoleRepository,
    private readonly ttlMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The role's permissions, or undefined when the organization has no such role (it was deleted). */
  async resolve(org: string, name: string): Promise<ReadonlySet<Action> | undefined> {
    if (isBuiltinRole(name)) return this.builtins.get(name) ?? EMPTY;
    const key = `${org}/${name}`;
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return hit.permissions;
    const doc = await this.roles.get(org, name);
    const permissions = doc ? new Set(doc.permissions.filter(isAction)) : undefined;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { permissions, until: this.now() + this.ttlMs });
    return permissions;
  }

  forget(org: string, name: string): void {
    this.cache.delete(`${org}/${name}`);
  }
}
