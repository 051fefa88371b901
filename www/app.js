// kdlens page: user interface only. All computation happens in worker.js (WebAssembly); this
// file decodes ordinary images with the browser (DICOM and NIfTI scans with the core's decoder,
// in the worker), sends RGBA pixels to the worker and draws what comes back. Nothing here talks
// to the network after the page has loaded, except to fetch the model folder's teacher from this
// site when the user asks for it.

import { AuditView } from './audit.js';
import { Batch, droppedFiles, inputFiles, isBatchDrop } from './batch.js';
import { drawCurves } from './chart.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DISPLAY = 448;            // side of the image box, canvas pixels
const THUMB = 128;              // side of a layer thumbnail
const MAX_PIXELS = 50_000_000;  // larger images are refused with a message
const MAX_SIDE = 16_384;
const MAX_SCAN_BYTES = 512 * 1024 * 1024; // larger DICOM / NIfTI files are refused with a message
const OFFLINE_WAIT_MS = 20_000; // longest wait for the service worker to keep the page's files

const state = {
  worker: null,
  backend: null,
  modelBytes: null,
  model: null,
  image: null,        // { rgba: Uint8ClampedArray, width, height, bitmap, name, scan? }
                      // scan: { bytes, chosen, facts } — the file, the options the user changed
                      // (over the model's recorded ones) and what the core read and showed
  generation: 0,      // bumps with every new image
  busy: false,
  pending: false,
  result: null,
  explained: 0,
  nextId: 1,
  calls: new Map(),
  samples: [],
  teacher: null,      // { manifest, layers, bundleBytes, bytes } of a teacher shown beside the model
  offeredTeacher: null, // { file, bytes }: the teacher the model folder's index.json offers
  defaultClasses: null, // the default model's classes: the offered teacher is of those
  cancelled: false,   // the explanation in progress was cancelled (its worker replaced)
  restarting: null,   // the promise of that replacement, until the new worker has the model
  rescan: null,       // { explain, again } while a scan is re-decoded: the newest options win
  windowDrag: null,   // a window/level drag on the image in progress
};

// ---------------------------------------------------------------- worker plumbing
/** A request to the worker; `onProgress({ step, done, total })` hears how far it has come. */
function call(type, payload = {}, transfer = [], onProgress = null) {
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    state.calls.set(id, { resolve, reject, onProgress });
    state.worker.postMessage({ id, type, ...payload }, transfer);
  });
}

/**
 * `call`, asked again once when the worker was replaced meanwhile (a cancel, a lost GPU), which
 * drops the calls it had. `payload` is an object, or — for a call that hands pixels over — a
 * function of a fresh copy of `pixels`, which is transferred.
 */
async function callAgain(type, payload, pixels = null) {
  for (let attempt = 0; ; attempt++) {
    await state.restarting;
    const copy = pixels && pixels.slice();
    try {
      return await call(type, typeof payload === 'function' ? payload(copy) : payload, copy ? [copy.buffer] : []);
    } catch (error) {
      if (attempt > 0 || !/worker restarted/.test(error.message)) throw error;
    }
  }
}

function onWorkerMessage(event) {
  const { id, ok, result, error, progress } = event.data;
  const pending = state.calls.get(id);
  if (!pending) return;
  if (progress) {
    pending.onProgress?.(progress);
    return;
  }
  state.calls.delete(id);
  if (ok) pending.resolve(result);
  else pending.reject(new Error(error));
}

async function startWorker(backend, reason) {
  if (state.worker) state.worker.terminate();
  for (const { reject } of state.calls.values()) reject(new Error('worker restarted'));
  state.calls.clear();
  state.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  state.worker.onmessage = onWorkerMessage;
  state.worker.onerror = (event) => showError(`The compute worker failed: ${event.message || 'unknown error'}`);
  state.backend = await call('start', { backend, reason, hooks: params.has('test-hooks') });
  showBackend();
}

/** A wasm trap (a Rust panic, e.g. on a lost GPU device) leaves the module unusable. */
function isFatal(error) {
  return /unreachable|RuntimeError|panicked|device (was )?lost|Device lost|DeviceLost|device is poisoned|Device was destroyed/i.test(String(error && error.message));
}

async function chooseBackend() {
  if (params.get('backend') === 'cpu') return ['cpu', 'CPU chosen in the address (?backend=cpu)'];
  if (!('gpu' in navigator)) return ['cpu', 'this browser has no WebGPU; running on the CPU'];
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return ['cpu', 'no WebGPU adapter available; running on the CPU'];
  } catch (e) {
    return ['cpu', `WebGPU failed (${e.message}); running on the CPU`];
  }
  return ['webgpu', ''];
}

// ---------------------------------------------------------------- status and badges
function setState(value) {
  document.body.dataset.state = value;
}

function showStatus(text) {
  const status = $('status');
  status.textContent = text;
  status.classList.remove('error');
}

function showError(text) {
  const status = $('status');
  status.textContent = text;
  status.classList.add('error');
  document.body.dataset.lastError = text;
}

function showBackend() {
  const badge = $('backend-badge');
  const name = state.backend.name === 'webgpu' ? 'WebGPU' : 'CPU (WebAssembly)';
  const lost = state.backend.name === 'cpu' && /device was lost/.test(state.backend.reason);
  badge.textContent = `Running on ${name}${lost ? ' — the WebGPU device was lost' : ''}`;
  badge.title = state.backend.reason;
  badge.dataset.backend = state.backend.name;
}

// ---------------------------------------------------------------- model
async function loadModel(bytes, origin) {
  const info = await call('load', { bytes: bytes.slice(0) });
  state.modelBytes = bytes;
  state.model = info;
  state.result = null;
  buildModelUi(info, origin);
  return info;
}

function buildModelUi(info, origin) {
  const m = info.manifest;
  $('model-badge').textContent = `Model: ${m.name}`;
  $('model-badge').title = `weights sha256 ${m.weights.sha256}`;
  const layer = $('layer');
  layer.replaceChildren(...info.layers.map((l, i) => {
    const option = new Option(`${l.name} (${l.channels} ch, ${l.size[0]}×${l.size[1]})`, l.name);
    option.selected = i === info.layers.length - 1;
    return option;
  }));
  const target = $('target');
  target.replaceChildren(new Option('predicted', ''), ...m.classes.map((c, i) => new Option(c, String(i))));
  $('probabilities').replaceChildren();
  $('layer-strip').replaceChildren();
  const about = [
    ['name', m.name],
    ['architecture', m.spec.architecture.kind],
    ['classes', m.classes.join(', ')],
    ['input', `${m.spec.input_size[0]}×${m.spec.input_size[1]} ${m.preprocessing.color}, (v/255 − ${m.preprocessing.mean.join('/')}) / ${m.preprocessing.std.join('/')}`],
    ['parameters', m.weights.params.toLocaleString('en')],
    ['weights', `${m.weights.precision}, ${(info.bundleBytes / 1e6).toFixed(2)} MB, sha256 ${m.weights.sha256}`],
    ['test accuracy', m.metrics ? `${(100 * m.metrics.accuracy).toFixed(2)} % (macro F1 ${m.metrics.macro_avg.f1.toFixed(3)}, ${m.metrics.samples} images)` : 'not recorded'],
    ['scans shown as', m.preprocessing.scan ? describeScanOptions(m.preprocessing.scan) : 'the defaults (no scan options recorded)'],
    ['training data', m.provenance.dataset || 'not recorded'],
    ['data fingerprint', m.provenance.dataset_sha256 || 'not recorded'],
    ['seed', m.provenance.seed ?? 'not recorded'],
    ['created', `${m.provenance.created || 'unknown'} by kdlens ${m.provenance.kdlens_version}`],
    ['training config', m.training ? JSON.stringify(m.training) : 'not recorded'],
    ['loaded from', origin],
  ];
  $('about-list').replaceChildren(...about.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = String(v);
    return [dt, dd];
  }));
  $('disclaimer').textContent = [m.intended_use, m.provenance.dataset && `Trained on ${m.provenance.dataset.replace(/ from \/.*$/, '')}.`].filter(Boolean).join(' ');
}

// ---------------------------------------------------------------- images
/** Width and height from the file header, so that huge images are refused before decoding. */
function sniffSize(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ascii = (o, n) => String.fromCharCode(...bytes.subarray(o, o + n));
  if (bytes.length >= 24 && bytes[0] === 0x89 && ascii(1, 3) === 'PNG') return [v.getUint32(16), v.getUint32(20)];
  if (bytes.length >= 10 && ascii(0, 3) === 'GIF') return [v.getUint16(6, true), v.getUint16(8, true)];
  if (bytes.length >= 26 && ascii(0, 2) === 'BM') return [Math.abs(v.getInt32(18, true)), Math.abs(v.getInt32(22, true))];
  if (bytes.length >= 30 && ascii(0, 4) === 'RIFF' && ascii(8, 4) === 'WEBP') {
    const chunk = ascii(12, 4);
    if (chunk === 'VP8 ') return [v.getUint16(26, true) & 0x3fff, v.getUint16(28, true) & 0x3fff];
    if (chunk === 'VP8L') { const b = v.getUint32(21, true); return [(b & 0x3fff) + 1, ((b >> 14) & 0x3fff) + 1]; }
    if (chunk === 'VP8X') return [1 + (bytes[24] | bytes[25] << 8 | bytes[26] << 16), 1 + (bytes[27] | bytes[28] << 8 | bytes[29] << 16)];
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    let o = 2;
    while (o + 9 < bytes.length) {
      if (bytes[o] !== 0xff) { o++; continue; }
      const marker = bytes[o + 1];
      if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) return [v.getUint16(o + 7), v.getUint16(o + 5)];
      if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { o += 2; continue; }
      o += 2 + v.getUint16(o + 2);
    }
  }
  return null;
}

async function decodeImage(blob, name) {
  if (blob.size === 0) throw new Error(`${name} is empty (0 bytes)`);
  if (blob.size > MAX_SCAN_BYTES) {
    throw new Error(`${name} is ${(blob.size / 1e6).toFixed(0)} MB; this page reads files up to ${MAX_SCAN_BYTES / 1e6} MB`);
  }
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const size = sniffSize(bytes);
  if (!size) return decodeScan({ bytes, chosen: {} }, name);
  const [w, h] = size;
  if (w === 0 || h === 0) throw new Error(`${name} has no pixels (${w}×${h})`);
  if (w > MAX_SIDE || h > MAX_SIDE || w * h > MAX_PIXELS) {
    throw new Error(`${name} is ${w}×${h} pixels (${(w * h / 1e6).toFixed(0)} MP); this page accepts up to ${MAX_PIXELS / 1e6} MP and ${MAX_SIDE} pixels per side — please downscale it first`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes]), { imageOrientation: 'from-image' });
  } catch (e) {
    throw new Error(`${name} could not be decoded — the file is corrupt or truncated (${e.message})`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  return { rgba, width: bitmap.width, height: bitmap.height, bitmap, name };
}

// ---------------------------------------------------------------- scans (DICOM, NIfTI)
function describeScanOptions(options) {
  const parts = [`window ${options.window || 'auto'}`];
  if (options.frame != null) parts.push(`frame ${options.frame}`);
  if (options.plane) parts.push(`${options.plane} plane`);
  if (options.slice != null) parts.push(`slice ${options.slice}`);
  return parts.join(', ');
}

/**
 * Decodes a DICOM or NIfTI file in the worker with the core's decoder (the core tells the format
 * by its magic numbers): `scan` is `{ bytes, chosen }`, the user's choices, which the core puts
 * over the model's recorded options as the CLI's flags are (`ScanOptions::or_defaults_from`).
 * Errors name the file and the problem, never a header value (the core's messages quote none).
 */
async function decodeScan(scan, name) {
  const copy = scan.bytes.slice();
  let decoded;
  try {
    const recorded = state.model?.manifest.preprocessing.scan;
    decoded = await call('scan', { bytes: copy.buffer, chosen: scan.chosen, recorded }, [copy.buffer]);
  } catch (error) {
    if (/neither a DICOM nor a NIfTI/.test(error.message)) {
      throw new Error(`${name} is not an image this page can read (PNG, JPEG, BMP, WebP, GIF, DICOM, NIfTI)`);
    }
    throw new Error(`${name} could not be read: ${error.message}`);
  }
  const rgba = new Uint8ClampedArray(decoded.rgba.buffer);
  const bitmap = await createImageBitmap(new ImageData(rgba, decoded.width, decoded.height));
  return { rgba, width: decoded.width, height: decoded.height, bitmap, name, scan: { ...scan, facts: decoded.facts, options: decoded.options } };
}

function formatValue(v) {
  const magnitude = Math.abs(v);
  return magnitude >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toPrecision(3);
}

/** Centre and width (DICOM's linear window) of a `[black, white]` ramp. */
function centerWidth([black, white]) {
  return { center: (black + white) / 2 + 0.5, width: white - black + 1 };
}

/** The scan's facts, in words: what a viewer's corner text shows, minus everything identifying. */
function describeScan(facts) {
  const hu = facts.modality === 'CT' ? ' HU' : '';
  const parts = [facts.format === 'dicom' ? 'DICOM' : 'NIfTI'];
  if (facts.modality) parts.push(facts.modality);
  parts.push(`${facts.size[1]} × ${facts.size[0]} pixels`);
  if (facts.frames > 1) parts.push(`${facts.format === 'dicom' ? 'frame' : 'volume'} ${facts.frame + 1} of ${facts.frames}`);
  if (facts.plane) parts.push(`${facts.plane} slice ${facts.slice + 1} of ${facts.slices}`);
  if (facts.window) {
    const { center, width } = centerWidth(facts.window);
    parts.push(`window ${formatValue(center)} / ${formatValue(width)}${hu} (${facts.window_source})`);
  } else if (facts.window_source) {
    const named = { 'voi-lut': 'VOI LUT', sigmoid: 'window, through a sigmoid' };
    parts.push(`window from the file's ${named[facts.window_source] ?? facts.window_source}`);
  }
  if (facts.value_range) parts.push(`values ${formatValue(facts.value_range[0])} to ${formatValue(facts.value_range[1])}${hu}`);
  return parts.join(' · ');
}

/** Sets a slider's range and value — but not the value of the slider in use: a decode that
 * finishes while keys are held would otherwise move the thumb back to an older choice. Its label
 * shows frames and slices from 1. */
function setSlider(id, min, max, value, step = 'any') {
  const input = $(id);
  input.min = String(min);
  input.max = String(max);
  input.step = String(step);
  if (document.activeElement !== input) input.value = String(value);
  const shown = Number(input.value);
  const text = step === 1 ? `${shown + 1} of ${max + 1}` : formatValue(shown);
  $(`${id}-value`).textContent = text;
  input.setAttribute('aria-valuetext', text);
}

/** Shows the scan controls for the current image (hidden for ordinary images). */
function showScanControls() {
  const scan = state.image?.scan;
  $('scan-controls').hidden = !scan;
  document.body.dataset.scan = scan ? scan.facts.format : '';
  if (!scan) return;
  const { facts } = scan;
  $('scan-facts').textContent = describeScan(facts);
  const range = facts.value_range;
  $('scan-window-controls').hidden = !range;
  $('scan-drag-hint').hidden = !range;
  if (range) {
    const select = $('scan-window');
    // The named CT windows are in Hounsfield units: offered for CT only.
    for (const option of select.options) option.disabled = option.dataset.ct === '' && facts.modality !== 'CT';
    const named = [...select.options].some((o) => o.value === scan.options.window && !o.disabled);
    select.value = named ? scan.options.window : 'manual';
    // The sliders span the values and reach past them, and always include the window shown.
    const span = Math.max(range[1] - range[0], 1);
    const { center, width } = centerWidth(facts.window || range);
    setSlider('scan-center', Math.min(range[0] - span / 2, center), Math.max(range[1] + span / 2, center), center);
    setSlider('scan-width', 1, Math.max(2 * span + 1, width), width);
  }
  $('scan-frame-label').hidden = facts.frames <= 1;
  if (facts.frames > 1) setSlider('scan-frame', 0, facts.frames - 1, facts.frame, 1);
  const volume = facts.plane != null;
  $('scan-plane-label').hidden = !volume;
  $('scan-slice-label').hidden = !volume;
  if (volume) {
    $('scan-plane').value = facts.plane;
    setSlider('scan-slice', 0, facts.slices - 1, facts.slice, 1);
  }
}

/**
 * Re-decodes the current scan with the user's `change` to its options; draws it, and explains it
 * again when `explain` (a slider still moving only redraws). Requests made while one is decoding
 * are merged: the newest options win.
 */
async function rescan(change, explain) {
  if (!state.image?.scan) return;
  Object.assign(state.image.scan.chosen, change);
  if (state.rescan) {
    state.rescan.explain ||= explain;
    state.rescan.again = true;
    return;
  }
  const job = { explain, again: true };
  state.rescan = job;
  try {
    while (job.again) {
      job.again = false;
      const current = state.image;
      if (!current?.scan) break;
      // The same `chosen` object: changes made while this decodes are kept for the next round.
      const image = await decodeScan({ bytes: current.scan.bytes, chosen: current.scan.chosen }, current.name);
      // Another file opened meanwhile explains itself; a change made to it is decoded next round.
      if (state.image === current) showImage(image);
    }
  } catch (error) {
    showError(error.message);
  } finally {
    state.rescan = null;
  }
  // Outside the job: explaining takes a while, and changes made meanwhile start a new job
  // (explainCurrent merges the explanations they ask for).
  if (job.explain) await explainCurrent();
}

/** The manual window the centre and width sliders show, as the core's `CENTER,WIDTH` text. */
function sliderWindow() {
  return `${Number($('scan-center').value).toPrecision(6)},${Math.max(1, Number($('scan-width').value)).toPrecision(6)}`;
}

function wireScanControls() {
  $('scan-window').addEventListener('change', (e) => {
    rescan({ window: e.target.value === 'manual' ? sliderWindow() : e.target.value }, true);
  });
  for (const id of ['scan-center', 'scan-width']) {
    $(id).addEventListener('input', () => { $('scan-window').value = 'manual'; rescan({ window: sliderWindow() }, false); });
    $(id).addEventListener('change', () => rescan({ window: sliderWindow() }, true));
  }
  for (const [id, key] of [['scan-frame', 'frame'], ['scan-slice', 'slice']]) {
    $(id).addEventListener('input', (e) => rescan({ [key]: Number(e.target.value) }, false));
    $(id).addEventListener('change', (e) => rescan({ [key]: Number(e.target.value) }, true));
  }
  // A new plane starts at its middle slice.
  $('scan-plane').addEventListener('change', (e) => rescan({ plane: e.target.value, slice: null }, true));
  wireWindowDrag();
}

/**
 * Window/level by dragging on the image, as in a viewer: right widens the window, up raises its
 * centre, across the image's width or height one span of the scan's values. A drag does not
 * open the file picker; a click still does.
 */
function wireWindowDrag() {
  const zone = $('drop-zone');
  zone.addEventListener('pointerdown', (e) => {
    state.windowDrag = null;
    const facts = state.image?.scan?.facts;
    if (!facts?.value_range || e.button !== 0) return;
    const start = centerWidth(facts.window || facts.value_range);
    state.windowDrag = { x: e.clientX, y: e.clientY, start, moved: false, id: e.pointerId };
  });
  zone.addEventListener('pointermove', (e) => {
    const drag = state.windowDrag;
    if (!drag || drag.finished || e.pointerId !== drag.id || !state.image?.scan) return;
    if (!(e.buttons & 1)) { state.windowDrag = null; return; } // released outside the page
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    if (!drag.moved) zone.setPointerCapture(e.pointerId);
    drag.moved = true;
    const range = state.image.scan.facts.value_range;
    const span = Math.max(range[1] - range[0], 1);
    const box = zone.getBoundingClientRect();
    $('scan-center').value = String(drag.start.center - (dy / box.height) * span);
    $('scan-width').value = String(Math.max(1, drag.start.width + (dx / box.width) * span));
    $('scan-window').value = 'manual';
    rescan({ window: sliderWindow() }, false);
  });
  zone.addEventListener('pointerup', (e) => {
    const drag = state.windowDrag;
    if (!drag || drag.finished || e.pointerId !== drag.id) return;
    // A moved drag swallows the click that follows it; an unmoved one is a click.
    state.windowDrag = drag.moved ? { ...drag, finished: true } : null;
    if (drag.moved) rescan({ window: sliderWindow() }, true);
  });
  zone.addEventListener('pointercancel', () => { state.windowDrag = null; });
}

/** Whether a click on the image ends a window drag (and so must not open the file picker). */
function endsWindowDrag() {
  const finished = state.windowDrag?.finished;
  if (finished) state.windowDrag = null;
  return Boolean(finished);
}

function fit(width, height, box) {
  const scale = Math.min(box / width, box / height);
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  return { w, h, x: Math.floor((box - w) / 2), y: Math.floor((box - h) / 2) };
}

function drawImage(canvas, image, box) {
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  const f = fit(image.width, image.height, box);
  context.drawImage(image.bitmap, f.x, f.y, f.w, f.h);
  return f;
}

/** Makes `image` the current one and draws it (its explanation is still to come). */
function showImage(image) {
  if (state.image && state.image.bitmap) state.image.bitmap.close();
  state.image = image;
  state.generation++;
  drawImage($('image-canvas'), image, DISPLAY);
  $('cam-canvas').getContext('2d').clearRect(0, 0, DISPLAY, DISPLAY);
  showScanControls();
}

async function useImage(blob, name) {
  try {
    const image = await decodeImage(blob, name);
    showImage(image);
    await explainCurrent();
  } catch (error) {
    showError(error.message);
    if (document.body.dataset.state !== 'busy') setState(state.result ? 'done' : 'ready');
  }
}

// ---------------------------------------------------------------- explaining
/** The core's explanation request (`kdlens::explain::Request`) for the current controls. */
function currentRequest() {
  const target = $('target').value;
  return {
    methods: [$('method').value],
    layer: $('layer').value || null,
    target: target === '' ? 'predicted' : { class: Number(target) },
    score: $('score').value,
    shap: { samples: Number($('shap-samples').value) },
    // `{}`: the core's default plan (`kdlens::explain::FaithfulnessPlan`), as `kdlens explain --faithfulness`.
    faithfulness: $('faithfulness').checked ? {} : null,
  };
}

async function explainCurrent() {
  if (!state.image || !state.model) return;
  if (state.busy) {
    state.pending = true; // the newest request supersedes any older one still waiting
    return;
  }
  state.busy = true;
  setState('busy');
  const generation = state.generation;
  const image = state.image;
  showStatus(`Explaining ${image.name}…`);
  try {
    await state.restarting; // a cancelled explanation's worker is being replaced
    const rgba = image.rgba.slice();
    const request = currentRequest();
    const progress = request.methods.includes('shap') ? showProgress(`SHAP, ${request.shap.samples} samples`) : null;
    let result;
    try {
      result = await call('explain', { rgba: rgba.buffer, width: image.width, height: image.height, name: image.name, scan: image.scan?.facts, request, loseDevice: params.has('test-hooks') && window.kdlens.loseDeviceOnNextExplain }, [rgba.buffer], progress);
    } catch (error) {
      if (state.cancelled) throw error;
      if (!isFatal(error) || state.backend.name !== 'webgpu') throw error;
      window.kdlens.loseDeviceOnNextExplain = false;
      showStatus('The GPU device was lost; switching to the CPU and retrying…');
      await restartWorker('cpu', 'the WebGPU device was lost; switched to the CPU automatically');
      const again = image.rgba.slice();
      // The same request as the lost one, so that the teacher's below matches it; a control
      // changed meanwhile has set `state.pending` and is explained next.
      result = await call('explain', { rgba: again.buffer, width: image.width, height: image.height, name: image.name, scan: image.scan?.facts, request }, [again.buffer]);
    }
    if (params.has('test-hooks')) window.kdlens.loseDeviceOnNextExplain = false;
    let beside = null;
    const teacherModel = state.teacher;
    if (teacherModel && generation === state.generation) {
      const again = image.rgba.slice();
      // The teacher's map of the class the model's map shows, so that the two compare.
      const teacherRequest = { ...request, target: { class: result.class } };
      const teacher = await call('explainTeacher', { rgba: again.buffer, width: image.width, height: image.height, name: image.name, scan: image.scan?.facts, request: teacherRequest }, [again.buffer]);
      beside = { name: teacherModel.manifest.name, teacher, agreement: await call('agreement') };
    }
    if (generation === state.generation) {
      state.result = result;
      // Shown whole unless another image came in while it was drawn (that image is explained
      // next); a teacher removed or replaced meanwhile is not shown.
      if (await showResult(result)) {
        await showTeacher(state.teacher === teacherModel ? beside : null);
        state.explained++;
        document.body.dataset.explained = String(state.explained);
        setState('done');
      }
    }
  } catch (error) {
    if (state.cancelled) {
      clearResult();
      showStatus(`Cancelled: ${image.name} was not explained.`);
      setState('ready');
    } else {
      showError(`Could not explain ${image.name}: ${error.message}`);
      setState('error');
    }
  } finally {
    hideProgress();
    state.cancelled = false;
    state.busy = false;
    if (state.pending) {
      state.pending = false;
      await explainCurrent();
    }
  }
}

/** Shows the progress bar and its cancel button for a long explanation; returns the callback
 * that moves the bar. */
function showProgress(what) {
  const bar = $('explain-progress');
  bar.removeAttribute('value');
  $('explain-progress-label').textContent = what;
  $('explain-progress-row').hidden = false;
  $('cancel-explain').disabled = false;
  return ({ step, done, total }) => {
    window.kdlens.lastProgress = { step, done, total };
    bar.max = total;
    bar.value = done;
    $('explain-progress-label').textContent = `${what}: ${done} of ${total}`;
  };
}

function hideProgress() {
  $('explain-progress-row').hidden = true;
}

/** Stops the explanation in progress: the worker is replaced by a fresh one with the same
 * backend and model (a computation inside WebAssembly cannot be interrupted otherwise). */
async function cancelExplain() {
  if (!state.busy) return;
  state.cancelled = true;
  state.pending = false;
  $('cancel-explain').disabled = true;
  showStatus('Cancelling…');
  await restartWorker(state.backend.name, state.backend.reason);
}

/** Replaces the worker by a fresh one on `backend` holding the same model (and teacher); calls
 * made meanwhile wait for it (`state.restarting`). */
async function restartWorker(backend, reason) {
  state.restarting = (async () => {
    await startWorker(backend, reason);
    await reloadModels();
  })();
  try {
    await state.restarting;
  } finally {
    state.restarting = null;
  }
}

/** Takes down everything drawn from the last report (the fresh worker after a cancel holds
 * none, and what is shown must never be saved under another image's name). */
function clearResult() {
  state.result = null;
  window.kdlens.lastReport = null;
  $('probabilities').replaceChildren();
  $('layer-strip').replaceChildren();
  $('timings').textContent = '';
  $('faithfulness-figure').hidden = true;
  $('teacher-panel').hidden = true;
  $('ood-warning').hidden = true;
  $('cam-canvas').getContext('2d').clearRect(0, 0, DISPLAY, DISPLAY);
  $('save-png').disabled = true;
  $('save-json').disabled = true;
}

/** The worker's rendering of a view of the last report (`feature-map:K` or a method name) as
 * ImageData with the chosen colours and opacity (`kdlens::explain::Report::render`). */
function render(view, width, height, teacher = false) {
  return call('render', { view, colormap: $('colormap').value, opacity: Number($('opacity').value), width, height, teacher });
}

/** The method map the page shows: the report's first (and only) map. */
function shownMap(result) {
  return result.maps[0];
}

function describeMap(map) {
  const [h, w] = map.size;
  let best = 0;
  map.values.forEach((v, i) => { if (v > map.values[best]) best = i; });
  const row = Math.floor(best / w) / Math.max(1, h - 1);
  const col = (best % w) / Math.max(1, w - 1);
  const vertical = row < 0.34 ? 'top' : row > 0.66 ? 'bottom' : 'middle';
  const horizontal = col < 0.34 ? 'left' : col > 0.66 ? 'right' : 'centre';
  return `strongest evidence near the ${vertical} ${horizontal}`;
}

function methodLabel(method) {
  return $('method').querySelector(`option[value="${CSS.escape(method)}"]`)?.textContent || method;
}

/** Whether `result`, drawn on the image of `generation`, is still what the page shows: no other
 * image or report came in while its drawing awaited the worker. */
function stillShown(result, generation) {
  return state.result === result && state.generation === generation;
}

/** Draws the shown report's map over the image; false if another image or report came in
 * meanwhile (then nothing is drawn). */
async function drawCam() {
  const { result, generation, image } = state;
  const map = shownMap(result);
  const f = fit(image.width, image.height, DISPLAY);
  // Rendered before the canvas is touched: clearing first would show an empty overlay for the
  // worker's round trip (a flicker on every colour or opacity change).
  const overlay = await render(map.method, f.w, f.h);
  if (!stillShown(result, generation)) return false;
  const context = $('cam-canvas').getContext('2d');
  context.clearRect(0, 0, DISPLAY, DISPLAY);
  context.putImageData(overlay, f.x, f.y);
  const classes = state.model.manifest.classes;
  $('image-canvas').setAttribute('aria-label', `${image.name}, with the ${methodLabel(map.method)} map of class ${classes[map.class]} on ${map.layer}: ${describeMap(map)}`);
  return true;
}

/** The deletion and insertion curves (Petsiuk et al., 2018) of the shown map, as the report has
 * them: the class probability after removing (deletion) or revealing (insertion) the map's most
 * important pixels first, from 0 % to 100 % of the pixels; with their areas under the curve. */
function drawFaithfulness(result) {
  const figure = $('faithfulness-figure');
  const map = shownMap(result);
  const curves = (result.faithfulness || []).find((f) => f.method === map.method);
  figure.hidden = !curves;
  if (!curves) return;
  drawCurves($('faithfulness-chart'), [
    { values: curves.deletion.probabilities, className: 'deletion' },
    { values: curves.insertion.probabilities, className: 'insertion' },
  ]);
  const classes = state.model.manifest.classes;
  const ms = result.timings_ms.faithfulness;
  $('faithfulness-caption').textContent = `Probability of ${classes[curves.class]} as the ${methodLabel(map.method)} map's most important pixels are removed (solid: deletion, AUC ${curves.deletion.auc.toFixed(3)}, lower is more faithful) or revealed on a blurred copy (dashed: insertion, AUC ${curves.insertion.auc.toFixed(3)}, higher is more faithful)${ms === undefined ? '' : `; ${ms.toFixed(0)} ms`}.`;
}

/** The teacher's prediction and map beside the model's, and how they agree (the core's
 * `Agreement`); hides the panel when there is no teacher. */
async function showTeacher(beside) {
  const panel = $('teacher-panel');
  panel.hidden = !beside;
  window.kdlens.lastTeacher = beside && { report: plain(beside.teacher), agreement: beside.agreement };
  if (!beside) return;
  const { name, teacher, agreement } = beside;
  const classes = state.model.manifest.classes;
  const map = teacher.maps[0];
  await drawTeacherMap(map);
  const p = teacher.probabilities[teacher.predicted];
  const text = `${name}: ${classes[teacher.predicted]} (${(100 * p).toFixed(1)} %) · ${methodLabel(map.method)} of ${classes[map.class]} on ${map.layer}`;
  const canvas = $('teacher-canvas');
  $('teacher-caption').textContent = `Teacher — ${text}`;
  canvas.setAttribute('aria-label', `The teacher's map: ${text}, ${describeMap(map)}`);
  const maps = agreement.maps.map(([method, a]) => `${methodLabel(method)} maps: Spearman ρ ${a.spearman == null ? '—' : a.spearman.toFixed(2)}, top-10 % overlap ${a.top_iou == null ? '—' : a.top_iou.toFixed(2)}`);
  $('agreement').textContent = [
    agreement.same_prediction ? 'Same prediction' : 'Different predictions',
    `KL(teacher ‖ student) ${agreement.kl_divergence.toFixed(3)} nats`,
    ...maps,
  ].join(' · ');
}

/** The teacher's map over the image, in the chosen colours and opacity. */
async function drawTeacherMap(map) {
  const canvas = $('teacher-canvas');
  // Composed off screen and shown in one step after the wait: no flicker, and the image's
  // bitmap is read while it is surely open.
  const frame = new OffscreenCanvas(canvas.width, canvas.height);
  const f = drawImage(frame, state.image, canvas.width);
  const layer = new OffscreenCanvas(f.w, f.h);
  layer.getContext('2d').putImageData(await render(map.method, f.w, f.h, true), 0, 0);
  frame.getContext('2d').drawImage(layer, f.x, f.y);
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.drawImage(frame, 0, 0);
}

/** Loads the model (and the teacher, if any) into a freshly started worker. */
async function reloadModels() {
  await call('load', { bytes: state.modelBytes.slice(0) });
  if (state.teacher) await call('loadTeacher', { bytes: state.teacher.bytes.slice(0) });
}

/** Loads the teacher bundle that `readBytes()` gives (named `name` in messages) beside the model
 * and explains the current image again. */
async function useTeacher(readBytes, name) {
  try {
    const bytes = await readBytes();
    await state.restarting; // a worker being replaced first gets its model back
    const info = await call('loadTeacher', { bytes: bytes.slice(0) });
    state.teacher = { ...info, bytes };
    $('teacher-remove').hidden = false;
    updateTeacherOffer();
    showStatus(`Teacher ${info.manifest.name} loaded from ${name}: it is shown beside the model.`);
    if (state.image) await explainCurrent();
  } catch (error) {
    showError(`${name} was not loaded as the teacher: ${error.message}`);
  }
}

function useTeacherFile(file) {
  return useTeacher(async () => {
    if (file.size > MAX_MODEL_BYTES) {
      throw new Error(`it is ${(file.size / 1e6).toFixed(0)} MB; a kdlens model bundle is at most ${MAX_MODEL_BYTES / 1e6} MB`);
    }
    return file.arrayBuffer();
  }, file.name);
}

/** The teacher the page's model folder offers (`index.json`), fetched from this site: a model
 * comes in, nothing goes out. */
async function useOfferedTeacher() {
  const { file, bytes } = state.offeredTeacher;
  const path = `model/${file}`;
  const offer = $('teacher-offer');
  const bar = $('teacher-progress');
  offer.disabled = true; // one fetch at a time
  try {
    await useTeacher(async () => {
      bar.max = bytes;
      bar.value = 0;
      bar.hidden = false;
      let tenths = -1; // the status line (read out by screen readers) moves in tenths
      try {
        return await fetchWithProgress(path, bytes, (received, total) => {
          bar.max = total;
          bar.value = received;
          const now = Math.floor((10 * received) / total);
          if (now === tenths) return;
          tenths = now;
          showStatus(`Fetching ${path}: ${(received / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB…`);
        });
      } finally {
        bar.hidden = true; // the bytes are in (or failed); loading and explaining follow
      }
    }, path);
  } finally {
    offer.disabled = false;
  }
}

/** The bytes at `path` (an ArrayBuffer), calling `progress(received, total)` as they arrive:
 * `total` is the `expected` byte count (`index.json`'s; the response's own length may count
 * compressed bytes), or what came if more did. */
async function fetchWithProgress(path, expected, progress) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`it could not be fetched (HTTP ${response.status})`);
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  progress(received, expected);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      received += value.length;
      progress(received, Math.max(expected, received));
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    throw error;
  }
  const whole = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    whole.set(chunk, at);
    at += chunk.length;
  }
  return whole.buffer;
}

/** Shows the offer of the model folder's teacher while no teacher is loaded and the model is
 * of the default model's classes (the offered teacher's task). */
function updateTeacherOffer() {
  const sameTask = state.model && state.defaultClasses
    && state.model.manifest.classes.join('\n') === state.defaultClasses.join('\n');
  $('teacher-offer').hidden = !state.offeredTeacher || Boolean(state.teacher) || !sameTask;
}

async function removeTeacher() {
  state.teacher = null; // an explanation under way no longer asks for it
  $('teacher-remove').hidden = true;
  updateTeacherOffer();
  await showTeacher(null);
  await call('removeTeacher');
  showStatus('Teacher removed.');
}

function showOod(result) {
  const warning = $('ood-warning');
  const verdict = result.in_distribution;
  warning.hidden = !verdict || verdict.in_distribution;
  warning.textContent = verdict && !verdict.in_distribution
    ? `This image does not look like the images the model was trained on (${verdict.score > verdict.threshold ? 'its features are far from every training class' : 'no class stands out as it does for training images'}): its prediction and maps are not to be trusted.`
    : '';
  document.body.dataset.inDistribution = verdict ? String(verdict.in_distribution) : 'unknown';
}

async function showResult(result) {
  const classes = state.model.manifest.classes;
  const order = classes.map((_, i) => i).sort((a, b) => result.probabilities[b] - result.probabilities[a]);
  $('probabilities').replaceChildren(...order.map((i) => {
    const li = document.createElement('li');
    li.className = i === result.predicted ? 'top' : '';
    const p = result.probabilities[i];
    const label = document.createElement('span');
    label.textContent = classes[i];
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('role', 'img');
    bar.setAttribute('aria-label', `${classes[i]}: ${(100 * p).toFixed(1)} percent`);
    const fill = document.createElement('span');
    fill.style.width = `${(100 * p).toFixed(2)}%`;
    bar.append(fill);
    const value = document.createElement('span');
    value.textContent = `${(100 * p).toFixed(1)} %`;
    li.append(label, bar, value);
    return li;
  }));
  const t = result.timings_ms;
  const map = shownMap(result);
  const methodMs = t.cam ?? t[map.method] ?? 0;
  const background = state.model.manifest.shap_background;
  const against = map.method !== 'shap' ? '' : background
    ? ` against ${background.classes.length} training images`
    : ' against a black and a mid-gray image (this model carries no background set)';
  $('timings').textContent = `${classes[result.predicted]} · forward + feature maps ${t.forward.toFixed(1)} ms · ${methodLabel(map.method)}${against} ${methodMs.toFixed(1)} ms · total in the worker ${t.worker.toFixed(1)} ms on ${state.backend.name === 'webgpu' ? 'WebGPU' : 'CPU'}`;
  showOod(result);
  drawFaithfulness(result);
  if (!(await drawCam()) || !(await drawStrip(result))) return false;
  $('save-png').disabled = false;
  $('save-json').disabled = false;
  showStatus(`${result.image.name}: ${classes[result.predicted]} (${(100 * result.probabilities[result.predicted]).toFixed(1)} %). ${methodLabel(map.method)} of ${classes[map.class]} on ${map.layer}.`);
  window.kdlens.lastReport = result;
  // The report's own image: a newer image may have been dropped while this one was drawn.
  window.kdlens.lastImage = result.image.name;
  return true;
}

/** The report as plain JSON data (for saving and for tests): the maps' Float32Arrays as arrays. */
function plain(result) {
  return JSON.parse(JSON.stringify(result, (_, value) => (ArrayBuffer.isView(value) ? Array.from(value) : value)));
}

async function drawStrip(result) {
  const { generation, image } = state;
  const f = fit(image.width, image.height, THUMB);
  const items = [];
  for (let k = 0; k < result.feature_maps.length; k++) {
    const map = result.feature_maps[k];
    const canvas = document.createElement('canvas');
    canvas.width = THUMB;
    canvas.height = THUMB;
    drawImage(canvas, image, THUMB);
    const heat = await render(`feature-map:${k}`, f.w, f.h);
    if (!stillShown(result, generation)) return false;
    const layer = new OffscreenCanvas(f.w, f.h);
    layer.getContext('2d').putImageData(heat, 0, 0);
    canvas.getContext('2d').drawImage(layer, f.x, f.y);
    const button = document.createElement('button');
    button.type = 'button';
    const text = `${map.layer}: ${map.channels} channels at ${map.size[0]}×${map.size[1]}`;
    // The accessible name starts with the visible one (what a speech user says to press it).
    button.setAttribute('aria-label', `${k + 1}. ${map.layer}: enlarge the average feature map, ${map.channels} channels at ${map.size[0]}×${map.size[1]}`);
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `Average feature map of ${text}`);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = `${k + 1}. ${map.layer}`;
    button.append(canvas, name);
    button.addEventListener('click', () => zoom(k, text));
    const li = document.createElement('li');
    li.append(button);
    items.push(li);
  }
  $('layer-strip').replaceChildren(...items);
  return true;
}

async function zoom(index, text) {
  const canvas = $('zoom-canvas');
  const f = drawImage(canvas, state.image, DISPLAY);
  const layer = new OffscreenCanvas(f.w, f.h);
  layer.getContext('2d').putImageData(await render(`feature-map:${index}`, f.w, f.h), 0, 0);
  canvas.getContext('2d').drawImage(layer, f.x, f.y);
  $('zoom-title').textContent = text;
  canvas.setAttribute('aria-label', `Enlarged average feature map of ${text}`);
  $('zoom').showModal();
}

// ---------------------------------------------------------------- saving
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function baseName() {
  return (state.image ? state.image.name : 'image').replace(/\.[^.]+$/, '').replace(/[^\w-]+/g, '_');
}

async function saveOverlay() {
  const composite = document.createElement('canvas');
  composite.width = DISPLAY;
  composite.height = DISPLAY;
  const context = composite.getContext('2d');
  context.drawImage($('image-canvas'), 0, 0);
  context.drawImage($('cam-canvas'), 0, 0);
  const method = state.result ? shownMap(state.result).method : 'map';
  composite.toBlob((blob) => download(blob, `${baseName()}-${method.replace(/[^\w-]+/g, '_')}.png`), 'image/png');
}

/** Saves the report exactly as the core produced it: the schema `kdlens explain` writes. */
function saveJson() {
  download(new Blob([JSON.stringify(plain(state.result), null, 2)], { type: 'application/json' }), `${baseName()}-kdlens.json`);
}

// ---------------------------------------------------------------- wiring
/** Drop, click and Enter/Space on `element`: one file to `onFile`; several files or a folder to
 * `onMany` (`[{ file, path }]`) where given. */
function wireDropTarget(element, onFile, onOpen, onMany = null) {
  element.addEventListener('dragover', (e) => { e.preventDefault(); element.classList.add('dragging'); });
  element.addEventListener('dragleave', () => element.classList.remove('dragging'));
  element.addEventListener('drop', (e) => {
    e.preventDefault();
    element.classList.remove('dragging');
    if (onMany && isBatchDrop(e.dataTransfer)) {
      // The drop's entries are taken now, while the event lasts; the folders are walked after.
      droppedFiles(e.dataTransfer).then(onMany, (error) => showError(`Could not read the dropped folder: ${error.message}`));
      return;
    }
    const file = e.dataTransfer.files[0];
    if (file) onFile(file);
  });
  element.addEventListener('click', onOpen);
  element.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onOpen(); }
  });
}

const MAX_MODEL_BYTES = 512 * 1024 * 1024;

async function useModelFile(file) {
  try {
    if (file.size > MAX_MODEL_BYTES) {
      throw new Error(`it is ${(file.size / 1e6).toFixed(0)} MB; a kdlens model bundle is at most ${MAX_MODEL_BYTES / 1e6} MB`);
    }
    setState('busy');
    const bytes = await file.arrayBuffer();
    await loadModel(bytes, file.name);
    updateTeacherOffer();
    showStatus(`Model ${state.model.manifest.name} loaded from ${file.name}.`);
    if (state.teacher && state.teacher.manifest.classes.join('\n') !== state.model.manifest.classes.join('\n')) {
      await removeTeacher();
      showStatus(`Model ${state.model.manifest.name} loaded from ${file.name}; the teacher, of other classes, was removed.`);
    }
    setState('ready');
    // A scan is shown as the new model was trained to see scans, except what the user chose.
    if (state.image?.scan) await rescan({}, true);
    else if (state.image) await explainCurrent();
  } catch (error) {
    showError(`${file.name} was not loaded: ${error.message}. The previous model stays in use.`);
    setState(state.result ? 'done' : 'ready');
  }
}

/** What the page's model folder offers besides its model (`model/index.json`, written by
 * `kdlens demo`): sample images as buttons, and a teacher to fetch on request. */
async function loadIndex() {
  try {
    const response = await fetch('model/index.json');
    if (!response.ok) return;
    const { samples = [], teacher = null } = await response.json();
    // The demo names the teacher's file (beside index.json) and its exact size in bytes.
    if (teacher && !(typeof teacher.file === 'string' && !/[/\\]/.test(teacher.file) && Number.isSafeInteger(teacher.bytes) && teacher.bytes > 0)) {
      console.warn('model/index.json: the teacher needs a file name beside it and its size in bytes:', teacher);
    } else if (teacher) {
      state.offeredTeacher = teacher;
      $('teacher-offer').textContent = `Compare with the demo's teacher: fetch ${teacher.file} (${(teacher.bytes / 1e6).toFixed(1)} MB) from this site. Nothing is sent.`;
      updateTeacherOffer();
    }
    await loadSamples(samples);
  } catch (error) {
    console.warn('the model folder offers no samples or teacher:', error);
  }
}

/** A button for each sample image `names` of the model folder's `samples/`. */
async function loadSamples(names) {
  for (const name of names) {
    const blob = await (await fetch(`model/samples/${name}`)).blob();
    const button = document.createElement('button');
    button.type = 'button';
    const img = document.createElement('img');
    img.src = URL.createObjectURL(blob);
    img.alt = `sample: ${name}`;
    button.append(img);
    button.addEventListener('click', () => useImage(blob, name));
    $('samples').append(button);
  }
}

/** The "Many images" panel (batch.js) over the worker's `predict`. */
function wireBatch() {
  const ids = { panel: 'batch', body: 'batch-rows', cancel: 'batch-cancel', saveCsv: 'batch-save-csv', saveJson: 'batch-save-json', progress: 'batch-progress', progressLabel: 'batch-progress-label', count: 'batch-count', summary: 'batch-summary', confusion: 'batch-confusion' };
  const elements = Object.fromEntries(Object.entries(ids).map(([key, id]) => [key, $(id)]));
  const audit = new AuditView({
    toggle: $('batch-audit'), methods: $('batch-audit-methods'), panel: $('audit-results'), summary: $('audit-summary'),
    save: $('audit-save'), tables: $('audit-tables'), curves: $('audit-curves'),
  }, {
    call: callAgain,
    request: currentRequest,
    methods: [...$('method').options].map((o) => ({ value: o.value, label: o.textContent })),
    download,
  });
  const batch = new Batch(elements, {
    decode: decodeImage,
    predict: ({ rgba, width, height }) => callAgain('predict', (copy) => ({ rgba: copy.buffer, width, height }), rgba),
    audit,
    explain: (file, name) => { $('drop-zone').scrollIntoView({ block: 'nearest' }); return useImage(file, name); },
    model: () => state.model.manifest,
    download,
  });
  for (const [button, input] of [['batch-choose-files', 'batch-files'], ['batch-choose-folder', 'batch-folder']]) {
    $(button).addEventListener('click', () => $(input).click());
    $(input).addEventListener('change', (e) => {
      const files = inputFiles(e.target);
      e.target.value = '';
      if (files.length > 0 && state.model) batch.run(files);
    });
  }
  return batch;
}

/** Registers the service worker (sw.js) that keeps the page's own files for use offline, and
 * waits until it has them, so that no request follows the page's load. Where service workers are
 * unavailable or it cannot install, the page works as before, online only. */
async function keepForOffline() {
  if (!('serviceWorker' in navigator)) return;
  try {
    const registration = await navigator.serviceWorker.register('sw.js');
    const worker = registration.installing || registration.waiting || registration.active;
    const settled = () => worker.state === 'activated' || worker.state === 'redundant';
    if (worker && !settled()) {
      // A worker that stalls (e.g. on a full disk) must not keep the page from starting.
      await Promise.race([
        new Promise((resolve) => worker.addEventListener('statechange', () => { if (settled()) resolve(); })),
        new Promise((resolve) => setTimeout(resolve, OFFLINE_WAIT_MS)),
      ]);
    }
    $('offline-badge').hidden = worker?.state !== 'activated';
  } catch (error) {
    console.warn('the page cannot be kept for offline use:', error);
  }
}

/** Starts the controls at the core's defaults (`Request::default()`, the overlay's opacity and
 * colormap), marking SHAP's default sample count. */
function applyDefaults({ request, opacity, colormap, audit_methods: auditMethods }, audit) {
  $('method').value = request.methods[0] ?? 'grad-cam';
  $('faithfulness').checked = request.faithfulness != null;
  $('score').value = request.score;
  const samples = $('shap-samples');
  const value = String(request.shap.samples);
  let option = [...samples.options].find((o) => o.value === value);
  if (!option) samples.add((option = new Option(value, value)));
  option.textContent = `${value} (SHAP's default)`;
  samples.value = value;
  $('opacity').value = String(opacity);
  $('colormap').value = colormap;
  audit.choose(auditMethods);
}

async function main() {
  window.kdlens = {
    // The last report drawn, and (for tests) that report as plain JSON data, made on demand.
    lastReport: null,
    get lastResult() { return this.lastReport && plain(this.lastReport); },
    lastImage: null,
    loseDeviceOnNextExplain: false,
  };
  const batch = wireBatch();
  wireDropTarget($('drop-zone'), (file) => useImage(file, file.name), () => { if (!endsWindowDrag()) $('file-input').click(); }, (files) => batch.run(files));
  wireScanControls();
  $('file-input').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) useImage(f, f.name); e.target.value = ''; });
  document.addEventListener('paste', (e) => {
    const item = [...e.clipboardData.items].find((i) => i.type.startsWith('image/'));
    if (item) useImage(item.getAsFile(), 'pasted image');
  });
  wireDropTarget($('model-drop'), useModelFile, () => $('model-input').click());
  wireDropTarget($('teacher-drop'), useTeacherFile, () => $('teacher-input').click());
  $('teacher-input').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) useTeacherFile(f); e.target.value = ''; });
  $('teacher-remove').addEventListener('click', removeTeacher);
  $('teacher-offer').addEventListener('click', useOfferedTeacher);
  $('model-input').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) useModelFile(f); e.target.value = ''; });
  const redraw = async () => {
    const result = state.result;
    if (!result || state.busy) return;
    if (!(await drawCam()) || !(await drawStrip(result))) return;
    const beside = window.kdlens.lastTeacher;
    if (beside && !$('teacher-panel').hidden) await drawTeacherMap(beside.report.maps[0]);
  };
  $('opacity').addEventListener('change', redraw);
  $('colormap').addEventListener('change', redraw);
  for (const id of ['method', 'layer', 'target', 'score', 'faithfulness', 'shap-samples']) $(id).addEventListener('change', () => explainCurrent());
  $('cancel-explain').addEventListener('click', cancelExplain);
  $('save-png').addEventListener('click', saveOverlay);
  $('save-json').addEventListener('click', saveJson);
  try {
    const [backend, reason] = await chooseBackend();
    await startWorker(backend, reason);
    applyDefaults(await call('defaults'), batch.audit);
    const response = await fetch('model/model.kdlens');
    if (!response.ok) throw new Error(`the default model could not be fetched (HTTP ${response.status})`);
    await loadModel(await response.arrayBuffer(), 'model/model.kdlens (default)');
    state.defaultClasses = state.model.manifest.classes;
    await loadIndex();
    await keepForOffline();
    setState('ready');
    showStatus('Ready. Drop an image.');
  } catch (error) {
    showError(`kdlens could not start: ${error.message}`);
    setState('error');
  }
}

main();
