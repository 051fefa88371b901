// kdlens' service worker: keeps the page's own files (page, scripts, WebAssembly, default model,
// sample images; the model folder's teacher once it has been fetched) so that the page reloads
// and works with the network gone. It stores nothing else: a dropped image, a result or a user's
// model is never fetched, so it never passes here.
// Online it answers from the network and refreshes its copy (a new version of the page is seen at
// once); offline, from its copy.
const CACHE = 'kdlens-page';

/** The page's files, relative to the service worker's folder (the page's folder). */
const FILES = ['./', 'index.html', 'app.js', 'audit.js', 'batch.js', 'chart.js', 'worker.js', 'style.css', 'sw.js',
  'pkg/kdlens_web.js', 'pkg/kdlens_web_bg.wasm', 'model/model.kdlens', 'model/index.json'];

const here = (path) => new URL(path, self.registration.scope).href;

async function pageFiles() {
  const files = FILES.map(here);
  try {
    const { samples = [] } = await (await fetch(here('model/index.json'))).json();
    files.push(...samples.map((name) => here(`model/samples/${name}`)));
  } catch {
    // no samples: nothing more to keep
  }
  return files;
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(await pageFiles());
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

/** A request's path relative to the page's folder, without query; null outside it. */
function pagePath(request) {
  const url = new URL(request.url);
  const scope = self.registration.scope;
  if (request.method !== 'GET' || !url.href.startsWith(scope)) return null;
  return url.pathname.slice(new URL(scope).pathname.length);
}

/** Whether a path is one of the page's files (`''` is the folder itself, i.e. index.html):
 * everything the site serves from its model folder is (the teacher is kept when first fetched,
 * not at install: most visits never ask for it). */
function isPageFile(path) {
  return path !== null && (path === '' || FILES.includes(path) || path.startsWith('model/'));
}

/** The network's answer (its copy kept in the background: a copy that cannot be written, e.g.
 * on a full disk, costs nothing but the copy); the copy when the network cannot answer. */
async function networkThenCopy(event, path) {
  const key = here(path);
  let response;
  try {
    response = await fetch(event.request);
  } catch (error) {
    const copy = await (await caches.open(CACHE)).match(key);
    if (copy) return copy;
    throw error;
  }
  if (response.ok) {
    const clone = response.clone();
    event.waitUntil(caches.open(CACHE).then((cache) => cache.put(key, clone)).catch(() => {}));
  }
  return response;
}

self.addEventListener('fetch', (event) => {
  const path = pagePath(event.request);
  if (isPageFile(path)) event.respondWith(networkThenCopy(event, path));
});
