// Typed context variables shared by middleware and routes.
import type { Logger } from 'pino';
import type { Services } from './services';

export type Principal =
  | { readonly kind: 'admin'; readonly org: string; readonly keyId: string }
  | { readonly kind: 'device'; readonly org: string; readonly keyId: string; readonly deviceId: string };

/** How records name who did something: `admin:tfk_1a2b3c4d`. */
export const actorOf = (principal: Principal): string => `${principal.kind}:${principal.keyId}`;

export interface AppEnv {
  Variables: {
    requestId: string;
    services: Services;
    logger: Logger;
    principal: Principal;
  };
}
