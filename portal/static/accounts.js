// Enterprise account management: bind ticked accounts to the inserted USB-Key (its PIN and a
// signature over the portal's challenge, through the agent), and the unbind page.
import { Agent, ErrorCode } from '/static/ukey.js';
import { Portal, showOutcome } from '/static/portal.js';

const config = JSON.parse(document.getElementById('page-config').textContent);
const text = key => config.texts[key] || key;
const $ = id => document.getElementById(id);
const portal = new Portal();
const agent = new Agent(config.agent);

const show = v => showOutcome($('outcome'), v, text('error.network'));
function ticked() {
  return [...document.querySelectorAll('input[name="account"]:checked')].map(i => i.value);
}
function needOne() {
  const ids = ticked();
  const err = $('accounts-error');
  err.hidden = ids.length > 0;
  err.textContent = ids.length ? '' : text('accounts.tick_one');
  return ids;
}
/** Show the answer's accounts as bound or not. */
function mark(accounts) {
  for (const a of accounts || []) {
    const row = document.querySelector(`tr[data-account="${CSS.escape(a.id)}"]`);
    if (!row) continue;
    const cell = row.querySelector('.state');
    const bound = a.bound_to.length > 0;
    cell.className = 'state ' + (bound ? 'bound' : 'unbound');
    cell.textContent = text(bound ? 'accounts.bound' : 'accounts.unbound');
    row.querySelector('input').checked = false;
  }
}

// ---- the accounts page: bind ----
if ($('bind-form')) {
  const state = JSON.parse($('page-state').textContent);
  if (!state.any_bound && new URLSearchParams(location.search).has('welcome')) $('welcome').showModal();
  $('welcome-later').addEventListener('click', () => $('welcome').close());
  $('welcome-bind').addEventListener('click', () => {
    $('welcome').close();
    document.querySelector('input[name="account"]')?.focus();
  });

  let key = null;
  async function findKey() {
    const status = $('bind-key-status');
    try {
      const keys = (await agent.keys()).filter(k => !k.error);
      key = keys.find(k => k.holder) || null;
      $('bind-key').value = key ? key.holder : '';
      status.textContent = key ? '' : text(keys.length ? 'agent.no_cert' : 'agent.no_key');
    } catch (e) {
      key = null;
      $('bind-key').value = '';
      status.textContent = e.code === ErrorCode.AGENT_UNAVAILABLE ? text('agent.missing') : e.message;
    }
    $('bind-submit').disabled = !key;
  }
  $('bind-form').addEventListener('submit', async e => {
    e.preventDefault();
    if (!needOne().length) return;
    $('bind-pin').value = '';
    $('bind-pin-error').hidden = true;
    $('bind-dialog').showModal();
    await findKey();
    $('bind-pin').focus();
  });
  $('bind-cancel').addEventListener('click', () => $('bind-dialog').close());
  $('bind-confirm').addEventListener('submit', async e => {
    e.preventDefault();
    const pin = $('bind-pin').value;
    const err = $('bind-pin-error');
    err.hidden = !!pin;
    err.textContent = pin ? '' : text('pin.required');
    if (!pin || !key) return;
    $('bind-submit').disabled = true;
    try {
      const c = await portal.post('/api/challenge', {});
      if (!c.ok) return show(c);
      const token = await agent.sign({ keyId: key.id, pin, nonce: c.nonce, lastTry: false });
      const v = await portal.post('/api/bind', { account_ids: ticked(), nonce: c.nonce, token });
      $('bind-dialog').close();
      show(v);
      if (v.ok) mark(v.accounts);
    } catch (e) {
      if (e.code === ErrorCode.WRONG_PIN || e.code === ErrorCode.LAST_TRY) {
        err.hidden = false;
        err.textContent = e.message;
        $('bind-pin').value = '';
        $('bind-pin').focus();
      } else {
        $('bind-dialog').close();
        show({ ok: false, code: e.code, message: e.message });
      }
    } finally {
      $('bind-submit').disabled = !key;
    }
  });
}

// ---- the unbind page ----
if ($('unbind-form')) {
  $('unbind-form').addEventListener('submit', async e => {
    e.preventDefault();
    const ids = needOne();
    if (!ids.length) return;
    $('unbind-submit').disabled = true;
    try {
      const v = await portal.post('/api/unbind', { account_ids: ids });
      show(v);
      if (v.ok) {
        mark(v.accounts);
        for (const a of v.accounts) if (!a.bound_to.length) document.querySelector(`tr[data-account="${CSS.escape(a.id)}"]`)?.remove();
      }
    } finally {
      $('unbind-submit').disabled = false;
    }
  });
}
