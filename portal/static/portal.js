// portal.js: the ukey portal's own pages talking to its JSON API (session, CSRF token,
// language) and showing its answers. Not for other portals: they use ukey.js with their own
// API.

/**
 * Show an answer `{ok, code, message}` in the element `box` (good or bad), with `fallback`
 * when it carries no message (a network failure).
 */
export function showOutcome(box, v, fallback) {
  box.hidden = false;
  box.className = 'outcome ' + (v.ok ? 'good' : 'bad');
  box.dataset.code = v.code || '';
  box.textContent = v.message || fallback;
}

/** The portal's JSON API from its own pages: session, CSRF token, language. */
export class Portal {
  constructor({ lang } = {}) {
    this.lang = lang || document.documentElement.lang || 'zh-CN';
    this.csrf = null;
  }

  /** `body`: an object (sent as JSON) or a Blob such as a picked file (sent as it is). */
  async #fetch(method, path, body) {
    const blob = body instanceof Blob;
    const type = blob ? body.type || 'application/octet-stream' : 'application/json';
    let resp;
    try {
      resp = await fetch(path, {
        method,
        credentials: 'same-origin',
        headers: {
          'accept-language': this.lang,
          ...(body ? { 'content-type': type } : {}),
          ...(this.csrf ? { 'x-csrf-token': this.csrf } : {}),
        },
        body: body ? (blob ? body : JSON.stringify(body)) : undefined,
      });
    } catch (e) {
      return { ok: false, code: 'network', message: '', status: 0 };
    }
    const v = await resp.json().catch(() => ({ ok: false, code: 'bad_answer', message: '' }));
    return { ...v, status: resp.status };
  }

  async session() {
    const v = await this.#fetch('GET', '/api/session');
    if (v.ok) this.csrf = v.csrf;
    return v;
  }

  async post(path, body) {
    if (!this.csrf) await this.session();
    const v = await this.#fetch('POST', path, body);
    if (v.csrf) this.csrf = v.csrf;
    return v;
  }

  /** PUT `blob` (a file the user picked) with its own Content-Type. */
  async put(path, blob) {
    if (!this.csrf) await this.session();
    return this.#fetch('PUT', path, blob);
  }

  /** Key login: the portal's challenge, the key's answer through `agent`, the portal's verdict. */
  async keyLogin(agent, { keyId, pin, lastTry = false, accountId = null }) {
    const c = await this.post('/api/challenge', {});
    if (!c.ok) return c;
    const token = await agent.sign({ keyId, pin, nonce: c.nonce, lastTry });
    return this.post('/api/login/key', { nonce: c.nonce, token, account_id: accountId });
  }
}

// 退出登录 in the top bar of every logged-in page.
for (const button of document.querySelectorAll('[data-logout]')) {
  button.addEventListener('click', async () => {
    await new Portal().post('/api/logout', {});
    location.assign('/');
  });
}
