// The page's compute thread: owns the WebAssembly module (kdlens core + burn) and runs one
// request at a time. Messages in: {id, type: 'start'|'defaults'|'load'|'scan'|'predict'|'explain'|
// 'render'|'loadTeacher'|'removeTeacher'|'explainTeacher'|'agreement'|'auditPlan'|'auditImage'|
// 'auditSummary', ...};
// messages out: {id, ok: true, result} or {id, ok: false, error}, and while SHAP runs
// {id, progress: {step, done, total}}. An explanation's result is the
// core's report, the same JSON that `kdlens explain` writes, its maps' values as Float32Arrays.
import init, { Explainer, auditSummary, decodeScan, defaults } from './pkg/kdlens_web.js';

let explainer = null;
let testHooks = { loseDeviceOnNextExplain: false, device: null };

// A test hook (used only when the page is opened with ?test-hooks): remember the GPUDevice the
// runtime creates so that a test can destroy it mid-explanation.
function installDeviceCapture() {
  if (!self.navigator.gpu) return;
  const requestAdapter = self.navigator.gpu.requestAdapter.bind(self.navigator.gpu);
  self.navigator.gpu.requestAdapter = async (...args) => {
    const adapter = await requestAdapter(...args);
    if (!adapter) return adapter;
    const requestDevice = adapter.requestDevice.bind(adapter);
    adapter.requestDevice = async (...deviceArgs) => {
      const device = await requestDevice(...deviceArgs);
      testHooks.device = device;
      return device;
    };
    return adapter;
  };
}

async function start({ backend, reason, hooks }) {
  if (hooks) installDeviceCapture();
  await init({ module_or_path: new URL('./pkg/kdlens_web_bg.wasm', import.meta.url) });
  explainer = await Explainer.start(backend, reason);
  return explainer.backend();
}

async function handle(message) {
  switch (message.type) {
    case 'start':
      return start(message);
    case 'defaults':
      return defaults();
    case 'load':
      return explainer.loadModel(new Uint8Array(message.bytes));
    case 'scan':
      // A DICOM or NIfTI file, decoded by the core: { width, height, facts, options, rgba }.
      return decodeScan(new Uint8Array(message.bytes), message.chosen, message.recorded);
    case 'explain': {
      if (message.loseDevice && testHooks.device) {
        testHooks.device.destroy();
      }
      const started = performance.now();
      explainer.setProgressListener((step, done, total) => self.postMessage({ id: message.id, progress: { step, done, total } }));
      const report = await explainer.explain(new Uint8Array(message.rgba), message.width, message.height, message.name, message.request, message.scan);
      report.timings_ms.worker = performance.now() - started;
      console.debug(`explain: preprocess ${report.timings_ms.preprocess.toFixed(1)} ms, core ${report.timings_ms.total.toFixed(1)} ms, call ${report.timings_ms.worker.toFixed(1)} ms`);
      return report;
    }
    case 'loadTeacher':
      return explainer.loadTeacher(new Uint8Array(message.bytes));
    case 'removeTeacher':
      return explainer.removeTeacher();
    case 'explainTeacher':
      explainer.setProgressListener(undefined);
      return explainer.explainTeacher(new Uint8Array(message.rgba), message.width, message.height, message.name, message.request, message.scan);
    case 'agreement':
      return explainer.agreement();
    case 'predict':
      return explainer.predict(new Uint8Array(message.rgba), message.width, message.height);
    case 'auditPlan':
      return explainer.auditPlan(message.request);
    case 'auditImage':
      explainer.setProgressListener(undefined);
      return explainer.auditImage(message.plan, new Uint8Array(message.rgba), message.width, message.height, message.name, message.label ?? undefined);
    case 'auditSummary':
      return auditSummary(message.plan, message.records, message.seed);
    case 'render':
      return explainer.render(message.view, message.colormap, message.opacity, message.height, message.width, Boolean(message.teacher));
    default:
      throw new Error(`unknown request ${message.type}`);
  }
}

// The buffers of a report's maps (`Float32Array`s, one buffer each), or of a decoded scan's
// pixels: handed to the page rather than copied.
function mapBuffers(result) {
  if (result && result.rgba instanceof Uint8Array) return [result.rgba.buffer];
  if (!result || !Array.isArray(result.feature_maps)) return [];
  return [...result.feature_maps, ...result.maps].map((m) => m.values.buffer);
}

async function answer(message) {
  try {
    const result = await handle(message);
    self.postMessage({ id: message.id, ok: true, result }, mapBuffers(result));
  } catch (error) {
    self.postMessage({ id: message.id, ok: false, error: String(error && error.message ? error.message : error) });
  }
}

// One request at a time, in arrival order: a request's awaits (GPU read-backs) must not let the
// next one into the same Explainer (the batch table's predictions arrive while an image is
// explained).
let queue = Promise.resolve();
self.onmessage = (event) => {
  queue = queue.then(() => answer(event.data));
};
