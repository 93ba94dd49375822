// The console's entry point: the router (the URL holds the whole state: customer, moment,
// campaign; docs/console.md), sign-in, the header's tools and the search page.
import * as api from './api.js';
import {h, clear, fill, add, timeZoneMode, setTimeZoneMode} from './util.js';
import {renderCustomer} from './customer.js';
import {renderCompare} from './compare.js';
import {renderSearchResults, searchForm} from './search.js';

const main = document.getElementById('main');
const tools = document.getElementById('top-tools');

// Go to `url` (a path under /console/ with its query) and render it. replace: no new history
// entry (scrubbing, paging).
export function navigate(url, {replace = false} = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

// Re-render after a setting changed (time zone) without touching the URL.
export function rerender() {
  render();
}

// An error or empty state in words: a title, the explanation, and optional details.
export function explainBox(kind, title, text, detail) {
  return h('div', {class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status'},
      h('strong', {}, title), h('p', {}, text), detail ? h('p', {class: 'detail'}, detail) : null);
}

// Show an ApiError (or any error) in `el`; a 401 drops the token and asks to sign in again,
// keeping the URL so the view comes back afterwards.
export function showError(el, err, what) {
  if (err instanceof api.ApiError && err.status === 401) {
    api.setToken('');
    renderSignIn(err.message);
    return;
  }
  fill(el, explainBox('error', `Could not load ${what}`, err.message,
      err.detail && err.detail !== err.message ? err.detail : ''));
}

function renderTools() {
  clear(tools);
  if (!api.token()) return;
  const mode = timeZoneMode();
  add(tools, 
      h('button', {id: 'tz-toggle', type: 'button', title: 'Show times in UTC or in this browser\'s time zone',
        onclick: () => {
          setTimeZoneMode(mode === 'utc' ? 'local' : 'utc');
          render();
        }}, mode === 'utc' ? 'Times: UTC' : 'Times: local'),
      h('button', {id: 'sign-out', type: 'button', onclick: () => {
        api.setToken('');
        render();
      }}, 'Sign out'));
}

export function renderSignIn(reason) {
  renderTools();
  const input = h('textarea', {id: 'token', rows: 2, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'paste the bearer token here', required: true});
  const status = h('div', {id: 'signin-status'});
  if (reason) add(status, explainBox('error', 'Sign in again', reason));
  const form = h('form', {id: 'signin', class: 'card signin', onsubmit: async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) {
      fill(status, explainBox('error', 'No token', 'Paste a support token first.'));
      return;
    }
    api.setToken(t);
    fill(status, h('p', {}, 'Checking the token…'));
    try {
      await api.search('1', {limit: 1});
    } catch (err) {
      if (err.status === 401 || err.status === 0) api.setToken('');
      fill(status, explainBox('error', err.status === 401 ? 'Token not accepted' : 'Could not sign in',
          err.message));
      return;
    }
    render();
  }},
  h('h1', {}, 'Sign in'),
  h('p', {}, 'Paste a support token. `campaign-history demo` prints one; a server reads its tokens ' +
      'from --support-tokens FILE. The token stays in this tab only (sessionStorage).'),
  location.pathname !== '/console/' && location.pathname !== '/console' ?
    h('p', {class: 'muted'}, 'After signing in you go on to ', h('code', {}, location.pathname + location.search)) : null,
  h('label', {for: 'token'}, 'Support token'), input,
  h('button', {type: 'submit', id: 'signin-submit'}, 'Sign in'), status);
  fill(main, form);
  input.focus();
}

function renderHome() {
  const params = new URLSearchParams(location.search);
  const q = params.get('q') || '';
  const results = h('div', {id: 'search-results'});
  fill(main, 
      h('section', {class: 'card'},
          h('h1', {}, 'Find a customer'),
          h('p', {}, 'By customer id, campaign id, or part of a campaign\'s name.'),
          searchForm(q, (text) => navigate('/console/?q=' + encodeURIComponent(text)))),
      results);
  if (q) renderSearchResults(results, q);
}

function render() {
  renderTools();
  if (!api.token()) {
    renderSignIn('');
    return;
  }
  const path = location.pathname.replace(/\/+$/, '');
  let m;
  if (path === '/console' || path === '') {
    renderHome();
  } else if ((m = /^\/console\/customers\/([^/]+)$/.exec(path))) {
    renderCustomer(main, decodeURIComponent(m[1]), new URLSearchParams(location.search));
  } else if ((m = /^\/console\/customers\/([^/]+)\/compare$/.exec(path))) {
    renderCompare(main, decodeURIComponent(m[1]), new URLSearchParams(location.search));
  } else {
    fill(main, explainBox('error', 'No such page',
        `The console has no page at ${location.pathname}. Its pages are /console/ (find a customer), ` +
        '/console/customers/{customer}?at=T&campaign=ID and /console/customers/{customer}/compare?from=A&to=B.'));
  }
}

window.addEventListener('popstate', render);
// Links inside the console navigate without reloading the page.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
render();
