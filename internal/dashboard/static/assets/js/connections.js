// The connections map: every machine of every component as a graph — inter-machine
// transitions solid, cross-component transitions and cascades dotted, labelled with their
// events — from which a click (or Enter) opens a machine.

import { api, enc } from './api.js';
import { drawMermaid } from './diagram.js';
import { S, hashFor } from './state.js';
import { $, clear, h } from './util.js';

const nodeId = (comp, machine) => 'n_' + (comp + '__' + machine).replace(/[^A-Za-z0-9_]/g, (c) => '_' + c.charCodeAt(0).toString(16));
const txt = (s) => String(s).replace(/["#;:<>{}|]/g, (c) => '#' + c.charCodeAt(0) + ';');

// connectionsMermaid draws the components' machines and their links as a mermaid flowchart.
export function connectionsMermaid(defs) {
  const L = ['flowchart LR'];
  const nodes = new Map(); // mermaid id -> {comp, machine}
  const edges = new Map(); // "a|b|style" -> labels
  for (const d of defs) {
    L.push(`  subgraph c_${nodeId(d.name, '')}["${txt(d.name)}"]`);
    for (const m of d.stateMachines || []) {
      const id = nodeId(d.name, m.name);
      nodes.set(id, { comp: d.name, machine: m.name });
      L.push(`    ${id}["${txt(m.name)}${m.name === d.entryMachine ? ' (entry)' : ''}"]`);
    }
    L.push('  end');
  }
  const link = (from, to, label, dotted) => {
    const k = from + '|' + to + '|' + (dotted ? 'd' : 's');
    if (!edges.has(k)) edges.set(k, []);
    if (!edges.get(k).includes(label)) edges.get(k).push(label);
  };
  const known = new Set(defs.map((d) => d.name));
  for (const d of defs) {
    for (const m of d.stateMachines || []) {
      const from = nodeId(d.name, m.name);
      for (const t of m.transitions || []) {
        if (t.targetComponent) {
          const to = t.targetMachine ? nodeId(t.targetComponent, t.targetMachine) : 'x_' + nodeId(t.targetComponent, '');
          if (!known.has(t.targetComponent) && !nodes.has(to)) { nodes.set(to, { comp: t.targetComponent, machine: t.targetMachine || '' }); L.push(`  ${to}["${txt(t.targetComponent + (t.targetMachine ? ' / ' + t.targetMachine : ''))} (not loaded)"]`); }
          link(from, to, t.targetEvent || t.event, true);
        } else if (t.targetMachine) link(from, nodeId(d.name, t.targetMachine), t.event, false);
      }
      for (const s of m.states || []) {
        for (const r of s.cascadingRules || []) {
          const comp = r.targetComponent || d.name;
          if (!r.targetMachine) continue;
          const to = nodeId(comp, r.targetMachine);
          if (!nodes.has(to)) { nodes.set(to, { comp, machine: r.targetMachine }); L.push(`  ${to}["${txt(comp + ' / ' + r.targetMachine)} (not loaded)"]`); }
          link(from, to, r.event + ' (cascade)', comp !== d.name);
        }
      }
    }
  }
  for (const [k, labels] of edges) {
    const [a, b, style] = k.split('|');
    L.push(`  ${a} ${style === 'd' ? '-.->' : '-->'}|"${txt(labels.join(' / '))}"| ${b}`);
  }
  return { text: L.join('\n') + '\n', nodes };
}

export async function renderConnections() {
  const box = $('#connections-map');
  if (!box) return;
  const missing = S.components.filter((c) => !S.defs.has(c.name));
  try {
    for (const c of missing) S.defs.set(c.name, await api('/api/components/' + enc(c.name)));
  } catch (e) { clear(box).append(h('p', { class: 'muted' }, 'Connections unavailable: ' + e.message)); return; }
  const defs = S.components.map((c) => S.defs.get(c.name)).filter(Boolean);
  const key = defs.map((d) => d.name + ':' + (d.version || '')).join(',') + '|' + document.documentElement.dataset.theme;
  if (box.dataset.rendered === key) return;
  const { text, nodes } = connectionsMermaid(defs);
  if (!(await drawMermaid(box, text, () => box.isConnected))) return;
  box.dataset.rendered = key;
  const svg = box.querySelector('svg');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'Connections between machines and components');
  for (const g of svg.querySelectorAll('g.node')) {
    const id = [...nodes.keys()].find((k) => new RegExp('(^|-)flowchart-' + k + '-\\d+$').test(g.id) || g.id === k);
    const n = id && nodes.get(id);
    if (!n || !S.components.some((c) => c.name === n.comp)) continue;
    g.classList.add('conn-node');
    g.dataset.component = n.comp;
    g.dataset.machine = n.machine;
    const open = () => { location.hash = hashFor({ component: n.comp, machine: n.machine, status: 'active', state: '', q: '' }); };
    g.addEventListener('click', open);
    g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); } });
  }
  // keyboard: the machines are listed as links too (SVG nodes are not focusable everywhere)
  const list = h('p', { class: 'conn-links' }, 'Open: ');
  for (const d of defs) for (const m of d.stateMachines || []) {
    list.append(h('a', { href: hashFor({ component: d.name, machine: m.name, status: 'active', state: '', q: '' }), dataset: { component: d.name, machine: m.name } }, d.name + ' / ' + m.name), ' ');
  }
  box.append(list);
}
