// Liveness and readiness probes.
import { PUBLIC, RouteGroup } from './access/route-group';

export const healthRoutes = new RouteGroup('');
const tag = 'Health';

healthRoutes.get('/healthz', PUBLIC, { summary: 'Liveness: the process answers', tag }, (c) =>
  c.json({ status: 'ok' }),
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
  { summary: 'Readiness: MongoDB and Temporal answer', tag, responses: [200, 503] },
  async (c) => {
    const checks = await c.get('services').readiness();
    const ready = Object.values(checks).every((check) => check.ok);
    return c.json({ status: ready ? 'ready' : 'not ready', checks }, ready ? 200 : 503);
  },
);
