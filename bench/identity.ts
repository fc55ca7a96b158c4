// Identity figures: login latency (Argon2id dominates it, measured alone beside), and what authentication
// adds to a request: an API-key request and a Bearer-token request beside an unauthenticated route.
import { hash, verify } from '@node-rs/argon2';

export interface IdentityBenchOptions {
  readonly base: string;
  readonly adminKey: string;
  readonly say: (line: string) => void;
  readonly logins: number;
  readonly requests: number;
}

export interface IdentityBenchResult {
  readonly loginP50Ms: number;
  readonly argon2P50Ms: number;
  readonly openP50Ms: number;
  readonly keyP50Ms: number;
  readonly bearerP50Ms: number;
}

const p = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const ms = (n: number) => `${n.toFixed(2)} ms`;

async function timed(count: number, fn: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  if (res.status !== status) throw new Error(`${what} answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

export async function runIdentityBench(o: IdentityBenchOptions): Promise<IdentityBenchResult> {
  const email = `bench-${Date.now()}@bench.example`;
  const password = 'a long benchmark passphrase';
  const json = { 'content-type': 'application/json' };
  await expectStatus(
    await fetch(`${o.base}/north/v1/users`, {
      method: 'POST',
      headers: { ...json, 'X-ApiKey': o.adminKey },
      body: JSON.stringify({ email, password, role: 'viewer' }),
    }),
    201,
    'creating the bench user',
  );

  // Logins one after another (the per-address limit is 60 a minute, so at most 50 here).
  let token = '';
  const logins = await timed(Math.min(o.logins, 50), async () => {
    const res = await fetch(`${o.base}/north/v1/auth/login`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email, password }),
    });
    if (res.status !== 200) throw new Error(`login answered ${res.status}: ${await res.text()}`);
    token = ((await res.json()) as { accessToken: string }).accessToken;
  });
  // The same Argon2id parameters in this process, alone.
  const phc = await hash(password, { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 });
  const argon = await timed(Math.min(o.logins, 50), async () => {
    await verify(phc, password);
  });
  o.say(
    `  login (POST /north/v1/auth/login, ${logins.length} in a row): p50 ${ms(p(logins, 0.5))}, p99 ${ms(p(logins, 0.99))}; Argon2id verify alone: p50 ${ms(p(argon, 0.5))}`,
  );

  // Authentication overhead: the same tiny answer with no credential, an API key, a bearer token.
  const get = (path: string, headers: Record<string, string>, status: number) => async () =>
    expectStatus(await fetch(`${o.base}${path}`, { headers }), status, path);
  const open = get('/healthz', {}, 200);
  const withKey = get('/north/v1/me', { 'X-ApiKey': o.adminKey }, 200);
  const withBearer = get('/north/v1/me', { authorization: `Bearer ${token}` }, 200);
  for (const warm of [open, withKey, withBearer]) await timed(200, warm);
  // Interleaved rounds, so that drift in the machine's load affects the three alike.
  const rounds = 5;
  const all = { open: [] as number[], key: [] as number[], bearer: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    all.open.push(...(await timed(o.requests / rounds, open)));
    all.key.push(...(await timed(o.requests / rounds, withKey)));
    all.bearer.push(...(await timed(o.requests / rounds, withBearer)));
  }
  for (const list of Object.values(all)) list.sort((a, b) => a - b);
  const result: IdentityBenchResult = {
    loginP50Ms: p(logins, 0.5),
    argon2P50Ms: p(argon, 0.5),
    openP50Ms: p(all.open, 0.5),
    keyP50Ms: p(all.key, 0.5),
    bearerP50Ms: p(all.bearer, 0.5),
  };
  o.say(`  ${o.requests} requests each, one at a time (p50 / p99):`);
  o.say(`    GET /healthz, no credential:     ${ms(result.openP50Ms)} / ${ms(p(all.open, 0.99))}`);
  o.say(
    `    GET /north/v1/me, X-ApiKey:      ${ms(result.keyP50Ms)} / ${ms(p(all.key, 0.99))}  (+${ms(result.keyP50Ms - result.openP50Ms)} p50)`,
  );
  o.say(
    `    GET /north/v1/me, Bearer JWT:    ${ms(result.bearerP50Ms)} / ${ms(p(all.bearer, 0.99))}  (+${ms(result.bearerP50Ms - result.openP50Ms)} p50)`,
  );
  return result;
}
