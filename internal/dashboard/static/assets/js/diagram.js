// Machine cards: state diagrams (mermaid, strict security level; the SVG is parsed as XML and
// imported as nodes) and counts per state.

import { api, enc } from './api.js';
import { navigate } from './main.js';
import { S, countOf, def, machineDef } from './state.js';
import { $, clear, fmtNum, h, stringify } from './util.js';

export function renderMachines() {
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
      const open = () => { if (S.machine !== m.name) navigate({ machine: m.name, instance: '' }); };
      box.append(h('article', { class: 'panel machine-card', dataset: { machine: m.name }, 'aria-label': 'Machine ' + m.name },
        h('div', { class: 'panel-head' },
          h('h2', {}, h('button', { type: 'button', class: 'card-title', onclick: open, title: 'Show the instances of ' + m.name }, m.name)),
          m.name === def().entryMachine ? h('span', { class: 'badge entry' }, 'entry') : null,
          h('span', { class: 'badge kind' }, `${m.states?.length || 0} states`)),
        h('div', { class: 'diagram', onclick: open }, h('span', { class: 'muted' }, 'Loading diagram…')),
        h('div', { class: 'counts', role: 'list', 'aria-label': 'Instances per state of ' + m.name })));
    }
    const warnings = def()?.warnings || [];
    if (warnings.length && box.firstElementChild) {
      box.firstElementChild.append(h('div', { class: 'warnings' }, ...warnings.map((w) => h('div', {}, 'Warning: ', typeof w === 'string' ? w : stringify(w)))));
    }
  }
  for (const card of box.querySelectorAll('.machine-card')) {
    const m = card.dataset.machine;
    card.classList.toggle('sel', m === S.machine);
    const title = card.querySelector('.card-title');
    if (m === S.machine) title.setAttribute('aria-current', 'true'); else title.removeAttribute('aria-current');
    const cur = currentOf(m);
    renderCounts(card.querySelector('.counts'), m, cur);
    renderDiagram(card.querySelector('.diagram'), m, cur);
  }
}

function currentOf(machine) { return S.instance && S.instance.machineName === machine ? S.instance.currentState : ''; }

// renderCountsOnly redraws the count chips (at most once a frame while events arrive).
export function renderCountsOnly() {
  for (const card of document.querySelectorAll('#machines .machine-card')) {
    renderCounts(card.querySelector('.counts'), card.dataset.machine, currentOf(card.dataset.machine));
  }
}

// renderCounts writes one chip per state with its exact count (all statuses: final and error
// states hold the completed instances), from the server's counts moved by each live event.
export function renderCounts(box, machine, cur) {
  const next = new Set((machineDef(machine)?.transitions || []).filter((t) => cur && t.from === cur && t.to !== cur).map((t) => t.to));
  const states = machineDef(machine)?.states || [];
  if (box.children.length !== states.length) {
    clear(box);
    for (const s of states) box.append(h('span', { role: 'listitem', dataset: { state: s.name } }, h('span', { class: 'arrow', 'aria-hidden': 'true' }), h('span', { class: 'name' }, s.name), h('b', {})));
  }
  states.forEach((s, i) => {
    const chip = box.children[i];
    const n = countOf(machine, s.name, 'all');
    chip.className = `count ${s.type || ''} ${s.name === cur ? 'cur' : ''} ${next.has(s.name) ? 'next' : ''}`;
    chip.title = `${fmtNum(n)} instance(s) in ${s.name}` + (next.has(s.name) ? ' · reachable next' : '') + (S.countsExact ? '' : ' (live instances only)');
    chip.querySelector('.arrow').textContent = next.has(s.name) ? '→ ' : '';
    const b = chip.querySelector('b');
    const txt = fmtNum(n);
    if (b.textContent !== txt) b.textContent = txt;
  });
}

export let diagramSeq = 0;
export async function renderDiagram(box, machine, cur) {
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
export async function drawMermaid(box, text, still = () => true) {
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
