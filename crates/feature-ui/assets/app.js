// The web UI of the flag server: plain ES module, no build step. Every call goes to the
// server's own admin API through /ui/api/v1 (the session's token is added by the server);
// changes carry the session's CSRF token in the X-CSRF-Token header.

const OPERATORS = [
  'eq', 'neq', 'in', 'notIn', 'contains', 'startsWith', 'endsWith', 'matches',
  'gt', 'gte', 'lt', 'lte', 'semver', 'semVerEqual', 'semVerLessThan', 'semVerGreaterThan',
  'before', 'after', 'segmentMatch',
];
const NUMERIC = new Set(['gt', 'gte', 'lt', 'lte']);
const POLL_MS = 1000;

let session = null;
let view = { name: null, dirty: false, poll: null };

// ---------- small helpers ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
function id(prefix) { uid += 1; return `${prefix}-${uid}`; }

function field(labelText, input, path) {
  if (!input.id) input.id = id('f');
  const wrap = h('div', { class: 'field', 'data-path': path || null },
    h('label', { for: input.id }, labelText), input);
  return wrap;
}

function announce(text) {
  const live = document.getElementById('live');
  live.textContent = '';
  setTimeout(() => { live.textContent = text; }, 30);
}

function canWrite() { return session && (session.scope === 'write' || session.scope === 'admin'); }

function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

async function api(method, path, body, headers = {}) {
  const opts = { method, headers: { ...headers }, credentials: 'same-origin' };
  if (method !== 'GET' && method !== 'HEAD') opts.headers['x-csrf-token'] = session ? session.csrf : '';
  if (body !== undefined) {
    opts.headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(`/ui/api/v1${path}`, opts);
  let json = null;
  const text = await resp.text();
  try { json = text ? JSON.parse(text) : null; } catch { json = { detail: text }; }
  if (resp.status === 401) { session = null; render(); }
  return { status: resp.status, ok: resp.ok, etag: resp.headers.get('etag'), json };
}

function problemText(r) {
  const j = r.json || {};
  return `${j.title || 'Error'} (${r.status}): ${j.detail || ''}`;
}

function setMain(...children) {
  const main = document.getElementById('main');
  main.replaceChildren(...children);
}

function stripMeta(flag) {
  const f = structuredClone(flag);
  delete f.version; delete f.updatedAt; delete f.createdAt; delete f.key;
  return f;
}

function stable(v) {
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, stable(v[k])]));
  }
  return v;
}
function same(a, b) { return JSON.stringify(stable(a)) === JSON.stringify(stable(b)); }
function pretty(v) { return v === undefined ? '' : JSON.stringify(stable(v), null, 2); }

// ---------- session, navigation ----------

async function loadSession() {
  const r = await fetch('/ui/session', { credentials: 'same-origin' });
  session = r.ok ? await r.json() : null;
}

function renderChrome() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!session) { nav.replaceChildren(); who.replaceChildren(); return; }
  const here = location.hash || '#/flags';
  const link = (href, text) => h('li', {}, h('a', {
    href, 'aria-current': (here === href || (href === '#/flags' && here.startsWith('#/flags'))) ? 'page' : null,
  }, text));
  const reads = session.scope !== 'evaluate';
  nav.replaceChildren(h('ul', {},
    reads ? link('#/flags', 'Flags') : null,
    canWrite() ? link('#/new', 'New flag') : null,
    reads ? link('#/segments', 'Segments') : null,
    link('#/debugger', 'Debugger')));
  who.replaceChildren(
    h('span', {}, `Signed in as ${session.name} (${session.scope})`),
    h('button', { class: 'secondary', type: 'button', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  await fetch('/ui/session', { method: 'DELETE', headers: { 'x-csrf-token': session.csrf } });
  session = null;
  location.hash = '#/flags';
  render();
}

function renderSignIn() {
  const token = h('input', { type: 'password', id: 'token', autocomplete: 'off', required: true });
  const err = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const r = await fetch('/ui/session', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: token.value }),
      });
      if (!r.ok) {
        const j = await r.json().catch(() => ({}));
        err.textContent = `Sign-in refused: ${j.detail || r.status}`;
        return;
      }
      session = await r.json();
      token.value = '';
      render();
    },
  },
  field('Server token', token),
  h('p', { class: 'muted' }, 'A token of this server (featurectl token create). It stays on the server after sign-in.'),
  h('button', { type: 'submit' }, 'Sign in'), err);
  setMain(h('h1', {}, 'Sign in'), form);
}

function stopPoll() { if (view.poll) clearInterval(view.poll); view.poll = null; }

async function render() {
  stopPoll();
  view = { name: null, dirty: false, poll: null };
  if (session === null) await loadSession();
  renderChrome();
  if (!session) { renderSignIn(); return; }
  const hash = decodeURIComponent(location.hash.replace(/^#/, '')) || '/flags';
  const parts = hash.split('/').filter(Boolean);
  // an `evaluate` token can only evaluate: the debugger is all it is shown
  if (session.scope === 'evaluate' && parts[0] !== 'debugger') return renderDebugger();
  if (parts[0] === 'flags' && parts.length === 1) return renderList();
  if (parts[0] === 'flags' && parts[2] === 'history') return renderHistory(parts[1]);
  if (parts[0] === 'flags') return renderEditor(parts[1]);
  if (parts[0] === 'new') return renderNew();
  if (parts[0] === 'debugger') return renderDebugger(parts[1]);
  if (parts[0] === 'segments' && parts[1]) return renderSegment(parts[1]);
  if (parts[0] === 'segments') return renderSegments();
  return renderList();
}

// ---------- flags list ----------

async function allFlags() {
  let items = []; let cursor = null;
  do {
    const r = await api('GET', `/flags?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (!r.ok) throw new Error(problemText(r));
    items = items.concat(r.json.items);
    cursor = r.json.next;
  } while (cursor);
  return items;
}

const lastChange = new Map(); // key → {version, text}

async function lastChangeOf(flag) {
  const known = lastChange.get(flag.key);
  if (known && known.version === flag.version) return known.text;
  const r = await api('GET', `/flags/${encodeURIComponent(flag.key)}/history?limit=1`);
  const e = r.ok && r.json.items[0];
  const text = e ? `${e.actor}, ${when(e.at)}` : when(flag.updatedAt);
  lastChange.set(flag.key, { version: flag.version, text });
  return text;
}

function flagType(f) {
  if (f.type) return f.type;
  const v = (f.variants && f.variants[0]) ? f.variants[0].value : f.default;
  if (typeof v === 'boolean' || v === undefined) return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  return typeof v === 'string' ? 'string' : 'json';
}

function confirmDialog(question, yes) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-q' },
      h('p', { id: 'dlg-q' }, question),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'danger', onclick: () => { dlg.close(); resolve(true); } }, yes),
        h('button', { type: 'button', class: 'secondary', onclick: () => { dlg.close(); resolve(false); } }, 'Cancel')));
    dlg.addEventListener('cancel', () => resolve(false));
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  });
}

async function toggle(flag, input) {
  const on = input.checked;
  if (!on) {
    const sure = await confirmDialog(`Turn off ${flag.key}? Everyone gets its off variation.`, 'Turn off');
    if (!sure) { input.checked = true; input.focus(); return; }
  }
  // only the version shown is switched: a flag changed meanwhile answers 412
  const r = await api('POST', `/flags/${encodeURIComponent(flag.key)}/${on ? 'enable' : 'disable'}`, undefined,
    { 'if-match': `"${flag.version}"` });
  if (!r.ok) {
    input.checked = !on;
    announce(problemText(r));
    document.getElementById('list-error').textContent = problemText(r);
    return;
  }
  flag.enabled = on;
  if (r.json && r.json.version) flag.version = r.json.version;
  announce(`${flag.key} is ${on ? 'on' : 'off'}`);
  input.focus();
}

async function renderList() {
  view.name = 'list';
  const q = h('input', { type: 'text', id: 'search', placeholder: 'key or name' });
  const tag = h('select', { id: 'tag' }, h('option', { value: '' }, 'All'));
  const state = h('select', { id: 'state' },
    h('option', { value: '' }, 'All'), h('option', { value: 'on' }, 'On'), h('option', { value: 'off' }, 'Off'));
  const body = h('tbody');
  const err = h('p', { class: 'error', id: 'list-error', role: 'alert' });
  const count = h('p', { class: 'muted', id: 'count' });
  let flags = [];
  let shown = '';

  const draw = () => {
    const text = q.value.trim().toLowerCase();
    const rows = flags.filter((f) => (!text || f.key.toLowerCase().includes(text)
        || (f.name || '').toLowerCase().includes(text))
      && (!state.value || (state.value === 'on') === (f.enabled !== false))
      && (!tag.value || (f.tags || []).includes(tag.value)));
    const tags = [...new Set(flags.flatMap((f) => f.tags || []))].sort();
    if (tag.options.length !== tags.length + 1 || tags.some((t, i) => tag.options[i + 1].value !== t)) {
      const keep = tag.value;
      tag.replaceChildren(h('option', { value: '' }, 'All'), ...tags.map((t) => h('option', { value: t }, t)));
      tag.value = tags.includes(keep) ? keep : '';
    }
    const sig = JSON.stringify([text, state.value, tag.value, rows.map((f) => [f.key, f.version, f.enabled, f.tags])]);
    if (sig === shown) return;
    shown = sig;
    count.textContent = `${rows.length} of ${flags.length} flags`;
    // a redraw keeps the keyboard focus on the same flag's switch or link
    const focused = body.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = focused && focused.closest('tr') && focused.closest('tr').dataset.key;
    const focusRole = focused && (focused.getAttribute('role') === 'switch' ? 'input[role=switch]' : 'a');
    body.replaceChildren(...rows.map((f) => {
      const on = f.enabled !== false;
      const change = h('td', { 'data-label': 'Last change' }, '…');
      lastChangeOf(f).then((t) => { change.textContent = t; });
      const sw = canWrite()
        ? h('input', { type: 'checkbox', role: 'switch', class: 'switch', 'aria-label': f.key, checked: on, onchange: (e) => toggle(f, e.target) })
        : h('span', { class: on ? 'state-on' : 'state-off' }, on ? 'on' : 'off');
      return h('tr', { 'data-key': f.key },
        h('td', { 'data-label': 'Key' }, h('a', { href: `#/flags/${encodeURIComponent(f.key)}` }, f.key)),
        h('td', { 'data-label': 'Name' }, f.name || '', (f.tags || []).length ? h('div', { class: 'muted' }, `tags: ${f.tags.join(', ')}`) : null),
        h('td', { 'data-label': 'Type' }, flagType(f)),
        h('td', { 'data-label': 'On' }, sw),
        change);
    }));
    if (focusKey) {
      const again = body.querySelector(`tr[data-key="${CSS.escape(focusKey)}"] ${focusRole}`);
      if (again) again.focus();
    }
  };
  const load = async () => {
    try { flags = await allFlags(); err.textContent = ''; } catch (e) { err.textContent = e.message; }
    if (document.querySelector('dialog[open]')) return;
    draw();
  };
  q.addEventListener('input', draw);
  state.addEventListener('change', draw);
  tag.addEventListener('change', draw);
  setMain(h('h1', {}, 'Flags'),
    h('div', { class: 'toolbar', role: 'search' },
      field('Search flags', q), field('State', state), field('Tag', tag),
      canWrite() ? h('div', {}, h('a', { href: '#/new' }, 'New flag from a template')) : null),
    err, count,
    h('table', { class: 'flags' },
      h('thead', {}, h('tr', {}, ...['Key', 'Name', 'Type', 'On', 'Last change'].map((t) => h('th', { scope: 'col' }, t)))),
      body));
  await load();
  view.poll = setInterval(load, POLL_MS);
}

// ---------- templates ----------

function fromTemplate(kind, { key, name, description, tags, percent, n }) {
  const base = { name: name || undefined, description: description || undefined, tags: tags && tags.length ? tags : undefined, enabled: true };
  if (kind === 'kill') {
    return { ...base, type: 'bool', variants: [{ name: 'off', value: false }, { name: 'on', value: true }],
      fallthrough: { variation: 1 }, offVariation: 0 };
  }
  if (kind === 'rollout') {
    const w = Math.round(percent * 1000);
    return { ...base, type: 'bool', variants: [{ name: 'off', value: false }, { name: 'on', value: true }],
      fallthrough: { rollout: { bucketBy: 'key', variations: [{ variation: 0, weight: 100000 - w }, { variation: 1, weight: w }] } },
      offVariation: 0 };
  }
  const variants = Array.from({ length: n }, (_, i) => {
    const letter = String.fromCharCode(97 + i);
    return { name: i === 0 ? 'control' : `variant-${letter}`, value: i === 0 ? 'control' : `variant-${letter}` };
  });
  const each = Math.floor(100000 / n);
  const variations = variants.map((_, i) => ({ variation: i, weight: each + (i === 0 ? 100000 - each * n : 0) }));
  void key;
  return { ...base, type: 'string', variants, offVariation: 0,
    fallthrough: { rollout: { kind: 'experiment', bucketBy: 'key', variations } } };
}

function renderNew() {
  view.name = 'new';
  if (!canWrite()) { setMain(h('h1', {}, 'New flag'), h('p', {}, 'Your token cannot create flags.')); return; }
  const key = h('input', { type: 'text', id: 'new-key', required: true, pattern: '[A-Za-z0-9._-]+' });
  const name = h('input', { type: 'text', id: 'new-name' });
  const desc = h('input', { type: 'text', id: 'new-description' });
  const tags = h('input', { type: 'text', id: 'new-tags' });
  const percent = h('input', { type: 'number', id: 'new-percent', min: 0, max: 100, step: 'any', value: 10 });
  const n = h('input', { type: 'number', id: 'new-n', min: 2, max: 26, step: 1, value: 2 });
  const err = h('div', { class: 'error', role: 'alert' });
  const radio = (value, label, checked) => {
    const r = h('input', { type: 'radio', name: 'template', value, id: `tpl-${value}`, checked });
    return h('div', { class: 'row' }, r, h('label', { for: r.id }, label));
  };
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const kind = form.querySelector('input[name=template]:checked').value;
      const body = fromTemplate(kind, { key: key.value, name: name.value, description: desc.value,
        tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean),
        percent: Number(percent.value), n: Number(n.value) });
      const r = await api('PUT', `/flags/${encodeURIComponent(key.value)}`, body, { 'if-none-match': '*' });
      if (!r.ok) {
        err.replaceChildren(problemText(r), ...((r.json && r.json.diagnostics) || []).map((d) => h('div', {}, `${d.path}: ${d.message}`)));
        return;
      }
      location.hash = `#/flags/${encodeURIComponent(key.value)}`;
    },
  },
  h('fieldset', {}, h('legend', {}, 'Template'),
    radio('kill', 'Kill switch (on/off)', true),
    radio('rollout', 'Percentage rollout', false),
    radio('ab', 'A/B experiment with N variants', false)),
  field('Key', key), field('Name', name), field('Description', desc), field('Tags (comma-separated)', tags),
  field('Rollout: percentage on', percent), field('Experiment: number of variants', n),
  err, h('button', { type: 'submit' }, 'Create flag'));
  setMain(h('h1', {}, 'New flag'), form);
}

// ---------- flag editor ----------

function parseValue(text) {
  try { return JSON.parse(text); } catch { return text; }
}

function clauseValue(op, text) {
  const t = text.trim();
  if (NUMERIC.has(op) || op === 'before' || op === 'after') {
    const n = Number(t);
    return t !== '' && !isNaN(n) ? n : t;
  }
  if (t === 'true' || t === 'false') return t === 'true';
  return t;
}

function variationLabel(flag, i) {
  const v = (flag.variants || [])[i];
  if (!v) return `#${i}`;
  return `#${i} ${v.name || JSON.stringify(v.value)}`;
}

function variantCount(flag) {
  return (flag.variants && flag.variants.length) || (flagType(flag) === 'bool' ? 2 : 0);
}

function variationSelect(flag, value, onChange, labelText, path, allowNone) {
  const sel = h('select', {});
  if (allowNone) sel.append(h('option', { value: '' }, '(none)'));
  for (let i = 0; i < variantCount(flag); i += 1) {
    sel.append(h('option', { value: String(i) }, variationLabel(flag, i)));
  }
  sel.value = value === undefined || value === null ? '' : String(value);
  sel.addEventListener('change', () => onChange(sel.value === '' ? undefined : Number(sel.value)));
  return field(labelText, sel, path);
}

// Percentages that always total 100 %: the edited one is kept, the last other absorbs the
// difference (then the ones before it, when it reaches 0).
function rebalance(weights, edited, newWeight) {
  const w = weights.slice();
  w[edited] = Math.max(0, Math.min(100000, newWeight));
  let diff = 100000 - w.reduce((a, b) => a + b, 0);
  for (let i = w.length - 1; i >= 0 && diff !== 0; i -= 1) {
    if (i === edited) continue;
    const next = Math.max(0, Math.min(100000, w[i] + diff));
    diff -= next - w[i];
    w[i] = next;
  }
  return w;
}

function rolloutEditor(flag, rollout, path, redraw) {
  const box = h('div', { class: 'rollout', 'data-path': path });
  const total = h('p', { class: 'total' });
  const inputs = [];
  const showTotal = () => {
    const sum = rollout.variations.reduce((a, v) => a + v.weight, 0);
    total.textContent = `Total: ${(sum / 1000).toFixed(3).replace(/\.?0+$/, '')} %`;
  };
  rollout.variations.forEach((wv, i) => {
    const input = h('input', { type: 'number', min: 0, max: 100, step: 'any', value: wv.weight / 1000 });
    input.addEventListener('change', () => {
      const weights = rebalance(rollout.variations.map((v) => v.weight), i, Math.round(Number(input.value) * 1000));
      weights.forEach((w, j) => { rollout.variations[j].weight = w; inputs[j].value = w / 1000; });
      showTotal();
      markDirty();
    });
    inputs.push(input);
    box.append(h('div', { class: 'row' }, field(`Percent for ${variationLabel(flag, wv.variation)}`, input, `${path}.variations[${i}].weight`)));
  });
  const bucket = h('input', { type: 'text', value: rollout.bucketBy || 'key' });
  bucket.addEventListener('input', () => { rollout.bucketBy = bucket.value || undefined; markDirty(); });
  box.append(field('Bucket by attribute', bucket, `${path}.bucketBy`), total);
  showTotal();
  void redraw;
  return box;
}

function serveEditor(flag, holder, path, redraw, label) {
  // holder has either .variation or .rollout
  const mode = holder.rollout ? 'rollout' : 'variation';
  const sel = h('select', {},
    h('option', { value: 'variation' }, 'a variation'),
    h('option', { value: 'rollout' }, 'a percentage rollout'));
  sel.value = mode;
  sel.addEventListener('change', () => {
    if (sel.value === 'rollout') {
      const n = Math.max(variantCount(flag), 1);
      const each = Math.floor(100000 / n);
      holder.rollout = { bucketBy: 'key', variations: Array.from({ length: n }, (_, i) => ({ variation: i, weight: each + (i === 0 ? 100000 - each * n : 0) })) };
      delete holder.variation;
    } else {
      holder.variation = 0;
      delete holder.rollout;
    }
    markDirty();
    redraw();
  });
  const out = h('div', {}, field(`${label}: serve`, sel, path));
  if (mode === 'rollout') out.append(rolloutEditor(flag, holder.rollout, `${path}.rollout`, redraw));
  else out.append(variationSelect(flag, holder.variation, (v) => { holder.variation = v; markDirty(); }, `${label}: variation`, `${path}.variation`));
  return out;
}

function markDirty() { view.dirty = true; const s = document.getElementById('save-state'); if (s) s.textContent = 'Unsaved changes'; }

function listInput(values, onChange, labelText, path) {
  const input = h('input', { type: 'text', value: values.join(', ') });
  input.addEventListener('input', () => { onChange(input.value.split(',').map((s) => s.trim()).filter(Boolean)); markDirty(); });
  return field(labelText, input, path);
}

function textInput(value, onChange, labelText, path) {
  const input = h('input', { type: 'text', value: value || '' });
  input.addEventListener('input', () => { onChange(input.value); markDirty(); });
  return field(labelText, input, path);
}

function clauseEditor(flag, rule, ri, ci, redraw) {
  const c = rule.clauses[ci];
  const path = `rules[${ri}].clauses[${ci}]`;
  const op = h('select', {}, ...OPERATORS.map((o) => h('option', { value: o }, o)));
  op.value = c.operator;
  op.addEventListener('change', () => {
    c.operator = op.value;
    c.values = c.values.map((v) => clauseValue(c.operator, String(v)));
    markDirty();
  });
  const values = h('input', { type: 'text', value: (c.values || []).map((v) => String(v)).join(', ') });
  values.addEventListener('input', () => {
    c.values = values.value.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => clauseValue(c.operator, s));
    markDirty();
  });
  const neg = h('input', { type: 'checkbox', checked: c.negate });
  neg.addEventListener('change', () => { c.negate = neg.checked || undefined; markDirty(); });
  neg.id = id('neg');
  return h('div', { class: 'row clause', 'data-path': path },
    textInput(c.attribute, (v) => { c.attribute = v; }, `Rule ${ri + 1} clause ${ci + 1} attribute`, `${path}.attribute`),
    field(`Rule ${ri + 1} clause ${ci + 1} operator`, op, `${path}.operator`),
    field(`Rule ${ri + 1} clause ${ci + 1} values (comma-separated)`, values, `${path}.values`),
    h('div', { class: 'row' }, neg, h('label', { for: neg.id }, `Negate clause ${ci + 1}`)),
    h('button', { type: 'button', class: 'secondary', onclick: () => { rule.clauses.splice(ci, 1); markDirty(); redraw(); } }, `Remove clause ${ci + 1} of rule ${ri + 1}`));
}

function editorForm(flag, redraw) {
  const f = flag;
  f.variants = f.variants || [];
  f.targets = f.targets || [];
  f.rules = f.rules || [];
  f.prerequisites = f.prerequisites || [];
  f.fallthrough = f.fallthrough || { variation: 0 };
  const form = h('div', { id: 'editor' });

  const enabled = h('input', { type: 'checkbox', role: 'switch', class: 'switch', checked: f.enabled !== false, id: 'enabled' });
  enabled.addEventListener('change', () => { f.enabled = enabled.checked; markDirty(); });
  form.append(h('fieldset', {}, h('legend', {}, 'General'),
    textInput(f.name, (v) => { f.name = v || undefined; }, 'Name', 'name'),
    textInput(f.description, (v) => { f.description = v || undefined; }, 'Description', 'description'),
    listInput(f.tags || [], (v) => { f.tags = v; }, 'Tags (comma-separated)', 'tags'),
    h('div', { class: 'row' }, h('label', { for: 'enabled' }, 'Targeting on'), enabled)));

  const variants = h('fieldset', { 'data-path': 'variants' }, h('legend', {}, 'Variants'));
  f.variants.forEach((v, i) => {
    const value = h('input', { type: 'text', value: JSON.stringify(v.value) });
    value.addEventListener('input', () => { v.value = parseValue(value.value); markDirty(); });
    variants.append(h('div', { class: 'row' },
      textInput(v.name, (x) => { v.name = x || undefined; }, `Variant ${i} name`, `variants[${i}].name`),
      field(`Variant ${i} value (JSON)`, value, `variants[${i}].value`),
      h('button', { type: 'button', class: 'secondary', onclick: () => { f.variants.splice(i, 1); markDirty(); redraw(); } }, `Remove variant ${i}`)));
  });
  variants.append(h('button', { type: 'button', class: 'secondary', onclick: () => {
    const t = flagType(f);
    f.variants.push({ value: t === 'bool' ? false : t === 'int' || t === 'float' ? 0 : '' });
    markDirty(); redraw();
  } }, 'Add variant'));
  form.append(variants);

  const targets = h('fieldset', { 'data-path': 'targets' }, h('legend', {}, 'Individual targets'));
  f.targets.forEach((t, i) => {
    targets.append(h('div', { class: 'row' },
      variationSelect(f, t.variation, (v) => { t.variation = v; }, `Target ${i + 1} variation`, `targets[${i}].variation`),
      listInput(t.values || [], (v) => { t.values = v; }, `Target ${i + 1} context keys (comma-separated)`, `targets[${i}].values`),
      h('button', { type: 'button', class: 'secondary', onclick: () => { f.targets.splice(i, 1); markDirty(); redraw(); } }, `Remove target ${i + 1}`)));
  });
  targets.append(h('button', { type: 'button', class: 'secondary', onclick: () => { f.targets.push({ variation: 0, values: [] }); markDirty(); redraw(); } }, 'Add target'));
  form.append(targets);

  const prereqs = h('fieldset', { 'data-path': 'prerequisites' }, h('legend', {}, 'Prerequisites'));
  f.prerequisites.forEach((p, i) => {
    const v = h('input', { type: 'number', min: 0, step: 1, value: p.variation });
    v.addEventListener('input', () => { p.variation = Number(v.value); markDirty(); });
    prereqs.append(h('div', { class: 'row' },
      textInput(p.key, (x) => { p.key = x; }, `Prerequisite ${i + 1} flag key`, `prerequisites[${i}].key`),
      field(`Prerequisite ${i + 1} variation index`, v, `prerequisites[${i}].variation`),
      h('button', { type: 'button', class: 'secondary', onclick: () => { f.prerequisites.splice(i, 1); markDirty(); redraw(); } }, `Remove prerequisite ${i + 1}`)));
  });
  prereqs.append(h('button', { type: 'button', class: 'secondary', onclick: () => { f.prerequisites.push({ key: '', variation: 0 }); markDirty(); redraw(); } }, 'Add prerequisite'));
  form.append(prereqs);

  const rules = h('fieldset', { 'data-path': 'rules' }, h('legend', {}, 'Rules'));
  f.rules.forEach((r, ri) => {
    r.clauses = r.clauses || [];
    if (r.variation === undefined && !r.rollout) r.variation = 0;
    const pct = h('input', { type: 'number', min: 0, max: 100, step: 'any', value: r.percentage ?? '' });
    pct.addEventListener('input', () => { r.percentage = pct.value === '' ? undefined : Number(pct.value); markDirty(); });
    const box = h('fieldset', { class: 'rule', 'data-path': `rules[${ri}]` }, h('legend', {}, `Rule ${ri + 1}${r.id ? ` (${r.id})` : ''}`),
      textInput(r.description, (x) => { r.description = x || undefined; }, `Rule ${ri + 1} description`, `rules[${ri}].description`),
      ...r.clauses.map((_, ci) => clauseEditor(f, r, ri, ci, redraw)),
      h('button', { type: 'button', class: 'secondary', onclick: () => { r.clauses.push({ attribute: 'key', operator: 'eq', values: [] }); markDirty(); redraw(); } }, `Add clause to rule ${ri + 1}`),
      serveEditor(f, r, `rules[${ri}]`, redraw, `Rule ${ri + 1}`),
      field(`Rule ${ri + 1} percentage of matching contexts (empty: all)`, pct, `rules[${ri}].percentage`),
      h('button', { type: 'button', class: 'secondary', onclick: () => { f.rules.splice(ri, 1); markDirty(); redraw(); } }, `Remove rule ${ri + 1}`));
    rules.append(box);
  });
  rules.append(h('button', { type: 'button', class: 'secondary', onclick: () => { f.rules.push({ clauses: [{ attribute: 'key', operator: 'eq', values: [] }], variation: 0 }); markDirty(); redraw(); } }, 'Add rule'));
  form.append(rules);

  form.append(h('fieldset', { 'data-path': 'fallthrough' }, h('legend', {}, 'When no target or rule matches'),
    serveEditor(f, f.fallthrough, 'fallthrough', redraw, 'Fallthrough')));
  form.append(h('fieldset', {}, h('legend', {}, 'When targeting is off'),
    variationSelect(f, f.offVariation, (v) => { f.offVariation = v; markDirty(); }, 'Off variation', 'offVariation', true)));
  return form;
}

function cleanDraft(d) {
  const f = structuredClone(d);
  for (const k of ['variants', 'targets', 'rules', 'prerequisites', 'tags']) if (f[k] && f[k].length === 0) delete f[k];
  for (const r of f.rules || []) if (r.clauses && r.clauses.length === 0) delete r.clauses;
  return f;
}

function showDiagnostics(root, diagnostics, key) {
  root.querySelectorAll('.error.diag').forEach((e) => e.remove());
  const unplaced = [];
  for (const d of diagnostics || []) {
    let path = d.path || '';
    for (const prefix of [`flags.${key}`, `segments.${key}`]) {
      if (path.startsWith(prefix)) path = path.slice(prefix.length).replace(/^\./, '');
    }
    let target = null;
    let p = path;
    while (p && !target) {
      target = root.querySelector(`[data-path="${CSS.escape(p)}"]`);
      if (!target) p = p.replace(/(\.[^.[\]]+|\[\d+\])$/, '') === p ? '' : p.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
    }
    const msg = h('p', { class: 'error diag', role: 'alert' }, `${d.severity}: ${d.message}`);
    if (target) {
      target.append(msg);
      const input = target.querySelector('input, select, textarea');
      if (input) { msg.id = id('diag'); input.setAttribute('aria-describedby', msg.id); input.setAttribute('aria-invalid', 'true'); }
    } else unplaced.push(msg);
  }
  return unplaced;
}

function lineDiff(a, b) {
  // longest common subsequence over lines: [kind, line] with kind ' ', '-', '+'
  const x = a.split('\n'); const y = b.split('\n');
  const m = x.length; const n = y.length;
  const t = Array.from({ length: m + 1 }, () => new Array(n + 1).fill(0));
  for (let i = m - 1; i >= 0; i -= 1) for (let j = n - 1; j >= 0; j -= 1) {
    t[i][j] = x[i] === y[j] ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
  }
  const left = []; const right = [];
  let i = 0; let j = 0;
  while (i < m || j < n) {
    if (i < m && j < n && x[i] === y[j]) { left.push([' ', x[i]]); right.push([' ', y[j]]); i += 1; j += 1; } else if (j < n && (i === m || t[i][j + 1] >= t[i + 1][j])) { right.push(['+', y[j]]); j += 1; } else { left.push(['-', x[i]]); i += 1; }
  }
  return { left, right };
}

function sideBySide(before, after, leftTitle, rightTitle) {
  const { left, right } = lineDiff(pretty(before), pretty(after));
  const col = (title, lines) => h('div', {}, h('h4', {}, title), h('pre', {}, ...lines.map(([k, l]) => (k === ' ' ? h('span', {}, `${l}\n`) : h(k === '-' ? 'del' : 'ins', { class: k === '-' ? 'del' : 'add' }, `${l}\n`)))));
  return h('div', { class: 'diff' }, col(leftTitle, left), col(rightTitle, right));
}

// Three-way merge on the flag's top-level fields: what I changed since `base` goes on top of
// `theirs`.
function reapply(base, mine, theirs) {
  const out = structuredClone(theirs);
  const keys = new Set([...Object.keys(base), ...Object.keys(mine)]);
  for (const k of keys) {
    if (!same(base[k], mine[k])) {
      if (mine[k] === undefined) delete out[k]; else out[k] = structuredClone(mine[k]);
    }
  }
  return out;
}

function contextLines(text) {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.map((l, i) => {
    try { return JSON.parse(l); } catch { throw new Error(`Line ${i + 1} is not JSON`); }
  });
}

function splitTable(split, total) {
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Contexts'), h('th', { scope: 'col' }, 'Share'))),
    h('tbody', {}, ...split.map((s) => h('tr', {},
      h('td', {}, `${JSON.stringify(s.value)}${s.variationName ? ` (${s.variationName})` : ''}`),
      h('td', {}, String(s.count)),
      h('td', {}, `${((100 * s.count) / total).toFixed(1)} %`)))));
}

// The split of the flag as edited, before saving: compiled by the server in memory with the
// store's other flags and segments.
function previewForm(key, currentDraft) {
  const many = h('textarea', { id: 'preview-contexts', rows: 4 }, Array.from({ length: 100 }, (_, i) => `{"key": "user-${i}"}`).join('\n'));
  const out = h('div', { id: 'preview-split', 'aria-live': 'polite' });
  return h('section', { 'aria-labelledby': 'preview-h' },
    h('h2', { id: 'preview-h' }, 'Preview the split of this draft (before saving)'),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        let contexts;
        try { contexts = contextLines(many.value); } catch (x) { out.replaceChildren(h('p', { class: 'error', role: 'alert' }, x.message)); return; }
        const flags = Object.fromEntries((await allFlags()).map((f) => [f.key, stripMeta(f)]));
        flags[key] = currentDraft();
        const segs = await api('GET', '/segments?limit=1000');
        const segments = Object.fromEntries(((segs.ok && segs.json.items) || []).map((x) => [x.key, stripMeta(x)]));
        const r = await fetch('/ui/preview', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf },
          body: JSON.stringify({ document: { flags, segments }, flag: key, contexts }),
        });
        const j = await r.json();
        if (!r.ok) { out.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${j.title}: ${j.detail}`)); return; }
        out.replaceChildren(splitTable(j.split, j.total));
      },
    }, field('Preview contexts, one JSON object per line', many), h('button', { type: 'submit' }, 'Preview draft split')),
    out);
}

async function renderEditor(key) {
  view.name = 'editor';
  const r = await api('GET', `/flags/${encodeURIComponent(key)}`);
  if (!r.ok) { setMain(h('h1', {}, key), h('p', { class: 'error', role: 'alert' }, problemText(r))); return; }
  let etag = r.etag;
  let base = stripMeta(r.json);
  let version = r.json.version;
  let draft = structuredClone(base);
  const links = h('p', {},
    h('a', { href: `#/flags/${encodeURIComponent(key)}/history` }, 'History'), ' · ',
    h('a', { href: `#/debugger/${encodeURIComponent(key)}` }, 'Debug this flag'));
  const status = h('p', { id: 'save-state', role: 'status' });
  const notices = h('div', { id: 'notices' });
  if (!canWrite()) {
    setMain(h('h1', {}, `Flag ${key}`), links,
      h('p', { class: 'muted' }, `Version ${version}. Your token can read flags, not change them.`),
      h('pre', { id: 'flag-json' }, pretty(base)));
    view.poll = setInterval(async () => {
      const n = await api('GET', `/flags/${encodeURIComponent(key)}`);
      if (n.ok && n.json.version !== version) {
        version = n.json.version; base = stripMeta(n.json);
        document.getElementById('flag-json').textContent = pretty(base);
        announce(`${key} changed (version ${version})`);
      }
    }, POLL_MS);
    return;
  }
  const holder = h('div');
  const errors = h('div', { id: 'errors' });
  const redraw = () => { holder.replaceChildren(editorForm(draft, redraw)); };
  const save = async () => {
    const body = cleanDraft(draft);
    const s = await api('PUT', `/flags/${encodeURIComponent(key)}`, body, { 'if-match': etag });
    errors.replaceChildren();
    holder.querySelectorAll('.error.diag').forEach((e) => e.remove());
    if (s.ok) {
      etag = s.etag; version = s.json.version; base = stripMeta(s.json); draft = structuredClone(base);
      view.dirty = false; notices.replaceChildren(); redraw();
      status.textContent = `Saved version ${version}`;
      announce(`Saved version ${version}`);
      return;
    }
    if (s.status === 412) {
      const cur = await api('GET', `/flags/${encodeURIComponent(key)}`);
      const hist = await api('GET', `/flags/${encodeURIComponent(key)}/history?limit=1`);
      const who = hist.ok && hist.json.items[0] ? `${hist.json.items[0].actor} at ${when(hist.json.items[0].at)}` : 'someone';
      const theirs = stripMeta(cur.json);
      const mine = structuredClone(draft);
      const baseAtEdit = base;
      notices.replaceChildren(h('section', { class: 'notice', id: 'conflict', 'aria-labelledby': 'conflict-h' },
        h('h2', { id: 'conflict-h' }, `Conflict: ${who} saved version ${cur.json.version} first`),
        h('p', {}, 'What they changed (the version you started from, then theirs):'),
        sideBySide(baseAtEdit, theirs, `Version ${version} (yours started here)`, `Version ${cur.json.version} (theirs)`),
        h('div', { class: 'row' },
          h('button', { type: 'button', id: 'reapply', onclick: () => {
            draft = reapply(baseAtEdit, mine, theirs);
            base = theirs; etag = cur.etag; version = cur.json.version;
            notices.replaceChildren(h('p', { class: 'notice', role: 'status' }, `Your changes are applied on top of version ${version}. Review and save.`));
            redraw(); markDirty();
          } }, 'Re-apply my changes on top'),
          h('button', { type: 'button', class: 'secondary', onclick: () => {
            base = theirs; etag = cur.etag; version = cur.json.version; draft = structuredClone(base);
            view.dirty = false; notices.replaceChildren(); status.textContent = ''; redraw();
          } }, 'Discard mine, keep theirs'))));
      document.getElementById('conflict-h').scrollIntoView();
      return;
    }
    const unplaced = showDiagnostics(holder, s.json && s.json.diagnostics, key);
    errors.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(s)), ...unplaced);
    status.textContent = 'Not saved';
  };
  setMain(h('h1', {}, `Flag ${key}`), links, notices,
    h('form', { onsubmit: (e) => { e.preventDefault(); save(); } },
      holder, errors,
      h('div', { class: 'row' }, h('button', { type: 'submit', id: 'save' }, 'Save'), status)),
    previewForm(key, () => cleanDraft(draft)));
  redraw();
  // live: another person's save shows without a reload
  view.poll = setInterval(async () => {
    const n = await api('GET', `/flags/${encodeURIComponent(key)}`);
    if (!n.ok || n.json.version === version || document.getElementById('conflict')) return;
    if (!view.dirty) {
      base = stripMeta(n.json); draft = structuredClone(base); etag = n.etag; version = n.json.version;
      if (!holder.contains(document.activeElement)) redraw();
      notices.replaceChildren(h('p', { class: 'notice', role: 'status' }, `${key} was changed by someone else; showing version ${version}.`));
    } else if (!document.getElementById('stale')) {
      notices.replaceChildren(h('p', { class: 'notice', role: 'status', id: 'stale' }, `Someone else saved version ${n.json.version}. Saving will show their changes.`));
    }
  }, POLL_MS);
}

// ---------- history ----------

async function renderHistory(key) {
  view.name = 'history';
  const list = h('div', { id: 'history' });
  const err = h('p', { class: 'error', role: 'alert' });
  let top = null;
  const load = async () => {
    const r = await api('GET', `/flags/${encodeURIComponent(key)}/history?limit=50`);
    if (!r.ok) { err.textContent = problemText(r); return; }
    if (r.json.items[0] && top === r.json.items[0].id) return;
    top = r.json.items[0] && r.json.items[0].id;
    list.replaceChildren(...r.json.items.map((e) => h('section', { class: 'entry', 'aria-label': `version ${e.version}` },
      h('h2', {}, `Version ${e.version}: ${e.action} by ${e.actor}, ${when(e.at)}`),
      sideBySide(e.before, e.after, 'Before', 'After'),
      canWrite() && e.after ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
        const cur = await api('GET', `/flags/${encodeURIComponent(key)}`);
        const rr = await api('POST', `/flags/${encodeURIComponent(key)}/history/${encodeURIComponent(e.id)}/restore`, undefined,
          cur.ok ? { 'if-match': cur.etag } : { 'if-none-match': '*' });
        err.textContent = rr.ok ? '' : problemText(rr);
        if (rr.ok) { announce(`Restored version ${e.version}`); load(); }
      } }, `Restore version ${e.version}`) : null)));
  };
  setMain(h('h1', {}, `History of ${key}`), h('p', {}, h('a', { href: `#/flags/${encodeURIComponent(key)}` }, 'Back to the flag')), err, list);
  await load();
  view.poll = setInterval(load, POLL_MS);
}

// ---------- debugger ----------

async function renderDebugger(preset) {
  view.name = 'debugger';
  let keys = [];
  try { keys = (await allFlags()).map((f) => f.key); } catch { /* shown below on evaluate */ }
  // without the right to list flags (an `evaluate` token), the key is typed
  const flag = keys.length
    ? h('select', { id: 'dbg-flag' }, ...keys.map((k) => h('option', { value: k }, k)))
    : h('input', { type: 'text', id: 'dbg-flag', required: true });
  if (preset) flag.value = preset;
  const ctx = h('textarea', { id: 'dbg-context', rows: 5 }, '{"key": "user-1", "country": "NZ", "plan": "pro"}');
  const out = h('div', { id: 'dbg-result', 'aria-live': 'polite' });
  const evaluate = async (context) => api('POST', '/evaluate', { flags: [flag.value], context });
  const one = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      let context;
      try { context = JSON.parse(ctx.value); } catch (x) { out.replaceChildren(h('p', { class: 'error', role: 'alert' }, `The context is not JSON: ${x.message}`)); return; }
      const r = await evaluate(context);
      if (!r.ok) { out.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(r))); return; }
      const ev = r.json.evaluations[0];
      out.replaceChildren(h('dl', { class: 'result' },
        h('dt', {}, 'Value'), h('dd', { id: 'dbg-value' }, JSON.stringify(ev.value)),
        h('dt', {}, 'Variation'), h('dd', { id: 'dbg-variation' }, ev.variationIndex === null || ev.variationIndex === undefined ? '(none)' : `${ev.variationIndex}${ev.variationName ? ` (${ev.variationName})` : ''}`),
        h('dt', {}, 'Reason'), h('dd', { id: 'dbg-reason' }, [ev.reason, ev.ruleId, ev.prerequisiteFailed, ev.errorKind].filter(Boolean).join(' ')),
        h('dt', {}, 'Explanation'), h('dd', {}, h('ol', { id: 'dbg-explain' }, ...ev.explain.map((s) => h('li', {}, s))))));
    },
  }, field('Flag', flag), field('Context (JSON)', ctx), h('button', { type: 'submit' }, 'Evaluate'));
  const many = h('textarea', { id: 'dbg-contexts', rows: 6 }, Array.from({ length: 20 }, (_, i) => `{"key": "user-${i + 1}"}`).join('\n'));
  const split = h('div', { id: 'dbg-split', 'aria-live': 'polite' });
  const bulk = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const lines = many.value.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 2000);
      const counts = new Map();
      for (let i = 0; i < lines.length; i += 1) {
        let c;
        try { c = JSON.parse(lines[i]); } catch { split.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Line ${i + 1} is not JSON`)); return; }
        const r = await evaluate(c);
        if (!r.ok) { split.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(r))); return; }
        const ev = r.json.evaluations[0];
        const label = `${JSON.stringify(ev.value)}${ev.variationName ? ` (${ev.variationName})` : ''}`;
        counts.set(label, (counts.get(label) || 0) + 1);
      }
      split.replaceChildren(h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Contexts'), h('th', { scope: 'col' }, 'Share'))),
        h('tbody', {}, ...[...counts].map(([k, n]) => h('tr', {}, h('td', {}, k), h('td', {}, n), h('td', {}, `${((100 * n) / lines.length).toFixed(1)} %`))))));
    },
  }, field('Contexts, one JSON object per line', many), h('button', { type: 'submit' }, 'Preview split'));
  setMain(h('h1', {}, 'Debugger'),
    h('h2', {}, 'Evaluate as a context'), one, out,
    h('h2', {}, 'Split over a list of contexts'), bulk, split);
}

// ---------- segments ----------

async function renderSegments() {
  view.name = 'segments';
  const r = await api('GET', '/segments?limit=1000');
  if (!r.ok) { setMain(h('h1', {}, 'Segments'), h('p', { class: 'error', role: 'alert' }, problemText(r))); return; }
  const key = h('input', { type: 'text', id: 'new-segment', pattern: '[A-Za-z0-9._-]+', required: true });
  setMain(h('h1', {}, 'Segments'),
    r.json.items.length === 0 ? h('p', {}, 'No segments.') : h('table', {},
      h('thead', {}, h('tr', {}, ...['Key', 'Name', 'Included', 'Excluded', 'Rules'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...r.json.items.map((s) => h('tr', {},
        h('td', {}, h('a', { href: `#/segments/${encodeURIComponent(s.key)}` }, s.key)), h('td', {}, s.name || ''),
        h('td', {}, (s.included || []).join(', ')), h('td', {}, (s.excluded || []).join(', ')),
        h('td', {}, String((s.rules || []).length)))))),
    canWrite() ? h('form', { onsubmit: (e) => { e.preventDefault(); location.hash = `#/segments/${encodeURIComponent(key.value)}`; } },
      h('h2', {}, 'New segment'), field('Segment key', key), h('button', { type: 'submit' }, 'Create segment')) : null);
}

async function renderSegment(key) {
  view.name = 'segment';
  const r = await api('GET', `/segments/${encodeURIComponent(key)}`);
  const exists = r.ok;
  if (!exists && r.status !== 404) { setMain(h('h1', {}, key), h('p', { class: 'error', role: 'alert' }, problemText(r))); return; }
  let etag = r.etag;
  const seg = exists ? stripMeta(r.json) : {};
  if (!canWrite()) {
    setMain(h('h1', {}, `Segment ${key}`), h('pre', {}, pretty(seg)));
    return;
  }
  seg.included = seg.included || [];
  seg.excluded = seg.excluded || [];
  seg.rules = seg.rules || [];
  const holder = h('div');
  const errors = h('div');
  const status = h('p', { id: 'save-state', role: 'status' });
  const redraw = () => {
    const rules = h('fieldset', { 'data-path': 'rules' }, h('legend', {}, 'Rules (a context matching every clause of a rule is in the segment)'));
    seg.rules.forEach((rule, ri) => {
      rule.clauses = rule.clauses || [];
      rules.append(h('fieldset', { class: 'rule', 'data-path': `rules[${ri}]` }, h('legend', {}, `Rule ${ri + 1}`),
        ...rule.clauses.map((_, ci) => clauseEditor(seg, rule, ri, ci, redraw)),
        h('button', { type: 'button', class: 'secondary', onclick: () => { rule.clauses.push({ attribute: 'key', operator: 'eq', values: [] }); markDirty(); redraw(); } }, `Add clause to rule ${ri + 1}`),
        h('button', { type: 'button', class: 'secondary', onclick: () => { seg.rules.splice(ri, 1); markDirty(); redraw(); } }, `Remove rule ${ri + 1}`)));
    });
    rules.append(h('button', { type: 'button', class: 'secondary', onclick: () => { seg.rules.push({ clauses: [{ attribute: 'key', operator: 'eq', values: [] }] }); markDirty(); redraw(); } }, 'Add rule'));
    holder.replaceChildren(
      h('fieldset', {}, h('legend', {}, 'General'),
        textInput(seg.name, (v) => { seg.name = v || undefined; }, 'Name', 'name'),
        textInput(seg.description, (v) => { seg.description = v || undefined; }, 'Description', 'description')),
      h('fieldset', {}, h('legend', {}, 'Context keys'),
        listInput(seg.included, (v) => { seg.included = v; }, 'Included keys (comma-separated)', 'included'),
        listInput(seg.excluded, (v) => { seg.excluded = v; }, 'Excluded keys (comma-separated)', 'excluded')),
      rules);
  };
  const save = async () => {
    const body = structuredClone(seg);
    for (const k of ['included', 'excluded', 'rules']) if (body[k].length === 0) delete body[k];
    const s = await api('PUT', `/segments/${encodeURIComponent(key)}`, body, etag ? { 'if-match': etag } : { 'if-none-match': '*' });
    holder.querySelectorAll('.error.diag').forEach((e) => e.remove());
    if (s.ok) {
      etag = s.etag; view.dirty = false; errors.replaceChildren();
      status.textContent = `Saved version ${s.json.version}`;
      announce(status.textContent);
      return;
    }
    const unplaced = showDiagnostics(holder, s.json && s.json.diagnostics, key);
    errors.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(s)), ...unplaced);
    status.textContent = 'Not saved';
  };
  setMain(h('h1', {}, `Segment ${key}`), h('p', {}, h('a', { href: '#/segments' }, 'All segments')),
    h('form', { onsubmit: (e) => { e.preventDefault(); save(); } }, holder, errors,
      h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save'), status)));
  redraw();
}

window.addEventListener('hashchange', () => { render(); });
render();
