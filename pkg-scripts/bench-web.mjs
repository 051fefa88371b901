// Browser benchmarks (BENCHMARKS.md, P3 and P5). Not a test and never run in CI.
//
// P3: the exported student at 224² in the same headless Chromium — ONNX Runtime Web (wasm EP, one
//     thread; and its WebGPU EP) against kdlens' worker (CPU fallback; WebGPU): ORT prediction
//     vs kdlens prediction alone and the full explanation (prediction + every layer's map +
//     Grad-CAM). Rounds interleave the contenders; medians are reported.
// P5: cold time from opening the page to the first full explanation (CPU fallback), and payload.
//
//   npm install --prefix ~/.cache/kdlens-bench onnxruntime-web@1.30.0
//   python pkg-scripts/bench-peers.py ... --onnx runs/bench-peers/student-224.onnx --onnx-only
//   node pkg-scripts/bench-web.mjs --onnx runs/bench-peers/student-224.onnx \
//        --bundle runs/demo-full/student-kd/student.kdlens --out runs/bench-web
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join, extname } from 'node:path';
import { homedir } from 'node:os';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { serve, launch, openPage, explainDropped, rewriteBundle, testImage, WWW } from '../tests/helpers.js';

const { values: args } = parseArgs({
  options: {
    onnx: { type: 'string' },
    bundle: { type: 'string' },
    ort: { type: 'string', default: join(homedir(), '.cache/kdlens-bench/node_modules/onnxruntime-web/dist') },
    out: { type: 'string', default: 'runs/bench-web' },
    rounds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    backends: { type: 'string', default: 'cpu,webgpu' },
  },
});
if (!args.onnx || !args.bundle) throw new Error('--onnx and --bundle are required (see the header)');
const SIDE = 224;
const TYPES = { '.mjs': 'text/javascript', '.js': 'text/javascript', '.wasm': 'application/wasm' };

const onnx = await readFile(args.onnx);
// The same student weights at a 224² input (the five-layer head pools globally, so only the
// manifest's input size changes).
const bundle = rewriteBundle(await readFile(args.bundle), (m) => {
  m.spec.input_size = [SIDE, SIDE];
  m.preprocessing.input_size = [SIDE, SIDE];
});

async function extra(path) {
  if (path === '/bench.html') return { type: 'text/html', body: '<!doctype html><title>bench</title>' };
  if (path === '/bench/student.onnx') return { type: 'application/octet-stream', body: onnx };
  if (path === '/bench/model.kdlens') return { type: 'application/octet-stream', body: bundle };
  if (path.startsWith('/ort/')) {
    const name = path.slice(5).replace(/[^A-Za-z0-9._-]/g, '');
    return { type: TYPES[extname(name)] || 'application/octet-stream', body: await readFile(join(args.ort, name)) };
  }
  return null;
}

/** Runs in the page: interleaved rounds of ORT and kdlens, all times in ms. */
async function measure({ backend, side, rounds, runs }) {
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
  const ort = await import(backend === 'webgpu' ? '/ort/ort.webgpu.min.mjs' : '/ort/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = '/ort/';
  const session = await ort.InferenceSession.create('/bench/student.onnx', { executionProviders: [backend === 'webgpu' ? 'webgpu' : 'wasm'] });
  const input = new ort.Tensor('float32', Float32Array.from({ length: 3 * side * side }, () => Math.random()), [1, 3, side, side]);

  const worker = new Worker('/worker.js', { type: 'module' });
  let nextId = 0;
  const pending = new Map();
  worker.onmessage = ({ data }) => { const p = pending.get(data.id); pending.delete(data.id); data.ok ? p.resolve(data.result) : p.reject(new Error(data.error)); };
  const call = (type, payload, transfer = []) => new Promise((resolve, reject) => {
    const id = ++nextId; pending.set(id, { resolve, reject }); worker.postMessage({ id, type, ...payload }, transfer);
  });
  const backendInfo = await call('start', { backend, reason: 'benchmark' });
  const bytes = new Uint8Array(await (await fetch('/bench/model.kdlens')).arrayBuffer());
  await call('load', { bytes: bytes.buffer }, [bytes.buffer]);
  const rgba = Uint8Array.from({ length: side * side * 4 }, (_, i) => (i % 4 === 3 ? 255 : (i * 37) & 255));
  const kd = async (type) => {
    const copy = rgba.slice();
    const t = performance.now();
    // The default request: prediction, every layer's map and Grad-CAM of the last stage.
    const result = await call(type, { rgba: copy.buffer, width: side, height: side, name: 'bench.png', request: {} }, [copy.buffer]);
    return { wall: performance.now() - t, result };
  };
  const times = { ort: [], kdPredict: [], kdPredictForward: [], kdExplain: [], kdExplainCore: [] };
  for (let i = 0; i < 2; i++) { await session.run({ input }); await kd('predict'); await kd('explain'); }
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < runs; i++) { const t = performance.now(); await session.run({ input }); times.ort.push(performance.now() - t); }
    for (let i = 0; i < runs; i++) { const { wall, result } = await kd('predict'); times.kdPredict.push(wall); times.kdPredictForward.push(result.forwardMs); }
    for (let i = 0; i < runs; i++) { const { wall, result } = await kd('explain'); times.kdExplain.push(wall); times.kdExplainCore.push(result.timings_ms.total); }
  }
  worker.terminate();
  return { backend: backendInfo, medians: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])), samples: times };
}

async function coldStart() {
  const server = await serve('/');
  const context = await launch({ webgpu: false });
  try {
    const started = Date.now();
    const { page } = await openPage(context, server.url);
    const ready = Date.now() - started;
    await explainDropped(page, testImage(96, 1), 'cold.png');
    return { readyMs: ready, firstExplanationMs: Date.now() - started };
  } finally {
    await context.close();
    await server.close();
  }
}

async function payload() {
  const files = ['index.html', 'app.js', 'worker.js', 'style.css', 'pkg/kdlens_web.js', 'pkg/kdlens_web_bg.wasm', 'model/model.kdlens'];
  const rows = [];
  for (const f of files) {
    const body = await readFile(join(WWW, f));
    rows.push({ file: f, raw: body.length, gzip: gzipSync(body, { level: 9 }).length });
  }
  return rows;
}

await mkdir(args.out, { recursive: true });
const results = { side: SIDE, chromium: null, p3: [], p5: {} };
for (const backend of args.backends.split(',')) {
  const server = await serve('/', extra);
  const context = await launch({ webgpu: backend === 'webgpu' });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
    await page.goto(`${server.url}bench.html`);
    results.chromium = context.browser()?.version() ?? null;
    const r = await page.evaluate(measure, { backend, side: SIDE, rounds: Number(args.rounds), runs: Number(args.runs) });
    results.p3.push(r);
    console.log(backend, JSON.stringify(r.medians));
  } finally {
    await context.close();
    await server.close();
  }
}
results.p5 = { cold: await coldStart(), payload: await payload() };
console.log('P5', JSON.stringify(results.p5.cold));
await writeFile(join(args.out, 'bench-web.json'), JSON.stringify(results, null, 2));
const lines = ['| backend | ORT-Web predict | kdlens predict (call / forward) | kdlens full explanation (call / core) | kdlens explain ÷ ORT predict |', '|---|---|---|---|---|'];
for (const { backend, medians: m } of results.p3) {
  lines.push(`| ${backend.name} | ${m.ort.toFixed(1)} ms | ${m.kdPredict.toFixed(1)} / ${m.kdPredictForward.toFixed(1)} ms | ${m.kdExplain.toFixed(1)} / ${m.kdExplainCore.toFixed(1)} ms | ${(m.kdExplain / m.ort).toFixed(2)}× |`);
}
await writeFile(join(args.out, 'bench-web.md'), `${lines.join('\n')}\n`);
console.log(lines.join('\n'));
