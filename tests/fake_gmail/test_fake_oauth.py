"""The fake's authorization endpoint, code exchange (PKCE) and revocation, against Google's
documented behaviour (RFC 6749 4.1, RFC 7636, RFC 7009).

Run: /usr/bin/python3 -m pytest -q tests/fake_gmail/test_fake_oauth.py
"""
import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from test_fake_gmail import CLIENT_ID, CLIENT_SECRET, server  # noqa: F401 (the fake, per module)

REDIRECT = "http://127.0.0.1:9/api/gmail/sync/oauth/callback"
SCOPE = "https://www.googleapis.com/auth/gmail.readonly"


@pytest.fixture
def fake(server):  # noqa: F811
    return server


@pytest.fixture(autouse=True)
def consent_page_mode(fake):
    fake.ctl("POST", "consent", {"mode": "page", "email": None}, expect=200)


def pkce():
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize(fake, challenge, state="st-" + "x" * 40, **extra):
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "scope": SCOPE,
              "access_type": "offline", "prompt": "consent", "state": state, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    params.update(extra)
    return fake.http.get(fake.base + "/o/oauth2/v2/auth", params={k: v for k, v in params.items() if v is not None},
                         allow_redirects=False)


def callback_query(resp):
    assert resp.status_code == 302, resp.text
    loc = resp.headers["Location"]
    assert loc.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}


def exchange(fake, code, verifier, redirect_uri=REDIRECT, client_id=CLIENT_ID):
    return fake.http.post(fake.base + "/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": redirect_uri, "client_id": client_id, "client_secret": CLIENT_SECRET})


def test_auto_consent_issues_a_code_that_exchanges_once_with_the_right_verifier(fake):
    fake.mailbox("consent-a@example.com", messages=3)
    fake.ctl("POST", "consent", {"mode": "allow", "email": "consent-a@example.com"}, expect=200)
    verifier, challenge = pkce()
    q = callback_query(authorize(fake, challenge, state="abc"))
    assert q["state"] == "abc" and q["code"].startswith("4/0A") and q["scope"] == SCOPE
    r = exchange(fake, q["code"], verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["refresh_token"].startswith("1//0")
    assert body["expires_in"] > 0 and body["scope"] == SCOPE
    profile = fake.http.get(fake.base + "/gmail/v1/users/me/profile",
                            headers={"Authorization": "Bearer " + body["access_token"]})
    assert profile.json()["emailAddress"] == "consent-a@example.com"
    # single use
    again = exchange(fake, q["code"], verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # the new refresh token works, and so does the mailbox's earlier one
    assert fake.token(body["refresh_token"])
    issued = fake.ctl("GET", "issued", expect=200)
    assert q["code"] in issued["codes"] and body["refresh_token"] in issued["refresh_tokens"]
    assert body["access_token"] in issued["access_tokens"] and "abc" in issued["states"]
    assert verifier in issued["verifiers"]


def test_a_wrong_verifier_is_invalid_grant_and_burns_the_code(fake):
    fake.mailbox("consent-b@example.com", messages=1)
    fake.ctl("POST", "consent", {"mode": "allow", "email": "consent-b@example.com"}, expect=200)
    verifier, challenge = pkce()
    q = callback_query(authorize(fake, challenge))
    r = exchange(fake, q["code"], pkce()[0])
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Invalid code verifier."}
    assert exchange(fake, q["code"], verifier).status_code == 400


def test_the_code_is_bound_to_its_redirect_uri_and_client(fake):
    fake.mailbox("consent-c@example.com", messages=1)
    fake.ctl("POST", "consent", {"mode": "allow", "email": "consent-c@example.com"}, expect=200)
    verifier, challenge = pkce()
    q = callback_query(authorize(fake, challenge))
    r = exchange(fake, q["code"], verifier, redirect_uri=REDIRECT + "x")
    assert r.status_code == 400 and r.json()["error"] == "redirect_uri_mismatch"
    q = callback_query(authorize(fake, challenge))
    r = exchange(fake, q["code"], verifier, client_id="other")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = exchange(fake, "4/0Anot-a-code", verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_deny_redirects_with_access_denied(fake):
    fake.ctl("POST", "consent", {"mode": "deny"}, expect=200)
    q = callback_query(authorize(fake, pkce()[1], state="s1"))
    assert q == {"error": "access_denied", "state": "s1"}


def test_bad_requests_are_shown_not_redirected_when_the_client_or_uri_is_wrong(fake):
    r = authorize(fake, pkce()[1], client_id="nobody")
    assert r.status_code == 400 and "invalid_client" in r.text and "Location" not in r.headers
    r = authorize(fake, pkce()[1], redirect_uri="javascript:alert(1)")
    assert r.status_code == 400 and "Location" not in r.headers
    q = callback_query(authorize(fake, pkce()[1], code_challenge_method="S512"))
    assert q["error"] == "invalid_request"
    q = callback_query(authorize(fake, pkce()[1], response_type="token"))
    assert q["error"] == "unsupported_response_type"


def test_the_consent_page_allows_and_denies(fake):
    fake.mailbox("consent-d@example.com", messages=1)
    verifier, challenge = pkce()
    page = authorize(fake, challenge, state="pg", login_hint="consent-d@example.com")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert ">Allow</button>" in page.text and ">Deny</button>" in page.text
    assert re.search(r'<option value="consent-d@example.com" selected>', page.text)
    form = dict(re.findall(r'<input type=hidden name="([^"]+)" value="([^"]*)">', page.text))
    assert form["state"] == "pg" and form["code_challenge"] == challenge
    allowed = fake.http.post(fake.base + "/o/oauth2/v2/auth", allow_redirects=False,
                             data=dict(form, decision="allow", login_hint_email="consent-d@example.com"))
    q = callback_query(allowed)
    assert exchange(fake, q["code"], verifier).status_code == 200
    denied = fake.http.post(fake.base + "/o/oauth2/v2/auth", allow_redirects=False,
                            data=dict(form, decision="deny", login_hint_email="consent-d@example.com"))
    assert callback_query(denied) == {"error": "access_denied", "state": "pg"}


def test_revocation_is_recorded_and_a_revoked_refresh_token_is_invalid_grant(fake):
    info = fake.mailbox("consent-e@example.com", messages=1)
    before = len(fake.ctl("GET", "revocations", expect=200)["revocations"])
    r = fake.http.post(fake.base + "/revoke", data={"token": info["refresh_token"]})
    assert r.status_code == 200
    revs = fake.ctl("GET", "revocations", expect=200)["revocations"]
    assert len(revs) == before + 1
    assert revs[-1]["kind"] == "refresh" and revs[-1]["email"] == "consent-e@example.com"
    refresh = fake.http.post(fake.base + "/token", data={
        "grant_type": "refresh_token", "refresh_token": info["refresh_token"],
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    again = fake.http.post(fake.base + "/revoke", data={"token": info["refresh_token"]})
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"


def test_consent_control_validates(fake):
    r = requests.post(fake.base + "/_control/consent", json={"mode": "maybe"})
    assert r.status_code == 400
    assert fake.ctl("GET", "consent", expect=200) == {"mode": "page", "email": None}
