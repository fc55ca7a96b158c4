// For an external MQTT broker: HTTP hooks it can call to check a device's login and topic rights against
// TwinFlow (the request and answer shapes of common brokers' HTTP auth plugins: `{"result":"allow"}`).
import { z } from 'zod';
import { devicePublishAllowed, deviceSubscribeAllowed } from '../../mqtt/topics';
import { PUBLIC, RouteGroup } from '../access/route-group';

export const mqttHookRoutes = new RouteGroup('/south/v80/mqtt');
const tag = 'MQTT broker hooks';

const authSchema = z
  .object({
    username: z.string().min(1).max(128),
    password: z.string().min(1).max(256),
    clientid: z.string().max(256).optional(),
  })
  .strict();
const aclSchema = z
  .object({
    username: z.string().min(1).max(128),
    topic: z.string().min(1).max(512),
    action: z.enum(['publish', 'subscribe']),
    clientid: z.string().max(256).optional(),
  })
  .strict();

const hookAnswerSchema = z.object({
  result: z.enum(['allow', 'deny']),
  is_superuser: z.boolean().optional(),
});

const allow = { result: 'allow', is_superuser: false } as const;
const deny = { result: 'deny' } as const;

mqttHookRoutes.post(
  '/auth',
  PUBLIC,
  {
    summary: 'Broker hook: may this device log in? (username = device id, password = device key)',
    tag,
    body: authSchema,
    response: hookAnswerSchema,
  },
  async (c, { body: { username, password } }) => {
    const services = c.get('services');
    const result = await services.auth.authenticateKey(password);
    const p = result.ok ? result.principal : undefined;
    if (!p || p.kind !== 'device' || p.deviceId !== username) return c.json(deny);
    const device = await services.directory.get(p.org, username);
    return c.json(device?.active ? allow : deny);
  },
);

mqttHookRoutes.post(
  '/acl',
  PUBLIC,
  {
    summary: 'Broker hook: may this device publish or subscribe on this topic?',
    tag,
    body: aclSchema,
    response: hookAnswerSchema,
  },
  async (c, { body: { username, topic, action } }) => {
    const allowed =
      action === 'publish' ? devicePublishAllowed(username, topic) : deviceSubscribeAllowed(username, topic);
    return c.json(allowed ? allow : deny);
  },
);
