// The console's only way to the server: the public REST API, same origin, bearer tokens.
//
// The access token lives in this module's memory only. The refresh token never reaches a
// script: with `X-Gatehouse-Client: console` the gateway keeps it in an HttpOnly, SameSite=Strict
// cookie on /api/v1/auth/refresh, so after a reload `resume()` trades that cookie for a new
// access token. An access token that expired is refreshed once, transparently; a session that
// ended (sign-out elsewhere, suspension, password reset) calls the `onSessionEnded` handler.

const CLIENT = { "X-Gatehouse-Client": "console" };
// 401 codes of a bearer token or its session: worth one refresh, then the session is over.
const SESSION_CODES = new Set(["token_missing", "token_invalid", "token_expired", "session_invalid", "unauthorized"]);
// 403 codes of something the account owes before it may do anything else.
export const REQUIREMENTS = new Set(["password_change_required", "2fa_enrollment_required"]);

let accessToken = null;
let refreshing = null; // one refresh at a time: the refresh token works once
const handlers = { onSessionEnded: () => {}, onRequirement: () => {} };

export function setHandlers(given) {
  Object.assign(handlers, given);
}

export function signedIn() {
  return accessToken !== null;
}

/** An error answer of the API, in words, with its field problems (`fields`: field -> text). */
export class ApiError extends Error {
  constructor(status, body, headers) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.code = error.code || "error";
    this.details = error.details || {};
    this.fields = fieldProblems(this.details);
    const retry = headers && headers.get("Retry-After");
    this.retryAfter = retry ? Number(retry) : null;
  }
}

/** `details` as field -> sentence: the gateway's `{"json": {"password": ["..."]}}` and the
 * services' `{"password": "..."}` alike; nested problems (list items) joined. */
export function fieldProblems(details) {
  const source = details && typeof details.json === "object" && details.json !== null
    ? { ...details, ...details.json } : (details || {});
  const out = {};
  for (const [field, problem] of Object.entries(source)) {
    if (field === "json") continue;
    const text = words(problem);
    if (text) out[field] = text;
  }
  return out;
}

function words(problem) {
  if (problem === null || problem === undefined) return "";
  if (typeof problem === "string") return problem;
  if (typeof problem === "number" || typeof problem === "boolean") return String(problem);
  if (Array.isArray(problem)) return problem.map(words).filter(Boolean).join(" ");
  return Object.values(problem).map(words).filter(Boolean).join(" ");
}

function url(path, query) {
  const base = path.startsWith("/api/") ? path : `/api/v1${path}`;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.append(key, value);
  }
  const text = params.toString();
  return text ? `${base}?${text}` : base;
}

async function send(method, path, { body, query, ifMatch, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (accessToken && !sent.Authorization) sent.Authorization = `Bearer ${accessToken}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (ifMatch) sent["If-Match"] = ifMatch;
  let response;
  try {
    response = await fetch(url(path, query), {
      method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin", cache: "no-store",
    });
  } catch (failure) {
    throw new ApiError(0, { error: { code: "network_error", message: "The server cannot be reached. Check your connection and try again." } });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  return { status: response.status, ok: response.ok, data, text, headers: response.headers, etag: response.headers.get("ETag") };
}

/**
 * request(method, path, options) -> {status, data, text, etag, headers}; throws ApiError.
 * `text`: the body as received (a CSV or JSON-lines download; `data` is its JSON, when it is).
 * path: "/users" means /api/v1/users; options: body (JSON), query (object), ifMatch (an ETag).
 */
export async function request(method, path, options = {}) {
  let answer = await send(method, path, options);
  if (answer.status === 401 && accessToken && SESSION_CODES.has(answer.data?.error?.code)) {
    if (await refresh()) {
      answer = await send(method, path, options);
    }
    if (answer.status === 401 && SESSION_CODES.has(answer.data?.error?.code)) {
      accessToken = null;
      handlers.onSessionEnded();
    }
  }
  if (!answer.ok) {
    const error = new ApiError(answer.status, answer.data, answer.headers);
    if (answer.status === 403 && REQUIREMENTS.has(error.code)) handlers.onRequirement(error.code);
    throw error;
  }
  return answer;
}

export const api = {
  request,
  get: (path, query) => request("GET", path, { query }),
  post: (path, body = {}, options = {}) => request("POST", path, { ...options, body }),
  put: (path, body = {}, options = {}) => request("PUT", path, { ...options, body }),
  patch: (path, body = {}, options = {}) => request("PATCH", path, { ...options, body }),
  del: (path, options = {}) => request("DELETE", path, options),
};

// --- Session: sign-in, its second step, resuming after a reload, sign-out.

function take(answer) {
  if (!answer.ok) throw new ApiError(answer.status, answer.data, answer.headers);
  if (answer.data && answer.data.access_token) accessToken = answer.data.access_token;
  return answer.data;
}

/** Password step: the tokens' answer, or `{second_factor_required, login_ticket, methods}`. */
export async function signIn(login, password) {
  return take(await send("POST", "/auth/login", { body: { login, password }, headers: CLIENT }));
}

/** Second step: `proof` is `{code}` or `{recovery_code}`. */
export async function secondFactor(loginTicket, proof) {
  return take(await send("POST", "/auth/login/second-factor", { body: { login_ticket: loginTicket, ...proof }, headers: CLIENT }));
}

/** A new access token through the refresh cookie; false when there is no session to resume. */
export function refresh() {
  if (!refreshing) {
    refreshing = send("POST", "/auth/refresh", { body: {}, headers: CLIENT })
      .then((answer) => {
        if (answer.ok && answer.data?.access_token) {
          accessToken = answer.data.access_token;
          return true;
        }
        accessToken = null;
        return false;
      })
      .catch(() => false)
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

export const resume = refresh;

/** Ends this session on the server (also clears the refresh cookie); never throws. */
export async function signOut() {
  try {
    if (accessToken) await request("POST", "/auth/logout", { headers: CLIENT });
  } catch {
    // already ended: nothing to end
  } finally {
    accessToken = null;
  }
}
