// Typed context variables shared by middleware and routes.
import type { Logger } from 'pino';
import type { Services } from './services';

export type Principal =
  | { readonly kind: 'admin'; readonly org: string; readonly keyId: string }
  | { readonly kind: 'device'; readonly org: string; readonly keyId: string; readonly deviceId: string };

export interface AppEnv {
  Variables: {
    requestId: string;
    services: Services;
    logger: Logger;
    principal: Principal;
  };
}
