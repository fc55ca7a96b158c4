// TwinFlow's Temporal search attributes, so operators can filter twins in the Web UI and the CLI.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const TWINFLOW_ORG = defineSearchAttributeKey('TwinflowOrg', SearchAttributeType.KEYWORD);
export const TWINFLOW_DEVICE_ID = defineSearchAttributeKey('TwinflowDeviceId', SearchAttributeType.KEYWORD);
export const TWINFLOW_TWIN_TYPE = defineSearchAttributeKey('TwinflowTwinType', SearchAttributeType.KEYWORD);
export const TWINFLOW_STATUS = defineSearchAttributeKey('TwinflowStatus', SearchAttributeType.KEYWORD);
export const TWINFLOW_OPERATION = defineSearchAttributeKey('TwinflowOperation', SearchAttributeType.KEYWORD);
export const TWINFLOW_JOB = defineSearchAttributeKey('TwinflowJob', SearchAttributeType.KEYWORD);
/** The highest severity among a twin's active alarms, or NONE (set once a twin has had an alarm). */
export const TWINFLOW_ALARM = defineSearchAttributeKey('TwinflowAlarm', SearchAttributeType.KEYWORD);

/** Name -> type, as `temporal server start-dev --search-attribute` and the operator service want them. */
export const TWINFLOW_SEARCH_ATTRIBUTES: Readonly<Record<string, 'Keyword'>> = Object.fromEntries(
  [
    TWINFLOW_ORG,
    TWINFLOW_DEVICE_ID,
    TWINFLOW_TWIN_TYPE,
    TWINFLOW_STATUS,
    TWINFLOW_OPERATION,
    TWINFLOW_JOB,
    TWINFLOW_ALARM,
  ].map((k) => [k.name, 'Keyword']),
);
