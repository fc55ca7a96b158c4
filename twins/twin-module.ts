// The shape of a module of twin types written outside TwinFlow. Pure: the workflow bundle's entry uses it too.

/** What a twins module exports: `export default [a, b]`, or `export const twinTypes = [a, b]`. */
export function twinTypesOf(mod: Record<string, unknown>): unknown[] {
  const found = mod.twinTypes ?? mod.default;
  const list = (found as { twinTypes?: unknown } | undefined)?.twinTypes ?? found;
  if (!Array.isArray(list))
    throw new Error(
      'a twins module exports its twin types as `export default [...]` or `export const twinTypes`',
    );
  return list;
}
