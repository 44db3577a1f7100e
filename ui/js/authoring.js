// Scenario authoring for trainers and admins: the organization's scenarios
// by status (#/author) and the editor (#/author/new, #/author/ID) with every
// field of POST/PUT /authoring/scenarios, the rubric's criteria (1 to 12)
// and the dimension weights.  The API checks every field and its 400 names
// the one that is wrong ("criteria[1].keywords[0]"): the message is shown
// next to that field.  Publish, archive, and try a draft in the chat.

import { api, explain } from './api.js';
import { h, announce, fmtDate } from './dom.js';
import { go, refreshUser, isTrainer } from './app.js';
import { notForYou } from './org.js';

const DIFFICULTIES = [['easy', 'Easy'], ['medium', 'Medium'], ['hard', 'Hard']];
const DIMENSIONS = [['empathy', 'Empathy'], ['clarity', 'Clarity'],
  ['resolution', 'Resolution'], ['efficiency', 'Efficiency']];
const STATUS = { draft: 'Draft', published: 'Published', archived: 'Archived' };
const MAX_CRITERIA = 12;

// ---------------------------------------------------------------- list

function statusBadge(status) {
  return h('span', { class: `badge badge-status badge-${status}` }, STATUS[status] || status);
}

export async function renderAuthorList() {
  await refreshUser();
  if (!isTrainer()) return notForYou('author', 'Scenario authoring');
  const list = await api('GET', '/authoring/scenarios');
  const groups = ['draft', 'published', 'archived'].map((st) => {
    const rows = list.filter((s) => s.status === st);
    const title = { draft: 'Drafts', published: 'Published', archived: 'Archived' }[st];
    return h('section.card', { 'aria-labelledby': `group-${st}`, dataset: { status: st } },
      h('div.card-head', h('h2', { id: `group-${st}` }, title), h('span.muted', String(rows.length))),
      rows.length
        ? h('ul.author-list', rows.map((s) => h('li', { dataset: { id: s.id } },
          h('a', { href: `#/author/${s.id}` },
            h('span.hist-title', s.title),
            h('span.muted.small', `Version ${s.version} · ${s.difficulty} · updated ${fmtDate(s.updated_at)}`)),
          statusBadge(s.status))))
        : h('p.muted.empty', st === 'draft' ? 'No drafts. Start a new scenario.'
          : st === 'published' ? 'Nothing published yet: trainees see the built-in scenarios only.'
            : 'Nothing archived.'));
  });
  const el = h('div.page.author-page',
    h('div.page-head.head-row',
      h('div', h('h1', 'Your organization’s scenarios'),
        h('p.muted', 'Write scenarios about your own products and policies. Trainees see the published ones.')),
      h('a.btn.btn-primary', { href: '#/author/new' }, 'New scenario')),
    h('div.author-grid', groups));
  return { el, title: 'Scenarios', page: 'author' };
}

// ---------------------------------------------------------------- editor

// A labelled input whose errors appear under it; `path` is the API's name
// of the field.
function fieldBox(path, label, control, hint) {
  const id = control.id;
  const err = h('p.field-error', { id: `${id}-error`, hidden: true });
  control.dataset.field = path;
  control.setAttribute('aria-describedby', [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' '));
  return h('div.field', { dataset: { for: path } },
    h('label', { for: id }, label),
    control,
    hint ? h('p.hint', { id: `${id}-hint` }, hint) : null,
    err);
}

function text(id, value, attrs = {}) {
  return h('input', { id, type: 'text', value: value ?? '', ...attrs });
}

function area(id, value, rows = 3, attrs = {}) {
  const t = h('textarea', { id, rows, ...attrs });
  t.value = value ?? '';
  return t;
}

function num(id, value, min, max) {
  return h('input', { id, type: 'number', inputmode: 'numeric', min, max, step: 1, value: value ?? '' });
}

function lines(v) { return v.split('\n').map((x) => x.trim()).filter(Boolean); }

function intOrNull(v) { return v.trim() === '' ? null : Number(v); }

function keyFrom(description, used) {
  const base = (description.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 34)) || 'criterion';
  let key = base;
  for (let n = 2; used.has(key); n++) key = `${base}_${n}`;
  used.add(key);
  return key;
}

const BLANK = {
  title: '', description: '', difficulty: 'medium',
  persona: { name: '', role: '', prompt: '' },
  backstory: '', goal: '', opening_line: '', good_resolution: '',
  criteria: [{ key: '', description: '', keywords: [], examples: [], weight: 1 }],
  weights: { empathy: 1, clarity: 1, resolution: 1, efficiency: 1 },
  target_turns: 6, xp_reward: 100, pass_mark: 70,
};

export async function renderEditor({ params }) {
  await refreshUser();
  if (!isTrainer()) return notForYou('editor', 'Scenario authoring');
  const isNew = params[0] === 'new';
  const id = isNew ? null : Number(params[0]);
  let doc = isNew ? structuredClone(BLANK) : await api('GET', `/authoring/scenarios/${id}`);

  const formErr = h('div.alert.alert-error', { role: 'alert', id: 'editor-error', hidden: true });
  const saved = h('p.saved-note', { id: 'saved-note', role: 'status' });
  const critList = h('ol.criteria-edit', { id: 'criteria-edit' });
  const addCrit = h('button.btn.btn-ghost', { type: 'button', id: 'add-criterion' }, '+ Add a criterion');

  function criterionBox(c) {
    const li = h('li.card.criterion');
    li.renumber = (i) => {
      li.querySelector('.crit-num').textContent = `Criterion ${i + 1}`;
      const set = (cls, name, label) => {
        const el = li.querySelector(cls);
        const box = el.closest('.field');
        el.id = `crit-${i}-${name}`;
        el.dataset.field = `criteria[${i}].${name}`;
        box.dataset.for = el.dataset.field;
        box.querySelector('label').setAttribute('for', el.id);
        box.querySelector('label').textContent = label;
        box.querySelector('.field-error').id = `${el.id}-error`;
        const hint = box.querySelector('.hint');
        if (hint) hint.id = `${el.id}-hint`;
        el.setAttribute('aria-describedby', [hint ? hint.id : null, `${el.id}-error`].filter(Boolean).join(' '));
      };
      set('.c-description', 'description', 'What the trainee should do');
      set('.c-keywords', 'keywords', 'Keywords');
      set('.c-examples', 'examples', 'Example phrases (optional)');
      set('.c-weight', 'weight', 'Weight');
      set('.c-key', 'key', 'Key');
      li.querySelector('.c-remove').setAttribute('aria-label', `Remove criterion ${i + 1}`);
    };
    const remove = h('button.btn.btn-small.c-remove', { type: 'button' }, 'Remove');
    remove.addEventListener('click', () => {
      clearErrors();   // an error named by index would now be beside another criterion
      li.remove();
      renumber();
      critList.querySelector('.c-description')?.focus();
    });
    li.append(
      h('div.crit-head', h('h3.crit-num'), remove),
      fieldBox('', '', area('', c.description, 2, { class: 'c-description', maxlength: 300 })),
      h('div.crit-cols',
        fieldBox('', '', area('', (c.keywords || []).join('\n'), 3, { class: 'c-keywords' }),
          'One a line, 1 to 20: words the assessment looks for.'),
        fieldBox('', '', area('', (c.examples || []).join('\n'), 3, { class: 'c-examples' }),
          'One a line: what a good answer sounds like.')),
      h('div.crit-cols.narrow-cols',
        fieldBox('', '', num('', c.weight ?? 1, 1, 10), '1 to 10.'),
        fieldBox('', '', text('', c.key, { class: 'c-key', maxlength: 40, spellcheck: 'false' }),
          'Names it in the reports; made from the description when empty.')));
    li.querySelector('input[type=number]').classList.add('c-weight');
    return li;
  }

  function renumber() {
    const items = [...critList.children];
    items.forEach((li, i) => li.renumber(i));
    for (const b of critList.querySelectorAll('.c-remove')) b.disabled = items.length <= 1;
    addCrit.disabled = items.length >= MAX_CRITERIA;
    critCount.textContent = `${items.length} of ${MAX_CRITERIA}`;
  }

  const critCount = h('span.muted.small', { id: 'criteria-count' });
  addCrit.addEventListener('click', () => {
    const li = criterionBox({ key: '', description: '', keywords: [], examples: [], weight: 1 });
    critList.append(li);
    renumber();
    li.querySelector('.c-description').focus();
  });

  const f = {
    title: text('sc-title', doc.title, { maxlength: 120 }),
    description: area('sc-description', doc.description, 2, { maxlength: 1000 }),
    difficulty: h('select', { id: 'sc-difficulty' },
      DIFFICULTIES.map(([v, l]) => h('option', { value: v, selected: v === doc.difficulty }, l))),
    'persona.name': text('sc-persona-name', doc.persona?.name, { maxlength: 80 }),
    'persona.role': text('sc-persona-role', doc.persona?.role, { maxlength: 160 }),
    'persona.prompt': area('sc-persona-prompt', doc.persona?.prompt, 6, { maxlength: 8000 }),
    backstory: area('sc-backstory', doc.backstory, 3, { maxlength: 4000 }),
    goal: area('sc-goal', doc.goal, 2, { maxlength: 1000 }),
    opening_line: area('sc-opening-line', doc.opening_line, 2, { maxlength: 1000 }),
    good_resolution: area('sc-good-resolution', doc.good_resolution, 3, { maxlength: 4000 }),
    target_turns: num('sc-target-turns', doc.target_turns, 1, 50),
    xp_reward: num('sc-xp-reward', doc.xp_reward, 1, 1000),
    pass_mark: num('sc-pass-mark', doc.pass_mark, 0, 100),
  };
  const w = Object.fromEntries(DIMENSIONS.map(([k]) => [k, num(`sc-weight-${k}`, doc.weights?.[k] ?? 1, 0, 10)]));
  for (const c of doc.criteria || []) critList.append(criterionBox(c));

  function body() {
    const used = new Set();
    const crit = [...critList.children].map((li) => {
      const c = {
        key: li.querySelector('.c-key').value.trim(),
        description: li.querySelector('.c-description').value.trim(),
        keywords: lines(li.querySelector('.c-keywords').value),
        weight: intOrNull(li.querySelector('.c-weight').value),
      };
      const ex = lines(li.querySelector('.c-examples').value);
      if (ex.length) c.examples = ex;
      if (c.key) used.add(c.key);
      return c;
    });
    // a key made from the description, for the criteria that have none
    for (const [i, c] of crit.entries()) {
      if (!c.key) {
        c.key = keyFrom(c.description, used);
        critList.children[i].querySelector('.c-key').value = c.key;
      }
    }
    return {
      title: f.title.value.trim(),
      description: f.description.value.trim(),
      difficulty: f.difficulty.value,
      persona: {
        name: f['persona.name'].value.trim(),
        role: f['persona.role'].value.trim(),
        prompt: f['persona.prompt'].value.trim(),
      },
      backstory: f.backstory.value.trim(),
      goal: f.goal.value.trim(),
      opening_line: f.opening_line.value.trim(),
      good_resolution: f.good_resolution.value.trim(),
      criteria: crit,
      weights: Object.fromEntries(DIMENSIONS.map(([k]) => [k, intOrNull(w[k].value)])),
      target_turns: intOrNull(f.target_turns.value),
      xp_reward: intOrNull(f.xp_reward.value),
      pass_mark: intOrNull(f.pass_mark.value),
    };
  }

  function clearErrors() {
    formErr.hidden = true;
    for (const e of form.querySelectorAll('.field-error')) { e.hidden = true; e.textContent = ''; }
    for (const e of form.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
    for (const e of form.querySelectorAll('.has-error')) e.classList.remove('has-error');
  }

  // The field the API named, or the nearest enclosing one that has a box
  // ("criteria[1].keywords[0]" -> "criteria[1].keywords"; "weights.x" ->
  // "weights").
  function showFieldError(err) {
    let path = err.field;
    let box = null;
    while (path && !(box = form.querySelector(`[data-for="${CSS.escape(path)}"]`))) {
      const shorter = path.replace(/(\[\d+\]|\.[^.[\]]+)$/, '');
      if (shorter === path) break;
      path = shorter;
    }
    const what = err.message.replace(/^"[^"]*"\s*/, '');
    const sentence = `${what.charAt(0).toUpperCase()}${what.slice(1)}.`;
    if (!box) {
      formErr.textContent = explain(err);
      formErr.hidden = false;
      return;
    }
    const msg = box.querySelector(':scope > .field-error');
    // what is left of the path: a line of a list ("keywords[0]"), or a key
    const rest = err.field.slice(path.length).replace(/^\./, '');
    const item = rest.match(/^\[(\d+)\]$/);
    msg.textContent = !rest ? sentence : item ? `Line ${Number(item[1]) + 1}: ${sentence}` : `${rest}: ${sentence}`;
    msg.hidden = false;
    box.classList.add('has-error');
    const input = box.querySelector(':scope > input, :scope > textarea, :scope > select');
    input?.setAttribute('aria-invalid', 'true');
    const crit = box.closest('.criterion')?.querySelector('.crit-num')?.textContent;
    const label = box.querySelector(':scope > label')?.textContent || err.field;
    formErr.textContent = `The scenario was not saved. ${crit ? `${crit}, ` : ''}${label}: ${msg.textContent}`;
    formErr.hidden = false;
    (input || box).scrollIntoView({ block: 'center' });
    input?.focus({ preventScroll: true });
  }

  const saveBtn = h('button.btn.btn-primary', { type: 'submit', id: 'save' }, isNew ? 'Create draft' : 'Save');
  const actions = h('div.btn-row.editor-actions');
  const statusLine = h('div.status-line', { id: 'editor-status' });

  function paintStatus() {
    statusLine.replaceChildren();
    actions.replaceChildren(saveBtn);
    if (!doc.id) return;
    statusLine.append(statusBadge(doc.status),
      h('span.muted.small', ` Version ${doc.version}${doc.updated_at ? ` · saved ${fmtDate(doc.updated_at)}` : ''}`));
    statusLine.dataset.status = doc.status;
    const tryBtn = h('button.btn.btn-secondary', { type: 'button', id: 'try' }, 'Try in the chat');
    tryBtn.title = 'Starts a trial chat with the saved version. It earns no XP.';
    tryBtn.addEventListener('click', () => tryIt(tryBtn));
    actions.append(tryBtn);
    if (doc.status !== 'published') actions.append(statusButton('publish', 'Publish'));
    if (doc.status !== 'archived') actions.append(statusButton('archive', 'Archive'));
  }

  function statusButton(verb, label) {
    const b = h('button.btn.btn-ghost', { type: 'button', id: verb }, label);
    b.addEventListener('click', async () => {
      b.disabled = true;
      formErr.hidden = true;
      try {
        doc = await api('POST', `/authoring/scenarios/${doc.id}/${verb}`);
        paintStatus();
        saved.textContent = verb === 'publish'
          ? 'Published: the trainees of your organization can start it now.'
          : 'Archived: trainees no longer see it; sessions already begun still finish.';
        announce(saved.textContent);
      } catch (e) {
        b.disabled = false;
        formErr.textContent = `Could not ${verb}: ${explain(e)}`;
        formErr.hidden = false;
      }
    });
    return b;
  }

  async function tryIt(btn) {
    btn.disabled = true;
    if (dirty && !(await save())) { btn.disabled = false; return; }
    try {
      const s = await api('POST', `/authoring/scenarios/${doc.id}/try`);
      sessionStorage.setItem(`trial:${s.id}`, String(doc.id));
      go(`#/chat/${s.id}`);
    } catch (e) {
      btn.disabled = false;
      formErr.textContent = `Could not start a trial: ${explain(e)}`;
      formErr.hidden = false;
    }
  }

  const form = h('form.editor', { novalidate: true, 'aria-labelledby': 'editor-title' },
    h('section.card', { 'aria-labelledby': 'sec-basics' },
      h('h2', { id: 'sec-basics' }, 'The scenario'),
      fieldBox('title', 'Title', f.title, '3 to 120 characters.'),
      fieldBox('description', 'Description', f.description, 'What trainees read in the library.'),
      h('div.cols-3',
        fieldBox('difficulty', 'Difficulty', f.difficulty),
        fieldBox('target_turns', 'Target turns', f.target_turns, '1 to 50.'),
        fieldBox('xp_reward', 'XP reward', f.xp_reward, '1 to 1000.')),
      fieldBox('goal', 'The trainee’s goal', f.goal)),
    h('section.card', { 'aria-labelledby': 'sec-persona' },
      h('h2', { id: 'sec-persona' }, 'The persona'),
      h('div.cols-2',
        fieldBox('persona.name', 'Name', f['persona.name']),
        fieldBox('persona.role', 'Who they are', f['persona.role'])),
      fieldBox('persona.prompt', 'Persona prompt', f['persona.prompt'],
        'How the AI plays the persona: mood, what they want, what calms them. 20 to 8000 characters.'),
      fieldBox('backstory', 'Backstory', f.backstory),
      fieldBox('opening_line', 'Opening line', f.opening_line, 'How the persona starts the conversation.'),
      fieldBox('good_resolution', 'A good resolution', f.good_resolution, 'What a successful conversation ends with.')),
    h('section.card', { 'aria-labelledby': 'sec-rubric' },
      h('div.card-head', h('h2', { id: 'sec-rubric' }, 'The rubric'), critCount),
      h('p.muted.small', 'The checklist trainees are assessed against: 1 to 12 criteria, each with its weight.'),
      h('div.field', { dataset: { for: 'criteria' } }, h('p.field-error', { hidden: true })),
      critList, addCrit,
      h('h3.sub', 'Dimension weights'),
      h('p.muted.small', 'How much each dimension counts in the overall score (0 to 10, not all 0).'),
      h('div.field', { dataset: { for: 'weights' } }, h('p.field-error', { hidden: true })),
      h('div.cols-4', DIMENSIONS.map(([k, l]) => fieldBox(`weights.${k}`, l, w[k]))),
      h('div.cols-3', fieldBox('pass_mark', 'Pass mark', f.pass_mark, '0 to 100: the overall score that passes.'))),
    h('div.editor-bar', formErr, saved, actions));
  renumber();
  paintStatus();

  // unsaved changes: Try saves them first, so that the trial plays them
  let dirty = false;
  const changed = () => { dirty = true; saved.textContent = ''; };
  form.addEventListener('input', changed);
  form.addEventListener('change', changed);
  form.addEventListener('click', (e) => { if (e.target.closest('#add-criterion, .c-remove')) changed(); });
  form.addEventListener('submit', (e) => { e.preventDefault(); save(); });

  async function save() {
    clearErrors();
    saved.textContent = '';
    saveBtn.disabled = true;
    saveBtn.textContent = 'Saving…';
    try {
      const sent = body();
      const r = doc.id
        ? await api('PUT', `/authoring/scenarios/${doc.id}`, sent)
        : await api('POST', '/authoring/scenarios', sent);
      const first = !doc.id;
      const before = doc.version;
      doc = r;
      saveBtn.textContent = 'Save';
      saveBtn.disabled = false;
      saved.textContent = first ? `Draft created (version ${r.version}).`
        : r.version !== before ? `Saved as version ${r.version}. Sessions already begun keep theirs.`
          : 'Saved (nothing changed).';
      announce(saved.textContent);
      // the address of the new draft, without rendering the page again
      if (first) history.replaceState(null, '', `#/author/${r.id}`);
      title.textContent = r.title;
      document.title = `Edit ${r.title} · Scenario practice`;
      dirty = false;
      paintStatus();
      versions.replaceChildren(...versionItems(r));
      return true;
    } catch (err) {
      saveBtn.textContent = doc.id ? 'Save' : 'Create draft';
      saveBtn.disabled = false;
      if (err.field) showFieldError(err);
      else { formErr.textContent = `Could not save: ${explain(err)}`; formErr.hidden = false; }
      return false;
    }
  }

  const versionItems = (d) => (d.versions || []).slice().reverse()
    .map((v) => h('li', h('strong', `Version ${v.version}`), h('span.muted.small', ` ${fmtDate(v.created_at)}`)));
  const versions = h('ul.versions', { id: 'versions' }, versionItems(doc));
  const title = h('h1', { id: 'editor-title' }, isNew ? 'New scenario' : doc.title);
  const el = h('div.page.editor-page',
    h('p', h('a', { href: '#/author' }, '← All scenarios')),
    h('div.page-head.head-row', h('div', h('p.eyebrow', 'Scenario editor'), title), statusLine),
    h('div.editor-grid', form,
      h('aside.editor-side',
        h('section.card', { 'aria-labelledby': 'versions-title' },
          h('h2', { id: 'versions-title' }, 'Versions'),
          h('p.muted.small', 'Each saved change is a new version; a session keeps the version it began with.'),
          versions))));
  // closing the tab with unsaved changes asks first
  const guard = (e) => { if (dirty) { e.preventDefault(); e.returnValue = ''; } };
  return {
    el, title: isNew ? 'New scenario' : `Edit ${doc.title}`, page: 'editor',
    mounted() { window.addEventListener('beforeunload', guard); },
    cleanup() { window.removeEventListener('beforeunload', guard); },
  };
}
