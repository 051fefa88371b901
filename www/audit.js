// The "Many images" panel's audit: the methods to audit, and the core's audit of the images shown
// as tables and mean curves and saved as audit.json. Every number comes from the worker's
// `auditPlan`, `auditImage` and `auditSummary` (the core's `kdlens::trust::audit`, the same code
// `kdlens audit` runs); this file only asks and draws.

import { drawCurves, svgElement } from './chart.js';

/** What each comparison measures, as `kdlens audit` names it. */
const MEASURES = {
  'agreement-spearman': 'Spearman ρ with the teacher',
  'agreement-top-iou': 'top-10 % IoU with the teacher',
  'deletion-auc': 'deletion AUC',
  'insertion-auc': 'insertion AUC',
};

/** A line colour per method, in the audit's curves (Okabe–Ito, distinguishable by most). */
const COLOURS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9'];

/** `mean ± sd` to `digits` decimals (the core's `Stats::show`); "—" without values. */
function stats(s, digits = 3) {
  return s.n === 0 ? '—' : `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}`;
}

/** A signed number to `digits` decimals. */
function signed(value, digits = 3) {
  return `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(digits)}`;
}

/** A table with `caption`, a header row `head` and body rows `rows` (arrays of cell texts). */
function table(caption, head, rows) {
  const element = document.createElement('table');
  element.className = 'audit-table';
  const tr = (cells, tag) => {
    const row = document.createElement('tr');
    row.append(...cells.map((text) => Object.assign(document.createElement(tag), { textContent: text })));
    return row;
  };
  const thead = document.createElement('thead');
  thead.append(tr(head, 'th'));
  const tbody = document.createElement('tbody');
  tbody.append(...rows.map((cells) => tr(cells, 'td')));
  element.append(Object.assign(document.createElement('caption'), { textContent: caption }), thead, tbody);
  return element;
}

/**
 * The audit's controls and results. `elements` are its DOM nodes (see index.html); `call(type,
 * payload, transfer)` asks the worker (and asks again once if the worker was replaced);
 * `request()` → the page's explanation request; `methods` → `[{ value, label }]` of the methods
 * the page explains with; `download(blob, name)` saves a file.
 */
export class AuditView {
  constructor(elements, { call, request, methods, download }) {
    Object.assign(this, { elements, call, request, download });
    this.labels = Object.fromEntries(methods.map((m) => [m.value, m.label]));
    this.audit = null;
    elements.methods.replaceChildren(...methods.map(({ value, label }) => {
      const box = Object.assign(document.createElement('input'), { type: 'checkbox', value });
      const wrapper = document.createElement('label');
      wrapper.append(box, ` ${label}`);
      return wrapper;
    }));
    elements.save.addEventListener('click', () => this.save());
  }

  /** Checks exactly `methods` (the core's defaults for an audit). */
  choose(methods) {
    for (const box of this.elements.methods.querySelectorAll('input')) box.checked = methods.includes(box.value);
  }

  /** Whether the images are to be audited (the switch is on and a method is chosen). */
  enabled() {
    return this.elements.toggle.checked && this.methods().length > 0;
  }

  methods() {
    return [...this.elements.methods.querySelectorAll('input:checked')].map((box) => box.value);
  }

  /** The core's plan for the loaded model (and teacher) and the chosen methods. */
  plan() {
    return this.call('auditPlan', { request: { ...this.request(), methods: this.methods() } });
  }

  /** The core's record of one decoded image (`{ rgba, width, height }`) named `path`, of true
   * class `label` (null when unknown). */
  image(plan, { rgba, width, height }, path, label) {
    return this.call('auditImage', (copy) => ({ plan, rgba: copy.buffer, width, height, name: path, label }), rgba);
  }

  /** Hides the last audit's results (a new run starts). */
  reset() {
    this.audit = null;
    this.elements.panel.hidden = true;
  }

  /** Summarises `records` made with `plan` and shows the result. */
  async finish(plan, records, cancelled) {
    if (records.length === 0) return;
    // The bootstrap's seed: the request's own (the core's default, as `kdlens audit --seed`).
    const seed = plan.request.integrated_gradients.seed;
    this.audit = await this.call('auditSummary', { plan, records, seed });
    this.show(this.audit, cancelled);
  }

  show(audit, cancelled) {
    const e = this.elements;
    const label = (method) => this.labels[method] || method;
    const stages = Object.entries(audit.cam_layers).map(([model, layer]) => `${model} ${layer}`).join(', ');
    e.summary.textContent = `${audit.images} images${cancelled ? ' (cancelled before the end)' : ''}, each explained for its true class (else the first model's prediction); mean ± standard deviation over the images. CAM stages: ${stages}. Sanity check: run kdlens audit.`;
    const tables = [
      table('Faithfulness (deletion: lower is better; insertion: higher is better)', ['model', 'method', 'deletion AUC ↓', 'insertion AUC ↑'],
        audit.faithfulness.map((f) => [f.model, label(f.method), stats(f.deletion_auc), stats(f.insertion_auc)])),
    ];
    if (audit.agreement.length > 0) {
      tables.push(
        table('Does the student explain like its teacher?', ['student', 'method', 'Spearman ρ with the teacher', 'top-10 % IoU'],
          audit.agreement.map((a) => [a.student, label(a.method), stats(a.spearman), stats(a.top_iou)])),
        table('Predictions', ['student', 'same prediction as the teacher', 'KL(teacher ‖ student), nats'],
          audit.predictions.map((p) => [p.student, `${(100 * p.same_prediction).toFixed(1)} %`, stats(p.kl_divergence)])),
      );
    }
    if (audit.comparisons.length > 0) {
      tables.push(table('Comparisons, image by image over the same images, with a bootstrap 95 % interval', ['measure', 'method', 'first − second', 'difference [95 % interval]', 'reading'],
        audit.comparisons.map((c) => [MEASURES[c.measure] || c.measure, label(c.method), `${c.first} − ${c.second}`,
          c.difference ? `${signed(c.difference.mean)} [${signed(c.difference.interval[0])}, ${signed(c.difference.interval[1])}] (n = ${c.difference.n})` : '—',
          c.reading])));
    }
    tables.push(table('Images unlike the training data (out-of-distribution check)', ['model', 'images flagged', 'explanation time per image'],
      audit.ood.map((o) => [o.model, o.flagged_test[1] === 0 ? '— (the model cannot tell)' : `${o.flagged_test[0]} of ${o.flagged_test[1]}`, `${stats(audit.explain_ms[o.model], 0)} ms`])));
    e.tables.replaceChildren(...tables);
    e.curves.replaceChildren(...this.curveFigures(audit, label));
    e.panel.hidden = false;
  }

  /** Per model, its mean deletion (solid) and insertion (dashed) curves, a colour per method. */
  curveFigures(audit, label) {
    const models = [...new Set(audit.faithfulness.map((f) => f.model))];
    return models.map((model) => {
      const rows = audit.faithfulness.filter((f) => f.model === model);
      const svg = svgElement('svg', { viewBox: '0 0 330 200', role: 'img', 'aria-label': `${model}: mean deletion and insertion curves` });
      drawCurves(svg, rows.flatMap((f, k) => [
        { values: f.deletion_curve, className: 'deletion', style: `stroke: ${COLOURS[k % COLOURS.length]}` },
        { values: f.insertion_curve, className: 'insertion', style: `stroke: ${COLOURS[k % COLOURS.length]}` },
      ]));
      const figure = document.createElement('figure');
      figure.className = 'faithfulness';
      const legend = rows.map((f, k) => `${label(f.method)} (${COLOURS[k % COLOURS.length]})`).join(', ');
      figure.append(svg, Object.assign(document.createElement('figcaption'), {
        textContent: `${model}: mean class probability as each map's most important pixels are removed (solid, deletion) or revealed (dashed, insertion) — ${legend}.`,
      }));
      return figure;
    });
  }

  save() {
    if (!this.audit) return;
    this.download(new Blob([JSON.stringify(this.audit, null, 2)], { type: 'application/json' }), 'audit.json');
  }
}
