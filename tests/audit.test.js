// The audit in the page ("Many images" → Audit) against `kdlens audit` on the same folder, models,
// methods and seed: faithfulness, agreement overall and per class, predictions, the comparisons'
// intervals and the out-of-distribution rates, on the CPU path and on WebGPU.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile, mkdtemp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { pageSession, testImage, rewriteBundle, kdlensBinary, smallTeacher, artifactsDir, WWW } from './helpers.js';

const SAMPLES = join(WWW, 'model', 'samples');
/** Class names that can be folder names (Fashion-MNIST's "T-shirt/top" cannot), in label order. */
const CLASSES = Array.from({ length: 10 }, (_, k) => `c${k}`);
const METHODS = ['grad-cam', 'hires-cam'];
const SEED = 0;

/** The page's audit.json and the CLI's, for the same folder and models. */
let fixture = null;

/**
 * A data folder — `Training/` and `Testing/`, every class in each, one image per class (the four
 * real samples among the test images) — the teacher and the page's model renamed to those
 * classes, `kdlens audit` run on 8 of the test images, and those 8 copied into a folder of class
 * folders for the page. (The CLI wants every class in both splits, so its folder holds 10.)
 */
async function prepare() {
  if (fixture) return fixture;
  const dir = await mkdtemp(join(tmpdir(), 'kdlens-audit-'));
  const data = join(dir, 'data');
  const files = {};
  const real = { c0: 't-shirt-top', c5: 'sandal', c7: 'sneaker', c8: 'bag' };
  for (const [k, name] of CLASSES.entries()) {
    files[`Training/${name}/train.png`] = testImage(32, 100 + k);
    files[`Testing/${name}/${real[name] || `made-up-${k}`}.png`] = real[name]
      ? await readFile(join(SAMPLES, `${real[name]}.png`))
      : testImage(40, 10 + k);
  }
  for (const [path, bytes] of Object.entries(files)) {
    await mkdir(join(data, path, '..'), { recursive: true });
    await writeFile(join(data, path), bytes);
  }
  const renamed = (manifest) => { manifest.classes = CLASSES; };
  const teacher = join(dir, 'teacher.kdlens');
  await writeFile(teacher, rewriteBundle(await readFile(await smallTeacher()), renamed));
  // `kdlens audit` names a student after its folder.
  const student = join(dir, 'student', 'model.kdlens');
  await mkdir(join(dir, 'student'));
  await writeFile(student, rewriteBundle(await readFile(join(WWW, 'model', 'model.kdlens')), renamed));
  const run = join(dir, 'run');
  execFileSync(kdlensBinary(), ['--run-dir', run, '--seed', String(SEED), 'audit', '--teacher', teacher, '--student', student,
    '--data', data, '--method', METHODS.join(','), '--images', '8', '--sanity-images', '0'], { stdio: 'pipe' });
  const cli = JSON.parse(await readFile(join(run, 'audit.json'), 'utf8'));
  const chosen = join(dir, 'chosen');
  for (const row of cli.per_image.filter((r) => r.model === 'teacher')) {
    const [name, file] = row.image.split('/').slice(-2);
    await mkdir(join(chosen, name), { recursive: true });
    await writeFile(join(chosen, name, file), await readFile(row.image));
  }
  fixture = { teacher, student, chosen, cli };
  return fixture;
}

/** The largest difference seen per tolerance, reported after each comparison. */
const largest = new Map();

/** `a` and `b` within `tolerance` (both null: a statistic of no values, NaN in JSON). */
function near(a, b, tolerance, what) {
  if (a === null || b === null) {
    assert.equal(a, b, what);
    return;
  }
  largest.set(tolerance, Math.max(largest.get(tolerance) ?? 0, Math.abs(a - b)));
  assert.ok(Math.abs(a - b) <= tolerance, `${what}: ${a} against ${b}`);
}

function nearStats(a, b, tolerance, what) {
  assert.equal(a.n, b.n, `${what}: n`);
  near(a.mean, b.mean, tolerance, `${what}: mean`);
  near(a.sd, b.sd, tolerance, `${what}: sd`);
}

/** The page's audit against the CLI's, in every field the two share. Maps come from another
 * build of the same code (WebAssembly, or WebGPU's kernels), so values agree to `tolerance`; the
 * rank measures of maps move further where near-equal values swap ranks. */
function assertSameAudit(page, cli, tolerance) {
  assert.equal(page.images, 8);
  assert.equal(cli.images, 8);
  assert.deepEqual(page.classes, cli.classes);
  assert.deepEqual(page.cam_layers, cli.cam_layers);
  assert.deepEqual(page.request, cli.request);
  assert.equal(page.faithfulness.length, 2 * METHODS.length);
  for (const [k, f] of page.faithfulness.entries()) {
    const c = cli.faithfulness[k];
    const what = `${f.model} ${f.method}`;
    assert.deepEqual([f.model, f.method], [c.model, c.method]);
    nearStats(f.deletion_auc, c.deletion_auc, tolerance, `${what} deletion`);
    nearStats(f.insertion_auc, c.insertion_auc, tolerance, `${what} insertion`);
    f.deletion_curve.forEach((v, i) => near(v, c.deletion_curve[i], tolerance, `${what} deletion curve ${i}`));
    f.insertion_curve.forEach((v, i) => near(v, c.insertion_curve[i], tolerance, `${what} insertion curve ${i}`));
  }
  const ranks = 1e-3;
  assert.equal(page.agreement.length, METHODS.length);
  for (const [k, a] of page.agreement.entries()) {
    const c = cli.agreement[k];
    assert.deepEqual([a.student, a.method], [c.student, c.method]);
    nearStats(a.spearman, c.spearman, ranks, `${a.method} ρ`);
    nearStats(a.top_iou, c.top_iou, ranks, `${a.method} IoU`);
    for (const name of CLASSES) {
      nearStats(a.per_class[name][0], c.per_class[name][0], ranks, `${a.method} ρ of ${name}`);
      nearStats(a.per_class[name][1], c.per_class[name][1], ranks, `${a.method} IoU of ${name}`);
    }
  }
  assert.equal(page.predictions[0].same_prediction, cli.predictions[0].same_prediction);
  nearStats(page.predictions[0].kl_divergence, cli.predictions[0].kl_divergence, tolerance, 'KL');
  assert.equal(page.comparisons.length, cli.comparisons.length);
  for (const [k, p] of page.comparisons.entries()) {
    const c = cli.comparisons[k];
    assert.deepEqual([p.measure, p.method, p.first, p.second], [c.measure, c.method, c.first, c.second]);
    near(p.difference.mean, c.difference.mean, tolerance, `${p.measure} ${p.method} difference`);
    assert.equal(p.difference.n, c.difference.n);
  }
  assert.deepEqual(page.ood.map((o) => o.flagged_test), cli.ood.map((o) => o.flagged_test));
  assert.deepEqual(page.per_image.map((r) => [r.model, r.label, r.predicted]), cli.per_image.map((r) => [r.model, r.label, r.predicted]));
  assert.ok(!('sanity' in page), 'the page runs no sanity check');
}

for (const backend of ['cpu', 'webgpu']) {
  describe(`the audit in the page (${backend})`, () => {
    let session, page;
    before(async () => {
      await prepare();
      session = await pageSession({ webgpu: backend === 'webgpu' });
      ({ page } = session);
    });
    after(() => session?.close());

    test('a folder audited with a teacher equals kdlens audit on it', { timeout: 900_000 }, async () => {
      const { teacher, student, chosen, cli } = fixture;
      assert.match(await page.textContent('#backend-badge'), backend === 'webgpu' ? /WebGPU/ : /CPU/);
      await page.setInputFiles('#model-input', student);
      // The renamed model's classes name the class choices once it is loaded.
      await page.waitForFunction(() => [...document.querySelectorAll('#target option')].some((o) => o.textContent.includes('c9')), null, { timeout: 60_000 });
      await page.setInputFiles('#teacher-input', teacher);
      await page.waitForFunction(() => !document.querySelector('#teacher-remove').hidden, null, { timeout: 60_000 });
      // The core's default audit methods are checked; audit two of them, with kdlens audit's SHAP
      // samples (unused by these methods, but part of the request both record).
      assert.equal(await page.locator('#batch-audit-methods input:checked').count(), 5);
      await page.check('#batch-audit');
      for (const box of await page.locator('#batch-audit-methods input').all()) {
        await box.setChecked(METHODS.includes(await box.getAttribute('value')));
      }
      await page.selectOption('#shap-samples', '50');
      await page.setInputFiles('#batch-folder', chosen);
      await page.waitForFunction(() => ['done', 'cancelled'].includes(document.body.dataset.batch), null, { timeout: 800_000 });
      assert.equal(await page.evaluate(() => document.body.dataset.batch), 'done');
      assert.equal(await page.textContent('#batch-progress-label'), 'Audited');
      assert.ok(await page.isVisible('#audit-results'));
      assert.match(await page.textContent('#audit-summary'), /^8 images, each explained for its true class/);
      assert.equal(await page.locator('#audit-curves svg polyline').count(), 2 * 2 * METHODS.length);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#audit-save')]);
      assert.equal(download.suggestedFilename(), 'audit.json');
      const audit = JSON.parse(await readFile(await download.path(), 'utf8'));
      largest.clear();
      assertSameAudit(audit, cli, backend === 'cpu' ? 1e-4 : 1e-3);
      console.log(`${backend}: largest differences from the CLI, by tolerance:`, Object.fromEntries(largest));
      await page.locator('#audit-results').screenshot({ path: join(await artifactsDir(), `audit-${backend}.png`) });
    });
  });
}
