// The login page: password tab, and the CA tab that shows the inserted key's holder (through
// the local agent) and logs in with its PIN.
import { Agent, ErrorCode } from '/static/ukey.js';
import { Portal, showOutcome } from '/static/portal.js';

const config = JSON.parse(document.getElementById('page-config').textContent);
const text = key => config.texts[key] || key;
const $ = id => document.getElementById(id);

const portal = new Portal();
const agent = new Agent(config.agent);

// ---- tabs (WAI-ARIA tabs pattern: arrow keys move between them) ----
const tabs = [$('tab-password'), $('tab-ca')];
function select(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  tab.focus();
  history.replaceState(null, '', tab.id === 'tab-ca' ? '#ca' : '#password');
}
for (const t of tabs) {
  t.addEventListener('click', () => select(t));
  t.addEventListener('keydown', e => {
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      select(tabs[(tabs.indexOf(t) + 1) % tabs.length]);
      e.preventDefault();
    }
  });
}
if (location.hash === '#ca') select($('tab-ca'));

// ---- outcome and field errors ----
const show = v => showOutcome($('outcome'), v, text('error.network'));
function fieldError(id, message) {
  const p = $(id + '-error');
  const input = $(id);
  p.hidden = !message;
  p.textContent = message || '';
  if (message) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

// ---- password login ----
$('password-form').addEventListener('submit', async e => {
  e.preventDefault();
  const username = $('username').value.trim();
  const password = $('password').value;
  fieldError('username', username ? '' : text('form.username_required'));
  fieldError('password', password ? '' : text('form.password_required'));
  if (!username) return $('username').focus();
  if (!password) return $('password').focus();
  $('password-submit').disabled = true;
  try {
    const v = await portal.post('/api/login/password', { username, password });
    if (v.ok) {
      // Staff go to the review queue; a user with nothing bound yet to the accounts page with
      // the "bind first" prompt.
      if (v.user && v.user.role === 'staff') location.assign('/staff');
      else location.assign(v.bound ? '/accounts' : '/accounts?welcome=1');
      return;
    }
    show(v);
  } finally {
    $('password-submit').disabled = false;
  }
});

// ---- the CA tab: keys through the agent ----
let keys = [];
function chosenKey() {
  if (keys.length === 1) return keys[0];
  return keys.find(k => k.id === $('ca-choose').value) || null;
}
function renderKeys(list, error) {
  const status = $('agent-status');
  const missing = error && error.code === ErrorCode.AGENT_UNAVAILABLE;
  $('agent-missing').hidden = !missing;
  keys = (list || []).filter(k => !k.error);
  const account = $('ca-account');
  const choose = $('ca-choose');
  if (error) {
    status.textContent = missing ? '' : error.message;
    account.value = '';
  } else if (keys.length === 0) {
    status.textContent = text('agent.no_key');
    account.value = '';
  } else {
    status.textContent = '';
    account.value = keys.length === 1 ? (keys[0].holder || keys[0].label) : '';
  }
  choose.hidden = keys.length < 2;
  account.hidden = keys.length >= 2;
  if (keys.length >= 2) {
    const before = choose.value;
    choose.replaceChildren(...keys.map(k => new Option(k.holder || k.label, k.id)));
    if (keys.some(k => k.id === before)) choose.value = before;
  }
  const key = chosenKey();
  if (key && !key.holder && !error) status.textContent = text('agent.no_cert');
  $('ca-submit').disabled = !key || !key.holder;
}
agent.onKeyChange(renderKeys);

/** The account picked among several a key is bound to, if the choice is shown. */
function chosenAccount() {
  return document.querySelector('input[name="login-account"]:checked')?.value || null;
}
/** A key bound to several accounts: the choice, then "log in" again. */
function offerAccounts(v) {
  const box = $('choose-account');
  const list = box.querySelector('.choices');
  list.replaceChildren(...v.accounts.map((a, i) => {
    const label = document.createElement('label');
    const input = document.createElement('input');
    Object.assign(input, { type: 'radio', name: 'login-account', value: a.id, checked: i === 0 });
    label.append(input, document.createTextNode(a.name));
    return label;
  }));
  box.hidden = false;
  list.querySelector('input').focus();
}

async function keyLogin(lastTry) {
  const key = chosenKey();
  const pin = $('pin').value;
  fieldError('pin', pin ? '' : text('pin.required'));
  if (!pin) return $('pin').focus();
  if (!key) return;
  $('ca-submit').disabled = true;
  try {
    const v = await portal.keyLogin(agent, { keyId: key.id, pin, lastTry, accountId: chosenAccount() });
    if (v.ok) {
      sessionStorage.setItem('ukey.login', JSON.stringify({ code: v.code, message: v.message }));
      location.assign('/home');
      return;
    }
    if (v.code === 'choose_account') {
      $('outcome').hidden = true;
      offerAccounts(v);
      return;
    }
    show(v);
    $('pin').value = '';
  } catch (e) {
    if (e.code === ErrorCode.LAST_TRY) {
      $('last-try-text').textContent = e.message;
      $('last-try').showModal();
      return;
    }
    show({ ok: false, code: e.code, message: e.message });
    if (e.code === ErrorCode.WRONG_PIN) {
      $('pin').value = '';
      $('pin').focus();
    }
  } finally {
    $('ca-submit').disabled = !chosenKey();
  }
}
$('ca-form').addEventListener('submit', e => {
  e.preventDefault();
  keyLogin(false);
});
$('last-try-confirm').addEventListener('click', () => {
  $('last-try').close();
  keyLogin(true);
});
$('last-try-cancel').addEventListener('click', () => {
  $('last-try').close();
  $('pin').value = '';
});
