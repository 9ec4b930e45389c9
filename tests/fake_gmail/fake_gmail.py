#!/usr/bin/python3
"""fake_gmail: a faithful fake of the Gmail REST API (v1) and Google's OAuth2 token endpoint.

Loopback only, Python 3 standard library only.  See README.md beside this file for the
endpoints, the control API, quotas, fault injection and how mailboxes are generated.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import faulthandler  # noqa: E402
import base64  # noqa: E402
import email.utils  # noqa: E402
import gc  # noqa: E402
import http  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import zlib  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from urllib.parse import parse_qsl, unquote, unquote_plus  # noqa: E402

import fg_import as I  # noqa: E402
import fg_model as M  # noqa: E402
import fg_oauth as O  # noqa: E402
import fg_policy as P  # noqa: E402
import fg_push  # noqa: E402
from fg_json import dumps, parse_fields  # noqa: E402

SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
TOKEN_PATHS = ("/token", "/o/oauth2/token", "/oauth2/v4/token")
STANDARD_PARAMS = {"prettyPrint", "fields", "alt", "quotaUser", "key", "access_token", "oauth_token",
                   "$.xgafv", "callback", "upload_protocol", "uploadType", "userIp"}
METHOD_PARAMS = {
    "getProfile": set(),
    "labels.list": set(),
    "messages.list": {"maxResults", "pageToken", "q", "labelIds", "includeSpamTrash"},
    "messages.get": {"format", "metadataHeaders"},
    "attachments.get": set(),
    "history.list": {"startHistoryId", "historyTypes", "labelId", "maxResults", "pageToken"},
    "watch": set(),
    "stop": set(),
}
FORMATS = {"minimal", "metadata", "full", "raw"}
MAX_BODY = 32 * 1024 * 1024
MAX_IMPORT_BODY = 512 * 1024 * 1024   # /_control/mailboxes/{email}/import and import-mbox
HEX_ID = re.compile(r"^[0-9a-fA-F]{1,16}$")
JSON_CT = "application/json; charset=UTF-8"


class Config:
    """Run-time settings (CLI defaults, changed by POST /_control/config)."""

    FIELDS = {"quota_units_per_sec": int, "quota_units_per_minute": int, "max_concurrent_per_user": int,
              "max_batch": int, "history_retention": int, "shuffle_batch": bool, "token_ttl": float,
              "minute_quota_style": str, "api_disabled": bool, "gzip": bool}

    def __init__(self, args):
        self.client_id = args.client_id
        self.client_secret = args.client_secret
        self.quota_units_per_sec = args.quota_units_per_sec
        self.quota_units_per_minute = args.quota_units_per_minute
        self.max_concurrent_per_user = args.max_concurrent_per_user
        self.max_batch = args.max_batch
        self.history_retention = args.history_retention
        self.shuffle_batch = args.shuffle_batch
        self.token_ttl = args.token_ttl
        self.minute_quota_style = args.minute_quota_style
        self.api_disabled = False       # the Gmail API switched off in the client's Cloud project
        self.gzip = True                # compress answers for clients that accept gzip
        self.verbose = args.verbose
        self.prerender = args.prerender

    def as_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    def update(self, changes):
        staged = {}
        for name, value in changes.items():
            kind = self.FIELDS.get(name)
            if kind is None:
                raise ValueError("unknown setting %r" % name)
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError("%s must be a boolean" % name)
            elif kind is str:
                if value not in ("legacy", "modern"):
                    raise ValueError("%s must be 'legacy' or 'modern'" % name)
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError("%s must be a non-negative number" % name)
                value = kind(value)
            staged[name] = value
        if staged.get("max_batch", 1) < 1:
            raise ValueError("max_batch must be at least 1")
        for name, value in staged.items():
            setattr(self, name, value)


class State:
    def __init__(self, config):
        self.config = config
        self.tokens = P.TokenStore()
        self.oauth = O.OAuthState()
        self.faults = P.Faults()
        self.stats = P.Stats()
        self.lock = threading.Lock()
        self.mailboxes = {}       # email (lower case) -> Mailbox
        self.quotas = {}          # email (lower case) -> Quota
        self.stopping = threading.Event()
        # client connections open, and those of them that have asked /_control/ (the test's own):
        # the others are API clients, whose last answers may still be on their way to the stats
        self.conns = threading.Condition()
        self.open_conns = 0
        self.control_conns = 0
        self.push = fg_push.Push(self.stopping)     # Pub/Sub push notifications (issue 26)

    def api_conns(self):
        return self.open_conns - self.control_conns

    def wait_quiet(self, timeout):
        """Until no API client has a connection open (a killed worker's requests that were
        read before its death are done and counted), or timeout seconds."""
        with self.conns:
            return self.conns.wait_for(lambda: self.api_conns() == 0, timeout)

    def quota_for(self, email_lc):
        quota = self.quotas.get(email_lc)
        if quota is None:
            with self.lock:
                quota = self.quotas.setdefault(email_lc, P.Quota())
        return quota


class Reply:
    """One answer: status, body bytes, content type, extra headers, and an optional transport fault."""

    __slots__ = ("status", "body", "ctype", "headers", "fault")

    def __init__(self, status, body, ctype=JSON_CT, headers=None, fault=None):
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = headers or []
        self.fault = fault


class ApiError(Exception):
    def __init__(self, status, body, headers=None):
        Exception.__init__(self, status)
        self.status = status
        self.body = body
        self.headers = headers or []


def _parse_query(query):
    out = []
    if not query:
        return out
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        out.append((key, value))
    return out


def _route(path):
    """(method name, user id, message id, attachment id) or None."""
    if not path.startswith("/gmail/v1/users/"):
        return None
    user, _, rest = path[16:].partition("/")
    user = unquote(user)
    parts = rest.split("/")
    head = parts[0]
    if head == "messages":
        if len(parts) == 1:
            return ("messages.list", user, None, None)
        if len(parts) == 2 and parts[1]:
            return ("messages.get", user, parts[1], None)
        if len(parts) == 4 and parts[2] == "attachments" and parts[1] and parts[3]:
            return ("attachments.get", user, parts[1], parts[3])
    elif len(parts) == 1:
        if head == "profile":
            return ("getProfile", user, None, None)
        if head == "history":
            return ("history.list", user, None, None)
        if head == "labels":
            return ("labels.list", user, None, None)
        if head in ("watch", "stop"):
            return (head, user, None, None)
    return None


def _uint(name, value, proto_name):
    if not value.isdigit():
        raise ApiError(400, P.invalid_argument('Invalid value at \'%s\' (TYPE_UINT%s), "%s"' % (
            proto_name, "64" if proto_name == "start_history_id" else "32", value)))
    return int(value)


def _bool(value, proto_name):
    low = value.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0", ""):
        return False
    raise ApiError(400, P.invalid_argument('Invalid value at \'%s\' (TYPE_BOOL), "%s"' % (proto_name, value)))


_PROTO = {"maxResults": "max_results", "startHistoryId": "start_history_id", "includeSpamTrash": "include_spam_trash"}
_date_cache = [0, ""]


def _http_date():
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[1] = email.utils.formatdate(now, usegmt=True)
        _date_cache[0] = now
    return _date_cache[1]


class Api:
    """The Gmail endpoints, shared by top-level requests and inner batch requests."""

    def __init__(self, state):
        self.state = state
        self.query_cache = {}

    def _query(self, method, query):
        """(params, pretty, fields, access_token param, (status, body) error or None, get spec).

        Parsed once per distinct query string: batch parts repeat the same query.
        """
        key = (method, query)
        parsed = self.query_cache.get(key)
        if parsed is not None:
            return parsed
        parsed = self._parse(method, query)
        if "access_token" not in query and "oauth_token" not in query:
            if len(self.query_cache) > 4096:
                self.query_cache.clear()
            self.query_cache[key] = parsed
        return parsed

    @staticmethod
    def _parse(method, query):
        params = _parse_query(query)
        allowed = METHOD_PARAMS[method]
        pretty = True
        fields = None
        token = None
        for key, value in params:
            if key in allowed:
                continue
            if key not in STANDARD_PARAMS:
                body = P.invalid_argument(
                    'Invalid JSON payload received. Unknown name "%s": Cannot bind query parameter. '
                    "Field '%s' could not be found in request message." % (key, key))
                return params, pretty, fields, token, (400, body), None
            if key == "prettyPrint":
                try:
                    pretty = _bool(value, "pretty_print")
                except ApiError as err:
                    return params, pretty, fields, token, (err.status, err.body), None
            elif key == "fields":
                try:
                    fields = parse_fields(value)
                except ValueError:
                    return params, pretty, fields, token, (400, P.invalid_argument(
                        "Invalid field selection %s" % value, pretty=pretty)), None
            elif key == "alt" and value != "json":
                return params, pretty, fields, token, (400, P.invalid_argument(
                    'Invalid value at \'alt\', "%s"' % value, pretty=pretty)), None
            elif key in ("access_token", "oauth_token"):
                token = value
        get_spec = None
        if method == "messages.get":
            fmt = "full"
            header_names = None
            for key, value in params:
                if key == "format":
                    fmt = value.lower()
                elif key == "metadataHeaders":
                    if header_names is None:
                        header_names = []
                    header_names.append(value.lower())
            if fmt not in FORMATS:
                get_spec = (None, P.invalid_argument(
                    'Invalid value at \'format\' (type.googleapis.com/google.apps.gmail.v1.Format), "%s"' % fmt,
                    pretty=pretty))
            else:
                get_spec = (fmt, tuple(header_names) if (header_names is not None and fmt == "metadata") else None)
        return params, pretty, fields, token, None, get_spec

    # Returns Reply (top level) or (Reply, stats record) (batch part, when the call ran).
    # level: "top" or "part".  held: dict quota -> slots held (batch parts only).
    # locked: set of quotas whose lockout this batch already lengthened (batch parts only).
    # arrived: when the request reached the server (time.monotonic()): the quota is charged then.
    def call(self, http_method, path, query, auth_header, level, held=None, locked=None, arrived=None,
             body=b""):
        state = self.state
        route = _route(path)
        if route is None:
            return Reply(404, _html_404(path), "text/html; charset=UTF-8")
        method, user, msg_id, att_id = route
        params, pretty, fields, token, error, get_spec = self._query(method, query)
        if error is not None:
            return Reply(error[0], error[1])
        if auth_header:
            scheme, _, cred = auth_header.strip().partition(" ")
            if scheme.lower() == "bearer":
                token = cred.strip()
            elif token is None:
                token = ""
        if not token:
            reply = Reply(401, P.auth_error(pretty) if token == "" else P.missing_auth_error(pretty),
                          headers=[("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')])
            state.stats.record(method, 401, None, part=(level == "part"))
            return reply
        email_lc = state.tokens.lookup(token)
        mailbox = state.mailboxes.get(email_lc) if email_lc is not None else None
        if mailbox is None:
            state.stats.record(method, 401, None, part=(level == "part"))
            return Reply(401, P.auth_error(pretty), headers=[
                ("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"')])
        if user != "me" and user.lower() != email_lc:
            state.stats.record(method, 403, email_lc, part=(level == "part"))
            msg = "Delegation denied for %s" % mailbox.email
            return Reply(403, P.error_body(403, msg, "forbidden", pretty=pretty))
        if state.config.api_disabled:
            # the API is off in the client's Cloud project: every call of every mailbox
            state.stats.record(method, 403, email_lc, part=(level == "part"))
            return Reply(403, P.access_not_configured(pretty))
        if method in ("watch", "stop"):
            if http_method != "POST":
                return Reply(404, _html_404(path), "text/html; charset=UTF-8")
            self.state.push.called(method, email_lc)   # every call, refused ones too
        elif http_method != "GET":
            state.stats.record(method, 403, email_lc, part=(level == "part"))
            return Reply(403, P.insufficient_scope(pretty))

        fault = state.faults.match(level, method, email_lc, msg_id)
        transport = None
        if fault is not None:
            if fault.mode == "status" or (fault.mode == "malformed" and level == "part"):
                if fault.mode == "malformed":
                    reply = Reply(200, b'{\n  "id": "' + (msg_id or "x").encode() + b'",\n  "threadId": ')
                else:
                    status = fault.part_status if (level == "part" and fault.part_status) else fault.status
                    hdrs = fault.retry_after_headers(status)
                    if status == 502:
                        reply = Reply(502, P.GOOGLE_502_HTML, "text/html; charset=UTF-8", hdrs)
                    else:
                        reply = Reply(status, P.status_error(status, fault.reason, fault.message, pretty),
                                      headers=hdrs)
                state.stats.record(method, reply.status, email_lc, part=(level == "part"))
                return reply
            transport = fault

        quota = state.quota_for(email_lc)
        cfg = state.config
        if quota.lockout is not None:
            # Gmail's per-user lockout comes before any quota: one request, one lengthening
            denied = P.locked_out(quota, level == "top" or quota not in locked)
            if denied is not None:
                if level == "part":
                    locked.add(quota)
                state.stats.record(method, denied.status, email_lc, part=(level == "part"))
                state.stats.count_denied(email_lc, denied.kind)
                return Reply(denied.status, P.quota_body(denied, cfg, pretty), fault=transport)
        denied = P.acquire_slot(quota, cfg)
        if denied is None and level == "part":
            held[quota] = held.get(quota, 0) + 1
        cost = P.COSTS[method]
        if denied is None:
            denied = P.charge(quota, cost, cfg, now=arrived)
            if denied is not None and level == "top":
                P.release_slots(quota)
        if denied is not None:
            hdrs = [("Retry-After", str(denied.retry_after))] if denied.retry_after else []
            state.stats.record(method, denied.status, email_lc, part=(level == "part"))
            state.stats.count_denied(email_lc, denied.kind)
            return Reply(denied.status, P.quota_body(denied, cfg, pretty), headers=hdrs, fault=transport)
        try:
            try:
                if method in ("watch", "stop"):
                    status, body = self.watch_or_stop(method, mailbox, body, pretty)
                else:
                    status, body = self.dispatch(method, mailbox, msg_id, att_id, params, pretty, fields,
                                                 get_spec)
            except ApiError as err:
                status, body = err.status, err.body
            except M.InvalidArgument as err:
                status, body = 400, P.invalid_argument(str(err), "invalidArgument", pretty)
            except M.NotFound:
                status, body = 404, P.not_found(pretty)
        finally:
            if level == "top":
                P.release_slots(quota)
        if level == "top":
            state.stats.record(method, status, email_lc, cost)
            return Reply(status, body, fault=transport)
        return Reply(status, body, fault=transport), (method, status, email_lc, cost)

    def watch_or_stop(self, method, mailbox, body, pretty):
        """users.watch ({"topicName", "labelIds", "labelFilterBehavior"} -> historyId,
        expiration) and users.stop (204, empty), recorded by the push simulator (fg_push)."""
        if method == "stop":
            self.state.push.stop(mailbox.email_lc)
            return 204, b""
        try:
            req = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            req = None
        if not isinstance(req, dict) or not isinstance(req.get("topicName"), str):
            raise ApiError(400, P.invalid_argument("Invalid topicName", "invalidArgument", pretty))
        try:
            answer = self.state.push.watch(mailbox.email_lc, req["topicName"], req.get("labelIds"),
                                           mailbox.history_id)
        except ValueError as err:
            raise ApiError(400, P.invalid_argument(str(err), "invalidArgument", pretty))
        return 200, (json.dumps(answer, indent=1) + "\n").encode()

    def dispatch(self, method, mailbox, msg_id, att_id, params, pretty, fields, get_spec):
        if method == "messages.get":
            fmt, header_filter = get_spec
            if fmt is None:
                raise ApiError(400, header_filter)
            if not HEX_ID.match(msg_id):
                raise ApiError(400, P.invalid_argument("Invalid id value", "invalidArgument", pretty))
            msg = mailbox.messages.get(msg_id.lower())
            if msg is None:
                raise M.NotFound()
            return 200, mailbox.render(msg, fmt, header_filter, pretty, fields)
        if method == "messages.list":
            max_results, token, q, label_ids, spam_trash = 100, None, None, [], False
            for key, value in params:
                if key == "maxResults":
                    max_results = _uint(key, value, "max_results") or 100
                elif key == "pageToken":
                    token = value
                elif key == "q":
                    q = value
                elif key == "labelIds":
                    label_ids.extend(v for v in value.split(",") if v)
                elif key == "includeSpamTrash":
                    spam_trash = _bool(value, "include_spam_trash")
            try:
                result = mailbox.list_messages(label_ids, spam_trash, min(max_results, 500), token, q)
            except M.InvalidArgument as err:
                raise ApiError(400, P.invalid_argument(str(err), "invalidArgument", pretty))
            return 200, self._dump(result, pretty, fields)
        if method == "history.list":
            start, types, label_id, max_results, token = None, [], None, 100, None
            for key, value in params:
                if key == "startHistoryId":
                    start = _uint(key, value, "start_history_id")
                elif key == "historyTypes":
                    types.append(value)
                elif key == "labelId":
                    label_id = value
                elif key == "maxResults":
                    max_results = _uint(key, value, "max_results") or 100
                elif key == "pageToken":
                    token = value
            if start is None:
                raise ApiError(400, P.invalid_argument("Missing startHistoryId", "invalidArgument", pretty))
            try:
                type_set = M.parse_history_types(types) if types else None
                result = mailbox.list_history(start, type_set, label_id, min(max_results, 500), token)
            except M.InvalidArgument as err:
                raise ApiError(400, P.invalid_argument(str(err), "invalidArgument", pretty))
            return 200, self._dump(result, pretty, fields)
        if method == "getProfile":
            return 200, self._dump(mailbox.profile(), pretty, fields)
        if method == "labels.list":
            return 200, self._dump(mailbox.labels_list(), pretty, fields)
        if method == "attachments.get":
            msg = mailbox.messages.get(msg_id.lower()) if HEX_ID.match(msg_id) else None
            if msg is None:
                raise M.NotFound()
            return 200, self._dump(mailbox.attachment(msg, att_id), pretty, fields)
        raise M.NotFound()

    @staticmethod
    def _dump(obj, pretty, fields):
        if fields is not None:
            from fg_json import apply_fields
            obj = apply_fields(obj, fields)
        return dumps(obj, pretty)


def _html_404(path):
    return ("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
            "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n  <p>The requested URL <code>%s</code> was not "
            "found on this server.  <ins>That\u2019s all we know.</ins>\n" % path.replace("<", "&lt;")).encode("utf-8")


# --- batch -----------------------------------------------------------------------------------

def _boundary_of(ctype):
    if not ctype:
        return None
    main, _, rest = ctype.partition(";")
    if main.strip().lower() != "multipart/mixed":
        return None
    for param in rest.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


def _split_head(blob):
    """(head bytes, rest bytes) split at the first blank line, CRLF or LF."""
    i = blob.find(b"\r\n\r\n")
    j = blob.find(b"\n\n")
    if i < 0 and j < 0:
        return blob, b""
    if i >= 0 and (j < 0 or i <= j):
        return blob[:i], blob[i + 4:]
    return blob[:j], blob[j + 2:]


def _header_lines(head):
    out = {}
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def parse_batch(body, boundary):
    """[(content_id or None, http method, target, inner headers dict)] or raise ValueError."""
    delim = b"--" + boundary.encode("latin-1")
    chunks = body.split(delim)
    if len(chunks) < 2:
        raise ValueError("no parts")
    requests = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        elif chunk.startswith(b"\n"):
            chunk = chunk[1:]
        part_head, inner = _split_head(chunk)
        part_headers = _header_lines(part_head)
        cid = part_headers.get(b"content-id")
        inner = inner.lstrip(b"\r\n")
        line_end = inner.find(b"\n")
        request_line = (inner if line_end < 0 else inner[:line_end]).rstrip(b"\r").decode("utf-8", "replace")
        pieces = request_line.split()
        if len(pieces) < 2:
            raise ValueError("bad inner request line %r" % request_line[:100])
        inner_headers = {}
        if line_end >= 0:
            inner_head, _ = _split_head(inner[line_end + 1:])
            if inner_head.strip():
                inner_headers = _header_lines(inner_head)
        target = pieces[1]
        if target.startswith("http://") or target.startswith("https://"):
            slash = target.find("/", target.find("//") + 2)
            target = target[slash:] if slash >= 0 else "/"
        requests.append((cid.decode("utf-8", "replace") if cid is not None else None, pieces[0].upper(), target,
                         inner_headers))
    if not requests:
        raise ValueError("no parts")
    return requests


def _bearer_owner(state, auth):
    """The mailbox (lower case) whose valid access token `auth` carries, else None."""
    scheme, _, cred = (auth or "").strip().partition(" ")
    return state.tokens.lookup(cred.strip()) if scheme.lower() == "bearer" else None


def _batch_mailbox(state, outer_auth, requests):
    """The mailbox a batch is for, as Gmail's front end knows it: the outer bearer token's owner,
    else the first inner request's token or explicit address (/gmail/v1/users/<address>/...).
    None when nothing names one."""
    owner = _bearer_owner(state, outer_auth)
    if owner is not None:
        return owner
    for _cid, _method, target, inner_headers in requests:
        auth = inner_headers.get(b"authorization")
        if auth is not None:
            owner = _bearer_owner(state, auth.decode("latin-1"))
            if owner is not None:
                return owner
        path = unquote(target.partition("?")[0])
        if path.startswith("/gmail/v1/users/"):
            user = path[len("/gmail/v1/users/"):].partition("/")[0]
            if user and user != "me":
                return user.lower()
    return None


def _response_cid(cid):
    if cid is None:
        return None
    inner = cid[1:-1] if cid.startswith("<") and cid.endswith(">") else cid
    return "<response-%s>" % inner


# --- HTTP handler ----------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"
    sys_version = ""
    timeout = 300

    def handle(self):
        state = self.server.state
        self._control_conn = False
        with state.conns:
            state.open_conns += 1
        try:
            BaseHTTPRequestHandler.handle(self)
        finally:
            with state.conns:
                state.open_conns -= 1
                if self._control_conn:
                    state.control_conns -= 1
                state.conns.notify_all()

    def log_message(self, fmt, *args):
        if self.server.state.config.verbose:
            sys.stderr.write("fake_gmail: %s - %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    # --- plumbing ------------------------------------------------------------------------
    def _read_body(self, limit=MAX_BODY):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > limit:
                    raise ValueError("body too large")
                out.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(out)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        length = int(length)
        if length < 0 or length > limit:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def _wants_gzip(self):
        """Google compresses an API answer only for a client that sends Accept-Encoding: gzip
        *and* has "gzip" in its User-Agent (developers.google.com/gmail/api/guides/performance)."""
        if "gzip" not in (self.headers.get("User-Agent") or ""):
            return False
        for item in (self.headers.get("Accept-Encoding") or "").split(","):
            coding, _, params = item.strip().partition(";")
            if coding.strip().lower() == "gzip":
                q = params.strip().lower()
                return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
        return False

    @staticmethod
    def _gzip(body):
        z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)    # the gzip format
        return z.compress(body) + z.flush()

    def _send(self, reply, api=False):
        fault = reply.fault
        status = reply.status
        body = reply.body
        ctype = reply.ctype
        state = self.server.state
        if fault is not None:
            mode = fault.mode
            if mode in ("latency", "stall"):
                state.stopping.wait(fault.seconds)
            elif mode == "reset":
                self._reset()
                return
            elif mode == "malformed":
                status = 200
                body = body[:max(1, len(body) // 2)]
        gzipped = api and state.config.gzip and self._wants_gzip()
        if gzipped:
            plain = len(body)
            body = self._gzip(body)
            state.stats.count_gzip(plain, len(body))
        head = ["HTTP/1.1 %d %s\r\n" % (status, _phrase(status)),
                "Content-Type: %s\r\n" % ctype,
                "Date: %s\r\n" % _http_date(),
                "Server: ESF\r\n",
                "" if any(n.lower() == "cache-control" for n, _ in reply.headers) else "Cache-Control: private\r\n",
                "X-Content-Type-Options: nosniff\r\n",
                "Vary: Origin\r\nVary: X-Origin\r\nVary: Referer\r\n"]
        for name, value in reply.headers:
            head.append("%s: %s\r\n" % (name, value))
        if gzipped:
            head.append("Content-Encoding: gzip\r\n")
        if self.close_connection:
            head.append("Connection: close\r\n")
        if fault is not None and fault.mode == "truncate":
            head.append("Content-Length: %d\r\n\r\n" % (len(body) + max(64, len(body) // 2)))
            self.wfile.write("".join(head).encode("latin-1") + body[: len(body) // 2])
            self.close_connection = True
            return
        head.append("Content-Length: %d\r\n\r\n" % len(body))
        data = "".join(head).encode("latin-1")
        if fault is not None and fault.mode == "stall_body":
            half = len(body) // 2
            self.wfile.write(data + body[:half])
            state.stopping.wait(fault.seconds)
            self.wfile.write(body[half:])
            return
        self.wfile.write(data + body)

    def _reset(self):
        """Abort the connection with a TCP RST (SO_LINGER 0) and no answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            fd = self.connection.detach()
            os.close(fd)
        except OSError:
            pass

    def _dispatch(self, http_method):
        state = self.server.state
        # the quota is charged at the request's arrival (its head read), for every part of a batch
        # at once, as Gmail's front end counts it: the fake's own time to build the answers (a
        # batch of 50 raw messages takes tens of milliseconds, more on a loaded machine) must not
        # move parts of one request into the next one-second window
        self._arrived = time.monotonic()
        path, _, query = self.path.partition("?")
        api = False
        try:
            try:
                importing = path.startswith("/_control/mailboxes/") and path.endswith(("/import", "/import-mbox"))
                body = self._read_body(MAX_IMPORT_BODY if importing else MAX_BODY)
            except (ValueError, OSError):
                self.close_connection = True
                self._send(Reply(413, P.error_body(413, "Request Entity Too Large", "badRequest")))
                return
            api = path.startswith("/gmail/v1/") or path.startswith("/batch/gmail/v1")
            if path.startswith("/gmail/v1/"):
                reply = state.api_top.call(http_method, path, query, self.headers.get("Authorization"), "top",
                                           arrived=self._arrived, body=body)
            elif path.startswith("/batch/gmail/v1"):
                reply = self._batch(http_method, body)
            elif path in TOKEN_PATHS:
                reply = self._token(http_method, body)
            elif path in O.AUTH_PATHS:
                reply = self._authorize(http_method, query, body)
            elif path == "/oauth2/v3/certs" and http_method == "GET":
                reply = self._certs()
            elif path in ("/revoke", "/o/oauth2/revoke"):
                reply = self._revoke(query, body)
            elif path.startswith("/_control/"):
                if not self._control_conn:
                    with state.conns:
                        self._control_conn = True
                        state.control_conns += 1
                        state.conns.notify_all()
                reply = control(state, http_method, path, query, body)
            else:
                reply = Reply(404, _html_404(path), "text/html; charset=UTF-8")
        except Exception:  # a bug in the fake: say so loudly, answer like Google's backend would
            traceback.print_exc()
            reply = Reply(500, P.status_error(500))
        try:
            self._send(reply, api)
        except OSError:
            self.close_connection = True

    def _certs(self):
        """Google's JWKS of the keys that sign its OIDC tokens (push tokens among them)."""
        try:
            doc, cache_control = self.server.state.push.jwks()
        except ValueError as err:
            return Reply(501, P.status_error(501, message=str(err)))
        return Reply(200, (json.dumps(doc, indent=2) + "\n").encode(), "application/json; charset=UTF-8",
                     headers=[("Cache-Control", cache_control)])

    # --- batch ---------------------------------------------------------------------------
    def _batch(self, http_method, body):
        state = self.server.state
        cfg = state.config
        if http_method != "POST":
            return Reply(404, _html_404("/batch/gmail/v1"), "text/html; charset=UTF-8")
        outer_auth = self.headers.get("Authorization")
        if outer_auth:
            scheme, _, cred = outer_auth.strip().partition(" ")
            if scheme.lower() != "bearer" or state.tokens.lookup(cred.strip()) is None:
                state.stats.record("batch", 401)
                return Reply(401, P.auth_error(), headers=[
                    ("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"')])
        boundary = _boundary_of(self.headers.get("Content-Type"))
        if boundary is None:
            state.stats.record("batch", 400)
            return Reply(400, P.invalid_argument("Invalid batch request: Content-Type must be multipart/mixed "
                                                 "with a boundary.", "badRequest"))
        try:
            requests = parse_batch(body, boundary)
        except ValueError as err:
            state.stats.record("batch", 400)
            return Reply(400, P.invalid_argument("Failed to parse batch request, error: %s" % err, "badRequest"))
        if len(requests) > cfg.max_batch:
            state.stats.record("batch", 400)
            return Reply(400, P.invalid_argument("Inner request count exceeds the limit. Limit: %d" % cfg.max_batch,
                                                 "badRequest"))
        fault = state.faults.match("top", "batch", _batch_mailbox(state, outer_auth, requests))
        if fault is not None and fault.mode == "status":
            state.stats.record("batch", fault.status)
            if fault.status == 502:
                return Reply(502, P.GOOGLE_502_HTML, "text/html; charset=UTF-8",
                             fault.retry_after_headers(502))
            return Reply(fault.status, P.status_error(fault.status, fault.reason, fault.message),
                         headers=fault.retry_after_headers(fault.status))
        api = state.api_top
        held = {}
        locked = set()
        answers = []
        records = []
        transport = fault
        try:
            for cid, method, target, inner_headers in requests:
                path, _, query = target.partition("?")
                auth = inner_headers.get(b"authorization")
                auth = auth.decode("latin-1") if auth is not None else outer_auth
                result = api.call(method, path, query, auth, "part", held, locked, arrived=self._arrived)
                if isinstance(result, tuple):
                    reply, record = result
                    records.append(record + (True,))
                else:
                    reply = result
                if reply.fault is not None and transport is None:
                    transport = reply.fault
                answers.append((cid, reply))
            if transport is not None and transport.mode == "latency" and held:
                # Gmail's parts are in flight while it works on them: a latency fault holds the
                # batch's concurrency slots (--max-concurrent-per-user) for its duration, so
                # that parallel batches count together as at Gmail
                state.stopping.wait(transport.seconds)
                transport = None
        finally:
            for quota, n in held.items():
                P.release_slots(quota, n)
        if records:
            state.stats.record_many(records)
        state.stats.record("batch", 200)
        if cfg.shuffle_batch and len(answers) > 1:
            random.shuffle(answers)
        boundary_out = "batch_" + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        delim = ("--%s\r\n" % boundary_out).encode()
        out = []
        for cid, reply in answers:
            out.append(delim)
            rcid = _response_cid(cid)
            head = "Content-Type: application/http\r\n"
            if rcid is not None:
                head += "Content-ID: %s\r\n" % rcid
            head += "\r\nHTTP/1.1 %d %s\r\nContent-Type: %s\r\n" % (reply.status, _phrase(reply.status), reply.ctype)
            for name, value in reply.headers:
                head += "%s: %s\r\n" % (name, value)
            head += "Vary: Origin\r\nVary: X-Origin\r\nVary: Referer\r\n\r\n"
            out.append(head.encode("latin-1"))
            out.append(reply.body)
            out.append(b"\r\n")
        out.append(("--%s--\r\n" % boundary_out).encode())
        return Reply(200, b"".join(out), "multipart/mixed; boundary=" + boundary_out, fault=transport)

    # --- OAuth ---------------------------------------------------------------------------
    def _token(self, http_method, body):
        state = self.server.state
        cfg = state.config
        headers = [("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"), ("Pragma", "no-cache"),
                   ("Expires", "Mon, 01 Jan 1990 00:00:00 GMT")]
        ctype = "application/json; charset=utf-8"

        def oauth_error(status, error, description):
            state.stats.record("token", status)
            return Reply(status, dumps({"error": error, "error_description": description}), ctype, headers)

        if http_method != "POST":
            return Reply(405, b"Method Not Allowed", "text/html; charset=UTF-8", [("Allow", "POST")])
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            if content_type == "application/json":
                params = {k: str(v) for k, v in json.loads(body.decode("utf-8") or "{}").items()}
            else:
                params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (ValueError, AttributeError):
            return oauth_error(400, "invalid_request", "Invalid request body")
        client_id = params.get("client_id")
        client_secret = params.get("client_secret")
        basic = self.headers.get("Authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:].strip()).decode("utf-8")
                client_id, _, client_secret = decoded.partition(":")
                client_id, client_secret = unquote_plus(client_id), unquote_plus(client_secret)
            except (ValueError, UnicodeDecodeError):
                return oauth_error(401, "invalid_client", "Unauthorized")
        refresh = params.get("refresh_token")
        owner = state.tokens.owner_of_refresh(refresh) if refresh else None
        fault = state.faults.match("top", "token", owner)
        if fault is not None and fault.mode == "status":
            status = fault.status
            error = fault.reason or {400: "invalid_grant", 401: "invalid_client", 429: "rate_limit_exceeded"}.get(
                status, "internal_failure" if status >= 500 else "invalid_request")
            return oauth_error(status, error, fault.message or _phrase(status))
        if not client_id or client_id != cfg.client_id:
            reply = oauth_error(401, "invalid_client", "The OAuth client was not found.")
        elif client_secret != cfg.client_secret:
            reply = oauth_error(401, "invalid_client", "Unauthorized")
        elif not params.get("grant_type"):
            reply = oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
        elif params["grant_type"] == "authorization_code":
            reply = self._exchange(params, oauth_error, ctype, headers)
        elif params["grant_type"] != "refresh_token":
            reply = oauth_error(400, "unsupported_grant_type", "Invalid grant_type: %s" % params["grant_type"])
        elif not refresh:
            reply = oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        else:
            token, owner = state.tokens.issue(refresh, cfg.token_ttl)
            state.oauth.note("access_tokens", token)
            if token is None:
                reply = oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            else:
                state.stats.record("token", 200, owner)
                expires_in = max(1, int(cfg.token_ttl) - 1) if cfg.token_ttl >= 2 else max(0, int(cfg.token_ttl))
                reply = Reply(200, dumps({"access_token": token, "expires_in": expires_in, "scope": SCOPE,
                                          "token_type": "Bearer"}), ctype, headers)
        reply.fault = fault
        return reply

    def _exchange(self, params, oauth_error, ctype, headers):
        """grant_type=authorization_code (RFC 6749 4.1.3, RFC 7636 4.6), checked as Google does."""
        state = self.server.state
        cfg = state.config
        code = params.get("code")
        if not code:
            return oauth_error(400, "invalid_request", "Missing required parameter: code")
        verifier = params.get("code_verifier")
        state.oauth.note("verifiers", verifier)
        grant = state.oauth.take_code(code)
        if grant is None or grant["client_id"] != params.get("client_id"):
            return oauth_error(400, "invalid_grant", "Bad Request")
        if params.get("redirect_uri") != grant["redirect_uri"]:
            return oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        if grant["challenge"] is not None:
            if not verifier:
                return oauth_error(400, "invalid_grant", "Missing code verifier.")
            expected = O.s256(verifier) if grant["method"] == "S256" else verifier
            if not O.verifier_ok(verifier) or not secrets_equal(expected, grant["challenge"]):
                return oauth_error(400, "invalid_grant", "Invalid code verifier.")
        email_lc = grant["email"]
        if email_lc not in state.mailboxes:
            return oauth_error(400, "invalid_grant", "Account has been deleted")
        refresh = state.tokens.new_refresh_token()
        state.tokens.add_refresh(email_lc, refresh)
        token, _ = state.tokens.issue(refresh, cfg.token_ttl)
        state.oauth.note("refresh_tokens", refresh)
        state.oauth.note("access_tokens", token)
        state.stats.record("token", 200, email_lc)
        expires_in = max(1, int(cfg.token_ttl) - 1) if cfg.token_ttl >= 2 else max(0, int(cfg.token_ttl))
        return Reply(200, dumps({"access_token": token, "expires_in": expires_in, "refresh_token": refresh,
                                 "scope": O.SCOPE_GRANTED, "token_type": "Bearer"}), ctype, headers)

    def _authorize(self, http_method, query, body):
        """The authorization endpoint: GET shows consent (or decides at once in auto mode), POST
        is the consent page's Allow / Deny. Redirects to redirect_uri with code or error."""
        state = self.server.state
        if http_method == "GET":
            params = dict(parse_qsl(query, keep_blank_values=True))
        elif http_method == "POST":
            params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        else:
            return Reply(405, b"Method Not Allowed", "text/html; charset=UTF-8", [("Allow", "GET, POST")])
        state.oauth.note("states", params.get("state"))
        state.oauth.note("challenges", params.get("code_challenge"))
        error, description, redirectable = O.check_request(params, state.config.client_id)
        page_headers = [("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
                        ("Referrer-Policy", "no-referrer")]
        if error and not redirectable:
            return Reply(400, O.error_page(error, description), "text/html; charset=UTF-8", page_headers)
        redirect_uri = params["redirect_uri"]
        st = params.get("state")
        if error:
            return Reply(302, b"", "text/html; charset=UTF-8",
                         page_headers + [("Location", O.redirect_to(redirect_uri, error=error, state=st))])
        consent = state.oauth.consent
        if http_method == "POST":
            decision = params.get("decision")
            email = params.get("login_hint_email")
        elif consent["mode"] == "page":
            hint = (params.get("login_hint") or consent["email"] or "").lower()
            mailboxes = sorted(mb.email for mb in state.mailboxes.values())
            preselect = next((m for m in mailboxes if m.lower() == hint), mailboxes[0] if mailboxes else None)
            return Reply(200, O.consent_page(params, mailboxes, preselect), "text/html; charset=UTF-8",
                         page_headers + [("Content-Security-Policy", "default-src 'none'; img-src data:")])
        else:
            decision = consent["mode"]
            email = params.get("login_hint") or consent["email"]
        if decision != "allow":
            return Reply(302, b"", "text/html; charset=UTF-8",
                         page_headers + [("Location", O.redirect_to(redirect_uri, error="access_denied", state=st))])
        email_lc = (email or "").lower()
        if email_lc not in state.mailboxes:
            return Reply(400, O.error_page("invalid_request", "No such account: %s" % email), "text/html; charset=UTF-8",
                         page_headers)
        code = state.oauth.new_code(email_lc, params["client_id"], redirect_uri, params.get("code_challenge"),
                                    params.get("code_challenge_method", "plain") if params.get("code_challenge")
                                    else None)
        location = O.redirect_to(redirect_uri, state=st, code=code, scope=O.SCOPE_GRANTED)
        return Reply(302, b"", "text/html; charset=UTF-8", page_headers + [("Location", location)])

    def _revoke(self, query, body):
        state = self.server.state
        params = dict(parse_qsl(query))
        params.update(parse_qsl(body.decode("utf-8", "replace")))
        token = params.get("token", "")
        kind = "refresh" if state.tokens.owner_of_refresh(token) else "access"
        owner = state.tokens.owner_of_refresh(token) or state.tokens.lookup(token)
        if state.tokens.revoke_token(token):
            state.oauth.record_revocation(kind, owner)
            return Reply(200, b"{}\n", "application/json; charset=utf-8")
        return Reply(400, dumps({"error": "invalid_token", "error_description": "Token expired or revoked"}),
                     "application/json; charset=utf-8")


def secrets_equal(a, b):
    import hmac
    return hmac.compare_digest(a.encode(), b.encode())


def _phrase(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# --- control API -----------------------------------------------------------------------------

def _json_reply(status, obj):
    return Reply(status, (json.dumps(obj, ensure_ascii=False, indent=1) + "\n").encode("utf-8"),
                 "application/json; charset=utf-8")


def _control_error(status, message):
    return _json_reply(status, {"error": message})


def control(state, http_method, path, query, body):
    parts = [unquote(p) for p in path[len("/_control/"):].split("/")]
    if len(parts) == 3 and parts[0] == "mailboxes" and parts[2] in ("import", "import-mbox"):
        # the body is mail, not JSON
        try:
            return _import(state, http_method, parts, dict(parse_qsl(query)), body)
        except (ValueError, TypeError, M.InvalidArgument) as err:
            return _control_error(400, str(err))
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return _control_error(400, "body is not JSON")
    if not isinstance(data, dict):
        return _control_error(400, "body must be a JSON object")
    params = dict(parse_qsl(query))
    try:
        return _control(state, http_method, parts, data, params)
    except (ValueError, TypeError, M.InvalidArgument) as err:
        return _control_error(400, str(err))
    except M.NotFound:
        return _control_error(404, "no such label")


def _control(state, http_method, parts, data, params):
    cfg = state.config
    head = parts[0]
    if head == "health" and http_method == "GET":
        return _json_reply(200, {"ok": True})
    if head == "quiet" and http_method == "GET":
        quiet = state.wait_quiet(min(float(params.get("timeout", "10")), 60.0))
        return _json_reply(200, {"quiet": bool(quiet), "api_connections": state.api_conns()})
    if head == "config":
        if http_method == "POST":
            cfg.update(data)
            if "history_retention" in data:
                for mailbox in list(state.mailboxes.values()):
                    mailbox.set_retention(cfg.history_retention)
        elif http_method != "GET":
            return _control_error(405, "GET or POST")
        return _json_reply(200, cfg.as_dict())
    if head == "consent":
        if http_method == "POST":
            return _json_reply(200, state.oauth.set_consent(data))
        if http_method == "GET":
            return _json_reply(200, dict(state.oauth.consent))
        return _control_error(405, "GET or POST")
    if head == "push":
        return _json_reply(200, fg_push.control(state.push, http_method, parts, data))
    if head == "revocations" and http_method == "GET":
        return _json_reply(200, {"revocations": list(state.oauth.revocations)})
    if head == "issued" and http_method == "GET":
        return _json_reply(200, state.oauth.snapshot())
    if head == "stats":
        if len(parts) == 2 and parts[1] == "reset" and http_method == "POST":
            state.stats.reset()
            for quota in list(state.quotas.values()):
                quota.max_in_flight = quota.in_flight
            return _json_reply(200, {"ok": True})
        if len(parts) == 1 and http_method == "GET":
            return _json_reply(200, state.stats.snapshot(state.quotas))
    if head == "faults":
        if len(parts) == 1:
            if http_method == "POST":
                fault = state.faults.add(data)
                return _json_reply(201, {"id": fault.id})
            if http_method == "DELETE":
                state.faults.clear()
                return _json_reply(200, {"ok": True})
            if http_method == "GET":
                return _json_reply(200, {"faults": state.faults.describe()})
        elif len(parts) == 2 and http_method == "DELETE":
            if state.faults.remove(parts[1]):
                return _json_reply(200, {"ok": True})
            return _control_error(404, "no such fault")
    if head == "mailboxes":
        if len(parts) == 1:
            if http_method == "POST":
                return _create_mailbox(state, data)
            if http_method == "GET":
                return _json_reply(200, {"mailboxes": sorted(mb.email for mb in state.mailboxes.values())})
        elif len(parts) >= 2:
            email_lc = parts[1].lower()
            mailbox = state.mailboxes.get(email_lc)
            if mailbox is None:
                return _control_error(404, "no such mailbox")
            if len(parts) == 2:
                if http_method == "GET":
                    summary = mailbox.summary(params.get("ids") in ("1", "true"))
                    lock = state.quota_for(email_lc).lockout
                    summary["lockout"] = lock.describe() if lock else None
                    return _json_reply(200, summary)
                if http_method == "DELETE":
                    with state.lock:
                        state.mailboxes.pop(email_lc, None)
                    state.tokens.drop_mailbox(email_lc)
                    return _json_reply(200, {"deleted": mailbox.email})
            elif len(parts) == 3 and http_method == "POST":
                return _mailbox_action(state, mailbox, parts[2], data)
            elif len(parts) == 4 and parts[2] == "raw" and http_method == "GET":
                msg = mailbox.messages.get(parts[3])
                if msg is None:
                    return _control_error(404, "no such message")
                return Reply(200, mailbox.raw_message(msg), "message/rfc822")
    return _control_error(404, "unknown control endpoint %s %s" % (http_method, "/".join(parts)))


def _import(state, http_method, parts, params, body):
    """POST /_control/mailboxes/{email}/import (one RFC 822 message) or /import-mbox (an mbox):
    the exact bytes become new messages (see fg_import)."""
    if http_method != "POST":
        return _control_error(405, "POST")
    mailbox = state.mailboxes.get(parts[1].lower())
    if mailbox is None:
        return _control_error(404, "no such mailbox")
    unknown = set(params) - {"labelIds", "internalDate"}
    if unknown:
        raise ValueError("unknown parameter %s" % sorted(unknown)[0])
    labels = None
    if "labelIds" in params:
        labels = [label for label in params["labelIds"].split(",") if label]
    internal_date = None
    if "internalDate" in params:
        if not params["internalDate"].isdigit():
            raise ValueError("internalDate must be milliseconds since 1970")
        internal_date = int(params["internalDate"])
    if parts[2] == "import":
        msg = mailbox.import_message(body, labels, internal_date)
        state.push.changed(mailbox.email, msg.history_id)
        return _json_reply(201, {"id": msg.id, "threadId": msg.thread_id, "historyId": str(msg.history_id)})
    raws = I.split_mbox(body)
    if not raws:
        raise ValueError("the mbox holds no message")
    ids = [mailbox.import_message(raw, labels, internal_date).id for raw in raws]
    state.push.changed(mailbox.email, mailbox.history_id)
    return _json_reply(201, {"ids": ids})


def _create_mailbox(state, data):
    email_addr = data.get("email")
    if not isinstance(email_addr, str) or "@" not in email_addr:
        raise ValueError("email is required")
    count = data.get("messages", 100)
    seed = data.get("seed", 0)
    spam_trash = data.get("spam_trash", 0)
    for name, value in (("messages", count), ("spam_trash", spam_trash)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("%s must be a non-negative integer" % name)
    if not isinstance(seed, (int, str)) or isinstance(seed, bool):
        raise ValueError("seed must be an integer or a string")
    refresh = data.get("refresh_token") or state.tokens.new_refresh_token()
    if not isinstance(refresh, str):
        raise ValueError("refresh_token must be a string")
    prerender = data.get("prerender", state.config.prerender)
    if not isinstance(prerender, bool):
        raise ValueError("prerender must be a boolean")
    text = data.get("text", "sentences")
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    mailbox = M.Mailbox(email_addr, count, seed, refresh, spam_trash, state.config.history_retention, prerender,
                        text)
    email_lc = email_addr.lower()
    with state.lock:
        state.mailboxes[email_lc] = mailbox
        state.quotas[email_lc] = P.Quota()
    state.tokens.drop_mailbox(email_lc)
    state.tokens.set_refresh(email_lc, refresh)
    state.oauth.note("refresh_tokens", refresh)
    gc.collect(0)
    return _json_reply(201, {"email": email_addr, "refresh_token": refresh,
                             "messages_total": len(mailbox.messages), "history_id": str(mailbox.history_id)})


def _ids_arg(data, mailbox):
    ids = data.get("ids")
    if ids is None and "count" in data:
        return mailbox.newest_ids(int(data["count"]))
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("ids must be a list of message ids")
    return ids


def _mailbox_action(state, mailbox, action, data):
    email_lc = mailbox.email_lc
    if action == "messages":
        count = data.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1 or count > 1000000:
            raise ValueError("count must be a positive integer")
        ids, hid = mailbox.add_messages(count, data.get("labels"))
        state.push.changed(mailbox.email, hid)
        return _json_reply(200, {"history_id": str(hid), "ids": ids})
    if action == "delete":
        deleted, missing, hid = mailbox.delete_messages(_ids_arg(data, mailbox))
        state.push.changed(mailbox.email, hid)
        return _json_reply(200, {"history_id": str(hid), "ids": deleted, "missing": missing})
    if action == "labels":
        add, remove = data.get("add", []), data.get("remove", [])
        if not isinstance(add, list) or not isinstance(remove, list):
            raise ValueError("add and remove must be lists of label ids")
        changed, missing, hid = mailbox.relabel(_ids_arg(data, mailbox), add, remove)
        state.push.changed(mailbox.email, hid)
        return _json_reply(200, {"history_id": str(hid), "ids": changed, "missing": missing})
    if action == "label-create":
        lid = mailbox.create_label(data.get("name"), data.get("color"))
        return _json_reply(200, {"id": lid})
    if action == "label-update":
        mailbox.update_label(data.get("id"), data.get("name"), data.get("color"))
        return _json_reply(200, {"id": data.get("id")})
    if action == "label-delete":
        on = mailbox.delete_label(data.get("id"))
        return _json_reply(200, {"id": data.get("id"), "removed_from": on,
                                 "history_id": str(mailbox.history_id)})
    if action == "revoke":
        state.tokens.revoke(email_lc)
        return _json_reply(200, {"revoked": mailbox.email})
    if action == "lockout":
        lock = P.Lockout(data) if data.get("seconds", 60) else None
        quota = state.quota_for(email_lc)
        with quota.lock:
            quota.lockout = lock
        return _json_reply(200, {"lockout": lock.describe() if lock else None})
    if action == "expire-tokens":
        return _json_reply(200, {"expired": state.tokens.expire(email_lc)})
    if action == "token":
        token, _ = state.tokens.issue(mailbox.refresh_token, state.config.token_ttl)
        state.oauth.note("access_tokens", token)
        if token is None:
            return _control_error(409, "refresh token revoked")
        return _json_reply(200, {"access_token": token, "expires_in": int(state.config.token_ttl)})
    return _control_error(404, "unknown action %s" % action)


# --- server ----------------------------------------------------------------------------------

class FakeGmailServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, state):
        self.state = state
        ThreadingHTTPServer.__init__(self, address, Handler)

    def get_request(self):
        sock, addr = ThreadingHTTPServer.get_request(self)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr

    def handle_error(self, request, client_address):
        # Clients that hang up (and our own injected resets) are not errors of the fake.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, OSError, ValueError)) and not self.state.config.verbose:
            return
        ThreadingHTTPServer.handle_error(self, request, client_address)


def parse_args(argv):
    # no abbreviations: `--client-secret SECRET` must not pass for --client-secret-file
    ap = argparse.ArgumentParser(description="Fake Gmail REST API + OAuth token endpoint (loopback only).",
                                 allow_abbrev=False)
    ap.add_argument("--host", default="127.0.0.1", help="bind address; loopback only (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8089, help="TCP port, 0 picks a free one (default 8089)")
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret-file", required=True, metavar="PATH",
                    help="file holding the OAuth client secret (read once at startup; trailing "
                         "whitespace ignored): never on the command line, where `ps` shows it")
    ap.add_argument("--quota-units-per-sec", type=int, default=250,
                    help="per-mailbox Gmail units per 1-s window, 0 = unlimited (default 250)")
    ap.add_argument("--quota-units-per-minute", type=int, default=0,
                    help="per-mailbox units per 60-s window (403), 0 = unlimited (default; Gmail's is 15000)")
    ap.add_argument("--minute-quota-style", choices=("legacy", "modern"), default="legacy",
                    help="403 body: legacy userRateLimitExceeded or modern 'Quota exceeded ...' (default legacy)")
    ap.add_argument("--max-concurrent-per-user", type=int, default=0,
                    help="requests (and batch parts) in flight per mailbox before 429 'Too many concurrent "
                         "requests for user.', 0 = unlimited (default 0)")
    ap.add_argument("--max-batch", type=int, default=100, help="inner requests per batch (default 100)")
    ap.add_argument("--history-retention", type=int, default=0,
                    help="history records kept per mailbox, 0 = all (default 0)")
    ap.add_argument("--token-ttl", type=float, default=3600.0, help="access token lifetime, seconds (default 3600)")
    ap.add_argument("--shuffle-batch", action="store_true", help="answer batch parts in random order")
    ap.add_argument("--pidfile", help="write the process id here; removed on exit")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--content-cache", type=int, default=2000,
                    help="fully generated messages kept (full/raw/all headers; default 2000)")
    ap.add_argument("--render-cache", type=int, default=60000, help="rendered JSON bodies kept (default 60000)")
    ap.add_argument("--prerender", action="store_true",
                    help="generate every message's envelope when a mailbox is created (slower creation, "
                         "faster first sync); per mailbox: {\"prerender\": true}")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("--host must be a loopback address")
    if args.max_batch < 1:
        ap.error("--max-batch must be at least 1")
    try:
        with open(args.client_secret_file, encoding="utf-8") as fh:
            args.client_secret = fh.read().rstrip("\r\n\t ")
    except OSError as exc:
        ap.error("--client-secret-file: %s" % exc)
    if not args.client_secret:
        ap.error("--client-secret-file: %s is empty" % args.client_secret_file)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    M.CONTENT_CACHE.maxsize = max(100, args.content_cache)
    M.RENDER_CACHE.maxsize = max(100, args.render_cache)
    gc.set_threshold(50000, 50, 100)
    state = State(Config(args))
    state.api_top = Api(state)
    server = FakeGmailServer((args.host, args.port), state)
    port = server.server_address[1]
    if args.pidfile:
        with open(args.pidfile, "w") as fh:
            fh.write("%d\n" % os.getpid())
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as fh:
            fh.write("%d\n" % port)
        os.replace(args.port_file + ".tmp", args.port_file)

    def stop(signum, frame):
        state.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # kill -USR1 PID writes every thread's stack to the fake's stderr (its log): what it is doing
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    sys.stdout.write(json.dumps({"fake_gmail": "ready", "url": "http://%s:%d" % (args.host, port), "port": port,
                                 "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    rc = main()
    # a big mailbox held in memory takes seconds to tear down object by object at interpreter exit
    # (seen: more than 10 s after a whole test run); nothing is left to flush once main() returns
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
