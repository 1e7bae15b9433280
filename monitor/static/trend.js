// Trends, redrawn live: a panel's sparklines and health bars, fetched from its history every
// step. The drawing mirrors monitor/sparklines.py: a redrawn sparkline reads exactly like the
// one a fresh page renders. Change both together.
import { fixed, setAttr, setText, show } from './render.js';

const WIDTH = 100, HEIGHT = 24, SVG = 'http://www.w3.org/2000/svg';
const known = (points) => points.map(([, v]) => v).filter((v) => v != null);

export function sparkPath(points, format) {
  const values = known(points);
  if (!values.length) return '';
  const high = Math.max(...values), low = format === 'percent' ? Math.min(...values) : Math.min(0, ...values);
  const last = Math.max(points.length - 1, 1);
  let path = '', drawing = false, lone = false;
  points.forEach(([, value], i) => {
    if (value == null) {
      if (lone) path += 'h0'; // a lone point: a zero-length line, which the round cap shows as a dot
      drawing = lone = false;
      return;
    }
    const y = high === low ? HEIGHT / 2 : HEIGHT - ((value - low) / (high - low)) * HEIGHT;
    path += `${drawing ? 'L' : 'M'}${fixed((i * WIDTH) / last, 1)} ${fixed(y, 1)}`;
    lone = !drawing;
    drawing = true;
  });
  return lone ? `${path}h0` : path;
}

export function sparkCaption(points, format) {
  const values = known(points);
  if (!values.length) return 'no data yet';
  const low = Math.min(...values), high = Math.max(...values);
  return low === high ? show(format, low) : `${show(format, low)}–${show(format, high)}`;
}

const healthSlot = (v) => (v == null ? 'none' : v >= 1 ? 'ok' : v >= 0.5 ? 'warn' : 'bad');

function drawBar(svg, points) {
  const slots = points.map(([, v]) => healthSlot(v));
  while (svg.children.length > slots.length) svg.lastElementChild.remove();
  slots.forEach((state, i) => {
    let rect = svg.children[i];
    if (!rect) {
      rect = svg.appendChild(document.createElementNS(SVG, 'rect'));
      Object.entries({ x: String(i), width: '.8', height: '1' }).forEach(([k, v]) => rect.setAttribute(k, v));
    }
    setAttr(rect, 'class', state);
  });
}

export class Trends {
  constructor(root, stepSeconds) {
    this.root = root;
    this.channel = root.dataset.channel;
    this.sparks = [...root.querySelectorAll('[data-trend]')];
    if (!this.sparks.length && !root.querySelector('[data-healthbar]')) return;
    this.every = Math.max(1, stepSeconds) * 1000;
    setTimeout(() => this.refresh(), this.every * (0.5 + Math.random() / 2));
  }

  // One request per (step, slots) the panel draws; a failed fetch keeps what is drawn.
  async refresh() {
    const spans = new Map();
    for (const el of this.sparks) spans.set(`${el.dataset.step}/${el.dataset.slots}`, el.dataset);
    if (!spans.size) spans.set('bars', { step: this.every / 1000, slots: 90 });
    for (const { step, slots } of spans.values()) {
      try {
        const back = (Number(slots) - 1) * Number(step); // counted back from the server's clock, not this one
        const response = await fetch(`/api/v1/${encodeURIComponent(this.channel)}/history?since=-${back}&step=${step}`);
        if (response.ok) this.draw((await response.json()).series, step, Number(slots));
      } catch { /* offline: the page's banner says so; the trend stays as drawn */ }
    }
    setTimeout(() => this.refresh(), this.every);
  }

  draw(series, step, slots) {
    const recent = (name) => (series[name]?.points || []).slice(-slots);
    for (const el of this.sparks) {
      if (el.dataset.step !== String(step) || !series[el.dataset.trend]) continue;
      const points = recent(el.dataset.trend), format = el.dataset.trendFormat;
      setAttr(el.querySelector('path'), 'd', sparkPath(points, format));
      setText(el.querySelector('[data-trend-range]'), sparkCaption(points, format));
    }
    for (const svg of this.root.querySelectorAll('[data-rows] [data-healthbar]')) {
      const key = `check:${svg.closest('[data-key]')?.dataset.key}`;
      if (series[key]) drawBar(svg, recent(key));
    }
  }
}
