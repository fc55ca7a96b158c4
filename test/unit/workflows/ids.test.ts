// Covers workflow ids: how they are built from business keys and parsed back, and the org and device id patterns.
import {
  DEVICE_ID_PATTERN,
  ORG_ID_PATTERN,
  jobWorkflowId,
  operationWorkflowId,
  parseTwinWorkflowId,
  twinWorkflowId,
} from '../../../workflows/ids';

describe('workflow ids', () => {
  it('builds twin, operation and job ids from business keys', () => {
    expect(twinWorkflowId('acme', 'dev-1')).toBe('twin/acme/dev-1');
    expect(operationWorkflowId('acme', 'dev-1', 'op-9')).toBe('op/acme/dev-1/op-9');
    expect(jobWorkflowId('acme', 'job-3')).toBe('job/acme/job-3');
  });

  it.each([
    ['acme', 'dev-1'],
    ['default', 'meter.01:a@b_c'],
    ['a', 'X'],
    ['org-2', `D${'x'.repeat(127)}`],
  ])('parses back the twin id of org %s and device %s', (org, deviceId) => {
    expect(parseTwinWorkflowId(twinWorkflowId(org, deviceId))).toEqual({ org, deviceId });
  });

  it.each([
    'op/acme/dev-1',
    'twin/acme',
    'twin/acme/dev-1/extra',
    'twin//dev-1',
    'twin/acme/',
    'twin/Acme/dev-1',
    'twin/acme/dev+1',
    'twin/acme/dev#1',
    '',
  ])('does not parse %j as a twin id', (id) => {
    expect(parseTwinWorkflowId(id)).toBeUndefined();
  });
});

describe('ORG_ID_PATTERN', () => {
  it.each(['acme', 'a', 'org-2', '0rg', 'a'.repeat(63)])('accepts %j', (org) => {
    expect(ORG_ID_PATTERN.test(org)).toBe(true);
  });

  it.each(['', 'Acme', 'a/b', 'a+b', 'a#b', '-acme', 'a.b', 'a'.repeat(64)])('rejects %j', (org) => {
    expect(ORG_ID_PATTERN.test(org)).toBe(false);
  });
});

describe('DEVICE_ID_PATTERN', () => {
  it.each(['dev-1', 'Meter.01', 'a:b@c_d', '9', 'x'.repeat(128)])('accepts %j', (id) => {
    expect(DEVICE_ID_PATTERN.test(id)).toBe(true);
  });

  it.each(['', 'a/b', 'a+b', 'a#b', 'has space', '.leading-dot', '-leading-dash', 'x'.repeat(129), 'dev\n1'])(
    'rejects %j',
    (id) => {
      expect(DEVICE_ID_PATTERN.test(id)).toBe(false);
    },
  );
});
