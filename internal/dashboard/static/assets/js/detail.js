// The instance detail: data, parent/children, pending timeouts, Quick Actions.

import { api, enc } from './api.js';
import { tickDiagramCountdown } from './diagram.js';
import { loadInstances, loadSelected, navigate, renderAll } from './main.js';
import { S, hashFor, machineDef } from './state.js';
import { $, clear, fmtDateTime, fmtDuration, fmtMs, h, icon, json, shortId, stringify } from './util.js';

export function renderDetail() {
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
    h('span', { class: 'badge ' + (i.status === 'active' ? 'active' : i.status === 'error' ? 'error' : i.status === 'terminated' ? 'terminated' : 'completed'), id: 'detail-status' }, i.status)));

  const meta = h('dl', { class: 'meta' },
    metaItem('Component', i.componentName),
    metaItem('Created', fmtDateTime(i.createdAt)),
    metaItem('Updated', fmtDateTime(i.updatedAt)),
    metaItem('Version', String(i.version ?? '')));
  if (i.parent) meta.append(metaItem('Parent', instanceLink(i.parent)));
  if (i.children?.length) meta.append(metaItem('Children', h('span', {}, ...i.children.flatMap((c, n) => [n ? ', ' : '', instanceLink(c)]))));
  const related = h('div', { id: 'detail-related', class: 'related' });
  renderRelated(related, i);

  // actions first (beside the diagram on a laptop), then timers, then what the instance is
  const left = h('div', { class: 'detail-actions' });
  const right = h('div', {});
  box.append(left, h('h3', {}, 'Instance'), meta, related, right);

  // Quick actions
  left.append(h('h3', {}, 'Quick actions'));
  const transitions = (m?.transitions || []).filter((t) => t.from === i.currentState && t.type !== 'timeout' && t.type !== 'auto');
  const seen = new Set();
  const actions = h('div', { class: 'actions', id: 'quick-actions' });
  const params = paramFields(m, transitions);
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
      type: 'button', class: 'action', dataset: { event: t.event }, disabled: i.status !== 'active' || !S.session.canWrite,
      title: S.session.canWrite ? null : `Role ${S.session.role}: read only`,
      onclick: () => fire(i, t.event, payload.value, readParams(params)),
    }, h('span', { class: 'ev' }, t.event), h('span', { class: 'to' }, '→ ' + [...new Set(targets)].join(' | ')), chips.length ? h('span', { class: 'chips' }, chips) : null));
  }
  if (!seen.size) left.append(h('p', { class: 'empty' }, i.status === 'active' ? `No triggerable transition from ${i.currentState}.` : `Instance is ${i.status}.`));
  else {
    left.append(actions);
    if (params) left.append(params);
    left.append(payload);
    if (!S.session.canWrite) {
      payload.disabled = true;
      left.append(h('p', { class: 'muted role-note', id: 'role-note' }, `Your role (${S.session.role}) may read only: actions are disabled.`));
    }
  }
  const res = S.lastResult && S.lastResult.instanceId === i.id ? S.lastResult : null;
  // the instance may have moved on since (an auto transition, another client): say where it is
  const moved = res?.ok && res.newState && i.currentState !== res.newState ? `; now in ${i.currentState}` : '';
  left.append(operatorActions(i, m));
  left.append(h('div', { id: 'action-result', class: 'result ' + (res ? (res.ok ? 'ok' : 'bad') : ''), hidden: !res, role: 'status' }, (res?.text || '') + moved));

  // Timers: timeouts and automatic transitions, armed (with their due time) or waiting on a guard
  left.append(h('h3', {}, 'Timers and automatic transitions'));
  const tos = i.status === 'active' ? (i.pendingTimeouts || []) : [];
  const armed = new Set(tos.map((t) => t.event + '|' + t.targetState));
  const waiting = i.status === 'active' ? (m?.transitions || []).filter((t) => t.from === i.currentState && (t.type === 'auto' || t.type === 'timeout') && !armed.has(t.event + '|' + t.to)) : [];
  if (!tos.length && !waiting.length) left.append(h('p', { class: 'empty' }, 'None from ' + i.currentState + '.'));
  else {
    left.append(h('ul', { class: 'timeouts' },
      ...tos.map((t) => h('li', { dataset: { due: String(t.dueAt), total: String(t.totalMs || 0), kind: t.kind || 'timeout' } },
        h('div', { class: 'row' },
          h('span', {}, icon(t.kind === 'auto' ? 'auto' : 'timer'), ' ', h('b', {}, t.event), ' → ', t.targetState || '', ' ',
            h('span', { class: 'badge kind' }, t.kind === 'auto' ? 'automatic' : 'timeout ' + fmtMs(t.totalMs))),
          h('span', {}, h('span', { class: 'countdown mono' }, fmtDuration(t.dueAt - Date.now())), h('span', { class: 'muted due' }, ' at ' + fmtDateTime(t.dueAt)))),
        h('div', { class: 'progress' }, h('span', { style: 'width:0%' })))),
      ...waiting.map((t) => h('li', { class: 'waiting', dataset: { kind: t.type } },
        h('div', { class: 'row' },
          h('span', {}, icon(t.type === 'auto' ? 'auto' : 'timer'), ' ', h('b', {}, t.event), ' → ', t.to, ' ',
            h('span', { class: 'badge kind' }, t.type === 'auto' ? 'automatic' : 'timeout ' + fmtMs(t.timeoutMs))),
          h('span', { class: 'muted' }, t.guards?.length ? 'guard not met: ' + t.guards.map((g) => g.expression).join(' && ') : 'not armed'))))));
    tickTimeouts();
  }

  // Context
  right.append(h('h3', {}, 'Data'));
  right.append(h('details', { class: 'json', open: true }, h('summary', {}, 'context'), h('pre', { class: 'json-box', id: 'detail-context' }, json(i.context))));
  if (i.publicMember && stringify(i.publicMember) !== stringify(i.context)) {
    right.append(h('details', { class: 'json' }, h('summary', {}, 'public member'), h('pre', { class: 'json-box' }, json(i.publicMember))));
  }
}

// renderRelated lists the instances this one exchanged events with across machines and
// components (the events of its correlations): the instance it was created by, those it
// created, the others its events reached — each a link that opens it in its component.
const relatedCache = new Map(); // instance id + version -> related list
// forgetRelated drops the cache: an event touched the selected instance (a fan-out it sent
// may have created or moved instances without changing its version).
export function forgetRelated() { relatedCache.clear(); }
let lastRelated = { id: '', rel: [] }; // the list last drawn, shown again while a newer one loads
async function renderRelated(box, i) {
  const key = i.id + '@' + i.version;
  let rel = relatedCache.get(key);
  if (!rel) {
    // The detail is rebuilt on every change of the instance: draw what was known, so that the
    // flow does not blink out while the correlated history is fetched again.
    if (lastRelated.id === i.id) drawRelated(box, i, lastRelated.rel);
    try {
      const evs = (await api('/api/history/correlated/' + enc(i.id))).events || [];
      rel = relatedFrom(i, evs);
    } catch { return; }
    relatedCache.clear();
    relatedCache.set(key, rel);
  }
  lastRelated = { id: i.id, rel };
  if (box.isConnected) drawRelated(box, i, rel);
}

function drawRelated(box, i, rel) {
  const known = new Set([i.parent?.id, ...(i.children || []).map((c) => c.id)].filter(Boolean));
  rel = rel.filter((r) => !known.has(r.id) || r.componentName !== i.componentName);
  clear(box);
  if (!rel.length) return;
  const label = { parent: 'created by', child: 'created', related: 'exchanged events with' };
  box.append(h('h3', {}, 'Flow across machines and components'),
    h('ul', { class: 'related-list' }, ...rel.map((r) => h('li', { dataset: { rel: r.rel, id: r.id } },
      icon(r.rel === 'parent' ? 'parent' : r.rel === 'child' ? 'child' : 'link'), ' ',
      h('span', { class: 'muted' }, label[r.rel] + ' '),
      instanceLink(r), ' ', h('span', { class: 'muted' }, [r.componentName !== i.componentName ? 'in ' + r.componentName : '', r.via ? 'via ' + r.via : ''].filter(Boolean).join(' · '))))));
}

export function relatedFrom(i, evs) {
  const own = new Set(evs.filter((e) => e.instanceId === i.id).map((e) => e.id));
  const ownCreated = evs.find((e) => e.instanceId === i.id && e.event?.type === 'INSTANCE_CREATED');
  const byId = new Map();
  for (const e of evs) {
    if (e.instanceId === i.id) continue;
    let r = byId.get(e.instanceId);
    if (!r) { r = { id: e.instanceId, componentName: e.componentName, machineName: e.machineName, rel: 'related', via: '', ids: new Set() }; byId.set(e.instanceId, r); }
    r.ids.add(e.id);
    const cause = e.causedBy?.[0];
    if (e.event?.type === 'INSTANCE_CREATED' && cause && own.has(cause)) {
      r.rel = 'child';
      r.via = evs.find((x) => x.id === cause)?.event?.type || '';
    } else if (!r.via && cause && own.has(cause)) r.via = e.event?.type || '';
  }
  for (const r of byId.values()) {
    const cause = ownCreated?.causedBy?.[0];
    if (cause && r.ids.has(cause)) { r.rel = 'parent'; r.via = evs.find((x) => x.id === cause)?.event?.type || r.via; }
    if (!r.via) r.via = evs.find((e) => e.instanceId === i.id && r.ids.has(e.causedBy?.[0]))?.event?.type || '';
  }
  const order = { parent: 0, child: 1, related: 2 };
  return [...byId.values()].sort((a, b) => order[a.rel] - order[b.rel]).slice(0, 50);
}

export function metaItem(label, value) { return h('div', {}, h('dt', {}, label), h('dd', {}, value)); }

export function instanceLink(ref) {
  const id = typeof ref === 'string' ? ref : ref.id || ref.instanceId;
  const m = typeof ref === 'object' ? ref.machineName : '';
  const comp = (typeof ref === 'object' && ref.componentName) || S.component;
  return h('button', { type: 'button', class: 'link', title: 'Open ' + [comp, m].filter(Boolean).join(' / ') + ' ' + id, dataset: { id }, onclick: () => {
    if (comp !== S.component) location.hash = hashFor({ component: comp, machine: m, instance: id });
    else navigate({ machine: m || S.machine, instance: id });
  } }, (comp !== S.component ? comp + ' / ' : '') + (m ? m + ' ' : '') + '…' + shortId(id));
}

export function tickTimeouts() {
  tickDiagramCountdown();
  for (const li of document.querySelectorAll('.timeouts li[data-due]')) {
    const due = Number(li.dataset.due), total = Number(li.dataset.total);
    const left = due - Date.now();
    li.querySelector('.countdown').textContent = fmtDuration(left);
    if (total > 0) li.querySelector('.progress > span').style.width = Math.min(100, Math.max(0, 100 * (1 - left / total))).toFixed(1) + '%';
  }
}

// paramFields builds typed inputs for the payload: the properties the matching rules of the
// available transitions read, then the fields of the machine's contextSchema (a payload's
// properties are merged into the data, and contextMapping reads them for the target).
function paramFields(m, transitions) {
  const schema = m?.contextSchema || {};
  const names = [];
  for (const t of transitions) for (const r of t.matchingRules || []) if (!names.includes(r.eventProperty)) names.push(r.eventProperty);
  for (const n of (m?.schemaOrder?.length ? m.schemaOrder : Object.keys(schema))) if (!names.includes(n)) names.push(n);
  if (!names.length) return null;
  const box = h('details', { class: 'params', id: 'action-params' }, h('summary', {}, 'Payload fields'));
  for (const name of names) {
    const f = schema[name] || {};
    const id = 'p-' + name.replace(/[^A-Za-z0-9_-]/g, '_');
    let input;
    if (f.options) {
      input = h('select', { id, name }, h('option', { value: '' }, '—'), ...f.options.map((o) => {
        const v = typeof o === 'object' ? o.value : o;
        return h('option', { value: String(v) }, typeof o === 'object' ? (o.label ?? String(v)) : String(o));
      }));
    } else if (f.type === 'boolean' || f.type === 'checkbox') {
      input = h('select', { id, name }, h('option', { value: '' }, '—'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
    } else {
      const num = f.type === 'number' || f.type === 'integer';
      input = h('input', { id, name, type: num ? 'number' : 'text', min: f.min, max: f.max, step: num ? 'any' : undefined, placeholder: f.placeholder || '' });
    }
    input.dataset.type = f.type || 'text';
    box.append(h('div', { class: 'field' }, h('label', { for: id }, f.label || name, f.description ? h('span', { class: 'hint' }, ' — ' + f.description) : null), input));
  }
  return box;
}

function readParams(box) {
  const out = {};
  for (const el of box?.querySelectorAll('input, select') || []) {
    if (el.value === '') continue;
    const t = el.dataset.type;
    out[el.name] = t === 'number' || t === 'integer' ? Number(el.value) : t === 'boolean' || t === 'checkbox' ? el.value === 'true' : el.value;
  }
  return out;
}

// operatorActions: terminate the instance, retry its failed onEntry hook — with a reason for
// the audit trail, a confirmation step, disabled (with the reason why) for a viewer.
function operatorActions(i, m) {
  const box = h('div', { class: 'op-actions', id: 'op-actions' });
  box.append(h('h3', {}, 'Operator actions'));
  const ro = !S.session.canWrite;
  const hint = ro ? `Role ${S.session.role}: read only` : null;
  const reason = h('input', { id: 'op-reason', type: 'text', maxlength: 1000, placeholder: 'Why? (kept in the audit trail)', disabled: ro });
  box.append(h('div', { class: 'field' }, h('label', { for: 'op-reason' }, 'Reason'), reason));
  const confirmRow = h('div', { class: 'op-confirm', id: 'op-confirm', hidden: true });
  const ask = (label, what, run) => {
    clear(confirmRow).append(h('span', {}, what + '?'),
      h('button', { type: 'button', class: 'btn small danger', id: 'op-confirm-yes', onclick: () => { confirmRow.hidden = true; run(reason.value); } }, 'Confirm ' + label),
      h('button', { type: 'button', class: 'btn small ghost', id: 'op-confirm-no', onclick: () => { confirmRow.hidden = true; } }, 'Cancel'));
    confirmRow.hidden = false;
    $('#op-confirm-yes')?.focus();
  };
  const row = h('div', { class: 'op-buttons' });
  row.append(h('button', {
    type: 'button', class: 'btn small danger', id: 'op-terminate', disabled: ro || i.status !== 'active', title: hint || (i.status !== 'active' ? `Instance is ${i.status}` : 'End this instance where it is (status terminated): its timers are cancelled; no hook runs'),
    onclick: () => ask('terminate', `Terminate ${i.machineName} ${shortId(i.id)} in ${i.currentState}`, (r) => operate(i, 'terminate', r)),
  }, 'Terminate…'));
  const onEntry = m?.states?.find((s) => s.name === i.currentState)?.onEntry;
  if (onEntry && i.status !== 'terminated') {
    const retry = h('button', {
      type: 'button', class: 'btn small', id: 'op-retry', hidden: true, disabled: ro, title: hint || `Run the onEntry hook ${onEntry} of ${i.currentState} again`,
      onclick: () => ask('retry', `Retry hook ${onEntry} of ${shortId(i.id)}`, (r) => operate(i, 'retry', r)),
    }, 'Retry hook');
    row.append(retry);
    // Applicable only when the last entry of the audit trail records the hook's failure.
    api('/api/instances/' + enc(i.id) + '/history').then((d) => {
      const last = (d.history || []).at(-1);
      if (last && String(last.note || '').split('; ').some((n) => n.startsWith('onEntry hook ' + onEntry + ':'))) retry.hidden = false;
    }).catch(() => {});
  }
  box.append(row, confirmRow);
  if (ro) box.append(h('p', { class: 'muted role-note', id: 'op-role-note' }, `Your role (${S.session.role}) may read only: operator actions are disabled.`));
  return box;
}

async function operate(inst, action, reason) {
  const label = action === 'terminate' ? 'Terminate' : 'Retry hook';
  for (const b of document.querySelectorAll('#op-actions button')) b.disabled = true;
  try {
    const r = await api('/api/components/' + enc(inst.componentName) + '/instances/' + enc(inst.id) + '/' + action, { method: 'POST', body: reason.trim() ? { reason: reason.trim() } : {} });
    S.lastResult = { instanceId: inst.id, ok: true, text: action === 'terminate' ? `Terminated in ${r.newState}` : `Hook retried in ${r.newState}` };
    if (r.instance) S.instance = { ...S.instance, ...r.instance };
  } catch (e) {
    S.lastResult = { instanceId: inst.id, ok: false, text: `${label} refused (${e.status}): ${e.message}` };
  }
  await Promise.all([loadSelected(), loadInstances()]);
  renderAll();
}

export async function fire(inst, event, payloadText, fields = {}) {
  let payload;
  if (payloadText && payloadText.trim()) {
    try { payload = JSON.parse(payloadText); } catch (e) {
      S.lastResult = { instanceId: inst.id, ok: false, text: 'Payload is not valid JSON: ' + e.message };
      renderDetail();
      return;
    }
  }
  if (Object.keys(fields).length) payload = { ...fields, ...(payload && typeof payload === 'object' ? payload : {}) };
  for (const b of document.querySelectorAll('#quick-actions button')) b.disabled = true;
  try {
    const r = await api('/api/instances/' + enc(inst.id) + '/trigger', { method: 'POST', body: payload === undefined ? { event } : { event, payload } });
    S.lastResult = { instanceId: inst.id, ok: true, text: `Applied ${event}: ${r.previousState} → ${r.newState}`, newState: r.newState };
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
