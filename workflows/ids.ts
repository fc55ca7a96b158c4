// Workflow ids from business keys: the one place that builds and parses them.
/** Organization ids: lowercase, no slash (they are path segments of workflow ids). */
export const ORG_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Device ids as OpenGate allows them in URLs and MQTT topics, without `/`, `+` or `#`. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

export const twinWorkflowId = (org: string, deviceId: string): string => `twin/${org}/${deviceId}`;
export const operationWorkflowId = (org: string, deviceId: string, operationId: string): string =>
  `op/${org}/${deviceId}/${operationId}`;
export const jobWorkflowId = (org: string, jobId: string): string => `job/${org}/${jobId}`;

export function parseTwinWorkflowId(id: string): { org: string; deviceId: string } | undefined {
  const parts = id.split('/');
  if (parts.length !== 3 || parts[0] !== 'twin') return undefined;
  const [, org, deviceId] = parts as [string, string, string];
  return ORG_ID_PATTERN.test(org) && DEVICE_ID_PATTERN.test(deviceId) ? { org, deviceId } : undefined;
}
export const forwarderWorkflowId = (org: string, forwarderId: string): string =>
  `forwarder/${org}/${forwarderId}`;
