// The page as an explainer (BENCHMARKS.md, "P5 — the page"): SHAP with 50 and 200 samples, the
// deletion and insertion curves, and a teacher's full explanation, in the page on the CPU
// fallback and on WebGPU, next to the native CLI on the same image and model. Not a test and never
// run in CI.
//
//   node pkg-scripts/bench-page-explainer.mjs --teacher runs/demo/web/teacher.kdlens \
//        [--image www/model/samples/bag.png] [--rounds 3] [--out runs/bench-page-explainer]
//
// Each figure is the median over the rounds of the report's own time (`timings_ms`: SHAP's
// step, the curves' step, a whole explanation's total), measured inside the page's worker or the
// CLI, and, for the page, the time from choosing the image to the drawn result.
import { writeFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pageSession, nativeExplain, WWW } from '../tests/helpers.js';

const { values: args } = parseArgs({
  options: {
    teacher: { type: 'string' },
    image: { type: 'string', default: join(WWW, 'model', 'samples', 'bag.png') },
    rounds: { type: 'string', default: '3' },
    out: { type: 'string', default: 'runs/bench-page-explainer' },
    backends: { type: 'string', default: 'cpu,webgpu' },
  },
});
if (!args.teacher) throw new Error('--teacher is required (see the header)');
const ROUNDS = Number(args.rounds);
const MODEL = join(WWW, 'model', 'model.kdlens');
const SEED = 42;

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** The settings measured: the page's controls, the CLI's flags, and the report time to read. */
const CASES = [
  { name: 'Grad-CAM (the default explanation)', controls: { method: 'grad-cam' }, cli: ['--method', 'grad-cam'], step: 'total' },
  { name: 'SHAP, 50 samples', controls: { method: 'shap', 'shap-samples': '50' }, cli: ['--method', 'shap', '--shap-samples', '50'], step: 'shap' },
  { name: 'SHAP, 200 samples', controls: { method: 'shap', 'shap-samples': '200' }, cli: ['--method', 'shap', '--shap-samples', '200'], step: 'shap' },
  { name: 'deletion and insertion curves of Grad-CAM', controls: { method: 'grad-cam', faithfulness: true }, cli: ['--method', 'grad-cam', '--faithfulness'], step: 'faithfulness' },
];

/** Resolves when the page has drawn an explanation after `before` ones (or failed). */
function explained(page, before) {
  return page.waitForFunction((n) => Number(document.body.dataset.explained || 0) > n || document.body.dataset.state === 'error', before, { timeout: 600_000 });
}

const explainedSoFar = (page) => page.evaluate(() => Number(document.body.dataset.explained || 0));

/** Sets the page's controls to `controls`, waiting for the explanation each change starts. */
async function setControls(page, controls) {
  for (const [id, value] of Object.entries(controls)) {
    const before = await explainedSoFar(page);
    if (typeof value === 'boolean') {
      if ((await page.isChecked(`#${id}`)) === value) continue;
      await page.setChecked(`#${id}`, value);
    } else {
      if ((await page.inputValue(`#${id}`)) === value) continue;
      await page.selectOption(`#${id}`, value);
    }
    await explained(page, before);
  }
}

/** Chooses the image again and waits for its explanation; the milliseconds it took. */
async function explainAgain(page) {
  const before = await explainedSoFar(page);
  const started = Date.now();
  await page.setInputFiles('#file-input', args.image);
  await explained(page, before);
  return Date.now() - started;
}

async function measurePage(backend) {
  const { page, close } = await pageSession({ webgpu: backend === 'webgpu' });
  try {
    const rows = [];
    await explainAgain(page);
    for (const c of CASES) {
      await setControls(page, c.controls);
      const report = [];
      const wall = [];
      for (let r = 0; r < ROUNDS; r++) {
        wall.push(await explainAgain(page));
        report.push((await page.evaluate(() => window.kdlens.lastResult)).timings_ms[c.step]);
      }
      await setControls(page, { faithfulness: false, method: 'grad-cam' });
      rows.push({ case: c.name, backend, report_ms: median(report), call_ms: median(wall) });
      console.log(JSON.stringify(rows.at(-1)));
    }
    // The teacher beside: its report's total (probabilities, every layer's map, Grad-CAM).
    await page.setInputFiles('#teacher-input', args.teacher);
    await page.waitForFunction(() => !document.querySelector('#teacher-remove').hidden || document.body.dataset.lastError, null, { timeout: 600_000 });
    const teacher = [];
    const wall = [];
    let layer = null;
    for (let r = 0; r < ROUNDS; r++) {
      wall.push(await explainAgain(page));
      const { report } = await page.evaluate(() => window.kdlens.lastTeacher);
      teacher.push(report.timings_ms.total);
      layer = report.maps[0].layer;
    }
    rows.push({ case: "teacher's full explanation (Grad-CAM), beside the student's", backend, layer, report_ms: median(teacher), call_ms: median(wall) });
    console.log(JSON.stringify(rows.at(-1)));
    return { rows, teacherLayer: layer };
  } finally {
    await close();
  }
}

/** The same steps with `kdlens explain`; the teacher's map on `teacherLayer`, the stage the
 * page chose for it. */
async function measureNative(teacherLayer) {
  const rows = [];
  const cases = [...CASES.map((c) => ({ ...c, model: MODEL })), { name: "teacher's full explanation (Grad-CAM), beside the student's", cli: ['--method', 'grad-cam', '--layer', teacherLayer], step: 'total', model: args.teacher }];
  for (const c of cases) {
    const times = [];
    for (let r = 0; r < ROUNDS; r++) {
      const report = await nativeExplain(args.image, c.model, [...c.cli, '--seed', String(SEED)]);
      times.push(report.timings_ms[c.step]);
    }
    rows.push({ case: c.name, backend: 'native CLI (flex, 2 threads)', report_ms: median(times), call_ms: null });
    console.log(JSON.stringify(rows.at(-1)));
  }
  return rows;
}

const rows = [];
let teacherLayer = null;
for (const backend of args.backends.split(',')) {
  const page = await measurePage(backend);
  rows.push(...page.rows);
  teacherLayer = page.teacherLayer;
}
rows.unshift(...await measureNative(teacherLayer));
await mkdir(args.out, { recursive: true });
const teacherBytes = (await readFile(args.teacher)).length;
await writeFile(join(args.out, 'page-explainer.json'), JSON.stringify({ image: args.image, teacher: args.teacher, teacher_bytes: teacherBytes, rounds: ROUNDS, rows }, null, 2));
console.log(`wrote ${join(args.out, 'page-explainer.json')}`);
