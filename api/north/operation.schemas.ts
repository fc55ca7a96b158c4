// Request schemas and the response view of operations on the north API.
import { z } from 'zod';
import { OPERATION_NAME_PATTERN, type OperationRecord, type OperationStatus } from '../../twins/operations';

const HOUR = 3_600_000;

export const createOperationSchema = z
  .object({
    name: z
      .string()
      .regex(
        OPERATION_NAME_PATTERN,
        'operation names are 1-64 upper-case letters, digits and _, starting with a letter',
      ),
    /** An object, or the legacy list form [{ name, value }]. */
    parameters: z.union([z.record(z.unknown()), z.array(z.unknown()).max(256)]).optional(),
    timeoutMs: z
      .number()
      .int()
      .min(100)
      .max(7 * 24 * HOUR)
      .optional(),
    ttlMs: z
      .number()
      .int()
      .min(100)
      .max(30 * 24 * HOUR)
      .optional(),
    retries: z.number().int().min(0).max(10).optional(),
    retriesDelayMs: z
      .number()
      .int()
      .min(0)
      .max(24 * HOUR)
      .optional(),
    retryResultList: z.array(z.string().min(1).max(64)).max(16).optional(),
    /** auto: from the device's transport · push: to its HTTP server now · pending: hold until it polls. */
    delivery: z.enum(['auto', 'push', 'pending']).optional(),
  })
  .strict();

export type CreateOperationBody = z.infer<typeof createOperationSchema>;

const STATUSES: [OperationStatus, ...OperationStatus[]] = [
  'QUEUED',
  'WAITING_FOR_CONNECTION',
  'DELIVERED',
  'IN_PROGRESS',
  'SUCCESSFUL',
  'FAILED',
  'TIMEOUT',
  'EXPIRED',
  'CANCELLED',
];

export const listOperationsQuerySchema = z
  .object({
    status: z.enum(STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().max(400).optional(),
  })
  .strict();

export const getOperationQuerySchema = z
  .object({
    /** Wait up to this long for the operation to end before answering (long poll). */
    waitMs: z.coerce.number().int().min(0).max(60_000).default(0),
  })
  .strict();

/** Operation ids are UUIDs; anything else cannot name an operation. */
export { OPERATION_ID_PATTERN } from '../../twins/operations';

export function encodeOperationCursor(after: { createdAt: number; id: string }): string {
  return Buffer.from(`${after.createdAt}:${after.id}`, 'utf8').toString('base64url');
}

export function decodeOperationCursor(cursor: string): { createdAt: number; id: string } | undefined {
  const m = /^(\d{1,16}):([A-Za-z0-9-]{1,64})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m ? { createdAt: Number(m[1]), id: m[2]! } : undefined;
}

/** The operation as the API shows it. */
export function operationView(rec: OperationRecord) {
  return {
    id: rec.id,
    deviceId: rec.deviceId,
    name: rec.name,
    parameters: rec.parameters,
    status: rec.status,
    resultCode: rec.resultCode,
    resultDescription: rec.resultDescription,
    delivery: rec.delivery,
    steps: rec.steps,
    attempts: rec.attempts,
    timeoutMs: rec.limits.timeoutMs,
    ttlMs: rec.limits.ttlMs,
    retries: rec.limits.retries,
    retriesDelayMs: rec.limits.retriesDelayMs,
    retryResultList: rec.limits.retryResultList,
    requestedBy: rec.requestedBy,
    ...(rec.cancelledBy !== undefined ? { cancelledBy: rec.cancelledBy } : {}),
    createdAt: rec.createdAt,
    updatedAt: rec.updatedAt,
    expiresAt: rec.expiresAt,
    deliveredAt: rec.deliveredAt,
    finishedAt: rec.finishedAt,
    lateResponses: rec.lateResponses,
  };
}
