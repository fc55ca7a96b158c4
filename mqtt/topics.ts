// The OpenGate MQTT topics and who may use them. Pure, so the rules are unit-tested on their own.
//   odm/iot/{deviceId}[/{suffix}]  device → platform: data (OpenGate collect JSON, or any payload a connector
//                                  function translates when a suffix or a custom payload is used)
//   odm/response/{deviceId}        device → platform: operation responses (partial or final)
//   odm/request/{deviceId}         platform → device: operation requests
// Inside the embedded broker the platform's side carries the organization (`tf/{org}/odm/request/{id}`), so
// two organizations' devices with the same id never see each other's requests.

const DATA_PREFIX = 'odm/iot/';
const RESPONSE_PREFIX = 'odm/response/';
export const REQUEST_PREFIX = 'odm/request/';
const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const SUFFIX = /^[A-Za-z0-9._-]{1,64}(\/[A-Za-z0-9._-]{1,64}){0,3}$/;

export type DeviceTopic =
  | { readonly kind: 'data'; readonly deviceId: string; readonly suffix?: string }
  | { readonly kind: 'response'; readonly deviceId: string }
  | { readonly kind: 'request'; readonly deviceId: string };

/** Reads a device-side topic; undefined for anything else (wildcards included). */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  if (topic.startsWith(DATA_PREFIX)) {
    const rest = topic.slice(DATA_PREFIX.length);
    const slash = rest.indexOf('/');
    const deviceId = slash < 0 ? rest : rest.slice(0, slash);
    if (!DEVICE_ID.test(deviceId)) return undefined;
    if (slash < 0) return { kind: 'data', deviceId };
    const suffix = rest.slice(slash + 1);
    return SUFFIX.test(suffix) ? { kind: 'data', deviceId, suffix } : undefined;
  }
  for (const [prefix, kind] of [
    [RESPONSE_PREFIX, 'response'],
    [REQUEST_PREFIX, 'request'],
  ] as const) {
    if (topic.startsWith(prefix)) {
      const deviceId = topic.slice(prefix.length);
      return DEVICE_ID.test(deviceId) ? { kind, deviceId } : undefined;
    }
  }
  return undefined;
}

/** A device publishes only its own data and responses. */
export function devicePublishAllowed(deviceId: string, topic: string): boolean {
  const parsed = parseDeviceTopic(topic);
  return parsed !== undefined && parsed.kind !== 'request' && parsed.deviceId === deviceId;
}

/** A device subscribes only to its own request topic (no wildcards). */
export function deviceSubscribeAllowed(deviceId: string, topic: string): boolean {
  return topic === `${REQUEST_PREFIX}${deviceId}`;
}

/** The broker-internal topic a device's requests go out on. */
export const internalRequestTopic = (org: string, deviceId: string): string =>
  `tf/${org}/${REQUEST_PREFIX}${deviceId}`;
