// The bare broker of the MQTT benchmark, in its own process like TwinFlow's: aedes with no login and no
// storage, and one plain subscriber on odm/iot/+ (QoS 1) counting what it receives. Given a broker URL
// (an external mosquitto), only the subscriber, on that broker. Talks to the benchmark over IPC: sends
// { port } when ready, answers 'count' with { received }, exits on 'stop'.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import mqtt from 'mqtt';

async function embeddedBroker(): Promise<number> {
  const { Aedes } = await import('aedes');
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

async function main(): Promise<void> {
  const external = process.argv[2];
  const port = external ? Number(new URL(external).port) : await embeddedBroker();
  const url = external ?? `mqtt://127.0.0.1:${port}`;
  const subscriber = await mqtt.connectAsync(url, { clientId: 'bench-subscriber' });
  let received = 0;
  subscriber.on('message', () => (received += 1));
  await subscriber.subscribeAsync('odm/iot/+', { qos: 1 });
  process.on('message', (msg) => {
    if (msg === 'count') process.send?.({ received });
    if (msg === 'stop') process.exit(0);
  });
  process.send?.({ port });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
