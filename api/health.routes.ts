// Liveness and readiness probes.
import { Hono } from 'hono';
import type { AppEnv } from './context';

export const healthRoutes = new Hono<AppEnv>();

healthRoutes.get('/healthz', (c) => c.json({ status: 'ok' }));

healthRoutes.get('/readyz', async (c) => {
  const checks = await c.get('services').readiness();
  const ready = Object.values(checks).every((check) => check.ok);
  return c.json({ status: ready ? 'ready' : 'not ready', checks }, ready ? 200 : 503);
});
