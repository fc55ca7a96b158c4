// Covers the built-in roles and the grant rule that keeps user and key management from raising rights.
import {
  ACTIONS,
  BUILTIN_ROLES,
  assignableRole,
  canGrant,
  isAction,
  isBuiltinRole,
  ROLE_NAME_PATTERN,
  type Action,
} from '../../../access/permissions';

const set = (...a: Action[]) => new Set<Action>(a);

describe('built-in roles', () => {
  it('gives organizations:manage to platform admins alone', () => {
    const holders = Object.values(BUILTIN_ROLES).filter((r) =>
      r.permissions.includes('organizations:manage'),
    );
    expect(holders.map((r) => r.name)).toEqual(['platform-admin']);
  });

  it('gives an org admin every other action', () => {
    expect([...BUILTIN_ROLES['org-admin'].permissions].sort()).toEqual(
      ACTIONS.filter((a) => a !== 'organizations:manage').sort(),
    );
  });

  it('lets a viewer change nothing and an operator not manage people, keys or roles', () => {
    expect(BUILTIN_ROLES.viewer.permissions.every((a) => a.endsWith(':read'))).toBe(true);
    const operator = BUILTIN_ROLES.operator.permissions;
    for (const a of ['users:manage', 'keys:manage', 'roles:manage', 'audit:read'] as const) {
      expect(operator).not.toContain(a);
    }
    expect(operator).toEqual(expect.arrayContaining(['operations:create', 'operations:cancel']));
  });

  it('gives a device no north permission', () => {
    expect(BUILTIN_ROLES.device.permissions).toEqual([]);
  });

  it('knows its own names and actions', () => {
    expect(isBuiltinRole('viewer')).toBe(true);
    expect(isBuiltinRole('auditor')).toBe(false);
    expect(isAction('devices:read')).toBe(true);
    expect(isAction('devices:*')).toBe(false);
    expect(isAction('__proto__')).toBe(false);
  });
});

describe('canGrant', () => {
  it('allows a subset of what one holds', () => {
    expect(canGrant(set('devices:read', 'devices:write'), ['devices:read'])).toBe(true);
    expect(canGrant(set('devices:read'), [])).toBe(true);
  });

  it('refuses anything one does not hold', () => {
    expect(canGrant(set('users:manage', 'users:read'), ['users:manage', 'keys:manage'])).toBe(false);
    expect(canGrant(set(), ['devices:read'])).toBe(false);
  });
});

describe('assignableRole', () => {
  it('never hands out platform-admin or device through the API', () => {
    expect(assignableRole('platform-admin')).toBe(false);
    expect(assignableRole('device')).toBe(false);
    expect(assignableRole('operator')).toBe(true);
  });
});

describe('ROLE_NAME_PATTERN', () => {
  it.each(['field-tech', 'ab', 'a1-b2'])('accepts %s', (name) =>
    expect(ROLE_NAME_PATTERN.test(name)).toBe(true),
  );
  it.each(['A', 'a', '-ab', 'a b', 'a/b', 'a'.repeat(49), '$gt', '__proto__'])('refuses %s', (name) =>
    expect(ROLE_NAME_PATTERN.test(name)).toBe(false),
  );
});
