// The system page: the login's message (an expiry reminder, say) left by the login page.
import { Portal } from '/static/portal.js';

const $ = id => document.getElementById(id);
const said = sessionStorage.getItem('ukey.login');
if (said) {
  sessionStorage.removeItem('ukey.login');
  const v = JSON.parse(said);
  const box = $('reminder');
  box.hidden = false;
  box.className = 'outcome ' + (v.code === 'cert_expiring' ? 'warn' : 'good');
  box.dataset.code = v.code || '';
  box.textContent = v.message;
}
$('logout').addEventListener('click', async () => {
  await new Portal().post('/api/logout', {});
  location.assign('/');
});
