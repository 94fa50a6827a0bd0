// xcomponent dashboard: vanilla ES modules, no build step (served from the embedded FS).
// This module routes, loads and renders the lists and the header, and boots the page.

import { TOKEN_KEY, api, allowToken, askToken, enc, hideBanner, showBanner } from './api.js';
import { renderAudit, setTab } from './audit.js';
import { buildFields, openCreate, submitCreate } from './create.js';
import { renderDetail, tickTimeouts } from './detail.js';
import { renderMachines } from './diagram.js';
import { S, def, hashFor, machineDef, parseHash, stateType } from './state.js';
import { connect, filterLogItem, setConn } from './stream.js';
import { $, clear, fmtDateTime, h, shortId, stringify } from './util.js';

export function navigate(to, replace = false) {
  const target = hashFor({ component: S.component, machine: S.machine, instance: S.instanceId, ...to });
  if (target === location.hash) { applyRoute(); return; }
  if (replace) { history.replaceState(null, '', target); applyRoute(); } else location.hash = target;
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
    fillStateFilter();
  }
  const d = def();
  S.machine = machineDef(r.machine) ? r.machine : (d.entryMachine || d.stateMachines?.[0]?.name || '');
  if (r.instance !== S.instanceId || compChanged) {
    S.instanceId = r.instance;
    S.instance = null;
    S.lastResult = null;
  }
  await Promise.all([loadInstances(), loadSelected()]);
  renderAll();
}

// ---------- loading ----------

export async function loadComponents() {
  const data = await api('/api/components');
  S.components = (data.components || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  const sel = clear($('#component-select'));
  for (const c of S.components) sel.append(h('option', { value: c.name }, c.name));
  renderStats();
}

export async function loadInstances() {
  if (!S.component) return;
  const base = '/api/instances?component=' + enc(S.component);
  let url = base + '&status=' + enc(S.status) + '&limit=500';
  if (S.q) url += '&q=' + enc(S.q);
  if (S.stateFilter) url += '&state=' + enc(S.stateFilter);
  try {
    const [list, all] = await Promise.all([api(url), api(base + '&status=all&limit=1000')]);
    S.list = list.instances || [];
    S.all = all.instances || [];
    hideBanner();
  } catch (e) { showBanner('Loading instances: ' + e.message); }
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

export function renderStats() {
  $('#stat-components').textContent = String(S.components.length);
  $('#stat-machines').textContent = String(S.components.reduce((n, c) => n + (c.stateMachines?.length || 0), 0));
  $('#stat-active').textContent = String(S.active.size);
  const n = (st) => S.runtimes.filter((r) => r.status === st).length;
  const parts = [`${n('up')} up`];
  if (n('lost')) parts.push(`${n('lost')} lost`);
  if (n('stopped')) parts.push(`${n('stopped')} stopped`);
  const el = $('#stat-runtimes');
  el.textContent = parts.join(' · ');
  el.classList.toggle('warn', n('lost') > 0);
  renderRuntimes();
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

export function stateBadge(machine, state, extra = '') {
  const t = stateType(machine, state);
  const cls = t === 'final' ? 'final' : t === 'error' ? 'error' : t === 'entry' ? 'entry' : '';
  return h('span', { class: `badge ${cls} ${extra}`.trim() }, state || '—');
}

export function renderList() {
  const box = clear($('#instance-list'));
  if (!S.list.length) {
    box.append(h('p', { class: 'empty' }, S.status === 'active' ? 'No active instances.' : 'No instances match.'));
    return;
  }
  const groups = new Map();
  for (const i of S.list) {
    if (!groups.has(i.machineName)) groups.set(i.machineName, []);
    groups.get(i.machineName).push(i);
  }
  const entry = def()?.entryMachine;
  for (const [m, items] of groups) {
    box.append(h('div', { class: 'group-head' }, m, ` (${items.length})`, m === entry ? h('span', { class: 'badge entry' }, 'entry point') : null));
    for (const i of items) {
      const sub = summary(i.context);
      box.append(h('button', {
        type: 'button', class: 'inst' + (i.id === S.instanceId ? ' sel' : ''), dataset: { id: i.id },
        title: i.id, onclick: () => navigate({ machine: i.machineName, instance: i.id }),
      },
      h('span', { class: 'inst-main' }, h('div', { class: 'inst-id' }, '…' + shortId(i.id)), h('div', { class: 'inst-sub' }, sub || fmtDateTime(i.updatedAt))),
      stateBadge(i.machineName, i.currentState)));
    }
  }
}

export function summary(ctx) {
  if (!ctx || typeof ctx !== 'object') return '';
  return Object.entries(ctx).slice(0, 3).map(([k, v]) => `${k}: ${typeof v === 'object' ? stringify(v) : v}`).join(' · ');
}

// ---------- boot ----------

export async function boot() {
  if (window.mermaid) {
    window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: 'default', flowchart: { htmlLabels: false }, state: { useMaxWidth: true } });
  }
  $('#component-select').addEventListener('change', (e) => { location.hash = hashFor({ component: e.target.value }); });
  $('#new-instance-btn').addEventListener('click', openCreate);
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
  for (const b of document.querySelectorAll('.seg button')) {
    b.addEventListener('click', () => {
      S.status = b.dataset.status;
      for (const x of document.querySelectorAll('.seg button')) x.classList.toggle('on', x === b);
      loadInstances().then(renderList);
    });
  }
  let qTimer;
  $('#filter-q').addEventListener('input', (e) => { clearTimeout(qTimer); qTimer = setTimeout(() => { S.q = e.target.value.trim(); loadInstances().then(renderList); }, 250); });
  $('#filter-state').addEventListener('change', (e) => { S.stateFilter = e.target.value; loadInstances().then(renderList); });
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
  // distributed dashboard: the runtimes panel matters, show it open
  api('/health').then((hl) => { if (hl?.mode === 'distributed') $('.runtimes-panel details').open = true; }).catch(() => {});
  S.component = '';
  await applyRoute();
}
