// Search: a customer by id, or by the id or name of one of its campaigns (GET /v1/support/search).
import * as api from './api.js';
import {h, clear, fill, add, formatTime, withThousands} from './util.js';
import {explainBox, showError} from './app.js';

export function searchForm(value, onSearch) {
  const input = h('input', {id: 'search-q', type: 'search', value, required: true,
    placeholder: 'customer id, campaign id or name', 'aria-label': 'Search'});
  return h('form', {class: 'search', onsubmit: (e) => {
    e.preventDefault();
    const q = input.value.trim();
    if (q) onSearch(q);
  }}, input, h('button', {type: 'submit', id: 'search-go'}, 'Find'));
}

function customerLink(c, extra = '') {
  return `/console/customers/${encodeURIComponent(c)}${extra}`;
}

export async function renderSearchResults(el, q) {
  fill(el, h('p', {class: 'muted'}, 'Searching…'));
  let r;
  try {
    r = await api.search(q);
  } catch (err) {
    showError(el, err, 'the search');
    return;
  }
  clear(el);
  if (!r.hits.length) {
    add(el, explainBox('empty', `Nothing matches “${q}”`, r.note ||
        'No customer has that id, and no campaign has that id or a name containing it.'));
    return;
  }
  const rows = r.hits.map((hit) => hit.kind === 'customer' ?
    h('li', {class: 'hit customer', dataset: {customer: hit.customer_id}},
        h('a', {href: customerLink(hit.customer_id), 'data-nav': true}, `Customer ${hit.customer_id}`),
        ` — ${withThousands(hit.campaigns)} campaigns (${withThousands(hit.live_campaigns)} not deleted), ` +
        `last change ${formatTime(hit.last_change)}`) :
    h('li', {class: 'hit campaign', dataset: {customer: hit.customer_id, campaign: hit.campaign_id}},
        h('a', {href: customerLink(hit.customer_id, `?campaign=${hit.campaign_id}`), 'data-nav': true},
            `Campaign ${hit.campaign_id} “${hit.name}”`),
        ` of customer ${hit.customer_id} — ${hit.deleted ? 'deleted' : hit.status}, v${hit.version}, ` +
        `matched by ${hit.matched}, last change ${formatTime(hit.last_change)}`));
  add(el, h('section', {class: 'card'},
      h('h2', {}, `${r.hits.length}${r.truncated ? '+' : ''} match${r.hits.length === 1 ? '' : 'es'} for “${q}”`),
      h('ul', {class: 'hits'}, rows),
      r.truncated ? h('p', {class: 'muted'}, 'More match; type more of the name to narrow it.') : null));
}
