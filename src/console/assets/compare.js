// Compare two moments of a customer: which campaigns were created, deleted or changed in
// between, field by field. Computed here from two as-of answers (all campaigns at each moment).
// URL: /console/customers/{c}/compare?from=A&to=B.
import * as api from './api.js';
import {h, clear, fill, add, formatTime, parseTime, toInputValue, fromInputValue, isoTime, diffSnapshots,
  markedValue, withThousands} from './util.js';
import {navigate, explainBox, showError} from './app.js';

export async function renderCompare(main, customer, params) {
  const now = new Date();
  const from = parseTime(params.get('from') || '') || new Date(now.getTime() - 86400e3);
  const to = parseTime(params.get('to') || '') || now;
  const fromInput = h('input', {id: 'compare-from', type: 'datetime-local', step: 1, value: toInputValue(from)});
  const toInput = h('input', {id: 'compare-to', type: 'datetime-local', step: 1, value: toInputValue(to)});
  const result = h('div', {id: 'compare-result'}, h('p', {class: 'muted'}, 'Comparing…'));
  const base = `/console/customers/${encodeURIComponent(customer)}`;
  fill(main, 
      h('div', {class: 'crumbs'}, h('a', {href: '/console/', 'data-nav': true}, 'Find a customer'), ' › ',
          h('a', {href: `${base}?at=${encodeURIComponent(isoTime(to))}`, 'data-nav': true}, `Customer ${customer}`),
          ' › compare'),
      h('section', {class: 'card'},
          h('h1', {}, `Customer ${customer}: what changed between two moments`),
          h('form', {class: 'moment-form', onsubmit: (e) => {
            e.preventDefault();
            const a = fromInputValue(fromInput.value), b = fromInputValue(toInput.value);
            if (a && b) navigate(`${base}/compare?from=${encodeURIComponent(isoTime(a))}&to=${encodeURIComponent(isoTime(b))}`);
          }}, h('label', {for: 'compare-from'}, 'From'), fromInput, h('label', {for: 'compare-to'}, 'to'), toInput,
          h('button', {type: 'submit', id: 'compare-go'}, 'Compare'))),
      result);
  if (from > to) {
    fill(result, explainBox('error', 'The moments are the wrong way round',
        `“From” (${formatTime(from)}) is after “to” (${formatTime(to)}).`));
    return;
  }
  let a, b;
  try {
    [a, b] = await Promise.all([api.asOf(customer, {at: isoTime(from)}), api.asOf(customer, {at: isoTime(to)})]);
  } catch (err) {
    showError(result, err, `customer ${customer}'s campaigns`);
    return;
  }
  renderDifference(result, customer, a, b);
}

function campaignLink(customer, id, at, text) {
  return h('a', {href: `/console/customers/${encodeURIComponent(customer)}?at=${encodeURIComponent(at)}&campaign=${id}`,
    'data-nav': true}, text);
}

function renderDifference(el, customer, a, b) {
  const before = new Map(a.campaigns.map((s) => [s.id, s]));
  const after = new Map(b.campaigns.map((s) => [s.id, s]));
  const created = b.campaigns.filter((s) => !before.has(s.id));
  const deleted = a.campaigns.filter((s) => !after.has(s.id));
  const changed = [], shifted = [];
  for (const s of b.campaigns) {
    const old = before.get(s.id);
    if (!old || old.version === s.version) continue;
    const changes = diffSnapshots(old, s);
    if (changes.length === 1 && changes[0].path === 'priority') shifted.push({s, c: changes[0]});
    else if (changes.length) changed.push({s, changes});
  }
  const banners = [a, b].filter((r) => r.complete === false).map((r) => h('div', {class: 'notice warn'},
      h('strong', {}, 'Past what the history is complete through'),
      h('p', {}, `The history is complete through ${formatTime(r.complete_through)}; the side at ` +
          `${formatTime(r.at)} shows ${formatTime(r.answered_at)}.`)));
  fill(el, ...banners,
      h('p', {id: 'compare-summary'}, `${withThousands(a.campaigns.length)} campaigns at ${formatTime(a.answered_at)}, ` +
          `${withThousands(b.campaigns.length)} at ${formatTime(b.answered_at)}: ${created.length} created, ` +
          `${deleted.length} deleted, ${changed.length} changed, ${shifted.length} only moved in priority.`));
  if (!created.length && !deleted.length && !changed.length && !shifted.length) {
    add(el, explainBox('empty', 'Nothing changed', a.note || b.note ||
        'The customer\'s campaigns were the same at both moments.'));
    return;
  }
  const list = (title, id, items) => items.length ? h('section', {class: 'card', id},
      h('h2', {}, `${title} (${withThousands(items.length)})`), h('ul', {class: 'compare-list'}, items)) : null;
  add(el, 
      list('Created', 'compare-created', created.map((s) => h('li', {dataset: {campaignId: s.id}},
          campaignLink(customer, s.id, b.answered_at, `c${s.id} “${s.name}”`), ` at priority ${s.priority}, ${s.status}, last changed by ${s.updated_by}`))),
      list('Deleted', 'compare-deleted', deleted.map((s) => h('li', {dataset: {campaignId: s.id}},
          campaignLink(customer, s.id, a.answered_at, `c${s.id} “${s.name}”`), ` (was at priority ${s.priority}, ${s.status})`))),
      list('Changed', 'compare-changed', changed.map(({s, changes}) => h('li', {dataset: {campaignId: s.id}},
          campaignLink(customer, s.id, b.answered_at, `c${s.id} “${s.name}”`),
          ` v${before.get(s.id).version} → v${s.version}`,
          h('table', {class: 'changes'}, h('tbody', {}, changes.map((c) => h('tr', {class: 'change', dataset: {path: c.path}},
              h('td', {class: 'path'}, c.path), h('td', {}, markedValue(c, 'before')), h('td', {class: 'arrow'}, '→'),
              h('td', {}, markedValue(c, 'after'))))))))),
      shifted.length ? h('section', {class: 'card', id: 'compare-shifted'}, h('details', {},
          h('summary', {}, `${withThousands(shifted.length)} campaigns only moved in priority (because others were created, moved or deleted)`),
          h('ul', {class: 'compare-list'}, shifted.map(({s, c}) => h('li', {},
              campaignLink(customer, s.id, b.answered_at, `c${s.id} “${s.name}”`), ` priority ${c.before} → ${c.after}`))))) : null);
}
