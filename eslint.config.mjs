// ESLint: typed rules for all TypeScript, and determinism rules for workflow and pure twin code.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

/** Imports banned in workflow and twin code, plus `extraPatterns` for one folder. */
const restrictedImports = (extraPatterns) => [
  'error',
  {
    paths: nodeBuiltins.map((name) => ({
      name,
      message: 'Workflow and twin code must be deterministic: no Node built-ins.',
    })),
    patterns: [
      {
        group: ['**/activities', '**/activities/*'],
        allowTypeImports: true,
        message: 'Import activity types only.',
      },
      {
        group: ['**/api/**', '**/inventory/**', '**/worker/**', 'mongodb', 'mqtt', 'hono', 'pino'],
        message: 'No I/O modules in workflow or twin code.',
      },
      ...extraPatterns,
    ],
  },
];

const restrictedGlobals = [
  'error',
  { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
  { name: 'setInterval', message: 'Use sleep() in a loop.' },
  { name: 'process', message: 'Workflow code does not read the environment.' },
];

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      '.twinflow/**',
      'coverage/**',
      'tools/**',
      '**/*.cjs',
      '**/*.js',
      '**/*.mjs',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/explicit-module-boundary-types': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Workflow code is replayed: no I/O, no Node built-ins, no wall-clock or random outside the SDK's deterministic ones.
    files: ['workflows/**/*.ts'],
    rules: { 'no-restricted-imports': restrictedImports([]), 'no-restricted-globals': restrictedGlobals },
  },
  {
    // Twin logic is pure: the same bans, and no Temporal either. One block per folder, since a later
    // `no-restricted-imports` for the same files replaces an earlier one's options rather than adding to them.
    files: ['twins/**/*.ts'],
    rules: {
      'no-restricted-imports': restrictedImports([
        { group: ['@temporalio/*'], message: 'Twin logic is pure: no Temporal.' },
      ]),
      'no-restricted-globals': restrictedGlobals,
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
      '@typescript-eslint/prefer-promise-reject-errors': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
