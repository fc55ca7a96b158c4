#!/usr/bin/env node
// Entry for `npm start`, `npm test`, `npm run bench` and `npm run setup`: installs what is missing, then runs.
// Plain Node with no dependencies, so it works on a fresh clone before `npm install`.
'use strict';
const { spawnSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(
    `TwinFlow needs Node.js 20.19 or newer; this is ${process.version}. Install a newer Node.js and try again.`,
  );
  process.exit(1);
}

function ensureDependencies() {
  const marker = path.join(root, 'node_modules', '.package-lock.json');
  const lock = path.join(root, 'package-lock.json');
  const stale = !fs.existsSync(marker) || fs.statSync(lock).mtimeMs > fs.statSync(marker).mtimeMs;
  if (!stale) return;
  console.log('Installing npm dependencies (npm ci)...');
  let r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    // Some npm 11 releases leave other platforms' optional packages out of the lock file and then refuse
    // it in `npm ci`; `npm install` still installs the locked versions.
    console.log('npm ci refused the lock file; installing with npm install instead...');
    r = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  }
  if (r.status !== 0) {
    console.error(
      'Installing the npm dependencies failed; see the output above. TwinFlow needs the npm registry.',
    );
    process.exit(r.status || 1);
  }
}

/** Runs a command to completion, passing signals through; exits the script if it fails. */
function step(cmd, args, extraEnv) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...extraEnv } });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/** Replaces this script with a long-running process and forwards stop signals to it once. */
function exec(cmd, args) {
  const child = spawn(cmd, args, { cwd: root, stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      // The terminal sends SIGINT to the whole group already; relay only SIGTERM.
      if (sig === 'SIGTERM') child.kill(sig);
    });
  }
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const tsNode = (file) => [process.execPath, ['--import', 'tsx', file, ...process.argv.slice(3)]];

const command = process.argv[2];
ensureDependencies();
switch (command) {
  case 'start':
    exec(...tsNode('worker/main.ts'));
    break;
  case 'worker':
  case 'api':
    // One role of the stack in this process (the other runs elsewhere, against the same Temporal and MongoDB).
    process.env.TWINFLOW_ROLES = command;
    exec(...tsNode('worker/main.ts'));
    break;
  case 'setup':
    exec(...tsNode('worker/setup.ts'));
    break;
  case 'bench':
    exec(...tsNode('bench/run.ts'));
    break;
  case 'test':
    step(bin('tsc'), ['--noEmit', '-p', '.']);
    step(bin('eslint'), ['.']);
    step(bin('prettier'), ['--check', '--log-level', 'warn', '.']);
    step(bin('jest'), ['--ci', ...process.argv.slice(3)]);
    break;
  default:
    console.error(`usage: node scripts/run.cjs start|worker|api|test|bench|setup`);
    process.exit(2);
}
