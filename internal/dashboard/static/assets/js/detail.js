// The instance detail: data, parent/children, pending timeouts, Quick Actions.

import { api, enc } from './api.js';
import { loadInstances, loadSelected, navigate, renderAll } from './main.js';
import { S, hashFor, machineDef } from './state.js';
import { $, clear, fmtDateTime, fmtDuration, h, json, shortId, stringify } from './util.js';

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

export function metaItem(label, value) { return h('div', {}, h('dt', {}, label), h('dd', {}, value)); }

export function instanceLink(ref) {
  const id = typeof ref === 'string' ? ref : ref.id || ref.instanceId;
  const m = typeof ref === 'object' ? ref.machineName : '';
  const comp = (typeof ref === 'object' && ref.componentName) || S.component;
  return h('button', { type: 'button', class: 'link', title: id, onclick: () => {
    if (comp !== S.component) location.hash = hashFor({ component: comp, machine: m, instance: id });
    else navigate({ machine: m || S.machine, instance: id });
  } }, (m ? m + ' ' : '') + '…' + shortId(id));
}

export function tickTimeouts() {
  for (const li of document.querySelectorAll('.timeouts li')) {
    const due = Number(li.dataset.due), total = Number(li.dataset.total);
    const left = due - Date.now();
    li.querySelector('.countdown').textContent = fmtDuration(left);
    if (total > 0) li.querySelector('.progress > span').style.width = Math.min(100, Math.max(0, 100 * (1 - left / total))).toFixed(1) + '%';
  }
}

export async function fire(inst, event, payloadText) {
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
