// Many images at once: a table of predictions for several files or a folder, with accuracy and a
// confusion matrix where class sub-folders give true labels, saved as CSV or JSON. Images are
// decoded and classified one at a time (only a thumbnail and the File handle are kept), so memory
// stays bounded whatever the number of files. Pure page logic; the classification itself is the
// worker's `predict` (the core's forward pass), passed in by app.js.

const THUMB = 40; // side of a row's thumbnail, canvas pixels

/** `text` reduced to lowercase letters and digits, to compare a folder's name with a class name
 * ("t-shirt-top" and "T-shirt/top" are the same class). */
function comparable(text) {
  return text.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '');
}

/**
 * The true class of a file from its path inside the chosen folder (`root/class/image.png`): the
 * index of the class its parent folder names, or null (no parent folder, or one that names no
 * class of the model).
 */
export function labelOf(path, classes) {
  const parts = path.split('/').filter(Boolean);
  if (parts.length < 2) return null;
  const folder = comparable(parts[parts.length - 2]);
  const index = classes.findIndex((c) => comparable(c) === folder);
  return index >= 0 ? index : null;
}

/** Every file under a dropped folder entry (FileSystemEntry), with its path. */
async function entryFiles(entry, path = '') {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: `${path}${file.name}` }];
  }
  const reader = entry.createReader();
  const children = [];
  // readEntries returns the folder's entries in chunks; an empty chunk ends them.
  for (;;) {
    const chunk = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (chunk.length === 0) break;
    children.push(...chunk);
  }
  const nested = await Promise.all(children.map((child) => entryFiles(child, `${path}${entry.name}/`)));
  return nested.flat();
}

/** The files of a drop, folders walked: `[{ file, path }]` in name order. */
export async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  const files = entries.length > 0
    ? (await Promise.all(entries.map((entry) => entryFiles(entry)))).flat()
    : [...dataTransfer.files].map((file) => ({ file, path: file.name }));
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

/** Whether a drop holds more than one image or any folder (then it is a batch). */
export function isBatchDrop(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  return entries.some((e) => e.isDirectory) || dataTransfer.files.length > 1;
}

/** The files of a file input (several files, or a folder with `webkitdirectory`). */
export function inputFiles(input) {
  return [...input.files]
    .map((file) => ({ file, path: file.webkitRelativePath || file.name }))
    .sort((a, b) => a.path.localeCompare(b.path));
}

/** `confusion[true][predicted]` counts and the accuracy over the labelled rows (null if none). */
export function summarise(rows, classCount) {
  const confusion = Array.from({ length: classCount }, () => new Array(classCount).fill(0));
  let labelled = 0;
  let correct = 0;
  for (const row of rows) {
    if (row.error || row.label === null) continue;
    confusion[row.label][row.predicted]++;
    labelled++;
    if (row.label === row.predicted) correct++;
  }
  return { confusion, labelled, correct, accuracy: labelled > 0 ? correct / labelled : null };
}

function csvField(value) {
  const text = String(value ?? '');
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The table as CSV: file, true class, predicted class, its probability, every class's
 * probability, error. */
export function toCsv(rows, classes) {
  const header = ['file', 'true_class', 'predicted_class', 'probability', ...classes.map((c) => `p_${c}`), 'error'];
  const lines = rows.map((r) => [
    r.path,
    r.label === null ? '' : classes[r.label],
    r.error ? '' : classes[r.predicted],
    r.error ? '' : r.probabilities[r.predicted].toFixed(6),
    ...classes.map((_, k) => (r.error ? '' : r.probabilities[k].toFixed(6))),
    r.error || '',
  ]);
  return [header, ...lines].map((line) => line.map(csvField).join(',')).join('\n') + '\n';
}

/** The table as a JSON document: the model, the rows, accuracy and confusion matrix. */
export function toJson(rows, classes, model) {
  const { confusion, labelled, correct, accuracy } = summarise(rows, classes.length);
  return JSON.stringify({
    model,
    classes,
    images: rows.map((r) => ({
      file: r.path,
      true_class: r.label === null ? null : classes[r.label],
      predicted_class: r.error ? null : classes[r.predicted],
      probability: r.error ? null : r.probabilities[r.predicted],
      probabilities: r.error ? null : Array.from(r.probabilities),
      error: r.error || null,
    })),
    labelled,
    correct,
    accuracy,
    confusion,
  }, null, 2);
}

/** A small canvas with the image fitted in it. */
function thumbnail(bitmap) {
  const canvas = document.createElement('canvas');
  canvas.width = THUMB;
  canvas.height = THUMB;
  const scale = Math.min(THUMB / bitmap.width, THUMB / bitmap.height);
  const w = bitmap.width * scale;
  const h = bitmap.height * scale;
  canvas.getContext('2d').drawImage(bitmap, (THUMB - w) / 2, (THUMB - h) / 2, w, h);
  canvas.setAttribute('aria-hidden', 'true');
  return canvas;
}

/**
 * The "Many images" panel. `elements` are its DOM nodes (see index.html); `decode(file, name)` →
 * `{ rgba, width, height, bitmap }`; `predict(image)` → `{ probabilities, predicted }`; `audit`,
 * the audit's view (audit.js), which says whether to audit and records each image;
 * `explain(file, name)` shows one image in the main view; `model()` → the current manifest;
 * `download(blob, name)` saves a file.
 */
export class Batch {
  constructor(elements, { decode, predict, audit, explain, model, download }) {
    Object.assign(this, { elements, decode, predict, audit, explain, model, download });
    this.rows = [];
    this.running = false;
    this.cancelled = false;
    elements.cancel.addEventListener('click', () => { this.cancelled = true; });
    elements.saveCsv.addEventListener('click', () => this.save('csv'));
    elements.saveJson.addEventListener('click', () => this.save('json'));
  }

  /** Classifies `files` (`[{ file, path }]`) one at a time, filling the table as it goes. */
  async run(files) {
    if (this.running) this.cancelled = true;
    while (this.running) await new Promise((r) => setTimeout(r, 20));
    const manifest = this.model();
    const classes = manifest.classes;
    const e = this.elements;
    this.rows = [];
    this.classes = classes;
    this.modelName = manifest.name;
    this.running = true;
    this.cancelled = false;
    e.panel.hidden = false;
    e.body.replaceChildren();
    e.cancel.disabled = false;
    e.saveCsv.disabled = true;
    e.saveJson.disabled = true;
    e.progress.max = files.length;
    e.progress.value = 0;
    document.body.dataset.batch = 'running';
    this.audit.reset();
    const records = [];
    let plan = null;
    let refused = null;
    try {
      if (this.audit.enabled()) {
        try {
          plan = await this.audit.plan();
        } catch (error) {
          refused = `The audit cannot start: ${error.message}`;
          return;
        }
      }
      e.progressLabel.textContent = plan ? 'Audited' : 'Classified';
      for (const [k, { file, path }] of files.entries()) {
        if (this.cancelled) break;
        const row = { file, path, label: labelOf(path, classes) };
        try {
          const image = await this.decode(file, path);
          row.thumbnail = thumbnail(image.bitmap);
          image.bitmap.close?.();
          const out = await this.predict(image);
          row.probabilities = out.probabilities;
          row.predicted = out.predicted;
          if (plan) records.push(await this.audit.image(plan, image, path, row.label));
        } catch (error) {
          row.error = error.message;
        }
        this.rows.push(row);
        e.body.append(this.rowElement(row));
        e.progress.value = k + 1;
        e.count.textContent = `${k + 1} of ${files.length}`;
      }
    } finally {
      this.running = false;
      e.cancel.disabled = true;
      e.saveCsv.disabled = this.rows.length === 0;
      e.saveJson.disabled = this.rows.length === 0;
      this.showSummary(files.length);
      if (refused) e.summary.textContent = refused;
      if (plan) {
        try {
          await this.audit.finish(plan, records, this.cancelled);
        } catch (error) {
          e.summary.textContent += ` · the audit failed: ${error.message}`;
        }
      }
      document.body.dataset.batch = this.cancelled ? 'cancelled' : 'done';
    }
  }

  rowElement(row) {
    const classes = this.classes;
    const tr = document.createElement('tr');
    const cell = (content) => {
      const td = document.createElement('td');
      td.append(content ?? '');
      return td;
    };
    const open = document.createElement('button');
    open.type = 'button';
    open.textContent = row.path;
    open.addEventListener('click', () => this.explain(row.file, row.path.split('/').pop()));
    const truth = row.label === null ? '—' : classes[row.label];
    if (row.error) {
      tr.className = 'error';
      const td = cell(row.error);
      td.colSpan = 3;
      tr.append(cell(row.thumbnail), cell(open), cell(truth), td);
    } else {
      const p = row.probabilities[row.predicted];
      tr.className = row.label === null ? '' : row.label === row.predicted ? 'right' : 'wrong';
      const verdict = row.label === null ? '' : row.label === row.predicted ? '✓ right' : '✗ wrong';
      tr.append(cell(row.thumbnail), cell(open), cell(truth), cell(classes[row.predicted]), cell(`${(100 * p).toFixed(1)} %`), cell(verdict));
    }
    return tr;
  }

  showSummary(total) {
    const e = this.elements;
    const classes = this.classes;
    const failed = this.rows.filter((r) => r.error).length;
    const { confusion, labelled, correct, accuracy } = summarise(this.rows, classes.length);
    const parts = [`${this.rows.length} of ${total} images${this.cancelled ? ' (cancelled)' : ''}`];
    if (failed > 0) parts.push(`${failed} could not be read`);
    parts.push(accuracy === null
      ? 'no true labels (put the images in folders named after the classes to get accuracy)'
      : `accuracy ${(100 * accuracy).toFixed(1)} % (${correct} of ${labelled} labelled)`);
    e.summary.textContent = parts.join(' · ');
    e.confusion.hidden = accuracy === null;
    if (accuracy === null) return;
    const header = document.createElement('tr');
    header.append(Object.assign(document.createElement('th'), { textContent: 'true \\ predicted' }),
      ...classes.map((c) => Object.assign(document.createElement('th'), { scope: 'col', textContent: c })));
    const lines = confusion.map((counts, t) => {
      const tr = document.createElement('tr');
      tr.append(Object.assign(document.createElement('th'), { scope: 'row', textContent: classes[t] }),
        ...counts.map((n, p) => Object.assign(document.createElement('td'), { textContent: String(n), className: n > 0 ? (p === t ? 'right' : 'wrong') : '' })));
      return tr;
    });
    e.confusion.replaceChildren(Object.assign(document.createElement('caption'), { textContent: 'Confusion matrix (rows: true class, columns: predicted)' }), header, ...lines);
  }

  save(kind) {
    const stem = `kdlens-batch-${this.rows.length}`;
    if (kind === 'csv') {
      this.download(new Blob([toCsv(this.rows, this.classes)], { type: 'text/csv' }), `${stem}.csv`);
    } else {
      this.download(new Blob([toJson(this.rows, this.classes, this.modelName)], { type: 'application/json' }), `${stem}.json`);
    }
  }
}
