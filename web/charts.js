// The page's two charts, drawn as SVG: the itemised stacked bar against the GPU's memory, and memory against
// context length. Values are bytes; axes are in GiB (2^30 bytes), as in the CLI.
import { gib, thousands } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const GIB = 2 ** 30;

// One colour per component name, stable across charts and answers (the words are the CLI's).
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f',
                 '#bab0ac', '#86bcb6', '#d37295', '#a0cbe8', '#ffbe7d', '#8cd17d', '#f1ce63'];
const KNOWN = ['weights', 'kv_cache', 'activations', 'gradients', 'optimizer_states', 'compute', 'logits', 'inputs',
               'workspace', 'allocator_cached', 'cuda_context', 'cuda_runtime', 'cuda_pool', 'lora_weights', 'temporaries'];
export function colour(name) {
  const base = String(name).replace(/ \(.*\)$/, '');
  let i = KNOWN.indexOf(base);
  if (i < 0) i = [...base].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) % PALETTE.length;
  return PALETTE[i % PALETTE.length];
}

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceStep(range, ticks) {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

// components: [{name, bytes}] (GPU ones), memoryBytes: the GPU's memory (or null).
export function stackedBar(components, memoryBytes, { width = 760, label = 'GPU memory' } = {}) {
  const total = components.reduce((s, c) => s + c.bytes, 0);
  const maxBytes = Math.max(total, memoryBytes || 0) * 1.04 || 1;
  const left = 10, right = 10, barY = 26, barH = 34, axisY = barY + barH + 4;
  const plotW = width - left - right;
  const x = (bytes) => left + (bytes / maxBytes) * plotW;
  const svg = el('svg', { viewBox: `0 0 ${width} 104`, width: '100%', role: 'img',
                          'aria-label': `stacked bar: ${gib(total, 2)} GiB of ${memoryBytes ? gib(memoryBytes, 2) : '?'} GiB` });
  let at = 0;
  for (const c of components) {
    if (c.bytes <= 0) continue;
    const w = x(at + c.bytes) - x(at);
    const rect = el('rect', { x: x(at), y: barY, width: Math.max(w, 0.5), height: barH, fill: colour(c.name), class: 'segment' });
    rect.appendChild(el('title', {}, `${c.name}: ${gib(c.bytes, 3)} GiB`));
    svg.appendChild(rect);
    if (w > 70) svg.appendChild(el('text', { x: x(at) + 4, y: barY + barH / 2 + 4, class: 'seg-label' }, `${c.name} ${gib(c.bytes, 2)}`));
    at += c.bytes;
  }
  // GiB axis
  const step = niceStep(maxBytes / GIB, 8);
  for (let v = 0; v * GIB <= maxBytes; v += step) {
    svg.appendChild(el('line', { x1: x(v * GIB), x2: x(v * GIB), y1: axisY, y2: axisY + 4, class: 'tick' }));
    svg.appendChild(el('text', { x: x(v * GIB), y: axisY + 16, class: 'axis', 'text-anchor': 'middle' }, String(+v.toFixed(3))));
  }
  svg.appendChild(el('text', { x: width - right, y: axisY + 30, class: 'axis', 'text-anchor': 'end' }, 'GiB'));
  if (memoryBytes) {
    const mx = x(memoryBytes);
    svg.appendChild(el('line', { x1: mx, x2: mx, y1: 8, y2: barY + barH + 6, class: total > memoryBytes ? 'limit over' : 'limit' }));
    svg.appendChild(el('text', { x: Math.min(mx, width - 4), y: 18, class: 'limit-label', 'text-anchor': mx > width * 0.6 ? 'end' : 'start' },
                       `${label}: ${gib(memoryBytes, 2)} GiB`));
  }
  return svg;
}

// points: [{x, components: [{name, bytes}]}] sorted by x; current: the x of the chosen setup.
export function contextPlot(points, memoryBytes, { width = 760, height = 300, xLabel = 'context (tokens)', current } = {}) {
  const names = [];
  for (const p of points) for (const c of p.components) if (!names.includes(c.name)) names.push(c.name);
  const totals = points.map((p) => p.components.reduce((s, c) => s + c.bytes, 0));
  const maxBytes = Math.max(...totals, memoryBytes && memoryBytes < Math.max(...totals) * 3 ? memoryBytes : 0) * 1.08 || 1;
  const left = 52, right = 150, top = 12, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  const lx = points.map((p) => Math.log2(p.x));
  const x0 = Math.min(...lx), x1 = Math.max(...lx);
  const px = (x) => left + (x1 > x0 ? (Math.log2(x) - x0) / (x1 - x0) : 0.5) * plotW;
  const py = (bytes) => top + plotH - (bytes / maxBytes) * plotH;
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, width: '100%', role: 'img', 'aria-label': 'memory against context length' });

  const step = niceStep(maxBytes / GIB, 6);
  for (let v = 0; v * GIB <= maxBytes; v += step) {
    svg.appendChild(el('line', { x1: left, x2: left + plotW, y1: py(v * GIB), y2: py(v * GIB), class: 'grid' }));
    svg.appendChild(el('text', { x: left - 6, y: py(v * GIB) + 4, class: 'axis', 'text-anchor': 'end' }, String(+v.toFixed(3))));
  }
  svg.appendChild(el('text', { x: 12, y: top + plotH / 2, class: 'axis', transform: `rotate(-90 12 ${top + plotH / 2})`, 'text-anchor': 'middle' }, 'GiB'));
  for (const p of points) {
    svg.appendChild(el('text', { x: px(p.x), y: top + plotH + 16, class: 'axis', 'text-anchor': 'middle' },
                       p.x >= 1024 ? `${+(p.x / 1024).toFixed(1)}K` : String(p.x)));
  }
  svg.appendChild(el('text', { x: left + plotW / 2, y: height - 4, class: 'axis', 'text-anchor': 'middle' }, xLabel));

  // stacked areas, bottom up, in the order the CLI lists the components
  const below = points.map(() => 0);
  names.forEach((name, k) => {
    const tops = points.map((p, i) => below[i] + (p.components.find((c) => c.name === name)?.bytes || 0));
    const path = points.map((p, i) => `${i ? 'L' : 'M'}${px(p.x).toFixed(1)},${py(tops[i]).toFixed(1)}`).join('') +
                 points.slice().reverse().map((p, j) => `L${px(p.x).toFixed(1)},${py(below[points.length - 1 - j]).toFixed(1)}`).join('') + 'Z';
    const area = el('path', { d: path, fill: colour(name), class: 'area' });
    area.appendChild(el('title', {}, name));
    svg.appendChild(area);
    tops.forEach((t, i) => { below[i] = t; });
    const ly = top + 10 + k * 16;
    svg.appendChild(el('rect', { x: left + plotW + 12, y: ly - 9, width: 10, height: 10, fill: colour(name) }));
    svg.appendChild(el('text', { x: left + plotW + 26, y: ly, class: 'legend' }, name));
  });
  // the total, with a dot per point (its value in a tooltip)
  svg.appendChild(el('path', { d: points.map((p, i) => `${i ? 'L' : 'M'}${px(p.x)},${py(totals[i])}`).join(''), class: 'total' }));
  // points.refused: the engine would not start at that length (vLLM): a red dot, said in its tooltip
  points.forEach((p, i) => {
    const cls = ['dot', p.x === current ? 'current' : '', p.refused ? 'refused' : ''].filter(Boolean).join(' ');
    const dot = el('circle', { cx: px(p.x), cy: py(totals[i]), r: p.x === current ? 5 : 3, class: cls });
    dot.appendChild(el('title', {}, `${thousands(p.x)} tokens: ${gib(totals[i], 3)} GiB${p.refused ? ' (would not start)' : ''}`));
    svg.appendChild(dot);
  });
  if (points.some((p) => p.refused)) {
    const ly = top + 10 + names.length * 16 + 8;
    svg.appendChild(el('circle', { cx: left + plotW + 17, cy: ly - 4, r: 4, class: 'dot refused' }));
    svg.appendChild(el('text', { x: left + plotW + 26, y: ly, class: 'legend' }, 'would not start'));
  }
  if (memoryBytes && memoryBytes <= maxBytes) {
    svg.appendChild(el('line', { x1: left, x2: left + plotW, y1: py(memoryBytes), y2: py(memoryBytes), class: 'limit' }));
    svg.appendChild(el('text', { x: left + 4, y: py(memoryBytes) - 4, class: 'limit-label' }, `GPU memory ${gib(memoryBytes, 2)} GiB`));
  }
  return svg;
}
