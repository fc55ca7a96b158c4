// A plain MQTT broker (aedes, no login) standing in for an external broker in tests: `node --import tsx
// bare-broker.ts <port>` prints "listening <port>" once ready.
import net from 'node:net';

async function main(): Promise<void> {
  const port = Number(process.argv[2] ?? 0);
  const { Aedes } = await import('aedes');
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : port}\n`);
  });
  const stop = () => aedes.close(() => server.close(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
