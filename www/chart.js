// Line charts of curves over [0, 1] (the deletion and insertion curves of one report, or the
// audit's mean curves), drawn as SVG: the page's one way of drawing them.

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element `name` with `attributes` and, when given, `text`. */
export function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

/**
 * Fills `svg` (viewBox 0 0 330 200) with axes — probability 0 to 1 against the share of pixels
 * changed, 0 to 100 % — and one polyline per entry of `series` (`{ values, className, style }`:
 * equally spaced probabilities from 0 % to 100 %).
 */
export function drawCurves(svg, series) {
  const box = { left: 34, right: 300, top: 10, bottom: 170 };
  const x = (fraction) => box.left + fraction * (box.right - box.left);
  const y = (p) => box.bottom - p * (box.bottom - box.top);
  const points = (values) => values.map((p, i) => `${x(i / Math.max(values.length - 1, 1)).toFixed(1)},${y(p).toFixed(1)}`).join(' ');
  const ticks = [0, 0.5, 1].flatMap((t) => [
    svgElement('text', { x: box.left - 4, y: y(t) + 3, 'text-anchor': 'end' }, t.toFixed(1)),
    svgElement('text', { x: x(t), y: box.bottom + 12, 'text-anchor': 'middle' }, `${100 * t} %`),
  ]);
  svg.replaceChildren(
    svgElement('path', { class: 'axis', d: `M${box.left},${box.top} V${box.bottom} H${box.right}` }),
    ...ticks,
    svgElement('text', { x: (box.left + box.right) / 2, y: 196, 'text-anchor': 'middle' }, 'share of pixels changed, most important first'),
    ...series.map(({ values, className, style }) => svgElement('polyline', { class: className, style: style || '', points: points(values) })),
  );
}
