// The README's layering rule, checked against every import in src/: no module imports a folder above its own.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');
/** Files at the top of src/: the package's API may import any folder but cli; errors.ts imports nothing. */
const API_FILES: readonly string[] = ['index', 'edge'];

/** The layers the README states, top first: "`cli → dashboard → deploy, profile → ...`" after "import only downward". */
function readmeLayers(): string[][] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const line = /import only downward:\s*`([^`]+)`/.exec(readme);
  assert.ok(line, 'README.md states its layers as "... import only downward: `cli → ... → core`"');
  return line[1].split('→').map((layer) => layer.split(',').map((name) => name.trim()));
}

/** Every relative import of every .ts file under src/ (static, dynamic, type-only and re-exports). */
function srcImports(): { from: string; to: string; specifier: string }[] {
  const out: { from: string; to: string; specifier: string }[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        const info = ts.preProcessFile(readFileSync(path, 'utf8'), true, true);
        for (const { fileName } of info.importedFiles) {
          if (!fileName.startsWith('.')) continue;
          out.push({
            from: relative(SRC, path),
            to: relative(SRC, resolve(dirname(path), fileName)),
            specifier: fileName,
          });
        }
      }
    }
  };
  walk(SRC);
  return out;
}

/** The folder (or API file, or "errors") a path under src/ belongs to. */
function unitOf(path: string): string {
  const [first, ...rest] = path.split('/');
  return rest.length ? first : first.replace(/\.(js|ts)$/, '');
}

/**
 * One line per import that runs up (or sideways across) `layers`, reaches code outside src/, or that the rule cannot
 * place (data files such as package.json are not layers).
 */
export function layeringViolations(
  imports: { from: string; to: string; specifier: string }[],
  layers: string[][],
): string[] {
  const rank = new Map<string, number>();
  layers.forEach((names, i) => names.forEach((name) => rank.set(name, i)));
  const order = layers.map((names) => names.join(', ')).join(' → ');
  const problems: string[] = [];
  for (const { from, to, specifier } of imports) {
    const source = unitOf(from);
    const target = unitOf(to);
    const where = `src/${from} imports "${specifier}"`;
    if (to.startsWith('..')) {
      if (/\.[cm]?[jt]s$/.test(to)) problems.push(`${where}: code outside src/`);
    } else if (source === target) continue;
    else if (target === 'errors') continue;
    else if (source === 'errors') problems.push(`${where}: errors.ts imports nothing`);
    else if (API_FILES.includes(target)) problems.push(`${where}: no module imports the API file ${target}.ts`);
    else if (API_FILES.includes(source)) {
      if (target === layers[0][0]) problems.push(`${where}: the API never imports ${target}`);
    } else if (!rank.has(source)) problems.push(`src/${source}/ is not in the README's layers (${order}): add it`);
    else if (!rank.has(target)) problems.push(`${where}: ${target} is not in the README's layers (${order}): add it`);
    else if (rank.get(target)! <= rank.get(source)!) {
      problems.push(`${where}: ${target} is not below ${source} in the README's layers (${order})`);
    }
  }
  return [...new Set(problems)];
}

test('the layering check catches an import that runs up, one that runs sideways, and an unplaced folder', () => {
  const layers = [['cli'], ['deploy', 'profile'], ['core']];
  const found = layeringViolations(
    [
      { from: 'core/a.ts', to: 'deploy/b.js', specifier: '../deploy/b.js' },
      { from: 'deploy/a.ts', to: 'profile/b.js', specifier: '../profile/b.js' },
      { from: 'cli/a.ts', to: 'core/b.js', specifier: '../core/b.js' },
      { from: 'gizmo/a.ts', to: 'core/b.js', specifier: '../core/b.js' },
      { from: 'edge.ts', to: 'core/b.js', specifier: './core/b.js' },
    ],
    layers,
  );
  assert.equal(found.length, 3, found.join('\n'));
  assert.match(found[0], /src\/core\/a\.ts imports "\.\.\/deploy\/b\.js": deploy is not below core/);
  assert.match(found[1], /profile is not below deploy/);
  assert.match(found[2], /src\/gizmo\/ is not in the README's layers/);
});

test("no import in src/ runs up the README's layers", () => {
  const imports = srcImports();
  // The walk saw the code base: hundreds of relative imports, dynamic ones (cli/main.ts loads commands) included.
  assert.ok(imports.length > 300, `${imports.length} imports found`);
  assert.ok(imports.some((i) => i.from === 'cli/main.ts' && i.to.startsWith('cli/commands/')));
  const problems = layeringViolations(imports, readmeLayers());
  assert.deepEqual(problems, [], problems.join('\n'));
});

test('the model viewer carries no trainer: dashboard/model-view.ts reaches nothing in compress/ through any import', () => {
  const imports = srcImports();
  const edges = new Map<string, string[]>();
  for (const { from, to } of imports) edges.set(from, [...(edges.get(from) ?? []), to.replace(/\.js$/, '.ts')]);
  const seen = new Set<string>();
  const stack = ['dashboard/model-view.ts'];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    stack.push(...(edges.get(file) ?? []));
  }
  assert.ok(seen.size > 5, `model-view.ts reaches ${seen.size} files`);
  const trainer = [...seen].filter((f) => f.startsWith('compress/'));
  assert.deepEqual(trainer, [], `model-view.ts reaches the trainer: ${trainer.join(', ')}`);
});
