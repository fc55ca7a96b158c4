// Reads and validates path parameters, queries and bodies with zod, from each route's declaration (RouteGroup),
// before anything reaches MongoDB or Temporal.
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from '../workflows/ids';
import { ApiError } from './errors';

/** A path parameter: its schema for the OpenAPI document, and how the route reads it (or refuses it). */
export interface PathParam<T = string> {
  readonly schema: z.ZodTypeAny;
  readonly parse: (raw: string | undefined) => T;
}

/** A path parameter checked against a pattern; one that cannot match names nothing, so it is not found. */
export const patternParam = (pattern: RegExp, notFound: (raw: string | undefined) => string): PathParam => ({
  schema: z.string().regex(pattern),
  parse: (raw) => {
    if (raw === undefined || !pattern.test(raw)) throw new ApiError('NOT_FOUND', notFound(raw));
    return raw;
  },
});

/** A device id from the path; one that cannot be a device id is simply not found. */
export const deviceIdParam = (notFound = 'not found'): PathParam =>
  patternParam(DEVICE_ID_PATTERN, (raw) => `device ${raw} ${notFound}`);

const formatIssues = (error: z.ZodError): { path: string; message: string }[] =>
  error.issues.slice(0, 20).map((i) => ({ path: i.path.join('.') || '(root)', message: i.message }));

export function parseWith<S extends z.ZodTypeAny>(schema: S, input: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issues = formatIssues(result.error);
    const first = issues[0];
    throw new ApiError(
      'INVALID_ARGUMENT',
      `invalid ${what}: ${first ? `${first.path}: ${first.message}` : 'bad shape'}`,
      issues,
    );
  }
  return result.data as z.infer<S>;
}

/** Parses a JSON body (size already limited by middleware) and validates it. */
export async function readJson<S extends z.ZodTypeAny>(c: Context, schema: S): Promise<z.infer<S>> {
  const type = c.req.header('content-type') ?? '';
  if (type !== '' && !/^application\/(.+\+)?json\b/i.test(type)) {
    throw new ApiError('UNSUPPORTED_MEDIA_TYPE', 'the body must be JSON (Content-Type: application/json)');
  }
  const text = await bodyText(c);
  if (text.trim() === '')
    throw new ApiError('BAD_REQUEST', 'the request body is empty; a JSON body is required');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ApiError('BAD_REQUEST', `malformed JSON: ${(err as Error).message}`);
  }
  return parseWith(schema, json, 'body');
}

/** Node's request under the app, when it runs on Node's HTTP server (not in `app.request()`). */
export const incomingOf = (c: { readonly env: unknown }): IncomingMessage | undefined =>
  (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;

/**
 * The body as text. A body of declared length nothing has read yet is read straight from Node's request: the Web
 * Request Hono would build to read it costs more than the read (every operation request and HTTP collect reads
 * one). A chunked body went through the body limit's count, which read it into Hono's request.
 */
async function bodyText(c: Context): Promise<string> {
  const incoming = incomingOf(c);
  if (!incoming || incoming.headers['transfer-encoding'] !== undefined || incoming.readableDidRead)
    return c.req.text();
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  // As Hono's text() decodes: UTF-8, a byte-order mark dropped.
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** Validates the query string; unknown parameters (including `x[$ne]` shapes) are rejected. */
export function readQuery<S extends z.ZodTypeAny>(c: Context, schema: S): z.infer<S> {
  const raw = c.req.queries();
  const single: Record<string, string> = {};
  for (const [key, values] of Object.entries(raw)) {
    if (values.length !== 1)
      throw new ApiError('INVALID_ARGUMENT', `query parameter ${key} given more than once`);
    single[key] = values[0]!;
  }
  return parseWith(schema, single, 'query');
}
