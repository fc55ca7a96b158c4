// How the twin workflows are bundled, in one place for the worker, the tests, the replay test and the recorder.

/**
 * Modules that every workflow in the worker's reusable V8 context shares, instead of evaluating their module
 * scope again for each workflow it holds. Without this each cached twin carried its own copy of every twin
 * type, operation catalogue and zod schema (about 1,600 bound functions a twin, the largest part of its heap:
 * `BENCH_ONLY=twin-memory npm run bench` weighs both). Safe because these modules are pure: no clock, no
 * randomness, and no module-level state that changes once twins run (the registry's types are registered before,
 * and registering the same shared type objects again, as a `TWINFLOW_TWINS` bundle's entry does per workflow,
 * changes nothing). The SDK deep-freezes what it preloads: a module listed here may
 * export functions, constants and frozen twin types, never a zod schema itself (zod writes a cache into its
 * schemas as they parse; a schema kept inside a closure, as `schemaParameters` keeps it, is not frozen).
 */
export const SHARED_WORKFLOW_MODULES: readonly string[] = [
  'zod',
  require.resolve('../twins/registry'),
  require.resolve('../twins/twin-core'),
  require.resolve('../twins/twin-operations'),
  require.resolve('../twins/operation-flow'),
];

/** For bundleWorkflowCode (its options take the list directly). */
export const workflowBundleOptions = (): { preloadModules: string[] } => ({
  preloadModules: [...SHARED_WORKFLOW_MODULES],
});
