// OpenGate v80 operation response envelopes, as devices send them (south API, MQTT, a push's HTTP answer).
import { z } from 'zod';
import type { DeviceResponse } from './operations';

const step = z.object({
  name: z.string().min(1).max(128),
  timestamp: z.number().int().nonnegative().optional(),
  result: z.string().min(1).max(64),
  description: z.string().max(4096).optional(),
  response: z.unknown().optional(),
});

export const operationResponseSchema = z.object({
  id: z.string().min(1).max(128),
  deviceId: z.string().max(128).optional(),
  name: z.string().max(64).optional(),
  timestamp: z.number().int().nonnegative().optional(),
  resultCode: z.string().min(1).max(64).optional(),
  resultDescription: z.string().max(4096).optional(),
  steps: z.array(step).max(256).optional(),
});

/** `{ version?, operation: { response: {...} } }`; any version string is accepted. */
export const responseEnvelopeSchema = z.object({
  version: z.string().max(16).optional(),
  operation: z.object({ response: operationResponseSchema }),
});

export type OperationResponseBody = z.infer<typeof operationResponseSchema>;
export type ResponseEnvelope = z.infer<typeof responseEnvelopeSchema>;

export function toDeviceResponse(body: OperationResponseBody): DeviceResponse {
  return {
    ...(body.resultCode !== undefined ? { resultCode: body.resultCode } : {}),
    ...(body.resultDescription !== undefined ? { resultDescription: body.resultDescription } : {}),
    ...(body.timestamp !== undefined ? { timestamp: body.timestamp } : {}),
    steps: (body.steps ?? []).map((s) => ({
      name: s.name,
      result: s.result,
      ...(s.description !== undefined ? { description: s.description } : {}),
      ...(s.timestamp !== undefined ? { timestamp: s.timestamp } : {}),
      ...(s.response !== undefined ? { response: s.response } : {}),
    })),
  };
}
