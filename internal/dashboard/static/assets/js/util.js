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
  // The link lives only for its click: left in the page, it is a link without text (axe
  // link-name) for as long as it stays. The URL outlives it a little, for the download to start.
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type })), download: name, hidden: true }, name);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

const numFmt = new Intl.NumberFormat('en-US');
// fmtNum writes a count with thousands separators (2,005).
export function fmtNum(n) { return numFmt.format(n ?? 0); }

// fmtMs writes a configured duration for people: 604800000 → "7d", 90000 → "1m 30s", 500 → "500ms".
export function fmtMs(ms) {
  ms = Number(ms) || 0;
  if (ms < 1000) return ms + 'ms';
  const units = [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]];
  const parts = [];
  let rest = ms;
  for (const [u, n] of units) {
    if (rest >= n) { parts.push(Math.floor(rest / n) + u); rest %= n; }
    if (parts.length === 2) break;
  }
  return parts.join(' ') + (rest && parts.length < 2 && rest % 1000 ? ` ${rest % 1000}ms` : '');
}

// Inline SVG icons (Debian's Chromium has no emoji font: ⏱ 🔗 📡 🔑 drew empty boxes). Each is
// a 16×16 stroke path, decorative (aria-hidden): the text next to it says what it means.
const ICONS = {
  timer: 'M8 4v4l2.5 1.5M8 1.5a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13M6 0.8h4',
  link: 'M6.5 9.5l3-3M7 4.5l1.2-1.2a2.8 2.8 0 0 1 4 4L11 8.5M9 11.5l-1.2 1.2a2.8 2.8 0 0 1-4-4L5 7.5',
  signal: 'M8 9.5v5M5.2 6.7a4 4 0 0 1 5.6 0M3 4.5a7 7 0 0 1 10 0M8 8.5h.01',
  key: 'M10.5 1.5a4 4 0 1 1-3.7 5.5L1.5 12.3V14.5h2.2v-1.5h1.5v-1.5h1.5l1.1-1.1A4 4 0 0 1 10.5 1.5M11.5 4.5h.01',
  eye: 'M1 8s2.5-5 7-5 7 5 7 5-2.5 5-7 5-7-5-7-5M8 6a2 2 0 1 0 0 4 2 2 0 0 0 0-4',
  auto: 'M9 1.5L3.5 9H8l-1 5.5L12.5 7H8l1-5.5',
  warn: 'M8 1.5l7 13H1l7-13M8 6v4M8 12.2h.01',
  gear: 'M8 5.5a2.5 2.5 0 1 0 0 5 2.5 2.5 0 0 0 0-5M8 1v2M8 13v2M1 8h2M13 8h2M3 3l1.4 1.4M11.6 11.6L13 13M3 13l1.4-1.4M11.6 4.4L13 3',
  arrow: 'M2 8h11M9 4l4 4-4 4',
  parent: 'M8 14V3M4 7l4-4 4 4',
  child: 'M8 2v11M4 9l4 4 4-4',
};
export function icon(name, label) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '14');
  svg.setAttribute('height', '14');
  svg.setAttribute('class', 'icon icon-' + name);
  if (label) { svg.setAttribute('role', 'img'); svg.setAttribute('aria-label', label); } else svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', ICONS[name] || ICONS.warn);
  svg.append(p);
  return svg;
}
