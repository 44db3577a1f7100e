// The app shell: a hash router (#/login, #/signup, #/invite/CODE, #/,
// #/chat/ID, #/summary/ID, #/session/ID, and for trainers and admins
// #/author, #/author/new, #/author/ID, #/assignments, #/team, #/team/ID,
// #/review/ID, #/watch/ID, #/org), the signed-in user, logout.

import { api, explain, setUnauthorizedHandler, ApiError } from './api.js';
import { h, announce } from './dom.js';
import { renderLogin, renderSignup } from './auth.js';
import { renderDashboard } from './dashboard.js';
import { renderChat, renderSummary, renderSession } from './session.js';
import { renderAuthorList, renderEditor } from './authoring.js';
import { renderOrg } from './org.js';
import { renderAssignments } from './assignments.js';
import { renderTeam, renderTrainee } from './team.js';
import { renderReview } from './review.js';
import { renderWatch } from './watch.js';

export const state = {
  user: null,
  lastAssessment: null,   // {sessionId, assessment, before}
  cleanup: null,          // the current page's teardown (closes the chat socket)
};

const main = document.getElementById('main');

setUnauthorizedHandler(() => {
  state.user = null;
  showNav();
  if (!isPublicHash(location.hash)) {
    sessionStorage.setItem('after_login', location.hash);
    go('#/login');
  }
});

export function isPublicHash(hash) {
  return /^#\/(login|signup|invite\/)/.test(hash || '');
}

// The trainer's pages are shown to trainers and admins only (the API checks
// the role again on every call).
export function isTrainer(u = state.user) { return u?.role === 'trainer' || u?.role === 'admin'; }
export function isAdmin(u = state.user) { return u?.role === 'admin'; }

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function showNav() {
  const nav = document.getElementById('topnav');
  nav.hidden = !state.user;
  const role = state.user?.role && state.user.role !== 'trainee' ? ` · ${state.user.role}` : '';
  document.getElementById('who').textContent = state.user
    ? `${state.user.display_name}${role} · level ${state.user.level}` : '';
  document.getElementById('nav-author').hidden = !isTrainer();
  document.getElementById('nav-assign').hidden = !isTrainer();
  document.getElementById('nav-team').hidden = !isTrainer();
  document.getElementById('nav-org').hidden = !isAdmin();
}

export async function refreshUser() {
  try {
    state.user = await api('GET', '/auth/me', undefined, { auth: false });
  } catch (e) {
    state.user = null;
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
  }
  showNav();
  return state.user;
}

// login and register answer without the role: keep the one we know, and
// ask /auth/me when we do not know it
export function setUser(u) {
  const known = state.user && u && state.user.id === u.id ? state.user : {};
  state.user = u ? { role: known.role, org_id: known.org_id, ...u } : u;
  showNav();
}

document.getElementById('logout').addEventListener('click', async () => {
  try { await api('POST', '/auth/logout', undefined, { auth: false }); } catch { /* signed out anyway */ }
  if (state.cleanup) { state.cleanup(); state.cleanup = null; }
  state.user = null;
  showNav();
  announce('You are signed out.');
  go('#/login');
});

const routes = [
  [/^#\/login$/, renderLogin, false],
  [/^#\/signup$/, renderSignup, false],
  [/^#\/invite\/([A-Za-z0-9_-]{1,64})$/, renderSignup, false],
  [/^#\/?$/, renderDashboard, true],
  [/^#\/chat\/(\d+)$/, renderChat, true],
  [/^#\/summary\/(\d+)$/, renderSummary, true],
  [/^#\/session\/(\d+)$/, renderSession, true],
  [/^#\/author$/, renderAuthorList, true],
  [/^#\/author\/(new|\d+)$/, renderEditor, true],
  [/^#\/assignments$/, renderAssignments, true],
  [/^#\/team$/, renderTeam, true],
  [/^#\/team\/(\d+)$/, renderTrainee, true],
  [/^#\/review\/(\d+)$/, renderReview, true],
  [/^#\/watch\/(\d+)$/, renderWatch, true],
  [/^#\/org$/, renderOrg, true],
];

let routeToken = 0;

async function route() {
  const token = ++routeToken;
  if (state.cleanup) { state.cleanup(); state.cleanup = null; }
  const hash = location.hash || '#/';
  let match = null;
  let found = routes.find(([re]) => (match = hash.match(re)));
  if (!found) { go('#/'); return; }
  const [, render, needsAuth] = found;
  if (needsAuth && !state.user) {
    try { await refreshUser(); } catch (e) { return showFatal(e); }
    if (token !== routeToken) return;
    if (!state.user) {
      sessionStorage.setItem('after_login', hash);
      go('#/login');
      return;
    }
  }
  main.replaceChildren(h('p.loading', { role: 'status' }, 'Loading…'));
  main.setAttribute('aria-busy', 'true');
  try {
    const view = await render({ params: match.slice(1), isCurrent: () => token === routeToken });
    if (token !== routeToken) { view?.cleanup?.(); return; }
    main.replaceChildren(view.el);
    state.cleanup = view.cleanup || null;
    document.title = `${view.title} · Scenario practice`;
    document.body.dataset.page = view.page;
    view.mounted?.();
    const focus = main.querySelector('[data-autofocus]') || main.querySelector('h1');
    if (focus) { if (!focus.hasAttribute('tabindex') && focus.tagName === 'H1') focus.setAttribute('tabindex', '-1'); focus.focus({ preventScroll: false }); }
  } catch (e) {
    if (token !== routeToken) return;
    if (e instanceof ApiError && e.status === 401) return;
    showFatal(e);
  } finally {
    if (token === routeToken) main.removeAttribute('aria-busy');
  }
}

function showFatal(e) {
  main.replaceChildren(h('section.card.narrow', { role: 'alert' },
    h('h1', 'Something went wrong'),
    h('p', explain(e)),
    h('p', h('a.btn.btn-primary', { href: '#/' }, 'Back to the dashboard'))));
}

window.addEventListener('hashchange', route);
route();
