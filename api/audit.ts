// Writes one audit entry for the request's principal. The action has already happened, so a failed write
// is logged loudly rather than turned into an error the client would retry.
import type { Context } from 'hono';
import { type AppEnv, actorOf } from './context';

export async function audit(
  c: Context<AppEnv>,
  action: string,
  resource: string,
  details?: Record<string, unknown>,
  org?: string,
): Promise<void> {
  const principal = c.get('principal');
  const services = c.get('services');
  try {
    await services.audit.record({
      org: org ?? principal.org,
      actor: actorOf(principal),
      action,
      resource,
      requestId: c.get('requestId'),
      ...(details !== undefined ? { details } : {}),
    });
  } catch (err) {
    c.get('logger').error({ err, action, resource }, 'could not write the audit entry');
  }
}
