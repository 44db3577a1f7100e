// The trainer's view of the team (issue 9, item 7): every trainee's
// attempts and scores per dimension, the criteria the team meets least,
// the CSV export (#/team); one trainee's sessions over time (#/team/ID),
// each linked to its review, and to watch live while it runs.

import { api } from './api.js';
import { h, svg, initials, fmtDate } from './dom.js';
import { refreshUser, isTrainer } from './app.js';
import { notForYou } from './org.js';
import { DIMENSIONS, tone } from './session.js';

const dash = '–';

export function score(v) {
  return v === null || v === undefined ? dash : String(Math.round(v));
}

function scoreCell(v) {
  return h('td.num', v === null || v === undefined ? h('span.muted', dash)
    : h('span', { class: `score tone-text-${tone(v)}` }, score(v)));
}

function rate(c) {
  const pct = Math.round(100 * Number(c.met_rate));
  return h('div.rate', { role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct,
    'aria-label': `${c.description || c.key}: met ${c.met} of ${c.assessed} times` },
  h('div', { class: `rate-fill tone-${tone(pct)}`, style: { width: `${pct}%` } }));
}

export function criteriaList(list, id) {
  if (!list.length) return h('p.muted.empty', 'No assessed session yet.');
  return h('ol.weakest', { id }, list.map((c) => h('li', { dataset: { key: c.key, scenario: c.scenario.id } },
    h('div.weak-text',
      h('strong', c.description || c.key),
      h('span.muted.small', c.scenario.title)),
    rate(c),
    h('span.weak-count', `${c.met} of ${c.assessed} met`))));
}

// a table that scrolls sideways on a narrow screen, not the page
function table(caption, head, rows, id) {
  return h('div.table-wrap',
    h('table.data', { id },
      h('caption.visually-hidden', caption),
      h('thead', h('tr', head.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.label)))),
      h('tbody', rows)));
}

// (a function: session.js and this module import each other through app.js)
const dimHead = () => DIMENSIONS.map(([, label]) => ({ label, num: true }));

export async function renderTeam() {
  await refreshUser();
  if (!isTrainer()) return notForYou('team', 'The team view');
  const team = await api('GET', '/review/team');

  const rows = team.trainees.map((t) => h('tr', { dataset: { id: t.id } },
    h('th', { scope: 'row' },
      h('a.person', { href: `#/team/${t.id}` },
        h('span.avatar.sm', { 'aria-hidden': 'true' }, initials(t.display_name)),
        h('span', h('strong', t.display_name), h('span.muted.small.block', t.email)))),
    h('td.num', String(t.attempts)),
    h('td.num', String(t.resolved)),
    scoreCell(t.average_overall),
    scoreCell(t.best_overall),
    DIMENSIONS.map(([k]) => scoreCell(t.dimensions?.[k])),
    h('td.small', t.last_session_at ? fmtDate(t.last_session_at) : h('span.muted', 'never'))));

  const el = h('div.page.team-page',
    h('div.page-head.head-row',
      h('div', h('h1', 'Team'),
        h('p.muted', 'How each trainee is doing: attempts, average scores per dimension, and what the team finds hardest.')),
      h('a.btn.btn-secondary', { href: '/review/export', download: 'team-results.csv', id: 'export-csv' },
        'Download results (CSV)')),
    h('section.card', { 'aria-labelledby': 'trainees-title' },
      h('div.card-head', h('h2', { id: 'trainees-title' }, 'Trainees'),
        h('span.muted', `${team.trainees.length} trainee${team.trainees.length === 1 ? '' : 's'}`)),
      team.trainees.length
        ? table('Trainees and their scores', [{ label: 'Trainee' }, { label: 'Attempts', num: true },
          { label: 'Resolved', num: true }, { label: 'Average', num: true }, { label: 'Best', num: true },
          ...dimHead(), { label: 'Last session' }], rows, 'team')
        : h('p.muted.empty', 'No trainees in the organization yet.'),
      h('p.muted.small', 'Averages are over resolved sessions; trials are left out.')),
    h('section.card', { 'aria-labelledby': 'weakest-title' },
      h('h2', { id: 'weakest-title' }, 'Weakest criteria'),
      h('p.muted.small', 'The rubric criteria the team meets least often, across every scenario.'),
      criteriaList(team.weakest_criteria, 'weakest')));
  return { el, title: 'Team', page: 'team' };
}

// ---------------------------------------------------------------- one trainee

const STATUS = { active: 'In progress', resolved: 'Resolved' };

export function sessionStatus(s) {
  return h('span', { class: `badge badge-${s.status === 'active' ? 'active' : 'done'}`, dataset: { status: s.status } },
    STATUS[s.status] || s.status);
}

// the overall score of each resolved session, oldest first
function trend(sessions) {
  const pts = sessions.filter((s) => s.overall !== null && s.overall !== undefined);
  if (pts.length < 2) return null;
  const w = 600; const hgt = 120; const pad = 8;
  const x = (i) => pad + (i * (w - 2 * pad)) / (pts.length - 1);
  const y = (v) => hgt - pad - (v * (hgt - 2 * pad)) / 100;
  const d = pts.map((s, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(s.overall).toFixed(1)}`).join(' ');
  return h('figure.trend',
    svg('svg', { viewBox: `0 0 ${w} ${hgt}`, role: 'img', preserveAspectRatio: 'none',
      'aria-label': `Overall scores over time: ${pts.map((s) => score(s.overall)).join(', ')}` },
    svg('line', { x1: pad, x2: w - pad, y1: y(50), y2: y(50), class: 'trend-mid' }),
    svg('path', { d, class: 'trend-line' }),
    ...pts.map((s, i) => svg('circle', { cx: x(i), cy: y(s.overall), r: 4, class: 'trend-dot' }))),
    h('figcaption.muted.small', 'Overall score of each resolved session, oldest first.'));
}

export async function renderTrainee({ params }) {
  await refreshUser();
  if (!isTrainer()) return notForYou('trainee', 'The team view');
  const r = await api('GET', `/review/trainees/${Number(params[0])}`);
  const t = r.trainee;

  const rows = r.sessions.map((s) => {
    const met = s.criteria.filter((c) => c.met).length;
    return h('tr', { dataset: { id: s.id, status: s.status } },
      h('td.small', fmtDate(s.created_at)),
      h('th', { scope: 'row' }, s.scenario.title, h('span.muted.small', ` v${s.scenario.version}`)),
      h('td', sessionStatus(s), s.overridden ? [' ', h('span.badge.badge-override', 'Overridden')] : null),
      scoreCell(s.overall),
      DIMENSIONS.map(([k]) => scoreCell(s.dimensions?.[k])),
      h('td.num', s.criteria.length ? `${met}/${s.criteria.length}` : dash),
      h('td.actions',
        s.status === 'active'
          ? h('a.btn.btn-primary.btn-compact', { href: `#/watch/${s.id}`, 'aria-label': `Watch session ${s.id} live` }, 'Watch live')
          : null,
        h('a.btn.btn-ghost.btn-compact', { href: `#/review/${s.id}`, 'aria-label': `Review session ${s.id}` }, 'Review')));
  });

  const el = h('div.page.trainee-page',
    h('p', h('a', { href: '#/team' }, '← Team')),
    h('div.page-head.persona-head',
      h('span.avatar.lg', { 'aria-hidden': 'true' }, initials(t.display_name)),
      h('div.persona-text',
        h('p.eyebrow', 'Trainee'),
        h('h1', t.display_name),
        h('p.muted.small', `${t.email} · level ${t.level} · ${t.xp} XP · ${r.attempts} attempt${r.attempts === 1 ? '' : 's'}`))),
    h('section.card', { 'aria-labelledby': 'sessions-title' },
      h('h2', { id: 'sessions-title' }, 'Sessions over time'),
      trend(r.sessions),
      r.sessions.length
        ? table(`Sessions of ${t.display_name}`, [{ label: 'Started' }, { label: 'Scenario' }, { label: 'Status' },
          { label: 'Overall', num: true }, ...dimHead(), { label: 'Criteria met', num: true }, { label: '' }],
        rows, 'trainee-sessions')
        : h('p.muted.empty', 'No sessions yet.')),
    h('section.card', { 'aria-labelledby': 'tcrit-title' },
      h('h2', { id: 'tcrit-title' }, 'Criteria'),
      h('p.muted.small', 'How often this trainee met each criterion, weakest first.'),
      criteriaList(r.criteria, 'trainee-criteria')));
  return { el, title: t.display_name, page: 'trainee' };
}
