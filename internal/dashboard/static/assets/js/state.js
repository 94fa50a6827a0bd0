// The page's state and the deep-link routing:
// #/component/C/machine/M/instance/ID?status=error&state=S&q=text (filters survive a reload).

import { enc } from './api.js';

// ---------- state ----------

export const S = {
  components: [],        // from GET /api/components
  defs: new Map(),       // component name -> definition (GET /api/components/:c)
  component: '',
  machine: '',
  instanceId: '',
  instance: null,        // selected instance (GET /api/instances/:id)
  status: 'active',      // list filter: active, completed, error, all
  stateFilter: '',
  q: '',                 // search box: text, and key:value business keys
  list: [],              // the loaded pages of the filtered list
  nextCursor: '',        // of the next page ('' at the end)
  pageSize: 100,         // how many the list shows (grows with "load more")
  counts: new Map(),     // "machine|state" -> {active, completed, error}: current component
  totals: new Map(),     // component -> {active, completed, error, all}
  countsExact: true,
  picked: new Map(),     // id -> instance: picked for a bulk action
  session: { role: 'operator', actor: 'anonymous', auth: false, canWrite: true },
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

export const STATUSES = ['active', 'completed', 'error', 'all'];

// ---------- routing ----------

export function parseHash() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/').filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return ''; }
  });
  const r = {};
  for (let i = 0; i + 1 < parts.length; i += 2) r[parts[i]] = parts[i + 1];
  const f = new URLSearchParams(query);
  const status = f.get('status');
  return {
    component: r.component || '', machine: r.machine || '', instance: r.instance || '',
    status: STATUSES.includes(status) ? status : 'active', state: f.get('state') || '', q: f.get('q') || '',
  };
}

// hashFor is the deep link of a view; the list filters (status, state, q) come from S unless given.
export function hashFor({ component, machine, instance, status = S.status, state = S.stateFilter, q = S.q }) {
  let s = '#/component/' + enc(component);
  if (machine) s += '/machine/' + enc(machine);
  if (instance) s += '/instance/' + enc(instance);
  const f = new URLSearchParams();
  if (status && status !== 'active') f.set('status', status);
  if (state) f.set('state', state);
  if (q) f.set('q', q);
  const qs = f.toString();
  return qs ? s + '?' + qs : s;
}

// countOf is the number of instances of the current component in a state (of a machine, or of
// every machine when machine is empty) with a status ('all' for every status).
export function countOf(machine, state, status = 'all') {
  let n = 0;
  for (const [k, c] of S.counts) {
    const [m, st] = k.split('|');
    if ((machine && m !== machine) || (state && st !== state)) continue;
    n += status === 'all' ? c.active + c.completed + c.error + (c.terminated || 0) : c[status] || 0;
  }
  return n;
}
