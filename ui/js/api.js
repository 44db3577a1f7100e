// The platform's HTTP API (API.md): JSON in and out, the session cookie,
// errors as ApiError carrying the API's {"error":{"code","message"}} shape
// (and "field", naming the field a 400 is about: "persona.prompt",
// "criteria[1].keywords[0]").

export class ApiError extends Error {
  constructor(status, code, message, retryAfter, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.field = field;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export async function api(method, path, body, { auth = true } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (res.ok) return data;
  const retry = parseInt(res.headers.get('Retry-After') || '', 10);
  const err = new ApiError(
    res.status,
    data?.error?.code || `http_${res.status}`,
    data?.error?.message || `The server answered ${res.status} ${res.statusText}.`,
    Number.isFinite(retry) ? retry : undefined,
    data?.error?.field,
  );
  if (res.status === 401 && auth) onUnauthorized(err);
  throw err;
}

// A sentence a person can act on, for an ApiError.
export function explain(err) {
  if (!(err instanceof ApiError)) return String(err?.message || err);
  const wait = err.retryAfter !== undefined ? formatWait(err.retryAfter) : null;
  switch (err.code) {
    case 'invalid_credentials': return 'That email and password do not match an account.';
    case 'rate_limited':
      return `Too many attempts. Please wait${wait ? ` ${wait}` : ' a moment'} before trying again.`;
    case 'email_taken': return 'An account with this email already exists. Sign in instead?';
    case 'weak_password': return `That password is too weak: ${err.message}.`;
    case 'invalid_invite':
      return 'That invite code does not work: it may have been used, revoked or have expired. Ask your admin for a new one.';
    case 'forbidden': return 'Your role does not allow this. Ask an admin of your organization.';
    case 'unavailable':
      return `The service is briefly unavailable${wait ? `; try again in ${wait}` : ''}.`;
    default: return err.message.charAt(0).toUpperCase() + err.message.slice(1);
  }
}

export function formatWait(secs) {
  if (secs < 60) return `${secs} second${secs === 1 ? '' : 's'}`;
  const m = Math.ceil(secs / 60);
  return `${m} minute${m === 1 ? '' : 's'}`;
}
