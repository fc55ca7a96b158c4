// Actions, built-in roles and the checks on them. Pure: no I/O, so the rules are unit-tested on their own.

/** Every action a north route can require. A custom role is a set of these. */
export const ACTIONS = [
  'organizations:read',
  'organizations:manage',
  'devices:read',
  'devices:write',
  'operations:read',
  'operations:create',
  'operations:cancel',
  'jobs:read',
  'jobs:manage',
  'alarms:read',
  'alarms:manage',
  'events:read',
  'forwarders:read',
  'forwarders:manage',
  'keys:read',
  'keys:manage',
  'users:read',
  'users:manage',
  'roles:read',
  'roles:manage',
  'audit:read',
  'functions:read',
  'functions:write',
  'certificates:read',
  'certificates:manage',
  'authorities:manage',
] as const;

export type Action = (typeof ACTIONS)[number];

const ACTION_SET: ReadonlySet<string> = new Set(ACTIONS);
export const isAction = (value: string): value is Action => ACTION_SET.has(value);

const BUILTIN_ROLE_NAMES = ['platform-admin', 'org-admin', 'operator', 'viewer', 'device'] as const;
export type BuiltinRoleName = (typeof BUILTIN_ROLE_NAMES)[number];

export interface RoleDefinition {
  readonly name: string;
  readonly description: string;
  readonly permissions: readonly Action[];
  readonly builtin: boolean;
}

const ORG_ADMIN_ACTIONS = ACTIONS.filter((a) => a !== 'organizations:manage');

export const BUILTIN_ROLES: Readonly<Record<BuiltinRoleName, RoleDefinition>> = {
  'platform-admin': {
    name: 'platform-admin',
    description: 'Runs the deployment: creates organizations and holds every right in its own.',
    permissions: [...ACTIONS],
    builtin: true,
  },
  'org-admin': {
    name: 'org-admin',
    description:
      'Every right inside one organization: devices, operations, users, roles, keys, the audit log.',
    permissions: ORG_ADMIN_ACTIONS,
    builtin: true,
  },
  operator: {
    name: 'operator',
    description:
      'Runs the fleet: provisions and changes devices and their certificates, requests and cancels operations, runs and controls jobs, acknowledges and clears alarms, reads the event log, forwarders and connector functions.',
    permissions: [
      'devices:read',
      'devices:write',
      'operations:read',
      'operations:create',
      'operations:cancel',
      'jobs:read',
      'jobs:manage',
      'alarms:read',
      'alarms:manage',
      'events:read',
      'forwarders:read',
      'functions:read',
      'certificates:read',
      'certificates:manage',
    ],
    builtin: true,
  },
  viewer: {
    name: 'viewer',
    description:
      'Reads devices, their history, their operations, jobs, alarms, events, forwarders and certificates; changes nothing.',
    permissions: [
      'devices:read',
      'operations:read',
      'jobs:read',
      'alarms:read',
      'events:read',
      'forwarders:read',
      'certificates:read',
    ],
    builtin: true,
  },
  device: {
    name: 'device',
    description: 'One device on the south API: sends its own data and answers its own operations.',
    permissions: [],
    builtin: true,
  },
};

export const isBuiltinRole = (name: string): name is BuiltinRoleName =>
  (BUILTIN_ROLE_NAMES as readonly string[]).includes(name);

/** Lower-case words joined by dashes, 2 to 48 characters. */
export const ROLE_NAME_PATTERN = /^[a-z][a-z0-9-]{1,47}$/;

/**
 * Whether a principal holding `held` may give someone `granted`: only rights it has itself, so that
 * managing users or keys never becomes a way to gain more.
 */
export function canGrant(held: ReadonlySet<Action>, granted: readonly Action[]): boolean {
  return granted.every((a) => held.has(a));
}

/** The roles a user or service key may hold (device keys get `device`, platform admins are made at start). */
export const assignableRole = (name: string): boolean => name !== 'platform-admin' && name !== 'device';
