// ukey.js: use USB-Keys from a web page through the local agent (`ukey agent`, the
// certificate application environment), as XTXSAB.js does for BJCA's client or web-eid.js
// for Web eID. An ES module without dependencies; every call returns a promise and every
// failure is a UkeyError with a stable `code` (see ErrorCode), never a bare network error.
// The agent serves it at /ukey.js and the ukey portal at /static/ukey.js (the same file).
//
//   import { Agent, ErrorCode } from 'http://127.0.0.1:7781/ukey.js';
//   const agent = new Agent('http://127.0.0.1:7781', { lang: 'zh-CN' });
//   const keys = await agent.keys();            // [{id, label, holder, subject, ...}]
//   const stop = agent.onKeyChange(list => ...); // on insert and removal; stop() ends it
//   const token = await agent.sign({ keyId, pin, nonce, lastTry }); // the key's answer
//   const req = await agent.enrollKeypair({ keyId, pin, replace });   // {csr, attestation, ...}
//   await agent.installCertificate({ keyId, pin, certificate });       // the issued certificate

/** The agent API this library speaks; an agent answering another is VERSION_MISMATCH. */
export const API_VERSION = 1;

/** Stable error codes. */
export const ErrorCode = Object.freeze({
  /** The agent does not answer: not installed or not running. */
  AGENT_UNAVAILABLE: 'agent_unavailable',
  /** The agent answers, but not as this library expects (another program on the port). */
  VERSION_MISMATCH: 'version_mismatch',
  /** Wrong PIN; `details.attemptsLeft` says how many tries the key has left. */
  WRONG_PIN: 'wrong_pin',
  /** The PIN is blocked: unblock it with the PUK. */
  PIN_LOCKED: 'pin_locked',
  /** One try is left: ask the user, then call again with `lastTry: true`. */
  LAST_TRY: 'last_try',
  /** The key is no longer there. */
  KEY_REMOVED: 'key_removed',
  /** The key already holds a certificate: ask the user, then call again with `replace: true`. */
  SLOT_IN_USE: 'slot_in_use',
  /** The certificate is not for the key pair on this key (another key was inserted). */
  KEY_MISMATCH: 'key_mismatch',
  /** The agent does not serve pages of this origin (`ukey agent --allow-origin`). */
  ORIGIN_NOT_ALLOWED: 'origin_not_allowed',
  /** The page is not a secure context (https, or http on localhost): browsers block it. */
  INSECURE_CONTEXT: 'insecure_context',
  /** Anything else the agent refused; `message` says what. */
  REFUSED: 'refused',
});

export class UkeyError extends Error {
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = 'UkeyError';
    this.code = code;
    this.details = details;
  }
}

/** The holder's name (CN) of a subject such as `CN=张三,O=示例科技有限公司`. */
export function holderOf(subject) {
  if (!subject) return null;
  const cn = subject.split(',').map(s => s.trim()).find(s => s.startsWith('CN='));
  return cn ? cn.slice(3) : null;
}

const AGENT_CODES = {
  wrong_pin: ErrorCode.WRONG_PIN,
  pin_locked: ErrorCode.PIN_LOCKED,
  last_try: ErrorCode.LAST_TRY,
  no_key: ErrorCode.KEY_REMOVED,
  bad_origin: ErrorCode.ORIGIN_NOT_ALLOWED,
  slot_in_use: ErrorCode.SLOT_IN_USE,
  key_mismatch: ErrorCode.KEY_MISMATCH,
};

export class Agent {
  /**
   * @param {string} url the agent's address, e.g. http://127.0.0.1:7781
   * @param {{lang?: string}} options `lang`: the language of the agent's messages
   */
  constructor(url, { lang } = {}) {
    this.url = url.replace(/\/$/, '');
    this.lang = lang || document.documentElement.lang || 'zh-CN';
  }

  async #call(method, path, body) {
    if (!globalThis.isSecureContext) {
      throw new UkeyError(ErrorCode.INSECURE_CONTEXT, 'this page is not a secure context');
    }
    let resp;
    try {
      resp = await fetch(this.url + path, {
        method,
        headers: body ? { 'content-type': 'application/json', 'accept-language': this.lang } : { 'accept-language': this.lang },
        body: body ? JSON.stringify(body) : undefined,
        cache: 'no-store',
      });
    } catch (e) {
      throw new UkeyError(ErrorCode.AGENT_UNAVAILABLE, 'the agent does not answer', { cause: String(e) });
    }
    let v;
    try {
      v = await resp.json();
    } catch {
      throw new UkeyError(ErrorCode.VERSION_MISMATCH, 'the agent answered something else than JSON');
    }
    if (typeof v !== 'object' || v === null || typeof v.ok !== 'boolean') {
      throw new UkeyError(ErrorCode.VERSION_MISMATCH, 'the agent answered in an unknown form');
    }
    if (!v.ok) {
      const code = AGENT_CODES[v.code] || ErrorCode.REFUSED;
      throw new UkeyError(code, v.message, { agentCode: v.code, attemptsLeft: v.attempts_left });
    }
    return v;
  }

  /** Whether the agent runs and serves this page: `{running, version, keys}`. */
  async status() {
    try {
      const v = await this.#list();
      return { running: true, version: v.version, keys: v.keys.length };
    } catch (e) {
      if (e.code === ErrorCode.AGENT_UNAVAILABLE) return { running: false, version: null, keys: 0 };
      throw e;
    }
  }

  async #list() {
    const v = await this.#call('GET', '/keys');
    if (v.api !== API_VERSION || !Array.isArray(v.keys)) {
      throw new UkeyError(ErrorCode.VERSION_MISMATCH, `the agent speaks API ${v.api}, this library ${API_VERSION}`, { agentVersion: v.version });
    }
    return v;
  }

  /** The keys present now, each with `holder` (the name on its login certificate). */
  async keys() {
    const v = await this.#list();
    return v.keys.map(k => ({ ...k, holder: holderOf(k.subject) }));
  }

  /**
   * Call `callback(keys)` with the key list now and whenever a key is inserted or removed;
   * `callback(null, error)` while the agent cannot be reached (it keeps trying). Returns a
   * function that stops it.
   */
  onKeyChange(callback) {
    let stopped = false;
    let socket = null;
    let retry = null;
    let again = null;
    let tries = 0;
    // While the agent is away, ask again less often (1 s, then 2 s, then every 3 s).
    let delay = 1000;
    const later = () => {
      retry = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 3000);
    };
    // Answers can come back out of order (a slow listing right after a removal, a quick one
    // after the insertion that followed): only the newest request's answer is shown.
    let asked = 0;
    const refresh = async () => {
      clearTimeout(again);
      const mine = ++asked;
      try {
        const keys = await this.keys();
        if (mine !== asked) return;
        callback(keys, null);
        // A key just inserted may not answer yet (a card powering up, a reader busy): look
        // again shortly, a few times, instead of waiting for the next event.
        if (keys.some(k => k.error) && tries < 10 && !stopped) {
          tries += 1;
          again = setTimeout(refresh, 300);
        } else {
          tries = 0;
        }
      } catch (e) {
        if (mine === asked) callback(null, e);
      }
    };
    const connect = () => {
      if (stopped) return;
      try {
        socket = new WebSocket(this.url.replace(/^http/, 'ws') + '/events');
      } catch (e) {
        callback(null, new UkeyError(ErrorCode.AGENT_UNAVAILABLE, String(e)));
        later();
        return;
      }
      socket.onopen = () => {
        delay = 1000;
        refresh();
      };
      socket.onmessage = refresh;
      socket.onclose = () => {
        if (stopped) return;
        callback(null, new UkeyError(ErrorCode.AGENT_UNAVAILABLE, 'the agent does not answer'));
        later();
      };
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(retry);
      clearTimeout(again);
      if (socket) socket.close();
    };
  }

  /**
   * The key's answer to a portal's challenge: verifies `pin` on the key, signs, returns the
   * token for the portal. `lastTry: true` only after the user confirmed spending the PIN's
   * last try (LAST_TRY).
   */
  async sign({ keyId, pin, nonce, lastTry = false }) {
    const v = await this.#call('POST', '/sign', { key_id: keyId, pin, nonce, last_try: lastTry });
    return v.token;
  }

  /**
   * A certificate application's key pair, generated ON the key (slot 9A) after `pin` is
   * verified: `{csr, attestation, attestationF9}` (DER, base64; the last two null when the key
   * cannot attest), what the portal's `/api/applications/{id}/submit` takes. SLOT_IN_USE when
   * the key already holds a certificate: call again with `replace: true` once the user agreed.
   */
  async enrollKeypair({ keyId, pin, lastTry = false, replace = false, subject }) {
    const v = await this.#call('POST', '/enroll/keypair', { key_id: keyId, pin, last_try: lastTry, replace, subject });
    return { csr: v.csr, attestation: v.attestation, attestationF9: v.attestation_f9 };
  }

  /**
   * Write an issued certificate (DER, base64) to the key that holds its private key
   * (KEY_MISMATCH on any other key). Resolves to the agent's message.
   */
  async installCertificate({ keyId, pin, certificate, lastTry = false }) {
    const v = await this.#call('POST', '/enroll/install', { key_id: keyId, pin, certificate, last_try: lastTry });
    return v.message;
  }
}
