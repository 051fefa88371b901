// The page without a mouse, and an accessibility audit by axe-core (Deque's rule engine, from npm)
// of every state a user meets: ready, an explanation with its curves, the table of many images,
// the enlarged layer map.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pageSession, testImage, ROOT } from './helpers.js';

const AXE = join(ROOT, 'tests', 'node_modules', 'axe-core', 'axe.min.js');

/** The page's violations of impact `serious` or `critical`, one line each. */
async function seriousViolations(page) {
  if (!(await page.evaluate(() => 'axe' in window))) {
    // Served by the test server from its own origin, so the page's CSP (script-src 'self') allows it.
    await page.addScriptTag({ url: '/axe.min.js' });
  }
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`));
  return violations;
}

/** Presses Tab until `selector` has the focus (at most `limit` times): that it is reachable so. */
async function tabTo(page, selector, limit = 80) {
  for (let i = 0; i < limit; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return;
    await page.keyboard.press('Tab');
  }
  assert.fail(`${selector} cannot be reached with Tab`);
}

/** Runs `action` and waits for the explanation it starts; returns the new report. */
async function explained(page, action) {
  const before = Number(await page.evaluate(() => document.body.dataset.explained || 0));
  await action();
  await page.waitForFunction((n) => Number(document.body.dataset.explained || 0) > n && document.body.dataset.state !== 'busy', before, { timeout: 300_000 });
  return page.evaluate(() => window.kdlens.lastResult);
}

describe('keyboard and accessibility (CPU)', () => {
  let session, page;
  before(async () => {
    const axe = await readFile(AXE);
    session = await pageSession({ extra: async (path) => (path === '/axe.min.js' ? { body: axe, type: 'text/javascript' } : null) });
    ({ page } = session);
    // File choosers are intercepted only once Playwright has told Chromium to: a listener for
    // the page's life turns that on now, so that a key press never races it (an un-intercepted
    // chooser opens natively and no event comes).
    page.on('filechooser', () => {});
  });
  after(() => session?.close());

  test('the whole flow with the keyboard alone: open, explain, change the method, curves, enlarge, save', async () => {
    await page.bringToFront();
    await page.evaluate(() => document.activeElement?.blur());
    await tabTo(page, '#drop-zone');
    const first = await explained(page, async () => {
      const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')]);
      await chooser.setFiles({ name: 'keyboard.png', mimeType: 'image/png', buffer: testImage(72, 6) });
    });
    assert.equal(first.image.name, 'keyboard.png');
    assert.equal(first.maps[0].method, 'grad-cam');

    await tabTo(page, '#method');
    const second = await explained(page, () => page.keyboard.press('ArrowDown'));
    assert.equal(second.maps[0].method, 'grad-cam++', 'ArrowDown chose the next method');

    await tabTo(page, '#faithfulness');
    const third = await explained(page, () => page.keyboard.press('Space'));
    assert.equal(third.faithfulness.length, 1, 'Space switched the curves on');
    assert.ok(await page.isVisible('#faithfulness-figure'));

    await tabTo(page, '#layer-strip button');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#zoom').open);
    assert.deepEqual(await seriousViolations(page), [], 'the enlarged map');
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !document.querySelector('#zoom').open);

    await tabTo(page, '#save-json');
    const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
    const saved = JSON.parse((await readFile(await download.path())).toString('utf8'));
    assert.equal(saved.image.name, 'keyboard.png');
    assert.equal(saved.maps[0].method, 'grad-cam++');

    await tabTo(page, '#model-drop');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')]);
    assert.equal(chooser.isMultiple(), false);
  });

  test('axe-core finds no serious or critical violation, ready and with an explanation shown', async () => {
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    assert.deepEqual(await seriousViolations(page), [], 'the ready page');
    await page.check('#faithfulness');
    await explained(page, async () => {
      await page.setInputFiles('#file-input', { name: 'audit.png', mimeType: 'image/png', buffer: testImage(64, 2) });
    });
    assert.ok(await page.isVisible('#faithfulness-figure'), 'the curves are part of the audit');
    assert.deepEqual(await seriousViolations(page), [], 'an explanation with its curves');
    await page.setInputFiles('#batch-files', [1, 2].map((k) => ({ name: `audit${k}.png`, mimeType: 'image/png', buffer: testImage(48, k) })));
    await page.waitForFunction(() => document.body.dataset.batch === 'done', null, { timeout: 120_000 });
    assert.deepEqual(await seriousViolations(page), [], 'the table of many images');
    // The audit sees the page: an image without a text alternative is reported.
    await page.evaluate(() => document.querySelector('main').append(Object.assign(document.createElement('img'), { id: 'no-alt', src: 'model/samples/bag.png' })));
    const found = await seriousViolations(page);
    await page.evaluate(() => document.querySelector('#no-alt').remove());
    assert.ok(found.some((v) => v.includes('image-alt')), found.join('\n'));
  });
});
