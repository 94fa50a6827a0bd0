// The audit trail of an instance (timeline, export) and the sequence diagram of its correlation.

import { api, apiBlob, enc } from './api.js';
import { drawMermaid } from './diagram.js';
import { S } from './state.js';
import { $, clear, download, fmtDateTime, fmtNum, h, json } from './util.js';

// ---------- audit trail ----------

// AUDIT_PAGE is how many events the audit trail reads at a time: an instance with 100,000
// events shows its first page at once, and the rest on demand ("Load more events").
const AUDIT_PAGE = 100;

export async function renderAudit() {
  const box = $('#audit');
  if (!S.instance) { clear(box).append(h('p', { class: 'empty' }, 'Select an instance to see its audit trail.')); return; }
  const id = S.instance.id;
  const total = (S.instance.version ?? 0) + 1;
  let page;
  try { page = await api(`/api/instances/${enc(id)}/history?limit=${AUDIT_PAGE}`); } catch (e) {
    clear(box).append(h('p', { class: 'empty' }, 'Audit trail unavailable: ' + e.message));
    return;
  }
  if (S.instance?.id !== id) return;
  clear(box);
  let shown = 0;
  let next = page.nextCursor || '';
  const count = h('span', { class: 'muted', id: 'audit-count', 'aria-live': 'polite' });
  // The exports are the server's: it streams every page, the browser only saves the file.
  const exportAs = (kind) => async (ev) => {
    const btn = ev.currentTarget;
    btn.disabled = true;
    try {
      download(`history-${id}.${kind}`, kind === 'csv' ? 'text/csv' : 'application/json', await apiBlob(`/api/instances/${enc(id)}/history/export?format=${kind}`));
    } catch (e) { count.textContent = 'Export failed: ' + e.message; }
    btn.disabled = false;
  };
  box.append(h('div', { class: 'toolbar' }, count,
    h('span', { class: 'spacer' }),
    h('button', { type: 'button', class: 'btn small', id: 'audit-export-json', title: 'every event, streamed by the server', onclick: exportAs('json') }, 'Export JSON'),
    h('button', { type: 'button', class: 'btn small', id: 'audit-export-csv', title: 'every event, streamed by the server', onclick: exportAs('csv') }, 'Export CSV')));
  const ol = h('ol', { class: 'timeline', id: 'audit-trail' });
  const more = h('button', { type: 'button', class: 'btn small', id: 'audit-more' }, 'Load more events');
  const append = (hist) => {
    for (const e of hist) ol.append(auditItem(e));
    shown += hist.length;
    count.textContent = next ? `${fmtNum(shown)} of ${fmtNum(Math.max(total, shown))} events, oldest first` : `${fmtNum(shown)} event(s), oldest first`;
    more.hidden = !next;
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      const p = await api(`/api/instances/${enc(id)}/history?limit=${AUDIT_PAGE}&cursor=${enc(next)}`);
      next = p.nextCursor || '';
      append(p.history || []);
    } catch (e) { count.textContent = 'More events unavailable: ' + e.message; }
    more.disabled = false;
  });
  append(page.history || []);
  box.append(ol, more);
  const seqBox = h('div', { class: 'diagram sequence', id: 'sequence' }, h('span', { class: 'muted' }, 'Loading…'));
  box.append(h('h3', {}, 'Sequence diagram of the correlation'), seqBox);
  try {
    const seq = await api('/api/instances/' + enc(id) + '/sequence?format=mermaid');
    if (seq?.diagram) await drawMermaid(seqBox, seq.diagram, () => seqBox.isConnected);
    else clear(seqBox).append(h('span', { class: 'muted' }, 'No sequence.'));
  } catch (e) { clear(seqBox).append(h('span', { class: 'muted' }, 'Sequence unavailable: ' + e.message)); }
}

// auditItem is one event of the audit trail.
function auditItem(e) {
  const payload = e.event?.payload;
  return h('li', { dataset: { event: e.event?.type || '' } },
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
    h('details', { class: 'json' }, h('summary', {}, 'data snapshot'), h('pre', { class: 'json-box' }, json(e.publicMemberSnapshot))));
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
