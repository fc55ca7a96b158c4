// Covers the OpenGate v80 collect body: collectBodySchema's validation and toDatapoints' flattening.
import {
  type CollectBody,
  MAX_DATASTREAMS_PER_MESSAGE,
  collectBodySchema,
  toDatapoints,
} from '../../../ingest/collect.schema';
import { encodeDatastreamKey } from '../../../inventory/datastream-key';

const RECEIVED_AT = 1_700_000_005_000;

/** The example of PROTOCOL.md, "Data collection". */
const PROTOCOL_EXAMPLE = {
  version: '1.0.0',
  device: 'sensor-7',
  path: ['gw-1'],
  datastreams: [
    {
      id: 'temperature',
      feed: 'default',
      datapoints: [{ value: 21.5, at: 1700000000000, from: 1699999940000 }],
    },
    { id: 'device.model', datapoints: [{ value: { name: 'X', manufacturer: 'Y' } }] },
  ],
};

const withDatapoint = (datapoint: Record<string, unknown>) => ({
  datastreams: [{ id: 'temperature', datapoints: [datapoint] }],
});
const withDatastreamId = (id: string) => ({ datastreams: [{ id, datapoints: [{ value: 1 }] }] });

const parse = (body: unknown): CollectBody => collectBodySchema.parse(body);

describe('collectBodySchema', () => {
  it('accepts the PROTOCOL.md example as it is', () => {
    const result = collectBodySchema.safeParse(PROTOCOL_EXAMPLE);
    expect(result.success).toBe(true);
    expect(result.data?.datastreams[1]?.datapoints[0]?.value).toEqual({ name: 'X', manufacturer: 'Y' });
  });

  it('accepts a body with only datastreams, and any JSON value including null, arrays and booleans', () => {
    const body = {
      datastreams: [
        {
          id: 'a',
          datapoints: [
            { value: null },
            { value: [1, 'two'] },
            { value: false },
            { value: 'text' },
            { value: 0 },
          ],
        },
      ],
    };
    expect(parse(body).datastreams[0]?.datapoints.map((d) => d.value)).toEqual([
      null,
      [1, 'two'],
      false,
      'text',
      0,
    ]);
  });

  it('is lenient on extra fields', () => {
    expect(collectBodySchema.safeParse({ ...PROTOCOL_EXAMPLE, trace: 'x' }).success).toBe(true);
  });

  it('accepts the year-2500 limit itself and zero', () => {
    expect(collectBodySchema.safeParse(withDatapoint({ value: 1, at: 16_725_225_600_000 })).success).toBe(
      true,
    );
    expect(collectBodySchema.safeParse(withDatapoint({ value: 1, at: 0 })).success).toBe(true);
  });

  it.each<[string, unknown]>([
    ['a datapoint without value', withDatapoint({ at: 1_700_000_000_000 })],
    ['`at` as a string', withDatapoint({ value: 1, at: '1700000000000' })],
    ['`at` in microseconds, beyond year 2500', withDatapoint({ value: 1, at: 1_700_000_000_000_000 })],
    ['a negative `at`', withDatapoint({ value: 1, at: -1 })],
    ['a fractional `at`', withDatapoint({ value: 1, at: 1_700_000_000_000.5 })],
    ['a negative `from`', withDatapoint({ value: 1, from: -1 })],
    ['no datastreams', { datastreams: [] }],
    ['a missing datastreams field', { version: '1.0.0' }],
    ['a datastream without datapoints', { datastreams: [{ id: 'a', datapoints: [] }] }],
    ['an empty datastream id', withDatastreamId('')],
    ['a datastream id with a control character', withDatastreamId('temp\u0001')],
    ['a datastream id with a newline', withDatastreamId('temp\nerature')],
    ['a datastream id longer than 256 characters', withDatastreamId('x'.repeat(257))],
    [
      'a feed with a control character',
      { datastreams: [{ id: 'a', feed: 'f\u0000', datapoints: [{ value: 1 }] }] },
    ],
    ['a device id with a slash', { ...PROTOCOL_EXAMPLE, device: 'a/b' }],
    ['a path that is not an array', { ...PROTOCOL_EXAMPLE, path: 'gw-1' }],
    ['datastreams that is an object', { datastreams: { id: 'a' } }],
    ['a body that is not an object', 'temperature=21'],
  ])('rejects %s', (_label, body) => {
    expect(collectBodySchema.safeParse(body).success).toBe(false);
  });

  it('rejects more than MAX_DATASTREAMS_PER_MESSAGE datastreams', () => {
    const datastreams = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: `ds${i}`, datapoints: [{ value: i }] }));
    expect(
      collectBodySchema.safeParse({ datastreams: datastreams(MAX_DATASTREAMS_PER_MESSAGE) }).success,
    ).toBe(true);
    expect(
      collectBodySchema.safeParse({ datastreams: datastreams(MAX_DATASTREAMS_PER_MESSAGE + 1) }).success,
    ).toBe(false);
  });

  it('says which field is wrong and why for a time in microseconds', () => {
    const result = collectBodySchema.safeParse(withDatapoint({ value: 1, at: 1_700_000_000_000_000 }));
    expect(result.error?.issues).toEqual([
      expect.objectContaining({
        path: ['datastreams', 0, 'datapoints', 0, 'at'],
        message: 'must be milliseconds since the Unix epoch',
      }),
    ]);
  });

  // Regression: a lone surrogate passed the schema but made encodeDatastreamKey throw after datapoints were stored.
  it('accepts only datastream ids the inventory can encode as a field name', () => {
    const id = JSON.parse('"temp\\ud800"') as string;
    const accepted = collectBodySchema.safeParse(withDatastreamId(id)).success;
    let encodable = true;
    try {
      encodeDatastreamKey(id, 'default');
    } catch {
      encodable = false;
    }
    expect(accepted && !encodable).toBe(false);
  });
});

describe('toDatapoints', () => {
  it('flattens the PROTOCOL.md example, filling feed and a missing `at` and keeping `from`', () => {
    expect(toDatapoints(parse(PROTOCOL_EXAMPLE), RECEIVED_AT)).toEqual([
      { datastreamId: 'temperature', feed: 'default', value: 21.5, at: 1700000000000, from: 1699999940000 },
      {
        datastreamId: 'device.model',
        feed: 'default',
        value: { name: 'X', manufacturer: 'Y' },
        at: RECEIVED_AT,
      },
    ]);
  });

  it('keeps a given feed and omits `from` when the device did not send one', () => {
    const body = parse({
      datastreams: [{ id: 'temperature', feed: 'backup', datapoints: [{ value: 1, at: 5 }, { value: 2 }] }],
    });
    const datapoints = toDatapoints(body, RECEIVED_AT);
    expect(datapoints).toEqual([
      { datastreamId: 'temperature', feed: 'backup', value: 1, at: 5 },
      { datastreamId: 'temperature', feed: 'backup', value: 2, at: RECEIVED_AT },
    ]);
    expect(datapoints[0]).not.toHaveProperty('from');
  });

  it('keeps the order of datastreams and datapoints', () => {
    const body = parse({
      datastreams: [
        { id: 'b', datapoints: [{ value: 1 }, { value: 2 }] },
        { id: 'a', datapoints: [{ value: 3 }] },
      ],
    });
    expect(toDatapoints(body, RECEIVED_AT).map((d) => `${d.datastreamId}=${String(d.value)}`)).toEqual([
      'b=1',
      'b=2',
      'a=3',
    ]);
  });
});
