// Small helpers shared by the views: DOM building (text only: never innerHTML, so names and
// contents from the history cannot inject markup), times in UTC or local time, field diffs and
// RFC 6902 patches.

// h('div', {class: 'x', onclick: f}, child, 'text', ...): an element. Attributes starting with
// "on" become listeners; `dataset` is an object of data-* values; null/false children are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Replace the children of `el` (null/false children skipped, arrays flattened).
export function fill(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// Append to `el` like h() does (null/false skipped). The DOM's own append writes "null".
export function add(el, ...children) {
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// ---- times ---------------------------------------------------------------------------------

const TZ_KEY = 'ch-console-tz';

export function timeZoneMode() {
  return localStorage.getItem(TZ_KEY) === 'local' ? 'local' : 'utc';
}

export function setTimeZoneMode(mode) {
  localStorage.setItem(TZ_KEY, mode === 'local' ? 'local' : 'utc');
}

// Parse RFC 3339 with up to microseconds (Date keeps milliseconds). Returns a Date or null.
export function parseTime(text) {
  if (!text) return null;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!m) return null;
  const frac = m[2] ? m[2].slice(0, 4).padEnd(4, '0') : '.000';
  const d = new Date(m[1] + frac + m[3]);
  return isNaN(d.getTime()) ? null : d;
}

// A number that orders RFC 3339 times to the microsecond (Date keeps only milliseconds): use it
// to compare a commit time with a moment.
export function timeKey(text) {
  const d = parseTime(text);
  if (!d) return NaN;
  const m = /\.(\d+)/.exec(text);
  const micros = m ? Number(m[1].slice(0, 6).padEnd(6, '0')) % 1000 : 0;
  return d.getTime() * 1000 + micros;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

function offsetText(d) {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  return `UTC${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

// "2026-11-03 14:05:00Z" (UTC) or "2026-11-03 15:05:00 UTC+01:00" (local), milliseconds when
// there are any.
export function formatTime(value, mode = timeZoneMode()) {
  const d = value instanceof Date ? value : parseTime(value);
  if (!d) return value ? String(value) : '—';
  const ms = d.getUTCMilliseconds();
  const frac = ms ? '.' + pad(ms, 3) : '';
  if (mode === 'local') {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
        `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${frac} ${offsetText(d)}`;
  }
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${frac}Z`;
}

// The value of an <input type="datetime-local"> for `d`, in the chosen time zone.
export function toInputValue(d, mode = timeZoneMode()) {
  if (!d) return '';
  if (mode === 'local') {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
        `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  return d.toISOString().slice(0, 19);
}

// The Date an <input type="datetime-local"> value means in the chosen time zone (null if empty).
export function fromInputValue(v, mode = timeZoneMode()) {
  if (!v) return null;
  const full = v.length === 16 ? v + ':00' : v;
  const d = mode === 'local' ? new Date(full) : new Date(full + 'Z');
  return isNaN(d.getTime()) ? null : d;
}

// RFC 3339 UTC text for a URL or the API: "2026-11-03T14:05:00Z" (milliseconds if any).
export function isoTime(d) {
  const s = d.toISOString();
  return s.endsWith('.000Z') ? s.slice(0, 19) + 'Z' : s;
}

// ---- values and diffs ----------------------------------------------------------------------

export function plain(v) {
  if (v === undefined) return '(absent)';
  if (v === null) return 'null';
  if (typeof v === 'string') return v === '' ? '""' : v;
  return JSON.stringify(v);
}

export function shorten(s, max = 80) {
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

export function withThousands(n) {
  return Number(n).toLocaleString('en-US');
}

// Fields that change with every version: shown in headers, not as changes (docs/queries.md).
const BOOKKEEPING = new Set(['version', 'updated_at', 'updated_by']);

// A snapshot as path -> value, content expanded into dotted paths like the query engine does.
export function flatten(snapshot) {
  const out = new Map();
  const walk = (prefix, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && prefix) {
      const keys = Object.keys(v);
      if (keys.length === 0) out.set(prefix, v);
      for (const k of keys) walk(prefix + '.' + k, v[k]);
    } else {
      out.set(prefix, v);
    }
  };
  for (const [k, v] of Object.entries(snapshot || {})) {
    if (BOOKKEEPING.has(k)) continue;
    if (k === 'content' && v && typeof v === 'object' && !Array.isArray(v)) walk(k, v);
    else out.set(k, v);
  }
  return out;
}

// The field changes between two snapshots (either may be null: absent), like the engine's.
export function diffSnapshots(before, after) {
  const a = flatten(before), b = flatten(after);
  const changes = [];
  for (const [path, v] of b) {
    if (!a.has(path)) changes.push({path, after: v});
    else if (JSON.stringify(a.get(path)) !== JSON.stringify(v)) {
      changes.push({path, before: a.get(path), after: v});
    }
  }
  for (const [path, v] of a) if (!b.has(path)) changes.push({path, before: v});
  return changes;
}

// Split two strings into [common prefix, old middle, new middle, common suffix], for
// highlighting what changed inside a long value. The changed part is widened to whole words
// ("[shipping → delivery]", not "[shipp → deliv]ing"), as the CLI's tables do.
export function splitEdit(a, b) {
  let p = 0;
  while (p < a.length && p < b.length && a[p] === b[p]) ++p;
  let s = 0;
  while (s < a.length - p && s < b.length - p && a[a.length - 1 - s] === b[b.length - 1 - s]) ++s;
  const word = (c) => /[\p{L}\p{N}]/u.test(c);
  while (p > 0 && word(a[p - 1])) --p;
  while (s > 0 && word(a[a.length - s])) --s;
  return [a.slice(0, p), a.slice(p, a.length - s), b.slice(p, b.length - s), a.slice(a.length - s)];
}

// Context kept around a change inside a long text (the snapshot has the whole value).
const CONTEXT = 40;

// One side of a change, with the changed part marked: <del> on the old side, <ins> on the new.
export function markedValue(change, side) {
  const has = side === 'before' ? 'before' in change : 'after' in change;
  const v = has ? change[side] : undefined;
  const tag = side === 'before' ? 'del' : 'ins';
  if (typeof change.before === 'string' && typeof change.after === 'string') {
    let [pre, oldMid, newMid, post] = splitEdit(change.before, change.after);
    if (pre.length > CONTEXT + 10) pre = '…' + pre.slice(-CONTEXT);
    if (post.length > CONTEXT + 10) post = post.slice(0, CONTEXT) + '…';
    const mid = side === 'before' ? oldMid : newMid;
    return h('span', {class: 'value'}, pre, mid ? h(tag, {}, mid) : null, post);
  }
  return h('span', {class: 'value'}, h(tag, {}, plain(v)));
}

// ---- RFC 6902 ------------------------------------------------------------------------------

function unescapeToken(t) {
  return t.replace(/~1/g, '/').replace(/~0/g, '~');
}

// Apply an RFC 6902 patch to `doc` (not modified) and return the result.
export function applyPatch(doc, patch) {
  let root = structuredClone(doc);
  for (const op of patch || []) {
    const tokens = op.path === '' ? [] : op.path.split('/').slice(1).map(unescapeToken);
    const value = op.op === 'copy' || op.op === 'move' ? getPath(root, op.from) : op.value;
    if (op.op === 'move') root = setPath(root, op.from.split('/').slice(1).map(unescapeToken), undefined, 'remove');
    if (op.op === 'test') continue;
    root = setPath(root, tokens, structuredClone(value), op.op === 'remove' ? 'remove' : op.op);
  }
  return root;
}

function getPath(doc, path) {
  let cur = doc;
  for (const t of path.split('/').slice(1).map(unescapeToken)) cur = cur == null ? undefined : cur[t];
  return cur;
}

function setPath(root, tokens, value, kind) {
  if (tokens.length === 0) return kind === 'remove' ? null : value;
  let parent = root;
  for (const t of tokens.slice(0, -1)) parent = parent[t];
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (kind === 'remove') parent.splice(i, 1);
    else if (kind === 'add' || kind === 'copy' || kind === 'move') parent.splice(i, 0, value);
    else parent[i] = value;
  } else if (kind === 'remove') {
    delete parent[last];
  } else {
    parent[last] = value;
  }
  return root;
}
