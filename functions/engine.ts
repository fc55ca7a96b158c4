// Connector functions compiled once and called many times, with their output checked and their calls and failures counted.
import { type FailureKind, FunctionSandbox, type SandboxLimits } from './sandbox';
import { type OutputDatapoint, toCollectBody } from './output';
import type { CollectBody } from '../ingest/collect.schema';

export interface FunctionError {
  readonly at: number;
  readonly version: number;
  readonly kind: FailureKind;
  readonly message: string;
}

/** What a TEST-mode function would have produced from live traffic (nothing of it is stored). */
export interface ShadowResult {
  readonly at: number;
  readonly version: number;
  readonly deviceId: string;
  readonly ok: boolean;
  readonly datapoints?: readonly OutputDatapoint[];
  readonly error?: string;
}

export interface FunctionStats {
  readonly calls: number;
  readonly failures: number;
  readonly lastCallAt?: number;
  readonly lastErrors: readonly FunctionError[];
  readonly testResults: readonly ShadowResult[];
}

export type RunOutcome =
  | {
      readonly ok: true;
      readonly datapoints: OutputDatapoint[];
      readonly body: CollectBody | null;
      readonly durationMs: number;
    }
  | { readonly ok: false; readonly kind: FailureKind; readonly error: string; readonly durationMs: number };

/** How a call is recorded: live traffic (counted), live traffic of a TEST function (counted and kept), a sample (not counted). */
export type CallKind = 'production' | 'shadow' | 'sample';

export interface EngineOptions {
  readonly maxErrors: number;
  readonly maxShadowResults: number;
  readonly now: () => number;
}

interface MutableStats {
  calls: number;
  failures: number;
  lastCallAt?: number;
  lastErrors: FunctionError[];
  testResults: ShadowResult[];
}

/** A sandbox call's result, its output checked and grouped into a collect body. */
function toOutcome(raw: ReturnType<FunctionSandbox['runOnce']>, started: number): RunOutcome {
  const durationMs = () => performance.now() - started;
  if (!raw.ok) return { ok: false, kind: raw.kind, error: raw.error, durationMs: durationMs() };
  const converted = toCollectBody(raw.output);
  return converted.ok
    ? { ok: true, datapoints: converted.datapoints, body: converted.body, durationMs: durationMs() }
    : { ok: false, kind: 'output', error: converted.error, durationMs: durationMs() };
}

export class FunctionEngine {
  private readonly versions = new Map<string, { version: number; source: string }>();
  private readonly stats = new Map<string, MutableStats>();
  private readonly options: EngineOptions;

  constructor(
    readonly sandbox: FunctionSandbox,
    options: Partial<EngineOptions> = {},
  ) {
    this.options = { maxErrors: 10, maxShadowResults: 20, now: Date.now, ...options };
  }

  static async create(
    limits: Partial<SandboxLimits> = {},
    options: Partial<EngineOptions> = {},
  ): Promise<FunctionEngine> {
    return new FunctionEngine(await FunctionSandbox.create(limits), options);
  }

  /** Compiles a source without keeping it: the syntax (or top-level) error, if any. */
  check(source: string, name?: string): { ok: true } | { ok: false; error: string } {
    return this.sandbox.check(source, name);
  }

  /** Makes sure `key` runs this version of its source, compiling only when the version changed. */
  ensure(key: string, version: number, source: string): { ok: true } | { ok: false; error: string } {
    const loaded = this.versions.get(key);
    if (loaded && loaded.version === version && loaded.source === source && this.sandbox.has(key)) {
      return { ok: true };
    }
    const result = this.sandbox.load(key, source);
    if (result.ok) this.versions.set(key, { version, source });
    return result;
  }

  run(key: string, version: number, payload: unknown, context: unknown, kind: CallKind): RunOutcome {
    const started = performance.now();
    const raw = this.sandbox.run(key, payload, context);
    const outcome = toOutcome(raw, started);
    if (kind !== 'sample') this.record(key, version, kind, outcome, context);
    return outcome;
  }

  /** Runs a source once in a fresh runtime (the cold path; also used to try unsaved sources). */
  runOnce(source: string, payload: unknown, context: unknown): RunOutcome {
    const started = performance.now();
    return toOutcome(this.sandbox.runOnce(source, payload, context), started);
  }

  statsOf(key: string): FunctionStats {
    const s = this.stats.get(key);
    if (!s) return { calls: 0, failures: 0, lastErrors: [], testResults: [] };
    return {
      calls: s.calls,
      failures: s.failures,
      ...(s.lastCallAt !== undefined ? { lastCallAt: s.lastCallAt } : {}),
      lastErrors: [...s.lastErrors],
      testResults: [...s.testResults],
    };
  }

  /** Drops a function's runtime and its counters (deleted functions). */
  forget(key: string): void {
    this.sandbox.unload(key);
    this.versions.delete(key);
    this.stats.delete(key);
  }

  /** Drops the runtime only (a function no longer in use here); counters stay. */
  unload(key: string): void {
    this.sandbox.unload(key);
    this.versions.delete(key);
  }

  loadedKeys(): string[] {
    return [...this.versions.keys()];
  }

  dispose(): void {
    this.sandbox.dispose();
    this.versions.clear();
  }

  private record(key: string, version: number, kind: CallKind, outcome: RunOutcome, context: unknown): void {
    let s = this.stats.get(key);
    if (!s) {
      s = { calls: 0, failures: 0, lastErrors: [], testResults: [] };
      this.stats.set(key, s);
    }
    const at = this.options.now();
    s.calls += 1;
    s.lastCallAt = at;
    if (!outcome.ok) {
      s.failures += 1;
      s.lastErrors.push({ at, version, kind: outcome.kind, message: outcome.error });
      if (s.lastErrors.length > this.options.maxErrors) s.lastErrors.shift();
    }
    if (kind === 'shadow') {
      const deviceId =
        typeof context === 'object' && context !== null && 'deviceId' in context
          ? String(context.deviceId)
          : '';
      s.testResults.push(
        outcome.ok
          ? { at, version, deviceId, ok: true, datapoints: outcome.datapoints }
          : { at, version, deviceId, ok: false, error: outcome.error },
      );
      if (s.testResults.length > this.options.maxShadowResults) s.testResults.shift();
    }
  }
}
