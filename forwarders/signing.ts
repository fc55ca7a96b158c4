// Webhook signatures: `t=<unix ms>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, made by TwinFlow and checked
// by receivers (this module is what a Node receiver can copy or import).
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-TwinFlow-Signature';
/** How far a signature's time may be from the receiver's clock before it is taken as a replay (ms). */
export const DEFAULT_TOLERANCE_MS = 5 * 60_000;

const hmac = (secret: string, t: number, rawBody: string): string =>
  createHmac('sha256', secret).update(`${t}.${rawBody}`).digest('hex');

/** The signature header's value for a body sent at `t` (ms). */
export function signBody(secret: string, rawBody: string, t: number): string {
  return `t=${t},v1=${hmac(secret, t, rawBody)}`;
}

export interface VerifyOptions {
  readonly toleranceMs?: number;
  readonly now?: number;
}

/**
 * The receiver's check: true when the header holds a v1 signature of this exact raw body (the bytes received,
 * before any JSON parsing) under the secret, made within the tolerance of now.
 */
export function verifySignature(
  secret: string,
  header: string | null | undefined,
  rawBody: string,
  options: VerifyOptions = {},
): boolean {
  if (!header) return false;
  const parts = new Map(
    header.split(',').map((p) => {
      const at = p.indexOf('=');
      return [p.slice(0, at).trim(), p.slice(at + 1).trim()] as const;
    }),
  );
  const t = Number(parts.get('t'));
  const given = parts.get('v1') ?? '';
  if (!Number.isSafeInteger(t) || !/^[0-9a-f]{64}$/.test(given)) return false;
  const now = options.now ?? Date.now();
  if (Math.abs(now - t) > (options.toleranceMs ?? DEFAULT_TOLERANCE_MS)) return false;
  return timingSafeEqual(Buffer.from(hmac(secret, t, rawBody), 'hex'), Buffer.from(given, 'hex'));
}
