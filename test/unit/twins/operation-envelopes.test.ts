// Covers the OpenGate v80 response envelope: what responseEnvelopeSchema accepts and toDeviceResponse.
import {
  type OperationResponseBody,
  responseEnvelopeSchema,
  toDeviceResponse,
} from '../../../twins/operation-envelopes';

const T0 = 1_700_000_000_000;

const envelope = (response: Record<string, unknown>, version?: string) => ({
  ...(version !== undefined ? { version } : {}),
  operation: { response },
});

const parses = (value: unknown): boolean => responseEnvelopeSchema.safeParse(value).success;

describe('responseEnvelopeSchema', () => {
  it.each(['1.0', '7.0', '8.0', undefined])('accepts the version %p', (version) => {
    expect(parses(envelope({ id: 'op-1', resultCode: 'SUCCESSFUL' }, version))).toBe(true);
  });

  it('accepts a partial response with steps and no resultCode', () => {
    const parsed = responseEnvelopeSchema.parse(
      envelope({
        id: 'op-1',
        steps: [
          { name: 'DOWNLOADFILE', result: 'SUCCESSFUL', timestamp: T0, description: 'ok', response: [1] },
        ],
      }),
    );
    expect(parsed.operation.response.resultCode).toBeUndefined();
    expect(parsed.operation.response.steps).toHaveLength(1);
  });

  it('accepts a full final response', () => {
    const response = {
      id: 'op-1',
      deviceId: 'dev-1',
      name: 'UPDATE',
      timestamp: T0,
      resultCode: 'ERROR_PROCESSING',
      resultDescription: 'disk full',
      steps: [{ name: 'ENDUPDATE', result: 'ERROR' }],
    };
    expect(responseEnvelopeSchema.parse(envelope(response, '8.0'))).toEqual({
      version: '8.0',
      operation: { response },
    });
  });

  it.each([
    ['a missing id', { resultCode: 'SUCCESSFUL' }],
    ['an empty id', { id: '', resultCode: 'SUCCESSFUL' }],
    ['a numeric resultCode', { id: 'op-1', resultCode: 200 }],
    ['an empty resultCode', { id: 'op-1', resultCode: '' }],
    ['a step without a result', { id: 'op-1', steps: [{ name: 'S' }] }],
    [
      'a negative step timestamp',
      { id: 'op-1', steps: [{ name: 'S', result: 'SUCCESSFUL', timestamp: -1 }] },
    ],
  ])('rejects %s', (_what, response) => {
    expect(parses(envelope(response))).toBe(false);
  });

  it('rejects more than 256 steps and accepts 256', () => {
    const steps = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ name: `S${i}`, result: 'SUCCESSFUL' }));
    expect(parses(envelope({ id: 'op-1', steps: steps(256) }))).toBe(true);
    expect(parses(envelope({ id: 'op-1', steps: steps(257) }))).toBe(false);
  });

  it('rejects an envelope without operation.response and a version that is not a string', () => {
    expect(parses({ operation: {} })).toBe(false);
    expect(parses({ version: 8, operation: { response: { id: 'op-1' } } })).toBe(false);
  });
});

describe('toDeviceResponse', () => {
  it('keeps what the device sent and drops the fields it left out', () => {
    const body: OperationResponseBody = {
      id: 'op-1',
      deviceId: 'dev-1',
      resultCode: 'SUCCESSFUL',
      steps: [
        { name: 'A', result: 'SUCCESSFUL' },
        { name: 'B', result: 'ERROR', timestamp: T0, description: 'why', response: { code: 7 } },
      ],
    };
    const response = toDeviceResponse(body);
    expect(response).toStrictEqual({
      resultCode: 'SUCCESSFUL',
      steps: [
        { name: 'A', result: 'SUCCESSFUL' },
        { name: 'B', result: 'ERROR', timestamp: T0, description: 'why', response: { code: 7 } },
      ],
    });
    expect(Object.keys(response.steps![0]!)).toEqual(['name', 'result']);
  });

  it('keeps resultDescription and timestamp and answers no steps for a response without any', () => {
    const response = toDeviceResponse({
      id: 'op-1',
      resultCode: 'NOT_SUPPORTED',
      resultDescription: 'no',
      timestamp: T0,
    });
    expect(response).toStrictEqual({
      resultCode: 'NOT_SUPPORTED',
      resultDescription: 'no',
      timestamp: T0,
      steps: [],
    });
  });

  it('answers a partial response without a resultCode key', () => {
    const response = toDeviceResponse({ id: 'op-1', steps: [{ name: 'S', result: 'SUCCESSFUL' }] });
    expect(response).not.toHaveProperty('resultCode');
    expect(Object.keys(response)).toEqual(['steps']);
  });
});
