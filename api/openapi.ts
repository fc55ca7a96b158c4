// The OpenAPI 3.1 description, built from the route table: every route's path, access rule and schemas.
import { zodToJsonSchema } from 'zod-to-json-schema';
import type { RouteEntry } from './access/route-group';
import { ERROR_STATUS } from './errors';

const toOpenApiPath = (path: string): string => path.replace(/:(\w+)/g, '{$1}');

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'requestId'],
      properties: {
        code: { type: 'string', enum: Object.keys(ERROR_STATUS) },
        message: { type: 'string' },
        requestId: { type: 'string' },
        details: {},
      },
    },
  },
};

type ToJsonSchema = (
  schema: unknown,
  options: { target: 'jsonSchema2019-09'; $refStrategy: 'none' },
) => Record<string, unknown>;
/** Typed loosely: the library's own signature is too deep for the compiler on our larger schemas. */
const toJsonSchema = zodToJsonSchema as unknown as ToJsonSchema;

/** OpenAPI 3.1 schemas are JSON Schema 2020-12; 2019-09 output is the nearest the converter writes. */
const jsonSchema = (schema: unknown): Record<string, unknown> => {
  const { $schema: _ignored, ...rest } = toJsonSchema(schema, {
    target: 'jsonSchema2019-09',
    $refStrategy: 'none',
  });
  return rest;
};

const errorContent = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };

function queryParameters(entry: RouteEntry) {
  if (!entry.doc.query) return [];
  const schema = jsonSchema(entry.doc.query) as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(schema.properties ?? {}).map(([name, s]) => ({
    name,
    in: 'query',
    required: schema.required?.includes(name) ?? false,
    schema: s,
  }));
}

function describe(entry: RouteEntry) {
  const access = entry.access;
  const pathParams = [...entry.path.matchAll(/:(\w+)/g)].map(([, name = '']) => {
    const declared = entry.doc.params?.[name];
    return {
      name,
      in: 'path',
      required: true,
      schema: declared ? jsonSchema(declared.schema) : { type: 'string' },
    };
  });
  const security =
    access.kind === 'public'
      ? []
      : access.kind === 'device'
        ? [{ apiKey: [] }, { apiKeyQuery: [] }, { bearer: [] }]
        : [{ apiKey: [] }, { bearer: [] }];
  const [success = 200, ...others] = entry.doc.responses ?? [200];
  const responses: Record<string, unknown> = {
    [success]: {
      description: 'Success',
      ...(entry.doc.rawResponse
        ? { content: { [entry.doc.rawResponse]: { schema: { type: 'string' } } } }
        : entry.doc.response
          ? { content: { 'application/json': { schema: jsonSchema(entry.doc.response) } } }
          : {}),
    },
  };
  for (const s of others)
    responses[s] =
      s >= 400 ? { description: 'Refused', content: errorContent } : { description: 'Also a success' };
  const errors = [400, ...(access.kind === 'public' ? [] : [401, 403]), 404, 503];
  for (const s of errors) responses[s] ??= { description: 'Error', content: errorContent };
  return {
    summary: entry.doc.summary,
    tags: [entry.doc.tag],
    'x-twinflow-access': access.kind === 'action' ? access.action : access.kind,
    ...(access.kind === 'action' ? { description: `Requires the permission \`${access.action}\`.` } : {}),
    security,
    parameters: [...pathParams, ...queryParameters(entry)],
    ...(entry.doc.body
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: jsonSchema(entry.doc.body) } },
          },
        }
      : entry.doc.rawBody
        ? { requestBody: { required: true, content: { [entry.doc.rawBody]: { schema: {} } } } }
        : {}),
    responses,
  };
}

export function buildOpenApi(entries: readonly RouteEntry[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const entry of entries) {
    const path = toOpenApiPath(entry.path);
    paths[path] ??= {};
    paths[path][entry.method.toLowerCase()] = describe(entry);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'TwinFlow API',
      version,
      description:
        'North API for operators and services (X-ApiKey or a Bearer access token from /north/v1/auth/login), and the OpenGate v80 south API for devices.',
    },
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-ApiKey' },
        apiKeyQuery: { type: 'apiKey', in: 'query', name: 'X-ApiKey' },
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      },
      schemas: { Error: errorSchema },
    },
  };
}
