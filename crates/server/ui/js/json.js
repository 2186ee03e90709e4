// JSON values as text, and the differences between two of them.

import { h, badge } from './dom.js';

/** Pretty JSON text (values are shown as text, never as markup). */
export function pretty(v) {
  if (v === undefined) return '';
  return JSON.stringify(v, null, 2);
}

/** A one-line preview of a value, at most `max` characters. */
export function preview(v, max = 120) {
  let s = typeof v === 'string' ? v : JSON.stringify(v);
  if (s === undefined) s = '';
  s = s.replace(/\s+/g, ' ');
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

/** A block showing a value. */
export function valueBlock(v, className = 'value') {
  return h('pre', { class: className }, pretty(v));
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const pointer = (path, k) => `${path}/${String(k).replace(/~/g, '~0').replace(/\//g, '~1')}`;

/**
 * The fields that differ between two JSON values, as JSON pointers:
 * `[{path, change: added|removed|modified, before, after}]`. Objects are
 * compared key by key; arrays of equal length item by item; anything
 * else as a whole.
 */
export function fieldDiff(before, after, path = '') {
  if (same(before, after)) return [];
  if (isObject(before) && isObject(after)) {
    const out = [];
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const k of keys) {
      const p = pointer(path, k);
      if (!(k in after)) out.push({ path: p, change: 'removed', before: before[k] });
      else if (!(k in before)) out.push({ path: p, change: 'added', after: after[k] });
      else out.push(...fieldDiff(before[k], after[k], p));
    }
    return out;
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    return before.flatMap((b, i) => fieldDiff(b, after[i], pointer(path, i)));
  }
  return [{ path: path || '(whole value)', change: 'modified', before, after }];
}

const META = ['kind', 'tags', 'priority', 'confidence', 'depends_on', 'relevance', 'expires_at', 'confidential'];

/** The changed fields of two versions of an entry (value and metadata). */
export function entryDiff(before, after) {
  const rows = fieldDiff(before ? before.value : undefined, after ? after.value : undefined);
  if (before && after) {
    for (const m of META) {
      if (!same(before[m], after[m])) rows.push({ path: `(${m})`, change: 'modified', before: before[m], after: after[m] });
    }
  }
  return rows;
}

/** A table of field changes. */
export function diffTable(rows) {
  if (!rows.length) return h('p', { class: 'muted' }, 'No field differs.');
  return h('table', { class: 'diff' },
    h('thead', {}, h('tr', {}, h('th', {}, 'field'), h('th', {}, 'change'), h('th', {}, 'before'), h('th', {}, 'after'))),
    h('tbody', {}, rows.map((r) => h('tr', { class: `diff-${r.change}` },
      h('td', { class: 'mono' }, r.path),
      h('td', {}, badge(r.change)),
      h('td', {}, r.change === 'added' ? '' : h('pre', { class: 'before' }, pretty(r.before))),
      h('td', {}, r.change === 'removed' ? '' : h('pre', { class: 'after' }, pretty(r.after)))))));
}
