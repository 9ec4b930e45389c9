"""Gmail's error bodies, OAuth tokens, quotas, fault injection and statistics."""

import http
import math
import secrets
import threading
import time

from fg_json import dumps

# --- error bodies ----------------------------------------------------------------------------

AUTH_MESSAGE = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.")
RATE_MESSAGE = "Resource has been exhausted (e.g. check quota)."
CONCURRENT_MESSAGE = "Too many concurrent requests for user."
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
GOOGLE_502_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <meta name=viewport content=\"initial-scale=1, "
    "minimum-scale=1, width=device-width\">\n  <title>Error 502 (Server Error)!!1</title>\n  <a href=//www.google.com/>"
    "<span id=logo aria-label=Google></span></a>\n  <p><b>502.</b> <ins>That\u2019s an error.</ins>\n  <p>The server "
    "encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.  "
    "<ins>That\u2019s all we know.</ins>\n").encode("utf-8")


def error_body(code, message, reason, domain="global", extra=None, pretty=True):
    err = {"message": message, "domain": domain, "reason": reason}
    if extra:
        err.update(extra)
    return dumps({"error": {"code": code, "message": message, "errors": [err],
                            "status": STATUS_NAMES.get(code, "UNKNOWN")}}, pretty)


def auth_error(pretty=True):
    """401 for an unknown, revoked or expired access token (Gmail's exact body)."""
    return dumps({"error": {"code": 401, "message": AUTH_MESSAGE,
                            "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
                                        "location": "Authorization", "locationType": "header"}],
                            "status": "UNAUTHENTICATED"}}, pretty)


def missing_auth_error(pretty=True):
    """401 for a request without any credential."""
    return dumps({"error": {"code": 401, "message": AUTH_MESSAGE.replace(
        "Request had invalid authentication credentials.", "Request is missing required authentication credential."),
        "errors": [{"message": "Login Required.", "domain": "global", "reason": "required",
                    "location": "Authorization", "locationType": "header"}],
        "status": "UNAUTHENTICATED"}}, pretty)


def insufficient_scope(pretty=True):
    """403 for a write method: the fake's tokens carry only gmail.readonly."""
    return dumps({"error": {"code": 403, "message": "Request had insufficient authentication scopes.",
                            "errors": [{"message": "Insufficient Permission", "domain": "global",
                                        "reason": "insufficientPermissions"}],
                            "status": "PERMISSION_DENIED"}}, pretty)


PROJECT_NUMBER = "000000000000"


def access_not_configured(pretty=True):
    """403 when the Gmail API is disabled in the OAuth client's Cloud project (Google's body)."""
    msg = ("Gmail API has not been used in project %s before or it is disabled. Enable it by visiting "
           "https://console.developers.google.com/apis/api/gmail.googleapis.com/overview?project=%s then retry. "
           "If you enabled this API recently, wait a few minutes for the action to propagate to our systems "
           "and retry." % (PROJECT_NUMBER, PROJECT_NUMBER))
    return dumps({"error": {"code": 403, "message": msg,
                            "errors": [{"message": msg, "domain": "usageLimits", "reason": "accessNotConfigured",
                                        "extendedHelp": "https://console.developers.google.com"}],
                            "status": "PERMISSION_DENIED",
                            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                         "reason": "SERVICE_DISABLED", "domain": "googleapis.com",
                                         "metadata": {"consumer": "projects/" + PROJECT_NUMBER,
                                                      "service": "gmail.googleapis.com"}}]}}, pretty)


def not_found(pretty=True):
    return error_body(404, "Requested entity was not found.", "notFound", pretty=pretty)


def invalid_argument(message, reason="invalid", pretty=True):
    return error_body(400, message, reason, pretty=pretty)


def status_error(code, reason=None, message=None, pretty=True):
    """Body for an injected status (Gmail's shapes; 502 is Google's HTML page)."""
    if code == 401:
        return auth_error(pretty)
    if code == 403 and reason == "accessNotConfigured" and message is None:
        return access_not_configured(pretty)
    defaults = {
        400: ("Bad Request", "badRequest", "global"),
        403: ("User Rate Limit Exceeded", "userRateLimitExceeded", "usageLimits"),
        404: ("Requested entity was not found.", "notFound", "global"),
        429: (RATE_MESSAGE, "rateLimitExceeded", "global"),
        500: ("Backend Error", "backendError", "global"),
        503: ("The service is currently unavailable.", "backendError", "global"),
    }
    msg, rsn, domain = defaults.get(code, (http.HTTPStatus(code).phrase if code in http.HTTPStatus._value2member_map_
                                           else "Error", "backendError" if code >= 500 else "badRequest", "global"))
    return error_body(code, message or msg, reason or rsn, domain, pretty=pretty)


LOCKOUT_MESSAGE = "User-rate limit exceeded.  Retry after %s"


def rfc3339_ms(t):
    """Wall-clock seconds as Google writes a lockout end: 2026-12-06T20:15:00.123Z."""
    ms = int(round(t * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def lockout_body(status, until, pretty=True):
    """Gmail's per-user lockout: its end only in the message, no Retry-After header."""
    msg = LOCKOUT_MESSAGE % rfc3339_ms(until)
    if status == 403:
        return error_body(403, msg, "userRateLimitExceeded", "usageLimits", pretty=pretty)
    return error_body(429, msg, "rateLimitExceeded", "usageLimits", pretty=pretty)


def user_rate_limit_403(style, pretty=True):
    if style == "modern":
        msg = ("Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service "
               "'gmail.googleapis.com' for consumer 'project_number:000000000000'.")
        return error_body(403, msg, "rateLimitExceeded", "usageLimits", pretty=pretty)
    return error_body(403, "User Rate Limit Exceeded", "userRateLimitExceeded", "usageLimits", pretty=pretty)


# --- OAuth tokens ----------------------------------------------------------------------------

class TokenStore:
    """refresh token -> mailbox email; access token -> (email, expiry on the monotonic clock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.refresh = {}      # refresh token -> email (lower case)
        self.access = {}       # access token -> [email, expires_at]

    def new_refresh_token(self):
        return "1//0" + secrets.token_urlsafe(72)[:96]

    def set_refresh(self, email_lc, token):
        with self.lock:
            for tok, owner in list(self.refresh.items()):
                if owner == email_lc:
                    del self.refresh[tok]
            self.refresh[token] = email_lc

    def add_refresh(self, email_lc, token):
        """Another refresh token for the mailbox (a new consent): the earlier ones stay valid."""
        with self.lock:
            self.refresh[token] = email_lc

    def issue(self, refresh_token, ttl):
        with self.lock:
            email = self.refresh.get(refresh_token)
            if email is None:
                return None, None
            token = "ya29.a0" + secrets.token_urlsafe(120)[:160]
            self.access[token] = [email, time.monotonic() + ttl]
            if len(self.access) > 100000:
                now = time.monotonic()
                for tok, entry in list(self.access.items()):
                    if entry[1] < now:
                        del self.access[tok]
            return token, email

    def owner_of_refresh(self, refresh_token):
        return self.refresh.get(refresh_token)

    def lookup(self, token):
        entry = self.access.get(token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def revoke(self, email_lc):
        with self.lock:
            for tok, owner in list(self.refresh.items()):
                if owner == email_lc:
                    del self.refresh[tok]
            for tok, entry in list(self.access.items()):
                if entry[0] == email_lc:
                    del self.access[tok]

    def revoke_token(self, token):
        with self.lock:
            if token in self.access:
                del self.access[token]
                return True
            owner = self.refresh.pop(token, None)
            if owner is None:
                return False
            for tok, entry in list(self.access.items()):
                if entry[0] == owner:
                    del self.access[tok]
            return True

    def expire(self, email_lc):
        with self.lock:
            n = 0
            for entry in self.access.values():
                if entry[0] == email_lc and entry[1] > 0:
                    entry[1] = 0
                    n += 1
            return n

    def drop_mailbox(self, email_lc):
        self.revoke(email_lc)


# --- quotas ----------------------------------------------------------------------------------

COSTS = {"getProfile": 1, "history.list": 2, "messages.list": 5, "messages.get": 5,
         "labels.list": 1, "attachments.get": 5, "watch": 100, "stop": 50}


class Quota:
    """Per-mailbox usage: units in the current 1-s and 60-s fixed windows, requests in flight,
    and the per-user lockout (see Lockout)."""

    __slots__ = ("lock", "sec", "sec_used", "minute", "minute_used", "in_flight", "max_in_flight",
                 "lockout")

    def __init__(self):
        self.lock = threading.Lock()
        self.sec = 0
        self.sec_used = 0
        self.minute = 0
        self.minute_used = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lockout = None


class Lockout:
    """Gmail's per-user lockout ("User-rate limit exceeded.  Retry after <time>"): armed by
    POST /_control/mailboxes/{email}/lockout, it lets `after` calls through, then refuses every
    call for `seconds` (wall clock, the end rounded up to the millisecond it names), and each
    request that arrives before the end lengthens it by `penalty` seconds, as Gmail does with
    clients that do not wait. Over once a call comes at or after the end."""

    __slots__ = ("status", "seconds", "penalty", "after", "until", "refused", "lengthened", "over")

    def __init__(self, spec):
        status = spec.get("status", 429)
        seconds = spec.get("seconds", 60)
        penalty = spec.get("penalty", 1)
        after = spec.get("after", 0)
        if status not in (429, 403):
            raise ValueError("status must be 429 or 403")
        for name, value in (("seconds", seconds), ("penalty", penalty), ("after", after)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError("%s must be a non-negative number" % name)
        if not isinstance(after, int):
            raise ValueError("after must be an integer")
        self.status, self.seconds, self.penalty, self.after = status, float(seconds), float(penalty), after
        self.until = None           # wall-clock end, once started
        self.refused = 0            # calls refused (batch parts count)
        self.lengthened = 0         # requests that came early and lengthened it
        self.over = False

    def describe(self):
        return {"status": self.status, "seconds": self.seconds, "penalty": self.penalty,
                "after": self.after, "until": rfc3339_ms(self.until) if self.until else None,
                "refused": self.refused, "lengthened": self.lengthened, "over": self.over}


def _ceil_ms(t):
    """Rounded up to the millisecond: the end Gmail names is never before the real one."""
    return math.ceil(t * 1000) / 1000.0


def locked_out(quota, first_of_request=True, now=None):
    """QuotaDenied (kind "lockout", with .until) while the mailbox is locked out, else None.
    first_of_request: this call is a top-level request or the first locked part of a batch
    (only those lengthen the lockout: one request, one penalty)."""
    lock = quota.lockout
    if lock is None or lock.over:
        return None
    if now is None:
        now = time.time()
    with quota.lock:
        if lock.until is None:
            if lock.after > 0:
                lock.after -= 1
                return None
            lock.until = _ceil_ms(now + lock.seconds)
        elif now >= lock.until:
            lock.over = True
            return None
        elif first_of_request:
            lock.until = _ceil_ms(lock.until + lock.penalty)
            lock.lengthened += 1
        lock.refused += 1
        denied = QuotaDenied(lock.status, "lockout", None)
        denied.until = lock.until
        return denied


class QuotaDenied:
    """Why a call was refused: status, body builder key and Retry-After seconds (or None)."""

    __slots__ = ("status", "kind", "retry_after", "until")

    def __init__(self, status, kind, retry_after):
        self.status = status
        self.kind = kind            # "rate" | "concurrent" | "minute" | "lockout"
        self.retry_after = retry_after
        self.until = None           # "lockout": its end (wall clock)


def quota_body(denied, config, pretty=True):
    if denied.kind == "lockout":
        return lockout_body(denied.status, denied.until, pretty)
    if denied.kind == "minute":
        return user_rate_limit_403(config.minute_quota_style, pretty)
    if denied.kind == "concurrent":
        return error_body(429, CONCURRENT_MESSAGE, "rateLimitExceeded", pretty=pretty)
    return error_body(429, RATE_MESSAGE, "rateLimitExceeded", pretty=pretty)


def acquire_slot(quota, config):
    """Count one more request in flight; QuotaDenied if over --max-concurrent-per-user."""
    with quota.lock:
        limit = config.max_concurrent_per_user
        if limit and quota.in_flight >= limit:
            return QuotaDenied(429, "concurrent", 1)
        quota.in_flight += 1
        if quota.in_flight > quota.max_in_flight:
            quota.max_in_flight = quota.in_flight
    return None


def release_slots(quota, n=1):
    with quota.lock:
        quota.in_flight -= n


def charge(quota, cost, config, now=None):
    """Charge units; QuotaDenied when the per-second or per-minute budget is exhausted."""
    per_sec = config.quota_units_per_sec
    per_min = config.quota_units_per_minute
    if not per_sec and not per_min:
        return None
    if now is None:
        now = time.monotonic()
    with quota.lock:
        if per_sec:
            sec = int(now)
            if sec != quota.sec:
                quota.sec = sec
                quota.sec_used = 0
            if quota.sec_used + cost > per_sec:
                return QuotaDenied(429, "rate", 1)
        if per_min:
            minute = int(now // 60)
            if minute != quota.minute:
                quota.minute = minute
                quota.minute_used = 0
            if quota.minute_used + cost > per_min:
                return QuotaDenied(403, "minute", None)
            quota.minute_used += cost
        if per_sec:
            quota.sec_used += cost
    return None


# --- faults ----------------------------------------------------------------------------------

FAULT_METHODS = {"messages.get", "messages.list", "history.list", "getProfile", "batch", "token", "*",
                 "labels.list", "attachments.get", "watch", "stop"}
FAULT_MODES = {"status", "latency", "stall", "stall_body", "reset", "truncate", "malformed"}


class Fault:
    __slots__ = ("id", "method", "status", "count", "after", "reason", "message", "mode", "seconds",
                 "part_status", "ids", "email", "retry_after", "fired")

    def __init__(self, fid, spec):
        method = spec.get("method", "*")
        mode = spec.get("mode", "status")
        if method not in FAULT_METHODS:
            raise ValueError("unknown method %r (one of %s)" % (method, ", ".join(sorted(FAULT_METHODS))))
        if mode not in FAULT_MODES:
            raise ValueError("unknown mode %r (one of %s)" % (mode, ", ".join(sorted(FAULT_MODES))))
        self.id = fid
        self.method = method
        self.mode = mode
        self.status = int(spec.get("status", 500))
        self.count = int(spec.get("count", 1))          # -1: until cleared
        self.after = int(spec.get("after", 0))
        self.reason = spec.get("reason")
        self.message = spec.get("message")
        default_seconds = 30.0 if mode in ("stall", "stall_body") else 0.5
        self.seconds = float(spec.get("seconds", default_seconds))
        part = spec.get("batch_part_status")
        self.part_status = int(part) if part is not None else None
        ids = spec.get("ids")
        self.ids = set(ids) if ids else None
        email = spec.get("email")
        self.email = email.lower() if email else None
        # Retry-After of the answer: Gmail's (1 s with 429 and 503, none otherwise) unless the
        # spec sets seconds (any status; 0 is "Retry-After: 0") or null (no header at all)
        self.retry_after = "default"
        if "retry_after" in spec:
            ra = spec["retry_after"]
            if ra is not None and (isinstance(ra, bool) or not isinstance(ra, int) or ra < 0):
                raise ValueError("retry_after must be whole seconds (>= 0) or null")
            self.retry_after = ra
        self.fired = 0
        if not (100 <= self.status <= 599) or (self.part_status is not None and not 100 <= self.part_status <= 599):
            raise ValueError("status must be an HTTP status code")
        if self.count == 0 or self.count < -1:
            raise ValueError("count must be positive or -1")
        if self.after < 0 or self.seconds < 0:
            raise ValueError("after and seconds must not be negative")

    def retry_after_headers(self, status):
        """The Retry-After header (as a header list) of an answer this fault gives with `status`."""
        if self.retry_after == "default":
            return [("Retry-After", "1")] if status in (429, 503) else []
        return [] if self.retry_after is None else [("Retry-After", str(self.retry_after))]

    def describe(self):
        return {"id": self.id, "method": self.method, "mode": self.mode, "status": self.status,
                "count": self.count, "after": self.after, "reason": self.reason, "message": self.message,
                "seconds": self.seconds, "batch_part_status": self.part_status,
                "ids": sorted(self.ids) if self.ids else None, "email": self.email,
                "retry_after": self.retry_after,
                "fired": self.fired}


class Faults:
    """Ordered fault list.  The first armed fault that matches a request fires and is consumed.

    level "top": a top-level request (method may be "batch" or "token").
    level "part": an inner batch request.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []
        self.next_id = 1

    def add(self, spec):
        with self.lock:
            fault = Fault("f%d" % self.next_id, spec)
            self.next_id += 1
            self.items.append(fault)
            return fault

    def clear(self):
        with self.lock:
            self.items = []

    def remove(self, fid):
        with self.lock:
            before = len(self.items)
            self.items = [f for f in self.items if f.id != fid]
            return len(self.items) != before

    def describe(self):
        with self.lock:
            return [f.describe() for f in self.items]

    def match(self, level, method, email=None, msg_id=None):
        if not self.items:          # fast path: no lock when nothing is armed
            return None
        with self.lock:
            for fault in self.items:
                if level == "top":
                    if fault.part_status is not None:
                        continue
                    if fault.method != "*" and fault.method != method:
                        continue
                else:
                    if fault.part_status is None:
                        if fault.method in ("*", "batch", "token") or fault.method != method:
                            continue
                    elif fault.method not in ("*", "batch") and fault.method != method:
                        continue
                if fault.email is not None and fault.email != email:
                    continue
                if fault.ids is not None and msg_id not in fault.ids:
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.fired += 1
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.items.remove(fault)
                return fault
        return None


# --- statistics ------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = {k: 0 for k in ("getProfile", "messages.list", "messages.get", "history.list",
                                            "batch", "token", "labels.list", "attachments.get")}
            self.batch_parts = 0
            self.quota_units = 0
            self.status_counts = {}
            self.method_status = {}
            self.per_mailbox = {}
            self.denied = {}        # email -> {"rate"|"concurrent"|"minute": answers refused}
            self.gzip = {"answers": 0, "bytes": 0, "gzip_bytes": 0}    # Gmail answers sent compressed
            self.started = time.time()

    def record(self, method, status, email=None, units=0, n=1, part=False):
        with self.lock:
            self._record(method, status, email, units, n, part)

    def count_gzip(self, plain, compressed):
        with self.lock:
            self.gzip["answers"] += 1
            self.gzip["bytes"] += plain
            self.gzip["gzip_bytes"] += compressed

    def count_denied(self, email, kind):
        """One call or part refused by the quota ("rate", "minute") or the concurrency limit."""
        with self.lock:
            per = self.denied.setdefault(email, {})
            per[kind] = per.get(kind, 0) + 1

    def record_many(self, items):
        """items: iterable of (method, status, email, units, part)."""
        with self.lock:
            for method, status, email, units, part in items:
                self._record(method, status, email, units, 1, part)

    def _record(self, method, status, email, units, n, part):
        if method is not None:
            self.requests[method] = self.requests.get(method, 0) + n
        if part:
            self.batch_parts += n
        key = str(status)
        self.status_counts[key] = self.status_counts.get(key, 0) + n
        if method is not None:
            per = self.method_status.setdefault(method, {})
            per[key] = per.get(key, 0) + n
        self.quota_units += units
        if email is not None:
            mb = self.per_mailbox.get(email)
            if mb is None:
                mb = self.per_mailbox[email] = {"requests": {}, "quota_units": 0, "status_counts": {}}
            if method is not None:
                mb["requests"][method] = mb["requests"].get(method, 0) + n
            mb["status_counts"][key] = mb["status_counts"].get(key, 0) + n
            mb["quota_units"] += units

    def snapshot(self, quotas):
        with self.lock:
            per_mailbox = {}
            for email, data in self.per_mailbox.items():
                entry = {"requests": dict(data["requests"]), "quota_units": data["quota_units"],
                         "status_counts": dict(data["status_counts"])}
                entry["denied"] = dict(self.denied.get(email, {}))
                quota = quotas.get(email)
                if quota is not None:
                    entry["max_in_flight"] = quota.max_in_flight
                    entry["in_flight"] = quota.in_flight
                per_mailbox[email] = entry
            return {"requests": dict(self.requests), "batch_parts": self.batch_parts,
                    "quota_units": self.quota_units, "status_counts": dict(self.status_counts),
                    "method_status_counts": {k: dict(v) for k, v in self.method_status.items()},
                    "per_mailbox": per_mailbox, "gzip": dict(self.gzip), "since": self.started}
