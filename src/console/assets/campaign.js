// The campaign panel: every version with its actor and commit time, field-level diffs with the
// changed part highlighted, the full snapshot of any version (rebuilt from the log's RFC 6902
// patches), and shift-only versions folded under the change that caused them.
import * as api from './api.js';
import {h, clear, fill, add, formatTime, timeKey, markedValue, applyPatch, withThousands} from './util.js';
import {explainBox, showError} from './app.js';
import {renderBlame} from './blame.js';

// tab: 'versions' (default) or 'blame'; onTab(name, version) switches (and keeps it in the URL).
export async function renderCampaign(panel, campaign, atText, onClose, customer, tab = '', onTab = () => {},
    focusVersion = '') {
  if (tab === 'blame') {
    fill(panel, closeButton(onClose), h('h2', {id: 'campaign-title'}, `Campaign ${campaign}`),
        tabs('blame', onTab), h('div', {id: 'blame'}));
    if (/^[1-9][0-9]*$/.test(campaign)) {
      await renderBlame(panel.querySelector('#blame'), campaign, atText, (v) => onTab('versions', v));
    } else {
      fill(panel.querySelector('#blame'), explainBox('error', 'Not a campaign id',
          `“${campaign}” in the address is not a campaign id (a positive whole number).`));
    }
    return;
  }
  fill(panel, h('p', {class: 'muted'}, `Loading campaign ${campaign}…`));
  if (!/^[1-9][0-9]*$/.test(campaign)) {
    fill(panel, explainBox('error', 'Not a campaign id',
        `“${campaign}” in the address is not a campaign id (a positive whole number).`));
    return;
  }
  let r;
  try {
    r = await api.log(campaign);
  } catch (err) {
    showError(panel, err, `campaign ${campaign}`);
    panel.prepend(closeButton(onClose));
    return;
  }
  // Snapshots, rebuilt version by version from the patches (the first one patches null).
  let doc = null;
  const snapshots = r.versions.map((v) => (doc = applyPatch(doc, v.patch)));
  let live = -1;
  r.versions.forEach((v, i) => { if (timeKey(v.event_time) <= timeKey(atText)) live = i; });
  const last = snapshots[snapshots.length - 1] || {};
  const snapshotBox = h('div', {id: 'snapshot'});
  const showSnapshot = (i) => {
    fill(snapshotBox, h('h3', {}, `Snapshot of v${r.versions[i].version}`,
        h('button', {type: 'button', class: 'link', onclick: () => clear(snapshotBox)}, 'hide')),
    h('pre', {class: 'json', id: 'snapshot-json'}, JSON.stringify(snapshots[i], null, 2)));
    snapshotBox.scrollIntoView({block: 'nearest'});
  };
  const liveText = live < 0 ? 'did not exist yet at the moment shown' :
    r.versions[live].event_type === 'deleted' ? `was deleted at the moment shown (v${r.versions[live].version})` :
    `was at v${r.versions[live].version} at the moment shown`;
  fill(panel, 
      closeButton(onClose),
      h('h2', {id: 'campaign-title'}, `Campaign ${r.campaign_id} “${last.name || ''}”`),
      tabs('versions', onTab),
      h('p', {class: 'muted'}, `customer ${r.customer_id} · ${withThousands(r.versions.length)} versions · ${liveText}`),
      String(r.customer_id) !== String(customer) ? explainBox('warn', 'Another customer\'s campaign',
          `Campaign ${r.campaign_id} belongs to customer ${r.customer_id}, not to customer ${customer}: ` +
          'it is not in the list beside it.') : null,
      snapshotBox,
      h('ol', {class: 'versions', id: 'versions'}, groupVersions(r.versions, live, showSnapshot)));
  const wanted = focusVersion ? panel.querySelector(`[data-version="${Number(focusVersion)}"]`) : null;
  if (wanted) {
    wanted.closest('details')?.setAttribute('open', '');
    wanted.classList.add('focused');
    wanted.scrollIntoView({block: 'nearest'});
  } else if (live >= 0) {
    panel.querySelector('.version.live')?.scrollIntoView({block: 'nearest'});
  }
}

// Versions | Blame: two views of the open campaign.
function tabs(current, onTab) {
  const tab = (name, label) => h('button', {type: 'button', role: 'tab', id: `tab-${name}`,
    class: current === name ? 'tab current' : 'tab', 'aria-selected': current === name ? 'true' : 'false',
    onclick: () => { if (current !== name) onTab(name); }}, label);
  return h('div', {class: 'tabs', role: 'tablist'}, tab('versions', 'Versions'), tab('blame', 'Who set each field'));
}

function closeButton(onClose) {
  return h('button', {type: 'button', class: 'close', id: 'campaign-close', 'aria-label': 'Close', onclick: onClose}, '×');
}

// Consecutive shift-only versions form one folded group, named after their causes.
function groupVersions(versions, live, showSnapshot) {
  const out = [];
  for (let i = 0; i < versions.length;) {
    if (versions[i].kind !== 'shifted') {
      out.push(versionItem(versions[i], i, live, showSnapshot));
      ++i;
      continue;
    }
    let j = i;
    while (j < versions.length && versions[j].kind === 'shifted') ++j;
    out.push(shiftGroup(versions.slice(i, j), i, live, showSnapshot));
    i = j;
  }
  return out;
}

function header(v, i, showSnapshot) {
  return h('div', {class: 'vhead'},
      h('span', {class: 'vnum'}, `v${v.version}`), ' ',
      h('span', {class: `kind ${v.kind}`}, v.kind), ' ',
      h('span', {class: 'when'}, formatTime(v.event_time)), ' by ',
      h('span', {class: 'actor'}, v.actor),
      v.transaction_id ? h('span', {class: 'muted'}, ` · tx ${v.transaction_id}`) : null,
      v.missed_versions ? h('span', {class: 'warn-text'}, ` · ${v.missed_versions} earlier not captured`) : null,
      h('button', {type: 'button', class: 'link snapshot-btn', onclick: () => showSnapshot(i)}, 'snapshot'));
}

function versionItem(v, i, live, showSnapshot) {
  const changes = v.previous_version === null ?
    h('p', {class: 'muted'}, `created with ${v.changes.length} fields`) :
    v.changes.length ? h('table', {class: 'changes'}, h('tbody', {}, v.changes.map((c) =>
      h('tr', {class: 'change', dataset: {path: c.path}},
          h('td', {class: 'path'}, c.path), h('td', {}, markedValue(c, 'before')),
          h('td', {class: 'arrow'}, '→'), h('td', {}, markedValue(c, 'after')))))) :
      h('p', {class: 'muted'}, v.event_type === 'deleted' ? 'deleted; the last content is kept' : 'no field changed');
  return h('li', {class: `version ${v.kind}${i === live ? ' live' : ''}`, dataset: {version: v.version, kind: v.kind}},
      header(v, i, showSnapshot),
      i === live ? h('span', {class: 'badge'}, 'live at the moment shown') : null,
      v.kind === 'moved' && v.cause && v.cause.primaries && v.cause.primaries.length > 1 ?
        h('p', {class: 'muted'}, v.cause.summary) : null,
      changes);
}

function priorityMove(v) {
  const c = v.changes.find((x) => x.path === 'priority');
  return c ? `${c.before} → ${c.after}` : '';
}

function shiftGroup(vs, start, live, showSnapshot) {
  const causes = [...new Set(vs.map((v) => (v.cause && v.cause.summary) || 'another campaign changed'))];
  const title = vs.length === 1 ?
    `v${vs[0].version}: priority ${priorityMove(vs[0])} because ${causes[0]}` :
    `${withThousands(vs.length)} shift-only versions (v${vs[0].version}–v${vs[vs.length - 1].version}): ` +
      `priority moved because ${causes.length === 1 ? causes[0] : `of ${causes.length} other changes`}`;
  const holdsLive = live >= start && live < start + vs.length;
  return h('li', {class: `shift-group${holdsLive ? ' live' : ''}`, dataset: {versions: vs.map((v) => v.version).join(',')}},
      h('details', {open: holdsLive},
          h('summary', {}, title, holdsLive ? h('span', {class: 'badge'}, 'live at the moment shown') : null),
          h('ul', {class: 'shifts'}, vs.map((v, k) => h('li', {class: 'shift', dataset: {version: v.version}},
              header(v, start + k, showSnapshot),
              h('p', {}, `moved ${priorityMove(v)} because `, h('span', {class: 'cause'},
                  (v.cause && v.cause.summary) || 'another campaign changed')))))));
}
