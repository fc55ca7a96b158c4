// Connector functions: operators upload JavaScript that translates devices' own payloads; create, version, test, export.
import type { Context } from 'hono';
import { z } from 'zod';
import type { FunctionDoc } from '../../inventory/documents';
import { functionDocId } from '../../inventory/functions.repo';
import { criteriaSchema } from '../../functions/criteria';
import type { FunctionContext } from '../../functions/connector';
import { DEFAULT_SANDBOX_LIMITS } from '../../functions/sandbox';
import { DEVICE_ID_PATTERN } from '../../workflows/ids';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { type AppEnv, actorOf } from '../context';
import { ApiError } from '../errors';

export const functionsRoutes = new RouteGroup('/north/v1/functions');
const tag = 'Connector functions';

const FUNCTION_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const EXPORT_KIND = 'twinflow.connector-function';

const nameSchema = z.string().regex(FUNCTION_NAME_PATTERN, 'letters, digits, dash and underscore, up to 64');
const modeSchema = z.enum(['DISABLED', 'TEST', 'PRODUCTION']);
const definition = {
  description: z.string().max(1_000).optional(),
  source: z.string().min(1).max(DEFAULT_SANDBOX_LIMITS.maxSourceChars),
  criteria: criteriaSchema,
};

const createSchema = z.object({ name: nameSchema, ...definition, mode: modeSchema.default('TEST') }).strict();
const updateSchema = z.object({ ...definition, mode: modeSchema }).strict();
const exportSchema = z
  .object({
    kind: z.literal(EXPORT_KIND),
    formatVersion: z.literal(1),
    name: nameSchema,
    ...definition,
    mode: modeSchema,
    exportedAt: z.string().max(64).optional(),
    version: z.number().int().min(1).optional(),
  })
  .strict();
const importQuerySchema = z.object({ replace: z.enum(['true', 'false']).default('false') }).strict();
const testSchema = z
  .object({
    payload: z.unknown().refine((v) => v !== undefined, 'payload is required'),
    contentType: z.string().min(1).max(128).optional(),
    deviceId: z.string().regex(DEVICE_ID_PATTERN, 'not a valid device id').optional(),
  })
  .strict();

const summaryView = (c: Context<AppEnv>, d: FunctionDoc) => ({
  name: d.name,
  ...(d.description !== undefined ? { description: d.description } : {}),
  criteria: d.criteria,
  mode: d.mode,
  version: d.version,
  createdAt: d.createdAt.toISOString(),
  createdBy: d.createdBy,
  updatedAt: d.updatedAt.toISOString(),
  updatedBy: d.updatedBy,
  stats: c.get('services').functions.statsOf(d.org, d.name),
});
const fullView = (c: Context<AppEnv>, d: FunctionDoc) => ({ ...summaryView(c, d), source: d.source });
const exportView = (d: FunctionDoc, now: number) => ({
  kind: EXPORT_KIND,
  formatVersion: 1 as const,
  name: d.name,
  ...(d.description !== undefined ? { description: d.description } : {}),
  source: d.source,
  criteria: d.criteria,
  mode: d.mode,
  version: d.version,
  exportedAt: new Date(now).toISOString(),
});

/** The caller's organization's function named in the path, or 404. */
async function findFunction(c: Context<AppEnv>): Promise<FunctionDoc> {
  const name = c.req.param('functionName') ?? '';
  const doc = FUNCTION_NAME_PATTERN.test(name)
    ? await c.get('services').functions.repo.get(c.get('principal').org, name)
    : null;
  if (!doc) throw new ApiError('NOT_FOUND', `function ${name} not found`);
  return doc;
}

/** Compiles the source: a syntax error (or a failing top level) is the caller's to fix. */
function compileOrRefuse(c: Context<AppEnv>, name: string, source: string): void {
  const checked = c.get('services').functions.checkSource(source, name);
  if (!checked.ok) throw new ApiError('INVALID_ARGUMENT', `the source does not compile: ${checked.error}`);
}

type Definition = z.infer<typeof updateSchema>;

function newDoc(c: Context<AppEnv>, name: string, def: Definition): FunctionDoc {
  const principal = c.get('principal');
  const now = new Date(c.get('services').now());
  const actor = actorOf(principal);
  return {
    _id: functionDocId(principal.org, name),
    org: principal.org,
    name,
    ...(def.description !== undefined ? { description: def.description } : {}),
    source: def.source,
    criteria: def.criteria,
    mode: def.mode,
    version: 1,
    createdAt: now,
    createdBy: actor,
    updatedAt: now,
    updatedBy: actor,
  };
}

function nextVersion(c: Context<AppEnv>, old: FunctionDoc, def: Definition): FunctionDoc {
  const { description: _d, ...rest } = old;
  return {
    ...rest,
    ...(def.description !== undefined ? { description: def.description } : {}),
    source: def.source,
    criteria: def.criteria,
    mode: def.mode,
    version: old.version + 1,
    updatedAt: new Date(c.get('services').now()),
    updatedBy: actorOf(c.get('principal')),
  };
}

functionsRoutes.post(
  '/',
  can('functions:write'),
  {
    summary: 'Create a connector function (the source is compiled first)',
    tag,
    body: createSchema,
    responses: [201],
  },
  async (c, { body }) => {
    compileOrRefuse(c, body.name, body.source);
    const doc = newDoc(c, body.name, body);
    const services = c.get('services');
    if (!(await services.functions.repo.insert(doc))) {
      throw new ApiError('CONFLICT', `function ${body.name} already exists`);
    }
    services.functions.changed(doc.org, doc.name);
    await audit(c, 'function.create', `functions/${doc.name}`, { mode: doc.mode, version: doc.version });
    return c.json(fullView(c, doc), 201);
  },
);

functionsRoutes.get(
  '/',
  can('functions:read'),
  { summary: "List the organization's connector functions with their counters", tag },
  async (c) => {
    const docs = await c.get('services').functions.repo.listForOrg(c.get('principal').org);
    return c.json({ functions: docs.map((d) => summaryView(c, d)) });
  },
);

functionsRoutes.post(
  '/import',
  can('functions:write'),
  {
    summary: 'Import an exported function (?replace=true makes it the next version of an existing one)',
    tag,
    body: exportSchema,
    query: importQuerySchema,
    responses: [201, 200],
  },
  async (c, { query: { replace }, body }) => {
    compileOrRefuse(c, body.name, body.source);
    const services = c.get('services');
    const org = c.get('principal').org;
    const existing = await services.functions.repo.get(org, body.name);
    if (existing && replace !== 'true') {
      throw new ApiError('CONFLICT', `function ${body.name} already exists; import with ?replace=true`);
    }
    let doc: FunctionDoc;
    if (existing) {
      doc = nextVersion(c, existing, body);
      await services.functions.repo.replace(doc);
    } else {
      doc = newDoc(c, body.name, body);
      if (!(await services.functions.repo.insert(doc))) {
        throw new ApiError('CONFLICT', `function ${body.name} already exists; import with ?replace=true`);
      }
    }
    services.functions.changed(org, doc.name);
    await audit(c, 'function.import', `functions/${doc.name}`, { mode: doc.mode, version: doc.version });
    return c.json(fullView(c, doc), existing ? 200 : 201);
  },
);

functionsRoutes.get(
  '/:functionName',
  can('functions:read'),
  { summary: 'A connector function with its source, calls, failures and last errors', tag },
  async (c) => c.json(fullView(c, await findFunction(c))),
);

functionsRoutes.put(
  '/:functionName',
  can('functions:write'),
  { summary: 'Replace a function with a new version (source, criteria, mode)', tag, body: updateSchema },
  async (c, { body }) => {
    const old = await findFunction(c);
    compileOrRefuse(c, old.name, body.source);
    const doc = nextVersion(c, old, body);
    const services = c.get('services');
    await services.functions.repo.replace(doc);
    services.functions.changed(doc.org, doc.name);
    await audit(c, 'function.update', `functions/${doc.name}`, { mode: doc.mode, version: doc.version });
    return c.json(fullView(c, doc));
  },
);

functionsRoutes.delete(
  '/:functionName',
  can('functions:write'),
  { summary: 'Delete a connector function', tag },
  async (c) => {
    const doc = await findFunction(c);
    const services = c.get('services');
    if (!(await services.functions.repo.delete(doc.org, doc.name))) {
      throw new ApiError('NOT_FOUND', `function ${doc.name} not found`);
    }
    services.functions.changed(doc.org, doc.name, true);
    await audit(c, 'function.delete', `functions/${doc.name}`, { version: doc.version });
    return c.json({ name: doc.name, deleted: true });
  },
);

functionsRoutes.get(
  '/:functionName/export',
  can('functions:read'),
  { summary: 'The function as a JSON document to import elsewhere', tag },
  async (c) => {
    const doc = await findFunction(c);
    c.header('Content-Disposition', `attachment; filename="${doc.name}.function.json"`);
    return c.json(exportView(doc, c.get('services').now()));
  },
);

functionsRoutes.post(
  '/:functionName/test',
  can('functions:write'),
  {
    summary: 'Run the function on a sample payload and show what it would produce (nothing is stored)',
    tag,
    body: testSchema,
  },
  async (c, { body }) => {
    const doc = await findFunction(c);
    const services = c.get('services');
    const org = c.get('principal').org;
    let deviceType = body.deviceId === undefined ? 'default' : undefined;
    if (body.deviceId !== undefined) {
      const device = await services.directory.get(org, body.deviceId);
      if (!device) throw new ApiError('NOT_FOUND', `device ${body.deviceId} is not provisioned`);
      deviceType = device.twinType;
    }
    let payload: unknown = body.payload;
    if (
      typeof payload === 'string' &&
      body.contentType &&
      /^application\/(.+\+)?json\b/i.test(body.contentType)
    ) {
      try {
        payload = JSON.parse(payload) as unknown;
      } catch (err) {
        throw new ApiError('INVALID_ARGUMENT', `payload is not JSON: ${(err as Error).message}`);
      }
    }
    const context: FunctionContext = {
      deviceId: body.deviceId ?? 'test-device',
      deviceType: deviceType ?? 'default',
      channel: doc.criteria.httpPath !== undefined ? 'http' : 'mqtt',
      ...(doc.criteria.httpPath !== undefined ? { path: doc.criteria.httpPath } : {}),
      ...(doc.criteria.httpPath === undefined && doc.criteria.mqttTopic !== undefined
        ? { topic: doc.criteria.mqttTopic }
        : {}),
      ...(body.contentType !== undefined ? { contentType: body.contentType } : {}),
      receivedAt: services.now(),
    };
    const outcome = services.functions.test(doc, payload, context);
    const common = {
      function: doc.name,
      version: doc.version,
      durationMs: Math.round(outcome.durationMs * 1000) / 1000,
    };
    return outcome.ok
      ? c.json({ ...common, ok: true, datapoints: outcome.datapoints, collect: outcome.body, stored: 0 })
      : c.json({ ...common, ok: false, kind: outcome.kind, error: outcome.error, stored: 0 });
  },
);
