// The support API client (docs/api.md "Support API"): a bearer token kept in sessionStorage (gone
// when the tab closes), JSON answers, and errors explained in words.

const TOKEN_KEY = 'ch-console-token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// An API failure with a sentence for people (`message`), the HTTP status (0: no answer) and the
// API's own words (`detail`).
export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail || '';
  }
}

function explain(status, detail) {
  switch (status) {
    case 401:
      return 'The sign-in token was not accepted (401). Paste the whole token again; ' +
          '`campaign-history demo` prints one, and the server reads them from --support-tokens.';
    case 403:
      return 'This token may not read that (403).';
    case 404:
      return detail ? `Not found: ${detail}` : 'Not found (404).';
    case 400:
      return detail ? `The request was refused: ${detail}` : 'The request was refused (400).';
    case 412:
      return detail || 'The history cannot answer that (412).';
    case 503:
      return 'The history is unavailable right now (503)' + (detail ? `: ${detail}` : '.') +
          ' Try again in a moment.';
    default:
      return `The server answered ${status}` + (detail ? `: ${detail}` : '.');
  }
}

function detailOf(body) {
  if (!body || typeof body !== 'object') return '';
  const e = body.error;
  if (typeof e === 'string') return body.message ? `${e}: ${body.message}` : e;
  if (e && typeof e === 'object') return e.message || e.code || JSON.stringify(e);
  return body.message || '';
}

// GET /v1/support/<path> with the query `params` (null/'' values left out); resolves to the
// parsed JSON body or rejects with an ApiError.
export async function get(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, String(v));
  }
  const url = '/v1/support/' + path + (q.toString() ? '?' + q : '');
  let res;
  try {
    res = await fetch(url, {headers: {Authorization: 'Bearer ' + token(), Accept: 'application/json'}});
  } catch (e) {
    throw new ApiError(0, 'The console cannot reach the server. Is `campaign-history serve ' +
        '--roles support` (or `demo`) still running?', String(e));
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (e) {
    body = null;
  }
  if (!res.ok) {
    const detail = detailOf(body) || (body ? '' : text.slice(0, 200));
    throw new ApiError(res.status, explain(res.status, detail), detail);
  }
  if (body === null) throw new ApiError(res.status, 'The server sent an answer that is not JSON.', text.slice(0, 200));
  return body;
}

export const asOf = (customer, params) => get(`customers/${encodeURIComponent(customer)}/as-of`, params);
export const timeline = (customer, params) =>
  get(`customers/${encodeURIComponent(customer)}/timeline`, params);
export const log = (campaign, params = {}) => get(`campaigns/${encodeURIComponent(campaign)}/log`, params);
export const blame = (campaign, params = {}) => get(`campaigns/${encodeURIComponent(campaign)}/blame`, params);
export const search = (q, params = {}) => get('search', {q, ...params});
