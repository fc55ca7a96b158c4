// Worked example of a twin type: an electricity meter that tracks energy, power and supply quality.
import { z } from 'zod';
import { defineTwin } from './define-twin';
import { OPENGATE_OPERATIONS, schemaParameters } from './operation-catalogue';

export interface MeterState {
  /** Cumulative active energy imported (kWh), from datastream `energy.import`. */
  readonly energyKWh: number | null;
  /** Instantaneous active power (W), from datastream `power.active`. */
  readonly powerW: number | null;
  /** Supply voltage (V), from datastream `voltage`. */
  readonly voltageV: number | null;
  /** The meter's contracted maximum power (W), from datastream `power.limit`. */
  readonly powerLimitW: number;
  /** Times the energy register went backwards (tamper or reset indicator). */
  readonly registerResets: number;
}

export const METER_DEFAULT_POWER_LIMIT_W = 10_000;
const NOMINAL_VOLTAGE_V = 230;
/** Outside ±10 % of nominal voltage the supply is out of tolerance (EN 50160). */
const VOLTAGE_TOLERANCE = 0.1;

const sameScalar = (a: unknown, b: unknown): boolean => a === b;

const asNumber = (value: unknown): number | null =>
  typeof value === 'number' && Number.isFinite(value) ? value : null;

/** Supply quality bands; moving between them changes the status, so the twin must hear of it at once. */
function voltageBand(v: number): 'OUTAGE' | 'OUT_OF_TOLERANCE' | 'NOMINAL' {
  if (v < 1) return 'OUTAGE';
  return Math.abs(v - NOMINAL_VOLTAGE_V) > NOMINAL_VOLTAGE_V * VOLTAGE_TOLERANCE
    ? 'OUT_OF_TOLERANCE'
    : 'NOMINAL';
}

export type MeterStatus = 'NO_DATA' | 'OK' | 'OVERLOAD' | 'VOLTAGE_ALARM' | 'OUTAGE';

export function meterStatus(state: MeterState): MeterStatus {
  if (state.voltageV === null && state.powerW === null) return 'NO_DATA';
  const band = state.voltageV === null ? 'NOMINAL' : voltageBand(state.voltageV);
  if (band === 'OUTAGE') return 'OUTAGE';
  if (band === 'OUT_OF_TOLERANCE') return 'VOLTAGE_ALARM';
  if (state.powerW !== null && state.powerW > state.powerLimitW) return 'OVERLOAD';
  return 'OK';
}

/** How long power must stay over the limit before the meter's breaker opens (ms); attribute `overloadHoldMs`. */
export const METER_OVERLOAD_HOLD_MS = 120_000;
/** How long the voltage must stay out of tolerance before the VOLTAGE alarm is raised (ms); `voltageHoldMs`. */
export const METER_VOLTAGE_HOLD_MS = 60_000;
/** A meter that sent nothing for this long is OFFLINE (ms); attribute `offlineAfterMs`. */
export const METER_OFFLINE_AFTER_MS = 15 * 60_000;

const attributeMs =
  (name: string, fallback: number) =>
  ({ attributes }: { attributes: Readonly<Record<string, unknown>> }): number => {
    const v = attributes[name];
    return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fallback;
  };

const overloaded = (s: MeterState): boolean => s.powerW !== null && s.powerW > s.powerLimitW;
const voltageOut = (s: MeterState): boolean =>
  s.voltageV !== null && voltageBand(s.voltageV) === 'OUT_OF_TOLERANCE';

export const electricityMeterTwin = defineTwin<MeterState>({
  name: 'electricity-meter',
  description: 'Electricity meter: energy register, active power against its limit, supply voltage.',
  initialState: () => ({
    energyKWh: null,
    powerW: null,
    voltageV: null,
    powerLimitW: METER_DEFAULT_POWER_LIMIT_W,
    registerResets: 0,
  }),
  applyDatapoint: (state, dp) => {
    const n = asNumber(dp.value);
    if (n === null) return state;
    switch (dp.datastreamId) {
      case 'energy.import':
        return {
          ...state,
          energyKWh: n,
          registerResets:
            state.energyKWh !== null && n < state.energyKWh ? state.registerResets + 1 : state.registerResets,
        };
      case 'power.active':
        return { ...state, powerW: n };
      case 'voltage':
        return { ...state, voltageV: n };
      case 'power.limit':
        return n > 0 ? { ...state, powerLimitW: n } : state;
      default:
        return state;
    }
  },
  status: meterStatus,
  // Energy and power change every few seconds; only what can change the status needs the twin at once.
  isSignificant: (dp, previous) => {
    if (previous === undefined) return true;
    const n = asNumber(dp.value);
    const before = asNumber(previous.value);
    if (dp.datastreamId === 'voltage' && n !== null && before !== null)
      return voltageBand(n) !== voltageBand(before);
    if (dp.datastreamId === 'energy.import' && n !== null && before !== null) return n < before;
    // Crossing the default limit may start (or end) an overload's hold: the twin must time it from now.
    if (dp.datastreamId === 'power.active' && n !== null && before !== null)
      return n > METER_DEFAULT_POWER_LIMIT_W !== before > METER_DEFAULT_POWER_LIMIT_W;
    // Configuration the meter reports back changes seldom, and the desired state waits for it.
    if (dp.datastreamId === 'reportingIntervalS' || dp.datastreamId === 'tariff')
      return !sameScalar(dp.value, previous.value);
    return dp.datastreamId === 'power.limit';
  },
  maxSignalDelayMs: 10_000,
  offlineAfterMs: METER_OFFLINE_AFTER_MS,
  reactions: [
    {
      // Power over the limit for overloadHoldMs: a MAJOR alarm, and the breaker opens. An operator clears it.
      name: 'overload-breaker',
      when: ({ state }) => overloaded(state),
      for: attributeMs('overloadHoldMs', METER_OVERLOAD_HOLD_MS),
      then: ({ state }) => [
        {
          kind: 'raiseAlarm',
          alarm: 'OVERLOAD',
          severity: 'MAJOR',
          message: `power ${state.powerW} W over the limit of ${state.powerLimitW} W`,
        },
        { kind: 'operation', name: 'DISCONNECT_SUPPLY', parameters: { reason: 'overload' } },
        { kind: 'event', name: 'breaker-opened', data: { powerW: state.powerW, limitW: state.powerLimitW } },
      ],
    },
  ],
  // The meter's configuration; it confirms a change by reporting the datastream of the same name.
  desired: {
    schema: z
      .object({
        reportingIntervalS: z.number().int().min(10).max(86_400).optional(),
        tariff: z.string().min(1).max(32).optional(),
      })
      .strict(),
  },
  alarms: [
    {
      name: 'VOLTAGE',
      severity: 'MINOR',
      description: 'Supply voltage out of tolerance (EN 50160, ±10 % of 230 V).',
      raise: ({ state }) => voltageOut(state),
      for: attributeMs('voltageHoldMs', METER_VOLTAGE_HOLD_MS),
      message: ({ state }) => `voltage ${state.voltageV} V out of tolerance`,
      clearableByHand: false,
    },
  ],
  operations: {
    REBOOT_EQUIPMENT: OPENGATE_OPERATIONS.REBOOT_EQUIPMENT,
    REFRESH_INFO: OPENGATE_OPERATIONS.REFRESH_INFO,
    SET_CLOCK_EQUIPMENT: OPENGATE_OPERATIONS.SET_CLOCK_EQUIPMENT,
    UPDATE: OPENGATE_OPERATIONS.UPDATE,
    GET_DEVICE_PARAMETERS: OPENGATE_OPERATIONS.GET_DEVICE_PARAMETERS,
    SET_DEVICE_PARAMETERS: OPENGATE_OPERATIONS.SET_DEVICE_PARAMETERS,
    READ_METER: {
      description:
        'Read registers now; the meter answers with a step per register and reports the values as data.',
      steps: ['READ'],
      parameters: schemaParameters(
        z
          .object({
            registers: z
              .array(z.enum(['energy.import', 'power.active', 'voltage']))
              .min(1)
              .max(3)
              .default(['energy.import', 'power.active', 'voltage']),
          })
          .strict(),
      ),
    },
    SET_POWER_LIMIT: {
      description: 'Change the contracted maximum power; the meter confirms by reporting power.limit.',
      parameters: schemaParameters(z.object({ limitW: z.number().positive().max(1_000_000) }).strict()),
    },
    DISCONNECT_SUPPLY: {
      description: 'Open the meter breaker.',
      parameters: schemaParameters(z.object({ reason: z.string().max(200).optional() }).strict()),
    },
    RECONNECT_SUPPLY: {
      description: 'Close the meter breaker.',
      parameters: schemaParameters(z.object({}).strict()),
    },
  },
});
