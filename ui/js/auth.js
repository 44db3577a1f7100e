// Sign in and sign up.

import { api, explain } from './api.js';
import { h, announce } from './dom.js';
import { setUser, refreshUser, go, state, isPublicHash } from './app.js';

function field(id, label, attrs, hint) {
  return h('div.field',
    h('label', { for: id }, label),
    h('input', { id, name: id, ...attrs, 'aria-describedby': hint ? `${id}-hint` : undefined }),
    hint ? h('p.hint', { id: `${id}-hint` }, hint) : null);
}

function authPage(title, subtitle, form, footer) {
  return h('div.auth-wrap',
    h('section.card.auth-card', { 'aria-labelledby': 'auth-title' },
      h('h1', { id: 'auth-title' }, title),
      h('p.muted', subtitle),
      form,
      h('p.auth-footer', footer)),
    h('aside.auth-aside', { 'aria-hidden': 'true' },
      h('div.bubble.b1', '“My order arrived broken and I want my money back.”'),
      h('div.bubble.b2.mine', '“I’m so sorry — let’s put this right today.”'),
      h('div.bubble.b3', '“…okay. Thank you for listening.”')));
}

// login and register answer without the role; /auth/me has it
async function afterLogin() {
  try { await refreshUser(); } catch { /* the page asks again */ }
  const next = sessionStorage.getItem('after_login');
  sessionStorage.removeItem('after_login');
  go(next && !isPublicHash(next) ? next : '#/');
}

function submitting(form, busy, label) {
  const btn = form.querySelector('button[type=submit]');
  btn.disabled = busy;
  btn.textContent = label;
  form.setAttribute('aria-busy', String(busy));
}

function showError(box, err, extra) {
  box.replaceChildren(explain(err), extra || '');
  box.hidden = false;
}

let retryTimer = null;

// Counts down a 429's Retry-After, keeping the button disabled meanwhile.
function holdOff(form, box, err, label) {
  const btn = form.querySelector('button[type=submit]');
  let left = err.retryAfter;
  clearInterval(retryTimer);
  btn.disabled = true;
  const tick = () => {
    if (!document.body.contains(btn)) { clearInterval(retryTimer); return; }
    if (left <= 0) {
      clearInterval(retryTimer);
      btn.disabled = false;
      btn.textContent = label;
      box.textContent = 'You can try again now.';
      return;
    }
    btn.textContent = `Try again in ${left}s`;
    left--;
  };
  tick();
  retryTimer = setInterval(tick, 1000);
}

export async function renderLogin() {
  if (state.user) { go('#/'); return { el: h('div'), title: '', page: 'login' }; }
  const error = h('div.alert.alert-error', { role: 'alert', id: 'login-error', hidden: true });
  const form = h('form', { novalidate: true, 'aria-describedby': 'login-error' },
    field('email', 'Email', { type: 'email', autocomplete: 'username', required: true, 'data-autofocus': true }),
    field('password', 'Password', { type: 'password', autocomplete: 'current-password', required: true }),
    error,
    h('button.btn.btn-primary.btn-block', { type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    const email = form.email.value.trim();
    const password = form.password.value;
    if (!email || !password) {
      error.textContent = 'Enter your email and password.';
      error.hidden = false;
      (email ? form.password : form.email).focus();
      return;
    }
    submitting(form, true, 'Signing in…');
    try {
      const r = await api('POST', '/auth/login', { email, password }, { auth: false });
      setUser(r.user);
      announce(`Signed in as ${r.user.display_name}.`);
      afterLogin();
    } catch (err) {
      submitting(form, false, 'Sign in');
      showError(error, err);
      if (err.code === 'rate_limited' && err.retryAfter) holdOff(form, error, err, 'Sign in');
      form.password.select();
    }
  });
  return {
    el: authPage('Welcome back', 'Sign in to keep practising your conversations.', form,
      ['New here? ', h('a', { href: '#/signup' }, 'Create an account')]),
    title: 'Sign in', page: 'login',
  };
}

// #/signup, or #/invite/CODE (an invite link): the code is filled in
export async function renderSignup({ params = [] } = {}) {
  const invite = params[0] || '';
  if (state.user && invite) {
    // an invite link opened while signed in: it is for a new account
    return {
      el: h('section.card.narrow', { id: 'invite-signed-in' },
        h('h1', 'You are signed in'),
        h('p', `This invite link is for creating a new account, and you are signed in as ${state.user.display_name}. Log out first to use it, or open it in a private window.`),
        h('p', h('a.btn.btn-primary', { href: '#/' }, 'Back to the dashboard'))),
      title: 'Invite', page: 'signup',
    };
  }
  if (state.user) { go('#/'); return { el: h('div'), title: '', page: 'signup' }; }
  const error = h('div.alert.alert-error', { role: 'alert', id: 'signup-error', hidden: true });
  const form = h('form', { novalidate: true, 'aria-describedby': 'signup-error' },
    field('display_name', 'Your name', { type: 'text', autocomplete: 'name', required: true, maxlength: 80, 'data-autofocus': true }),
    field('email', 'Email', { type: 'email', autocomplete: 'email', required: true }),
    field('password', 'Password', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 },
      'At least 8 characters.'),
    field('invite_code', 'Invite code (optional)', { type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: 64, value: invite },
      invite ? 'From your invitation: you join its organization with the role it gives.'
        : 'If your organization sent you one. Without it you join as a trainee.'),
    error,
    h('button.btn.btn-primary.btn-block', { type: 'submit' }, 'Create account'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    const body = {
      display_name: form.display_name.value.trim(),
      email: form.email.value.trim(),
      password: form.password.value,
    };
    const code = form.invite_code.value.trim();
    if (code) body.invite_code = code;
    const missing = ['display_name', 'email', 'password'].find((k) => !body[k]);
    if (missing) {
      error.textContent = 'Please fill in every field.';
      error.hidden = false;
      form[missing].focus();
      return;
    }
    submitting(form, true, 'Creating account…');
    try {
      // registration answers like login and sets the session cookie
      const r = await api('POST', '/auth/register', body, { auth: false });
      setUser(r.user);
      announce(`Welcome, ${r.user.display_name}!`);
      afterLogin();
    } catch (err) {
      submitting(form, false, 'Create account');
      const extra = err.code === 'email_taken' ? h('span', ' ', h('a', { href: '#/login' }, 'Go to sign in')) : null;
      showError(error, err, extra);
      if (err.code === 'rate_limited' && err.retryAfter) holdOff(form, error, err, 'Create account');
      if (err.code === 'weak_password') form.password.focus();
      if (err.code === 'email_taken') form.email.focus();
      if (err.code === 'invalid_invite' || err.field === 'invite_code') form.invite_code.focus();
    }
  });
  return {
    el: authPage(invite ? 'You are invited' : 'Create your account',
      invite ? 'Create your account to join your team and practise hard conversations with AI personas.'
        : 'Practise hard conversations with AI personas and track your progress.', form,
      ['Already have an account? ', h('a', { href: '#/login' }, 'Sign in')]),
    title: 'Sign up', page: 'signup',
  };
}
