// The live stream (SSE at /api/stream) and the live event log.
//
// Under steady traffic the page stays live at a bounded cost: each state change is applied to
// the counts at once (the chips move with every event), the lists and the selected instance are
// reloaded at most once a second (REFRESH_MS) while events arrive — a throttle, never a
// debounce that traffic would postpone for ever — and the exact counts every COUNTS_MS during
// traffic and once it is quiet.

import { api, enc, token } from './api.js';
import { renderAudit } from './audit.js';
import { forgetRelated, renderDetail } from './detail.js';
import { renderCountsOnly, renderMachines } from './diagram.js';
import { applyRoute, loadComponents, loadCounts, loadInstances, loadRuntimes, loadSelected, openInstance, renderList, renderStats } from './main.js';
import { S, machineDef } from './state.js';
import { $, fmtTime, h, shortId } from './util.js';

let es = null;
const LOG_MAX = 300;
// REFRESH_MS bounds the reloads: at most one per REFRESH_MS while events arrive; the first
// comes FIRST_MS after a quiet period.
const REFRESH_MS = 1000;
const FIRST_MS = 150;
// COUNTS_MS bounds the reloads of the exact counts while events keep arriving (each event
// already moved them); once the stream is quiet for QUIET_MS they are reloaded, so they end exact.
const COUNTS_MS = 3000;
const QUIET_MS = 400;

export function setConn(cls, text) {
  const c = $('#conn-status');
  c.className = 'conn ' + cls;
  c.querySelector('.conn-text').textContent = text;
}

export function connect() {
  if (es) es.close();
  const url = '/api/stream' + (token() ? '?token=' + enc(token()) : '');
  es = new EventSource(url);
  setConn('wait', 'Connecting…');
  let opened = false;
  es.onopen = () => {
    setConn('ok', 'Live');
    if (opened && S.component) scheduleRefresh(S.instanceId, true); // reconnected: catch up on what was missed
    opened = true;
  };
  es.onerror = async () => {
    if (es.readyState === EventSource.CLOSED) {
      setConn('bad', 'Disconnected');
      // probe the API: a 401 opens the token prompt; then retry
      try { await api('/api/components'); } catch { /* reported */ }
      setTimeout(connect, 3000);
    } else setConn('wait', 'Reconnecting…');
  };
  es.addEventListener('components_list', (m) => {
    const d = parse(m);
    logEvent('components_list', d, `${d?.components?.length ?? 0} components`);
  });
  for (const type of ['instance_created', 'state_change', 'instance_completed', 'instance_error', 'event_ignored', 'timeout_fired', 'broadcast_completed', 'cascade_completed', 'instance_disposed', 'hook_error', 'cross_component_sent']) {
    es.addEventListener(type, (m) => onInstanceEvent(type, parse(m)));
  }
  for (const type of ['runtime_connected', 'runtime_disconnected']) {
    es.addEventListener(type, (m) => { const d = parse(m); logEvent(type, d, `${d?.runtimeName || d?.runtimeId || ''} ${d?.status || ''}`); loadRuntimes(); });
  }
  // distributed: a runtime announced a component this page may not know yet
  es.addEventListener('component_announced', (m) => {
    const d = parse(m);
    if (d?.componentName && !S.components.some((c) => c.name === d.componentName)) {
      loadComponents().then(() => { if (!S.component) applyRoute(); }).catch(() => {});
    }
  });
  es.onmessage = (m) => logEvent('message', parse(m), '');
}

function parse(m) { try { return JSON.parse(m.data); } catch { return null; } }

// applyCount moves the live counts with one event (exact counts come back with the next
// refresh; until then the chips follow every state change).
function applyCount(type, d) {
  const comp = d.componentName;
  const bump = (machine, state, status, n) => {
    if (comp === S.component && machine && state) {
      const k = machine + '|' + state;
      const v = S.counts.get(k) || { active: 0, completed: 0, error: 0 };
      v[status] = Math.max(0, (v[status] || 0) + n);
      S.counts.set(k, v);
    }
  };
  const total = (status, n) => {
    const t = S.totals.get(comp);
    if (t) { t[status] = Math.max(0, (t[status] || 0) + n); if (type === 'instance_created') t.all += n; }
  };
  switch (type) {
    case 'instance_created':
      bump(d.machineName, d.currentState, 'active', 1); total('active', 1); return true;
    case 'state_change':
      if (d.previousState === d.newState) return false;
      bump(d.machineName, d.previousState, 'active', -1); bump(d.machineName, d.newState, 'active', 1); return true;
    case 'instance_completed': {
      const st = d.status === 'error' || d.status === 'terminated' ? d.status : 'completed';
      bump(d.machineName, d.finalState, 'active', -1); bump(d.machineName, d.finalState, st, 1);
      total('active', -1); total(st, 1); return true;
    }
  }
  return false;
}

let countsFrame = 0;
function renderCountsSoon() {
  if (countsFrame) return;
  countsFrame = requestAnimationFrame(() => { countsFrame = 0; renderCountsOnly(); renderStats(); });
}

function onInstanceEvent(type, d) {
  if (!d) return;
  const id = d.instanceId || d.instance?.id;
  if (applyCount(type, d)) renderCountsSoon();
  const evName = typeof d.event === 'string' ? d.event : d.event?.type || '';
  let what = '', target = id, label = type;
  if (type === 'timeout_fired') {
    const auto = (machineDefOf(d.componentName, d.machineName)?.transitions || []).some((t) => t.from === d.fromState && t.event === evName && t.type === 'auto');
    if (auto) label = 'auto_fired';
    what = `${evName} ${auto ? 'ran' : 'fired'}` + (d.fromState ? `: ${d.fromState} → ${d.toState}` : '');
  } else if (type === 'state_change') what = `${d.previousState} → ${d.newState}` + (d.event?.type ? ` (${d.event.type})` : '');
  else if (type === 'instance_created') what = 'created in ' + (d.currentState || d.newState || '');
  else if (type === 'instance_completed') what = (d.status === 'error' ? 'ended in error state ' : d.status === 'terminated' ? 'terminated in ' : 'completed in ') + (d.finalState || '');
  else if (type === 'event_ignored') what = evName + ' ignored' + (d.reason ? ': ' + d.reason : '');
  else if (type === 'cascade_completed' || type === 'broadcast_completed') {
    what = `${evName} → ${[d.targetComponent, d.machineName].filter(Boolean).join(' / ')}: ${d.processed ?? 0} of ${d.matched ?? 0} instance(s)`;
  } else if (type === 'cross_component_sent') {
    what = [evName || d.kind, '→', [d.targetComponent, d.targetMachine || d.machineName].filter(Boolean).join(' / ')].join(' ');
    if (d.createdInstanceId) { what = 'created ' + [d.targetComponent, d.targetMachine].filter(Boolean).join(' / '); target = d.createdInstanceId; }
  } else if (type === 'hook_error' || type === 'instance_error') what = (d.state || evName || '') + ': ' + (d.error || '');
  else what = evName;
  // the row names the instance it opens: the source of a fan-out, the instance created …
  const fanOut = type === 'cascade_completed' || type === 'broadcast_completed' || type === 'cross_component_sent';
  logEvent(label, d, what, target, fanOut ? d.componentName : [d.componentName, d.machineName].filter(Boolean).join(' / '));
  scheduleRefresh(id, d.componentName === S.component || !d.componentName);
}

function machineDefOf(comp, machine) {
  if (comp === S.component) return machineDef(machine);
  return S.defs.get(comp)?.stateMachines?.find((m) => m.name === machine);
}

// ---------- throttled refresh ----------

const pendingIds = new Set();
let refreshTimer = 0, refreshing = false, again = false, listDirty = false, lastRefresh = 0;
let lastEvent = 0, lastCounts = 0, countsOwed = false;

export function scheduleRefresh(id, touchesList = true) {
  if (id) { pendingIds.add(id); lastEvent = Date.now(); }
  if (touchesList) listDirty = true;
  if (refreshing) { again = true; return; }
  if (refreshTimer) return; // already due: traffic never postpones it
  const wait = Math.max(FIRST_MS, REFRESH_MS - (Date.now() - lastRefresh));
  refreshTimer = setTimeout(runRefresh, wait);
}

async function runRefresh() {
  refreshTimer = 0;
  refreshing = true;
  again = false;
  lastRefresh = Date.now();
  const touchesSelected = pendingIds.has(S.instanceId);
  const list = listDirty;
  pendingIds.clear();
  listDirty = false;
  const now = Date.now();
  const counts = now - lastCounts >= COUNTS_MS || now - lastEvent >= QUIET_MS;
  countsOwed = !counts;
  if (counts) lastCounts = now;
  try {
    await Promise.all([list ? loadInstances() : null, touchesSelected ? loadSelected() : null, counts ? loadCounts() : null]);
    renderStats();
    if (list) renderList();
    renderMachines();
    if (touchesSelected) { forgetRelated(); renderDetail(); if (S.tab === 'audit') renderAudit(); }
  } finally {
    refreshing = false;
    if (again || pendingIds.size || listDirty) scheduleRefresh('', false);
    else if (countsOwed) refreshTimer = setTimeout(runRefresh, QUIET_MS); // the trailing exact counts
  }
}

// ---------- event log ----------

function logEvent(type, d, what, id, where) {
  const ol = $('#event-log');
  ol.querySelector('.empty')?.remove();
  const cls = type === 'state_change' ? 'active' : type === 'instance_completed' ? 'completed' : type === 'event_ignored' || type === 'hook_error' || type === 'instance_error' ? 'warn' : 'kind';
  const li = h('li', { dataset: { type } },
    h('span', { class: 'time' }, fmtTime(d?.timestamp || Date.now())),
    h('span', {}, h('span', { class: 'badge ' + cls }, type)),
    h('span', { class: 'muted' }, where ?? [d?.componentName, d?.machineName].filter(Boolean).join(' / ')),
    h('span', { class: 'what' }, id ? h('button', { type: 'button', class: 'link mono', title: 'Open instance ' + id, dataset: { id }, onclick: () => openInstance(id) }, '…' + shortId(id)) : null, id ? ' ' : '', what));
  li.dataset.text = [type, d?.componentName, d?.machineName, id, what].join(' ').toLowerCase();
  filterLogItem(li);
  ol.prepend(li);
  while (ol.children.length > LOG_MAX) ol.lastElementChild.remove();
}

export function filterLogItem(li) {
  const f = $('#log-filter').value.trim().toLowerCase();
  li.hidden = !!f && !li.dataset.text.includes(f);
}
