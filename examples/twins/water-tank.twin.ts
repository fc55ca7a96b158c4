// An example twin type written outside TwinFlow: a water tank with a level sensor and an inlet valve.
// In your own repository, import defineTwin from your TwinFlow checkout or package instead of this relative path.
import { z } from 'zod';
import { defineTwin } from '../../twins/define-twin';
import { OPENGATE_OPERATIONS, schemaParameters } from '../../twins/operation-catalogue';

export interface TankState {
  /** Fill level in percent, from datastream `level`. */
  readonly levelPct: number | null;
  /** Whether the inlet valve reports open, from datastream `inlet.open`. */
  readonly inletOpen: boolean | null;
}

/** Above this the tank is about to overflow. */
export const HIGH_LEVEL_PCT = 90;
/** Below this pumps downstream run dry. */
export const LOW_LEVEL_PCT = 10;

export function tankStatus(s: TankState): string {
  if (s.levelPct === null) return 'NO_DATA';
  if (s.levelPct >= HIGH_LEVEL_PCT) return 'HIGH';
  if (s.levelPct <= LOW_LEVEL_PCT) return 'LOW';
  return 'OK';
}

/** Durations come from the device's attributes where set (handy in tests), else these defaults. */
const ms =
  (attribute: string, fallback: number) =>
  ({ attributes }: { attributes: Readonly<Record<string, unknown>> }): number => {
    const v = attributes[attribute];
    return typeof v === 'number' && v >= 0 ? v : fallback;
  };

export const waterTankTwin = defineTwin<TankState>({
  name: 'water-tank',
  description: 'Water tank: level in percent and an inlet valve the twin closes before it overflows.',
  initialState: () => ({ levelPct: null, inletOpen: null }),
  applyDatapoint: (state, dp) => {
    if (dp.datastreamId === 'level' && typeof dp.value === 'number') return { ...state, levelPct: dp.value };
    if (dp.datastreamId === 'inlet.open' && typeof dp.value === 'boolean')
      return { ...state, inletOpen: dp.value };
    return state;
  },
  status: tankStatus,
  // A change of band is news at once.
  isSignificant: (dp, previous) =>
    previous === undefined ||
    (dp.datastreamId === 'level' &&
      typeof dp.value === 'number' &&
      typeof previous.value === 'number' &&
      tankStatus({ levelPct: dp.value, inletOpen: null }) !==
        tankStatus({ levelPct: previous.value, inletOpen: null })),
  offlineAfterMs: 10 * 60_000,
  operations: {
    CLOSE_INLET: {
      description: 'Close the inlet valve.',
      parameters: schemaParameters(z.object({}).strict()),
    },
    OPEN_INLET: { description: 'Open the inlet valve.', parameters: schemaParameters(z.object({}).strict()) },
    // What the desired state's reconciliation sends (its default operation).
    SET_DEVICE_PARAMETERS: OPENGATE_OPERATIONS.SET_DEVICE_PARAMETERS,
  },
  reactions: [
    {
      // High for highHoldMs (default 30 s) with the inlet open: close it, and say so.
      name: 'close-inlet',
      when: ({ state }) => (state.levelPct ?? 0) >= HIGH_LEVEL_PCT && state.inletOpen !== false,
      for: ms('highHoldMs', 30_000),
      then: ({ state }) => [
        { kind: 'operation', name: 'CLOSE_INLET' },
        {
          kind: 'raiseAlarm',
          alarm: 'OVERFLOW_RISK',
          severity: 'MAJOR',
          message: `level ${state.levelPct} %`,
        },
        { kind: 'event', name: 'inlet-closed', data: { levelPct: state.levelPct } },
      ],
      otherwise: () => [{ kind: 'clearAlarm', alarm: 'OVERFLOW_RISK' }],
    },
  ],
  alarms: [
    {
      name: 'LOW_LEVEL',
      severity: 'MINOR',
      raise: ({ state }) => state.levelPct !== null && state.levelPct <= LOW_LEVEL_PCT,
      // Hysteresis: cleared only once clearly above the threshold.
      clear: ({ state }) => (state.levelPct ?? 0) > LOW_LEVEL_PCT + 5,
      for: ms('lowHoldMs', 60_000),
      message: ({ state }) => `level ${state.levelPct} %`,
    },
  ],
  desired: {
    schema: z.object({ targetLevelPct: z.number().min(20).max(85).optional() }).strict(),
  },
});
