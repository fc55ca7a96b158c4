// The bare HTTP POST server of the collect benchmark, in its own process like TwinFlow's API: reads the body,
// parses it as JSON and answers 201, nothing else. Sends { port } over IPC when ready.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const server = http.createServer((req, res) => {
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
