// DOM and formatting helpers. Every piece of data goes into the page through textContent /
// createElement (never parsed as HTML).

export const $ = (sel) => document.querySelector(sel);

// ---------- DOM helpers ----------

// h builds an element: attrs are properties/attributes (on* are listeners), children are
// nodes or strings (strings become text nodes).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { el.replaceChildren(); return el; }

export const shortId = (id) => (id ? String(id).slice(-8) : '');
export const fmtTime = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '');
export const fmtDateTime = (ms) => (ms ? new Date(ms).toLocaleString() : '');

export function fmtDuration(ms) {
  if (ms <= 0) return 'due';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m ${ss}s`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

// Data deeper than MAX_DEPTH (a runtime or an older server may not have refused it) is cut
// with "…" for display, rather than throwing a RangeError out of JSON.stringify.
export const MAX_DEPTH = 64;
export function clip(v, d = 0) {
  if (v === null || typeof v !== 'object') return v;
  if (d >= MAX_DEPTH) return '…';
  if (Array.isArray(v)) return v.map((x) => clip(x, d + 1));
  const o = {};
  for (const [k, x] of Object.entries(v)) o[k] = clip(x, d + 1);
  return o;
}
export function stringify(v, indent) {
  try { return JSON.stringify(v, null, indent); } catch { return JSON.stringify(clip(v), null, indent); }
}
export function json(v) { return stringify(v ?? null, 2); }

export function download(name, type, text) {
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
