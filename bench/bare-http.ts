// The bare HTTP server of the benchmarks, in its own process like TwinFlow's API. A POST (collect): reads the
// body, parses it as JSON and answers 201, nothing else. A GET (the pending-poll references): answers an empty
// list at once, or with `?read=<id>` after one `_id` lookup in BARE_MONGODB_URI's `pending_markers`, the one
// store read an empty poll needs. Sends { port } over IPC when ready.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MongoClient } from 'mongodb';

// The same connection pool as TwinFlow's (inventory/inventory.ts).
const mongo = process.env.BARE_MONGODB_URI
  ? new MongoClient(process.env.BARE_MONGODB_URI, { maxPoolSize: 32 })
  : undefined;
const markers = mongo
  ?.db(process.env.BARE_MONGODB_DB ?? 'twinflow')
  .collection<{ _id: string }>('pending_markers');

function answerGet(url: URL, res: http.ServerResponse): void {
  const id = url.searchParams.get('read');
  const reply = () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('[]');
  };
  if (id === null || !markers) return reply();
  markers.findOne({ _id: id }).then(reply, () => {
    res.writeHead(500);
    res.end();
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET') return answerGet(new URL(req.url ?? '/', 'http://x'), res);
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let ok = true;
    try {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      ok = false;
    }
    res.writeHead(ok ? 201 : 400, { 'content-type': 'application/json' });
    res.end(ok ? '{"stored":3}' : '{"error":"bad json"}');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
process.on('message', (msg) => {
  if (msg === 'stop') process.exit(0);
});
