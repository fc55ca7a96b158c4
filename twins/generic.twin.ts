// The default twin type: keeps the latest value of every datastream and reports itself ACTIVE.
import { z } from 'zod';
import { defineTwin } from './define-twin';

export interface GenericState {
  /** Datastream ids seen so far, in order of first appearance (bounded). */
  readonly datastreams: readonly string[];
}

const MAX_TRACKED_DATASTREAMS = 500;

export const genericTwin = defineTwin<GenericState>({
  name: 'generic',
  description: 'Any device: the latest value of each datastream, no derived logic.',
  initialState: () => ({ datastreams: [] }),
  applyDatapoint: (state, dp) =>
    state.datastreams.includes(dp.datastreamId) || state.datastreams.length >= MAX_TRACKED_DATASTREAMS
      ? state
      : { datastreams: [...state.datastreams, dp.datastreamId] },
  status: () => 'ACTIVE',
  // Any well-formed operation name with any parameters: the device decides what it supports.
  operations: 'any',
  // Any flat configuration, sent as SET_DEVICE_PARAMETERS; the device confirms by reporting each key as a datastream.
  desired: {
    schema: z
      .record(
        z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,127}$/),
        z.union([z.string().max(4096), z.number(), z.boolean()]),
      )
      .refine((r) => Object.keys(r).length <= 64, 'at most 64 desired keys'),
  },
});
