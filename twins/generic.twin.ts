// The default twin type: keeps the latest value of every datastream and reports itself ACTIVE.
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
});
