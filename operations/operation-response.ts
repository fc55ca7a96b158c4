// A device's answer to an operation, from HTTP or MQTT: handed to the running operation, or counted as late.
import type { OperationStatus } from '../twins/operations';
import { type ResponseEnvelope, toDeviceResponse } from '../twins/operation-envelopes';
import { ApiError } from '../api/errors';
import { OPERATION_ID_PATTERN } from '../api/north/operation.schemas';
import type { Services } from '../api/services';

export type ResponseOutcome =
  | { readonly handed: true }
  | { readonly handed: false; readonly id: string; readonly status: OperationStatus };

/** Throws NOT_FOUND for an unknown operation and PERMISSION_DENIED for another device's. */
export async function acceptOperationResponse(
  services: Services,
  org: string,
  deviceId: string,
  body: ResponseEnvelope,
): Promise<ResponseOutcome> {
  const id = body.operation.response.id;
  const receivedAt = services.now();
  if (OPERATION_ID_PATTERN.test(id)) {
    const handed = await services.twins.reportOperationResponse(
      org,
      deviceId,
      id,
      toDeviceResponse(body.operation.response),
      receivedAt,
    );
    if (handed) return { handed: true };
  }
  // No running operation of this device has that id: another device's, an ended one, or none at all.
  const record = OPERATION_ID_PATTERN.test(id) ? await services.operations.get(org, id) : null;
  if (!record) throw new ApiError('NOT_FOUND', `operation ${id} not found`);
  if (record.deviceId !== deviceId)
    throw new ApiError('PERMISSION_DENIED', `operation ${id} belongs to another device`);
  await services.operations.countLateResponse(org, id);
  return { handed: false, id, status: record.status };
}
