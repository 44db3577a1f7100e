// The dashboard: progress, scenario library, leaderboard, past sessions.

import { api, explain } from './api.js';
import { h, announce, initials, fmtDate } from './dom.js';
import { go, state, setUser } from './app.js';
import { myAssignmentsCard } from './assignments.js';

export function levelBar(p, { id = 'level-bar', from } = {}) {
  const pct = p.next_level_xp > 0 ? Math.min(100, Math.round((100 * p.level_xp) / p.next_level_xp)) : 100;
  const start = from === undefined ? pct : from;
  const fill = h('div.bar-fill', { style: { width: `${start}%` } });
  const bar = h('div.bar', {
    id, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': p.next_level_xp,
    'aria-valuenow': p.level_xp, 'aria-label': `Level ${p.level} progress`,
    'aria-valuetext': `${p.level_xp} of ${p.next_level_xp} XP towards level ${p.level + 1}`,
  }, fill);
  bar.animateTo = () => requestAnimationFrame(() => requestAnimationFrame(() => { fill.style.width = `${pct}%`; }));
  return bar;
}

const difficultyLabel = { easy: 'Easy', medium: 'Medium', hard: 'Hard' };

function scenarioCard(s, onStart) {
  const btn = h('button.btn.btn-primary', { type: 'button', 'aria-label': `Start “${s.title}”` },
    s.completed ? 'Practise again' : 'Start');
  btn.addEventListener('click', () => onStart(s, btn));
  return h('li.card.scenario', { dataset: { slug: s.slug } },
    h('div.scenario-top',
      h('span', { class: `badge badge-${s.difficulty}` }, difficultyLabel[s.difficulty] || s.difficulty),
      s.completed ? h('span.badge.badge-done', '✓ Completed') : null,
      h('span.reward', `+${s.xp_reward} XP`)),
    h('h3', s.title),
    h('div.persona',
      h('span.avatar', { 'aria-hidden': 'true' }, initials(s.persona?.name)),
      h('div', h('strong', s.persona?.name), h('div.muted.small', s.persona?.role))),
    h('p.desc', s.description),
    h('div.scenario-foot',
      h('span.muted.small', s.best_score === null || s.best_score === undefined
        ? 'Not scored yet' : ['Best score ', h('strong', String(s.best_score))]),
      btn));
}

async function startScenario(s, btn, errBox) {
  btn.disabled = true;
  btn.textContent = 'Starting…';
  try {
    const sess = await api('POST', '/sessions', { scenario_id: s.id });
    go(`#/chat/${sess.id}`);
  } catch (e) {
    btn.disabled = false;
    btn.textContent = 'Start';
    errBox.textContent = `Could not start “${s.title}”: ${explain(e)}`;
    errBox.hidden = false;
  }
}

function leaderboardList(rows) {
  if (!rows.length) return h('p.muted.empty', 'No XP earned in this period yet. Be the first!');
  return h('ol.leaderboard',
    rows.map((r) => h('li', { class: state.user && r.user.id === state.user.id ? 'me' : '' },
      h('span.rank', `#${r.rank}`),
      h('span.avatar.sm', { 'aria-hidden': 'true' }, initials(r.user.display_name)),
      h('span.lb-name', r.user.display_name, state.user && r.user.id === state.user.id ? h('span.visually-hidden', ' (you)') : null),
      h('span.lb-xp', `${r.xp} XP`),
      h('span.muted.small', `Lv ${r.level}`))));
}

export async function renderDashboard() {
  const [progress, scenarios, sessions, board, assigned] = await Promise.all([
    api('GET', '/me/progress'),
    api('GET', '/scenarios'),
    api('GET', '/sessions'),
    api('GET', '/leaderboard?period=week'),
    // the dashboard stays usable if this one fails
    api('GET', '/me/assignments').catch(() => []),
  ]);
  if (state.user) setUser({ ...state.user, xp: progress.xp, level: progress.level });

  const errBox = h('div.alert.alert-error', { role: 'alert', hidden: true });

  // progress
  const stats = h('section.card.progress-card', { 'aria-labelledby': 'progress-title' },
    h('div.progress-head',
      h('div.level-badge', { 'aria-hidden': 'true' }, String(progress.level)),
      h('div',
        h('h2', { id: 'progress-title' }, `Level ${progress.level}`),
        h('p.muted', { id: 'xp-total' }, `${progress.xp} XP in total`))),
    levelBar(progress),
    h('p.small.muted.bar-caption', `${progress.level_xp} / ${progress.next_level_xp} XP to level ${progress.level + 1}`),
    h('div.stat-row',
      h('div.stat', h('span.stat-num', `${progress.streak_days}`), h('span.stat-label', progress.streak_days === 1 ? 'day streak' : 'day streak')),
      h('div.stat', h('span.stat-num', `${progress.achievements.length}`), h('span.stat-label', 'achievements')),
      h('div.stat', h('span.stat-num', `${scenarios.filter((s) => s.completed).length}/${scenarios.length}`), h('span.stat-label', 'scenarios done'))),
    h('h3.sub', 'Achievements'),
    progress.achievements.length
      ? h('ul.chips', progress.achievements.map((a) => h('li.chip', { title: a.unlocked_at ? `Unlocked ${fmtDate(a.unlocked_at)}` : '' }, h('span.star', { 'aria-hidden': 'true' }, '★'), ' ', a.title)))
      : h('p.muted.small', 'Resolve your first conversation to unlock achievements.'));

  // leaderboard with week / all time tabs
  const lbBody = h('div', { id: 'leaderboard-panel', role: 'tabpanel' }, leaderboardList(board));
  const tabs = ['week', 'all'].map((period) => {
    const t = h('button.tab', { type: 'button', role: 'tab', id: `lb-${period}`, 'aria-controls': 'leaderboard-panel',
      'aria-selected': String(period === 'week'), tabindex: period === 'week' ? 0 : -1 },
    period === 'week' ? 'This week' : 'All time');
    t.addEventListener('click', () => selectTab(t, period));
    t.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
        const other = tabs.find((x) => x !== t);
        other.focus();
        other.click();
      }
    });
    return t;
  });
  async function selectTab(t, period) {
    for (const x of tabs) { x.setAttribute('aria-selected', String(x === t)); x.tabIndex = x === t ? 0 : -1; }
    lbBody.setAttribute('aria-labelledby', t.id);
    lbBody.setAttribute('aria-busy', 'true');
    try {
      const rows = await api('GET', `/leaderboard?period=${period}`);
      lbBody.replaceChildren(leaderboardList(rows));
    } catch (e) {
      lbBody.replaceChildren(h('p.alert.alert-error', explain(e)));
    }
    lbBody.removeAttribute('aria-busy');
  }
  lbBody.setAttribute('aria-labelledby', 'lb-week');
  const leaderboard = h('section.card', { 'aria-labelledby': 'lb-title' },
    h('h2', { id: 'lb-title' }, 'Leaderboard'),
    h('div.tabs', { role: 'tablist', 'aria-label': 'Leaderboard period' }, tabs),
    lbBody);

  // past sessions
  const history = h('section.card', { 'aria-labelledby': 'hist-title' },
    h('h2', { id: 'hist-title' }, 'Your sessions'),
    sessions.length
      ? h('ul.history', sessions.slice(0, 20).map((s) => {
        const active = s.status === 'active';
        return h('li',
          h('a', { href: active ? `#/chat/${s.id}` : `#/session/${s.id}` },
            h('span.hist-title', s.scenario?.title || `Session ${s.id}`),
            h('span.muted.small', fmtDate(s.created_at))),
          active
            ? h('span.badge.badge-active', 'In progress')
            : h('span.score-pill', { 'aria-label': `score ${s.overall ?? 'none'}` }, s.overall ?? '–'));
      }))
      : h('p.muted.empty', 'No sessions yet. Pick a scenario to begin.'));

  const library = h('section', { 'aria-labelledby': 'lib-title' },
    h('div.section-head', h('h2', { id: 'lib-title' }, 'Scenario library'),
      h('p.muted', 'Choose a conversation to practise. Harder scenarios earn more XP.')),
    errBox,
    h('ul.scenario-grid', scenarios.map((s) => scenarioCard(s, (sc, btn) => startScenario(sc, btn, errBox)))));

  const name = state.user?.display_name || 'there';
  const el = h('div.page.dashboard',
    h('div.page-head', h('h1', `Hi, ${name}`), h('p.muted', 'Ready for your next conversation?')),
    h('div.dash-grid',
      h('div.dash-main', myAssignmentsCard(assigned, (sc, btn) => startScenario(sc, btn, errBox)), library),
      h('div.dash-side', stats, leaderboard, history)));
  return { el, title: 'Dashboard', page: 'dashboard' };
}
