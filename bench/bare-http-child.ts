// Starts the bare HTTP server (bare-http.ts) in its own process, as TwinFlow's API runs in its own.
import { fork } from 'node:child_process';
import path from 'node:path';

export interface BareHttp {
  readonly port: number;
  stop(): void;
}

/** Forks bare-http.ts with `env` added (BARE_MONGODB_URI for the GET that reads the store). */
export async function startBareHttp(env: NodeJS.ProcessEnv = {}): Promise<BareHttp> {
  const child = fork(path.join(__dirname, 'bare-http.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`the bare HTTP server exited (${code})`)));
    });
    return { port, stop: () => child.kill() };
  } catch (err) {
    child.kill();
    throw err;
  }
}
