// Runs connector function source in QuickJS (WebAssembly) with no host access, a memory cap, a stack cap and a CPU deadline.
import { createRequire } from 'node:module';
import {
  type EmscriptenModuleLoader,
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type QuickJSContext,
  type QuickJSEmscriptenModule,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
  RELEASE_SYNC,
} from 'quickjs-emscripten';

export interface SandboxLimits {
  /** Heap of one function's runtime (bytes). */
  readonly memoryBytes: number;
  /** Interpreter stack of one runtime (bytes): deep recursion fails instead of crashing the host. */
  readonly stackBytes: number;
  /** CPU time one call may take (ms). */
  readonly timeoutMs: number;
  /** CPU time compiling a source (and running its top level) may take (ms). */
  readonly compileTimeoutMs: number;
  /**
   * Ceiling of the WebAssembly heap all functions of the process share (bytes). QuickJS's per-runtime limit
   * in this WebAssembly build refuses any single allocation above `memoryBytes` but cannot add up blocks (the
   * allocator does not report their sizes), so many small allocations are bounded by this hard ceiling instead:
   * the heap cannot grow past it and the call that tries fails as out of memory. Fixed by the first sandbox
   * of the process.
   */
  readonly heapCeilingBytes: number;
  /** Largest output a call may return, as JSON text (characters). */
  readonly maxOutputChars: number;
  /** Largest source accepted (characters). */
  readonly maxSourceChars: number;
}

export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = {
  memoryBytes: 8 * 1024 * 1024,
  stackBytes: 256 * 1024,
  timeoutMs: 50,
  compileTimeoutMs: 1_000,
  heapCeilingBytes: 256 * 1024 * 1024,
  maxOutputChars: 512 * 1024,
  maxSourceChars: 100_000,
};

/** Why a call failed: the caller rebuilds the runtime after a limit was hit, since its state may be broken. */
export type FailureKind = 'compile' | 'timeout' | 'memory' | 'stack' | 'thrown' | 'output';

export type SandboxResult =
  | { readonly ok: true; readonly output: unknown }
  | { readonly ok: false; readonly kind: FailureKind; readonly error: string };

const ENTRY = '__twinflowEntry';

/**
 * The source runs inside a function scope, so `function transform`, `const transform = ...` and friends all
 * work and nothing leaks to the global scope. The entry parses its inputs and serialises its answer inside the
 * sandbox, so only two strings cross the boundary per call. JSON.parse/stringify are captured before the
 * user's code runs, so replacing them later changes nothing for the entry.
 */
const wrapSource = (source: string): string =>
  `(function (__parse, __stringify) {${source}\n;` +
  `if (typeof transform !== 'function') throw new TypeError('the source must define function transform(payload, context)');` +
  `const __transform = transform;` +
  `return function ${ENTRY}(p, c) { const r = __transform(__parse(p), __parse(c)); return __stringify(r === undefined ? null : r); };` +
  `})(JSON.parse, JSON.stringify)`;

const WASM_PAGE = 64 * 1024;
// The project's TypeScript libs leave out the WebAssembly namespace; Node has it.
const WasmMemory = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => object };
  }
).WebAssembly.Memory;
let modulePromise: Promise<QuickJSWASMModule> | undefined;
/**
 * The WebAssembly module, loaded once per process (about 20 ms), on a memory that cannot grow past the
 * ceiling. The release build is loaded with require rather than the package's dynamic import, which
 * CommonJS test runners cannot follow.
 */
const loadQuickJS = (
  heapCeilingBytes = DEFAULT_SANDBOX_LIMITS.heapCeilingBytes,
): Promise<QuickJSWASMModule> =>
  (modulePromise ??= newQuickJSWASMModuleFromVariant(
    newVariant(
      {
        ...RELEASE_SYNC,
        importModuleLoader: () =>
          Promise.resolve(
            createRequire(__filename)(
              '@jitl/quickjs-wasmfile-release-sync/emscripten-module',
            ) as EmscriptenModuleLoader<QuickJSEmscriptenModule>,
          ),
      },
      {
        wasmMemory: new WasmMemory({
          initial: Math.min(256, Math.floor(heapCeilingBytes / WASM_PAGE)),
          maximum: Math.max(256, Math.floor(heapCeilingBytes / WASM_PAGE)),
        }) as never,
      },
    ),
  ));

/** Interrupts a running call once it is past its deadline. */
class Watchdog {
  private deadline = 0;
  interrupted = false;

  arm(ms: number): void {
    this.deadline = Date.now() + ms;
    this.interrupted = false;
  }

  readonly shouldInterrupt = (): boolean => {
    if (Date.now() <= this.deadline) return false;
    this.interrupted = true;
    return true;
  };
}

/** One function's runtime, context and compiled entry point. */
class Instance {
  private constructor(
    private readonly runtime: QuickJSRuntime,
    private readonly context: QuickJSContext,
    private readonly entry: QuickJSHandle,
    private readonly limits: SandboxLimits,
    private readonly watchdog: Watchdog,
  ) {}

  static create(
    qjs: QuickJSWASMModule,
    source: string,
    name: string,
    limits: SandboxLimits,
  ): { ok: true; instance: Instance } | { ok: false; kind: FailureKind; error: string } {
    if (source.length > limits.maxSourceChars) {
      return {
        ok: false,
        kind: 'compile',
        error: `the source is longer than ${limits.maxSourceChars} characters`,
      };
    }
    const runtime = qjs.newRuntime();
    runtime.setMemoryLimit(limits.memoryBytes);
    runtime.setMaxStackSize(limits.stackBytes);
    const watchdog = new Watchdog();
    runtime.setInterruptHandler(watchdog.shouldInterrupt);
    watchdog.arm(limits.compileTimeoutMs);
    const context = runtime.newContext();
    const result = context.evalCode(wrapSource(source), `${name}.js`);
    if (result.error) {
      const failure = describeError(context, result.error, 'compile');
      result.error.dispose();
      context.dispose();
      runtime.dispose();
      return { ok: false, kind: 'compile', error: failure.error };
    }
    if (context.typeof(result.value) !== 'function') {
      result.value.dispose();
      context.dispose();
      runtime.dispose();
      return { ok: false, kind: 'compile', error: 'the source did not produce a transform function' };
    }
    return { ok: true, instance: new Instance(runtime, context, result.value, limits, watchdog) };
  }

  call(payloadJson: string, contextJson: string): SandboxResult {
    const ctx = this.context;
    this.watchdog.arm(this.limits.timeoutMs);
    const p = ctx.newString(payloadJson);
    const c = ctx.newString(contextJson);
    try {
      const result = ctx.callFunction(this.entry, ctx.undefined, p, c);
      if (result.error) {
        const failure = describeError(ctx, result.error, 'thrown');
        result.error.dispose();
        return failure;
      }
      const value = result.value;
      try {
        if (ctx.typeof(value) !== 'string') {
          return { ok: false, kind: 'output', error: 'transform returned something JSON cannot express' };
        }
        const text = ctx.getString(value);
        if (text.length > this.limits.maxOutputChars) {
          return {
            ok: false,
            kind: 'output',
            error: `the output is larger than ${this.limits.maxOutputChars} characters of JSON`,
          };
        }
        return { ok: true, output: JSON.parse(text) as unknown };
      } finally {
        value.dispose();
      }
    } finally {
      p.dispose();
      c.dispose();
      // Pending jobs (promises the function left behind) are never run: they would run outside any deadline.
    }
  }

  dispose(): void {
    this.entry.dispose();
    this.context.dispose();
    this.runtime.dispose();
  }
}

/** Turns a QuickJS exception into a failure kind and a one-line message (no host stack, no source dump). */
function describeError(
  ctx: QuickJSContext,
  handle: QuickJSHandle,
  fallback: FailureKind,
): { ok: false; kind: FailureKind; error: string } {
  let name = '';
  let message = '';
  try {
    if (ctx.typeof(handle) === 'object') {
      // Reading name and message may run a getter of the function's; the deadline still applies to it.
      // Each handle is disposed even when the next read throws: a leaked handle aborts the runtime's disposal.
      const readString = (prop: string): string => {
        const h = ctx.getProp(handle, prop);
        try {
          return ctx.typeof(h) === 'string' ? ctx.getString(h) : '';
        } finally {
          h.dispose();
        }
      };
      name = readString('name');
      message = readString('message');
    } else {
      const s = ctx.dump(handle) as unknown;
      message = typeof s === 'string' ? s : (JSON.stringify(s) ?? String(s));
    }
  } catch {
    message = message || 'the function threw something unreadable';
  }
  const text =
    `${name ? `${name}: ` : ''}${message}`.slice(0, 500) || 'the function failed without a message';
  if (name === 'InternalError' && message === 'interrupted') {
    return { ok: false, kind: 'timeout', error: 'the function ran past its CPU deadline and was stopped' };
  }
  if (
    /out of memory|string too long|invalid array length|allocation/i.test(message) &&
    name !== 'TypeError'
  ) {
    return { ok: false, kind: 'memory', error: `the function ran out of memory (${text})` };
  }
  if (name === 'InternalError' && /stack overflow/.test(message)) {
    return { ok: false, kind: 'stack', error: 'the function recursed too deeply (stack overflow)' };
  }
  return { ok: false, kind: fallback, error: text };
}

/** Compiled functions by key. Calls are synchronous: QuickJS runs on the calling thread. */
export class FunctionSandbox {
  private readonly instances = new Map<string, { source: string; instance: Instance | undefined }>();

  private constructor(
    private readonly qjs: QuickJSWASMModule,
    readonly limits: SandboxLimits,
  ) {}

  static async create(limits: Partial<SandboxLimits> = {}): Promise<FunctionSandbox> {
    const all = { ...DEFAULT_SANDBOX_LIMITS, ...limits };
    return new FunctionSandbox(await loadQuickJS(all.heapCeilingBytes), all);
  }

  /** Compiles the source in a throwaway runtime: the message of a syntax error, or ok. */
  check(source: string, name = 'function'): { ok: true } | { ok: false; error: string } {
    const built = Instance.create(this.qjs, source, name, this.limits);
    if (!built.ok) return { ok: false, error: built.error };
    built.instance.dispose();
    return { ok: true };
  }

  /** Compiles and keeps a function under `key`, replacing what was there. */
  load(key: string, source: string): { ok: true } | { ok: false; error: string } {
    const built = Instance.create(this.qjs, source, key, this.limits);
    if (!built.ok) return { ok: false, error: built.error };
    this.unload(key);
    this.instances.set(key, { source, instance: built.instance });
    return { ok: true };
  }

  has(key: string): boolean {
    return this.instances.has(key);
  }

  unload(key: string): void {
    this.instances.get(key)?.instance?.dispose();
    this.instances.delete(key);
  }

  /** Calls a loaded function. After a limit was hit the runtime is thrown away and rebuilt on the next call. */
  run(key: string, payload: unknown, context: unknown): SandboxResult {
    const entry = this.instances.get(key);
    if (!entry) return { ok: false, kind: 'compile', error: `function ${key} is not loaded` };
    if (!entry.instance) {
      const built = Instance.create(this.qjs, entry.source, key, this.limits);
      if (!built.ok) return { ok: false, kind: built.kind, error: built.error };
      entry.instance = built.instance;
    }
    const result = callWith(entry.instance, payload, context);
    if (!result.ok && result.kind !== 'thrown' && result.kind !== 'output') {
      entry.instance.dispose();
      entry.instance = undefined;
    }
    return result;
  }

  /** The cold path: a new runtime for one call, disposed after it. */
  runOnce(source: string, payload: unknown, context: unknown, name = 'function'): SandboxResult {
    const built = Instance.create(this.qjs, source, name, this.limits);
    if (!built.ok) return { ok: false, kind: built.kind, error: built.error };
    try {
      return callWith(built.instance, payload, context);
    } finally {
      built.instance.dispose();
    }
  }

  get size(): number {
    return this.instances.size;
  }

  dispose(): void {
    for (const key of [...this.instances.keys()]) this.unload(key);
  }
}

function callWith(instance: Instance, payload: unknown, context: unknown): SandboxResult {
  const payloadJson = JSON.stringify(payload === undefined ? null : payload);
  return instance.call(payloadJson, JSON.stringify(context ?? {}));
}
