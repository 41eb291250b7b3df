import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * End-to-end tests run the compiled CLI (bin/tributary.js → dist/), as users do: build
 * the package first when dist/ is missing or older than what it is built from.
 */
export default function setup() {
  const built = mtime(path.join(ROOT, 'dist', 'cli', 'main.js'));
  const sources = [
    ...files(path.join(ROOT, 'src')).filter((file) => !file.endsWith('.spec.ts')),
    ...files(path.join(ROOT, 'examples')),
    ...['package.json', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.examples.json'].map((name) =>
      path.join(ROOT, name),
    ),
  ];
  if (built !== undefined && sources.every((file) => (mtime(file) ?? 0) <= built)) return;
  const run = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`npm run build failed:\n${run.stdout}\n${run.stderr}`);
}

function mtime(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.join(entry.parentPath, entry.name));
}
