// The chat page, the summary after resolving, and a past session read-only.

import { api, explain } from './api.js';
import { h, svg, announce, initials, fmtDate } from './dom.js';
import { go, state, setUser } from './app.js';
import { ChatClient } from './chat.js';
import { levelBar } from './dashboard.js';

function personaHeader(scenario, extra) {
  const p = scenario.persona || {};
  return h('div.persona-head',
    h('span.avatar.lg', { 'aria-hidden': 'true' }, initials(p.name)),
    h('div.persona-text',
      h('p.eyebrow', scenario.title),
      h('h1', p.name || 'Persona'),
      h('p.muted.small', p.role)),
    extra);
}

export function bubble(m, personaName, userName = 'You') {
  const who = m.role === 'user' ? userName : personaName;
  return h('li', { class: `msg msg-${m.role}` },
    h('span.msg-who', who),
    h('div.msg-body', m.content));
}

// A trial of a draft (POST /authoring/scenarios/{id}/try): the editor
// remembers which scenario it tried, for the way back.  It earns no XP.
function trialOf(sessionId) {
  const v = sessionStorage.getItem(`trial:${sessionId}`);
  return v ? Number(v) : null;
}

function trialBanner(scenarioId) {
  return h('p.trial-note', { id: 'trial-note' },
    h('span.badge.badge-trial', 'Trial'),
    ' You are trying your draft: this conversation earns no XP and stays off the leaderboard. ',
    h('a', { href: `#/author/${scenarioId}` }, 'Back to the editor'));
}

// ---------------------------------------------------------------- chat

export async function renderChat({ params }) {
  const id = Number(params[0]);
  const sess = await api('GET', `/sessions/${id}`);
  if (sess.status !== 'active') {
    go(`#/session/${id}`);
    return { el: h('div'), title: '', page: 'chat' };
  }
  const scenario = sess.scenario;
  const personaName = scenario.persona?.name || 'Persona';
  let before = null;
  api('GET', '/me/progress').then((p) => { before = p; }).catch(() => {});

  const status = h('span.conn', { id: 'conn-status', role: 'status', 'aria-live': 'polite' }, 'Connecting…');
  const resolveBtn = h('button.btn.btn-primary', { type: 'button', id: 'resolve' }, 'Resolve');
  const resolveErr = h('div.alert.alert-error', { role: 'alert', hidden: true });
  const log = h('ol.chat-log', { id: 'chat-log', role: 'log', 'aria-live': 'polite', 'aria-label': `Conversation with ${personaName}` });
  const typing = h('div.typing', { id: 'typing', hidden: true, 'aria-hidden': 'true' },
    h('span.dots', h('span'), h('span'), h('span')), ` ${personaName} is typing…`);
  const input = h('textarea', { id: 'chat-input', rows: 2, maxlength: 4000, 'data-autofocus': true,
    placeholder: `Reply to ${personaName}…`, 'aria-describedby': 'chat-hint' });
  const sendBtn = h('button.btn.btn-primary.send', { type: 'submit' }, 'Send');
  const form = h('form.composer', { 'aria-label': 'Send a message' },
    h('label.visually-hidden', { for: 'chat-input' }, `Your message to ${personaName}`),
    input, sendBtn,
    h('p.hint.small', { id: 'chat-hint' }, 'Enter to send, Shift+Enter for a new line.'));

  // a trainer watching live (the chat's "watching" events) is said plainly
  const watchNote = h('p.watch-note', { id: 'watch-note', role: 'status', hidden: true });
  const els = new Map();   // item key -> li
  const client = new ChatClient(id, {
    onChange: render,
    onStatus(s, delay) {
      status.dataset.state = s;
      status.replaceChildren(
        s === 'connected' ? 'Connected'
          : s === 'connecting' ? 'Connecting…'
            : `Connection lost. Reconnecting in ${Math.ceil(delay / 1000)}s…`);
      if (s === 'reconnecting') {
        const now = h('button.linklike', { type: 'button' }, 'Retry now');
        now.addEventListener('click', () => { client.attempt = 0; client.connect(); });
        status.append(' ', now);
      }
    },
    onResolved() {
      announce('This session was resolved.');
      go(`#/summary/${id}`);
    },
    async onRefused() {
      // refused before the upgrade: find out why
      try {
        const s = await api('GET', `/sessions/${id}`);
        if (s.status !== 'active') { client.stop(); go(`#/summary/${id}`); }
      } catch (e) {
        if (e.status === 404 || e.status === 401) client.stop();
      }
    },
  });
  for (const m of sess.messages || []) {
    client.upsert(m.seq, m.role, m.content, { done: true });
    client.complete(m.seq);
  }
  window.__scenarioChat = client;   // for tests and debugging

  function paintWatchers() {
    const names = [...client.watchers.values()];
    const text = names.length
      ? `${names.join(' and ')} ${names.length === 1 ? 'is' : 'are'} watching this conversation live (read-only).`
      : '';
    if (watchNote.textContent === text) return;
    watchNote.textContent = text;
    watchNote.hidden = !names.length;
    watchNote.dataset.watching = String(names.length > 0);
  }

  function render() {
    paintWatchers();
    const items = client.items();
    const seen = new Set();
    let prev = null;
    for (const it of items) {
      seen.add(it.key);
      let li = els.get(it.key);
      if (!li) {
        li = h('li', { class: `msg msg-${it.role}` },
          h('span.msg-who', it.role === 'user' ? 'You' : personaName),
          h('div.msg-body'),
          h('div.msg-meta'));
        els.set(it.key, li);
      }
      if (it.seq !== undefined) li.dataset.seq = it.seq;
      li.classList.toggle('pending', !!it.pending);
      li.classList.toggle('streaming', !!it.streaming);
      li.setAttribute('aria-busy', it.streaming ? 'true' : 'false');
      const body = li.querySelector('.msg-body');
      if (body.textContent !== it.content) body.textContent = it.content;
      const meta = li.querySelector('.msg-meta');
      const err = it.error || (it.state === 'error' ? it.error : null);
      const metaKey = err ? `e:${err.code}` : it.pending ? 'p' : '';
      if (meta.dataset.k !== metaKey) {
        meta.dataset.k = metaKey;
        meta.replaceChildren();
        if (err) {
          const again = h('button.btn.btn-small', { type: 'button' }, 'Send again');
          again.addEventListener('click', () => client.retry(it.clientMsgId));
          meta.append(h('span.msg-error', { role: 'alert' }, `Not answered: ${err.message || err.code}. `),
            it.clientMsgId ? again : '');
        } else if (it.pending) {
          meta.append(h('span.muted', 'Sending…'));
        }
      }
      // keep DOM order = items order
      const want = prev ? prev.nextSibling : log.firstChild;
      if (want !== li) log.insertBefore(li, want);
      prev = li;
    }
    for (const [k, li] of els) if (!seen.has(k)) { li.remove(); els.delete(k); }
    const waiting = client.awaitingReply && !items.some((i) => i.streaming && i.content);
    typing.hidden = !waiting;
    requestAnimationFrame(() => { scroller.scrollTop = scroller.scrollHeight; });
  }

  function sendCurrent() {
    const text = input.value.trim();
    if (!text) return;
    client.send(text);
    input.value = '';
    input.focus();
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); sendCurrent(); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendCurrent(); }
  });

  resolveBtn.addEventListener('click', async () => {
    resolveErr.hidden = true;
    resolveBtn.disabled = true;
    resolveBtn.textContent = 'Scoring…';
    try {
      const assessment = await api('POST', `/sessions/${id}/resolve`);
      client.stop();
      state.lastAssessment = { sessionId: id, assessment, before, scenario };
      go(`#/summary/${id}`);
    } catch (e) {
      resolveBtn.disabled = false;
      resolveBtn.textContent = 'Resolve';
      resolveErr.textContent = e.code === 'conflict'
        ? `Say something to ${personaName} before resolving the conversation.`
        : `Could not resolve: ${explain(e)}`;
      resolveErr.hidden = false;
    }
  });

  const scroller = h('div.chat-scroll', log, typing);
  const goal = scenario.goal
    ? h('details.goal', h('summary', 'Your goal'), h('p', scenario.goal)) : null;
  const trial = trialOf(id);
  const el = h('div.page.chat-page',
    h('div.card.chat-card',
      h('div.chat-head',
        personaHeader(scenario, h('div.chat-actions', status, resolveBtn)),
        trial ? trialBanner(trial) : null,
        watchNote, goal, resolveErr),
      scroller,
      form));

  return {
    el, title: `Chat with ${personaName}`, page: 'chat',
    mounted() { render(); client.connect(); },
    cleanup() { client.stop(); if (window.__scenarioChat === client) delete window.__scenarioChat; },
  };
}

// ---------------------------------------------------------------- summary

export const DIMENSIONS = [
  ['empathy', 'Empathy'], ['clarity', 'Clarity'],
  ['resolution', 'Resolution'], ['efficiency', 'Efficiency'],
];

export function scoreRing(score) {
  const r = 52; const c = 2 * Math.PI * r;
  const arc = svg('circle', { cx: 60, cy: 60, r, fill: 'none', stroke: 'currentColor', 'stroke-width': 12,
    'stroke-linecap': 'round', 'stroke-dasharray': `${c}`, 'stroke-dashoffset': `${c}`,
    transform: 'rotate(-90 60 60)', class: 'ring-arc' });
  const el = h('div.ring', { id: 'overall', role: 'img', 'aria-label': `Overall score ${score} out of 100` },
    svg('svg', { viewBox: '0 0 120 120', width: 140, height: 140, 'aria-hidden': 'true' },
      svg('circle', { cx: 60, cy: 60, r, fill: 'none', stroke: 'currentColor', 'stroke-width': 12, class: 'ring-track' }),
      arc),
    h('div.ring-num', { 'aria-hidden': 'true' }, h('strong', String(score)), h('span', '/100')));
  el.play = () => requestAnimationFrame(() => requestAnimationFrame(() => {
    arc.style.strokeDashoffset = String(c * (1 - score / 100));
  }));
  el.dataset.score = score;
  return el;
}

export function tone(v) { return v >= 75 ? 'good' : v >= 50 ? 'ok' : 'low'; }

export function dimensionChart(dims) {
  const rows = DIMENSIONS.map(([k, label]) => {
    const v = Math.round(dims?.[k] ?? 0);
    return h('li.dim', { dataset: { dim: k } },
      h('span.dim-label', { id: `dim-${k}` }, label),
      h('div.dim-track', { role: 'meter', 'aria-labelledby': `dim-${k}`, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': v },
        h('div', { class: `dim-fill tone-${tone(v)}`, style: { '--v': `${v}%` } })),
      h('span.dim-val', String(v)));
  });
  return h('ul.dims', { id: 'dimensions', 'aria-label': 'Scores by dimension' }, rows);
}

// the rubric as a checklist: each goal met with the trainee's own words,
// or not met (issue 8)
function criteriaBlock(perf) {
  const list = perf.criteria || [];
  if (!list.length) return [];
  return [
    h('h2.sub', 'Checklist'),
    perf.passed !== undefined
      ? h('p', { id: 'passed' }, perf.passed
        ? `Passed (pass mark ${perf.pass_mark}).`
        : perf.manipulation
          ? 'Not passed: text addressed to the grading was found.'
          : `Not passed yet (pass mark ${perf.pass_mark}).`)
      : null,
    perf.review_suggested
      ? h('p.muted', { id: 'review' }, 'The rules and the model disagree '
        + 'here: a person may review this assessment.')
      : null,
    h('ul.criteria', { id: 'criteria' }, list.map((c) => h('li',
      { class: c.met ? 'met' : 'unmet', 'data-key': c.key },
      h('span', c.met ? '\u2713 ' : '\u2717 '),
      h('span', c.description || c.key),
      c.met && c.quote ? h('q', c.quote) : null,
      c.met && c.turn ? h('span.muted', ` (turn ${c.turn}`
        + `${c.judge === 'credited' ? ', found by the model' : ''})`) : null,
      !c.met && c.suggestion ? h('p.muted', c.suggestion) : null))),
  ].filter(Boolean);
}

function performanceBlock(perf) {
  const m = perf.metrics || {};
  return [
    h('div.summary-scores',
      scoreRing(Math.round(perf.overall)),
      dimensionChart(perf.dimensions)),
    h('h2.sub', 'Feedback'),
    (perf.feedback || []).length
      ? h('ul.feedback', { id: 'feedback' }, perf.feedback.map((f) => h('li', f)))
      : h('p.muted', 'No feedback for this session.'),
    ...criteriaBlock(perf),
    h('dl.metrics',
      h('div', h('dt', 'Turns'), h('dd', String(m.turns ?? '–'))),
      h('div', h('dt', 'Duration'), h('dd', m.duration_s !== undefined ? `${Math.round(m.duration_s / 60)} min ${Math.round(m.duration_s % 60)} s` : '–')),
      h('div', h('dt', 'Avg. response'), h('dd', m.avg_response_s !== undefined ? `${Number(m.avg_response_s).toFixed(1)} s` : '–'))),
  ];
}

async function tryAgain(scenarioId, btn, trial) {
  btn.disabled = true;
  try {
    const s = trial
      ? await api('POST', `/authoring/scenarios/${trial}/try`)
      : await api('POST', '/sessions', { scenario_id: scenarioId });
    if (trial) sessionStorage.setItem(`trial:${s.id}`, String(trial));
    go(`#/chat/${s.id}`);
  } catch (e) {
    btn.disabled = false;
    announce(explain(e));
  }
}

export async function renderSummary({ params }) {
  const id = Number(params[0]);
  const [sess, progress] = await Promise.all([api('GET', `/sessions/${id}`), api('GET', '/me/progress')]);
  if (sess.status === 'active') { go(`#/chat/${id}`); return { el: h('div'), title: '', page: 'summary' }; }
  const last = state.lastAssessment?.sessionId === id ? state.lastAssessment : null;
  const perf = last?.assessment.performance || sess.performance;
  const rewards = last?.assessment.rewards;
  if (state.user) setUser({ ...state.user, xp: progress.xp, level: progress.level });

  const before = last?.before;
  let from = 0;
  if (before && before.level === progress.level && before.next_level_xp > 0) {
    from = Math.round((100 * before.level_xp) / before.next_level_xp);
  }
  const bar = levelBar(progress, { id: 'summary-level-bar', from });

  const trial = trialOf(id);
  const again = h('button.btn.btn-primary', { type: 'button' }, 'Try again');
  again.addEventListener('click', () => tryAgain(sess.scenario.id, again, trial));

  const rewardCard = h('section.card.reward-card', { 'aria-labelledby': 'reward-title' },
    h('h2', { id: 'reward-title' }, 'Rewards'),
    rewards
      ? h('p.xp-gain', { id: 'xp-gained' }, `+${rewards.xp_awarded} XP`)
      : h('p.muted', 'Rewards were awarded when this session was resolved.'),
    rewards?.level_up ? h('p.level-up', { role: 'status' }, `★ Level up! You reached level ${rewards.level}.`) : null,
    h('div.level-line', h('strong', `Level ${progress.level}`), h('span.muted.small', `${progress.level_xp} / ${progress.next_level_xp} XP`)),
    bar,
    h('p.small.muted', `${progress.xp} XP in total`),
    rewards?.achievements_unlocked?.length
      ? [h('h3.sub', 'Achievements unlocked'),
        h('ul.chips', { id: 'achievements-unlocked' }, rewards.achievements_unlocked.map((a) => h('li.chip.new', h('span.star', { 'aria-hidden': 'true' }, '★'), ' ', a.title)))]
      : null);

  const el = h('div.page.summary-page',
    h('div.page-head',
      h('p.eyebrow', sess.scenario.title),
      h('h1', 'Conversation summary'),
      h('p.muted', `With ${sess.scenario.persona?.name || 'the persona'}`)),
    trial ? trialBanner(trial) : null,
    h('div.summary-grid',
      h('section.card', { 'aria-labelledby': 'perf-title' },
        h('h2.visually-hidden', { id: 'perf-title' }, 'Your performance'),
        perf ? performanceBlock(perf) : h('p.muted', 'No assessment is available for this session.')),
      h('div.summary-side',
        rewardCard,
        h('section.card.next-card', { 'aria-label': 'What next' },
          h('h2', 'What next?'),
          h('div.btn-row', again,
            h('a.btn.btn-secondary', { href: '#/' }, 'Pick another scenario'),
            h('a.btn.btn-ghost', { href: `#/session/${id}` }, 'Read the transcript'))))));
  return {
    el, title: 'Summary', page: 'summary',
    mounted() {
      el.querySelector('.ring')?.play();
      bar.animateTo();
      if (perf) announce(`Overall score ${Math.round(perf.overall)} out of 100.`);
    },
  };
}

// ---------------------------------------------------------------- read-only

// a trainer's comments and score overrides, as the owner reads them
function trainerNotes(notes) {
  if (!notes || (!notes.comments.length && !notes.overrides.length)) return null;
  return h('section.card', { 'aria-labelledby': 'notes-title', id: 'trainer-notes' },
    h('h2', { id: 'notes-title' }, 'Your trainer’s review'),
    notes.overrides.map((o) => h('p.override', { dataset: { id: o.id } },
      h('strong', `Score changed from ${o.old_score} to ${o.new_score}`),
      ` by ${o.author?.display_name || 'your trainer'}: `, o.reason)),
    h('ul.comments', notes.comments.map((c) => h('li.comment',
      h('div.muted.small', h('strong', c.author?.display_name || 'Your trainer'), ` · ${fmtDate(c.created_at)}`),
      h('p.comment-body', c.body)))));
}

export async function renderSession({ params }) {
  const id = Number(params[0]);
  const [sess, notes] = await Promise.all([
    api('GET', `/sessions/${id}`),
    api('GET', `/sessions/${id}/review`).catch(() => null),
  ]);
  const scenario = sess.scenario;
  const personaName = scenario.persona?.name || 'Persona';
  const el = h('div.page.session-page',
    h('p', h('a', { href: '#/' }, '← Dashboard')),
    h('div.card',
      personaHeader(scenario, h('div.chat-actions',
        h('span', { class: `badge badge-${sess.status === 'active' ? 'active' : 'done'}` },
          sess.status === 'active' ? 'In progress' : 'Resolved'),
        sess.status === 'active' ? h('a.btn.btn-primary', { href: `#/chat/${id}` }, 'Continue') : null)),
      h('p.muted.small', `Started ${fmtDate(sess.created_at)}${sess.resolved_at ? ` · resolved ${fmtDate(sess.resolved_at)}` : ''}`),
      h('h2.sub', 'Transcript'),
      sess.messages.length
        ? h('ol.chat-log.readonly', { 'aria-label': 'Transcript' }, sess.messages.map((m) => bubble(m, personaName)))
        : h('p.muted', 'No messages.')),
    sess.performance
      ? h('section.card', { 'aria-labelledby': 'assess-title' },
        h('h2', { id: 'assess-title' }, 'Assessment'), performanceBlock(sess.performance))
      : null,
    trainerNotes(notes));
  return {
    el, title: `Session with ${personaName}`, page: 'session',
    mounted() { el.querySelector('.ring')?.play(); },
  };
}
