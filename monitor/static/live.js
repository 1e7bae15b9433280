// The live dashboard: one Panel and one ChannelSocket per server-rendered panel, the
// pause toggle, the freshness ticker and a polite, summarised announcer.
import { Panel } from './panel.js';
import { ChannelSocket } from './socket.js';
import { setAttr, setText } from './render.js';
import { tickClock } from './wall.js';
import { Trends } from './trend.js';
import { AlertStrip } from './alerts.js';

const ANNOUNCE_EVERY_MS = 3000;
const RETRY_BUDGET_MS = 60000; // down this long is "offline", not "reconnecting"
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
const ZONED = { dateStyle: 'medium', timeStyle: 'long' };

function since(seconds) {
  const s = Math.abs(seconds), [n, unit] = s < 60 ? [s, 's'] : s < 3600 ? [s / 60, 'min'] : s < 86400
    ? [s / 3600, 'h'] : [s / 86400, 'd'];
  return seconds < 0 ? `in ${Math.floor(n)} ${unit}` : `${Math.floor(n)} ${unit} ago`;
}

// Times read as the server shows them (naive = UTC); the ticker adds how long ago, and the
// full time with its zone on hover.
function ageTimes(now) {
  for (const el of document.querySelectorAll('[data-format="time"][data-value]')) {
    const raw = el.dataset.value, ms = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(raw) ? raw : `${raw.replace(' ', 'T')}Z`);
    if (!raw || Number.isNaN(ms)) { el.removeAttribute('data-ago'); continue; }
    setAttr(el, 'data-ago', since(Math.round((now - ms) / 1000)));
    if (!el.title.endsWith(`(${raw})`)) el.title = `${new Date(ms).toLocaleString([], ZONED)} (${raw})`;
  }
}

class Board {
  constructor() {
    this.paused = false;
    this.panels = [];
    this.news = new Map();
    this.announcer = document.querySelector('[data-announcer]');
    this.pauseNote = document.querySelector('[data-pause-note]');
    this.banner = document.querySelector('[data-offline-banner]');
    this.heartbeatMs = Number(document.body.dataset.heartbeatMs) || 30000;
    this.offlineAfterMs = Math.max(RETRY_BUDGET_MS, 2 * this.heartbeatMs);
    this.wall = document.documentElement.classList.contains('wall');
    this.clock = document.querySelector('[data-clock]');
  }

  note(title, update) {
    const entry = this.news.get(title) || { added: 0, changed: 0, removed: 0 };
    for (const [what, value] of Object.entries(update)) entry[what] = typeof value === 'number' ? entry[what] + value : value;
    this.news.set(title, entry);
    this.newsTimer ||= setTimeout(() => this.announce(), ANNOUNCE_EVERY_MS);
  }

  announce() {
    this.newsTimer = 0;
    const lines = [], byConnection = new Map();
    for (const [title, entry] of this.news) {
      const counts = ['added', 'changed', 'removed'].filter((what) => entry[what]).map((what) => `${entry[what]} ${what}`);
      if (counts.length) lines.push(`${title}: ${counts.join(', ')}`);
      if (entry.connection) byConnection.set(entry.connection, [...(byConnection.get(entry.connection) || []), title]);
    }
    for (const [state, titles] of byConnection) {
      lines.push(`${titles.length === this.panels.length && titles.length > 1 ? 'All panels' : titles.join(', ')} ${state}`);
    }
    this.news.clear();
    setText(this.announcer, lines.join('. '));
  }

  togglePause(button) {
    this.paused = !this.paused;
    button.setAttribute('aria-pressed', String(this.paused));
    document.body.classList.toggle('paused', this.paused);
    if (!this.paused) for (const panel of this.panels) if (panel.waiting) panel.render();
    this.tick();
  }

  tick() {
    const now = Date.now();
    let waiting = 0;
    for (const panel of this.panels) {
      panel.tick(now);
      waiting += panel.waiting;
    }
    setText(this.pauseNote, this.paused ? `Paused: ${waiting} update${waiting === 1 ? '' : 's'} waiting` : '');
    this.showOffline(now);
    ageTimes(now);
    tickClock(this.clock, now);
  }

  // A socket down longer than a heartbeat: the whole page says so.
  showOffline(now) {
    const stale = this.panels.filter((p) => p.stale(now));
    this.banner.hidden = !stale.length;
    if (!stale.length) return;
    const since = Math.min(...stale.map((p) => p.downSince));
    const which = stale.length === this.panels.length ? 'the console' : stale.map((p) => p.title).join(', ');
    setText(this.banner, (now - since >= this.offlineAfterMs ? `Offline since ${clock(since)}: ${which}, still retrying`
      : `Connection to ${which} lost at ${clock(since)}, reconnecting`) + '. This may be out of date.');
  }
}

function start() {
  const board = new Board();
  for (const root of document.querySelectorAll('[data-channel]')) {
    const panel = new Panel(root, board);
    board.panels.push(panel);
    new ChannelSocket(root.dataset.channel, root.dataset.epoch, Number(root.dataset.seq), panel);
    new Trends(root, Number(document.body.dataset.historyStep) || 60);
  }
  document.documentElement.classList.add('live'); // the script now fits the wall's lists itself
  const refit = () => board.panels.forEach((panel) => panel.fit());
  addEventListener('resize', refit);
  new AlertStrip(document.querySelector('[data-alerts]'), document.querySelector('[data-notify]'), refit);
  document.fonts?.ready.then(refit);
  const button = document.querySelector('[data-pause]');
  button.hidden = false;
  button.addEventListener('click', () => board.togglePause(button));
  setInterval(() => board.tick(), 1000);
  board.tick();
}

start();
