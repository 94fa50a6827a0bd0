// xcomponent dashboard: vanilla ES modules, no build step (served from the embedded FS).
// This module routes, loads and renders the lists and the header, and boots the page.

import { TOKEN_KEY, api, allowToken, askToken, enc, hideBanner, showBanner } from './api.js';
import { renderAudit, setTab } from './audit.js';
import { buildFields, openCreate, submitCreate } from './create.js';
import { renderDetail, tickTimeouts } from './detail.js';
import { initHistory } from './history.js';
import { renderConnections } from './connections.js';
import { renderMachines } from './diagram.js';
import { S, STATUSES, countOf, def, hashFor, machineDef, parseHash, stateType } from './state.js';
import { connect, filterLogItem, setConn } from './stream.js';
import { $, clear, fmtDateTime, fmtNum, h, icon, shortId, stringify } from './util.js';

export const PAGE = 100;

export function navigate(to, replace = false) {
  const target = hashFor({ component: S.component, machine: S.machine, instance: S.instanceId, ...to });
  if (target === location.hash) { applyRoute(); return; }
  if (replace) { history.replaceState(null, '', target); applyRoute(); } else location.hash = target;
}

// openInstance shows an instance whatever its component: the page asks the API where it lives.
export async function openInstance(id) {
  try {
    const i = await api('/api/instances/' + enc(id));
    location.hash = hashFor({ component: i.componentName || S.component, machine: i.machineName, instance: id });
  } catch (e) {
    showBanner('Cannot open instance ' + id + ': ' + e.message);
  }
}

export let routing = Promise.resolve();
export function applyRoute() { routing = routing.then(doRoute, doRoute); return routing; }

export async function doRoute() {
  const r = parseHash();
  if (!S.components.length) return;
  let comp = r.component;
  if (!S.components.some((c) => c.name === comp)) {
    comp = S.components[0].name;
    history.replaceState(null, '', hashFor({ component: comp }));
    return doRoute();
  }
  const compChanged = comp !== S.component;
  if (compChanged) {
    S.component = comp;
    S.diagrams.clear();
    $('#component-select').value = comp;
    if (!S.defs.has(comp)) {
      try { S.defs.set(comp, await api('/api/components/' + enc(comp))); } catch (e) { showBanner(e.message); return; }
    }
  }
  const filtersChanged = r.status !== S.status || r.state !== S.stateFilter || r.q !== S.q;
  S.status = r.status;
  S.stateFilter = r.state;
  S.q = r.q;
  if (compChanged) fillStateFilter();
  syncFilterControls();
  if (compChanged || filtersChanged) S.pageSize = PAGE;
  const d = def();
  S.machine = machineDef(r.machine) ? r.machine : (d.entryMachine || d.stateMachines?.[0]?.name || '');
  if (r.instance !== S.instanceId || compChanged) {
    S.instanceId = r.instance;
    S.instance = null;
    S.lastResult = null;
  }
  await Promise.all([loadInstances(), loadSelected(), compChanged || !S.counts.size ? loadCounts() : null]);
  renderAll();
}

// setFilters changes the list filters through the URL (they survive a reload).
export function setFilters(f) {
  navigate({ status: S.status, state: S.stateFilter, q: S.q, ...f }, true);
}

// ---------- loading ----------

export async function loadComponents() {
  const data = await api('/api/components');
  S.components = (data.components || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  const sel = clear($('#component-select'));
  for (const c of S.components) sel.append(h('option', { value: c.name }, c.name));
  renderStats();
}

// parseSearch splits the search box into business keys (key:value, sent as where) and text.
export function parseSearch(s) {
  const where = [], text = [];
  for (const tok of (s || '').split(/\s+/).filter(Boolean)) {
    if (/^[^:\s]+:.+/.test(tok)) where.push(tok); else text.push(tok);
  }
  return { where, q: text.join(' ') };
}

function listURL(limit, cursor) {
  let url = '/api/instances?component=' + enc(S.component) + '&status=' + enc(S.status) + '&limit=' + limit;
  const { q, where } = parseSearch(S.q);
  if (q) url += '&q=' + enc(q);
  for (const w of where) url += '&where=' + enc(w);
  if (S.stateFilter) url += '&state=' + enc(S.stateFilter);
  if (cursor) url += '&cursor=' + enc(cursor);
  return url;
}

// loadInstances loads the first S.pageSize instances of the filtered list (newest first).
export async function loadInstances() {
  if (!S.component) return;
  const comp = S.component;
  try {
    const page = await api(listURL(Math.min(1000, S.pageSize)));
    if (comp !== S.component) return;
    S.list = page.instances || [];
    S.nextCursor = page.nextCursor || '';
    hideBanner();
  } catch (e) { showBanner('Loading instances: ' + e.message); }
}

// loadMore appends the next page.
export async function loadMore() {
  if (!S.nextCursor) return;
  const btn = $('#list-more-btn');
  if (btn) btn.disabled = true;
  try {
    const page = await api(listURL(PAGE, S.nextCursor));
    const seen = new Set(S.list.map((i) => i.id));
    S.list.push(...(page.instances || []).filter((i) => !seen.has(i.id)));
    S.nextCursor = page.nextCursor || '';
    S.pageSize = S.list.length;
  } catch (e) { showBanner('Loading instances: ' + e.message); }
  renderList();
  $('#list-more-btn')?.focus();
}

// loadCounts reads the exact counts of every component (GET /api/counts).
export async function loadCounts() {
  try {
    const data = await api('/api/counts');
    S.countsExact = data.exact !== false;
    S.totals = new Map(Object.entries(data.components || {}));
    S.counts = new Map();
    for (const c of data.counts || []) {
      if (c.componentName !== S.component) continue;
      const k = c.machineName + '|' + c.state;
      const v = S.counts.get(k) || { active: 0, completed: 0, error: 0 };
      v[c.status] = (v[c.status] || 0) + c.count;
      S.counts.set(k, v);
    }
  } catch { /* the banner of the other loads tells */ }
}

export async function loadSession() {
  try { S.session = await api('/api/session'); } catch { /* older server: assume operator */ }
  renderSession();
}

export async function loadSelected() {
  if (!S.instanceId) { S.instance = null; return; }
  try {
    S.instance = await api('/api/instances/' + enc(S.instanceId));
    if (S.instance.machineName && S.instance.machineName !== S.machine && machineDef(S.instance.machineName)) {
      S.machine = S.instance.machineName;
      history.replaceState(null, '', hashFor({ component: S.component, machine: S.machine, instance: S.instanceId }));
    }
  } catch (e) {
    S.instance = null;
    S.lastResult = { instanceId: S.instanceId, ok: false, text: 'Cannot load instance ' + S.instanceId + ': ' + e.message };
  }
}

export async function loadRuntimes() {
  try { S.runtimes = (await api('/api/runtimes')).runtimes || []; } catch { S.runtimes = []; }
  renderStats();
}

// ---------- rendering ----------

export function renderAll() {
  renderStats();
  renderList();
  renderMachines();
  renderDetail();
  if (S.tab === 'audit') renderAudit();
}

function globalTotal(status) {
  let n = 0;
  for (const t of S.totals.values()) n += t[status] || 0;
  return n;
}

export function renderStats() {
  $('#stat-components').textContent = fmtNum(S.components.length);
  $('#stat-machines').textContent = fmtNum(S.components.reduce((n, c) => n + (c.stateMachines?.length || 0), 0));
  $('#stat-active').textContent = S.totals.size ? fmtNum(globalTotal('active')) : '–';
  const errs = globalTotal('error');
  const errEl = $('#stat-errors');
  errEl.textContent = S.totals.size ? fmtNum(errs) : '–';
  errEl.closest('.stat').classList.toggle('bad', errs > 0);
  const n = (st) => S.runtimes.filter((r) => r.status === st).length;
  const parts = [`${n('up')} up`];
  if (n('lost')) parts.push(`${n('lost')} lost`);
  if (n('stopped')) parts.push(`${n('stopped')} stopped`);
  const el = $('#stat-runtimes');
  el.textContent = parts.join(' · ');
  el.classList.toggle('warn', n('lost') > 0);
  renderStatusCounts();
  renderRuntimes();
}

// renderStatusCounts writes the count of each status on its filter button.
function renderStatusCounts() {
  const t = S.totals.get(S.component);
  for (const b of document.querySelectorAll('#status-filter button')) {
    const n = b.querySelector('.n');
    if (n) n.textContent = t ? fmtNum(b.dataset.status === 'all' ? t.all : t[b.dataset.status] || 0) : '';
  }
}

export function renderSession() {
  const s = S.session;
  const el = $('#session');
  el.textContent = '';
  el.append(icon(s.role === 'operator' ? 'key' : 'eye'), ' ', s.role);
  if (s.auth) el.append(h('span', { class: 'muted' }, ' · ' + s.actor));
  el.title = s.canWrite ? 'Your role may create instances and send events' : 'Your role may read only: write controls are disabled';
  el.className = 'role role-' + s.role;
  const btn = $('#new-instance-btn');
  btn.disabled = !s.canWrite;
  btn.title = s.canWrite ? '' : `Role ${s.role}: read only`;
}

// fmtAgo says how long ago ms was, coarsely ("4 s ago", "3 min ago").
export function fmtAgo(ms) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return fmtDateTime(ms);
}

export const RUNTIME_STATUS = { up: 'Up', lost: 'Lost', stopped: 'Stopped' };

// renderRuntimes draws the runtimes panel: one group per component (with how many of its
// runtimes are up), one row per runtime with its status, host and last heartbeat.
export function renderRuntimes() {
  const body = $('#runtimes tbody');
  if (!body) return;
  clear(body);
  const summary = $('#runtimes-summary');
  if (summary) {
    const up = S.runtimes.filter((r) => r.status === 'up').length;
    summary.textContent = S.runtimes.length ? `${up} of ${S.runtimes.length} up` : '';
  }
  const byComp = new Map();
  for (const r of S.runtimes) {
    const k = r.componentName || '';
    if (!byComp.has(k)) byComp.set(k, []);
    byComp.get(k).push(r);
  }
  for (const [comp, rts] of [...byComp].sort((a, b) => a[0].localeCompare(b[0]))) {
    const up = rts.filter((r) => r.status === 'up').length;
    body.append(h('tr', { class: 'rt-group', dataset: { component: comp } },
      h('td', { colspan: '6' }, h('b', {}, comp || '(unknown component)'), ' ',
        h('span', { class: 'badge ' + (up === rts.length ? 'completed' : up ? 'warn' : 'error') }, `${up}/${rts.length} up`))));
    for (const r of rts) {
      const st = r.status || 'unknown';
      body.append(h('tr', { class: 'rt rt-' + st, dataset: { runtime: r.runtimeName || r.runtimeId, status: st } },
        h('td', {}, h('span', { class: 'rt-name' }, r.runtimeName || shortId(r.runtimeId)), h('div', { class: 'mono muted rt-id', title: r.runtimeId }, shortId(r.runtimeId))),
        h('td', {}, r.componentName || ''),
        h('td', { class: 'mono' }, [r.host, r.port].filter(Boolean).join(':') || '—'),
        h('td', { title: fmtDateTime(r.lastSeen) }, fmtAgo(r.lastSeen)),
        h('td', {}, String(r.instances ?? '')),
        h('td', {}, h('span', { class: 'rt-status rt-' + st }, h('span', { class: 'dot' }), RUNTIME_STATUS[st] || st))));
    }
  }
  if (!S.runtimes.length) body.append(h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'No runtime reported.')));
}

export function fillStateFilter() {
  const sel = clear($('#filter-state'));
  sel.append(h('option', { value: '' }, 'All states'));
  const seen = new Set();
  for (const m of def()?.stateMachines || []) {
    for (const s of m.states || []) {
      if (seen.has(s.name)) continue;
      seen.add(s.name);
      sel.append(h('option', { value: s.name }, s.name));
    }
  }
  if (!seen.has(S.stateFilter)) S.stateFilter = '';
  sel.value = S.stateFilter;
}

function syncFilterControls() {
  for (const b of document.querySelectorAll('#status-filter button')) {
    const on = b.dataset.status === S.status;
    b.classList.toggle('on', on);
    b.setAttribute('aria-pressed', String(on));
  }
  $('#filter-state').value = S.stateFilter;
  if (document.activeElement !== $('#filter-q')) $('#filter-q').value = S.q;
}

export function stateBadge(machine, state, extra = '') {
  const t = stateType(machine, state);
  const cls = t === 'final' ? 'final' : t === 'error' ? 'error' : t === 'entry' ? 'entry' : '';
  return h('span', { class: `badge ${cls} ${extra}`.trim() }, state || '—');
}

// listTotal is how many instances the list filters select, from the exact counts (null when a
// text or key search makes it unknown).
function listTotal(machine) {
  if (S.q) return null;
  return countOf(machine, S.stateFilter, S.status);
}

export function renderList() {
  const box = $('#instance-list');
  const focusedId = box.contains(document.activeElement) ? document.activeElement.dataset.id : '';
  clear(box);
  const total = listTotal('');
  const foot = $('#list-foot');
  clear(foot);
  if (!S.list.length) {
    box.append(h('p', { class: 'empty' }, S.q ? 'No instances match.' : S.status === 'active' ? 'No active instances.' : S.status === 'error' ? 'No instances in error.' : 'No instances match.'));
    return;
  }
  const groups = new Map();
  for (const i of S.list) {
    if (!groups.has(i.machineName)) groups.set(i.machineName, []);
    groups.get(i.machineName).push(i);
  }
  const entry = def()?.entryMachine;
  for (const [m, items] of groups) {
    const mt = listTotal(m);
    box.append(h('div', { class: 'group-head' }, h('span', { class: 'group-name' }, m),
      h('span', { class: 'muted group-count' }, mt !== null && mt !== items.length ? ` ${fmtNum(items.length)} of ${fmtNum(mt)}` : ` ${fmtNum(items.length)}`),
      m === entry ? h('span', { class: 'badge entry' }, 'entry point') : null));
    const ul = h('ul', { class: 'inst-group', 'aria-label': m + ' instances' });
    for (const i of items) {
      const sub = summary(i.context);
      ul.append(h('li', { class: 'inst-row' }, S.session.canWrite ? h('input', {
        type: 'checkbox', class: 'pick', checked: S.picked.has(i.id), 'aria-label': 'Pick ' + i.machineName + ' …' + shortId(i.id) + ' for a bulk action',
        onchange: (e) => { if (e.target.checked) S.picked.set(i.id, i); else S.picked.delete(i.id); renderBulk(); },
      }) : null, h('button', {
        type: 'button', class: 'inst' + (i.id === S.instanceId ? ' sel' : ''), dataset: { id: i.id },
        'aria-current': i.id === S.instanceId ? 'true' : null,
        title: i.id, onclick: () => navigate({ machine: i.machineName, instance: i.id }),
      },
      h('span', { class: 'inst-main' }, h('span', { class: 'inst-id' }, '…' + shortId(i.id)), h('span', { class: 'inst-sub' }, sub || fmtDateTime(i.updatedAt))),
      stateBadge(i.machineName, i.currentState))));
    }
    box.append(ul);
  }
  foot.append(h('span', { id: 'list-count', class: 'muted' },
    total !== null ? `${fmtNum(S.list.length)} of ${fmtNum(total)}` : `${fmtNum(S.list.length)} shown` + (S.nextCursor ? ', more match' : '')));
  if (S.nextCursor) foot.append(h('button', { type: 'button', class: 'btn small', id: 'list-more-btn', onclick: loadMore }, 'Load more'));
  if (focusedId) box.querySelector(`.inst[data-id="${CSS.escape(focusedId)}"]`)?.focus();
  renderBulk();
}

// ---------- bulk: one event to the picked instances (POST /api/events) ----------

export function renderBulk() {
  const bar = $('#bulk');
  for (const id of S.picked.keys()) if (S.picked.get(id).componentName && S.picked.get(id).componentName !== S.component) S.picked.delete(id);
  if ((!S.picked.size && $('#bulk-result').hidden) || !S.session.canWrite) { bar.hidden = true; return; }
  bar.hidden = false;
  const events = new Set();
  for (const i of S.picked.values()) {
    for (const t of machineDef(i.machineName)?.transitions || []) if (t.from === i.currentState && t.type !== 'timeout' && t.type !== 'auto') events.add(t.event);
  }
  const sel = $('#bulk-event');
  const keep = sel.value;
  clear(sel);
  for (const e of [...events].sort()) sel.append(h('option', { value: e }, e));
  if (events.has(keep)) sel.value = keep;
  $('#bulk-count').textContent = `${fmtNum(S.picked.size)} picked`;
  $('#bulk-send').disabled = !events.size || !S.picked.size;
}

async function sendBulk() {
  const event = $('#bulk-event').value;
  const ids = [...S.picked.keys()];
  if (!event || !ids.length) return;
  const out = $('#bulk-result');
  $('#bulk-send').disabled = true;
  try {
    const r = await api('/api/events', { method: 'POST', body: { component: S.component, instanceIds: ids, event } });
    const refused = (r.results || []).filter((x) => !x.ok);
    out.textContent = `${event}: applied to ${fmtNum(r.processed)} of ${fmtNum(r.matched)}` + (refused.length ? `; refused: ${refused.slice(0, 3).map((x) => '…' + shortId(x.instanceId) + ' (' + x.error + ')').join(', ')}${refused.length > 3 ? ' …' : ''}` : '');
    out.className = 'result ' + (refused.length ? 'bad' : 'ok');
    S.picked.clear();
  } catch (e) {
    out.textContent = `${event} not sent (${e.status}): ${e.message}`;
    out.className = 'result bad';
  }
  out.hidden = false;
  await Promise.all([loadInstances(), loadCounts(), loadSelected()]);
  renderAll();
}

export function summary(ctx) {
  if (!ctx || typeof ctx !== 'object') return '';
  return Object.entries(ctx).slice(0, 3).map(([k, v]) => `${k}: ${typeof v === 'object' ? stringify(v) : v}`).join(' · ');
}

// ---------- keyboard: arrow keys move within tab lists and button groups ----------

function arrowKeys(group, itemSel, activate) {
  group.addEventListener('keydown', (e) => {
    if (!['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(e.key)) return;
    const items = [...group.querySelectorAll(itemSel)];
    let i = items.indexOf(document.activeElement);
    if (i < 0) return;
    i = e.key === 'Home' ? 0 : e.key === 'End' ? items.length - 1 : (i + (e.key === 'ArrowRight' ? 1 : -1) + items.length) % items.length;
    e.preventDefault();
    items[i].focus();
    if (activate) items[i].click();
  });
}

// ---------- boot ----------

export async function boot() {
  if (window.mermaid) {
    window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: 'default', flowchart: { htmlLabels: false }, state: { useMaxWidth: true, nodeSpacing: 60, rankSpacing: 130 } });
  }
  $('#component-select').addEventListener('change', (e) => { location.hash = hashFor({ component: e.target.value, status: 'active', state: '', q: '' }); });
  $('#new-instance-btn').addEventListener('click', openCreate);
  initHistory();
  $('#connections').addEventListener('toggle', () => { if ($('#connections').open) renderConnections(); });
  initTheme();
  $('#create-machine').addEventListener('change', buildFields);
  $('#create-form').addEventListener('submit', submitCreate);
  $('#create-cancel').addEventListener('click', () => $('#create-dialog').close());
  $('#token-btn').addEventListener('click', () => { allowToken(); askToken(); hideBanner(); });
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('#token-input').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
    $('#token-dialog').close();
    allowToken();
    hideBanner();
    start();
  });
  $('#token-clear').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); $('#token-input').value = ''; });
  for (const b of document.querySelectorAll('#status-filter button')) {
    b.addEventListener('click', () => setFilters({ status: b.dataset.status }));
  }
  arrowKeys($('#status-filter'), 'button', true);
  arrowKeys($('.tabs'), '.tab', true);
  $('#stat-errors-btn').addEventListener('click', () => setFilters({ status: 'error' }));
  $('#bulk-send').addEventListener('click', sendBulk);
  $('#bulk-clear').addEventListener('click', () => { S.picked.clear(); $('#bulk-result').hidden = true; renderList(); });
  $('#bulk-all').addEventListener('click', () => { for (const i of S.list) S.picked.set(i.id, i); renderList(); });
  let qTimer;
  $('#filter-q').addEventListener('input', (e) => { clearTimeout(qTimer); qTimer = setTimeout(() => setFilters({ q: e.target.value.trim() }), 300); });
  $('#filter-state').addEventListener('change', (e) => setFilters({ state: e.target.value }));
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => setTab(b.dataset.tab));
  $('#log-filter').addEventListener('input', () => { for (const li of $('#event-log').children) if (li.dataset.text) filterLogItem(li); });
  $('#log-clear').addEventListener('click', () => clear($('#event-log')));
  $('#event-log').append(h('li', { class: 'empty' }, 'Waiting for events…'));
  window.addEventListener('hashchange', applyRoute);
  setInterval(tickTimeouts, 1000);
  setInterval(loadRuntimes, 5000);
  await start();
}

export async function start() {
  try {
    await loadComponents();
  } catch (e) {
    showBanner('Cannot load components: ' + e.message);
    setConn('bad', e.status === 401 ? 'Token required' : 'Offline');
    return;
  }
  hideBanner();
  connect();
  loadRuntimes();
  loadSession();
  // distributed dashboard: the runtimes panel matters, show it open
  api('/health').then((hl) => { if (hl?.mode === 'distributed') $('.runtimes-panel details').open = true; }).catch(() => {});
  S.component = '';
  S.counts = new Map();
  await applyRoute();
}

// ---------- theme: light or dark, remembered; the system's preference by default ----------

const THEME_KEY = 'xcomponent.theme';
function initTheme() {
  const btn = $('#theme-btn');
  const apply = (dark) => {
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
    btn.setAttribute('aria-pressed', String(dark));
    btn.textContent = dark ? 'Light' : 'Dark';
    btn.title = dark ? 'Light theme' : 'Dark theme';
    S.diagrams.clear();
    if (window.mermaid) window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: dark ? 'dark' : 'default', flowchart: { htmlLabels: false }, state: { useMaxWidth: true, nodeSpacing: 60, rankSpacing: 130 } });
  };
  const saved = localStorage.getItem(THEME_KEY);
  apply(saved ? saved === 'dark' : window.matchMedia?.('(prefers-color-scheme: dark)').matches);
  btn.addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme !== 'dark';
    localStorage.setItem(THEME_KEY, dark ? 'dark' : 'light');
    apply(dark);
    renderMachines();
    if ($('#connections').open) renderConnections();
  });
}
