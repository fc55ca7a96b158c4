// Operation catalogues: which operations a twin type accepts, with what parameters and steps.
import { z } from 'zod';
import { OPERATION_NAME_PATTERN } from './operations';
import { type Result, fail, ok } from './types';

export interface OperationSpec {
  readonly description: string;
  /** Checks the parameters and answers them cleaned (defaults filled in). Absent: any object. */
  readonly parameters?: (params: Readonly<Record<string, unknown>>) => Result<Record<string, unknown>>;
  /** The steps a device reports while it runs the operation, in order. */
  readonly steps?: readonly string[];
}

/** A catalogue, or 'any' for types that pass every well-formed operation through (the generic type). */
export type OperationCatalogue = Readonly<Record<string, OperationSpec>> | 'any';

/** Parameters checked by a zod schema; the error names the offending path. */
export function schemaParameters(schema: z.ZodType<Record<string, unknown>>): OperationSpec['parameters'] {
  return (params) => {
    const parsed = schema.safeParse(params);
    if (parsed.success) return ok(parsed.data);
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `parameters.${issue.path.join('.')}: ` : 'parameters: ';
    return fail('INVALID_ARGUMENT', `${where}${issue?.message ?? 'invalid'}`);
  };
}

const noParameters = schemaParameters(z.object({}).strict());

/** The operations OpenGate devices commonly implement, as TwinFlow checks them. */
export const OPENGATE_OPERATIONS = {
  REBOOT_EQUIPMENT: {
    description: 'Restart the device.',
    parameters: schemaParameters(
      z.object({ type: z.enum(['HARDWARE', 'SOFTWARE']).default('SOFTWARE') }).strict(),
    ),
  },
  EQUIPMENT_DIAGNOSTIC: {
    description: 'Run the device self-test.',
    parameters: schemaParameters(z.object({ type: z.string().min(1).max(64).optional() }).strict()),
  },
  REFRESH_INFO: {
    description: 'Ask the device to report its inventory datastreams now.',
    parameters: noParameters,
  },
  SET_CLOCK_EQUIPMENT: {
    description: 'Set the device clock.',
    parameters: schemaParameters(
      z
        .object({
          date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'date is YYYY-MM-DD'),
          time: z.string().regex(/^\d{2}:\d{2}(:\d{2})?$/, 'time is hh:mm[:ss]'),
          timezone: z.number().int().min(-720).max(840).optional(),
          dst: z.number().int().min(0).max(120).optional(),
        })
        .strict(),
    ),
  },
  UPDATE: {
    description: 'Install software or firmware, in four reported steps.',
    steps: ['BEGINUPDATE', 'DOWNLOADFILE', 'ENDINSTALL', 'ENDUPDATE'],
    parameters: schemaParameters(
      z
        .object({
          deploymentElements: z
            .array(
              z
                .object({
                  name: z.string().min(1).max(200),
                  version: z.string().min(1).max(64),
                  type: z.string().min(1).max(64).optional(),
                  downloadUrl: z.string().url().max(2048),
                  path: z.string().max(1024).optional(),
                  operation: z.enum(['INSTALL', 'UNINSTALL', 'UPGRADE']).default('INSTALL'),
                  option: z.string().max(64).optional(),
                  order: z.number().int().min(0).max(1000).optional(),
                })
                .strict(),
            )
            .min(1)
            .max(32),
        })
        .strict(),
    ),
  },
  GET_DEVICE_PARAMETERS: {
    description: 'Read configuration variables.',
    parameters: schemaParameters(
      z
        .object({
          variableList: z
            .array(z.object({ variableName: z.string().min(1).max(128) }).strict())
            .max(256)
            .optional(),
        })
        .strict(),
    ),
  },
  SET_DEVICE_PARAMETERS: {
    description: 'Write configuration variables.',
    parameters: schemaParameters(
      z
        .object({
          variableList: z
            .array(
              z
                .object({
                  variableName: z.string().min(1).max(128),
                  variableValue: z.union([z.string().max(4096), z.number(), z.boolean()]),
                })
                .strict(),
            )
            .min(1)
            .max(256),
        })
        .strict(),
    ),
  },
  FACTORY_RESET: { description: 'Return the device to its factory settings.', parameters: noParameters },
} satisfies Record<string, OperationSpec>;

export const MAX_PARAMETERS_BYTES = 64 * 1024;

/** Checks an operation against a catalogue: the name is known (or well-formed for 'any'), the parameters fit. */
export function checkOperation(
  catalogue: OperationCatalogue,
  typeName: string,
  name: string,
  parameters: Readonly<Record<string, unknown>>,
): Result<Record<string, unknown>> {
  if (!OPERATION_NAME_PATTERN.test(name)) {
    return fail(
      'INVALID_ARGUMENT',
      'operation names are 1-64 upper-case letters, digits and _, starting with a letter',
    );
  }
  if (new TextEncoder().encode(JSON.stringify(parameters)).length > MAX_PARAMETERS_BYTES) {
    return fail('INVALID_ARGUMENT', `parameters are larger than ${MAX_PARAMETERS_BYTES} bytes`);
  }
  if (catalogue === 'any') return ok({ ...parameters });
  const spec = Object.prototype.hasOwnProperty.call(catalogue, name) ? catalogue[name] : undefined;
  if (!spec) {
    return fail(
      'INVALID_ARGUMENT',
      `twin type ${typeName} has no operation ${name}; it knows ${Object.keys(catalogue).sort().join(', ')}`,
    );
  }
  return spec.parameters ? spec.parameters(parameters) : ok({ ...parameters });
}
