// History over a time range across components (GET /api/history/instances), exported as CSV or
// JSON with the instances' events; and the API reference rendered from /api/openapi.json.

import { api, enc } from './api.js';
import { S, hashFor } from './state.js';
import { $, clear, download, fmtDateTime, fmtNum, h, shortId, stringify } from './util.js';
import { parseSearch } from './main.js';

const H = { rows: [], next: '', query: '' };
const MAX_EVENT_EXPORT = 200; // instances whose events an export reads

export function openHistory() {
  const dlg = $('#history-dialog');
  const sel = clear($('#h-component'));
  sel.append(h('option', { value: '' }, 'All components'));
  for (const c of S.components) sel.append(h('option', { value: c.name }, c.name));
  sel.value = S.component;
  if (!$('#h-from').value) {
    const d = new Date(Date.now() - 24 * 3600 * 1000);
    $('#h-from').value = localInput(d);
  }
  dlg.showModal();
  searchHistory();
}

function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function historyURL(cursor) {
  const f = new URLSearchParams();
  const comp = $('#h-component').value;
  if (comp) f.set('component', comp);
  if ($('#h-status').value) f.set('status', $('#h-status').value);
  const { q, where } = parseSearch($('#h-q').value.trim());
  if (q) f.set('q', q);
  for (const w of where) f.append('where', w);
  for (const k of ['from', 'to']) {
    const v = $('#h-' + k).value;
    if (v) f.set(k, String(new Date(v).getTime()));
  }
  f.set('limit', '200');
  if (cursor) f.set('cursor', cursor);
  return (where.length ? '/api/instances?' : '/api/history/instances?') + f.toString();
}

// rows are the history rows whatever the endpoint (where searches go through /api/instances).
function toRows(data) {
  return (data.instances || []).map((i) => ({
    instanceId: i.instance_id || i.id, componentName: i.componentName || i.component_name, machineName: i.machine_name || i.machineName,
    currentState: i.current_state || i.currentState, status: i.status, eventCount: i.event_count ?? ((i.version ?? 0) + 1),
    createdAt: i.created_at || i.createdAt, updatedAt: i.updated_at || i.updatedAt, context: i.context,
  }));
}

export async function searchHistory(more = false) {
  const status = $('#h-result');
  status.textContent = 'Searching…';
  try {
    const data = await api(historyURL(more ? H.next : ''));
    if (!more) H.rows = [];
    H.rows.push(...toRows(data));
    H.next = data.nextCursor || '';
    renderHistory();
  } catch (e) { status.textContent = 'Search failed: ' + e.message; }
}

function renderHistory() {
  const body = clear($('#h-table tbody'));
  for (const r of H.rows) {
    body.append(h('tr', { dataset: { id: r.instanceId } },
      h('td', {}, fmtDateTime(r.updatedAt)),
      h('td', {}, r.componentName || ''),
      h('td', {}, r.machineName || ''),
      h('td', {}, h('a', { class: 'mono', href: hashFor({ component: r.componentName || S.component, machine: r.machineName, instance: r.instanceId }),
        onclick: () => $('#history-dialog').close(), title: r.instanceId }, '…' + shortId(r.instanceId))),
      h('td', {}, r.currentState || ''),
      h('td', {}, r.status || ''),
      h('td', { class: 'num' }, fmtNum(r.eventCount))));
  }
  $('#h-result').textContent = `${fmtNum(H.rows.length)} instance(s)` + (H.next ? ', more match' : '');
  $('#h-more').hidden = !H.next;
}

async function exportHistory(kind) {
  const btns = document.querySelectorAll('#history-dialog .export');
  for (const b of btns) b.disabled = true;
  $('#h-result').textContent = 'Reading the events…';
  try {
    const rows = H.rows.slice(0, MAX_EVENT_EXPORT);
    const events = [];
    for (const r of rows) {
      // Every page of the instance's history (the endpoint pages, 1,000 events at most each).
      for (let cursor = '', first = true; first || cursor; first = false) {
        const page = await api(`/api/instances/${enc(r.instanceId)}/history?limit=1000&cursor=${enc(cursor)}`);
        for (const e of page.history || []) events.push({ ...e, componentName: e.componentName || r.componentName });
        cursor = page.nextCursor || '';
      }
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    if (kind === 'json') download(`history-${stamp}.json`, 'application/json', stringify({ instances: H.rows, events }, 2));
    else {
      download(`history-instances-${stamp}.csv`, 'text/csv', csv(['instanceId', 'componentName', 'machineName', 'currentState', 'status', 'eventCount', 'createdAt', 'updatedAt', 'context'],
        H.rows.map((r) => [r.instanceId, r.componentName, r.machineName, r.currentState, r.status, r.eventCount, iso(r.createdAt), iso(r.updatedAt), stringify(r.context ?? {})])));
      download(`history-events-${stamp}.csv`, 'text/csv', csv(['time', 'instanceId', 'componentName', 'machineName', 'event', 'from', 'to', 'actor', 'source', 'correlationId', 'payload'],
        events.map((e) => [iso(e.event?.timestamp || e.persistedAt), e.instanceId, e.componentName, e.machineName, e.event?.type, e.stateBefore, e.stateAfter, e.actor, e.source, e.correlationId, stringify(e.event?.payload ?? {})])));
    }
    $('#h-result').textContent = `Exported ${fmtNum(H.rows.length)} instance(s) and ${fmtNum(events.length)} event(s)` + (H.rows.length > MAX_EVENT_EXPORT ? ` (events of the first ${MAX_EVENT_EXPORT})` : '');
  } catch (e) { $('#h-result').textContent = 'Export failed: ' + e.message; }
  for (const b of btns) b.disabled = false;
}

const iso = (ms) => (ms ? new Date(ms).toISOString() : '');
function csv(head, rows) {
  const q = (v) => '"' + String(v ?? '').replaceAll('"', '""') + '"';
  return [head.join(','), ...rows.map((r) => r.map(q).join(','))].join('\n');
}

export function initHistory() {
  $('#history-btn').addEventListener('click', openHistory);
  $('#h-form').addEventListener('submit', (e) => { e.preventDefault(); searchHistory(); });
  $('#h-more').addEventListener('click', () => searchHistory(true));
  $('#h-close').addEventListener('click', () => $('#history-dialog').close());
  $('#h-export-csv').addEventListener('click', () => exportHistory('csv'));
  $('#h-export-json').addEventListener('click', () => exportHistory('json'));
  $('#api-btn').addEventListener('click', openAPIDocs);
  $('#api-close').addEventListener('click', () => $('#api-dialog').close());
}

// ---------- API reference (offline, from /api/openapi.json) ----------

async function openAPIDocs() {
  const dlg = $('#api-dialog');
  const box = clear($('#api-body'));
  dlg.showModal();
  let doc;
  try { doc = await api('/api/openapi.json'); } catch (e) { box.append(h('p', { class: 'form-error' }, e.message)); return; }
  box.append(h('p', { class: 'muted' }, doc.info?.description || ''), h('p', {}, h('a', { href: '/api/openapi.json', target: '_blank', rel: 'noopener' }, 'openapi.json'), ` · OpenAPI ${doc.openapi} · version ${doc.info?.version || ''}`));
  const ul = h('ul', { class: 'api-list' });
  for (const [path, ops] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(ops)) {
      const params = (op.parameters || []).map((p) => p.name + (p.required ? '*' : '')).join(', ');
      const body = op.requestBody?.content?.['application/json']?.schema?.properties;
      ul.append(h('li', { dataset: { path, method } },
        h('details', {},
          h('summary', {}, h('span', { class: 'badge method-' + method }, method.toUpperCase()), ' ', h('code', {}, path), ' — ', op.summary || ''),
          params ? h('p', {}, h('b', {}, 'Parameters: '), params) : null,
          body ? h('p', {}, h('b', {}, 'Body: '), Object.keys(body).join(', ')) : null,
          h('p', {}, h('b', {}, 'Answers: '), Object.keys(op.responses || {}).join(', ')))));
    }
  }
  box.append(ul);
}
