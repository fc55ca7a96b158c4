// Registers TwinFlow's search attributes on an external Temporal server (the dev server gets them as flags).
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TWINFLOW_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

export async function registerSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const known = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = Object.keys(TWINFLOW_SEARCH_ATTRIBUTES).filter((name) => !known.has(name));
  if (missing.length === 0) return [];
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    ),
  });
  return missing;
}
