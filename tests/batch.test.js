// "Many images" in real Chromium: a folder with class sub-folders (true labels), several dropped
// files, the table against the native CLI, accuracy and confusion matrix, CSV and JSON, cancel.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile, mkdtemp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { pageSession, testImage, nativeExplain, artifactsDir, WWW } from './helpers.js';

const MODEL = join(WWW, 'model', 'model.kdlens');
const SAMPLES = join(WWW, 'model', 'samples');

/** Waits for the batch to end (`done` or `cancelled`); returns that state. */
async function batchEnded(page) {
  await page.waitForFunction(() => ['done', 'cancelled'].includes(document.body.dataset.batch), null, { timeout: 300_000 });
  return page.evaluate(() => document.body.dataset.batch);
}

async function saved(page, button) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return { name: download.suggestedFilename(), text: (await readFile(await download.path())).toString('utf8') };
}

/** A CSV line's fields (quoted fields may hold commas and doubled quotes). */
function csvFields(line) {
  const fields = [];
  const pattern = /("(?:[^"]|"")*"|[^,]*)(,|$)/g;
  for (const match of line.matchAll(pattern)) {
    fields.push(match[1].startsWith('"') ? match[1].slice(1, -1).replaceAll('""', '"') : match[1]);
    if (match[2] === '') break;
  }
  return fields;
}

describe('many images (CPU)', () => {
  let session, page, folder;
  before(async () => {
    // root/<class>/<image>: four real samples under their classes' folders, a synthetic image
    // filed under a class, one image outside any class folder, and a broken file.
    folder = join(await mkdtemp(join(tmpdir(), 'kdlens-batch-')), 'images');
    const files = {
      'bag/bag.png': await readFile(join(SAMPLES, 'bag.png')),
      'sandal/sandal.png': await readFile(join(SAMPLES, 'sandal.png')),
      'sneaker/sneaker.png': await readFile(join(SAMPLES, 'sneaker.png')),
      't-shirt-top/t-shirt-top.png': await readFile(join(SAMPLES, 't-shirt-top.png')),
      'sandal/blob, "quoted".png': testImage(56, 3),
      'unsorted.png': testImage(40, 1),
      'bag/broken.png': Buffer.from('not an image at all'),
    };
    for (const [path, bytes] of Object.entries(files)) {
      await mkdir(join(folder, path, '..'), { recursive: true });
      await writeFile(join(folder, path), bytes);
    }
    session = await pageSession();
    ({ page } = session);
  });
  after(() => session?.close());

  test('a folder with class sub-folders: predictions as the CLI makes them, accuracy, confusion matrix, CSV and JSON', async () => {
    await page.setInputFiles('#batch-folder', folder);
    assert.equal(await batchEnded(page), 'done');
    assert.equal(await page.locator('#batch-rows tr').count(), 7);
    const json = JSON.parse((await saved(page, '#batch-save-json')).text);
    const classes = json.classes;
    const byFile = Object.fromEntries(json.images.map((r) => [r.file, r]));
    assert.deepEqual(Object.keys(byFile).sort(), [
      'images/bag/bag.png', 'images/bag/broken.png', 'images/sandal/blob, "quoted".png', 'images/sandal/sandal.png',
      'images/sneaker/sneaker.png', 'images/t-shirt-top/t-shirt-top.png', 'images/unsorted.png',
    ]);
    // True labels from the folders; none for a file outside a class folder.
    assert.equal(byFile['images/t-shirt-top/t-shirt-top.png'].true_class, classes.find((c) => c.toLowerCase().startsWith('t-shirt')));
    assert.equal(byFile['images/unsorted.png'].true_class, null);
    assert.match(byFile['images/bag/broken.png'].error, /broken\.png/);
    // Every readable image classified as `kdlens explain` classifies it.
    for (const row of json.images.filter((r) => !r.error)) {
      const native = await nativeExplain(join(folder, '..', row.file), MODEL);
      assert.equal(row.predicted_class, classes[native.predicted], row.file);
      const d = row.probabilities.reduce((m, p, k) => Math.max(m, Math.abs(p - native.probabilities[k])), 0);
      assert.ok(d <= 1e-4, `${row.file}: probabilities differ by ${d}`);
    }
    // Accuracy and confusion matrix over the five labelled, readable images.
    const labelled = json.images.filter((r) => !r.error && r.true_class !== null);
    const correct = labelled.filter((r) => r.true_class === r.predicted_class).length;
    assert.equal(json.labelled, 5);
    assert.equal(json.correct, correct);
    assert.equal(json.accuracy, correct / 5);
    for (const r of labelled) assert.ok(json.confusion[classes.indexOf(r.true_class)][classes.indexOf(r.predicted_class)] >= 1);
    assert.equal(json.confusion.flat().reduce((a, b) => a + b, 0), 5);
    assert.match(await page.textContent('#batch-summary'), new RegExp(`accuracy ${(100 * correct / 5).toFixed(1)} % \\(${correct} of 5 labelled\\)`));
    assert.match(await page.textContent('#batch-summary'), /1 could not be read/);
    assert.equal(await page.locator('#batch-confusion tr').count(), classes.length + 1);
    // The CSV holds the same table.
    const csv = await saved(page, '#batch-save-csv');
    const lines = csv.text.trim().split('\n').map(csvFields);
    assert.deepEqual(lines[0].slice(0, 4), ['file', 'true_class', 'predicted_class', 'probability']);
    assert.equal(lines.length, 8);
    for (const fields of lines.slice(1)) {
      const row = byFile[fields[0]];
      assert.ok(row, `CSV row ${fields[0]}`);
      assert.equal(fields[2], row.predicted_class ?? '');
      if (!row.error) assert.ok(Math.abs(Number(fields[3]) - row.probability) < 1e-6);
    }
    await page.locator('section.batch').screenshot({ path: join(await artifactsDir(), 'batch.png') });
    // A row's file name explains that image in the main view.
    await page.getByRole('button', { name: 'images/sneaker/sneaker.png' }).click();
    await page.waitForFunction(() => window.kdlens.lastImage === 'sneaker.png' && document.body.dataset.state === 'done', null, { timeout: 120_000 });
    const report = await page.evaluate(() => window.kdlens.lastResult);
    assert.equal(classes[report.predicted], byFile['images/sneaker/sneaker.png'].predicted_class);
  });

  test('several files dropped on the image box become a batch; a long batch can be cancelled', async () => {
    const bytes = [testImage(48, 1), testImage(60, 2), testImage(72, 3)];
    await page.evaluate((images) => {
      const transfer = new DataTransfer();
      images.forEach((data, k) => transfer.items.add(new File([new Uint8Array(data)], `dropped${k}.png`, { type: 'image/png' })));
      const zone = document.querySelector('#drop-zone');
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }, bytes.map((b) => [...b]));
    assert.equal(await batchEnded(page), 'done');
    assert.deepEqual(await page.locator('#batch-rows td button').allTextContents(), ['dropped0.png', 'dropped1.png', 'dropped2.png']);
    assert.match(await page.textContent('#batch-summary'), /3 of 3 images · no true labels/);

    const many = Array.from({ length: 40 }, (_, k) => ({ name: `copy${String(k).padStart(2, '0')}.png`, mimeType: 'image/png', buffer: testImage(64, k) }));
    await page.setInputFiles('#batch-files', many);
    await page.waitForFunction(() => Number(document.querySelector('#batch-progress').value) >= 2);
    await page.click('#batch-cancel');
    assert.equal(await batchEnded(page), 'cancelled');
    const rows = await page.locator('#batch-rows tr').count();
    assert.ok(rows >= 2 && rows < 40, `${rows} rows before the cancel took effect`);
    assert.match(await page.textContent('#batch-summary'), new RegExp(`${rows} of 40 images \\(cancelled\\)`));
  });
});
