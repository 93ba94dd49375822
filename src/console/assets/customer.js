// The customer view: pick a moment (date-time input, or the scrubber over the customer's change
// timeline), see the campaigns live then in priority order, paged by the API's limit/cursor, and
// open one of them (campaign.js). URL: /console/customers/{c}?at=T&campaign=ID&tab=blame&status=S&name=N.
import * as api from './api.js';
import {h, clear, fill, add, formatTime, parseTime, timeKey, toInputValue, fromInputValue, isoTime, plain, shorten,
  withThousands} from './util.js';
import {navigate, explainBox, showError} from './app.js';
import {renderCampaign} from './campaign.js';
import {searchForm} from './search.js';

export const PAGE_SIZE = 50;
const PAGE_SIZES = [20, 50, 100, 200];
const STATUSES = ['draft', 'active', 'paused', 'ended'];
// Scrubber windows: how much of the timeline around the moment it spans.
const WINDOWS = {'1h': 3600e3, '1d': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3, 'all': null};
const TIMELINE_LIMIT = 1000;

// Timelines already fetched: key -> answer (scrubbing moves the moment, not the window).
const timelineCache = new Map();

function customerUrl(customer, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return `/console/customers/${encodeURIComponent(customer)}${s ? '?' + s : ''}`;
}

function currentParams(params) {
  const out = {};
  for (const k of ['at', 'campaign', 'tab', 'version', 'status', 'name', 'window', 'limit']) if (params.get(k)) out[k] = params.get(k);
  return out;
}

export function renderCustomer(main, customer, params) {
  const state = currentParams(params);
  const go = (changes, opts) => navigate(customerUrl(customer, {...state, ...changes}), opts);
  const at = state.at ? parseTime(state.at) : null;
  if (state.at && !at) {
    fill(main, explainBox('error', 'Not a moment',
        `“${state.at}” in the address is not an RFC 3339 time like 2026-11-03T14:05:00Z.`));
    return;
  }
  const moment = at || new Date();
  // The moment exactly as the address has it (microseconds kept), for the API and comparisons.
  const atText = state.at || isoTime(moment);
  const campaignsEl = h('section', {id: 'campaigns', class: 'card'}, h('p', {class: 'muted'}, 'Loading campaigns…'));
  const scrubEl = h('div', {id: 'scrubber'}, h('p', {class: 'muted'}, 'Loading the timeline…'));
  const panel = h('aside', {id: 'campaign-panel', class: state.campaign ? 'open' : ''});
  fill(main, 
      h('div', {class: 'crumbs'}, h('a', {href: '/console/', 'data-nav': true}, 'Find a customer'), ' › ',
          `Customer ${customer}`,
          h('span', {class: 'spacer'}),
          searchForm('', (q) => navigate('/console/?q=' + encodeURIComponent(q)))),
      h('section', {class: 'card moment'},
          h('h1', {}, `Customer ${customer}`, h('span', {class: 'at', id: 'moment-label'},
              at ? ` as of ${formatTime(at)}` : ' now')),
          momentForm(moment, !at, go, customer, state),
          scrubEl),
      h('div', {class: state.campaign ? 'split with-panel' : 'split'}, campaignsEl, panel));
  loadCampaigns(campaignsEl, customer, atText, state, go, '');
  loadScrubber(scrubEl, customer, moment, atText, state, go);
  if (state.campaign) {
    renderCampaign(panel, state.campaign, atText, () => go({campaign: '', tab: '', version: ''}), customer,
        state.tab, (tab, version) => go({tab: tab === 'blame' ? 'blame' : '', version: version ? String(version) : ''}),
        state.version);
  }
}

function momentForm(moment, isNow, go, customer, state) {
  const input = h('input', {id: 'at-input', type: 'datetime-local', step: 1, value: toInputValue(moment),
    'aria-label': 'Moment'});
  const compareHref = `/console/customers/${encodeURIComponent(customer)}/compare?` +
      new URLSearchParams({from: isoTime(new Date(moment.getTime() - 86400e3)), to: isoTime(moment)});
  return h('form', {class: 'moment-form', onsubmit: (e) => {
    e.preventDefault();
    const d = fromInputValue(input.value);
    if (d) go({at: isoTime(d)});
  }},
  h('label', {for: 'at-input'}, 'Moment'), input,
  h('button', {type: 'submit', id: 'at-go'}, 'Show'),
  h('button', {type: 'button', id: 'at-now', onclick: () => go({at: ''})}, 'Now'),
  isNow ? h('span', {class: 'muted'}, '(showing now)') : null,
  h('span', {class: 'spacer'}),
  h('a', {href: compareHref, 'data-nav': true, id: 'compare-link'}, 'Compare two moments…'));
}

// ---- scrubber --------------------------------------------------------------------------------

const HALF_LIMIT = TIMELINE_LIMIT / 2;

// Up to HALF_LIMIT transactions of [from, to] (a closed range; to null = open).
function timelinePart(customer, from, to) {
  return api.timeline(customer, {from: isoTime(from), to: to ? isoTime(to) : null, limit: HALF_LIMIT});
}

// The transactions around the moment: up to HALF_LIMIT before it and HALF_LIMIT after it, within
// the window. The API pages forward only, so when the part before the moment holds more, the
// window narrows (by 8 each time) until it fits: the changes nearest the moment are the ones kept.
async function fetchTimeline(customer, moment, windowKey) {
  for (const [key, value] of timelineCache) {
    if (key.customer === customer && key.windowKey === windowKey && moment >= key.from &&
        (key.to === null || moment <= key.to)) {
      return value;
    }
  }
  let half = WINDOWS[windowKey] === null ? moment.getTime() - Date.UTC(1970, 0, 1) : WINDOWS[windowKey] / 2;
  let beforePart;
  for (;;) {
    beforePart = await timelinePart(customer, new Date(moment.getTime() - half), moment);
    if (!beforePart.truncated || half <= 60e3) break;
    half /= 8;
  }
  const afterTo = WINDOWS[windowKey] === null ? null : new Date(moment.getTime() + half);
  const afterPart = await timelinePart(customer, moment, afterTo);
  const seen = new Set(beforePart.transactions.map((t) => t.time + ' ' + t.transaction_id));
  const answer = {
    transactions: [...beforePart.transactions,
      ...afterPart.transactions.filter((t) => !seen.has(t.time + ' ' + t.transaction_id))],
    narrowed: beforePart.truncated || half < (WINDOWS[windowKey] ?? Infinity) / 2,
    truncated: afterPart.truncated,
    note: beforePart.note || afterPart.note,
    from: new Date(moment.getTime() - half),
  };
  const until = afterPart.truncated && afterPart.transactions.length ?
    parseTime(afterPart.transactions[afterPart.transactions.length - 1].time) : afterTo;
  timelineCache.set({customer, windowKey, from: answer.from, to: until}, answer);
  return answer;
}

function txSummary(tx) {
  const shifted = tx.cause && tx.cause.shifted ? ` (+${withThousands(tx.cause.shifted)} shifted)` : '';
  return `${(tx.cause && tx.cause.summary) || tx.actors.join(', ')}${shifted}`;
}

async function loadScrubber(el, customer, moment, atText, state, go) {
  const windowKey = state.window in WINDOWS ? state.window : '7d';
  let tl;
  try {
    tl = await fetchTimeline(customer, moment, windowKey);
  } catch (err) {
    showError(el, err, 'the timeline');
    return;
  }
  const txs = tl.transactions;
  const windowSelect = h('select', {id: 'scrub-window', 'aria-label': 'Scrubber window',
    onchange: (e) => go({window: e.target.value}, {replace: true})},
  Object.keys(WINDOWS).map((k) => h('option', {value: k, selected: k === windowKey},
      k === 'all' ? 'whole history' : `${k} around the moment`)));
  clear(el);
  if (!txs.length) {
    add(el, h('div', {class: 'scrub-head'}, h('strong', {}, 'Changes'), windowSelect),
        explainBox('empty', 'No changes in this window',
            (tl.note || 'The customer changed nothing in this window.') + ' Pick a wider window or another moment.'));
    return;
  }
  // Position i: the state right after transaction i. Start at the last one at or before the moment.
  let pos = -1;
  txs.forEach((tx, i) => { if (timeKey(tx.time) <= timeKey(atText)) pos = i; });
  const label = h('div', {id: 'scrub-label', class: 'scrub-label'});
  const show = (i) => {
    clear(label);
    if (i < 0) {
      add(label, `before the first change of this window (${formatTime(txs[0].time)})`);
      return;
    }
    const tx = txs[i];
    add(label, h('span', {class: 'when'}, formatTime(tx.time)), ' ',
        h('span', {class: 'tx'}, `tx ${tx.transaction_id || '—'}`), ' ', txSummary(tx),
        h('span', {class: 'muted'}, ` — change ${i + 1} of ${txs.length}${tl.truncated ? '+' : ''}`));
  };
  const pick = (i) => {
    if (i < 0 || i >= txs.length) return;
    go({at: txs[i].time}, {replace: true});
  };
  const range = h('input', {id: 'scrub', type: 'range', min: 0, max: txs.length - 1, step: 1,
    value: Math.max(pos, 0), 'aria-label': 'Scrub through the customer\'s changes',
    oninput: (e) => show(Number(e.target.value)),
    onchange: (e) => pick(Number(e.target.value))});
  const ticks = h('div', {class: 'ticks', 'aria-hidden': 'true'});
  const t0 = parseTime(txs[0].time).getTime();
  const span = Math.max(1, parseTime(txs[txs.length - 1].time).getTime() - t0);
  const step = Math.max(1, Math.ceil(txs.length / 400));
  for (let i = 0; i < txs.length; i += step) {
    const tick = h('span', {class: i === pos ? 'tick current' : 'tick'});
    tick.style.left = `${((parseTime(txs[i].time).getTime() - t0) / span) * 100}%`;
    ticks.append(tick);
  }
  add(el, 
      h('div', {class: 'scrub-head'}, h('strong', {}, 'Changes'), windowSelect,
          h('button', {type: 'button', id: 'scrub-prev', disabled: pos <= 0, onclick: () => pick(pos - 1)}, '◀ previous change'),
          h('button', {type: 'button', id: 'scrub-next', disabled: pos >= txs.length - 1, onclick: () => pick(pos + 1)}, 'next change ▶')),
      ticks, range, label,
      tl.narrowed || tl.truncated ? h('p', {class: 'muted', id: 'scrub-narrowed'},
          `The window holds more changes than the scrubber shows: it covers the ${withThousands(txs.length)} ` +
          `nearest the moment, from ${formatTime(tl.from)}. Pick a moment further on to scrub on.`) : null);
  show(pos);
}

// ---- campaigns at the moment -----------------------------------------------------------------

function schedule(s) {
  if (!s.start_at && !s.end_at) return '—';
  const day = (t) => formatTime(t).replace(/:00(\.\d+)?(Z| UTC.*)$/, '$2');
  if (!s.end_at) return `from ${day(s.start_at)}`;
  if (!s.start_at) return `until ${day(s.end_at)}`;
  return `${day(s.start_at)} → ${day(s.end_at)}`;
}

function contentSummary(content) {
  if (!content || typeof content !== 'object') return plain(content);
  const parts = Object.entries(content).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length ? parts.join(' · ') : '(empty)';
}

function pageSize(state) {
  const n = Number(state.limit);
  return PAGE_SIZES.includes(n) ? n : PAGE_SIZE;
}

function filtersForm(state, go) {
  const status = h('select', {id: 'filter-status', 'aria-label': 'Status'},
      h('option', {value: ''}, 'any status'),
      STATUSES.map((s) => h('option', {value: s, selected: state.status === s}, s)));
  const name = h('input', {id: 'filter-name', type: 'search', value: state.name || '',
    placeholder: 'name contains…', 'aria-label': 'Name contains'});
  return h('form', {class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    go({status: status.value, name: name.value.trim()});
  }}, status, name, h('button', {type: 'submit', id: 'filter-go'}, 'Filter'));
}

// The banner for an answer about an earlier moment than asked, or a moment the history is not
// yet complete through.
function completenessBanner(r) {
  if (r.complete !== false) return null;
  const clamped = r.answered_at && r.answered_at !== r.at;
  return h('div', {class: 'notice warn', id: 'incomplete-banner', role: 'status'},
      h('strong', {}, 'Past what the history is complete through'),
      h('p', {}, `The history is complete through ${formatTime(r.complete_through)}; later changes ` +
          `are still arriving. ` + (clamped ?
            `This shows the campaigns as of ${formatTime(r.answered_at)}, not ${formatTime(r.at)}.` :
            'What is shown may still change.')));
}

async function loadCampaigns(el, customer, atText, state, go, cursor, cursors = []) {
  let r;
  try {
    r = await api.asOf(customer, {at: atText, limit: pageSize(state), cursor,
      status: state.status, name: state.name});
  } catch (err) {
    showError(el, err, `customer ${customer}'s campaigns`);
    return;
  }
  const next = () => loadCampaigns(el, customer, atText, state, go, r.next_cursor, [...cursors, cursor]);
  const prev = () => loadCampaigns(el, customer, atText, state, go, cursors[cursors.length - 1], cursors.slice(0, -1));
  fill(el, completenessBanner(r) || '',
      h('div', {class: 'list-head'},
          h('h2', {}, 'Live campaigns'),
          h('span', {id: 'campaign-count', class: 'muted'}, r.matching === r.existing ?
            `${withThousands(r.existing)} campaign${r.existing === 1 ? '' : 's'} existed then` :
            `${withThousands(r.matching)} of ${withThousands(r.existing)} match the filters`),
          h('span', {class: 'spacer'}), filtersForm(state, go)));
  if (!r.campaigns.length) {
    add(el, explainBox('empty', 'No campaigns to show', r.note || (r.existing ?
      'None of the campaigns that existed then match the filters.' :
      `Customer ${customer} had no campaigns at that moment.`)));
    return;
  }
  const rows = r.campaigns.map((s) => h('tr', {
    class: String(s.id) === state.campaign ? 'selected' : null,
    dataset: {campaignId: s.id, version: s.version},
    tabindex: 0,
    onclick: () => go({campaign: String(s.id), version: ''}),
    onkeydown: (e) => { if (e.key === 'Enter') go({campaign: String(s.id), version: ''}); }},
  h('td', {class: 'num'}, s.priority),
  h('td', {class: 'num'}, s.id),
  h('td', {class: 'name'}, s.name),
  h('td', {}, h('span', {class: `status ${s.status}`}, s.status)),
  h('td', {class: 'schedule'}, schedule(s)),
  h('td', {}, s.trigger_event || '—'),
  h('td', {}, s.audience_segment || '—'),
  h('td', {class: 'content col-content', title: contentSummary(s.content)}, shorten(contentSummary(s.content), 70)),
  h('td', {class: 'num'}, `v${s.version}`),
  h('td', {class: 'small col-last'}, s.updated_by, h('br'), formatTime(s.updated_at))));
  const first = r.offset + 1, last = r.offset + r.campaigns.length;
  add(el, 
      h('div', {class: 'table-wrap'}, h('table', {id: 'campaign-table'},
          h('thead', {}, h('tr', {}, ['Prio', 'Id', 'Name', 'Status', 'Schedule', 'Trigger', 'Audience',
            'Content', 'Ver', 'Last changed'].map((t) => h('th', {class: `col-${t.split(' ')[0].toLowerCase()}`}, t)))),
          h('tbody', {}, rows))),
      h('div', {class: 'pager'},
          h('button', {type: 'button', id: 'page-prev', disabled: !cursors.length, onclick: prev}, '◀ previous'),
          h('span', {id: 'page-label'}, `${withThousands(first)}–${withThousands(last)} of ${withThousands(r.matching)}`),
          h('button', {type: 'button', id: 'page-next', disabled: !r.next_cursor, onclick: next}, 'next ▶'),
          h('select', {id: 'page-size', 'aria-label': 'Campaigns per page',
            onchange: (e) => go({limit: e.target.value === String(PAGE_SIZE) ? '' : e.target.value}, {replace: true})},
          PAGE_SIZES.map((n) => h('option', {value: n, selected: n === pageSize(state)}, `${n} a page`)))));
}
