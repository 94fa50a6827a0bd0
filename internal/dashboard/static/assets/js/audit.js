// The audit trail of an instance (timeline, export) and the sequence diagram of its correlation.

import { api, enc } from './api.js';
import { drawMermaid } from './diagram.js';
import { S } from './state.js';
import { $, clear, download, fmtDateTime, h, json, stringify } from './util.js';

// ---------- audit trail ----------

export async function renderAudit() {
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
      h('div', { class: 't-meta' }, fmtDateTime(e.event?.timestamp || e.persistedAt), ' · actor ', e.actor || '—', e.source ? ' · via ' + e.source : '',
        e.traceId ? h('span', { class: 't-trace', title: 'OpenTelemetry trace id: search it in your tracing backend' }, ' · trace ', h('code', {}, e.traceId)) : null),
      e.reason ? h('div', { class: 't-reason' }, 'Reason: ', h('q', {}, e.reason)) : null,
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

export function toCSV(hist) {
  const q = (v) => '"' + String(v ?? '').replaceAll('"', '""') + '"';
  const rows = [['time', 'event', 'from', 'to', 'actor', 'reason', 'sourceComponent', 'runtime', 'traceId', 'payload'].join(',')];
  for (const e of hist) rows.push([new Date(e.event?.timestamp || e.persistedAt).toISOString(), e.event?.type, e.stateBefore, e.stateAfter, e.actor, e.reason, e.sourceComponentName, e.runtime, e.traceId, stringify(e.event?.payload ?? {})].map(q).join(','));
  return rows.join('\n');
}


export function setTab(tab) {
  S.tab = tab;
  for (const b of document.querySelectorAll('.tab')) {
    const on = b.dataset.tab === tab;
    b.classList.toggle('on', on);
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
  }
  $('#instance-detail').hidden = tab !== 'detail';
  $('#audit').hidden = tab !== 'audit';
  if (tab === 'audit') renderAudit();
}
