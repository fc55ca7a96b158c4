// Covers the ESLint determinism rules: twin code bans Node built-ins, I/O modules and Temporal; workflow code
// bans Node built-ins and I/O modules. Runs ESLint's Node API on probe files inside the project.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');

const PROBES = {
  twinNodeFs: [
    'twins/__probe__.ts',
    "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n",
  ],
  twinMongo: [
    'twins/__probe__.ts',
    "import { MongoClient } from 'mongodb';\nexport const client = MongoClient;\n",
  ],
  twinTemporal: [
    'twins/__probe__.ts',
    "import { sleep } from '@temporalio/workflow';\nexport const wait = sleep;\n",
  ],
  twinClean: ['twins/__probe__.ts', "import { ok } from './types';\nexport const done = ok(1);\n"],
  workflowNodeFs: [
    'workflows/__probe__.ts',
    "import { readFileSync } from 'node:fs';\nexport const read = readFileSync;\n",
  ],
  workflowTemporal: [
    'workflows/__probe__.ts',
    "import { sleep } from '@temporalio/workflow';\nexport const wait = sleep;\n",
  ],
} as const;

type Probe = keyof typeof PROBES;

// ESLint loads eslint.config.mjs with a dynamic import, which Jest's module sandbox refuses: the Node API runs in a
// child process, given each probe's code and path, and prints the rule ids it reports.
const LINT_SCRIPT = `
const { ESLint } = require('eslint');
const { writeFileSync, rmSync } = require('node:fs');
const path = require('node:path');
(async () => {
  const probes = JSON.parse(process.argv[1]);
  const eslint = new ESLint({ cwd: process.cwd() });
  const out = {};
  for (const [name, [filePath, code]] of Object.entries(probes)) {
    // The typed config wants files the TypeScript project service can find: the probe exists while it is linted.
    const absolute = path.resolve(filePath);
    writeFileSync(absolute, code);
    try {
      const [result] = await eslint.lintText(code, { filePath: absolute });
      out[name] = result.messages.map((m) => m.ruleId);
    } finally {
      rmSync(absolute, { force: true });
    }
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
`;

let reported: Record<Probe, (string | null)[]>;

beforeAll(() => {
  try {
    const stdout = execFileSync(process.execPath, ['-e', LINT_SCRIPT, JSON.stringify(PROBES)], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    reported = JSON.parse(stdout) as Record<Probe, (string | null)[]>;
  } finally {
    // Never leave a probe behind, even when the child was killed mid-way.
    for (const [filePath] of Object.values(PROBES)) rmSync(path.join(ROOT, filePath), { force: true });
  }
}, 120_000);

describe('lint rules for twin and workflow code', () => {
  it.each<Probe>(['twinNodeFs', 'twinMongo', 'twinTemporal'])(
    'reports a twin file that imports what twin logic must not (%s)',
    (probe) => {
      expect(reported[probe]).toContain('no-restricted-imports');
    },
  );

  it('reports a workflow file that imports node:fs', () => {
    expect(reported.workflowNodeFs).toContain('no-restricted-imports');
  });

  it('lets a workflow file import @temporalio/workflow', () => {
    expect(reported.workflowTemporal).not.toContain('no-restricted-imports');
  });

  it('reports nothing for a clean twin file', () => {
    expect(reported.twinClean).toEqual([]);
  });
});
