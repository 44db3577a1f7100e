// The chat protocol (API.md "Chat over WebSocket") as a small state machine:
// messages keyed by seq (so replays and resumes never duplicate), pending
// user messages keyed by client_msg_id until their ack, reconnection with
// backoff and {"type":"resume","after_seq":N}; who is watching (issue 9).

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export class ChatClient {
  constructor(sessionId, { onChange, onStatus, onResolved, onRefused } = {}) {
    this.sessionId = sessionId;
    this.messages = new Map();   // seq -> {seq, role, content, streaming}
    this.pending = new Map();    // client_msg_id -> {id, content, state: 'sending'|'error', error}
    this.lastSeq = 0;            // highest seq of a complete message seen
    this.awaitingReply = false;
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.scenario = null;
    this.watchers = new Map();   // trainer id -> display name, while watching
    this.onChange = onChange || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onResolved = onResolved || (() => {});
    this.onRefused = onRefused || (() => {});
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/sessions/${this.sessionId}/chat`;
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.ready = false;
    this.onStatus('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.handle(msg);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      const wasReady = this.ready;
      this.ws = null;
      this.ready = false;
      // an unfinished reply will be replayed (or finished) after resume
      for (const m of this.messages.values()) {
        if (m.streaming && !m.content) this.messages.delete(m.seq);
      }
      if (this.stopped) return;
      if (!wasReady) this.onRefused(ev);
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    if (this.stopped) return;
    const base = Math.min(500 * 2 ** this.attempt, 10000);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this.attempt++;
    this.onStatus('reconnecting', delay);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  // For "Retry now" and for tests.
  reconnectNow() {
    if (this.stopped) return;
    if (this.ws) this.ws.close();
    else this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
  }

  sendRaw(obj) {
    if (this.ws && this.ready && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  send(content) {
    const id = newId();
    this.pending.set(id, { id, content, state: 'sending', error: null });
    this.awaitingReply = true;
    this.sendRaw({ type: 'user_message', client_msg_id: id, content });
    this.onChange();
    return id;
  }

  // Sends a failed or unacknowledged message again, with the same client_msg_id.
  retry(id) {
    const p = this.pending.get(id);
    if (p) {
      p.state = 'sending';
      p.error = null;
      this.awaitingReply = true;
      this.sendRaw({ type: 'user_message', client_msg_id: id, content: p.content });
    } else {
      const m = [...this.messages.values()].find((x) => x.clientMsgId === id);
      if (!m) return;
      m.error = null;
      this.awaitingReply = true;
      this.sendRaw({ type: 'user_message', client_msg_id: id, content: m.content });
    }
    this.onChange();
  }

  upsert(seq, role, content, extra = {}) {
    const m = this.messages.get(seq) || { seq, role, content: '' };
    Object.assign(m, { role, content }, extra);
    this.messages.set(seq, m);
    return m;
  }

  complete(seq) {
    if (seq > this.lastSeq) this.lastSeq = seq;
  }

  handle(msg) {
    switch (msg.type) {
      case 'ready':
        this.ready = true;
        this.attempt = 0;
        this.scenario = msg.scenario || this.scenario;
        this.onStatus('connected');
        // everything after what we have (on first connect: the whole history)
        this.sendRaw({ type: 'resume', after_seq: this.lastSeq });
        // messages that never got their ack go again, with the same id
        for (const p of this.pending.values()) {
          if (p.state === 'sending') {
            this.sendRaw({ type: 'user_message', client_msg_id: p.id, content: p.content });
          }
        }
        break;
      case 'ack': {
        const p = this.pending.get(msg.client_msg_id);
        this.pending.delete(msg.client_msg_id);
        const known = this.messages.get(msg.seq);
        if (p && !known) this.upsert(msg.seq, 'user', p.content, { clientMsgId: p.id });
        else if (known) known.clientMsgId = msg.client_msg_id;
        this.complete(msg.seq);
        break;
      }
      case 'assistant_start':
        if (!this.messages.get(msg.seq)?.done) {
          this.upsert(msg.seq, 'assistant', '', { streaming: true });
        }
        this.awaitingReply = true;
        break;
      case 'assistant_delta': {
        const m = this.messages.get(msg.seq);
        if (m?.done) break;
        if (!m) this.upsert(msg.seq, 'assistant', msg.delta, { streaming: true });
        else m.content += msg.delta;
        break;
      }
      case 'assistant_end':
        this.upsert(msg.seq, 'assistant', msg.content, { streaming: false, done: true });
        this.complete(msg.seq);
        this.awaitingReply = false;
        break;
      case 'message': {
        const known = this.messages.get(msg.seq);
        if (known?.done) break;
        this.upsert(msg.seq, msg.role, msg.content,
          { streaming: false, done: true, created_at: msg.created_at });
        this.complete(msg.seq);
        if (msg.role === 'assistant') this.awaitingReply = false;
        break;
      }
      case 'error': {
        this.awaitingReply = false;
        // the failed message: an unacknowledged one, else the last user message
        let target = [...this.pending.values()].find((p) => p.state === 'sending');
        if (target) {
          target.state = 'error';
          target.error = msg;
        } else {
          const users = [...this.messages.values()].filter((m) => m.role === 'user');
          const last = users.sort((a, b) => b.seq - a.seq)[0];
          if (last) last.error = msg;
          else this.lastError = msg;
        }
        for (const m of this.messages.values()) {
          if (m.streaming && !m.done) { m.streaming = false; if (!m.content) this.messages.delete(m.seq); }
        }
        break;
      }
      case 'watching':
        // a trainer watches read-only (GET /sessions/{id}/watch), or stopped
        if (msg.watching) this.watchers.set(msg.watcher?.id, msg.watcher?.display_name || 'A trainer');
        else this.watchers.delete(msg.watcher?.id);
        break;
      case 'resolved':
        this.stop();
        this.onResolved();
        break;
      default:
        return;
    }
    this.onChange(msg);
  }

  // Complete messages in seq order, then the pending ones.
  items() {
    const done = [...this.messages.values()].sort((a, b) => a.seq - b.seq)
      .map((m) => ({ key: `s${m.seq}`, ...m }));
    const pend = [...this.pending.values()].map((p) => ({
      key: `c${p.id}`, role: 'user', content: p.content, pending: true,
      state: p.state, error: p.error, clientMsgId: p.id,
    }));
    return done.concat(pend);
  }

  get streaming() {
    return [...this.messages.values()].some((m) => m.streaming);
  }
}
