// Watch live (issue 9, item 7; #/watch/ID): a trainer follows a trainee's
// chat as it happens over GET /sessions/{id}/watch, read-only.  The
// history comes from GET /review/sessions/{id}; the socket's events
// carry the persona's reply as it streams, but a trainee's message only
// as its ack (a seq, no text), so an ack we cannot show is read back
// from the transcript, where it was stored before the ack was sent.

import { api, explain } from './api.js';
import { h, announce } from './dom.js';
import { refreshUser, isTrainer } from './app.js';
import { notForYou } from './org.js';

const CLOSED = {
  1000: 'The watch ended.',
  1001: 'The server is restarting.',
  1008: 'The watch was ended: your sign-in or your role changed.',
};

export async function renderWatch({ params }) {
  await refreshUser();
  if (!isTrainer()) return notForYou('watch', 'Watching a session live');
  const id = Number(params[0]);
  const [r, scenarios] = await Promise.all([
    api('GET', `/review/sessions/${id}`),
    api('GET', '/scenarios').catch(() => []),
  ]);
  const persona = scenarios.find((x) => x.id === r.session.scenario.id)?.persona?.name || 'Persona';
  const trainee = r.trainee?.display_name || 'Trainee';

  const messages = new Map();   // seq -> {seq, role, content, streaming, pending}
  const els = new Map();        // seq -> li
  const log = h('ol.chat-log', { id: 'watch-log', role: 'log', 'aria-live': 'polite',
    'aria-label': `${trainee}'s conversation with ${persona}` });
  const scroller = h('div.chat-scroll', log);
  const stateEl = h('p.watch-state', { id: 'watch-state', role: 'status' });
  const others = h('p.muted.small', { id: 'watch-others', hidden: true });
  const after = h('div.btn-row', { id: 'watch-after', hidden: true });
  const watchers = new Map();
  let ws = null;
  let stopped = false;
  let ready = false;
  let ended = false;

  function merge(transcript) {
    for (const m of transcript) {
      const known = messages.get(m.seq);
      if (!known || known.pending || (!known.streaming && known.content !== m.content)) {
        messages.set(m.seq, { seq: m.seq, role: m.role, content: m.content });
      }
    }
    paint();
  }

  async function readBack() {
    try { merge((await api('GET', `/review/sessions/${id}`)).transcript); } catch { /* the next event tries again */ }
  }

  function paint() {
    const seqs = [...messages.keys()].sort((a, b) => a - b);
    let prev = null;
    for (const seq of seqs) {
      const m = messages.get(seq);
      let li = els.get(seq);
      if (!li) {
        li = h('li', { dataset: { seq } }, h('span.msg-who'), h('div.msg-body'));
        els.set(seq, li);
      }
      li.className = `msg msg-${m.role}${m.streaming ? ' streaming' : ''}${m.pending ? ' pending' : ''}`;
      li.querySelector('.msg-who').textContent = m.role === 'user' ? trainee : persona;
      const text = m.pending ? 'Sent a message…' : m.content;
      const body = li.querySelector('.msg-body');
      if (body.textContent !== text) body.textContent = text;
      const want = prev ? prev.nextSibling : log.firstChild;
      if (want !== li) log.insertBefore(li, want);
      prev = li;
    }
    requestAnimationFrame(() => { scroller.scrollTop = scroller.scrollHeight; });
  }

  function setState(s, text) {
    stateEl.dataset.state = s;
    stateEl.textContent = text;
  }

  function finish(s, text, { again = false } = {}) {
    setState(s, text);
    announce(text);
    const buttons = [h('a.btn.btn-secondary', { href: `#/review/${id}` }, 'Open the review')];
    if (again) {
      const btn = h('button.btn.btn-primary', { type: 'button' }, 'Watch again');
      btn.addEventListener('click', () => { after.hidden = true; connect(); });
      buttons.unshift(btn);
    }
    after.replaceChildren(...buttons);
    after.hidden = false;
  }

  function paintOthers() {
    const names = [...watchers.values()];
    others.hidden = !names.length;
    others.textContent = names.length ? `Also watching: ${names.join(', ')}.` : '';
  }

  function handle(msg) {
    switch (msg.type) {
      case 'ready':
        ready = true;
        setState('live', 'Watching live · read-only');
        announce(`Watching ${trainee} live.`);
        if (msg.last_seq > Math.max(0, ...messages.keys())) readBack();
        break;
      case 'ack':
        if (!messages.has(msg.seq)) {
          messages.set(msg.seq, { seq: msg.seq, role: 'user', content: '', pending: true });
          readBack();
        }
        break;
      case 'assistant_start':
        messages.set(msg.seq, { seq: msg.seq, role: 'assistant', content: '', streaming: true });
        break;
      case 'assistant_delta': {
        const m = messages.get(msg.seq);
        if (m?.streaming) m.content += msg.delta;
        else if (!m) messages.set(msg.seq, { seq: msg.seq, role: 'assistant', content: msg.delta, streaming: true });
        break;
      }
      case 'assistant_end':
        messages.set(msg.seq, { seq: msg.seq, role: 'assistant', content: msg.content });
        break;
      case 'error':
        for (const m of messages.values()) if (m.streaming) { m.streaming = false; if (!m.content) messages.delete(m.seq); }
        announce(`The persona's reply failed (${msg.code}).`);
        break;
      case 'watching':
        if (msg.watching) watchers.set(msg.watcher?.id, msg.watcher?.display_name || 'a trainer');
        else watchers.delete(msg.watcher?.id);
        paintOthers();
        return;
      case 'resolved':
        ended = true;
        finish('ended', `${trainee} resolved the session: it is over.`);
        break;
      default:
        return;
    }
    paint();
  }

  function connect() {
    if (stopped) return;
    ready = false;
    setState('connecting', 'Connecting…');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const sock = new WebSocket(`${proto}//${location.host}/sessions/${id}/watch`);
    ws = sock;
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      handle(msg);
    };
    sock.onclose = async (ev) => {
      if (sock !== ws || stopped) return;
      ws = null;
      for (const m of messages.values()) if (m.streaming) m.streaming = false;
      paint();
      if (ended) return;
      if (ready) {
        finish('closed', `${CLOSED[ev.code] || 'The connection was lost.'} You are no longer watching.`,
          { again: ev.code !== 1008 });
        return;
      }
      // refused before the upgrade: say why
      try {
        const now = await api('GET', `/review/sessions/${id}`);
        merge(now.transcript);
        if (now.session.status !== 'active') {
          ended = true;
          finish('ended', 'This session is resolved: there is nothing live to watch.');
        } else {
          finish('closed', 'The live view could not be opened.', { again: true });
        }
      } catch (e) {
        finish('closed', `The live view could not be opened: ${explain(e)}`);
      }
    };
  }

  merge(r.transcript);
  const el = h('div.page.chat-page.watch-page',
    h('p', h('a', { href: `#/team/${r.trainee.id}` }, `← ${trainee}`)),
    h('div.card.chat-card',
      h('div.chat-head',
        h('div.persona-head',
          h('div.persona-text',
            h('p.eyebrow', `Watch live · session ${id}`),
            h('h1', `${trainee} with ${persona}`),
            h('p.muted.small', r.session.scenario.title)),
          h('div.chat-actions', stateEl)),
        h('p.muted.small', 'You see the conversation as it happens. You cannot write in it; the trainee is told that you are watching.'),
        others, after),
      scroller));
  return {
    el, title: `Watching ${trainee}`, page: 'watch',
    mounted() {
      paint();
      if (r.session.status === 'active') connect();
      else { ended = true; finish('ended', 'This session is resolved: there is nothing live to watch.'); }
    },
    cleanup() { stopped = true; if (ws) { const s = ws; ws = null; s.close(1000); } },
  };
}
