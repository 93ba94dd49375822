// The blame view of a campaign: for each field of the campaign at the moment shown, which version
// set it, when and by whom (GET /v1/support/campaigns/{id}/blame?at=T, the CLI's `blame --json`).
// A field last set by a shift-only version (the priority moved because another campaign was
// created, moved or deleted) says so and names that cause, as the CLI's WHY column does.
import * as api from './api.js';
import {h, fill, formatTime, shorten} from './util.js';
import {explainBox, showError} from './app.js';

function valueText(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function heading(r, name) {
  if (r.version === null) return `no history yet at ${formatTime(r.at)}`;
  return `as of ${formatTime(r.at)}: v${r.version}` +
      (r.exists ? '' : ' (deleted then; its last content below)') + (name ? ` · “${name}”` : '');
}

function blameRow(f, onVersion) {
  const why = f.cause ? h('div', {class: 'why'}, 'shifted: ', h('span', {class: 'cause'}, f.cause.summary)) : null;
  return h('tr', {class: `blame-row ${f.kind}`, dataset: {path: f.path, version: f.version, kind: f.kind}},
      h('td', {class: 'path'}, f.path),
      h('td', {class: 'value', title: valueText(f.value)}, shorten(valueText(f.value), 120)),
      h('td', {class: 'small'}, h('button', {type: 'button', class: 'link vlink', title: 'Show this version in the list of versions',
        onclick: () => onVersion(f.version)}, `v${f.version}`), ' ', h('span', {class: `kind ${f.kind}`}, f.kind)),
      h('td', {class: 'small'}, formatTime(f.event_time)),
      h('td', {class: 'actor'}, f.actor, why));
}

// Render the blame of `campaign` at `atText` into `el`; onVersion(n) opens the versions tab.
export async function renderBlame(el, campaign, atText, onVersion) {
  fill(el, h('p', {class: 'muted'}, `Loading who set each field of campaign ${campaign}…`));
  let r;
  try {
    r = await api.blame(campaign, {at: atText});
  } catch (err) {
    showError(el, err, `the blame of campaign ${campaign}`);
    return;
  }
  const nameField = r.fields.find((f) => f.path === 'name');
  const shifted = r.fields.filter((f) => f.cause).length;
  fill(el,
      h('p', {class: 'muted', id: 'blame-heading'}, heading(r, nameField ? valueText(nameField.value) : '')),
      r.complete === false ? explainBox('warn', 'The history may still change',
          `It is complete through ${formatTime(r.complete_through)} only; a later change to this campaign ` +
          'at the moment shown may not be in it yet.') : null,
      !r.fields.length ? explainBox('empty', 'Nothing to blame yet',
          `Campaign ${campaign} did not exist at ${formatTime(r.at)}.`) :
        h('div', {class: 'table-wrap'}, h('table', {id: 'blame-table'},
            h('thead', {}, h('tr', {}, ['field', 'value', 'set by', 'when', 'who'].map((t) => h('th', {}, t)))),
            h('tbody', {}, r.fields.map((f) => blameRow(f, onVersion))))),
      shifted ? h('p', {class: 'muted', id: 'blame-shift-note'},
          `${shifted === 1 ? 'One field was' : `${shifted} fields were`} last set by a shift-only version: ` +
          'the campaign itself was not edited then; another campaign\'s change moved its priority.') : null);
}
