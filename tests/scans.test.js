// DICOM and NIfTI in the page (CPU fallback): decoded in the worker by the core, the window, frame,
// plane and slice changed through the page's controls (and a drag on the image), each explanation
// compared with `kdlens explain` on the same file and options; and no patient data in anything
// the page shows or saves. The scans come from pkg-scripts/fetch-test-scans.sh, the made-up
// patient files from `patient_data.rs`'s `write_patient_files` (both run by pkg-scripts/test.sh).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdtemp, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  pageSession, dropFile, explainDropped, nativeExplain, assertSameReport, rewriteBundle,
  keptFiles, assertOnlyPageFiles,
  ROOT, WWW,
} from './helpers.js';

const MODEL = join(WWW, 'model', 'model.kdlens');
const SCANS = join(ROOT, 'tests', '.cache', 'scans');
const PATIENTS = join(ROOT, 'tests', '.cache', 'patient');

async function input(dir, name, how) {
  const path = join(dir, name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run ${how} first`);
  return { path, bytes: await readFile(path) };
}

const scan = (name) => input(SCANS, name, 'bash pkg-scripts/fetch-test-scans.sh');

/**
 * Runs `action` and waits until the page shows an explanation whose scan facts include
 * `expected` (the newest of the explanations the action started); returns that report.
 */
async function explainedWith(page, action, expected, { timeout = 180_000 } = {}) {
  await action();
  await page.waitForFunction((expected) => {
    const facts = window.kdlens.lastReport?.image?.scan;
    const matches = facts && Object.entries(expected).every(([k, v]) => JSON.stringify(facts[k]) === JSON.stringify(v));
    return (matches && document.body.dataset.state === 'done') || document.body.dataset.state === 'error';
  }, expected, { timeout });
  if ((await page.evaluate(() => document.body.dataset.state)) === 'error') throw new Error(await page.textContent('#status'));
  return page.evaluate(() => window.kdlens.lastResult);
}

/** The page's report against `kdlens explain` on the same file with `args` (scan options). */
async function assertSameAsCli(page, result, path, args) {
  const layer = await page.inputValue('#layer');
  const native = await nativeExplain(path, MODEL, ['--seed', '0', '--layer', layer, ...args]);
  assertSameReport(result, native);
}

/** `CENTER,WIDTH` of a `[black, white]` window, as the CLI's `--window` takes it. */
function windowText([black, white]) {
  return `${(black + white) / 2 + 0.5},${white - black + 1}`;
}

describe('scans in the page (CPU)', () => {
  let session, server, page, logs;
  before(async () => {
    session = await pageSession();
    ({ server, page, logs } = session);
  });
  after(() => session?.close());

  test('a DICOM CT: its stored window, a preset, the sliders and a drag on the image, each as the CLI explains it', async () => {
    const { path, bytes } = await scan('CT_small.dcm');
    const { result } = await explainDropped(page, bytes, 'CT_small.dcm');
    assert.deepEqual(
      { format: result.image.scan.format, modality: result.image.scan.modality, size: result.image.scan.size, source: result.image.scan.window_source },
      { format: 'dicom', modality: 'CT', size: [128, 128], source: 'full' }, // CT_small states no window
    );
    assert.deepEqual(result.image.scan.value_range, [-896, 1167], 'pydicom: apply_modality_lut(...).min(), .max()');
    assert.equal(await page.isVisible('#scan-controls'), true);
    assert.match(await page.textContent('#scan-facts'), /DICOM · CT · 128 × 128 pixels · window .* HU \(full\)/);
    assert.equal(await page.isVisible('#scan-slice-label'), false, 'no slice control for a single DICOM frame');
    await assertSameAsCli(page, result, path, []);

    const bone = await explainedWith(page, () => page.selectOption('#scan-window', 'bone'), { window_source: 'bone' });
    assert.deepEqual(bone.image.scan.window, [-800, 1999], 'bone: centre 600, width 2800, as DICOM\'s linear window');
    await assertSameAsCli(page, bone, path, ['--window', 'bone']);

    // The keyboard on the width slider: End is the widest window.
    await page.focus('#scan-width');
    const widest = await explainedWith(page, () => page.keyboard.press('End'), { window_source: 'manual' });
    const [black, white] = widest.image.scan.window;
    assert.ok(white - black + 1 > 2 * (1167 + 896), `the widest window spans twice the values: ${widest.image.scan.window}`);
    await assertSameAsCli(page, widest, path, [`--window=${windowText(widest.image.scan.window)}`]);

    // A drag on the image sets the window and does not open the file picker.
    let pickerOpened = false;
    page.on('filechooser', () => { pickerOpened = true; });
    await page.locator('#drop-zone').scrollIntoViewIfNeeded();
    const box = await page.locator('#drop-zone').boundingBox();
    const x = box.x + box.width / 2, y = box.y + box.height / 2;
    const previous = widest.image.scan.window;
    await page.mouse.move(x, y);
    await page.mouse.down();
    await page.mouse.move(x - box.width / 4, y - box.height / 8, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction((previous) => JSON.stringify(window.kdlens.lastReport.image.scan.window) !== JSON.stringify(previous) && document.body.dataset.state === 'done', previous, { timeout: 180_000 });
    const dragged = await page.evaluate(() => window.kdlens.lastResult);
    assert.equal(dragged.image.scan.window_source, 'manual');
    const widthBefore = previous[1] - previous[0], widthAfter = dragged.image.scan.window[1] - dragged.image.scan.window[0];
    const centreBefore = previous[0] + previous[1], centreAfter = dragged.image.scan.window[0] + dragged.image.scan.window[1];
    assert.ok(widthAfter < widthBefore, `dragging left narrows the window: ${widthBefore} → ${widthAfter}`);
    assert.ok(centreAfter > centreBefore, `dragging up raises its centre: ${previous} → ${dragged.image.scan.window}`);
    assert.ok(!pickerOpened, 'a drag does not open the file picker');
    await assertSameAsCli(page, dragged, path, [`--window=${windowText(dragged.image.scan.window)}`]);
  });

  test('a 4-D NIfTI volume: volume, plane and slice chosen in the page, as the CLI shows them', async () => {
    const { path, bytes } = await scan('example4d.nii.gz');
    const { result } = await explainDropped(page, bytes, 'example4d.nii.gz');
    const facts = result.image.scan;
    // nibabel: 128 × 96 × 24 voxels, 2 volumes; the middle axial slice of the second volume.
    assert.deepEqual([facts.format, facts.plane, facts.slice, facts.slices, facts.frame, facts.frames, facts.window_source], ['nifti', 'axial', 12, 24, 1, 2, 'percentiles']);
    assert.match(await page.textContent('#scan-facts'), /NIfTI · 128 × 96 pixels · volume 2 of 2 · axial slice 13 of 24/);
    await assertSameAsCli(page, result, path, []);

    const coronal = await explainedWith(page, () => page.selectOption('#scan-plane', 'coronal'), { plane: 'coronal', slice: 48 });
    assert.deepEqual(coronal.image.scan.size, [24, 128]);
    await page.focus('#scan-slice');
    await page.keyboard.press('Home');
    const third = await explainedWith(page, async () => {
      for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
    }, { plane: 'coronal', slice: 3 });
    await assertSameAsCli(page, third, path, ['--plane', 'coronal', '--slice', '3']);

    await page.focus('#scan-frame');
    const first = await explainedWith(page, () => page.keyboard.press('Home'), { frame: 0, slice: 3 });
    await assertSameAsCli(page, first, path, ['--plane', 'coronal', '--slice', '3', '--frame', '0']);
  });

  test('JPEG 2000 DICOM (lossless MR, lossy CT) decodes in the page as in the CLI', async () => {
    for (const name of ['MR_small_jp2klossless.dcm', '693_J2KI.dcm']) {
      const { path, bytes } = await scan(name);
      const { result } = await explainDropped(page, bytes, name);
      assert.equal(result.image.scan.format, 'dicom', name);
      await assertSameAsCli(page, result, path, []);
    }
  });

  test('a model that records scan options: the page applies them unless the user chooses, as the CLI does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kdlens-recorded-'));
    const bundle = join(dir, 'bone.kdlens');
    const original = await readFile(MODEL);
    await writeFile(bundle, rewriteBundle(original, (m) => {
      m.name = 'trained on bone windows';
      m.preprocessing.scan = { window: 'bone', frame: null, plane: 'axial', slice: null };
    }));
    await dropFile(page, '#model-drop', await readFile(bundle), 'bone.kdlens', 'application/octet-stream');
    await page.waitForFunction(() => document.querySelector('#model-badge').textContent.includes('bone windows'), null, { timeout: 60_000 });
    try {
      const { path, bytes } = await scan('CT_small.dcm');
      const { result } = await explainDropped(page, bytes, 'CT_small.dcm');
      assert.equal(result.image.scan.window_source, 'bone', 'the recorded window');
      assert.equal(await page.inputValue('#scan-window'), 'bone');
      const layer = await page.inputValue('#layer');
      assertSameReport(result, await nativeExplain(path, bundle, ['--seed', '0', '--layer', layer]));
      const full = await explainedWith(page, () => page.selectOption('#scan-window', 'full'), { window_source: 'full' });
      assertSameReport(full, await nativeExplain(path, bundle, ['--seed', '0', '--layer', layer, '--window', 'full']));
    } finally {
      await dropFile(page, '#model-drop', original, 'model.kdlens', 'application/octet-stream');
      await page.waitForFunction(() => !document.querySelector('#model-badge').textContent.includes('bone windows'), null, { timeout: 60_000 });
    }
  });

  test('unreadable and unsupported scans get a message that names the file and the problem', async () => {
    const shown = await page.evaluate(() => window.kdlens.lastResult.probabilities);
    // A gzip bomb (a header claiming 1024³ voxels, 64 MiB of zeros in 64 kB), saved for the
    // fuzz regressions behind the harness's option byte: refused before the wasm heap grows.
    const bomb = await readFile(join(ROOT, 'crate/kdlens/fuzz/regressions/scan_decode/bomb.nii.gz'));
    const cases = [
      [(await scan('SC_rgb_jls_lossy_line.dcm')).bytes, 'SC_rgb_jls_lossy_line.dcm', /colour JPEG-LS is not supported/],
      [bomb.subarray(1), 'bomb.nii.gz', /bomb\.nii\.gz could not be read: .*claims 1073741824 voxels/],
      [(await scan('anatomical.nii')).bytes.subarray(0, 1000), 'cut.nii', /cut\.nii could not be read: the file holds fewer voxels than its header claims/],
      [(await scan('CT_small.dcm')).bytes.subarray(0, 2000), 'cut.dcm', /cut\.dcm could not be read/],
    ];
    for (const [bytes, name, message] of cases) {
      await dropFile(page, '#drop-zone', bytes, name, 'application/dicom');
      // The last error shown, not the status line: the re-explanation that the previous test's
      // model swap started may finish meanwhile and write its own status over the error.
      await page.waitForFunction((name) => (document.body.dataset.lastError || '').includes(name), name, { timeout: 60_000 });
      const status = await page.evaluate(() => document.body.dataset.lastError);
      assert.match(status, message, status);
      assert.deepEqual(await page.evaluate(() => window.kdlens.lastResult.probabilities), shown, 'the previous result stays');
    }
  });

  test('no patient data in what the page shows, logs or saves', async () => {
    const values = JSON.parse(await readFile(join(PATIENTS, 'identifying.json'), 'utf8'));
    // Real headers too: CT_small.dcm names its patient and institution.
    values['CT_small.dcm'] = ['CompressedSamples^CT1', 'JFK IMAGING CENTER'];
    // Each value, and each part of a person's name, searched for in lower case: as a substring
    // when it has letters, as a whole token when it is all digits (dates, weights), which a
    // report's numbers could otherwise contain by chance.
    const needles = (value) => [value, ...value.split('^').filter((part) => part.length >= 4)]
      .map((n) => n.toLowerCase());
    const tokens = (text) => new Set(text.toLowerCase().split(/[^a-z0-9.^+_]+/).filter(Boolean));
    const found = (needle, text, words) => (/[a-z]/.test(needle) ? text.includes(needle) : words.has(needle));
    const search = (name, searched, outputs) => {
      const text = outputs.join('\n').toLowerCase();
      const words = tokens(text);
      for (const value of searched) {
        for (const needle of needles(value)) assert.ok(!found(needle, text, words), `${needle} (from ${name}) reached the page or its exports`);
      }
    };
    for (const [name, searched] of Object.entries(values)) {
      const { bytes } = name === 'CT_small.dcm'
        ? await scan(name)
        : await input(PATIENTS, name, 'the write_patient_files test of patient_data.rs');
      const inputText = bytes.toString('latin1').toLowerCase();
      for (const value of searched) assert.ok(inputText.includes(value.toLowerCase()), `${value} is in ${name}`);
      const { result } = await explainDropped(page, bytes, name);
      assert.ok(result.image.scan, `${name} was read as a scan`);
      const saved = [];
      for (const button of ['#save-png', '#save-json']) {
        const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
        saved.push(download.suggestedFilename(), (await readFile(await download.path())).toString('latin1'));
      }
      const shown = await page.evaluate(() => document.documentElement.outerHTML + document.body.innerText);
      search(name, searched, [shown, logs.join('\n'), ...saved]);
      // The same file cut short: its error message says what is wrong and nothing it holds.
      await dropFile(page, '#drop-zone', bytes.subarray(0, 700), 'cut-short.dcm', 'application/dicom');
      await page.waitForFunction(() => document.querySelector('#status').textContent.includes('cut-short.dcm'), null, { timeout: 60_000 });
      search(name, searched, [await page.textContent('#status'), logs.join('\n')]);
    }
    const stored = await page.evaluate(async () => ({
      local: localStorage.length,
      session: sessionStorage.length,
      caches: await caches.keys(),
      databases: (await indexedDB.databases()).length,
    }));
    // The service worker's copy of the page's own files is the only cache.
    assert.deepEqual(stored, { local: 0, session: 0, caches: ['kdlens-page'], databases: 0 });
    assertOnlyPageFiles(await keptFiles(page), server.url);
  });
});
