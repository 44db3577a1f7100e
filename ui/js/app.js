// The app shell: a hash router (#/login, #/signup, #/, #/chat/ID,
// #/summary/ID, #/session/ID), the signed-in user, logout.

import { api, explain, setUnauthorizedHandler, ApiError } from './api.js';
import { h, announce } from './dom.js';
import { renderLogin, renderSignup } from './auth.js';
import { renderDashboard } from './dashboard.js';
import { renderChat, renderSummary, renderSession } from './session.js';

export const state = {
  user: null,
  lastAssessment: null,   // {sessionId, assessment, before}
  cleanup: null,          // the current page's teardown (closes the chat socket)
};

const main = document.getElementById('main');

setUnauthorizedHandler(() => {
  state.user = null;
  showNav();
  if (!location.hash.startsWith('#/login') && !location.hash.startsWith('#/signup')) {
    sessionStorage.setItem('after_login', location.hash);
    go('#/login');
  }
});

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function showNav() {
  const nav = document.getElementById('topnav');
  nav.hidden = !state.user;
  document.getElementById('who').textContent = state.user
    ? `${state.user.display_name} · level ${state.user.level}` : '';
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

export function setUser(u) { state.user = u; showNav(); }

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
  [/^#\/?$/, renderDashboard, true],
  [/^#\/chat\/(\d+)$/, renderChat, true],
  [/^#\/summary\/(\d+)$/, renderSummary, true],
  [/^#\/session\/(\d+)$/, renderSession, true],
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
