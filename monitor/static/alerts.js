// The alerts strip, kept current from /api/v1/alerts, and opt-in browser notifications:
// asked for by a button, never on load; one per alert that starts firing while the page is open.
import { setText } from './render.js';

const EVERY_MS = 5000;
const keyOf = (alert) => `${alert.rule}/${alert.key}`;

export class AlertStrip {
  constructor(strip, button, onChange) {
    Object.assign(this, { strip, button, onChange, known: null });
    if (!strip) return;
    this.list = strip.querySelector('[data-alert-list]');
    this.count = strip.querySelector('[data-alert-count]');
    if (button && 'Notification' in window && Notification.permission !== 'denied') {
      button.hidden = Notification.permission === 'granted';
      button.addEventListener('click', () => Notification.requestPermission().then((answer) => {
        button.hidden = answer !== 'default';
      }));
    }
    setInterval(() => this.refresh(), EVERY_MS);
  }

  async refresh() {
    try {
      const response = await fetch('/api/v1/alerts');
      if (response.ok) this.show((await response.json()).firing);
    } catch { /* offline: the page's banner says so; the strip stays as it was */ }
  }

  show(firing) {
    const keys = new Set(firing.map(keyOf));
    if (this.known) for (const alert of firing) if (!this.known.has(keyOf(alert))) this.notify(alert);
    this.known = keys;
    this.list.replaceChildren(...firing.map((alert) => {
      const li = document.createElement('li'), b = document.createElement('b'), a = document.createElement('a');
      li.dataset.alert = keyOf(alert);
      b.textContent = alert.rule;
      a.href = `/${encodeURIComponent(alert.channel)}`;
      a.textContent = alert.summary;
      li.append(b, ' ', a);
      return li;
    }));
    setText(this.count, String(firing.length));
    const hidden = !firing.length;
    if (this.strip.hidden !== hidden) {
      this.strip.hidden = hidden;
      this.onChange(); // the wall's panels got more or less room
    }
  }

  notify(alert) {
    if ('Notification' in window && Notification.permission === 'granted') {
      new Notification(`${alert.rule}`, { body: alert.summary, tag: keyOf(alert) });
    }
  }
}
