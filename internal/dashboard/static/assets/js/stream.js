// The live stream (SSE at /api/stream) and the live event log.

import { api, enc, token } from './api.js';
import { renderAudit } from './audit.js';
import { renderDetail } from './detail.js';
import { renderMachines } from './diagram.js';
import { applyRoute, loadComponents, loadInstances, loadRuntimes, loadSelected, renderList, renderStats } from './main.js';
import { S, hashFor } from './state.js';
import { $, fmtTime, h, shortId } from './util.js';

// ---------- live stream ----------

export let es = null;
export let refreshTimer = null;
export const LOG_MAX = 300;

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
    if (opened && S.component) scheduleRefresh(S.instanceId); // reconnected: catch up on what was missed
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
    if (d?.components) { S.active.clear(); }
    logEvent('components_list', d, `${d?.components?.length ?? 0} components`);
  });
  es.addEventListener('instances_update', (m) => {
    const d = parse(m);
    for (const [id, v] of S.active) if (v.component === d?.componentName) S.active.delete(id);
    for (const i of d?.instances || []) if (i.status === undefined || i.status === 'active') S.active.set(i.id, { component: d.componentName, machine: i.machineName, state: i.currentState });
    renderStats();
  });
  for (const type of ['instance_created', 'state_change', 'instance_completed', 'instance_error', 'event_ignored', 'timeout_fired', 'broadcast_completed', 'cascade_completed', 'instance_disposed']) {
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

export function parse(m) { try { return JSON.parse(m.data); } catch { return null; } }

export function onInstanceEvent(type, d) {
  if (!d) return;
  const id = d.instanceId || d.instance?.id;
  if (type === 'instance_created') S.active.set(id, { component: d.componentName, machine: d.machineName, state: d.newState || d.currentState || d.instance?.currentState });
  else if (type === 'state_change' && S.active.has(id)) S.active.get(id).state = d.newState;
  else if (type === 'instance_completed' || type === 'instance_disposed' || type === 'instance_error') S.active.delete(id);
  renderStats();
  const evName = typeof d.event === 'string' ? d.event : d.event?.type || '';
  let what = '';
  if (type === 'timeout_fired') what = `${evName} fired` + (d.fromState ? `: ${d.fromState} → ${d.toState}` : '');
  else if (type === 'state_change') what = `${d.previousState} → ${d.newState}` + (d.event?.type ? ` (${d.event.type})` : '');
  else if (type === 'instance_created') what = 'created in ' + (d.newState || d.currentState || d.instance?.currentState || '');
  else if (type === 'instance_completed') what = 'completed in ' + (d.finalState || d.currentState || d.newState || '');
  else if (type === 'event_ignored') what = evName + ' ignored' + (d.reason ? ': ' + d.reason : '');
  else what = evName;
  logEvent(type, d, what, id);
  if (d.componentName === S.component || !d.componentName) scheduleRefresh(id);
}

export const pendingIds = new Set();
export function scheduleRefresh(id) {
  if (id) pendingIds.add(id);
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const touchesSelected = pendingIds.has(S.instanceId);
    pendingIds.clear();
    await Promise.all([loadInstances(), touchesSelected ? loadSelected() : null]);
    renderList();
    renderMachines();
    if (touchesSelected) { renderDetail(); if (S.tab === 'audit') renderAudit(); }
  }, 120);
}

export function logEvent(type, d, what, id) {
  const ol = $('#event-log');
  ol.querySelector('.empty')?.remove();
  const li = h('li', { dataset: { type } },
    h('span', { class: 'time' }, fmtTime(d?.timestamp || Date.now())),
    h('span', {}, h('span', { class: 'badge ' + (type === 'state_change' ? 'active' : type === 'instance_completed' ? 'completed' : type === 'event_ignored' ? 'warn' : 'kind') }, type)),
    h('span', { class: 'muted' }, [d?.componentName, d?.machineName].filter(Boolean).join(' / ')),
    h('span', { class: 'what' }, id ? h('button', { type: 'button', class: 'link mono', title: id, onclick: () => { location.hash = hashFor({ component: d.componentName || S.component, machine: d.machineName, instance: id }); } }, '…' + shortId(id)) : null, id ? ' ' : '', what));
  li.dataset.text = [type, d?.componentName, d?.machineName, id, what].join(' ').toLowerCase();
  filterLogItem(li);
  ol.prepend(li);
  while (ol.children.length > LOG_MAX) ol.lastElementChild.remove();
}

export function filterLogItem(li) {
  const f = $('#log-filter').value.trim().toLowerCase();
  li.hidden = !!f && !li.dataset.text.includes(f);
}
