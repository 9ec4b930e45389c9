"""Google's OAuth 2.0 authorization endpoint as the fake plays it: consent (automatic for tests,
a small HTML page with Allow and Deny for the demo), single-use authorization codes bound to the
client, the redirect URI and a PKCE challenge, and the record of what was issued and revoked.
"""
import base64
import hashlib
import html
import secrets
import threading
import time
from urllib.parse import urlencode, urlsplit

AUTH_PATHS = ("/o/oauth2/v2/auth", "/o/oauth2/auth")
SCOPE_GRANTED = "https://www.googleapis.com/auth/gmail.readonly"
CODE_TTL = 600.0          # Google's codes live about ten minutes
ISSUED_MAX = 10000        # per kind, for the leak scans of the tests


def s256(verifier):
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def verifier_ok(verifier):
    """RFC 7636 4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~]."""
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    return 43 <= len(verifier) <= 128 and all(c in allowed for c in verifier)


class OAuthState:
    """Consent settings, pending codes, and the record of issued values and revocations."""

    def __init__(self):
        self.lock = threading.Lock()
        self.consent = {"mode": "page", "email": None}   # mode: page | allow | deny
        self.codes = {}           # code -> dict(email, client_id, redirect_uri, challenge, method, expires)
        self.issued = {"codes": [], "refresh_tokens": [], "access_tokens": [], "states": [],
                       "verifiers": [], "challenges": []}
        self.revocations = []     # {"kind", "email", "at"}

    def note(self, kind, value):
        if not value:
            return
        with self.lock:
            seen = self.issued[kind]
            if len(seen) < ISSUED_MAX:
                seen.append(value)

    def set_consent(self, data):
        mode = data.get("mode", self.consent["mode"])
        if mode not in ("page", "allow", "deny"):
            raise ValueError("mode must be page, allow or deny")
        email = data.get("email", self.consent["email"])
        if email is not None and not isinstance(email, str):
            raise ValueError("email must be a string or null")
        with self.lock:
            self.consent = {"mode": mode, "email": email}
        return dict(self.consent)

    def new_code(self, email, client_id, redirect_uri, challenge, method):
        code = "4/0A" + secrets.token_urlsafe(48)
        with self.lock:
            now = time.monotonic()
            for old, entry in list(self.codes.items()):
                if entry["expires"] < now:
                    del self.codes[old]
            self.codes[code] = {"email": email, "client_id": client_id, "redirect_uri": redirect_uri,
                                "challenge": challenge, "method": method, "expires": now + CODE_TTL}
        self.note("codes", code)
        return code

    def take_code(self, code):
        """The code's grant, removed: a code is good for one exchange, whatever its outcome."""
        with self.lock:
            entry = self.codes.pop(code, None)
        if entry is None or entry["expires"] < time.monotonic():
            return None
        return entry

    def record_revocation(self, kind, email):
        with self.lock:
            self.revocations.append({"kind": kind, "email": email, "at": time.time()})

    def snapshot(self):
        with self.lock:
            return {k: list(v) for k, v in self.issued.items()}


def check_request(params, client_id):
    """Google's checks of an authorization request. Returns (error, description, redirectable):
    errors about the client or the redirect URI are shown on Google's page, never redirected."""
    if params.get("client_id") != client_id:
        return "invalid_client", "The OAuth client was not found.", False
    redirect_uri = params.get("redirect_uri", "")
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return "redirect_uri_mismatch", "Invalid redirect_uri.", False
    if params.get("response_type") != "code":
        return "unsupported_response_type", "Invalid response_type.", True
    scopes = params.get("scope", "").split()
    if not scopes:
        return "invalid_request", "Missing required parameter: scope", True
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            return "invalid_request", "Missing code_challenge.", True
    elif (method or "plain") not in ("S256", "plain"):
        return "invalid_request", "Invalid code_challenge_method.", True
    elif not verifier_ok(challenge):
        return "invalid_request", "Invalid code_challenge.", True
    return None, None, True


def redirect_to(redirect_uri, **params):
    sep = "&" if "?" in redirect_uri else "?"
    return redirect_uri + sep + urlencode({k: v for k, v in params.items() if v is not None})


def error_page(error, description):
    body = ("<!doctype html><html lang=en><meta charset=utf-8><title>Error 400 (OAuth 2.0 policy)</title>"
            "<h1>Access blocked: authorization error</h1><p>Error 400: %s</p><p>%s</p></html>\n"
            % (html.escape(error), html.escape(description)))
    return body.encode("utf-8")


def consent_page(params, mailboxes, preselect):
    """The demo's consent screen: which mailbox, and Allow / Deny. A plain form POST back here."""
    hidden = "".join('<input type=hidden name="%s" value="%s">' % (html.escape(k), html.escape(v))
                     for k, v in sorted(params.items()) if k != "decision" and k != "login_hint_email")
    options = "".join('<option value="%s"%s>%s</option>' % (html.escape(m), " selected" if m == preselect else "",
                                                           html.escape(m)) for m in mailboxes)
    if not mailboxes:
        choose = "<p>No mailbox exists in the fake Gmail yet.</p>"
    else:
        choose = ('<p><label for=mailbox>Account</label> <select id=mailbox name=login_hint_email>%s'
                  '</select></p>' % options)
    body = ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<title>Sign in - Google Accounts (fake)</title><link rel=icon href=\"data:,\"></head><body>"
            "<main><h1>fake Gmail wants to know</h1>"
            "<p><strong>%s</strong> wants to <strong>read your email messages and settings</strong> "
            "(gmail.readonly).</p>"
            "<form method=post action=\"/o/oauth2/v2/auth\">%s%s"
            "<button type=submit name=decision value=deny>Deny</button> "
            "<button type=submit name=decision value=allow>Allow</button>"
            "</form></main></body></html>\n"
            % (html.escape(params.get("client_id", "")), hidden, choose))
    return body.encode("utf-8")
