// Shared plumbing of the browser tests: a static server for www/, Debian's Chromium driven by
// playwright-core, synthetic test files, and the native `kdlens` binary for parity checks.
import { createServer } from 'node:http';
import { readFile, mkdtemp, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, extname, resolve, dirname } from 'node:path';
import { tmpdir, homedir } from 'node:os';
import { deflateSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const WWW = join(ROOT, 'www');
export const ARTIFACTS = join(ROOT, 'tests', 'artifacts');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png',
  '.kdlens': 'application/octet-stream',
};

/**
 * Serves www/ under `prefix` (e.g. '/' or '/kdlens/') on a free loopback port. `extra(pathname)`
 * may answer other paths first with `{ body, type }` (the benchmarks serve ONNX Runtime this way).
 */
export async function serve(prefix = '/', extra = async () => null) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const answer = await extra(decodeURIComponent(url.pathname));
    if (answer) { res.writeHead(200, { 'content-type': answer.type }).end(answer.body); return; }
    if (!url.pathname.startsWith(prefix)) { res.writeHead(404).end(); return; }
    let path = decodeURIComponent(url.pathname.slice(prefix.length)) || 'index.html';
    if (path.endsWith('/')) path += 'index.html';
    const file = resolve(WWW, path);
    if (!file.startsWith(WWW)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  // Open keep-alive connections are cut, so that a closed server is gone for the page at once.
  const close = () => new Promise((r) => { server.close(r); server.closeAllConnections(); });
  return { url: `http://127.0.0.1:${port}${prefix}`, close };
}

const BASE_ARGS = [
  '--headless=new', '--no-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];

/** Debian's Chromium; `webgpu: true` gives it SwiftShader's WebGPU adapter, false none. */
export async function launch({ webgpu }) {
  const args = [...BASE_ARGS];
  if (webgpu) args.push('--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader');
  const dir = await mkdtemp(join(tmpdir(), 'kdlens-chromium-'));
  return chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    ignoreDefaultArgs: ['--headless'],
    args,
    acceptDownloads: true,
  });
}

/**
 * Opens the page and waits until the default model is loaded. Returns the page, every request
 * it made (`requests`), and its console and error output (`logs`).
 */
export async function openPage(context, url, { timeout = 180_000 } = {}) {
  const page = context.pages()[0] || (await context.newPage());
  const requests = [];
  const logs = [];
  // Network requests only (blob: and data: URLs never leave the browser), the service worker's
  // included: the context sees both the page's and its workers' requests.
  context.on('request', (r) => { if (/^(https?|wss?):/.test(r.url())) requests.push(r.url()); });
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  context.on('serviceworker', () => logs.push('[serviceworker] registered'));
  await page.goto(url);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== 'ready') {
    throw new Error(`page did not start: ${await page.textContent('#status')}\n${logs.join('\n')}`);
  }
  return { page, requests, logs };
}

/**
 * A served page in a fresh browser, ready: `{ server, context, page, requests, logs, close }`.
 * `close()` prints the page's logs when KDLENS_TEST_LOGS is set, then closes browser and server.
 */
export async function pageSession({ webgpu = false, prefix = '/', extra } = {}) {
  const server = await serve(prefix, extra);
  const context = await launch({ webgpu });
  const { page, requests, logs } = await openPage(context, server.url);
  const close = async () => {
    if (process.env.KDLENS_TEST_LOGS) console.log(logs.join('\n'));
    await context.close();
    await server.close();
  };
  return { server, context, page, requests, logs, close };
}

/** Drops a file on a drop target the way a user would (a DataTransfer with one File). */
export async function dropFile(page, selector, bytes, name, type) {
  await page.evaluate(async ({ selector, data, name, type }) => {
    const file = new File([new Uint8Array(data)], name, { type });
    const transfer = new DataTransfer();
    transfer.items.add(file);
    const target = document.querySelector(selector);
    target.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    target.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, { selector, data: [...bytes], name, type });
}

/** Drops an image and waits for its explanation; returns the result and the time taken. */
export async function explainDropped(page, bytes, name, { timeout = 300_000 } = {}) {
  const before = Number(await page.evaluate(() => document.body.dataset.explained || 0));
  const started = Date.now();
  await dropFile(page, '#drop-zone', bytes, name, 'image/png');
  // Wait for this file's result: a model swap may re-explain the previous image meanwhile.
  await page.waitForFunction(({ n, name }) => (Number(document.body.dataset.explained || 0) > n && window.kdlens.lastImage === name) || document.body.dataset.state === 'error', { n: before, name }, { timeout });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state === 'error') throw new Error(await page.textContent('#status'));
  return { result: await page.evaluate(() => window.kdlens.lastResult), ms: Date.now() - started };
}

// ---------------------------------------------------------------- synthetic files
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buffer) {
  let c = 0xffffffff;
  for (const b of buffer) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A valid RGB PNG of `width`×`height` whose pixels come from `pixel(x, y) → [r, g, b]`;
 * `depth` 8 or 16 bits per sample (16: each value v stored as v·257, big-endian). */
export function png(width, height, pixel, depth = 8) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = depth; header[9] = 2; // RGB
  const bytes = depth / 8;
  const stride = width * 3 * bytes + 1;
  const rows = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      pixel(x, y).forEach((v, c) => {
        const o = y * stride + 1 + (3 * x + c) * bytes;
        if (depth === 16) rows.writeUInt16BE(v * 257, o);
        else rows[o] = v;
      });
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A structured test image: a bright blob on a darker gradient. */
export function testImage(size = 96, seed = 0) {
  return png(size, size, (x, y) => {
    const dx = x - size * (0.3 + 0.1 * (seed % 5)), dy = y - size * 0.55;
    const blob = Math.exp(-(dx * dx + dy * dy) / (2 * (size * 0.15) ** 2));
    const v = Math.round(40 + 0.5 * (x + y) * 100 / size + 160 * blob) & 255;
    return [v, (v + 20 * seed) & 255, 255 - v];
  });
}

// ---------------------------------------------------------------- bundles
/** Rewrites a kdlens bundle's manifest (keeping its weights) and its trailing checksum. */
export function rewriteBundle(bytes, edit) {
  const view = Buffer.from(bytes);
  const manifestLength = view.readUInt32LE(12);
  const manifest = JSON.parse(view.subarray(16, 16 + manifestLength).toString('utf8'));
  edit(manifest);
  const newManifest = Buffer.from(JSON.stringify(manifest, null, 2));
  const rest = view.subarray(16 + manifestLength, view.length - 32);
  const head = Buffer.alloc(16);
  view.copy(head, 0, 0, 12);
  head.writeUInt32LE(newManifest.length, 12);
  const body = Buffer.concat([head, newManifest, rest]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

// ---------------------------------------------------------------- native kdlens
let smallTeacherPath = null;

/** A small DenseNet-121 teacher of the page model's task — Fashion-MNIST's classes, gray, 32²,
 * one epoch on 40 images — trained once per test file; its model file. */
export async function smallTeacher() {
  if (!smallTeacherPath) {
    const run = join(await mkdtemp(join(tmpdir(), 'kdlens-teacher-')), 'teacher');
    execFileSync(kdlensBinary(), ['--run-dir', run, 'train-teacher', '--data', 'fashion-mnist', '--limit-per-class', '4',
      '--test-limit-per-class', '2', '--image-size', '32', '--grayscale', '--epochs', '1', '--batch-size', '8', '--replicas', '1'], { stdio: 'pipe' });
    smallTeacherPath = join(run, 'teacher.kdlens');
  }
  return smallTeacherPath;
}

/** Path of the `kdlens` binary the Rust build produced. */
export function kdlensBinary() {
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache', 'kdlens-target');
  for (const profile of ['debug', 'release']) {
    const path = join(target, profile, 'kdlens');
    if (existsSync(path)) return path;
  }
  throw new Error(`no kdlens binary under ${target}; run cargo build -p kdlens-cli first`);
}

/** Runs `kdlens explain` natively on `imagePath` and returns its explanation.json. */
export async function nativeExplain(imagePath, modelPath, extraArgs = []) {
  const runDir = await mkdtemp(join(tmpdir(), 'kdlens-native-'));
  execFileSync(kdlensBinary(), ['--run-dir', runDir, 'explain', imagePath, '--model', modelPath, ...extraArgs], { stdio: 'pipe' });
  const stem = imagePath.split('/').pop().replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_-]/g, '_');
  return JSON.parse(await readFile(join(runDir, stem, 'explanation.json'), 'utf8'));
}

/**
 * Compares two reports field by field: the same keys everywhere, strings and booleans equal,
 * numbers within `tolerance` of each other relative to the largest magnitude of their array;
 * the fields in `free` (timings, backend) may differ in value but must exist in both.
 */
export function assertSameReport(a, b, path = 'report', free = new Set(['timings_ms', 'backend']), scale = 1) {
  const key = path.split('.').pop();
  if (free.has(key)) return;
  if (Array.isArray(a)) {
    assert.ok(Array.isArray(b) && a.length === b.length, `${path}: lengths ${a.length} and ${b?.length}`);
    const top = a.every((v) => typeof v === 'number') ? a.reduce((m, v) => Math.max(m, Math.abs(v)), 0) : 1;
    a.forEach((v, i) => assertSameReport(v, b[i], `${path}[${i}]`, free, top || 1));
  } else if (a !== null && typeof a === 'object') {
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort(), `${path}: keys`);
    for (const k of Object.keys(a)) assertSameReport(a[k], b[k], `${path}.${k}`, free);
  } else if (typeof a === 'number') {
    assert.ok(Math.abs(a - b) <= 1e-3 * Math.max(scale, Math.abs(a)), `${path}: ${a} vs ${b}`);
  } else {
    assert.equal(a, b, path);
  }
}

export async function artifactsDir() {
  await mkdir(ARTIFACTS, { recursive: true });
  return ARTIFACTS;
}

// ---------------------------------------------------------------- offline copy
/** The URLs the service worker keeps. */
export function keptFiles(page) {
  return page.evaluate(async () => (await (await caches.open('kdlens-page')).keys()).map((r) => r.url));
}

/** Asserts that `urls` are the page's own files under `base`: its page, scripts, WebAssembly,
 * default model and sample images, nothing else (no dropped image, result or user model). */
export function assertOnlyPageFiles(urls, base) {
  const own = /^(|index\.html|app\.js|audit\.js|batch\.js|chart\.js|worker\.js|style\.css|sw\.js|pkg\/kdlens_web(\.js|_bg\.wasm)|model\/(model|teacher)\.kdlens|model\/index\.json|model\/samples\/[a-z0-9_-]+\.png)$/;
  assert.ok(urls.length >= 10, `the page's files are kept: ${urls}`);
  for (const url of urls) {
    assert.ok(url.startsWith(base) && own.test(url.slice(base.length)), `kept: ${url}`);
  }
}
