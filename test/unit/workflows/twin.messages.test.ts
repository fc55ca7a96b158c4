// Covers the twin and operation workflows' message definitions: every export follows the `<verbNoun>Signal|Query|Update` convention.
import * as operationMessages from '../../../workflows/operation.messages';
import * as twinMessages from '../../../workflows/twin.messages';

const KINDS = { Signal: 'signal', Query: 'query', Update: 'update' } as const;
const CONSTANT_NAME = /^([a-z][A-Za-z0-9]*)(Signal|Query|Update)$/;

interface MessageDefinition {
  readonly type: string;
  readonly name: string;
}

const isDefinition = (v: unknown): v is MessageDefinition =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as MessageDefinition).type === 'string' &&
  typeof (v as MessageDefinition).name === 'string';

// Every export of each module, so a message added later is checked without touching this file.
const MODULES = [
  {
    workflow: 'twin',
    entries: Object.entries(twinMessages as Record<string, unknown>),
    required: ['reportTelemetrySignal', 'getTwinStateQuery', 'updateProfileUpdate', 'decommissionUpdate'],
  },
  {
    workflow: 'operation',
    entries: Object.entries(operationMessages as Record<string, unknown>),
    required: [
      'reportResponseSignal',
      'proceedSignal',
      'handedOverSignal',
      'cancelRequestedSignal',
      'getOperationQuery',
    ],
  },
];

describe.each(MODULES)('$workflow workflow messages', ({ entries, required }) => {
  it('exports at least the messages the API and the workflows rely on', () => {
    expect(entries.map(([name]) => name)).toEqual(expect.arrayContaining(required));
  });

  it.each(entries)(
    '%s is a message definition named <verbNoun>Signal|Query|Update',
    (constant, definition) => {
      expect(constant).toMatch(CONSTANT_NAME);
      expect(isDefinition(definition)).toBe(true);
    },
  );

  it.each(entries)('%s has the wire name of its constant without the kind suffix', (constant, definition) => {
    const [, wireName] = CONSTANT_NAME.exec(constant) ?? [];
    expect((definition as MessageDefinition).name).toBe(wireName);
  });

  it.each(entries)('%s is of the kind its suffix says', (constant, definition) => {
    const suffix = (CONSTANT_NAME.exec(constant)?.[2] ?? '') as keyof typeof KINDS;
    expect((definition as MessageDefinition).type).toBe(KINDS[suffix]);
  });

  it('uses every wire name once per kind', () => {
    const keys = entries.map(([, d]) => `${(d as MessageDefinition).type}:${(d as MessageDefinition).name}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
