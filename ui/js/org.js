// The organization page (#/org): its members with their roles and, for
// admins, changing a role, removing a member, and invites (made with a
// role and a lifetime, their code shown once, revoked).  Trainers see the
// members only; the API checks the role of every call again.

import { api, explain } from './api.js';
import { h, announce, initials, fmtDate } from './dom.js';
import { state, go, refreshUser, isTrainer, isAdmin } from './app.js';

const ROLES = [['trainee', 'Trainee'], ['trainer', 'Trainer'], ['admin', 'Admin']];
const LIFETIMES = [[3600, '1 hour'], [86400, '1 day'], [604800, '7 days'], [2592000, '30 days']];

export function notForYou(page, what) {
  return {
    el: h('section.card.narrow', { id: 'not-for-you' },
      h('h1', 'Not available'),
      h('p', `${what} is for the trainers and admins of an organization.`),
      h('p', h('a.btn.btn-primary', { href: '#/' }, 'Back to the dashboard'))),
    title: 'Not available', page,
  };
}

function roleSelect(id, value, attrs = {}) {
  return h('select', { id, ...attrs },
    ROLES.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

function memberRow(m, admin, errBox, onRemoved) {
  const me = m.id === state.user?.id;
  const name = h('div.member-name',
    h('span.avatar.sm', { 'aria-hidden': 'true' }, initials(m.display_name)),
    h('div', h('strong', m.display_name, me ? ' (you)' : ''), h('div.muted.small', m.email)));
  const row = h('li.member', { dataset: { id: m.id, email: m.email } }, name);
  if (!admin) {
    row.append(h('span', { class: `badge badge-role badge-${m.role}` }, m.role));
    return row;
  }
  const sel = roleSelect(`role-${m.id}`, m.role, { 'aria-label': `Role of ${m.display_name}` });
  sel.dataset.was = m.role;
  sel.addEventListener('change', async () => {
    errBox.hidden = true;
    sel.disabled = true;
    try {
      const r = await api('PATCH', `/org/members/${m.id}`, { role: sel.value });
      sel.dataset.was = r.role;
      row.dataset.role = r.role;
      announce(`${m.display_name} is now ${r.role === 'admin' ? 'an' : 'a'} ${r.role}.`);
      // stepping down: the page (and the menu) as the new role sees it
      if (me) { await refreshUser(); go('#/org'); return; }
    } catch (e) {
      sel.value = sel.dataset.was;
      errBox.textContent = `Could not change the role of ${m.display_name}: ${explain(e)}`;
      errBox.hidden = false;
    }
    sel.disabled = false;
  });
  row.dataset.role = m.role;

  // removing asks once more, in place
  const actions = h('div.member-actions');
  const remove = h('button.btn.btn-small', { type: 'button', 'aria-label': `Remove ${m.display_name}` }, 'Remove');
  const ask = () => {
    const yes = h('button.btn.btn-small', { type: 'button' }, 'Yes, remove');
    const no = h('button.linklike', { type: 'button' }, 'Cancel');
    no.addEventListener('click', () => { actions.replaceChildren(remove); remove.focus(); });
    yes.addEventListener('click', async () => {
      errBox.hidden = true;
      yes.disabled = true;
      try {
        await api('DELETE', `/org/members/${m.id}`);
        announce(`${m.display_name} was removed from the organization.`);
        if (me) { await refreshUser(); go('#/'); return; }
        onRemoved(row);
      } catch (e) {
        actions.replaceChildren(remove);
        errBox.textContent = `Could not remove ${m.display_name}: ${explain(e)}`;
        errBox.hidden = false;
      }
    });
    actions.replaceChildren(h('span.small', `Remove ${m.display_name}?`), yes, no);
    yes.focus();
  };
  remove.addEventListener('click', ask);
  actions.append(remove);
  row.append(sel, actions);
  return row;
}

const statusLabel = { open: 'Open', used: 'Used', revoked: 'Revoked', expired: 'Expired' };

function inviteRow(inv, errBox, refresh) {
  const row = h('li.invite', { dataset: { id: inv.id, status: inv.status } },
    h('div',
      h('strong', `${inv.role.charAt(0).toUpperCase()}${inv.role.slice(1)} invite`),
      h('div.muted.small', inv.status === 'used' ? `Used ${fmtDate(inv.used_at)}`
        : `Made ${fmtDate(inv.created_at)} · expires ${fmtDate(inv.expires_at)}`)),
    h('span', { class: `badge badge-invite-${inv.status}` }, statusLabel[inv.status] || inv.status));
  if (inv.status === 'open') {
    const revoke = h('button.btn.btn-small', { type: 'button', 'aria-label': `Revoke the ${inv.role} invite made ${fmtDate(inv.created_at)}` }, 'Revoke');
    revoke.addEventListener('click', async () => {
      errBox.hidden = true;
      revoke.disabled = true;
      try {
        await api('DELETE', `/org/invites/${inv.id}`);
        announce('The invite was revoked; its code no longer works.');
        await refresh();
      } catch (e) {
        revoke.disabled = false;
        errBox.textContent = `Could not revoke the invite: ${explain(e)}`;
        errBox.hidden = false;
      }
    });
    row.append(revoke);
  }
  return row;
}

// The code and its link, shown once: the server keeps only a hash.
function inviteCreated(inv) {
  const link = `${location.origin}${location.pathname}#/invite/${inv.code}`;
  const copy = h('button.btn.btn-secondary', { type: 'button' }, 'Copy link');
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(link); copy.textContent = 'Copied'; } catch { linkIn.select(); }
  });
  const linkIn = h('input', { id: 'invite-link', readonly: true, value: link, 'aria-label': 'Invite link' });
  linkIn.addEventListener('focus', () => linkIn.select());
  return h('div.invite-new', { id: 'invite-new', role: 'status' },
    h('p', h('strong', `A ${inv.role} invite, valid until ${fmtDate(inv.expires_at)}.`),
      ' Send the link (or the code) to the person you invite. It works once, and it is shown only now.'),
    h('div.field',
      h('label', { for: 'invite-code' }, 'Code'),
      h('input.mono', { id: 'invite-code', readonly: true, value: inv.code })),
    h('div.field',
      h('label', { for: 'invite-link' }, 'Link'),
      h('div.copy-row', linkIn, copy)));
}

export async function renderOrg() {
  await refreshUser();
  if (!isTrainer()) return notForYou('org', 'The organization page');
  const admin = isAdmin();
  const [org, members, invites] = await Promise.all([
    api('GET', '/org'),
    api('GET', '/org/members'),
    admin ? api('GET', '/org/invites') : Promise.resolve(null),
  ]);

  const memberErr = h('div.alert.alert-error', { role: 'alert', hidden: true });
  const count = h('span.muted', { id: 'member-count' }, `${members.length} member${members.length === 1 ? '' : 's'}`);
  const list = h('ul.members', { id: 'members', 'aria-label': 'Members' });
  const onRemoved = (row) => {
    row.remove();
    const n = list.children.length;
    count.textContent = `${n} member${n === 1 ? '' : 's'}`;
  };
  for (const m of members) list.append(memberRow(m, admin, memberErr, onRemoved));

  const membersCard = h('section.card', { 'aria-labelledby': 'members-title' },
    h('div.card-head', h('h2', { id: 'members-title' }, 'Members'), count),
    admin ? h('p.muted.small', 'A role change or a removal takes effect at once, on every device.') : null,
    memberErr, list);

  let invitesCard = null;
  if (admin) {
    const invErr = h('div.alert.alert-error', { role: 'alert', hidden: true });
    const created = h('div', { id: 'invite-created' });
    const invList = h('ul.invites', { id: 'invites', 'aria-label': 'Invites' });
    const refresh = async () => {
      const rows = await api('GET', '/org/invites');
      invList.replaceChildren(...(rows.length ? rows.map((i) => inviteRow(i, invErr, refresh))
        : [h('li.muted.empty', 'No invites yet.')]));
    };
    invList.replaceChildren(...(invites.length ? invites.map((i) => inviteRow(i, invErr, refresh))
      : [h('li.muted.empty', 'No invites yet.')]));
    const form = h('form.invite-form', { novalidate: true, 'aria-label': 'New invite' },
      h('div.field', h('label', { for: 'invite-role' }, 'Role'), roleSelect('invite-role', 'trainee')),
      h('div.field', h('label', { for: 'invite-expiry' }, 'Expires after'),
        h('select', { id: 'invite-expiry' }, LIFETIMES.map(([v, l]) => h('option', { value: v, selected: v === 604800 }, l)))),
      h('button.btn.btn-primary', { type: 'submit' }, 'Create invite'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      invErr.hidden = true;
      const btn = form.querySelector('button');
      btn.disabled = true;
      try {
        const inv = await api('POST', '/org/invites', {
          role: form.querySelector('#invite-role').value,
          expires_in: Number(form.querySelector('#invite-expiry').value),
        });
        created.replaceChildren(inviteCreated(inv));
        announce(`Invite created for a ${inv.role}. Its code is shown once.`);
        await refresh();
        created.querySelector('#invite-link').focus();
      } catch (err) {
        invErr.textContent = `Could not create the invite: ${explain(err)}`;
        invErr.hidden = false;
      }
      btn.disabled = false;
    });
    invitesCard = h('section.card', { 'aria-labelledby': 'invites-title' },
      h('h2', { id: 'invites-title' }, 'Invites'),
      h('p.muted.small', 'An invite is a single-use code that sets the role of the account registered with it.'),
      form, invErr, created,
      h('h3.sub', 'Recent invites'), invList);
  }

  const el = h('div.page.org-page',
    h('div.page-head',
      h('p.eyebrow', 'Organization'),
      h('h1', org.name),
      h('p.muted', `You are ${org.role === 'admin' ? 'an' : 'a'} ${org.role} here.`)),
    h('div.org-grid', membersCard, invitesCard));
  return { el, title: org.name, page: 'org' };
}
