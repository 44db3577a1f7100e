// Assignments (issue 9, item 3): trainers and admins assign a published
// scenario to trainees or to the whole organization, with an optional due
// date, required score and maximum attempts, and follow each member's
// status (#/assignments); a trainee's dashboard lists theirs.

import { api, explain } from './api.js';
import { h, announce, fmtDate } from './dom.js';
import { refreshUser, isTrainer } from './app.js';
import { notForYou } from './org.js';

export const STATUS = {
  not_started: 'Not started', in_progress: 'In progress', passed: 'Passed',
  not_passed: 'Not passed', overdue: 'Overdue',
};

export function statusBadge(status) {
  return h('span', { class: `badge badge-as-${status}`, dataset: { status } }, STATUS[status] || status);
}

function terms(a) {
  return [
    a.due_at ? `due ${fmtDate(a.due_at)}` : 'no due date',
    a.required_score !== null && a.required_score !== undefined ? `score ${a.required_score} to pass` : null,
    a.max_attempts ? `up to ${a.max_attempts} attempt${a.max_attempts === 1 ? '' : 's'}` : null,
  ].filter(Boolean).join(' · ');
}

function progress(p) {
  const best = p.best_score !== null && p.best_score !== undefined ? ` · best ${p.best_score}` : '';
  return `${p.attempts} attempt${p.attempts === 1 ? '' : 's'} made${best}`;
}

// The trainee's side: a card for the dashboard, or null when none.
export function myAssignmentsCard(list, onStart) {
  if (!list?.length) return null;
  return h('section.card.assigned-card', { 'aria-labelledby': 'assigned-title' },
    h('h2', { id: 'assigned-title' }, 'Assigned to you'),
    h('ul.assigned', { id: 'my-assignments' }, list.map((a) => {
      const btn = h('button.btn.btn-primary', { type: 'button', 'aria-label': `Start “${a.scenario.title}”` },
        a.status === 'passed' ? 'Practise again' : 'Start');
      btn.addEventListener('click', () => onStart(a.scenario, btn));
      return h('li', { dataset: { id: a.id, scenario: a.scenario.id } },
        h('div',
          h('strong', a.scenario.title),
          h('div.muted.small', terms(a)),
          h('div.muted.small', progress(a))),
        statusBadge(a.status), btn);
    })));
}

// datetime-local ("2026-12-31T17:00") in the browser's zone -> RFC 3339 UTC
function toRfc3339(local) {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export async function renderAssignments() {
  await refreshUser();
  if (!isTrainer()) return notForYou('assignments', 'Assigning scenarios');
  const [list, scenarios, members] = await Promise.all([
    api('GET', '/assignments'),
    api('GET', '/scenarios'),
    api('GET', '/org/members'),
  ]);
  const trainees = members.filter((m) => m.role === 'trainee');

  const errBox = h('div.alert.alert-error', { role: 'alert', id: 'assign-error', hidden: true });
  const done = h('p.saved-note', { id: 'assign-done', role: 'status' });
  const fieldErr = (name) => h('p.field-error', { id: `as-${name}-error`, hidden: true });
  const whoAll = h('input', { type: 'radio', name: 'as-who', id: 'as-who-all', value: 'all', checked: true });
  const whoSome = h('input', { type: 'radio', name: 'as-who', id: 'as-who-some', value: 'some' });
  const picks = h('fieldset.picks', { id: 'as-members', disabled: true },
    h('legend.visually-hidden', 'Trainees'),
    trainees.length
      ? trainees.map((m) => h('label.pick', h('input', { type: 'checkbox', value: m.id, dataset: { email: m.email } }), ` ${m.display_name}`, h('span.muted.small', ` ${m.email}`)))
      : h('p.muted.small', 'No trainees in the organization yet.'));
  for (const r of [whoAll, whoSome]) r.addEventListener('change', () => { picks.disabled = !whoSome.checked; });

  const form = h('form.card.assign-form', { novalidate: true, 'aria-labelledby': 'assign-title' },
    h('h2', { id: 'assign-title' }, 'Assign a scenario'),
    h('div.field', { dataset: { for: 'scenario_id' } },
      h('label', { for: 'as-scenario' }, 'Scenario'),
      h('select', { id: 'as-scenario' }, scenarios.map((s) => h('option', { value: s.id }, s.title))),
      h('p.hint', 'Published scenarios: your organization’s and the built-in ones.'),
      fieldErr('scenario_id')),
    h('fieldset.field', { dataset: { for: 'user_ids' } },
      h('legend', 'For'),
      h('label.pick', whoAll, ' Every trainee of the organization'),
      h('label.pick', whoSome, ' These trainees:'),
      picks, fieldErr('user_ids')),
    h('div.cols-3',
      h('div.field', { dataset: { for: 'due_at' } },
        h('label', { for: 'as-due' }, 'Due (optional)'),
        h('input', { id: 'as-due', type: 'datetime-local' }), fieldErr('due_at')),
      h('div.field', { dataset: { for: 'required_score' } },
        h('label', { for: 'as-score' }, 'Score to pass (optional)'),
        h('input', { id: 'as-score', type: 'number', min: 0, max: 100, step: 1, placeholder: 'pass mark' }), fieldErr('required_score')),
      h('div.field', { dataset: { for: 'max_attempts' } },
        h('label', { for: 'as-attempts' }, 'Attempts (optional)'),
        h('input', { id: 'as-attempts', type: 'number', min: 1, max: 100, step: 1, placeholder: 'no limit' }), fieldErr('max_attempts'))),
    errBox, done,
    h('button.btn.btn-primary', { type: 'submit' }, 'Assign'));

  const listEl = h('ul.assignments', { id: 'assignments' });
  const paint = (rows) => listEl.replaceChildren(...(rows.length ? rows.map(assignmentRow)
    : [h('li.muted.empty', 'Nothing assigned yet.')]));

  function assignmentRow(a) {
    const cancel = h('button.btn.btn-small', { type: 'button', 'aria-label': `Cancel the assignment of “${a.scenario.title}”` }, 'Cancel');
    cancel.addEventListener('click', async () => {
      cancel.disabled = true;
      try {
        await api('DELETE', `/assignments/${a.id}`);
        announce('The assignment was cancelled.');
        paint(await api('GET', '/assignments'));
      } catch (e) {
        cancel.disabled = false;
        errBox.textContent = `Could not cancel: ${explain(e)}`;
        errBox.hidden = false;
      }
    });
    return h('li.card.assignment', { dataset: { id: a.id, scenario: a.scenario.id } },
      h('div.assignment-head',
        h('div', h('strong', a.scenario.title),
          h('div.muted.small', `${a.user_id === null ? 'Every trainee' : 'One trainee'} · ${terms(a)}`)),
        cancel),
      a.members?.length
        ? h('ul.assignment-members', a.members.map((m) => h('li', { dataset: { user: m.user_id } },
          h('span.lb-name', m.display_name),
          h('span.muted.small', progress(m)),
          statusBadge(m.status))))
        : h('p.muted.small', 'No trainee yet.'));
  }
  paint(list);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    errBox.hidden = true;
    done.textContent = '';
    for (const p of form.querySelectorAll('.field-error')) { p.hidden = true; p.textContent = ''; }
    const body = { scenario_id: Number(form.querySelector('#as-scenario').value) };
    if (whoSome.checked) {
      body.user_ids = [...picks.querySelectorAll('input:checked')].map((c) => Number(c.value));
      if (!body.user_ids.length) {
        const p = form.querySelector('#as-user_ids-error');
        p.textContent = 'Choose at least one trainee.';
        p.hidden = false;
        return;
      }
    }
    const due = toRfc3339(form.querySelector('#as-due').value);
    if (due) body.due_at = due;
    const score = form.querySelector('#as-score').value.trim();
    if (score !== '') body.required_score = Number(score);
    const attempts = form.querySelector('#as-attempts').value.trim();
    if (attempts !== '') body.max_attempts = Number(attempts);
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      const made = await api('POST', '/assignments', body);
      done.textContent = `Assigned “${made[0]?.scenario?.title}” to ${made.length === 1 && made[0].user_id === null ? 'every trainee' : `${made.length} trainee${made.length === 1 ? '' : 's'}`}.`;
      announce(done.textContent);
      paint(await api('GET', '/assignments'));
    } catch (err) {
      const p = err.field && form.querySelector(`#as-${CSS.escape(err.field.replace(/\[\d+\]$/, ''))}-error`);
      if (p) {
        p.textContent = err.message.replace(/^"[^"]*"\s*/, '');
        p.hidden = false;
      } else {
        errBox.textContent = `Could not assign: ${explain(err)}`;
        errBox.hidden = false;
      }
    }
    btn.disabled = false;
  });

  const el = h('div.page.assignments-page',
    h('div.page-head', h('h1', 'Assignments'),
      h('p.muted', 'Give trainees a scenario to practise, and see how each of them is doing.')),
    h('div.assign-grid', form,
      h('section', { 'aria-labelledby': 'current-title' },
        h('h2', { id: 'current-title' }, 'Current assignments'), listEl)));
  return { el, title: 'Assignments', page: 'assignments' };
}
