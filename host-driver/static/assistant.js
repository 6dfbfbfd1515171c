// The certificate assistant: the keys on this computer, their certificates and PIN tries,
// change PIN and unblock with the PUK. Talks to the agent it is served by (same origin).
const T = {
  'zh-CN': {
    title: '证书助手', none: '未检测到USB-Key，请将USB-Key插入电脑USB口', unreadable: '无法读取该USB-Key',
    key: 'USB-Key', serial: '序列号', holder: '证书持有人', issuer: '颁发者', certSerial: '证书序列号',
    validity: '有效期', daysLeft: '剩余天数', days: '天', expired: '已过期', tries: 'PIN剩余次数', noCert: '无证书',
    change: '修改USB-Key密码', oldPin: '原密码', newPin: '新密码', repeat: '确认新密码', changeBtn: '修改密码',
    unblock: '解锁USB-Key', puk: 'PUK码', unblockBtn: '解锁', mismatch: '两次输入的新密码不一致',
    to: '至', network: '无法连接证书应用环境', confirmLast: '确认使用最后一次机会',
  },
  en: {
    title: 'Certificate assistant', none: 'No USB-Key found: insert one into a USB port', unreadable: 'This USB-Key cannot be read',
    key: 'USB-Key', serial: 'Serial', holder: 'Holder', issuer: 'Issuer', certSerial: 'Certificate serial',
    validity: 'Valid', daysLeft: 'Days left', days: 'days', expired: 'expired', tries: 'PIN tries left', noCert: 'no certificate',
    change: 'Change the USB-Key PIN', oldPin: 'Current PIN', newPin: 'New PIN', repeat: 'New PIN again', changeBtn: 'Change PIN',
    unblock: 'Unblock the USB-Key', puk: 'PUK', unblockBtn: 'Unblock', mismatch: 'The two new PINs differ',
    to: 'to', network: 'The agent does not answer', confirmLast: 'Use the last attempt',
  },
};
const lang = document.documentElement.lang === 'en' ? 'en' : 'zh-CN';
const t = T[lang];
document.title = t.title;
document.getElementById('title').textContent = t.title;
document.getElementById('brand').textContent = t.title;

async function call(path, body) {
  try {
    const r = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'accept-language': lang },
      body: JSON.stringify(body || {}),
    });
    return await r.json();
  } catch {
    return { ok: false, code: 'network', message: t.network };
  }
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function field(id, label, autocomplete) {
  return [el('label', { for: id, text: label }),
    el('input', { id, type: 'password', inputmode: 'numeric', autocomplete, maxlength: '8', required: '' })];
}

function pinForm(key, n, kind) {
  const p = `${kind}-${n}`;
  const first = kind === 'change' ? field(`${p}-old`, t.oldPin, 'current-password') : field(`${p}-puk`, t.puk, 'off');
  const form = el('form', { id: `${p}-form`, novalidate: '' },
    el('h3', { text: kind === 'change' ? t.change : t.unblock }),
    ...first, ...field(`${p}-new`, t.newPin, 'new-password'), ...field(`${p}-repeat`, t.repeat, 'new-password'),
    el('button', { type: 'submit', id: `${p}-submit`, text: kind === 'change' ? t.changeBtn : t.unblockBtn }),
    el('p', { class: 'result', id: `${p}-result`, role: 'status', hidden: '' }));
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const v = id => document.getElementById(`${p}-${id}`).value;
    const out = document.getElementById(`${p}-result`);
    out.hidden = false;
    if (v('new') !== v('repeat')) {
      out.className = 'result bad';
      out.textContent = t.mismatch;
      return;
    }
    // The last try of the PIN or the PUK is spent only after the user saw the warning and
    // submitted again (the agent refuses it otherwise).
    const button = document.getElementById(`${p}-submit`);
    const last_try = form.dataset.lastTry === '1';
    const r = kind === 'change'
      ? await call('/assistant/pin/change', { key_id: key.id, old_pin: v('old'), new_pin: v('new'), last_try })
      : await call('/assistant/pin/unblock', { key_id: key.id, puk: v('puk'), new_pin: v('new'), last_try });
    out.className = 'result ' + (r.ok ? 'good' : 'bad');
    out.dataset.code = r.code || '';
    out.textContent = r.message;
    if (r.code === 'last_try') {
      form.dataset.lastTry = '1';
      button.textContent = t.confirmLast;
      return;
    }
    delete form.dataset.lastTry;
    button.textContent = kind === 'change' ? t.changeBtn : t.unblockBtn;
    for (const id of ['old', 'puk', 'new', 'repeat']) {
      const input = document.getElementById(`${p}-${id}`);
      if (input) input.value = '';
    }
    refreshTries();
  });
  return form;
}

function holderOf(subject) {
  const cn = (subject || '').split(',').map(s => s.trim()).find(s => s.startsWith('CN='));
  return cn ? cn.slice(3) : subject;
}

let shown = [];
async function refreshTries() {
  const v = await call('/assistant/keys');
  for (const [n, k] of (v.keys || []).entries()) {
    const cell = document.getElementById(`tries-${n}`);
    if (cell && k.id === shown[n]) cell.textContent = k.pin_retries_total ? `${k.pin_retries} / ${k.pin_retries_total}` : `${k.pin_retries ?? ''}`;
  }
}

async function render() {
  const status = document.getElementById('status');
  const box = document.getElementById('keys');
  const v = await call('/assistant/keys');
  if (!v.ok) {
    status.textContent = v.message || t.network;
    return;
  }
  const keys = v.keys || [];
  status.textContent = keys.length ? '' : t.none;
  shown = keys.map(k => k.id);
  box.replaceChildren(...keys.map((k, n) => {
    const auth = (k.certificates || []).find(c => c.slot === '9a');
    const rows = [[t.key, k.label], [t.serial, k.serial || '']];
    if (k.error) rows.push(['', t.unreadable]);
    if (auth) {
      rows.push([t.holder, holderOf(auth.subject)], [t.issuer, holderOf(auth.issuer)], [t.certSerial, auth.serial],
        [t.validity, `${auth.not_before.slice(0, 10)} ${t.to} ${auth.not_after.slice(0, 10)}`],
        [t.daysLeft, auth.days_left < 0 ? t.expired : `${auth.days_left} ${t.days}`]);
    } else if (!k.error) {
      rows.push([t.holder, t.noCert]);
    }
    const dl = el('dl', {});
    for (const [dt, dd] of rows) dl.append(el('dt', { text: dt }), el('dd', { text: dd }));
    const tries = el('dd', { id: `tries-${n}`, text: k.pin_retries_total ? `${k.pin_retries} / ${k.pin_retries_total}` : `${k.pin_retries ?? ''}` });
    dl.append(el('dt', { text: t.tries }), tries);
    const title = auth ? holderOf(auth.subject) : k.label;
    return el('section', { class: 'key', 'aria-labelledby': `key-${n}` },
      el('h2', { id: `key-${n}`, text: title }), dl,
      el('div', { class: 'forms' }, pinForm(k, n, 'change'), pinForm(k, n, 'unblock')));
  }));
}
render();

// Keys inserted or removed: the page follows, through the agent's event stream (reconnecting
// while the agent restarts).
function follow() {
  const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/events');
  ws.onmessage = () => render();
  ws.onclose = () => setTimeout(follow, 1000);
}
follow();
