// The certificate application (证书新办) over the portal's JSON API and the local agent: the
// form (errors next to each field, what was typed kept), the order review (确认订单 / 返回修改),
// the ID photos, 确认申请 with a key pair generated on the USB-Key, the SMS code, the payment,
// the certificate written to the key, and the receipt's print button.
import { Agent, ErrorCode } from '/static/ukey.js';
import { Portal, showOutcome } from '/static/portal.js';

const $ = id => document.getElementById(id);
const config = JSON.parse($('page-config')?.textContent || '{"texts": {}}');
const text = key => config.texts[key] || key;
const portal = new Portal();
const agent = config.agent ? new Agent(config.agent) : null;
const application = $('application')?.dataset.application;
const api = path => `/api/applications/${encodeURIComponent(application)}${path}`;
const show = v => showOutcome($('outcome'), v, text('error.network'));
const FIELDS = ['handler_name', 'id_number', 'mobile', 'email'];

function fieldError(name, message) {
  const p = $(name + '-error');
  p.hidden = !message;
  p.textContent = message || '';
  if (message) $(name).setAttribute('aria-invalid', 'true');
  else $(name).removeAttribute('aria-invalid');
}

const form = $('apply-form');
if (form) {
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const body = Object.fromEntries(FIELDS.map(f => [f, $(f).value.trim()]));
    const id = form.dataset.application;
    $('apply-next').disabled = true;
    try {
      const v = await portal.post(id ? `/api/applications/${encodeURIComponent(id)}/form` : '/api/applications', body);
      for (const f of FIELDS) fieldError(f, '');
      if (v.ok) {
        location.assign(`/apply/${encodeURIComponent(v.application.id)}`);
        return;
      }
      const wrong = v.fields || [];
      for (const w of wrong) if (FIELDS.includes(w.field)) fieldError(w.field, w.message);
      showOutcome($('outcome'), wrong.length ? { ...v, message: v.message || text('apply.fix') } : v, text('error.network'));
      if (wrong.length) $(wrong[0].field)?.focus();
    } finally {
      $('apply-next').disabled = false;
    }
  });
}

const confirm = $('order-confirm');
if (confirm) {
  confirm.addEventListener('click', async () => {
    confirm.disabled = true;
    const v = await portal.post(api('/confirm'), {});
    if (v.ok) {
      location.reload();
      return;
    }
    showOutcome($('outcome'), v, text('error.network'));
    confirm.disabled = false;
  });
}

// The ID photos: each side uploads as soon as it is picked; the portal judges the bytes.
for (const input of document.querySelectorAll('.photos input[type=file]')) {
  input.addEventListener('change', async () => {
    const file = input.files[0];
    if (!file) return;
    const side = input.dataset.side;
    const state = $(`photo-${side}-state`);
    const v = await portal.put(api(`/photos/${side}`), file);
    showOutcome($('outcome'), v, text('error.network'));
    if (v.ok) state.textContent = text('apply.photo.done');
  });
}

/** Ask the confirm dialog `dialog` (confirm_dialog.html), showing `message`: resolves true or false. */
function ask(dialog, message) {
  return new Promise(resolve => {
    $(`${dialog}-text`).textContent = message;
    const [yes, no] = [$(`${dialog}-confirm`), $(`${dialog}-cancel`)];
    const done = answer => {
      yes.onclick = no.onclick = null;
      $(dialog).close();
      resolve(answer);
    };
    yes.onclick = () => done(true);
    no.onclick = () => done(false);
    $(dialog).showModal();
  });
}

/**
 * A step done with the USB-Key (确认申请, writing the certificate): the keys in a choice that
 * follows insertion and removal, the PIN, and `run(keyId, pin, {lastTry, replace})`. The last
 * PIN try and replacing a certificate already on the key are asked first.
 */
function keyStep(prefix, buttonId, run) {
  const select = $(`${prefix}-key`);
  const status = $(`${prefix}-key-status`);
  const button = $(buttonId);
  const pin = $(`${prefix}-pin`);
  const pinError = $(`${prefix}-pin-error`);
  agent.onKeyChange((keys, error) => {
    const usable = (keys || []).filter(k => !k.error);
    const chosen = select.value;
    select.replaceChildren(...usable.map(k => new Option(k.holder || k.label, k.id, false, k.id === chosen)));
    button.disabled = usable.length === 0;
    if (error) status.textContent = error.code === ErrorCode.AGENT_UNAVAILABLE ? text('agent.missing') : error.message;
    else status.textContent = usable.length ? '' : text('agent.no_key');
  });
  $(`${prefix}-form`).addEventListener('submit', async e => {
    e.preventDefault();
    const given = pin.value;
    pinError.hidden = !!given;
    pinError.textContent = given ? '' : text('pin.required');
    if (!given || !select.value) return;
    button.disabled = true;
    const options = { lastTry: false, replace: false };
    try {
      for (;;) {
        try {
          const v = await run(select.value, given, options);
          show(v);
          if (v.ok && v.after) v.after();
          else if (v.ok) setTimeout(() => location.reload(), 600);
          return;
        } catch (err) {
          if (err.code === ErrorCode.LAST_TRY && !options.lastTry) {
            if (!(await ask('apply-last-try', err.message))) return;
            options.lastTry = true;
          } else if (err.code === ErrorCode.SLOT_IN_USE && !options.replace) {
            if (!(await ask('replace', text('apply.key.replace')))) return;
            options.replace = true;
          } else if (err.code === ErrorCode.WRONG_PIN) {
            pinError.hidden = false;
            pinError.textContent = err.message;
            pin.value = '';
            pin.focus();
            return;
          } else {
            show({ ok: false, code: err.code, message: err.message });
            return;
          }
        }
      }
    } finally {
      button.disabled = !select.value;
    }
  });
}

// 确认申请: a key pair generated on the key, its request and attestation to the portal, which
// sends the SMS code.
if ($('submit-form')) {
  keyStep('submit', 'submit-application', async (keyId, pin, options) => {
    const pair = await agent.enrollKeypair({ keyId, pin, ...options });
    return portal.post(api('/submit'), { csr: pair.csr, attestation: pair.attestation, attestation_f9: pair.attestationF9 });
  });
}

// The SMS code (签名确认), and a new one on request.
if ($('sms-form')) {
  $('sms-form').addEventListener('submit', async e => {
    e.preventDefault();
    const code = $('sms-code').value.trim();
    const err = $('sms-code-error');
    err.hidden = !!code;
    err.textContent = code ? '' : text('apply.sms.required');
    if (!code) return;
    $('sms-submit').disabled = true;
    const v = await portal.post(api('/sms/verify'), { code });
    show(v);
    if (v.ok) setTimeout(() => location.reload(), 600);
    else $('sms-submit').disabled = false;
  });
  $('sms-resend').addEventListener('click', async () => show(await portal.post(api('/sms/resend'), {})));
}

// Payment: the chosen provider's page (in the sandbox, its stand-in), then back here.
if ($('pay-form')) {
  $('pay-form').addEventListener('submit', async e => {
    e.preventDefault();
    const method = document.querySelector('input[name="method"]:checked')?.value;
    if (!method) return show({ ok: false, message: text('apply.pay.choose') });
    $('pay-submit').disabled = true;
    const v = await portal.post(api('/pay'), { method });
    show(v);
    if (v.ok && v.sandbox_pay) location.assign(`/sandbox/pay/${encodeURIComponent(v.payment.id)}`);
    else $('pay-submit').disabled = false;
  });
}

// The issued certificate, written to the key that holds its private key.
if ($('install-form')) {
  keyStep('install', 'install-submit', async (keyId, pin, options) => {
    const message = await agent.installCertificate({ keyId, pin, certificate: config.certificate, lastTry: options.lastTry });
    // Stays on this page: the certificate is on the key, which can now log in.
    return { ok: true, code: 'installed', message, after: () => { $('install-done').hidden = false; } };
  });
}

$('receipt-print')?.addEventListener('click', () => window.print());
