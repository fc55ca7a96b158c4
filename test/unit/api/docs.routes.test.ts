// Covers the public documentation routes through the whole app: the OpenAPI document and the offline reference page.
import pino from 'pino';
import { createApp } from '../../../api/app';
import type { Services } from '../../../api/services';

describe('the documentation routes', () => {
  // Only public routes that touch no service are called, so only the logger is real.
  const app = createApp({ logger: pino({ level: 'silent' }) } as unknown as Services);

  it('serves the OpenAPI document', async () => {
    const res = await app.request('/north/v1/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/north/v1/docs', '/healthz']));
  });

  it('serves a reference page that loads its scripts from the API itself, pointed at the document', async () => {
    const res = await app.request('/north/v1/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
    expect(sources.length).toBeGreaterThanOrEqual(3);
    for (const src of sources) {
      expect(src).toMatch(/^\/north\/v1\/docs\//);
      const asset = await app.request(src);
      expect({ src, status: asset.status }).toEqual({ src, status: 200 });
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }
    const start = await (await app.request('/north/v1/docs/start.js')).text();
    expect(start).toContain("url: '/north/v1/openapi.json'");
    const bundle = await app.request('/north/v1/docs/swagger-ui-bundle.js');
    expect(bundle.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await bundle.text()).toContain('SwaggerUIBundle');
  });

  it('serves no other file of the package', async () => {
    for (const name of ['index.html', 'package.json', '..%2F..%2Fpackage.json', 'swagger-ui.js.map']) {
      const res = await app.request(`/north/v1/docs/${name}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    }
  });
});
