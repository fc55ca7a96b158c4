// Logs what an API request did to the fleet event log, for the principal's organization.
import type { Context } from 'hono';
import type { NewEvent } from '../events/event-types';
import type { AppEnv } from './context';

/**
 * Appends after the change is stored, through the process's writer: concurrent requests of one organization
 * share a batch instead of racing for its number. The change stands if the log cannot be written (the request is not
 * failed after the fact, which would invite a repeat); the miss is logged.
 */
export async function logEvents(
  c: Context<AppEnv>,
  events: readonly NewEvent[],
  org?: string,
): Promise<void> {
  if (events.length === 0) return;
  const services = c.get('services');
  const target = org ?? c.get('principal').org;
  try {
    await services.eventWriter.append(target, events);
  } catch (err) {
    services.logger.warn({ err, org: target, types: events.map((e) => e.type) }, 'could not log events');
  }
}
