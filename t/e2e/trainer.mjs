// The trainer's journey (issue 9) in a real browser (Debian's Chromium
// driven by playwright-core) against a running stack at $E2E_BASE_URL:
// an admin ($E2E_ADMIN_EMAIL, $E2E_ADMIN_PASSWORD) makes invites (the code
// shown once, one revoked), a new user registers with the trainer invite's
// link and is a trainer, the same code again is refused, the admin changes
// that member's role and removes them; the demo trainer writes a scenario
// with a rubric, meets the API's field errors next to their fields, fixes
// them, tries the draft in the chat without XP, publishes it and edits it
// into version 2; a trainee sees it in the library and none of the
// trainer's pages; the trainer assigns it to the demo trainee (a field
// error first), the demo trainee sees the assignment and plays it while
// the trainer, in a second browser, watches live from the team view (the
// trainee's message and the streamed reply arrive; the trainee is told);
// the trainee resolves; the trainer reads the team view, downloads the CSV,
// opens the trainee and the session's review (transcript, assessment),
// comments, and overrides the score (a missing reason first), which turns
// the assignment's status; the trainee sees the new status, the comment
// and the override; the trainer archives the scenario.  Screenshots go
// to t/e2e/screenshots/; with E2E_UPDATE_DOCS=1, editor, org,
// assignments, dashboard-assigned, team, review, watch and chat-watched are
// also copied
// to docs/screenshots/ (the README's pictures).
import assert from 'node:assert/strict';
import { mkdirSync, copyFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const shots = join(here, 'screenshots');
const docs = join(repo, 'docs', 'screenshots');
const base = (process.env.E2E_BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const admin = { email: process.env.E2E_ADMIN_EMAIL, password: process.env.E2E_ADMIN_PASSWORD };
const trainer = {
  email: process.env.E2E_TRAINER_EMAIL || 'trainer@example.com',
  password: process.env.E2E_TRAINER_PASSWORD || 'trainer-password',
};
const demo = {
  email: process.env.E2E_TRAINEE_EMAIL || 'demo@example.com',
  password: process.env.E2E_TRAINEE_PASSWORD || 'demo-password',
};
const started = Date.now();

mkdirSync(shots, { recursive: true });
mkdirSync(docs, { recursive: true });

function step(msg) {
  console.log(`# ${((Date.now() - started) / 1000).toFixed(1)}s ${msg}`);
}

assert.ok(admin.email && admin.password, 'E2E_ADMIN_EMAIL and E2E_ADMIN_PASSWORD are set');

const browser = await chromium.launch({
  executablePath,
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
const page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.setDefaultTimeout(15000);

const shot = async (name, opts = {}) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: false, ...opts });
const onPage = (name) => page.locator(`body[data-page="${name}"]`).waitFor();
const text = async (sel) => (await page.locator(sel).textContent()).trim();
const me = () => page.evaluate(async () => { const r = await fetch('/auth/me'); return r.ok ? r.json() : { status: r.status }; });
async function narrowFitsOn(p, what) {
  await p.setViewportSize({ width: 360, height: 740 });
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await p.setViewportSize({ width: 1280, height: 860 });
  assert.ok(overflow <= 0, `no horizontal scrolling of ${what} at 360px (${overflow}px)`);
}
const narrowFits = (what) => narrowFitsOn(page, what);
const apiGet = (path) => page.evaluate(async (p) => { const r = await fetch(p); return { status: r.status, body: await r.json().catch(() => null) }; }, path);

async function signIn(who, p = page) {
  await p.goto(`${base}/#/login`);
  await p.locator('body[data-page="login"]').waitFor();
  await p.getByLabel('Email').fill(who.email);
  await p.getByLabel('Password').fill(who.password);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('body[data-page="dashboard"]').waitFor();
}

async function signOut() {
  await page.getByRole('button', { name: 'Log out' }).click();
  await onPage('login');
}

async function navVisible() {
  return {
    author: await page.locator('#nav-author').isVisible(),
    assign: await page.locator('#nav-assign').isVisible(),
    org: await page.locator('#nav-org').isVisible(),
    team: await page.locator('#nav-team').isVisible(),
  };
}

// The error under a field of the editor, once shown.
async function fieldError(path) {
  const err = page.locator(`.field[data-for="${path}"] > .field-error`);
  await err.waitFor({ state: 'visible' });
  return (await err.textContent()).trim();
}

try {
  const stamp = `${Date.now()}-${process.pid}`;
  const password = 'correct-horse-battery';

  // --- an admin: the organization page, invites
  step('admin signs in');
  await signIn(admin);
  assert.deepEqual(await navVisible(), { author: true, assign: true, org: true, team: true }, 'an admin sees every trainer page in the menu');
  await page.getByRole('link', { name: 'Organization' }).click();
  await onPage('org');
  assert.equal(await text('h1'), 'Default organization', 'the organization\'s name');
  const adminRow = page.locator(`li.member[data-email="${admin.email}"]`);
  assert.match(await adminRow.textContent(), /\(you\)/, 'the admin is listed among the members');
  assert.equal(await adminRow.locator('select').inputValue(), 'admin', 'with the admin role');
  assert.equal(await page.locator('li.member[data-email="trainer@example.com"] select').inputValue(), 'trainer',
    'the demo trainer is listed as a trainer');

  step('invites: one revoked, one for a trainer');
  await page.getByLabel('Role', { exact: true }).selectOption('trainee');
  await page.getByRole('button', { name: 'Create invite' }).click();
  await page.locator('#invite-new').waitFor();
  const firstId = await page.locator('#invites li.invite').first().getAttribute('data-id');
  await page.locator(`#invites li.invite[data-id="${firstId}"]`).getByRole('button', { name: /^Revoke/ }).click();
  await page.locator(`#invites li.invite[data-id="${firstId}"][data-status="revoked"]`).waitFor();
  assert.match(await page.locator(`#invites li.invite[data-id="${firstId}"]`).textContent(), /Revoked/,
    'the revoked invite says so');

  await page.getByLabel('Role', { exact: true }).selectOption('trainer');
  await page.getByLabel('Expires after').selectOption({ label: '1 day' });
  await page.getByRole('button', { name: 'Create invite' }).click();
  await page.locator('#invite-new').filter({ hasText: 'A trainer invite' }).waitFor();
  const code = await page.locator('#invite-code').inputValue();
  assert.match(code, /^[A-Za-z0-9_-]{43}$/, `the code is shown (${code})`);
  const link = await page.locator('#invite-link').inputValue();
  assert.equal(link, `${base}/#/invite/${code}`, 'with its link');
  // the list is drawn again after the new invite's panel: wait for it
  await page.waitForFunction((id) => {
    const li = document.querySelector('#invites li.invite');
    return li && li.dataset.id !== id;
  }, firstId);
  const top = page.locator('#invites li.invite').first();
  assert.equal(await top.getAttribute('data-status'), 'open');
  assert.match(await top.textContent(), /Trainer invite.*Open/s, 'the new invite is listed, open, for a trainer');
  assert.ok(!(await top.textContent()).includes(code), 'the list does not show the code');
  await shot('org');
  await narrowFits('the organization page');

  // reloading forgets the code: it was shown once
  await page.reload();
  await onPage('org');
  assert.equal(await page.locator('#invite-new').count(), 0, 'after a reload the code is gone');
  await signOut();

  // --- a new user registers with the link and is a trainer
  step('register with the invite link');
  await page.goto(link);
  await onPage('signup');
  assert.equal(await text('h1'), 'You are invited');
  assert.equal(await page.getByLabel('Invite code (optional)').inputValue(), code, 'the link fills in the code');
  const invitedEmail = `e2e-invited-${stamp}@example.com`;
  await page.getByLabel('Your name').fill('Invited Trainer');
  await page.getByLabel('Email').fill(invitedEmail);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await onPage('dashboard');
  assert.equal((await me()).role, 'trainer', 'the new account has the invite\'s role');
  assert.deepEqual(await navVisible(), { author: true, assign: true, org: false, team: true }, 'a trainer sees Scenarios, Assignments and Team, not Organization');
  assert.match(await text('#who'), /Invited Trainer · trainer/, 'the header names the role');
  await signOut();

  step('the same code again is refused');
  await page.goto(link);
  await onPage('signup');
  await page.getByLabel('Your name').fill('Second Try');
  await page.getByLabel('Email').fill(`e2e-again-${stamp}@example.com`);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('alert').filter({ hasText: 'invite code does not work' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'invite_code', 'the invite field has the focus');

  // --- the admin changes the new member's role, then removes them
  step('admin: change a role, remove a member');
  await signIn(admin);
  await page.goto(`${base}/#/org`);
  await onPage('org');
  const invitedRow = page.locator(`li.member[data-email="${invitedEmail}"]`);
  assert.equal(await invitedRow.locator('select').inputValue(), 'trainer', 'the invited member is a trainer');
  assert.match(await page.locator('#invites li.invite').first().textContent(), /Used/, 'and the invite is used');
  await invitedRow.locator('select').selectOption('trainee');
  await page.locator(`li.member[data-email="${invitedEmail}"][data-role="trainee"]`).waitFor();
  let members = (await apiGet('/org/members')).body;
  assert.equal(members.find((m) => m.email === invitedEmail).role, 'trainee', 'the role changed on the server');
  await invitedRow.getByRole('button', { name: 'Remove Invited Trainer' }).click();
  await invitedRow.getByRole('button', { name: 'Yes, remove' }).click();
  await invitedRow.waitFor({ state: 'detached' });
  members = (await apiGet('/org/members')).body;
  assert.ok(!members.some((m) => m.email === invitedEmail), 'the member is removed on the server');
  await signOut();

  // --- the demo trainer writes a scenario
  step('trainer: new scenario');
  await signIn(trainer);
  assert.deepEqual(await navVisible(), { author: true, assign: true, org: false, team: true });
  await page.getByRole('link', { name: 'Scenarios' }).click();
  await onPage('author');
  for (const g of ['Drafts', 'Published', 'Archived']) await page.getByRole('heading', { name: g }).waitFor();
  await page.getByRole('link', { name: 'New scenario' }).click();
  await onPage('editor');

  // found by id or slug below, so the title may repeat across runs
  const title = 'Late delivery, anxious patient';
  const countBefore = (await apiGet('/authoring/scenarios')).body.length;
  const fill = (id, v) => page.locator(`#${id}`).fill(v);
  await fill('sc-title', title);
  await fill('sc-description', 'A patient calls because their prescription was not delivered on time.');
  await page.locator('#sc-difficulty').selectOption('easy');
  await fill('sc-target-turns', '4');
  await fill('sc-xp-reward', '80');
  await fill('sc-goal', 'Calm the patient and arrange a delivery for today.');
  await fill('sc-persona-name', 'Robin Ash');
  await fill('sc-persona-role', 'Patient waiting for a prescription');
  await fill('sc-persona-prompt', 'Be worried.');   // under 20 characters: the API refuses it
  await fill('sc-backstory', 'Robin has been waiting two days for their medicine.');
  await fill('sc-opening-line', 'Robin asks where the medicine is.');
  await fill('sc-good-resolution', 'The agent apologises and books a courier for today.');
  await fill('crit-0-description', 'Apologises for the delay');
  await fill('crit-0-keywords', 'sorry\napologise');
  await fill('crit-0-examples', "I'm so sorry your medicine is late.");
  await fill('crit-0-weight', '2');
  await page.getByRole('button', { name: '+ Add a criterion' }).click();
  assert.equal(await text('#criteria-count'), '2 of 12');
  await fill('crit-1-description', 'Books a delivery for today');
  await fill('crit-1-keywords', `${'courier'.repeat(10)}\ntoday`);   // 70 characters: too long
  await fill('crit-1-examples', 'I have booked a courier for this afternoon.');
  await fill('crit-1-weight', '3');
  await fill('sc-weight-empathy', '3');
  await fill('sc-weight-efficiency', '0');
  await fill('sc-pass-mark', '65');

  step('field errors next to their fields');
  await page.getByRole('button', { name: 'Create draft' }).click();
  let err = await fieldError('persona.prompt');
  assert.match(err, /^Must be 20 to 8000 characters/, `the persona prompt's error is under it (${err})`);
  assert.equal(await page.locator('#sc-persona-prompt').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'sc-persona-prompt', 'and has the focus');
  assert.match(await text('#editor-error'), /^The scenario was not saved\. Persona prompt: Must be 20/,
    'the bar by the Save button says which field');
  assert.match(page.url(), /#\/author\/new$/, 'still a new scenario');
  assert.equal((await apiGet('/authoring/scenarios')).body.length, countBefore, 'nothing was stored');
  await shot('editor-error');
  await fill('sc-persona-prompt', 'You are Robin Ash, anxious about your late medicine. Calm down only when a delivery today is promised.');
  await page.getByRole('button', { name: 'Create draft' }).click();
  err = await fieldError('criteria[1].keywords');
  assert.match(err, /^Line 1: Must be 1 to 60 characters/, `a keyword's error is under its criterion's keywords (${err})`);
  assert.match(await text('#editor-error'), /Criterion 2, Keywords: Line 1/);
  assert.equal(await page.locator('.field[data-for="persona.prompt"] > .field-error').isVisible(), false,
    'the fixed field\'s error is gone');
  assert.equal((await apiGet('/authoring/scenarios')).body.length, countBefore, 'still nothing stored');
  await fill('crit-1-keywords', 'courier\ntoday');
  await page.getByRole('button', { name: 'Create draft' }).click();
  await page.locator('#saved-note').filter({ hasText: 'Draft created (version 1)' }).waitFor();
  const id = Number(page.url().match(/#\/author\/(\d+)$/)[1]);
  assert.equal(await page.locator('#editor-status').getAttribute('data-status'), 'draft');
  assert.equal(await page.locator('.field-error:visible').count(), 0, 'no error left');
  const stored = (await apiGet(`/authoring/scenarios/${id}`)).body;
  assert.deepEqual(stored.criteria.map((c) => [c.key, c.keywords, c.weight]),
    [['apologises_for_the_delay', ['sorry', 'apologise'], 2], ['books_a_delivery_for_today', ['courier', 'today'], 3]],
    'the rubric is stored as written, with keys made from the descriptions');
  assert.deepEqual(stored.criteria.map((c) => c.examples),
    [["I'm so sorry your medicine is late."], ['I have booked a courier for this afternoon.']], 'with their example phrases');
  assert.deepEqual(stored.weights, { empathy: 3, clarity: 1, resolution: 1, efficiency: 0 }, 'the dimension weights');
  assert.deepEqual([stored.persona.name, stored.difficulty, stored.target_turns, stored.xp_reward, stored.pass_mark],
    ['Robin Ash', 'easy', 4, 80, 65]);

  // --- try the draft in the chat: no XP
  step('try the draft');
  const xpBefore = (await me()).xp;
  await page.getByRole('button', { name: 'Try in the chat' }).click();
  await onPage('chat');
  await page.locator('#trial-note').filter({ hasText: 'earns no XP' }).waitFor();
  await shot('trial-chat');
  assert.equal(await text('.persona-head h1'), 'Robin Ash', 'the chat plays the draft\'s persona');
  await page.locator('#conn-status[data-state="connected"]').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#chat-log li.msg-assistant:not(.streaming)').length >= 1, null, { timeout: 20000 });
  const input = page.getByLabel(/Your message to/);
  await input.fill('I am so sorry about the delay, Robin. I have booked a courier for today.');
  await input.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('#chat-log li.msg-assistant:not(.streaming)').length >= 2
    && !document.querySelector('#chat-log li.pending'), null, { timeout: 20000 });
  await page.getByRole('button', { name: 'Resolve' }).click();
  await onPage('summary');
  assert.equal(await text('#xp-gained'), '+0 XP', 'a trial earns no XP');
  await shot('trial-summary');
  await page.locator('#trial-note').waitFor();
  assert.deepEqual(await page.locator('#criteria li').evaluateAll((els) => els.map((e) => e.dataset.key)),
    ['apologises_for_the_delay', 'books_a_delivery_for_today'], 'assessed against the draft\'s rubric');
  assert.equal((await me()).xp, xpBefore, 'the trainer\'s XP did not change');
  await page.getByRole('link', { name: 'Back to the editor' }).click();
  await onPage('editor');

  // --- publish, then an edit makes version 2
  step('publish and edit');
  await page.getByRole('button', { name: 'Publish' }).click();
  await page.locator('#editor-status[data-status="published"]').waitFor();
  assert.match(await text('#saved-note'), /Published/);
  assert.equal(await page.getByRole('button', { name: 'Publish' }).count(), 0, 'no Publish button once published');
  const title2 = 'Late delivery, an anxious patient';
  await fill('sc-title', title2);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#saved-note').filter({ hasText: 'Saved as version 2' }).waitFor();
  assert.equal(await page.locator('#versions li').count(), 2, 'both versions listed');
  assert.equal(await page.locator('#editor-status[data-status="published"]').count(), 1, 'still published');
  await page.locator('#sec-rubric').scrollIntoViewIfNeeded();
  await page.evaluate(() => document.getElementById('sec-rubric').scrollIntoView({ block: 'start' }));
  await page.evaluate(() => window.scrollBy(0, -80));
  await shot('editor');
  await narrowFits('the editor');
  await page.getByRole('link', { name: '← All scenarios' }).click();
  await onPage('author');
  assert.match(await page.locator(`section[data-status="published"] li[data-id="${id}"]`).textContent(), new RegExp(title2),
    'the list shows it under Published');
  await shot('author-list');
  await signOut();

  // --- a trainee sees it, and none of the trainer's pages
  step('trainee');
  await page.goto(`${base}/#/signup`);
  await onPage('signup');
  await page.getByLabel('Your name').fill('E2E Trainee Two');
  const traineeEmail = `e2e-trainee-${stamp}@example.com`;
  await page.getByLabel('Email').fill(traineeEmail);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await onPage('dashboard');
  const trainee = await me();
  assert.equal(trainee.role, 'trainee');
  const card = page.locator(`li.scenario[data-slug="${stored.slug}"]`);
  await card.waitFor();
  assert.match(await card.locator('h3').textContent(), new RegExp(`^${title2}$`), 'the published version 2');
  assert.match(await card.textContent(), /Robin Ash.*\+80 XP|\+80 XP.*Robin Ash/s, 'the trainee is offered the published scenario');
  assert.deepEqual(await navVisible(), { author: false, assign: false, org: false, team: false }, 'a trainee sees no trainer menu');
  assert.equal(await page.locator('#my-assignments').count(), 0, 'and nothing assigned yet');
  for (const hash of ['#/author', `#/author/${id}`, '#/assignments', '#/org', '#/team', '#/team/1', '#/review/1', '#/watch/1']) {
    await page.goto(`${base}/${hash}`);
    await page.locator('#not-for-you').waitFor();
    assert.match(await text('#not-for-you'), /for the trainers and admins/, `${hash} is not for a trainee`);
  }
  assert.equal((await apiGet('/authoring/scenarios')).status, 403, 'and the API refuses them');
  await page.goto(`${base}/#/`);
  await onPage('dashboard');
  await signOut();

  // --- the trainer assigns it to the demo trainee
  step('assign');
  await signIn(demo);
  const demoId = (await me()).id;
  assert.equal((await me()).role, 'trainee', 'the demo trainee is a trainee');
  await signOut();
  await signIn(trainer);
  await page.getByRole('link', { name: 'Assignments' }).click();
  await onPage('assignments');
  await page.getByLabel('Scenario', { exact: true }).selectOption(String(id));
  await page.getByLabel('These trainees:').check();
  await page.locator(`#as-members input[data-email="${demo.email}"]`).check();
  const due = new Date(Date.now() + 7 * 86400e3);
  const pad = (n) => String(n).padStart(2, '0');
  await page.locator('#as-due').fill(`${due.getFullYear()}-${pad(due.getMonth() + 1)}-${pad(due.getDate())}T17:00`);
  await page.locator('#as-score').fill('101');
  await page.getByRole('button', { name: 'Assign', exact: true }).click();
  const scoreErr = page.locator('#as-required_score-error');
  await scoreErr.waitFor({ state: 'visible' });
  assert.match(await scoreErr.textContent(), /0 to 100|0 and 100/, `the API's error is under the score (${await scoreErr.textContent()})`);
  await page.locator('#as-score').fill('50');
  await page.locator('#as-attempts').fill('2');
  await page.getByRole('button', { name: 'Assign', exact: true }).click();
  const assignment = page.locator(`#assignments li.assignment[data-scenario="${id}"]`);
  await assignment.waitFor();
  assert.match(await assignment.textContent(), /One trainee · due .* · score 50 to pass · up to 2 attempts/, 'the assignment and its terms');
  const memberRow = assignment.locator(`li[data-user="${demoId}"]`);
  assert.match(await memberRow.textContent(), /Demo Trainee.*0 attempts made.*Not started/s, 'the demo trainee has not started');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('assignments');
  await narrowFits('the assignments page');
  await signOut();

  // --- the demo trainee plays it; the trainer watches live from another browser
  step('the demo trainee plays the assignment');
  await signIn(demo);
  const mine = page.locator(`#my-assignments li[data-scenario="${id}"]`);
  await mine.waitFor();
  assert.match(await mine.textContent(), /Not started/, 'the dashboard lists the assignment, not started');
  await shot('dashboard-assigned');
  await narrowFits('the dashboard with an assignment');
  await mine.getByRole('button', { name: /Start/ }).click();
  await onPage('chat');
  const sessionId = Number(page.url().match(/#\/chat\/(\d+)$/)[1]);
  assert.equal(await page.locator('#trial-note').count(), 0, 'a real session, not a trial');
  await page.locator('#conn-status[data-state="connected"]').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#chat-log li.msg-assistant:not(.streaming)').length >= 1, null, { timeout: 20000 });
  assert.equal(await page.locator('#watch-note').isVisible(), false, 'nobody is watching yet');

  step('the trainer opens watch live in a second browser');
  // (reduced motion: its screenshots show the scores, not their animation)
  const watchCtx = await browser.newContext({ viewport: { width: 1280, height: 860 }, reducedMotion: 'reduce' });
  // what the watcher's persona bubbles showed as they changed
  await watchCtx.addInitScript(() => {
    window.__observed = {};
    const watch = () => new MutationObserver(() => {
      for (const li of document.querySelectorAll('#watch-log li.msg-assistant')) {
        const list = (window.__observed[li.dataset.seq] ||= []);
        const t = li.querySelector('.msg-body')?.textContent ?? '';
        if (list[list.length - 1]?.text !== t) list.push({ text: t, streaming: li.classList.contains('streaming') });
      }
    }).observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });
    if (document.documentElement) watch(); else document.addEventListener('DOMContentLoaded', watch);
  });
  const tp = await watchCtx.newPage();
  tp.setDefaultTimeout(15000);
  tp.on('pageerror', (e) => consoleErrors.push(String(e)));
  tp.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  await signIn(trainer, tp);
  await tp.getByRole('link', { name: 'Team' }).click();
  await tp.locator('body[data-page="team"]').waitFor();
  await tp.locator(`#team tr[data-id="${demoId}"] a`).click();
  await tp.locator('body[data-page="trainee"]').waitFor();
  assert.equal((await tp.locator('h1').textContent()).trim(), 'Demo Trainee', 'the trainee\'s page');
  const liveRow = tp.locator(`#trainee-sessions tr[data-id="${sessionId}"]`);
  assert.match(await liveRow.textContent(), /Late delivery, an anxious patient.*In progress/s, 'the session being played is listed, in progress');
  await liveRow.getByRole('link', { name: /Watch .* live/ }).click();
  await tp.locator('body[data-page="watch"]').waitFor();
  await tp.locator('#watch-state[data-state="live"]').waitFor();
  assert.equal((await tp.locator('#watch-state').textContent()).trim(), 'Watching live · read-only', 'the watcher sees that it is live');
  assert.equal(await tp.locator('#watch-log li.msg-assistant').count(), 1, 'with the persona\'s opening from the history');
  assert.equal(await tp.locator('textarea, input[type=text]').count(), 0, 'and nothing to write with');

  await page.locator('#watch-note').waitFor({ state: 'visible' });
  assert.equal((await page.locator('#watch-note').textContent()).trim(),
    'Demo Trainer is watching this conversation live (read-only).', 'the trainee is told who is watching');
  await shot('chat-watched');

  const said = 'I am so sorry about the delay, Robin. I have booked a courier for today, it arrives this afternoon.';
  await input.fill(said);
  await input.press('Enter');
  const heard = tp.locator('#watch-log li.msg-user:not(.pending)').filter({ hasText: said });
  await heard.waitFor();
  assert.equal((await heard.locator('.msg-who').textContent()).trim(), 'Demo Trainee', 'the watcher sees the trainee\'s message, by name');
  await tp.waitForFunction(() => document.querySelectorAll('#watch-log li.msg-assistant:not(.streaming)').length >= 2, null, { timeout: 20000 });
  await page.waitForFunction(() => document.querySelectorAll('#chat-log li.msg-assistant:not(.streaming)').length >= 2
    && !document.querySelector('#chat-log li.pending'), null, { timeout: 20000 });
  const replyTrainee = (await page.locator('#chat-log li.msg-assistant').last().locator('.msg-body').textContent());
  const replyLi = tp.locator('#watch-log li.msg-assistant').last();
  const replySeq = await replyLi.getAttribute('data-seq');
  assert.equal(await replyLi.locator('.msg-body').textContent(), replyTrainee, 'the watcher has the reply the trainee has');
  const seen = await tp.evaluate((q) => window.__observed[q] || [], replySeq);
  const partial = seen.filter((o) => o.streaming && o.text.length > 0 && o.text.length < replyTrainee.length);
  assert.ok(partial.length >= 1, `the reply arrived streamed, in pieces (${seen.length} states, ${partial.length} partial)`);
  assert.ok(partial.every((o) => replyTrainee.startsWith(o.text)), 'each piece a prefix of the reply');
  await tp.evaluate(() => window.scrollTo(0, 0));
  await tp.screenshot({ path: join(shots, 'watch.png') });

  step('the trainee resolves; the watch ends');
  await page.getByRole('button', { name: 'Resolve' }).click();
  await onPage('summary');
  const overall = Number(await page.locator('#overall').getAttribute('data-score'));
  await tp.locator('#watch-state[data-state="ended"]').waitFor();
  assert.match(await tp.locator('#watch-state').textContent(), /Demo Trainee resolved the session/, 'the watcher is told the session ended');
  await tp.getByRole('link', { name: 'Open the review' }).waitFor();
  await page.getByRole('link', { name: 'Pick another scenario' }).click();
  await onPage('dashboard');
  const want = overall >= 50 ? 'passed' : 'in_progress';
  assert.equal(await mine.locator('[data-status]').getAttribute('data-status'), want,
    `after one attempt scoring ${overall} (50 to pass, 2 allowed) the status is ${want}`);
  const best = Number((await mine.textContent()).match(/1 attempt made · best (\d+)/)?.[1]);
  assert.ok(Math.abs(best - overall) <= 1, `with the attempt and its score (best ${best}, overall ${overall})`);

  // --- the trainer reviews: team, CSV, the trainee, the session
  step('team view and CSV');
  await tp.getByRole('link', { name: 'Team' }).click();
  await tp.locator('body[data-page="team"]').waitFor();
  const demoRow = tp.locator(`#team tr[data-id="${demoId}"]`);
  const teamApi = (await tp.evaluate(async () => (await fetch('/review/team')).json()));
  const demoStats = teamApi.trainees.find((t) => t.id === demoId);
  assert.ok(demoStats.attempts >= 1 && demoStats.resolved >= 1, 'the demo trainee has a resolved attempt');
  const cells = await demoRow.locator('td').allTextContents();
  assert.deepEqual(cells.slice(0, 4).map((c) => c.trim()),
    [String(demoStats.attempts), String(demoStats.resolved), String(Math.round(demoStats.average_overall)), String(demoStats.best_overall)],
    'the row shows attempts, resolved, average and best as the API has them');
  assert.equal(cells[4].trim(), String(Math.round(demoStats.dimensions.empathy)), 'and the dimensions');
  const weakCount = await tp.locator('#weakest li').count();
  assert.equal(weakCount, teamApi.weakest_criteria.length, 'the weakest criteria listed');
  assert.ok(weakCount >= 1, 'at least one');
  const w0 = teamApi.weakest_criteria[0];
  assert.match(await tp.locator('#weakest li').first().textContent(), new RegExp(`${w0.met} of ${w0.assessed} met`), 'with how often each was met');
  const [download] = await Promise.all([tp.waitForEvent('download'), tp.locator('#export-csv').click()]);
  assert.equal(download.suggestedFilename(), 'team-results.csv', 'the CSV downloads as team-results.csv');
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(csv, /^session_id,trainee_id,trainee,email,scenario,version,status,started_at,resolved_at,overall,/, 'with its header row');
  assert.ok(csv.split('\r\n').some((l) => l.startsWith(`${sessionId},${demoId},Demo Trainee,demo@example.com,`)), 'and a line for the session just played');
  await tp.evaluate(() => window.scrollTo(0, 0));
  await tp.screenshot({ path: join(shots, 'team.png') });
  await narrowFitsOn(tp, 'the team view');

  step('the trainee\'s sessions, the session\'s review');
  await demoRow.locator('a').click();
  await tp.locator('body[data-page="trainee"]').waitFor();
  const doneRow = tp.locator(`#trainee-sessions tr[data-id="${sessionId}"]`);
  assert.match(await doneRow.textContent(), new RegExp(`Resolved.*${overall}`, 's'), 'the session is resolved, with its score');
  assert.equal(await doneRow.getByRole('link', { name: /Watch/ }).count(), 0, 'no watching a resolved session');
  await tp.screenshot({ path: join(shots, 'trainee.png') });
  await doneRow.getByRole('link', { name: /Review/ }).click();
  await tp.locator('body[data-page="review"]').waitFor();
  assert.equal((await tp.locator('h1').textContent()).trim(), 'Demo Trainee: Late delivery, an anxious patient');
  const turns = await tp.locator('#transcript li').evaluateAll((els) => els.map((e) => [e.querySelector('.msg-who').textContent, e.querySelector('.msg-body').textContent]));
  assert.equal(turns.length, 3, 'the transcript: opening, message, reply');
  assert.deepEqual(turns[1], ['Demo Trainee', said], 'the trainee\'s message word for word');
  assert.deepEqual(turns[2], ['Robin Ash', replyTrainee], 'the persona\'s reply, by name');
  assert.equal(await tp.locator('#overall').getAttribute('data-score'), String(overall), 'the assessment\'s score');
  assert.deepEqual(await tp.locator('#review-criteria li').evaluateAll((els) => els.map((e) => e.dataset.key)),
    ['apologises_for_the_delay', 'books_a_delivery_for_today'], 'each criterion of the rubric');
  const reviewed = (await tp.evaluate(async (sid) => (await fetch(`/review/sessions/${sid}`)).json(), sessionId)).assessment;
  const apology = tp.locator('#review-criteria li[data-key="apologises_for_the_delay"]');
  assert.equal(await apology.getAttribute('data-met'), 'true', 'the apology is met');
  assert.match(await apology.textContent(), /Apologises for the delay \(met\)Met/, 'and says so');
  assert.match(await apology.locator('.evidence').textContent(), /sorry/i, 'with its evidence, the trainee\'s words');
  assert.match(await tp.locator('#judge').textContent(),
    reviewed.judge.used ? /^The model graded it too: empathy \d+/ : /^The model did not grade this session/, 'what the judge did');
  assert.match(await tp.locator('#review-suggested').textContent(),
    reviewed.review_suggested ? /^Review suggested/ : /^No review suggested/, 'whether a review is suggested, as the API says');
  assert.deepEqual(await tp.locator('#review-feedback li').allTextContents(), reviewed.feedback, 'the feedback the trainee got');

  step('comment and override');
  const comment = 'Good apology. <b>Next time</b> say when the courier arrives.';
  await tp.getByLabel('Add a comment').fill(comment);
  await tp.getByRole('button', { name: 'Add comment' }).click();
  await tp.locator('#comments li.comment').filter({ hasText: 'Next time' }).waitFor();
  assert.equal(await tp.locator('#comments li.comment .comment-body').last().textContent(), comment, 'the comment, as text');
  assert.equal(await tp.locator('#comments b').count(), 0, 'never as HTML');
  const newScore = overall >= 50 ? 40 : 90;
  const after = overall >= 50 ? 'in_progress' : 'passed';
  await tp.getByLabel('New score (0 to 100)').fill(String(newScore));
  await tp.getByRole('button', { name: 'Override the score' }).click();
  const reasonErr = tp.locator('#override-form-reason-error');
  await reasonErr.waitFor({ state: 'visible' });
  assert.match(await reasonErr.textContent(), /500/, `a missing reason: the API's error is under the reason (${await reasonErr.textContent()})`);
  assert.equal(await tp.locator('#overrides li.override').count(), 0, 'and nothing was overridden');
  await tp.getByLabel('Reason (required)').fill('The courier was promised without a time: not a full resolution.');
  await tp.getByRole('button', { name: 'Override the score' }).click();
  await tp.locator('#overrides li.override').waitFor();
  assert.match(await tp.locator('#overrides li.override').textContent(),
    new RegExp(`^${overall} → ${newScore} by Demo Trainer, .*The courier was promised without a time`), 'the audit trail: old and new score, who, why');
  assert.equal(await tp.locator('#override-form-reason-error').isVisible(), false, 'the error is gone');
  assert.equal((await tp.locator('#current-score').textContent()).trim(), `Current score: ${newScore}.`);
  await tp.locator(`#overall[data-score="${newScore}"]`).waitFor();
  await tp.evaluate(() => window.scrollTo(0, 0));
  await tp.screenshot({ path: join(shots, 'review.png') });
  await narrowFitsOn(tp, 'the review');
  await tp.reload();
  await tp.locator('body[data-page="review"]').waitFor();
  assert.equal(await tp.locator('#overrides li.override').count(), 1, 'the override is kept');
  assert.equal(await tp.locator('#comments li.comment').count(), 1, 'and the comment');
  assert.equal(await tp.locator('#overall').getAttribute('data-score'), String(newScore), 'the assessment shows the new score');
  await watchCtx.close();

  step('the trainee sees the new status and the review');
  await page.reload();
  await onPage('dashboard');
  assert.equal(await mine.locator('[data-status]').getAttribute('data-status'), after,
    `the override (${overall} -> ${newScore}) turns the assignment ${after}`);
  assert.match(await mine.textContent(), new RegExp(`1 attempt made · best ${newScore}`), 'with the new score as the best');
  await page.goto(`${base}/#/session/${sessionId}`);
  await onPage('session');
  await page.locator('#trainer-notes').waitFor();
  assert.match(await page.locator('#trainer-notes').textContent(),
    new RegExp(`Score changed from ${overall} to ${newScore} by Demo Trainer: The courier was promised.*Next time`, 's'),
    'the trainee reads the override and the comment');
  assert.equal(await page.locator('#overall').getAttribute('data-score'), String(newScore), 'and the session\'s score is the new one');
  await signOut();

  // --- the trainer sees the status; archives the scenario
  step('archive');
  await signIn(trainer);
  await page.goto(`${base}/#/assignments`);
  await onPage('assignments');
  assert.equal(await memberRow.locator('[data-status]').getAttribute('data-status'), after, 'the trainer sees the same status');
  await page.goto(`${base}/#/author/${id}`);
  await onPage('editor');
  await page.getByRole('button', { name: 'Archive' }).click();
  await page.locator('#editor-status[data-status="archived"]').waitFor();
  const offered = await apiGet('/scenarios');
  assert.ok(!offered.body.some((s) => s.id === id), 'an archived scenario is not offered');
  await signOut();

  assert.deepEqual(consoleErrors.filter((e) => !/WebSocket|Failed to load resource/.test(e)), [], 'no script errors');
  if (process.env.E2E_UPDATE_DOCS === '1') {
    copyFileSync(join(shots, 'editor.png'), join(docs, 'editor.png'));
    copyFileSync(join(shots, 'org.png'), join(docs, 'org.png'));
    copyFileSync(join(shots, 'assignments.png'), join(docs, 'assignments.png'));
    copyFileSync(join(shots, 'dashboard-assigned.png'), join(docs, 'dashboard-assigned.png'));
    for (const n of ['team', 'review', 'watch', 'chat-watched']) copyFileSync(join(shots, `${n}.png`), join(docs, `${n}.png`));
  }
  step('ok');
} catch (e) {
  failed = true;
  console.error(e);
  try { await shot('trainer-failure'); } catch { /* ignore */ }
  if (consoleErrors.length) console.error('browser console errors:', consoleErrors);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
