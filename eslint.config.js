// Lint rules: typescript-eslint's type-aware recommended set, no floating promises, no any.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'runs/', 'scratch/', 'cmp-demo/', 'site/', 'app-dist/', 'eslint.config.js', 'bin/', 'test/register.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'error',
      // Interfaces return Promises (Backend, Command) even where one implementation happens to be synchronous.
      '@typescript-eslint/require-await': 'off',
    },
  },
  { files: ['test/**', 'bench/**'], rules: { 'no-console': 'off' } },
);
