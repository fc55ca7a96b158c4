// Covers the OpenAPI document written from the route table: valid OpenAPI 3.1, every parameter and schema declared.
import { execFileSync } from 'node:child_process';
import { ROUTE_TABLE } from '../../../api/app';
import { buildOpenApi } from '../../../api/openapi';

interface Operation {
  parameters: { name: string; in: string; required?: boolean; schema?: unknown }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { description?: string; content?: unknown }>;
}
type Paths = Record<string, Record<string, Operation>>;

/** The validator is an ES module with files read beside itself, so it runs in a child Node process. */
function validate(document: unknown): { valid: boolean; errors?: unknown } {
  const script = `
    import { Validator } from '@seriousme/openapi-schema-validator';
    let text = '';
    for await (const chunk of process.stdin) text += chunk;
    const result = await new Validator().validate(JSON.parse(text));
    process.stdout.write(JSON.stringify(result));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    input: JSON.stringify(document),
    cwd: `${__dirname}/../../..`,
    encoding: 'utf8',
  });
  return JSON.parse(out) as { valid: boolean; errors?: unknown };
}

describe('the OpenAPI document', () => {
  const document = buildOpenApi(ROUTE_TABLE, '0.1.0');
  const paths = document.paths as Paths;
  const operations = Object.entries(paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ path, method, op })),
  );

  it('passes an OpenAPI 3.1 schema validator', () => {
    expect(document.openapi).toBe('3.1.0');
    expect(validate(document)).toEqual({ valid: true });
  });

  it('describes every route of the table, once', () => {
    expect(operations).toHaveLength(ROUTE_TABLE.length);
  });

  it('declares every path parameter of every route, as required', () => {
    for (const { path, op } of operations) {
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      const declared = op.parameters.filter((p) => p.in === 'path');
      expect({ path, params: declared.map((p) => p.name) }).toEqual({ path, params: inPath });
      expect(declared.every((p) => p.required === true && p.schema !== undefined)).toBe(true);
    }
  });

  it('gives every response a description', () => {
    for (const { op } of operations)
      for (const response of Object.values(op.responses))
        expect(response.description).toEqual(expect.any(String));
  });

  it("carries each route's declared body and query schemas", () => {
    for (const route of ROUTE_TABLE) {
      const path = route.path.replace(/:(\w+)/g, '{$1}');
      const op = paths[path]?.[route.method.toLowerCase()];
      expect(op).toBeDefined();
      if (route.doc.body) expect(op?.requestBody?.content['application/json']?.schema).toBeDefined();
      if (route.doc.query) expect(op?.parameters.some((p) => p.in === 'query')).toBe(true);
    }
    const collect = paths['/south/v80/devices/{deviceId}/collect/iot']?.post;
    expect(collect?.requestBody?.content['application/json']?.schema).toMatchObject({
      type: 'object',
      required: expect.arrayContaining(['datastreams']),
    });
    const history = paths['/north/v1/devices/{deviceId}/datastreams/{datastreamId}/datapoints']?.get;
    expect(history?.parameters.map((p) => `${p.in} ${p.name}`)).toEqual([
      'path deviceId',
      'path datastreamId',
      'query from',
      'query to',
      'query limit',
      'query bucket',
      'query agg',
    ]);
  });

  it('describes declared success responses', () => {
    expect(paths['/healthz']?.get?.responses['200']?.content).toEqual({
      'application/json': { schema: expect.objectContaining({ type: 'object' }) },
    });
  });

  it('writes no OpenAPI 3.0 keywords that 3.1 dropped', () => {
    const text = JSON.stringify(document);
    expect(text).not.toContain('"nullable"');
    expect(text).not.toMatch(/"exclusive(Minimum|Maximum)":(true|false)/);
  });
});
