// The API reference page: Swagger UI from the swagger-ui-dist package, served by the API itself (no CDN, so it
// works offline) and pointed at the OpenAPI document the route table writes.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { PUBLIC, RouteGroup } from './access/route-group';
import { ApiError } from './errors';
import type { PathParam } from './validation';

export const DOCS_PATH = '/north/v1/docs';
export const OPENAPI_PATH = '/north/v1/openapi.json';

export const docsRoutes = new RouteGroup(DOCS_PATH);
const tag = 'Meta';

/** Our own start script: a file rather than an inline script, so a strict Content-Security-Policy allows it. */
const START_SCRIPT = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '${OPENAPI_PATH}',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>TwinFlow API</title>
    <link rel="stylesheet" href="${DOCS_PATH}/swagger-ui.css" />
    <link rel="icon" type="image/png" href="${DOCS_PATH}/favicon-32x32.png" sizes="32x32" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="${DOCS_PATH}/swagger-ui-bundle.js"></script>
    <script src="${DOCS_PATH}/start.js"></script>
  </body>
</html>
`;

/** The files the page loads, and their types; nothing else of the package is served. */
const ASSET_TYPES = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'start.js': 'text/javascript; charset=utf-8',
} as const;
type AssetName = keyof typeof ASSET_TYPES;
const ASSET_NAMES = Object.keys(ASSET_TYPES) as [AssetName, ...AssetName[]];

const assetParam: PathParam<AssetName> = {
  schema: z.enum(ASSET_NAMES),
  parse: (raw) => {
    if (raw === undefined || !(ASSET_NAMES as readonly string[]).includes(raw))
      throw new ApiError('NOT_FOUND', `no documentation file ${raw}`);
    return raw as AssetName;
  },
};

const cache = new Map<AssetName, Uint8Array<ArrayBuffer>>();
/** Read once, on first use: the bundle is about 1.5 MB and most processes never serve it. */
function asset(name: AssetName): Uint8Array<ArrayBuffer> {
  let bytes = cache.get(name);
  if (!bytes) {
    bytes =
      name === 'start.js'
        ? new TextEncoder().encode(START_SCRIPT)
        : new Uint8Array(
            readFileSync(path.join(path.dirname(require.resolve('swagger-ui-dist/package.json')), name)),
          );
    cache.set(name, bytes);
  }
  return bytes;
}

docsRoutes.get('/', PUBLIC, { summary: 'API reference page (Swagger UI)', tag }, (c) => c.html(PAGE));

docsRoutes.get(
  '/:file',
  PUBLIC,
  { summary: 'Files of the API reference page', tag, params: { file: assetParam } },
  (c, { params: { file } }) =>
    c.body(asset(file), 200, {
      'Content-Type': ASSET_TYPES[file],
      'Cache-Control': 'public, max-age=3600',
    }),
);
