// Device values are arbitrary JSON; FerretDB and MongoDB refuse some field names, so such values are kept as JSON text.
export const MAX_STORED_DEPTH = 32;

/** True when MongoDB/FerretDB can store the value as a document as it is. */
export function isStorableAsIs(value: unknown, depth = 0): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (depth >= MAX_STORED_DEPTH) return false;
  if (Array.isArray(value)) return value.every((v) => isStorableAsIs(v, depth + 1));
  for (const [key, v] of Object.entries(value)) {
    if (key.length === 0 || key.includes('.') || key.startsWith('$') || key.includes('\u0000')) return false;
    if (!isStorableAsIs(v, depth + 1)) return false;
  }
  return true;
}

export interface StoredValue {
  value?: unknown;
  valueJson?: string;
}

export const toStoredValue = (value: unknown): StoredValue =>
  isStorableAsIs(value) ? { value } : { valueJson: JSON.stringify(value) };

export const fromStoredValue = (stored: StoredValue): unknown =>
  stored.valueJson !== undefined ? JSON.parse(stored.valueJson) : stored.value;
