// Staff review of one application: approve (the CA issues the certificate), reject with a
// reason, revoke the issued certificate; each answer shown, the page read again after it.
import { Portal, showOutcome } from '/static/portal.js';

const $ = id => document.getElementById(id);
const config = JSON.parse($('page-config').textContent);
const text = key => config.texts[key] || key;
const portal = new Portal();
const id = $('application').dataset.application;
const api = path => `/api/staff/applications/${encodeURIComponent(id)}${path}`;

async function act(button, path, body) {
  button.disabled = true;
  const v = await portal.post(path, body);
  showOutcome($('outcome'), v, text('error.network'));
  if (v.ok) setTimeout(() => location.reload(), 800);
  else button.disabled = false;
}

$('approve')?.addEventListener('click', () => act($('approve'), api('/approve'), {}));

$('reject-form')?.addEventListener('submit', e => {
  e.preventDefault();
  const reason = $('reject-reason').value.trim();
  const err = $('reject-reason-error');
  err.hidden = !!reason;
  err.textContent = reason ? '' : text('staff.reason_required');
  if (!reason) return $('reject-reason').focus();
  act($('reject'), api('/reject'), { reason });
});

$('revoke-form')?.addEventListener('submit', e => {
  e.preventDefault();
  const fp = $('cert').dataset.fingerprint;
  act($('revoke'), `/api/staff/certificates/${encodeURIComponent(fp)}/revoke`, { reason: $('revoke-reason').value });
});
