// REST calls with the bearer token; the token prompt and the banner.

import { start } from './main.js';
import { $ } from './util.js';

export const TOKEN_KEY = 'xcomponent.token';

// ---------- API ----------

export class ApiError extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body; }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token()) headers.Authorization = 'Bearer ' + token();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network error: ' + e.message);
  }
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  if (res.status === 401) askToken(data?.error);
  if (!res.ok) throw new ApiError(res.status, data?.error || res.statusText, data);
  return data;
}

// apiBlob fetches a file the server streams (an export) with the token, as a Blob.
export async function apiBlob(path) {
  const headers = {};
  if (token()) headers.Authorization = 'Bearer ' + token();
  let res;
  try { res = await fetch(path, { headers }); } catch (e) { throw new ApiError(0, 'network error: ' + e.message); }
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    if (res.status === 401) askToken(data?.error);
    throw new ApiError(res.status, data?.error || res.statusText, data);
  }
  return res.blob();
}

export const enc = encodeURIComponent;

// ---------- token ----------

let tokenAsked = false;
// allowToken lets the next askToken open the prompt again.
export function allowToken() { tokenAsked = false; }
export function askToken(msg) {
  if (tokenAsked || $('#token-dialog').open) return;
  tokenAsked = true;
  showBanner('Authentication required' + (msg ? ': ' + msg : '') + '.');
  $('#token-input').value = token();
  $('#token-dialog').showModal();
}

export function showBanner(text) { const b = $('#banner'); b.textContent = text; b.hidden = false; }
export function hideBanner() { $('#banner').hidden = true; }
