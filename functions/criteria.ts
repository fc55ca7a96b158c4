// Which messages a connector function translates: an MQTT topic filter or an HTTP path suffix, narrowed by device type or ids.
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from '../workflows/ids';

/** `collect/iot` is the OpenGate body itself, so no function may claim that suffix. */
const RESERVED_HTTP_PATHS: readonly string[] = ['iot'];
export const HTTP_PATH_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const topicFilter = z
  .string()
  .min(1)
  .max(256)
  .refine((f) => !/[\u0000]/.test(f), 'must not contain NUL')
  .refine(
    (f) =>
      f.split('/').every((level, i, all) => {
        if (level.includes('#')) return level === '#' && i === all.length - 1;
        if (level.includes('+')) return level === '+';
        return true;
      }),
    'wildcards must fill a whole level (+) or be the last level (#)',
  );

export const criteriaSchema = z
  .object({
    mqttTopic: topicFilter.optional(),
    httpPath: z
      .string()
      .regex(HTTP_PATH_PATTERN, 'letters, digits, dot, dash and underscore, up to 64')
      .refine((p) => !RESERVED_HTTP_PATHS.includes(p), 'collect/iot is the OpenGate collect body itself')
      .optional(),
    deviceType: z.string().min(1).max(64).optional(),
    deviceIds: z
      .array(z.string().regex(DEVICE_ID_PATTERN, 'not a valid device id'))
      .min(1)
      .max(1_000)
      .optional(),
  })
  .strict()
  .refine((c) => c.mqttTopic !== undefined || c.httpPath !== undefined, {
    message: 'give mqttTopic, httpPath or both: they say which messages the function translates',
  });

export type Criteria = z.infer<typeof criteriaSchema>;

/** One incoming message as the matcher sees it. */
export type MessageSource =
  | {
      readonly channel: 'http';
      readonly path: string;
      readonly deviceId: string;
      readonly deviceType: string;
    }
  | {
      readonly channel: 'mqtt';
      readonly topic: string;
      readonly deviceId: string;
      readonly deviceType: string;
    };

/** MQTT topic filter matching (`+` one level, `#` the rest, including none). */
function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * How well criteria fit a message: undefined when they do not match, otherwise a specificity score (a device
 * id list beats a device type, which beats neither) so the most specific function wins.
 */
export function matchScore(criteria: Criteria, source: MessageSource): number | undefined {
  if (source.channel === 'http') {
    if (criteria.httpPath === undefined || criteria.httpPath !== source.path) return undefined;
  } else if (criteria.mqttTopic === undefined || !topicMatches(criteria.mqttTopic, source.topic)) {
    return undefined;
  }
  let score = 0;
  if (criteria.deviceType !== undefined) {
    if (criteria.deviceType !== source.deviceType) return undefined;
    score += 1;
  }
  if (criteria.deviceIds !== undefined) {
    if (!criteria.deviceIds.includes(source.deviceId)) return undefined;
    score += 2;
  }
  return score;
}
