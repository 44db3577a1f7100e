// A session's review for trainers and admins (issue 9, item 7;
// #/review/ID): the transcript, the assessment (scores, each criterion
// met or not with its evidence, what the judge made of it, whether a
// person should look), comments with a form to add one, and the score's
// override with its reason and the audit trail of overrides.

import { api, explain } from './api.js';
import { h, announce, fmtDate } from './dom.js';
import { refreshUser, isTrainer } from './app.js';
import { notForYou } from './org.js';
import { bubble, scoreRing, dimensionChart } from './session.js';
import { sessionStatus } from './team.js';

const JUDGE = {
  agrees: 'the model agrees', credited: 'credited by the model',
  disagrees: 'the model disagrees', void: 'the model\'s verdict was set aside',
  ignored: 'the model\'s credit was ignored',
};
const VOID = {
  empty: 'it quoted nothing', earns_nothing: 'the turn it quoted earns nothing',
  note_to_grader: 'it quoted a note to the grader', persona: 'it quoted the persona',
  not_in_transcript: 'its quote is not in the transcript',
};

function criterionRow(c) {
  return h('li', { class: c.met ? 'met' : 'unmet', dataset: { key: c.key, met: String(!!c.met) } },
    h('span.crit-mark', { 'aria-hidden': 'true' }, c.met ? '\u2713' : '\u2717'),
    h('div',
      h('strong', c.description || c.key),
      h('span.visually-hidden', c.met ? ' (met)' : ' (not met)'),
      h('div.small',
        h('span', { class: `badge badge-${c.met ? 'met' : 'unmet'}` }, c.met ? 'Met' : 'Not met'),
        c.turn ? h('span.muted', ` turn ${c.turn}`) : null,
        c.judge && c.judge !== 'none' ? h('span.muted', ` · ${JUDGE[c.judge] || c.judge}`) : null,
        c.judge_void ? h('span.muted', ` (${VOID[c.judge_void] || c.judge_void})`) : null),
      c.quote ? h('blockquote.evidence', c.quote) : null,
      !c.met && c.suggestion ? h('p.muted.small', c.suggestion) : null));
}

function judgeBlock(j) {
  if (!j) return null;
  if (!j.used) {
    return h('p.muted', { id: 'judge' }, `The model did not grade this session (${j.reason || 'not used'}): the rules decided alone.`);
  }
  const d = j.dimensions || {};
  return h('div', { id: 'judge' },
    h('p', `The model graded it too: empathy ${d.empathy}, clarity ${d.clarity}, resolution ${d.resolution}, `
      + `efficiency ${d.efficiency}; ${j.credited} criteri${j.credited === 1 ? 'on' : 'a'} credited`
      + `${j.void_quotes ? `, ${j.void_quotes} quote${j.void_quotes === 1 ? '' : 's'} set aside` : ''}.`),
    j.manipulation ? h('p.alert.alert-error', 'Text addressed to the grading was found'
      + `${j.manipulation_quote ? `: “${j.manipulation_quote}”` : ''}.`) : null);
}

function assessmentCard(a) {
  if (!a) {
    return h('section.card', { 'aria-labelledby': 'assess-title' },
      h('h2', { id: 'assess-title' }, 'Assessment'),
      h('p.muted', { id: 'no-assessment' }, 'Not assessed yet: the session is not resolved.'));
  }
  return h('section.card', { 'aria-labelledby': 'assess-title', id: 'assessment' },
    h('h2', { id: 'assess-title' }, 'Assessment'),
    h('div.summary-scores', scoreRing(Math.round(a.overall)), dimensionChart(a.dimensions)),
    a.passed !== undefined
      ? h('p', { id: 'passed' }, a.passed ? `Passed (pass mark ${a.pass_mark}).` : `Not passed (pass mark ${a.pass_mark}).`)
      : null,
    a.review_suggested
      ? h('p.review-flag', { id: 'review-suggested', role: 'note' },
        'Review suggested: the rules and the model disagree on this session.')
      : h('p.muted.small', { id: 'review-suggested' }, 'No review suggested: the rules and the model agree.'),
    h('h3.sub', 'Criteria'),
    (a.criteria || []).length
      ? h('ul.review-criteria', { id: 'review-criteria' }, a.criteria.map(criterionRow))
      : h('p.muted', 'This scenario has no rubric.'),
    h('h3.sub', 'The judge'), judgeBlock(a.judge),
    h('h3.sub', 'Feedback given to the trainee'),
    (a.feedback || []).length
      ? h('ul.feedback', { id: 'review-feedback' }, a.feedback.map((f) => h('li', f)))
      : h('p.muted', 'No feedback.'));
}

// A form whose API 400s ({"field"}) are shown under the field they name.
function apiForm(id, fields, submitLabel, onSubmit) {
  const alert = h('div.alert.alert-error', { role: 'alert', hidden: true, id: `${id}-error` });
  const form = h('form.review-form', { id, novalidate: true },
    fields.map((f) => h('div.field', { dataset: { for: f.name } },
      h('label', { for: `${id}-${f.name}` }, f.label),
      f.input,
      f.hint ? h('p.hint', f.hint) : null,
      h('p.field-error', { id: `${id}-${f.name}-error`, hidden: true }))),
    alert,
    h('button.btn.btn-primary', { type: 'submit' }, submitLabel));
  for (const f of fields) {
    f.input.id = `${id}-${f.name}`;
    f.input.setAttribute('aria-describedby', `${id}-${f.name}-error`);
  }
  const clear = () => {
    alert.hidden = true;
    for (const box of form.querySelectorAll('.field')) {
      box.classList.remove('has-error');
      box.querySelector('.field-error').hidden = true;
      box.querySelector('input, textarea')?.removeAttribute('aria-invalid');
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear();
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      await onSubmit();
    } catch (err) {
      const box = err.field && form.querySelector(`.field[data-for="${CSS.escape(err.field)}"]`);
      if (box) {
        const what = err.message.replace(/^"[^"]*"\s*/, '');
        const msg = box.querySelector('.field-error');
        msg.textContent = `${what.charAt(0).toUpperCase()}${what.slice(1)}.`;
        msg.hidden = false;
        box.classList.add('has-error');
        const input = box.querySelector('input, textarea');
        input.setAttribute('aria-invalid', 'true');
        input.focus();
      } else {
        alert.textContent = explain(err);
        alert.hidden = false;
      }
    }
    btn.disabled = false;
  });
  return form;
}

function commentItem(c) {
  return h('li.comment', { dataset: { id: c.id } },
    h('div.muted.small', h('strong', c.author?.display_name || 'Someone'), ` · ${fmtDate(c.created_at)}`),
    h('p.comment-body', c.body));
}

function overrideItem(o) {
  const xp = o.xp_delta ? ` · XP ${o.xp_delta > 0 ? '+' : ''}${o.xp_delta}` : '';
  return h('li.override', { dataset: { id: o.id } },
    h('div', h('strong', `${o.old_score} → ${o.new_score}`),
      h('span.muted.small', ` by ${o.author?.display_name || 'someone'}, ${fmtDate(o.created_at)}${xp}`)),
    h('p.comment-body', o.reason));
}

function listOr(el, items, render, empty) {
  el.replaceChildren(...(items.length ? items.map(render) : [h('li.muted.empty', empty)]));
}

export async function renderReview({ params }) {
  await refreshUser();
  if (!isTrainer()) return notForYou('review', 'Reviewing sessions');
  const id = Number(params[0]);
  const [r, scenarios] = await Promise.all([
    api('GET', `/review/sessions/${id}`),
    api('GET', '/scenarios').catch(() => []),
  ]);
  const s = r.session;
  const persona = scenarios.find((x) => x.id === s.scenario.id)?.persona?.name || 'Persona';
  const trainee = r.trainee?.display_name || 'Trainee';
  const resolved = s.status !== 'active';

  const comments = h('ul.comments', { id: 'comments' });
  listOr(comments, r.comments, commentItem, 'No comments yet.');
  const overrides = h('ul.overrides', { id: 'overrides' });
  listOr(overrides, r.overrides, overrideItem, 'The score has not been overridden.');
  const overallNote = h('p', { id: 'current-score' });
  const paintScore = (v) => { overallNote.textContent = v === null || v === undefined ? '' : `Current score: ${v}.`; };
  paintScore(s.overall);

  const body = h('textarea', { rows: 3, maxlength: 4000 });
  const commentForm = apiForm('comment-form', [{ name: 'body', label: 'Add a comment', input: body,
    hint: 'The trainee reads it with their session.' }], 'Add comment', async () => {
    const c = await api('POST', `/review/sessions/${id}/comments`, { body: body.value });
    r.comments.push(c);
    listOr(comments, r.comments, commentItem, '');
    body.value = '';
    announce('Your comment was added.');
  });

  const scoreIn = h('input', { type: 'number', min: 0, max: 100, step: 1, inputmode: 'numeric' });
  const reason = h('textarea', { rows: 2, maxlength: 500 });
  const overrideForm = apiForm('override-form', [
    { name: 'score', label: 'New score (0 to 100)', input: scoreIn },
    { name: 'reason', label: 'Reason (required)', input: reason, hint: 'Kept in the audit trail, and shown to the trainee.' },
  ], 'Override the score', async () => {
    // what was typed goes as it is: the API's 400 says what is wrong
    const raw = scoreIn.value.trim();
    const doc = { reason: reason.value };
    if (raw !== '') doc.score = Number.isNaN(Number(raw)) ? raw : Number(raw);
    const res = await api('POST', `/review/sessions/${id}/override`, doc);
    if (res.changed) {
      r.overrides.push(res.override);
      listOr(overrides, r.overrides, overrideItem, '');
      // the assessment's overall is the new score now
      const fresh = await api('GET', `/review/sessions/${id}`).catch(() => null);
      if (fresh?.assessment) {
        const card = assessmentCard(fresh.assessment);
        assessEl.replaceWith(card);
        assessEl = card;
        card.querySelector('.ring')?.play();
      }
      announce(`The score is now ${res.new_score} (XP ${res.xp_delta >= 0 ? '+' : ''}${res.xp_delta}).`);
    } else {
      announce(`The score already is ${res.new_score}: nothing changed.`);
    }
    paintScore(res.new_score);
    reason.value = '';
  });

  let assessEl = assessmentCard(r.assessment);
  const el = h('div.page.review-page',
    h('p', h('a', { href: `#/team/${r.trainee.id}` }, `← ${trainee}`)),
    h('div.page-head.head-row',
      h('div',
        h('p.eyebrow', `Review · session ${s.id}`),
        h('h1', `${trainee}: ${s.scenario.title}`),
        h('p.muted.small', `Version ${s.scenario.version} · started ${fmtDate(s.created_at)}`
          + `${s.resolved_at ? ` · resolved ${fmtDate(s.resolved_at)}` : ''}`)),
      h('div.btn-row', sessionStatus(s),
        s.trial ? h('span.badge.badge-trial', 'Trial') : null,
        resolved ? null : h('a.btn.btn-primary', { href: `#/watch/${id}` }, 'Watch live'))),
    h('div.review-grid',
      h('div.review-main',
        h('section.card', { 'aria-labelledby': 'transcript-title' },
          h('h2', { id: 'transcript-title' }, 'Transcript'),
          r.transcript.length
            ? h('ol.chat-log.readonly', { id: 'transcript', 'aria-label': 'Transcript' },
              r.transcript.map((m) => bubble(m, persona, trainee)))
            : h('p.muted', 'No messages.')),
        assessEl),
      h('div.review-side',
        h('section.card', { 'aria-labelledby': 'override-title' },
          h('h2', { id: 'override-title' }, 'Score'),
          overallNote,
          resolved ? overrideForm : h('p.muted', 'A score can be overridden once the session is resolved.'),
          h('h3.sub', 'Overrides'), overrides),
        h('section.card', { 'aria-labelledby': 'comments-title' },
          h('h2', { id: 'comments-title' }, 'Comments'),
          comments,
          resolved ? commentForm : h('p.muted', 'Comments can be added once the session is resolved.')))));
  return {
    el, title: `Review: ${trainee}`, page: 'review',
    mounted() { el.querySelector('.ring')?.play(); },
  };
}
