// Every way an image gets into the page (file picker, paste, sample buttons, drop) with real
// encoded files of every format it accepts, each read as the native CLI reads it; and every
// drawing control, each changing what is drawn the way it should.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile, mkdtemp, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pageSession, png, testImage, explainDropped, nativeExplain, ROOT, WWW } from './helpers.js';
import { bmp, grayGif, withExifOrientation } from './encoders.js';

const MODEL = join(WWW, 'model', 'model.kdlens');

/** An asymmetric test pattern (a rotation or a flip changes it): RGB 0–255. */
function pattern(x, y) {
  const v = Math.round(30 + 180 * Math.exp(-((x - 20) ** 2 + (y - 12) ** 2) / 120)) & 255;
  return [v, (v + 2 * x) & 255, (255 - v + y) & 255];
}

/** Waits for the explanation of `name` (a new one, after `before` explanations). */
async function explainedAs(page, name, before) {
  await page.waitForFunction(({ name, before }) => (Number(document.body.dataset.explained || 0) > before && window.kdlens.lastImage === name) || document.body.dataset.state === 'error', { name, before }, { timeout: 300_000 });
  assert.notEqual(await page.evaluate(() => document.body.dataset.state), 'error', await page.textContent('#status'));
  return page.evaluate(() => window.kdlens.lastResult);
}

const explainedCount = (page) => page.evaluate(() => Number(document.body.dataset.explained || 0));

/** The overlay canvas's pixels: `{ alpha: Σ alpha, key: a fingerprint of the colours }`. */
function overlay(page) {
  return page.evaluate(() => {
    const c = document.querySelector('#cam-canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let alpha = 0, key = 0;
    for (let i = 0; i < d.length; i += 4) { alpha += d[i + 3]; key = (key * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) % 1_000_000_007; }
    return { alpha, key };
  });
}

function maxDiff(a, b) {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

describe('every way in and every control (CPU)', () => {
  let session, page, dir;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kdlens-inputs-'));
    session = await pageSession();
    ({ page } = session);
  });
  after(() => session?.close());

  test('file picker, paste, sample buttons and drop each explain their image', async () => {
    let n = await explainedCount(page);
    await page.setInputFiles('#file-input', { name: 'picked.png', mimeType: 'image/png', buffer: testImage(64, 1) });
    assert.equal((await explainedAs(page, 'picked.png', n)).image.name, 'picked.png');

    n = await explainedCount(page);
    await page.evaluate((data) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(data)], 'clipboard.png', { type: 'image/png' }));
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true }));
    }, [...testImage(56, 2)]);
    assert.equal((await explainedAs(page, 'pasted image', n)).image.width, 56);

    const { samples } = JSON.parse(await readFile(join(WWW, 'model', 'index.json'), 'utf8'));
    n = await explainedCount(page);
    await page.locator('#samples button').nth(1).click();
    const sample = await explainedAs(page, samples[1], n);
    const native = await nativeExplain(join(WWW, 'model', 'samples', samples[1]), MODEL);
    assert.ok(maxDiff(sample.probabilities, native.probabilities) <= 1e-4);

    const { result } = await explainDropped(page, testImage(72, 3), 'dropped.png');
    assert.equal(result.image.name, 'dropped.png');
  });

  test('JPEG (a real brain MRI), WebP, BMP, GIF, 16-bit PNG and an EXIF-rotated JPEG are read as the CLI reads them', async (t) => {
    const [w, h] = [40, 28];
    // JPEG and WebP from Chromium's own encoders, of the same pattern.
    const encoded = await page.evaluate(async ({ w, h, rgb }) => {
      const canvas = new OffscreenCanvas(w, h);
      const pixels = new Uint8ClampedArray(w * h * 4);
      rgb.forEach((v, i) => { pixels[4 * Math.floor(i / 3) + (i % 3)] = v; });
      for (let i = 3; i < pixels.length; i += 4) pixels[i] = 255;
      canvas.getContext('2d').putImageData(new ImageData(pixels, w, h), 0, 0);
      const bytes = async (type) => [...new Uint8Array(await (await canvas.convertToBlob({ type, quality: 0.92 })).arrayBuffer())];
      return { jpeg: await bytes('image/jpeg'), webp: await bytes('image/webp') };
    }, { w, h, rgb: Array.from({ length: w * h }, (_, i) => pattern(i % w, Math.floor(i / w))).flat() });
    const jpeg = Buffer.from(encoded.jpeg);
    const files = [
      ['pattern.jpg', jpeg, 'image/jpeg', 1e-3, [w, h]],
      ['pattern.webp', Buffer.from(encoded.webp), 'image/webp', 1e-3, [w, h]],
      ['pattern.bmp', bmp(w, h, pattern), 'image/bmp', 1e-4, [w, h]],
      ['pattern.gif', grayGif(w, h, (x, y) => pattern(x, y)[0]), 'image/gif', 1e-4, [w, h]],
      ['pattern16.png', png(w, h, pattern, 16), 'image/png', 1e-4, [w, h]],
      // Orientation 6: stored 40×28, shown rotated a quarter turn clockwise, 28×40.
      ['rotated.jpg', withExifOrientation(jpeg, 6), 'image/jpeg', 1e-3, [h, w]],
    ];
    const mri = join(ROOT, 'tests', '.cache', 'mri', 'glioma');
    if (existsSync(mri)) {
      const first = (await readdir(mri)).filter((f) => f.endsWith('.jpg')).sort()[0];
      files.push(['mri.jpg', await readFile(join(mri, first)), 'image/jpeg', 1e-3, null]);
    } else {
      assert.ok(!process.env.CI, 'the real MRI JPEGs are fetched in CI (pkg-scripts/fetch-test-images.sh)');
      t.diagnostic('no real MRI JPEG here: run pkg-scripts/fetch-test-images.sh');
    }
    for (const [name, bytes, type, tolerance, size] of files) {
      const path = join(dir, name);
      await writeFile(path, bytes);
      const n = await explainedCount(page);
      await page.setInputFiles('#file-input', { name, mimeType: type, buffer: bytes });
      const result = await explainedAs(page, name, n);
      const native = await nativeExplain(path, MODEL);
      assert.deepEqual([result.image.width, result.image.height], [native.image.width, native.image.height], `${name}: size`);
      if (size) assert.deepEqual([result.image.width, result.image.height], size, `${name}: shown upright`);
      const d = maxDiff(result.probabilities, native.probabilities);
      t.diagnostic(`${name}: probabilities differ from the CLI's by ${d.toExponential(1)}`);
      // JPEG: Chromium's and the image crate's decoders may round a level differently (measured
      // ≤ 6e-5 here); lossless formats agree to float rounding.
      assert.ok(d <= tolerance, `${name}: probabilities differ by ${d}`);
      assert.equal(result.predicted, native.predicted, `${name}: the same class`);
    }
  });

  test('every drawing control changes what is drawn as it should', async () => {
    await page.selectOption('#method', 'grad-cam');
    const { result } = await explainDropped(page, testImage(96, 4), 'controls.png');
    const n = await explainedCount(page);
    const viridis = await overlay(page);
    assert.ok(viridis.alpha > 0, 'an overlay is drawn');

    // Colours and opacity redraw the same report: no new explanation.
    await page.selectOption('#colormap', 'jet');
    await page.waitForFunction((key) => {
      const c = document.querySelector('#cam-canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let k = 0;
      for (let i = 0; i < d.length; i += 4) k = (k * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) % 1_000_000_007;
      return k !== key;
    }, viridis.key);
    const jet = await overlay(page);
    assert.equal(jet.alpha, viridis.alpha, 'jet changes the colours, not the opacity');
    const setOpacity = (v) => page.$eval('#opacity', (el, v) => { el.value = v; el.dispatchEvent(new Event('change')); }, v);
    await setOpacity('0');
    await page.waitForFunction(() => {
      const c = document.querySelector('#cam-canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return false;
      return true;
    });
    await setOpacity('1');
    await page.waitForFunction((before) => {
      const c = document.querySelector('#cam-canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let a = 0;
      for (let i = 3; i < d.length; i += 4) a += d[i];
      return a > before;
    }, jet.alpha);
    assert.equal(await explainedCount(page), n, 'redrawn, not re-explained');
    await page.selectOption('#colormap', 'viridis');
    await setOpacity('0.5');

    // Layer, class and score each ask the core for a different explanation.
    const layers = await page.$$eval('#layer option', (options) => options.map((o) => o.value));
    const other = layers.find((l) => l !== result.maps[0].layer);
    await page.selectOption('#layer', other);
    await page.waitForFunction((k) => Number(document.body.dataset.explained) > k && document.body.dataset.state === 'done', n);
    const byLayer = await page.evaluate(() => window.kdlens.lastResult);
    assert.equal(byLayer.maps[0].layer, other);
    assert.notDeepEqual(byLayer.maps[0].size, result.maps[0].size);
    const m = await explainedCount(page);
    const target = String((result.predicted + 1) % result.probabilities.length);
    await page.selectOption('#target', target);
    await page.waitForFunction((k) => Number(document.body.dataset.explained) > k && document.body.dataset.state === 'done', m);
    const byClass = await page.evaluate(() => window.kdlens.lastResult);
    assert.equal(byClass.class, Number(target));
    assert.equal(byClass.maps[0].class, Number(target));
    const k = await explainedCount(page);
    await page.selectOption('#score', 'probability');
    await page.waitForFunction((k) => Number(document.body.dataset.explained) > k && document.body.dataset.state === 'done', k);
    const byScore = await page.evaluate(() => window.kdlens.lastResult);
    assert.equal(byScore.request.score, 'probability');
    assert.ok(maxDiff(byScore.maps[0].values, byClass.maps[0].values) > 0, 'the probability\'s gradient draws another map');
    await page.selectOption('#score', 'logit');
    await page.selectOption('#target', '');
    await page.selectOption('#layer', result.maps[0].layer);
  });
});
