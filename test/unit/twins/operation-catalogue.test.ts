// Covers operation catalogues: checkOperation against 'any', the OpenGate operations and the meter's, and defineTwin's checks.
import { z } from 'zod';
import { defineTwin } from '../../../twins/define-twin';
import { electricityMeterTwin } from '../../../twins/electricity-meter.twin';
import {
  type OperationCatalogue,
  MAX_PARAMETERS_BYTES,
  OPENGATE_OPERATIONS,
  checkOperation,
  schemaParameters,
} from '../../../twins/operation-catalogue';
import type { Result } from '../../../twins/types';

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.value;
}

/** The message of a refusal, failing the test when the result is ok or not INVALID_ARGUMENT. */
function refusal(result: Result<unknown>): string {
  expect(result).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT' });
  return result.ok ? '' : result.message;
}

const METER = electricityMeterTwin.operations;
const meter = (name: string, parameters: Record<string, unknown> = {}) =>
  checkOperation(METER, 'electricity-meter', name, parameters);

/** `{"p":"…"}` of exactly `length` characters of JSON. */
const parametersOfLength = (length: number, char = 'x') => ({ p: char.repeat(length - '{"p":""}'.length) });

describe('checkOperation', () => {
  describe("with 'any'", () => {
    it('accepts a well-formed name with any parameters, answering a copy', () => {
      const parameters = { nested: { list: [1, 'two'] }, flag: true };
      const checked = unwrap(checkOperation('any', 'generic', 'DO_IT_2', parameters));
      expect(checked).toEqual(parameters);
      expect(checked).not.toBe(parameters);
    });

    it.each(['reboot', 'Reboot', '_REBOOT', '1REBOOT', 'RE-BOOT', 'RE BOOT', '', `A${'B'.repeat(64)}`])(
      'rejects the name %j',
      (name) => {
        expect(refusal(checkOperation('any', 'generic', name, {}))).toMatch(/operation names/);
      },
    );

    it('accepts a name of 64 characters', () => {
      expect(checkOperation('any', 'generic', `A${'B'.repeat(63)}`, {}).ok).toBe(true);
    });

    it('rejects parameters whose JSON is longer than MAX_PARAMETERS_BYTES and accepts them at the limit', () => {
      expect(MAX_PARAMETERS_BYTES).toBe(64 * 1024);
      expect(checkOperation('any', 'generic', 'X', parametersOfLength(MAX_PARAMETERS_BYTES)).ok).toBe(true);
      const tooLarge = checkOperation('any', 'generic', 'X', parametersOfLength(MAX_PARAMETERS_BYTES + 1));
      expect(refusal(tooLarge)).toContain(String(MAX_PARAMETERS_BYTES));
    });

    // 30 000 three-byte characters are about 90 KB of UTF-8: over the limit, though the string is shorter.
    it('measures the parameter limit in bytes, so multi-byte text counts for what it weighs', () => {
      const parameters = { p: '€'.repeat(30_000) };
      expect(Buffer.byteLength(JSON.stringify(parameters), 'utf8')).toBeGreaterThan(MAX_PARAMETERS_BYTES);
      expect(refusal(checkOperation('any', 'generic', 'X', parameters))).toContain('larger than');
    });
  });

  describe('with a catalogue', () => {
    it('rejects an unknown name, listing the known ones sorted', () => {
      const message = refusal(meter('FACTORY_RESET'));
      expect(message).toContain('twin type electricity-meter has no operation FACTORY_RESET');
      expect(message).toContain(`it knows ${Object.keys(METER).sort().join(', ')}`);
      expect(message).toContain('READ_METER');
    });

    it('checks the name pattern and the size before the catalogue', () => {
      expect(refusal(meter('read_meter'))).toMatch(/operation names/);
      expect(refusal(meter('READ_METER', parametersOfLength(MAX_PARAMETERS_BYTES + 1)))).toMatch(
        /larger than/,
      );
    });

    it('knows only the operations the catalogue owns, not inherited ones', () => {
      const catalogue: OperationCatalogue = Object.assign(
        Object.create({ INHERITED: { description: 'from the prototype' } }) as Record<string, never>,
        { PING: { description: 'ping' } },
      );
      expect(refusal(checkOperation(catalogue, 't', 'INHERITED', {}))).toContain('it knows PING');
    });

    it('passes any parameters (copied) through an operation that declares none', () => {
      const catalogue: OperationCatalogue = { PING: { description: 'ping' } };
      const parameters = { anything: 1 };
      const checked = unwrap(checkOperation(catalogue, 't', 'PING', parameters));
      expect(checked).toEqual(parameters);
      expect(checked).not.toBe(parameters);
    });
  });

  describe('with the OpenGate operations', () => {
    const opengate = (name: string, parameters: Record<string, unknown>) =>
      checkOperation(OPENGATE_OPERATIONS, 'opengate', name, parameters);

    it('defaults REBOOT_EQUIPMENT to a SOFTWARE reboot and keeps HARDWARE', () => {
      expect(unwrap(opengate('REBOOT_EQUIPMENT', {}))).toEqual({ type: 'SOFTWARE' });
      expect(unwrap(opengate('REBOOT_EQUIPMENT', { type: 'HARDWARE' }))).toEqual({ type: 'HARDWARE' });
      expect(refusal(opengate('REBOOT_EQUIPMENT', { type: 'FIRMWARE' }))).toContain('parameters.type');
    });

    it('rejects parameters of an operation that takes none', () => {
      expect(unwrap(opengate('REFRESH_INFO', {}))).toEqual({});
      expect(refusal(opengate('REFRESH_INFO', { now: true }))).toMatch(/^parameters: /);
    });

    it('requires UPDATE deployment elements with a download URL, and fills in operation INSTALL', () => {
      const element = { name: 'fw', version: '2.1.0', downloadUrl: 'https://files.test/fw.bin' };
      expect(unwrap(opengate('UPDATE', { deploymentElements: [element] }))).toEqual({
        deploymentElements: [{ ...element, operation: 'INSTALL' }],
      });
      expect(
        unwrap(opengate('UPDATE', { deploymentElements: [{ ...element, operation: 'UNINSTALL' }] })),
      ).toMatchObject({ deploymentElements: [{ operation: 'UNINSTALL' }] });
    });

    it.each([
      ['no deploymentElements', {}, 'parameters.deploymentElements'],
      ['an empty list', { deploymentElements: [] }, 'parameters.deploymentElements'],
      [
        'an element without a download URL',
        { deploymentElements: [{ name: 'fw', version: '1' }] },
        'parameters.deploymentElements.0.downloadUrl',
      ],
      [
        'an element whose download URL is not a URL',
        { deploymentElements: [{ name: 'fw', version: '1', downloadUrl: 'not a url' }] },
        'parameters.deploymentElements.0.downloadUrl',
      ],
    ])('rejects UPDATE with %s', (_what, parameters, path) => {
      expect(refusal(opengate('UPDATE', parameters))).toContain(path);
    });

    it('accepts SET_DEVICE_PARAMETERS values that are strings, numbers or booleans', () => {
      const parameters = {
        variableList: [
          { variableName: 'a', variableValue: 'x' },
          { variableName: 'b', variableValue: 2 },
          { variableName: 'c', variableValue: false },
        ],
      };
      expect(unwrap(opengate('SET_DEVICE_PARAMETERS', parameters))).toEqual(parameters);
    });

    it('rejects a SET_DEVICE_PARAMETERS value of another type, naming its path', () => {
      const parameters = {
        variableList: [
          { variableName: 'a', variableValue: 'x' },
          { variableName: 'b', variableValue: { nested: true } },
        ],
      };
      expect(refusal(opengate('SET_DEVICE_PARAMETERS', parameters))).toMatch(
        /^parameters\.variableList\.1\.variableValue: /,
      );
    });
  });

  describe("with the electricity meter's catalogue", () => {
    it('reads every register by default on READ_METER', () => {
      expect(unwrap(meter('READ_METER'))).toEqual({
        registers: ['energy.import', 'power.active', 'voltage'],
      });
      expect(unwrap(meter('READ_METER', { registers: ['voltage'] }))).toEqual({ registers: ['voltage'] });
    });

    it.each([
      ['an unknown register', { registers: ['current'] }],
      ['an empty list', { registers: [] }],
      ['an unknown field', { registers: ['voltage'], all: true }],
    ])('rejects READ_METER with %s', (_what, parameters) => {
      expect(refusal(meter('READ_METER', parameters))).toMatch(/^parameters/);
    });

    it.each([1, 0.5, 1_000_000])('accepts SET_POWER_LIMIT with limitW %p', (limitW) => {
      expect(unwrap(meter('SET_POWER_LIMIT', { limitW }))).toEqual({ limitW });
    });

    it.each([
      ['zero', { limitW: 0 }],
      ['a negative limit', { limitW: -5 }],
      ['more than 1 000 000 W', { limitW: 1_000_001 }],
      ['a string', { limitW: '5000' }],
    ])('rejects SET_POWER_LIMIT with %s', (_what, parameters) => {
      expect(refusal(meter('SET_POWER_LIMIT', parameters))).toContain('parameters.limitW');
    });

    it('rejects SET_POWER_LIMIT without a limit', () => {
      expect(refusal(meter('SET_POWER_LIMIT'))).toContain('parameters.limitW');
    });
  });
});

describe('schemaParameters', () => {
  it('names the root when the problem is not at a path', () => {
    const check = schemaParameters(z.object({}).strict())!;
    expect(refusal(check({ extra: 1 }))).toMatch(/^parameters: /);
  });
});

describe('defineTwin with operations', () => {
  const spec = {
    name: 'op-twin',
    description: 'test',
    initialState: () => ({}),
    applyDatapoint: (s: object) => s,
    status: () => 'OK',
  };

  it('defaults to no operations, one at a time', () => {
    const type = defineTwin(spec);
    expect(type.operations).toEqual({});
    expect(type.maxConcurrentOperations).toBe(1);
  });

  it.each(['reboot', 'Reboot', '1REBOOT', 'RE-BOOT'])('rejects the operation name %j', (name) => {
    expect(() => defineTwin({ ...spec, operations: { [name]: { description: 'x' } } })).toThrow(
      /UPPER_SNAKE_CASE/,
    );
  });

  it('accepts UPPER_SNAKE operation names and the catalogue any', () => {
    expect(defineTwin({ ...spec, operations: { REBOOT_2: { description: 'x' } } }).operations).toHaveProperty(
      'REBOOT_2',
    );
    expect(defineTwin({ ...spec, operations: 'any' }).operations).toBe('any');
  });

  it.each([0, 65, -1, 1.5, Number.NaN])('rejects maxConcurrentOperations %p', (maxConcurrentOperations) => {
    expect(() => defineTwin({ ...spec, maxConcurrentOperations })).toThrow(/maxConcurrentOperations/);
  });

  it.each([1, 64])('accepts maxConcurrentOperations %p', (maxConcurrentOperations) => {
    expect(defineTwin({ ...spec, maxConcurrentOperations }).maxConcurrentOperations).toBe(
      maxConcurrentOperations,
    );
  });
});
