// Who is asking: the identity every request and message acts as, whatever the transport.
import type { Action } from './permissions';

/**
 * Who is asking. `user`: a person logged in with a JWT; `service`: an API key with a role; `device`: one
 * device's key (south API only). `org` is the organization every query of the request is scoped to.
 */
export interface Principal {
  readonly kind: 'user' | 'service' | 'device';
  readonly org: string;
  /** The user's e-mail address or the key's public id. */
  readonly id: string;
  readonly role: string;
  readonly permissions: ReadonlySet<Action>;
  readonly platformAdmin: boolean;
  readonly deviceId?: string;
}

/** How records name who did something: `user:ana@example.com`, `key:tfk_1a2b3c4d`, `device:tfk_…`. */
export const actorOf = (principal: Principal): string =>
  `${principal.kind === 'service' ? 'key' : principal.kind}:${principal.id}`;
