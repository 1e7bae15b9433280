// One panel: its channel state, and the DOM rows kept in step with it key by key.
import { applyPatch, fillRow, fillSummary, own, setAttr, setText, sorter, text, where } from './render.js';
import { fit } from './wall.js';

function ago(seconds) {
  if (seconds < 60) return `${seconds} s ago`;
  return seconds < 3600 ? `${Math.floor(seconds / 60)} min ago` : `${Math.floor(seconds / 3600)} h ago`;
}

const MARK_MS = 4000;

// A changed row or figure is marked for a few seconds (CSS: a highlight, or a still outline
// under prefers-reduced-motion); a removed row fades out, no longer one of the panel's rows.
function mark(el) {
  el.removeAttribute('data-changed');
  void el.offsetWidth; // restart the highlight of a row that changes again
  el.setAttribute('data-changed', '');
  clearTimeout(el.unmark);
  el.unmark = setTimeout(() => el.removeAttribute('data-changed'), MARK_MS);
}

function leave(row) {
  delete row.dataset.key;
  row.setAttribute('data-leaving', '');
  setTimeout(() => row.remove(), matchMedia('(prefers-reduced-motion: reduce)').matches ? 0 : 600);
}

export class Panel {
  constructor(root, board) {
    this.root = root;
    this.board = board;
    this.title = root.querySelector('h2').textContent.trim();
    this.state = JSON.parse(root.querySelector('script[data-state]').textContent);
    this.template = root.querySelector('template[data-row-template]').content.firstElementChild;
    this.groups = [...root.querySelectorAll('[data-rows]')].map((el) =>
      ({ el, sort: sorter(el.dataset.sort), where: where(el.dataset.where),
        moreEl: (el.tagName === 'TBODY' ? el.parentElement : el).nextElementSibling?.closest('[data-more]') }));
    this.rows = new Map([...root.querySelectorAll('[data-rows] > [data-key]')].map((el) => [el.dataset.key, el]));
    this.dirty = new Set();
    this.waiting = 0;
    this.shownAt = Date.now();
    this.connection = 'offline';
    this.downSince = Date.now(); // not live yet: a page whose sockets never open goes stale too
    this.conn = root.querySelector('[data-connection]');
    this.ago = root.querySelector('[data-ago]');
    this.setUpFilters();
    this.setUpTabs();
  }

  snapshot(data, epoch, seq) {
    const before = this.state.items, after = data.items;
    for (const key of new Set([...Object.keys(before || {}), ...Object.keys(after || {})])) {
      if (JSON.stringify(own(before, key)) !== JSON.stringify(own(after, key))) this.dirty.add(key);
    }
    this.state = data;
    this.changed(epoch, seq);
  }

  patch(change, epoch, seq) {
    for (const key of Object.keys(own(change, 'items') || {})) this.dirty.add(key);
    this.state = applyPatch(this.state, change);
    this.changed(epoch, seq);
  }

  changed(epoch, seq) {
    this.at = { epoch, seq };
    this.waiting += 1;
    if (!this.board.paused) this.render();
  }

  render() {
    const items = this.state.items || {};
    const counts = { added: 0, changed: 0, removed: 0 };
    for (const key of this.dirty) {
      const item = own(items, key), row = this.rows.get(key);
      if (item === undefined) {
        if (row) { leave(row); this.rows.delete(key); counts.removed += 1; }
      } else if (row) {
        const before = row.textContent;
        fillRow(row, item, key);
        if (row.textContent !== before) mark(row);
        counts.changed += 1;
      } else {
        const fresh = this.template.cloneNode(true);
        fresh.dataset.key = key;
        fillRow(fresh, item, key);
        if (this.everLive) mark(fresh); // not the rows a first snapshot brings
        this.rows.set(key, fresh);
        counts.added += 1;
      }
    }
    this.dirty.clear();
    this.place(items);
    const figures = [...this.root.querySelectorAll('[data-summary]')], before = figures.map((el) => el.textContent);
    fillSummary(this.root, this.state.summary || {});
    figures.forEach((el, i) => el.textContent !== before[i] && this.everLive && mark(el));
    this.showMeta(this.state.meta || {});
    this.filter();
    this.fit();
    Object.assign(this.root.dataset, this.at); // the (epoch, seq) on screen
    this.waiting = 0;
    this.shownAt = Date.now();
    if (counts.added + counts.changed + counts.removed) this.board.note(this.title, counts);
  }

  // Move only the rows that are out of place; rows already in order stay untouched.
  place(items) {
    const entries = Object.entries(items), placed = new Set();
    for (const group of this.groups) {
      const members = entries.filter(([key, item]) => !placed.has(key) && group.where(item)).sort(group.sort);
      let cursor = group.el.firstElementChild;
      for (const [key] of members) {
        placed.add(key);
        const row = this.rows.get(key);
        if (row === cursor) cursor = cursor.nextElementSibling;
        else group.el.insertBefore(row, cursor);
      }
    }
    for (const [key, row] of this.rows) if (!placed.has(key)) row.remove();
  }

  fit() {
    if (this.board.wall) fit(this.root, this.groups);
  }

  showMeta(meta) {
    const failed = meta.source === 'error', box = this.root.querySelector('[data-meta-error]');
    this.root.dataset.source = text(meta.source) || 'pending';
    setText(box, failed ? text(meta.error) : '');
    box.hidden = !failed;
    this.showConnection();
  }

  status(state, retryAt, note = '') {
    const wasLive = this.connection === 'live';
    if (wasLive !== (state === 'live') && (wasLive || this.everLive)) this.board.note(this.title, { connection: state });
    this.everLive ||= state === 'live';
    if (wasLive && state !== 'live') this.downSince = Date.now();
    if (state === 'live') this.downSince = 0;
    this.connection = state;
    this.retryAt = retryAt;
    this.note = note;
    this.showConnection();
    this.tick(Date.now());
  }

  // The label vouches only for what is true: a failed source is an error, a long outage offline.
  showConnection() {
    let shown = this.connection;
    if (shown === 'live' && this.root.dataset.source === 'error') shown = 'error';
    if (shown === 'reconnecting' && Date.now() - this.downSince >= this.board.offlineAfterMs) shown = 'offline';
    setAttr(this.conn, 'data-connection', this.connection); // the socket's own state
    setAttr(this.conn, 'data-shown', shown);
    setText(this.conn, shown);
  }

  stale(now) { // down longer than a heartbeat
    return this.connection !== 'live' && now - this.downSince > this.board.heartbeatMs;
  }

  tick(now) {
    this.showConnection();
    this.root.toggleAttribute('data-stale', this.stale(now));
    let line = `updated ${ago(Math.max(0, Math.round((now - this.shownAt) / 1000)))}`;
    if (this.connection !== 'live' && this.retryAt > now) line += ` · retry in ${Math.ceil((this.retryAt - now) / 1000)} s`;
    if (this.board.paused && this.waiting) line += ` · ${this.waiting} waiting`;
    if (this.note) line += ` · ${this.note}`;
    setText(this.ago, line);
  }

  setUpFilters() {
    this.search = this.root.querySelector('[data-filter-text]');
    this.select = this.root.querySelector('[data-filter-field]');
    this.showing = this.root.querySelector('[data-showing]');
    const controls = this.root.querySelector('[data-filters]');
    if (!controls || this.board.wall) return; // nobody types into a wall screen
    controls.hidden = false;
    for (const control of [this.search, this.select]) control?.addEventListener('input', () => this.filter());
    this.filter();
  }

  filter() {
    if (!this.showing) return;
    const query = (this.search?.value || '').trim().toLowerCase(), wanted = this.select?.value || '';
    const field = this.select ? `[data-field="${this.select.dataset.filterField}"]` : '';
    let shown = 0;
    for (const row of this.rows.values()) {
      const value = field && row.querySelector(field)?.dataset.value;
      const match = (!query || row.textContent.toLowerCase().includes(query)) && (!wanted || value === wanted);
      row.hidden = !match;
      shown += match ? 1 : 0;
    }
    setText(this.showing, `showing ${shown} of ${this.rows.size} ${this.showing.dataset.showing}`);
  }

  setUpTabs() {
    const list = this.root.querySelector('[data-tabs]');
    if (!list || this.board.wall) return; // nobody clicks one either: the first view stands alone
    const tabs = [...list.querySelectorAll('[role=tab]')];
    const select = (tab, focus) => {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute('aria-selected', String(on));
        t.tabIndex = on ? 0 : -1;
        document.getElementById(t.getAttribute('aria-controls')).hidden = !on;
      }
      if (focus) tab.focus();
    };
    list.addEventListener('click', (event) => {
      const tab = event.target.closest('[role=tab]');
      if (tab) select(tab, false);
    });
    list.addEventListener('keydown', (event) => {
      const at = tabs.indexOf(document.activeElement), step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (at < 0 || !step) return;
      event.preventDefault();
      select(tabs[(at + step + tabs.length) % tabs.length], true);
    });
    list.hidden = false;
    this.root.classList.add('tabbed');
    select(tabs[0], false);
  }
}
