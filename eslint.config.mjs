// Typed lint for every package: floating promises and non-exhaustive switches are errors,
// and packages may not print with console (the CLI writes through process.stdout/stderr).
//
// The package boundaries ("may import", docs/architecture.md, from DESIGN.md's "Parts") are
// checked here too, with `no-restricted-imports` per package; test/conventions/boundaries.test.ts
// proves each rule bites.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const WHERE = 'See "Parts and what each may import" in docs/architecture.md (from DESIGN.md).';
const OURS = ['protocol', 'client', 'agent', 'server', 'cli', 'web'];

/** Forbids importing our packages other than `allowed`, by name. */
function ours(who, allowed) {
  const forbidden = OURS.filter((p) => !allowed.includes(p));
  const may = allowed.length ? allowed.map((p) => `@ferry/${p}`).join(', ') : 'no package of ours';
  return forbidden.map((p) => ({
    regex: `^@ferry/${p}(/.*)?$`,
    caseSensitive: true,
    message: `Boundary: ${who} may import ${may}, never @ferry/${p}. ${WHERE}`,
  }));
}

/** Node's built-in modules, as `node:x` and as bare names (`fs`, `crypto`, `buffer`, `fs/promises`). */
function noNodeBuiltins(who) {
  const names = builtinModules.filter((m) => !m.startsWith('_')).map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return [
    {
      regex: `^(node:.*|(${names.join('|')})(/.*)?)$`,
      caseSensitive: true,
      message: `Boundary: ${who} runs in browsers too, so it may not import Node's built-in modules. Use bytes.ts (Uint8Array, base64, UTF-8) or WebCrypto instead. ${WHERE}`,
    },
  ];
}

/** Everywhere: only a package's published entry points, never its files. */
const noDeepImports = [
  {
    regex: '^@ferry/(?!client/node$|agent/flags$)[^/]+/.+',
    caseSensitive: true,
    message: `Import our packages only by their published entry points (\`@ferry/<name>\`, \`@ferry/client/node\`, \`@ferry/agent/flags\`), never their src/ or dist/ files. ${WHERE}`,
  },
];

function boundary(...groups) {
  return { 'no-restricted-imports': ['error', { patterns: [...noDeepImports, ...groups.flat()] }] };
}

const noNodeGlobals = [
  'error',
  ...['Buffer', 'process', 'require', '__dirname', '__filename', 'global', 'setImmediate'].map((name) => ({
    name,
    message: `Boundary: this code runs in browsers too; \`${name}\` is Node-only (bytes.ts has Uint8Array helpers; configuration and the environment come from the caller). ${WHERE}`,
  })),
];

export default tseslint.config(
  { ignores: ['**/dist/**', 'packages/cli/bundle/**', 'node_modules/**', 'bench/results*', 'ferry-data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.mjs', 'bench/*.mjs', 'scripts/*.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }],
        },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'error',
      ...boundary(),
    },
  },
  // ---- package boundaries: what each package may import ----
  { files: ['packages/protocol/src/**'], rules: { ...boundary(ours('protocol', []), noNodeBuiltins('protocol')), 'no-restricted-globals': noNodeGlobals } },
  {
    files: ['packages/client/src/**'],
    ignores: ['packages/client/src/node/**'],
    rules: {
      ...boundary(ours('the client core', ['protocol']), noNodeBuiltins('the client core (packages/client/src/*.ts)'), [
        {
          regex: '^undici$',
          caseSensitive: true,
          message: `Boundary: the client core runs in browsers; undici is Node-only, and Node transports belong in the Node entry (src/node/). ${WHERE}`,
        },
        {
          regex: '^\\./node(/.*)?$',
          caseSensitive: true,
          message: `Boundary: the client core may not import its Node entry (src/node/); the Node entry imports the core. ${WHERE}`,
        },
      ]),
      'no-restricted-globals': noNodeGlobals,
    },
  },
  { files: ['packages/client/src/node/**'], rules: boundary(ours("the client's Node entry", ['protocol', 'client'])) },
  { files: ['packages/agent/src/**'], rules: boundary(ours('the agent', ['protocol', 'client'])) },
  { files: ['packages/server/src/**'], rules: boundary(ours('the server', ['protocol'])) },
  { files: ['packages/web/src/**'], rules: boundary(ours('the web UI', ['protocol', 'client']), noNodeBuiltins('the web UI')) },
  // packages/cli/src may import every package (only the deep-import rule above applies).
  {
    files: ['packages/*/test/**', 'test/**', 'bench/**', 'scripts/**', '*.mjs'],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
