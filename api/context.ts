// Typed context variables shared by middleware and routes.
import type { Logger } from 'pino';
import type { Principal } from '../access/principal';
import type { Services } from './services';

export { type Principal, actorOf } from '../access/principal';

export interface AppEnv {
  Variables: {
    requestId: string;
    services: Services;
    logger: Logger;
    principal: Principal;
  };
}
