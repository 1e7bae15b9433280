// Presentation rules, mirrored from monitor/display.py: a row updated live must read
// exactly like the same row on a freshly rendered page. Change both together.

const isNumber = (v) => typeof v === 'number';
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
export const own = (o, k) => (isObject(o) && Object.hasOwn(o, k) ? o[k] : undefined);

export function text(v) {
  if (v == null) return '';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v)) return v.map(text).join(', ');
  if (isObject(v)) return Object.keys(v).sort().map((k) => `${k}: ${text(v[k])}`).join(', ');
  return String(v);
}

export function fixed(v, digits) {
  const scale = 10 ** digits, units = Math.floor(v * scale + 0.5), abs = Math.abs(units);
  const whole = (abs - (abs % scale)) / scale;
  return (units < 0 ? '-' : '') + whole + (digits ? '.' + String(abs % scale).padStart(digits, '0') : '');
}

const pad = (n) => String(n).padStart(2, '0');

function duration(seconds) {
  const t = Math.floor(seconds + 0.5), h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
  return h ? `${h}h ${pad(m)}m` : m ? `${m}m ${pad(s)}s` : `${s}s`;
}

const numeric = (render) => (v) => (isNumber(v) ? render(v) : text(v));

const FORMATS = {
  badge: (v) => text(v).replaceAll('_', ' '),
  money: numeric((v) => '$' + fixed(v, 2)),
  duration: numeric(duration),
  percent: numeric((v) => fixed(v, 1) + '%'),
  hours: numeric((v) => fixed(v, 1) + ' h'),
  ms: numeric((v) => fixed(v, 0) + ' ms'),
  time: (v) => text(v).replace('T', ' ').slice(0, 16),
  issue: (v) => (v == null || v === '' ? '' : '#' + text(v)),
  active: (v) => (v == null ? '' : v === true ? 'process up' : 'no process'),
  errors: numeric((v) => (v === 0 ? 'no errors' : `${text(v)} error${v === 1 ? '' : 's'}`)),
  paused: (v) => (v == null ? '' : v === true ? 'paused' : 'accepting work'),
  quickwin: (v) => (isNumber(v) && v <= 2 ? 'quick win' : ''),
  overrun: (v) => (v === true ? 'over estimate' : ''),
  counts: (v) => (isObject(v) ? Object.keys(v).sort().map((k) => `${k} ${text(v[k])}`).join(' · ') : text(v)),
};

export const show = (format, v) => (Object.hasOwn(FORMATS, format) ? FORMATS[format] : text)(v);
const valueAttr = (v) => (typeof v === 'boolean' ? String(v) : text(v));
const safeUrl = (v) => (typeof v === 'string' && /^https?:\/\//i.test(v) ? v : '');

export function lookup(record, path, key) {
  if (path === '_key') return key;
  for (const part of path.split('.')) record = own(record, part);
  return record;
}

// Where one phase stands in a run's item; the phases themselves come from the page
// (the server renders every pipeline with the ten phases, in order, as data-phase).
const names = (v) => new Set(Array.isArray(v) ? v.map(String) : []);
export function phaseState(item, phase) {
  if (names(own(item, 'phases_skipped')).has(phase)) return 'skipped';
  if (names(own(item, 'phases_completed')).has(phase)) return 'done';
  if (own(item, 'failed_phase') === phase) return 'failed';
  return own(item, 'current_phase') === phase ? 'current' : 'pending';
}

// RFC 7396 JSON Merge Patch, applied in place. defineProperty: a key such as
// "__proto__" coming from a source must stay data, never reach the prototype.
export function applyPatch(target, patch) {
  if (!isObject(patch)) return patch;
  if (!isObject(target)) target = {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else Object.defineProperty(target, k, { value: applyPatch(own(target, k), v), writable: true, enumerable: true, configurable: true });
  }
  return target;
}

// Sort specs: "-priority queue_position status=running,queued": descending with "-",
// a rank list after "=", absent values last, ties by key.
function parseSort(spec = '') {
  return spec.split(/\s+/).filter(Boolean).map((word) => {
    const name = word.replace(/^-+/, ''), at = name.indexOf('=');
    return { name: at < 0 ? name : name.slice(0, at), desc: word[0] === '-', ranks: at < 0 ? null : name.slice(at + 1).split(',') };
  });
}

const missing = (v) => v == null || v === '';
const rank = (v, ranks) => (missing(v) ? null : ranks.includes(text(v)) ? ranks.indexOf(text(v)) : ranks.length);
const order = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

function compareTerm(a, b, term) {
  if (term.ranks) [a, b] = [rank(a, term.ranks), rank(b, term.ranks)];
  if (missing(a) || missing(b)) return missing(a) - missing(b);
  const o = isNumber(a) !== isNumber(b) ? (isNumber(a) ? -1 : 1) : isNumber(a) ? order(a, b) : order(text(a), text(b));
  return term.desc ? -o : o;
}

export function sorter(spec) {
  const terms = parseSort(spec);
  return ([ka, a], [kb, b]) => {
    for (const t of terms) {
      const o = compareTerm(lookup(a, t.name), lookup(b, t.name), t);
      if (o) return o;
    }
    return order(ka, kb);
  };
}

export function where(spec = '') {
  if (!spec) return () => true;
  const negated = spec[0] === '!', body = spec.replace(/^!+/, ''), at = body.indexOf('=');
  const name = body.slice(0, at), values = body.slice(at + 1).split(',');
  return (item) => values.includes(text(lookup(item, name))) !== negated;
}

export function setText(el, value) {
  if (el.textContent !== value) el.textContent = value;
}

export function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

function fillPipeline(list, item) {
  for (const li of list.querySelectorAll('[data-phase]')) {
    const state = phaseState(item, li.dataset.phase);
    setAttr(li, 'data-state', state);
    setAttr(li, 'title', `${li.dataset.phase}: ${state}`);
  }
}

function fillValue(el, value, item) {
  const format = el.dataset.format || '';
  if (format === 'pipeline') fillPipeline(el, item);
  else setText(el, show(format, value));
  if (el.hasAttribute('data-clip')) setAttr(el, 'title', el.textContent);
  if (el.hasAttribute('data-value')) setAttr(el, 'data-value', valueAttr(value));
}

// Fill a row cloned from the panel's <template> (or an existing row) by data-field names.
// Everything from a source goes in as text or a checked URL, never as HTML.
export function fillRow(row, item, key) {
  for (const el of row.querySelectorAll('[data-field]')) fillValue(el, lookup(item, el.dataset.field, key), item);
  for (const el of row.querySelectorAll('[data-href]')) {
    const url = safeUrl(lookup(item, el.dataset.href));
    if (url) setAttr(el, 'href', url);
    else el.removeAttribute('href');
  }
}

export function fillSummary(root, summary) {
  for (const el of root.querySelectorAll('[data-summary]')) fillValue(el, lookup(summary, el.dataset.summary), summary);
}
