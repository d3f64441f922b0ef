// Calls to the service on the page's own origin. The token lives in this tab's session
// storage (gone when the tab closes) and travels only in X-Auth-Token; never in a cookie.

const TOKEN_KEY = "imagedata.token";

export class ApiError extends Error {
  constructor(status, message, headers) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  me: null, // {user, project, roles, admin}
  config: null, // {auth, link_max_seconds, stores, import_methods}
};

/** Headers every call carries. */
export function authHeaders(extra = {}) {
  const headers = { Accept: "application/json", ...extra };
  if (session.token) headers["X-Auth-Token"] = session.token;
  return headers;
}

/** One call: the parsed JSON answer (or the Response for `raw`); ApiError for 4xx/5xx. */
export async function api(method, path, { json, body, headers = {}, raw = false } = {}) {
  const init = { method, headers: authHeaders(headers), cache: "no-store" };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = init.headers["Content-Type"] || "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  if (response.status === 204 || method === "HEAD") return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

/** An ApiError from a failed answer, with the service's message. */
export async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const text = await response.text();
    try {
      const parsed = JSON.parse(text);
      message = parsed.message || parsed.error?.message || message;
    } catch { if (text) message = text.trim().split("\n").pop(); }
  } catch { /* the body is gone: keep the status */ }
  return new ApiError(response.status, message, response.headers);
}

/** Path of one image (ids are UUIDs, encoded anyway). */
export const imagePath = (id) => `/v2/images/${encodeURIComponent(id)}`;

/** JSON-patch an image (Glance's media type). */
export function patchImage(id, operations) {
  return api("PATCH", imagePath(id), {
    json: operations, headers: { "Content-Type": "application/openstack-images-v2.1-json-patch" },
  });
}
