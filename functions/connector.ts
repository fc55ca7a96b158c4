// Connector functions for the ingest paths: finds the function a message matches, runs it, and answers a collect body.
import type { CollectBody } from '../ingest/collect.schema';
import { type Outcome, accepted, refused } from '../twins/outcomes';
import type { FunctionDoc } from '../inventory/documents';
import type { FunctionRepository } from '../inventory/functions.repo';
import { type MessageSource, matchScore } from './criteria';
import type { FunctionEngine, FunctionStats, RunOutcome } from './engine';
import type { OutputDatapoint } from './output';
import { decodePayload } from './payload';

export interface ConnectorOptions {
  /** How long an organization's function list is reused before it is read again (ms). */
  readonly cacheTtlMs: number;
  readonly now: () => number;
}

/** What transform gets as its second argument. */
export interface FunctionContext {
  readonly deviceId: string;
  readonly deviceType: string;
  readonly channel: 'http' | 'mqtt';
  readonly topic?: string;
  readonly path?: string;
  readonly contentType?: string;
  readonly receivedAt: number;
}

export type Translation =
  | { readonly kind: 'none'; readonly tested: number }
  | { readonly kind: 'bad-payload'; readonly error: string }
  | {
      readonly kind: 'ok';
      readonly function: string;
      readonly version: number;
      readonly datapoints: readonly OutputDatapoint[];
      /** null when the function found nothing to store in the message. */
      readonly body: CollectBody | null;
    }
  | { readonly kind: 'failed'; readonly function: string; readonly version: number; readonly error: string };

const keyOf = (doc: Pick<FunctionDoc, 'org' | 'name'>): string => `${doc.org}/${doc.name}`;

export class ConnectorFunctions {
  private readonly cache = new Map<string, { docs: FunctionDoc[]; until: number }>();
  private readonly options: ConnectorOptions;

  constructor(
    readonly repo: FunctionRepository,
    readonly engine: FunctionEngine,
    options: Partial<ConnectorOptions> = {},
  ) {
    this.options = { cacheTtlMs: 5_000, now: Date.now, ...options };
  }

  /** Compiles a source: the error message of a syntax error (or a top level that fails), if any. */
  checkSource(source: string, name: string): { ok: true } | { ok: false; error: string } {
    return this.engine.check(source, name);
  }

  /** Drops an organization's cached list after a change made through this process. */
  changed(org: string, name: string, deleted = false): void {
    this.cache.delete(org);
    if (deleted) this.engine.forget(`${org}/${name}`);
  }

  statsOf(org: string, name: string): FunctionStats {
    return this.engine.statsOf(`${org}/${name}`);
  }

  /** Runs a stored function on a sample; counted nowhere, stored nowhere. */
  test(doc: FunctionDoc, payload: unknown, context: FunctionContext): RunOutcome {
    const key = keyOf(doc);
    const loaded = this.engine.ensure(key, doc.version, doc.source);
    if (!loaded.ok) return { ok: false, kind: 'compile', error: loaded.error, durationMs: 0 };
    return this.engine.run(key, doc.version, payload, context, 'sample');
  }

  /** An HTTP body sent to `collect/{path}`. */
  async translateHttp(
    org: string,
    device: { deviceId: string; deviceType: string },
    path: string,
    bytes: Uint8Array,
    contentType: string | undefined,
  ): Promise<Translation> {
    const decoded = decodePayload(bytes, contentType);
    if (!decoded.ok) return { kind: 'bad-payload', error: decoded.error };
    const receivedAt = this.options.now();
    return this.run(org, { channel: 'http', path, ...device }, decoded.payload, {
      ...device,
      channel: 'http',
      path,
      ...(contentType ? { contentType } : {}),
      receivedAt,
    });
  }

  /**
   * For the MQTT adapter: the collect body a PRODUCTION function makes of a message on `topic`, or undefined
   * when no function matches (or the function found nothing to store). Refused UNPROCESSABLE when the
   * function fails; its failure is counted and kept in the function's last errors.
   */
  async translate(
    org: string,
    message: { deviceId: string; deviceType: string; topic: string },
    payload: Uint8Array,
  ): Promise<Outcome<CollectBody | undefined>> {
    const decoded = decodePayload(payload, undefined);
    if (!decoded.ok) return refused('BAD_REQUEST', decoded.error);
    const result = await this.run(org, { channel: 'mqtt', ...message }, decoded.payload, {
      deviceId: message.deviceId,
      deviceType: message.deviceType,
      channel: 'mqtt',
      topic: message.topic,
      receivedAt: this.options.now(),
    });
    if (result.kind === 'failed') {
      return refused('UNPROCESSABLE', `connector function ${result.function} failed: ${result.error}`);
    }
    return accepted(result.kind === 'ok' ? (result.body ?? undefined) : undefined);
  }

  /** An organization's functions, read at most once per cache period. */
  async functionsOf(org: string): Promise<FunctionDoc[]> {
    const now = this.options.now();
    const hit = this.cache.get(org);
    if (hit && hit.until > now) return hit.docs;
    const docs = await this.repo.listForOrg(org);
    this.cache.set(org, { docs, until: now + this.options.cacheTtlMs });
    // Runtimes of functions deleted or disabled elsewhere are released when their organization is reread.
    const live = new Set(docs.filter((d) => d.mode !== 'DISABLED').map(keyOf));
    for (const key of this.engine.loadedKeys()) {
      if (key.startsWith(`${org}/`) && !live.has(key)) this.engine.unload(key);
    }
    return docs;
  }

  private async run(
    org: string,
    source: MessageSource,
    payload: unknown,
    context: FunctionContext,
  ): Promise<Translation> {
    const docs = await this.functionsOf(org);
    let best: { doc: FunctionDoc; score: number } | undefined;
    let tested = 0;
    for (const doc of docs) {
      if (doc.mode === 'DISABLED') continue;
      const score = matchScore(doc.criteria, source);
      if (score === undefined) continue;
      if (doc.mode === 'TEST') {
        // Runs on live traffic so its would-be output can be read in its stats; nothing of it is stored.
        const key = keyOf(doc);
        if (this.engine.ensure(key, doc.version, doc.source).ok) {
          this.engine.run(key, doc.version, payload, context, 'shadow');
          tested += 1;
        }
        continue;
      }
      if (!best || score > best.score) best = { doc, score };
    }
    if (!best) return { kind: 'none', tested };
    const doc = best.doc;
    const key = keyOf(doc);
    const loaded = this.engine.ensure(key, doc.version, doc.source);
    if (!loaded.ok) return { kind: 'failed', function: doc.name, version: doc.version, error: loaded.error };
    const outcome = this.engine.run(key, doc.version, payload, context, 'production');
    if (!outcome.ok)
      return { kind: 'failed', function: doc.name, version: doc.version, error: outcome.error };
    return {
      kind: 'ok',
      function: doc.name,
      version: doc.version,
      datapoints: outcome.datapoints,
      body: outcome.body,
    };
  }
}
