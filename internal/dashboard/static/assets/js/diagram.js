// Machine cards: state diagrams (mermaid, strict security level; the SVG is parsed as XML and
// imported as nodes) and counts per state.

import { navigate } from './main.js';
import { S, countOf, def, machineDef } from './state.js';
import { $, clear, fmtDuration, fmtMs, fmtNum, h, stringify } from './util.js';

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
      const wide = (m.states?.length || 0) > 4 || (m.transitions?.length || 0) > 6;
      box.append(h('article', { class: 'panel machine-card' + (wide ? ' wide' : ''), dataset: { machine: m.name }, 'aria-label': 'Machine ' + m.name },
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

let diagramSeq = 0;

// renderDiagram draws a machine from its definition (no round trip): short edge labels (the
// event, "· 7d" for a timeout, "· auto", "↪ Machine", "⇢ Component"), guards and matching
// rules in each label's tooltip, self-loops listed in their state (mermaid does not draw
// them), the selected instance's state highlighted with its next timer's countdown.
export async function renderDiagram(box, machine, cur) {
  const key = S.component + '|' + machine + '|' + cur;
  const m = machineDef(machine);
  const dir = box.clientWidth && box.clientWidth < 520 ? 'TB' : 'LR'; // a phone: top to bottom
  if (S.diagrams.get(machine) === key + dir || !m) return;
  S.diagrams.set(machine, key + dir);
  const { text, tips, ids } = machineMermaid(m, cur, dir);
  box.dataset.currentState = cur;
  if (await drawMermaid(box, text, () => S.diagrams.get(machine) === key + dir)) {
    box.dataset.rendered = key;
    decorate(box, tips, ids, cur);
  }
}

// mermaidText makes text safe in a mermaid label: line breaks become spaces and the characters
// mermaid gives a meaning to become entity codes.
function mermaidText(s) {
  return String(s).replace(/[\n\r\t]/g, ' ').replace(/[#;:"<>{}]/g, (c) => '#' + c.charCodeAt(0) + ';');
}

export function edgeLabel(t) {
  let l = t.event;
  if (t.type === 'timeout') l += ' · ' + fmtMs(t.timeoutMs);
  else if (t.type === 'auto') l += ' · auto' + (t.timeoutMs > 0 ? ' ' + fmtMs(t.timeoutMs) : '');
  if (t.type === 'inter_machine' || (t.targetMachine && !t.targetComponent)) l += ' ↪ ' + (t.targetMachine || '');
  if (t.type === 'cross_component' || t.targetComponent) l += ' ⇢ ' + (t.targetComponent || '');
  return l;
}

function edgeTip(t) {
  const parts = [`${t.event}: ${t.from} → ${t.to}`, 'type ' + (t.type || 'regular')];
  if (t.timeoutMs) parts.push((t.type === 'auto' ? 'after ' : 'timeout ') + fmtMs(t.timeoutMs));
  for (const g of t.guards || []) parts.push('guard: ' + g.expression);
  for (const r of t.matchingRules || []) parts.push(`matching rule: instance.${r.instanceProperty} ${r.operator || '==='} event.${r.eventProperty}`);
  if (t.targetMachine) parts.push('target machine: ' + t.targetMachine);
  if (t.targetComponent) parts.push('target component: ' + t.targetComponent);
  return parts.join('\n');
}

function reachableFrom(m, start) {
  const seen = new Set([start]);
  const todo = [start];
  while (todo.length) {
    const s = todo.pop();
    for (const t of m.transitions || []) if (t.from === s && !seen.has(t.to)) { seen.add(t.to); todo.push(t.to); }
  }
  return seen;
}

export function machineMermaid(m, cur, dir = 'LR') {
  const ids = new Map((m.states || []).map((s, i) => [s.name, 's' + i]));
  const L = ['stateDiagram-v2', '  direction ' + dir];
  for (const s of m.states || []) L.push(`  state "${mermaidText(s.name)}" as ${ids.get(s.name)}`);
  if (ids.has(m.initialState)) L.push(`  [*] --> ${ids.get(m.initialState)}`);
  const tips = new Map(); // label -> tooltip
  const loops = new Map(); // state -> labels
  const edges = new Map(); // "from|to" -> {labels, tips}: parallel transitions share one edge (their labels would overlap)
  for (const t of m.transitions || []) {
    if (!ids.has(t.from) || !ids.has(t.to)) continue;
    const label = edgeLabel(t);
    if (t.from === t.to) {
      if (!loops.has(t.from)) loops.set(t.from, []);
      if (!loops.get(t.from).includes(label)) loops.get(t.from).push(label);
      continue;
    }
    const k = t.from + '|' + t.to;
    if (!edges.has(k)) edges.set(k, { from: t.from, to: t.to, labels: [], tips: [] });
    const e = edges.get(k);
    if (!e.labels.includes(label)) e.labels.push(label);
    e.tips.push(edgeTip(t));
  }
  for (const e of edges.values()) {
    const label = e.labels.join(' / ');
    tips.set(label, (tips.has(label) ? tips.get(label) + '\n\n' : '') + e.tips.join('\n\n'));
    L.push(`  ${ids.get(e.from)} --> ${ids.get(e.to)} : ${mermaidText(label)}`);
  }
  for (const [state, labels] of loops) for (const l of labels) L.push(`  ${ids.get(state)} : ↻ ${mermaidText(l)}`);
  for (const s of m.states || []) if (s.type === 'final' || s.type === 'error') L.push(`  ${ids.get(s.name)} --> [*]`);
  // colours with a contrast of at least 4.5:1 for their text (axe-core)
  const reach = reachableFrom(m, cur && ids.has(cur) ? cur : m.initialState);
  const classes = { current: [], unreachable: [], entry: [], error: [], final: [] };
  for (const s of m.states || []) {
    const id = ids.get(s.name);
    if (cur && s.name === cur) classes.current.push(id);
    else if (!reach.has(s.name)) classes.unreachable.push(id);
    else if (s.type === 'entry' || s.name === m.initialState) classes.entry.push(id);
    else if (s.type === 'error') classes.error.push(id);
    else if (s.type === 'final') classes.final.push(id);
  }
  const styles = {
    current: 'fill:#1d4ed8,stroke:#1e3a8a,stroke-width:4px,color:#fff',
    unreachable: 'fill:#f3f4f6,stroke:#9ca3af,stroke-width:1px,color:#4b5563,stroke-dasharray:3',
    entry: 'fill:#fef3c7,stroke:#92400e,stroke-width:3px,color:#111827',
    error: 'fill:#b91c1c,stroke:#7f1d1d,stroke-width:3px,color:#fff',
    final: 'fill:#047857,stroke:#064e3b,stroke-width:3px,color:#fff',
  };
  for (const [c, members] of Object.entries(classes)) {
    if (!members.length) continue;
    L.push(`  classDef ${c}State ${styles[c]}`);
    L.push(`  class ${members.join(',')} ${c}State`);
  }
  return { text: L.join('\n') + '\n', tips, ids };
}

// decorate adds the tooltips of the edge labels and the countdown badge of the current state.
function decorate(box, tips, ids, cur) {
  const svg = box.querySelector('svg');
  if (!svg) return;
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'State diagram' + (cur ? ', current state ' + cur : ''));
  for (const g of svg.querySelectorAll('.edgeLabel')) {
    const text = g.textContent.trim();
    if (!text || !tips.has(text)) continue;
    const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
    title.textContent = tips.get(text);
    g.prepend(title);
    g.classList.add('has-tip');
  }
  if (!cur || !ids.has(cur)) return;
  const re = new RegExp('state-' + ids.get(cur) + '-\\d+$');
  const node = [...svg.querySelectorAll('g.node, g[id*="state-"]')].find((n) => re.test(n.id));
  if (!node) return;
  // placed in the SVG's own coordinates, outside the node (whose class styles its children)
  const bb = node.getBBox();
  const toRoot = svg.getCTM().inverse().multiply(node.getCTM());
  const pt = new DOMPoint(bb.x + bb.width / 2, bb.y + bb.height + 14).matrixTransform(toRoot);
  const ns = 'http://www.w3.org/2000/svg';
  const g = document.createElementNS(ns, 'g');
  g.setAttribute('class', 'state-countdown');
  g.setAttribute('transform', `translate(${pt.x}, ${pt.y})`);
  const rect = document.createElementNS(ns, 'rect');
  rect.setAttribute('rx', '8'); rect.setAttribute('height', '16'); rect.setAttribute('y', '-11');
  const t = document.createElementNS(ns, 'text');
  t.setAttribute('text-anchor', 'middle');
  t.setAttribute('class', 'countdown-text');
  g.append(rect, t);
  svg.append(g);
  tickDiagramCountdown();
}

// tickDiagramCountdown writes the time left to the selected instance's next timer on its state.
export function tickDiagramCountdown() {
  const next = (S.instance?.status === 'active' ? S.instance.pendingTimeouts || [] : []).reduce((a, t) => (!a || t.dueAt < a.dueAt ? t : a), null);
  for (const g of document.querySelectorAll('#machines .state-countdown')) {
    const t = g.querySelector('text');
    g.style.display = next ? '' : 'none';
    if (!next) continue;
    const txt = next.event + ' in ' + fmtDuration(next.dueAt - Date.now());
    if (t.textContent !== txt) {
      t.textContent = txt;
      const w = txt.length * 6.6 + 12;
      const r = g.querySelector('rect');
      r.setAttribute('x', String(-w / 2)); r.setAttribute('width', String(w));
    }
  }
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
