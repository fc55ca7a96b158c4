// Liveness and readiness probes.
import { z } from 'zod';
import { PUBLIC, RouteGroup } from './access/route-group';

export const healthRoutes = new RouteGroup('');
const tag = 'Health';

const readinessSchema = z.object({
  status: z.enum(['ready', 'not ready']),
  checks: z.record(z.object({ ok: z.boolean(), error: z.string().optional() })),
});

healthRoutes.get(
  '/healthz',
  PUBLIC,
  { summary: 'Liveness: the process answers', tag, response: z.object({ status: z.literal('ok') }) },
  (c) => c.json({ status: 'ok' }),
);

healthRoutes.get(
  '/metrics',
  PUBLIC,
  { summary: 'Prometheus metrics: ingest, twin signals, MQTT, the process', tag },
  async (c) => {
    const registry = c.get('services').metrics;
    return c.body(await registry.metrics(), 200, { 'Content-Type': registry.contentType });
  },
);

healthRoutes.get(
  '/readyz',
  PUBLIC,
  {
    summary: 'Readiness: MongoDB and Temporal answer',
    tag,
    response: readinessSchema,
    responses: [200, 503],
  },
  async (c) => {
    const checks = await c.get('services').readiness();
    const ready = Object.values(checks).every((check) => check.ok);
    return c.json({ status: ready ? 'ready' : 'not ready', checks }, ready ? 200 : 503);
  },
);
