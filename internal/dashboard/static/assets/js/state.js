// The page's state and the deep-link routing (#/component/C/machine/M/instance/ID).

import { enc } from './api.js';

// ---------- state ----------

export const S = {
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

export function def() { return S.defs.get(S.component); }
export function machineDef(name) { return def()?.stateMachines?.find((m) => m.name === name); }
export function stateType(machine, state) {
  return machineDef(machine)?.states?.find((s) => s.name === state)?.type || 'regular';
}

// ---------- routing: #/component/C/machine/M/instance/ID ----------

export function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return ''; }
  });
  const r = {};
  for (let i = 0; i + 1 < parts.length; i += 2) r[parts[i]] = parts[i + 1];
  return { component: r.component || '', machine: r.machine || '', instance: r.instance || '' };
}

export function hashFor({ component, machine, instance }) {
  let s = '#/component/' + enc(component);
  if (machine) s += '/machine/' + enc(machine);
  if (instance) s += '/instance/' + enc(instance);
  return s;
}
