// The sandbox's stand-in for the payment app: pays, then goes back to the application.
import { Portal, showOutcome } from '/static/portal.js';

const $ = id => document.getElementById(id);
const config = JSON.parse($('page-config').textContent);
const portal = new Portal();

$('sandbox-pay').addEventListener('click', async () => {
  $('sandbox-pay').disabled = true;
  const v = await portal.post(`/api/sandbox/pay/${encodeURIComponent(config.payment)}`, {});
  showOutcome($('outcome'), v.ok ? { ...v, message: config.texts['sandbox.paid'] } : v, config.texts['error.network']);
  if (v.ok) setTimeout(() => location.assign(config.back), 600);
  else $('sandbox-pay').disabled = false;
});
