// The certificate application (证书新办): the form (errors next to each field, what was typed
// kept) and the order review (确认订单 / 返回修改), over the portal's JSON API.
import { Portal, showOutcome } from '/static/ukey.js';

const config = JSON.parse(document.getElementById('page-config').textContent);
const text = key => config.texts[key] || key;
const $ = id => document.getElementById(id);
const portal = new Portal();
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
    const v = await portal.post(`/api/applications/${encodeURIComponent(confirm.dataset.application)}/confirm`, {});
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
    const id = input.closest('.photos').dataset.application;
    const side = input.dataset.side;
    const state = $(`photo-${side}-state`);
    const v = await portal.put(`/api/applications/${encodeURIComponent(id)}/photos/${side}`, file);
    showOutcome($('outcome'), v, text('error.network'));
    if (v.ok) state.textContent = text('apply.photo.done');
  });
}
