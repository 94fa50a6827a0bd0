// The create-instance modal, its form generated from the machine's contextSchema.

import { api, enc } from './api.js';
import { navigate } from './main.js';
import { S, def, machineDef } from './state.js';
import { $, clear, h, stringify } from './util.js';

// ---------- create modal ----------

export function openCreate() {
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

export function buildFields() {
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

export function readFields() {
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

export function showFieldErrors(errs) {
  for (const f of $('#create-fields').querySelectorAll('.field')) f.classList.remove('invalid');
  for (const s of $('#create-fields').querySelectorAll('.field-error')) s.textContent = '';
  let unplaced = [];
  for (const [name, msg] of Object.entries(errs)) {
    const slot = [...$('#create-fields').querySelectorAll('.field-error')].find((s) => s.dataset.errorFor === name);
    if (slot) { slot.textContent = msg; slot.parentElement.classList.add('invalid'); } else unplaced.push(`${name}: ${msg}`);
  }
  return unplaced;
}

export async function submitCreate(ev) {
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
