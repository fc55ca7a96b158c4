// Stops the servers the global setup started and removes their data.
import { rmSync } from 'node:fs';
import type { ManagedProcess } from '../../worker/local-stack';

export default async function globalTeardown(): Promise<void> {
  const servers = (globalThis as Record<string, unknown>).__twinflowServers as
    { temporal: ManagedProcess; mongo: ManagedProcess; dir: string } | undefined;
  if (!servers) return;
  await Promise.all([servers.temporal.stop(), servers.mongo.stop()]);
  rmSync(servers.dir, { recursive: true, force: true });
}
