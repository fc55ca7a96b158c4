// Writes audit entries. The action has already happened, so a failed write is logged loudly rather than
// turned into an error the client would retry.
import type { Context } from 'hono';
import type { AuditEntry } from '../inventory/identity.repo';
import { type AppEnv, actorOf } from './context';

/** Records an entry with the request's id; for requests without a principal yet (logins). */
export async function recordAudit(c: Context<AppEnv>, entry: Omit<AuditEntry, 'requestId'>): Promise<void> {
  try {
    await c.get('services').audit.record({ ...entry, requestId: c.get('requestId') });
  } catch (err) {
    c.get('logger').error(
      { err, action: entry.action, resource: entry.resource },
      'could not write the audit entry',
    );
  }
}

/** Records what the request's principal did, in its organization unless `org` says otherwise. */
export function audit(
  c: Context<AppEnv>,
  action: string,
  resource: string,
  details?: Record<string, unknown>,
  org?: string,
): Promise<void> {
  const principal = c.get('principal');
  return recordAudit(c, {
    org: org ?? principal.org,
    actor: actorOf(principal),
    action,
    resource,
    ...(details !== undefined ? { details } : {}),
  });
}
