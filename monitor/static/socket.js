// One channel's WebSocket: resume by (epoch, seq), check continuity, notice a silent
// dead connection, and reconnect forever with capped exponential backoff and full jitter.

const PING = '{"type":"ping"}';
const WATCH_EVERY_MS = 5000;
const IDLE_BEFORE_PING_MS = 25000;
const PONG_WITHIN_MS = 20000; // ping after <= 30 s idle + 25 s: a dead link is noticed within 60 s
const CONNECT_WITHIN_MS = 20000;
const HEALTHY_MS = 60000;
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

export class ChannelSocket {
  constructor(channel, epoch, seq, on) {
    Object.assign(this, { channel, epoch: epoch || null, seq, on, attempt: 0, ws: null, timer: 0 });
    setInterval(() => this.watch(), WATCH_EVERY_MS);
    addEventListener('online', () => this.ws || this.connect());
    addEventListener('offline', () => this.retry());
    this.on.status('reconnecting', 0);
    this.connect();
  }

  url() {
    const url = new URL(`/api/v1/ws/${encodeURIComponent(this.channel)}`, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.epoch) {
      url.searchParams.set('epoch', this.epoch);
      url.searchParams.set('seq', String(this.seq));
    }
    return url;
  }

  connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url());
    Object.assign(this, { ws, heardAt: Date.now(), pingAt: 0, openedAt: 0 });
    ws.onopen = () => {
      this.openedAt = Date.now();
      this.on.status('live', 0);
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.retry(event.code === 1008 ? `refused: ${event.reason || 'policy violation'}` : '');
  }

  receive(data) {
    this.heardAt = Date.now();
    this.pingAt = 0;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === 'snapshot') {
      this.epoch = message.epoch;
      this.seq = message.seq;
      this.on.snapshot(message.data, message.epoch, message.seq);
    } else if (message.type === 'patch') {
      if (message.epoch !== this.epoch || message.seq !== this.seq + 1) {
        this.epoch = null; // a gap or another epoch: start over from a snapshot
        this.retry();
        return;
      }
      this.seq = message.seq;
      this.on.patch(message.patch, message.epoch, message.seq);
    }
  }

  retry(refusal = '') {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close();
    }
    if (this.openedAt && Date.now() - this.openedAt >= HEALTHY_MS) this.attempt = 0;
    if (refusal) this.attempt = 5; // refused: retry only slowly, so signing in elsewhere brings it back
    this.openedAt = 0;
    const delay = Math.random() * Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(this.attempt, 5));
    this.attempt += 1;
    this.on.status(refusal || navigator.onLine === false ? 'offline' : 'reconnecting', Date.now() + delay, refusal);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  watch() {
    const ws = this.ws, now = Date.now();
    if (!ws) return;
    if (ws.readyState === WebSocket.CONNECTING && now - this.heardAt > CONNECT_WITHIN_MS) this.retry();
    if (ws.readyState !== WebSocket.OPEN) return;
    if (this.pingAt && now - this.pingAt > PONG_WITHIN_MS) this.retry();
    else if (!this.pingAt && now - this.heardAt > IDLE_BEFORE_PING_MS) {
      this.pingAt = now;
      ws.send(PING);
    }
  }
}
