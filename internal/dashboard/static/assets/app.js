// xcomponent dashboard: vanilla ES module, no build step. Every piece of data goes into the
// page through textContent / createElement (never parsed as HTML); mermaid's SVG output (strict
// security level, its own sanitizer) is parsed as XML and imported as nodes.

const TOKEN_KEY = 'xcomponent.token';
const $ = (sel) => document.querySelector(sel);

// ---------- DOM helpers ----------

// h builds an element: attrs are properties/attributes (on* are listeners), children are
// nodes or strings (strings become text nodes).
function h(tag, attrs, ...children) {
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

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el) { el.replaceChildren(); return el; }

const shortId = (id) => (id ? String(id).slice(-8) : '');
const fmtTime = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '');
const fmtDateTime = (ms) => (ms ? new Date(ms).toLocaleString() : '');

function fmtDuration(ms) {
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
const MAX_DEPTH = 64;
function clip(v, d = 0) {
  if (v === null || typeof v !== 'object') return v;
  if (d >= MAX_DEPTH) return '…';
  if (Array.isArray(v)) return v.map((x) => clip(x, d + 1));
  const o = {};
  for (const [k, x] of Object.entries(v)) o[k] = clip(x, d + 1);
  return o;
}
function stringify(v, indent) {
  try { return JSON.stringify(v, null, indent); } catch { return JSON.stringify(clip(v), null, indent); }
}
function json(v) { return stringify(v ?? null, 2); }

// ---------- API ----------

class ApiError extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

async function api(path, { method = 'GET', body } = {}) {
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

const enc = encodeURIComponent;

// ---------- state ----------

const S = {
  components: [],        // from GET /api/components
  defs: new Map(),       // component name -> definition (GET /api/components/:c)
  component: '',
  machine: '',
  instanceId: '',
  instance: null,        // selected instance (GET /api/instances/:id)
  status: 'active',
  stateFilter: '',
  q: '',
  list: [],              // filtered list
  all: [],               // every instance of the component (counts per state)
  active: new Map(),     // id -> {component, machine, state}: live, from the stream
  runtimes: [],
  tab: 'detail',
  lastResult: null,      // {instanceId, ok, text}
  diagrams: new Map(),   // machine -> key of the rendered diagram
};

function def() { return S.defs.get(S.component); }
function machineDef(name) { return def()?.stateMachines?.find((m) => m.name === name); }
function stateType(machine, state) {
  return machineDef(machine)?.states?.find((s) => s.name === state)?.type || 'regular';
}

// ---------- routing: #/component/C/machine/M/instance/ID ----------

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return ''; }
  });
  const r = {};
  for (let i = 0; i + 1 < parts.length; i += 2) r[parts[i]] = parts[i + 1];
  return { component: r.component || '', machine: r.machine || '', instance: r.instance || '' };
}

function hashFor({ component, machine, instance }) {
  let s = '#/component/' + enc(component);
  if (machine) s += '/machine/' + enc(machine);
  if (instance) s += '/instance/' + enc(instance);
  return s;
}

function navigate(to, replace = false) {
  const target = hashFor({ component: S.component, machine: S.machine, instance: S.instanceId, ...to });
  if (target === location.hash) { applyRoute(); return; }
  if (replace) { history.replaceState(null, '', target); applyRoute(); } else location.hash = target;
}

let routing = Promise.resolve();
function applyRoute() { routing = routing.then(doRoute, doRoute); return routing; }

async function doRoute() {
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

async function loadComponents() {
  const data = await api('/api/components');
  S.components = (data.components || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  const sel = clear($('#component-select'));
  for (const c of S.components) sel.append(h('option', { value: c.name }, c.name));
  renderStats();
}

async function loadInstances() {
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

async function loadSelected() {
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

async function loadRuntimes() {
  try { S.runtimes = (await api('/api/runtimes')).runtimes || []; } catch { S.runtimes = []; }
  renderStats();
}

// ---------- rendering ----------

function renderAll() {
  renderStats();
  renderList();
  renderMachines();
  renderDetail();
  if (S.tab === 'audit') renderAudit();
}

function renderStats() {
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
function fmtAgo(ms) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return fmtDateTime(ms);
}

const RUNTIME_STATUS = { up: 'Up', lost: 'Lost', stopped: 'Stopped' };

// renderRuntimes draws the runtimes panel: one group per component (with how many of its
// runtimes are up), one row per runtime with its status, host and last heartbeat.
function renderRuntimes() {
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

function fillStateFilter() {
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

function stateBadge(machine, state, extra = '') {
  const t = stateType(machine, state);
  const cls = t === 'final' ? 'final' : t === 'error' ? 'error' : t === 'entry' ? 'entry' : '';
  return h('span', { class: `badge ${cls} ${extra}`.trim() }, state || '—');
}

function renderList() {
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

function summary(ctx) {
  if (!ctx || typeof ctx !== 'object') return '';
  return Object.entries(ctx).slice(0, 3).map(([k, v]) => `${k}: ${typeof v === 'object' ? stringify(v) : v}`).join(' · ');
}

function renderMachines() {
  const box = $('#machines');
  const machines = def()?.stateMachines || [];
  // keep cards (and their rendered diagrams) when the machine set is the same
  const names = machines.map((m) => m.name).join('\n');
  if (box.dataset.names !== names || box.dataset.component !== S.component) {
    clear(box);
    box.dataset.names = names;
    box.dataset.component = S.component;
    S.diagrams.clear();
    for (const m of machines) {
      box.append(h('article', { class: 'panel machine-card', dataset: { machine: m.name }, onclick: () => { if (S.machine !== m.name) navigate({ machine: m.name, instance: '' }); } },
        h('div', { class: 'panel-head' }, h('h2', {}, m.name),
          m.name === def().entryMachine ? h('span', { class: 'badge entry' }, 'entry') : null,
          h('span', { class: 'badge kind' }, `${m.states?.length || 0} states`)),
        h('div', { class: 'diagram' }, h('span', { class: 'muted' }, 'Loading diagram…')),
        h('div', { class: 'counts' })));
    }
    const warnings = def()?.warnings || [];
    if (warnings.length && box.firstElementChild) {
      box.firstElementChild.append(h('div', { class: 'warnings' }, ...warnings.map((w) => h('div', {}, 'Warning: ', typeof w === 'string' ? w : stringify(w)))));
    }
  }
  for (const card of box.querySelectorAll('.machine-card')) {
    const m = card.dataset.machine;
    card.classList.toggle('sel', m === S.machine);
    const cur = S.instance && S.instance.machineName === m ? S.instance.currentState : '';
    renderCounts(card.querySelector('.counts'), m, cur);
    renderDiagram(card.querySelector('.diagram'), m, cur);
  }
}

function renderCounts(box, machine, cur) {
  clear(box);
  const next = new Set((machineDef(machine)?.transitions || []).filter((t) => cur && t.from === cur && t.to !== cur).map((t) => t.to));
  const counts = new Map();
  for (const i of S.all) if (i.machineName === machine) counts.set(i.currentState, (counts.get(i.currentState) || 0) + 1);
  for (const s of machineDef(machine)?.states || []) {
    const n = counts.get(s.name) || 0;
    box.append(h('span', { class: `count ${s.type || ''} ${s.name === cur ? 'cur' : ''} ${next.has(s.name) ? 'next' : ''}`, title: `${n} instance(s) in ${s.name}` + (next.has(s.name) ? ' · reachable next' : ''), dataset: { state: s.name } }, next.has(s.name) ? '→ ' : '', s.name, h('b', {}, String(n))));
  }
}

let diagramSeq = 0;
async function renderDiagram(box, machine, cur) {
  const key = S.component + '|' + machine + '|' + cur;
  if (S.diagrams.get(machine) === key) return;
  S.diagrams.set(machine, key);
  let text;
  try {
    let url = '/api/machines/' + enc(machine) + '/diagram?component=' + enc(S.component);
    if (cur) url += '&currentState=' + enc(cur);
    text = (await api(url)).diagram;
  } catch (e) {
    S.diagrams.delete(machine);
    clear(box).append(h('span', { class: 'muted' }, 'Diagram unavailable: ' + e.message));
    return;
  }
  if (S.diagrams.get(machine) !== key) return; // superseded
  box.dataset.currentState = cur;
  if (await drawMermaid(box, text, () => S.diagrams.get(machine) === key)) box.dataset.rendered = key;
}

// drawMermaid renders mermaid text into box (strict security level; the SVG is parsed as XML
// and imported as nodes). still() tells whether the result is still wanted. On failure the
// source is shown as text.
async function drawMermaid(box, text, still = () => true) {
  if (!window.mermaid) { clear(box).append(h('pre', { class: 'json-box' }, text)); return false; }
  try {
    const { svg } = await window.mermaid.render('mmd-' + (++diagramSeq), text);
    if (!still()) return false;
    const root = new DOMParser().parseFromString(svg, 'image/svg+xml').documentElement;
    if (root.nodeName !== 'svg') throw new Error('bad SVG');
    clear(box).append(document.importNode(root, true));
    return true;
  } catch (e) {
    document.getElementById('dmmd-' + diagramSeq)?.remove(); // mermaid's leftover error node
    if (still()) clear(box).append(h('div', {}, h('div', { class: 'muted' }, 'Could not draw the diagram: ' + e.message), h('pre', { class: 'json-box' }, text)));
    return false;
  }
}

function renderDetail() {
  const box = clear($('#instance-detail'));
  const i = S.instance;
  if (!i) {
    box.append(h('p', { class: 'empty' }, S.lastResult?.text || 'Select an instance, or create one.'));
    return;
  }
  const m = machineDef(i.machineName);
  box.append(h('div', { class: 'detail-head' },
    h('span', { class: 'title' }, i.machineName),
    h('span', { class: 'mono', title: i.id }, i.id),
    h('span', { id: 'detail-state', class: 'badge current state-pill', dataset: { state: i.currentState } }, i.currentState),
    h('span', { class: 'badge ' + (i.status === 'active' ? 'active' : i.status === 'error' ? 'error' : 'completed'), id: 'detail-status' }, i.status)));

  const meta = h('dl', { class: 'meta' },
    metaItem('Component', i.componentName),
    metaItem('Created', fmtDateTime(i.createdAt)),
    metaItem('Updated', fmtDateTime(i.updatedAt)),
    metaItem('Version', String(i.version ?? '')));
  if (i.parent) meta.append(metaItem('Parent', instanceLink(i.parent)));
  if (i.children?.length) meta.append(metaItem('Children', h('span', {}, ...i.children.flatMap((c, n) => [n ? ', ' : '', instanceLink(c)]))));
  box.append(meta);

  const left = h('div', {});
  const right = h('div', {});
  box.append(h('div', { class: 'cols' }, left, right));

  // Quick actions
  left.append(h('h3', {}, 'Quick actions'));
  const transitions = (m?.transitions || []).filter((t) => t.from === i.currentState && t.type !== 'timeout' && t.type !== 'auto');
  const seen = new Set();
  const actions = h('div', { class: 'actions', id: 'quick-actions' });
  const payload = h('textarea', { class: 'payload', id: 'action-payload', placeholder: 'Optional JSON payload, e.g. {"comment": "ok"}', 'aria-label': 'Event payload (JSON)' });
  for (const t of transitions) {
    if (seen.has(t.event)) continue;
    seen.add(t.event);
    const targets = transitions.filter((x) => x.event === t.event).map((x) => x.to);
    const chips = [];
    if (t.type === 'inter_machine' || t.targetMachine) chips.push(h('span', { class: 'badge kind', title: 'inter-machine transition' }, '↪ ' + (t.targetMachine || 'machine')));
    if (t.targetComponent) chips.push(h('span', { class: 'badge kind', title: 'cross-component transition' }, '⇢ ' + t.targetComponent));
    for (const r of t.matchingRules || []) chips.push(h('span', { class: 'badge warn', title: 'matching rule: the payload must carry this property' }, `match ${r.eventProperty} ${r.operator || '==='} ${r.instanceProperty}`));
    if (t.guards?.length) chips.push(h('span', { class: 'badge kind' }, 'guarded'));
    actions.append(h('button', {
      type: 'button', class: 'action', dataset: { event: t.event }, disabled: i.status !== 'active',
      onclick: () => fire(i, t.event, payload.value),
    }, h('span', { class: 'ev' }, t.event), h('span', { class: 'to' }, '→ ' + [...new Set(targets)].join(' | ')), chips.length ? h('span', { class: 'chips' }, chips) : null));
  }
  if (!seen.size) left.append(h('p', { class: 'empty' }, i.status === 'active' ? `No triggerable transition from ${i.currentState}.` : `Instance is ${i.status}.`));
  else left.append(actions, payload);
  const res = S.lastResult && S.lastResult.instanceId === i.id ? S.lastResult : null;
  left.append(h('div', { id: 'action-result', class: 'result ' + (res ? (res.ok ? 'ok' : 'bad') : ''), hidden: !res }, res?.text || ''));

  // Timeouts
  left.append(h('h3', {}, 'Pending timeouts'));
  const tos = (i.pendingTimeouts || []).filter((t) => t.kind !== 'auto');
  if (!tos.length) left.append(h('p', { class: 'empty' }, 'None.'));
  else {
    left.append(h('ul', { class: 'timeouts' }, ...tos.map((t) => h('li', { dataset: { due: String(t.dueAt), total: String(t.totalMs || 0) } },
      h('div', { class: 'row' }, h('span', {}, h('b', {}, t.event), ' → ', t.targetState || ''), h('span', { class: 'countdown mono' }, fmtDuration(t.dueAt - Date.now()))),
      h('div', { class: 'progress' }, h('span', { style: 'width:0%' }))))));
    tickTimeouts();
  }

  // Context
  right.append(h('h3', {}, 'Data'));
  right.append(h('details', { class: 'json', open: true }, h('summary', {}, 'context'), h('pre', { class: 'json-box', id: 'detail-context' }, json(i.context))));
  if (i.publicMember && stringify(i.publicMember) !== stringify(i.context)) {
    right.append(h('details', { class: 'json' }, h('summary', {}, 'public member'), h('pre', { class: 'json-box' }, json(i.publicMember))));
  }
}

function metaItem(label, value) { return h('div', {}, h('dt', {}, label), h('dd', {}, value)); }

function instanceLink(ref) {
  const id = typeof ref === 'string' ? ref : ref.id || ref.instanceId;
  const m = typeof ref === 'object' ? ref.machineName : '';
  const comp = (typeof ref === 'object' && ref.componentName) || S.component;
  return h('button', { type: 'button', class: 'link', title: id, onclick: () => {
    if (comp !== S.component) location.hash = hashFor({ component: comp, machine: m, instance: id });
    else navigate({ machine: m || S.machine, instance: id });
  } }, (m ? m + ' ' : '') + '…' + shortId(id));
}

function tickTimeouts() {
  for (const li of document.querySelectorAll('.timeouts li')) {
    const due = Number(li.dataset.due), total = Number(li.dataset.total);
    const left = due - Date.now();
    li.querySelector('.countdown').textContent = fmtDuration(left);
    if (total > 0) li.querySelector('.progress > span').style.width = Math.min(100, Math.max(0, 100 * (1 - left / total))).toFixed(1) + '%';
  }
}

async function fire(inst, event, payloadText) {
  let payload;
  if (payloadText && payloadText.trim()) {
    try { payload = JSON.parse(payloadText); } catch (e) {
      S.lastResult = { instanceId: inst.id, ok: false, text: 'Payload is not valid JSON: ' + e.message };
      renderDetail();
      return;
    }
  }
  for (const b of document.querySelectorAll('#quick-actions button')) b.disabled = true;
  try {
    const r = await api('/api/instances/' + enc(inst.id) + '/trigger', { method: 'POST', body: payload === undefined ? { event } : { event, payload } });
    S.lastResult = { instanceId: inst.id, ok: true, text: `Applied ${event}: ${r.previousState} → ${r.newState}` };
    if (r.instance) S.instance = { ...S.instance, ...r.instance };
  } catch (e) {
    // 503/504: nothing was refused — no runtime could take it, or none answered in time (it
    // may still be applied: the live stream will tell)
    const what = e.status === 504 ? 'No answer yet for' : e.status === 503 || e.status === 0 ? 'Could not send' : 'Refused';
    S.lastResult = { instanceId: inst.id, ok: false, text: `${what} ${event} (${e.status}): ${e.message}` };
  }
  await Promise.all([loadSelected(), loadInstances()]);
  renderAll();
}

// ---------- audit trail ----------

async function renderAudit() {
  const box = $('#audit');
  if (!S.instance) { clear(box).append(h('p', { class: 'empty' }, 'Select an instance to see its audit trail.')); return; }
  const id = S.instance.id;
  let hist;
  try { hist = (await api('/api/instances/' + enc(id) + '/history')).history || []; } catch (e) {
    clear(box).append(h('p', { class: 'empty' }, 'Audit trail unavailable: ' + e.message));
    return;
  }
  if (S.instance?.id !== id) return;
  clear(box);
  box.append(h('div', { class: 'toolbar' },
    h('span', { class: 'muted' }, `${hist.length} event(s), oldest first`),
    h('span', { class: 'spacer' }),
    h('button', { type: 'button', class: 'btn small', onclick: () => download(`history-${id}.json`, 'application/json', json(hist)) }, 'Export JSON'),
    h('button', { type: 'button', class: 'btn small', onclick: () => download(`history-${id}.csv`, 'text/csv', toCSV(hist)) }, 'Export CSV')));
  const ol = h('ol', { class: 'timeline', id: 'audit-trail' });
  for (const e of hist) {
    const payload = e.event?.payload;
    ol.append(h('li', { dataset: { event: e.event?.type || '' } },
      h('div', { class: 't-head' },
        h('span', { class: 't-ev' }, e.event?.type || '?'),
        h('span', { class: 't-tr' }, `${e.stateBefore || '∅'} → ${e.stateAfter}`),
        e.sourceComponentName ? h('span', { class: 'badge kind' }, 'from ' + e.sourceComponentName) : null,
        e.causedBy?.length ? h('span', { class: 'badge kind' }, e.source && e.source !== 'api' ? e.source.replace('_', ' ') : 'caused') : null,
        e.runtime ? h('span', { class: 'badge runtime', title: 'runtime that applied it' }, '⚙ ' + e.runtime) : null),
      h('div', { class: 't-meta' }, fmtDateTime(e.event?.timestamp || e.persistedAt), ' · actor ', e.actor || '—', e.source ? ' · via ' + e.source : ''),
      e.note ? h('div', { class: 't-note' }, '⚠ ' + e.note) : null,
      payload && Object.keys(payload).length ? h('details', { class: 'json' }, h('summary', {}, 'payload'), h('pre', { class: 'json-box' }, json(payload))) : null,
      h('details', { class: 'json' }, h('summary', {}, 'data snapshot'), h('pre', { class: 'json-box' }, json(e.publicMemberSnapshot)))));
  }
  box.append(ol);
  const seqBox = h('div', { class: 'diagram sequence', id: 'sequence' }, h('span', { class: 'muted' }, 'Loading…'));
  box.append(h('h3', {}, 'Sequence diagram of the correlation'), seqBox);
  try {
    const seq = await api('/api/instances/' + enc(id) + '/sequence?format=mermaid');
    if (seq?.diagram) await drawMermaid(seqBox, seq.diagram, () => seqBox.isConnected);
    else clear(seqBox).append(h('span', { class: 'muted' }, 'No sequence.'));
  } catch (e) { clear(seqBox).append(h('span', { class: 'muted' }, 'Sequence unavailable: ' + e.message)); }
}

function toCSV(hist) {
  const q = (v) => '"' + String(v ?? '').replaceAll('"', '""') + '"';
  const rows = [['time', 'event', 'from', 'to', 'actor', 'sourceComponent', 'runtime', 'payload'].join(',')];
  for (const e of hist) rows.push([new Date(e.event?.timestamp || e.persistedAt).toISOString(), e.event?.type, e.stateBefore, e.stateAfter, e.actor, e.sourceComponentName, e.runtime, stringify(e.event?.payload ?? {})].map(q).join(','));
  return rows.join('\n');
}

function download(name, type, text) {
  const a = h('a', { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function setTab(tab) {
  S.tab = tab;
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('on', b.dataset.tab === tab);
  $('#instance-detail').hidden = tab !== 'detail';
  $('#audit').hidden = tab !== 'audit';
  if (tab === 'audit') renderAudit();
}

// ---------- create modal ----------

function openCreate() {
  const d = def();
  if (!d) return;
  const sel = clear($('#create-machine'));
  for (const m of d.stateMachines || []) sel.append(h('option', { value: m.name }, m.name + (m.name === d.entryMachine ? ' (entry)' : '')));
  sel.value = machineDef(S.machine) ? S.machine : d.entryMachine;
  buildFields();
  $('#create-error').textContent = '';
  $('#create-dialog').showModal();
  $('#create-fields').querySelector('input, select, textarea')?.focus();
}

function buildFields() {
  const m = machineDef($('#create-machine').value);
  const box = clear($('#create-fields'));
  const schema = m?.contextSchema || {};
  const order = m?.schemaOrder?.length ? m.schemaOrder : Object.keys(schema);
  if (!order.length) {
    box.append(h('label', { class: 'field' }, 'Context (JSON)', h('textarea', { name: '__json', rows: 5, placeholder: '{}' }), h('span', { class: 'field-error', dataset: { errorFor: '__json' } })));
    return;
  }
  for (const name of order) {
    const f = schema[name] || {};
    const id = 'f-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
    let input;
    const type = f.type || 'text';
    if (type === 'select' || f.options) {
      input = h('select', { id, name });
      if (!f.required || f.default === undefined) input.append(h('option', { value: '' }, f.required ? 'Choose…' : '—'));
      for (const o of f.options || []) {
        const v = typeof o === 'object' ? o.value : o;
        input.append(h('option', { value: String(v) }, typeof o === 'object' ? (o.label ?? String(o.value)) : String(o)));
      }
      if (f.default !== undefined) input.value = String(f.default);
    } else if (type === 'boolean' || type === 'checkbox') {
      input = h('input', { id, name, type: 'checkbox', checked: !!f.default });
    } else if (type === 'textarea' || type === 'object' || type === 'json' || type === 'array') {
      input = h('textarea', { id, name, rows: 3, placeholder: f.placeholder || (type === 'textarea' ? '' : 'JSON') });
      if (f.default !== undefined) input.value = typeof f.default === 'string' ? f.default : stringify(f.default);
    } else {
      const htmlType = { number: 'number', integer: 'number', email: 'email', date: 'date', datetime: 'datetime-local', url: 'url' }[type] || 'text';
      input = h('input', { id, name, type: htmlType, placeholder: f.placeholder || '', min: f.min, max: f.max, step: type === 'integer' ? '1' : (htmlType === 'number' ? 'any' : undefined) });
      if (f.default !== undefined) input.value = String(f.default);
    }
    input.dataset.type = type;
    box.append(h('div', { class: 'field', dataset: { field: name } },
      h('label', { for: id }, f.label || name, f.required ? h('span', { class: 'req' }, ' *') : null, f.description ? h('span', { class: 'hint' }, ' — ' + f.description) : null),
      input,
      h('span', { class: 'field-error', dataset: { errorFor: name } })));
  }
}

function readFields() {
  const ctx = {};
  const errs = {};
  for (const el of $('#create-fields').querySelectorAll('input, select, textarea')) {
    const name = el.name;
    if (name === '__json') {
      if (el.value.trim()) { try { Object.assign(ctx, JSON.parse(el.value)); } catch (e) { errs.__json = 'not valid JSON: ' + e.message; } }
      continue;
    }
    const type = el.dataset.type;
    if (el.type === 'checkbox') { ctx[name] = el.checked; continue; }
    const v = el.value;
    if (v === '') continue;
    if (type === 'number' || type === 'integer') ctx[name] = Number(v);
    else if (['object', 'json', 'array'].includes(type)) { try { ctx[name] = JSON.parse(v); } catch (e) { errs[name] = 'not valid JSON: ' + e.message; } }
    else ctx[name] = v;
  }
  return { ctx, errs };
}

function showFieldErrors(errs) {
  for (const f of $('#create-fields').querySelectorAll('.field')) f.classList.remove('invalid');
  for (const s of $('#create-fields').querySelectorAll('.field-error')) s.textContent = '';
  let unplaced = [];
  for (const [name, msg] of Object.entries(errs)) {
    const slot = [...$('#create-fields').querySelectorAll('.field-error')].find((s) => s.dataset.errorFor === name);
    if (slot) { slot.textContent = msg; slot.parentElement.classList.add('invalid'); } else unplaced.push(`${name}: ${msg}`);
  }
  return unplaced;
}

async function submitCreate(ev) {
  ev.preventDefault();
  const machine = $('#create-machine').value;
  const { ctx, errs } = readFields();
  $('#create-error').textContent = '';
  if (Object.keys(errs).length) { showFieldErrors(errs); return; }
  showFieldErrors({});
  const btn = $('#create-submit');
  btn.disabled = true;
  try {
    const r = await api('/api/components/' + enc(S.component) + '/instances', { method: 'POST', body: { machineName: machine, context: ctx } });
    $('#create-dialog').close();
    S.lastResult = { instanceId: r.instanceId, ok: true, text: `Created in state ${r.instance?.currentState}` };
    navigate({ machine: r.instance?.machineName || machine, instance: r.instanceId });
  } catch (e) {
    const fields = {};
    for (const f of e.body?.fields || []) fields[f.field] = f.message;
    const unplaced = showFieldErrors(fields);
    $('#create-error').textContent = e.status === 422 && !unplaced.length ? 'Please fix the fields above.' : `${e.status || ''} ${e.message}`.trim();
  } finally {
    btn.disabled = false;
  }
}

// ---------- live stream ----------

let es = null;
let refreshTimer = null;
const LOG_MAX = 300;

function setConn(cls, text) {
  const c = $('#conn-status');
  c.className = 'conn ' + cls;
  c.querySelector('.conn-text').textContent = text;
}

function connect() {
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

function parse(m) { try { return JSON.parse(m.data); } catch { return null; } }

function onInstanceEvent(type, d) {
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

const pendingIds = new Set();
function scheduleRefresh(id) {
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

function logEvent(type, d, what, id) {
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

function filterLogItem(li) {
  const f = $('#log-filter').value.trim().toLowerCase();
  li.hidden = !!f && !li.dataset.text.includes(f);
}

// ---------- token ----------

let tokenAsked = false;
function askToken(msg) {
  if (tokenAsked || $('#token-dialog').open) return;
  tokenAsked = true;
  showBanner('Authentication required' + (msg ? ': ' + msg : '') + '.');
  $('#token-input').value = token();
  $('#token-dialog').showModal();
}

function showBanner(text) { const b = $('#banner'); b.textContent = text; b.hidden = false; }
function hideBanner() { $('#banner').hidden = true; }

// ---------- boot ----------

async function boot() {
  if (window.mermaid) {
    window.mermaid.initialize({ startOnLoad: false, securityLevel: 'strict', theme: 'default', flowchart: { htmlLabels: false }, state: { useMaxWidth: true } });
  }
  $('#component-select').addEventListener('change', (e) => { location.hash = hashFor({ component: e.target.value }); });
  $('#new-instance-btn').addEventListener('click', openCreate);
  $('#create-machine').addEventListener('change', buildFields);
  $('#create-form').addEventListener('submit', submitCreate);
  $('#create-cancel').addEventListener('click', () => $('#create-dialog').close());
  $('#token-btn').addEventListener('click', () => { tokenAsked = false; askToken(); hideBanner(); });
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('#token-input').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
    $('#token-dialog').close();
    tokenAsked = false;
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

async function start() {
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

// mermaid is a classic deferred script: it has run before this module (modules are deferred too, in order)
boot();
