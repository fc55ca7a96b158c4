// Turns a raw message body into what transform receives: parsed JSON, text, or hex for binary.
export type Decoded =
  { readonly ok: true; readonly payload: unknown } | { readonly ok: false; readonly error: string };

const JSON_TYPE = /^application\/(.+\+)?json\b/i;
const BINARY_TYPE = /^application\/octet-stream\b/i;
const utf8 = new TextDecoder('utf-8', { fatal: true });

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/**
 * With a content type (HTTP): JSON types are parsed (malformed JSON is the sender's error),
 * `application/octet-stream` becomes a lower-case hex string, anything else is UTF-8 text.
 * Without one (MQTT): JSON if it parses, else UTF-8 text if it decodes, else hex.
 */
export function decodePayload(bytes: Uint8Array, contentType: string | undefined): Decoded {
  if (contentType !== undefined && contentType !== '') {
    if (JSON_TYPE.test(contentType)) {
      try {
        return { ok: true, payload: JSON.parse(utf8.decode(bytes)) as unknown };
      } catch (err) {
        return { ok: false, error: `malformed JSON: ${(err as Error).message}` };
      }
    }
    if (BINARY_TYPE.test(contentType)) return { ok: true, payload: toHex(bytes) };
    try {
      return { ok: true, payload: utf8.decode(bytes) };
    } catch {
      return {
        ok: false,
        error: 'the body is not valid UTF-8 text; send binary as application/octet-stream',
      };
    }
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: true, payload: toHex(bytes) };
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { ok: true, payload: JSON.parse(trimmed) as unknown };
    } catch {
      // Not JSON after all: the function gets the text.
    }
  }
  return { ok: true, payload: text };
}
