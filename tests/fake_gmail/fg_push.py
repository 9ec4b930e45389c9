"""Gmail push notifications through Cloud Pub/Sub, as a push subscription delivers them.

- Google's signing keys: a JWKS at GET /oauth2/v3/certs (RSA 2048, RS256, each with a kid), with
  a Cache-Control max-age like Google's; keys rotate on request (the new key signs, the old one
  stays published unless dropped).
- OIDC tokens as Pub/Sub mints them for a push subscription with authentication: iss
  https://accounts.google.com, aud the subscription's audience, email the service account,
  email_verified true, iat, exp one hour later, sub; signed RS256 with the current key.
- users.watch / users.stop: recorded per mailbox with an expiration (seven days, or what
  /_control/push/config sets); a mailbox with a live watch gets a notification when its history
  changes (and every mailbox does when `require_watch` is off).
- The push simulator: one delivery thread POSTs {"message": {"data": base64({"emailAddress",
  "historyId"}), "messageId", "publishTime"}, "subscription"} with the token as Authorization:
  Bearer to the configured endpoint; a non-2xx answer is retried with an exponential backoff
  (as Pub/Sub does: 0.2 s doubling up to 10 s, up to `max_attempts`, 12); on request some are
  dropped, some delivered twice, and batches held and delivered out of order.

RSA signatures come from Debian's python3-cryptography (the rest of the fake is the standard
library): without it the push endpoints answer 501 and say why.
"""

import base64
import json
import random
import threading
import time
import urllib.error
import urllib.request

try:
    from cryptography.hazmat.primitives import hashes, hmac
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    HAVE_CRYPTO = True
except ImportError:   # python3-cryptography is in GS_APT_PACKAGES; say so when missing
    HAVE_CRYPTO = False

WATCH_TTL = 7 * 24 * 3600
ISSUER = "https://accounts.google.com"


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _int_b64(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Key:
    def __init__(self, kid):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self):
        pub = self.private.public_key().public_numbers()
        return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                "n": _int_b64(pub.n), "e": _int_b64(pub.e)}

    def sign(self, data):
        return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())


class Push:
    CONFIG = {"endpoint": str, "audience": str, "service_account": str, "subscription": str,
              "enabled": bool, "require_watch": bool, "drop": float, "duplicate": float,
              "reorder": int, "max_attempts": int, "jwks_max_age": int, "watch_ttl": int,
              "token_ttl": int}

    def __init__(self, stopping):
        self.stopping = stopping
        self.lock = threading.Condition()
        self.keys = []           # published, newest last; the last one signs
        self.next_kid = 1
        self.endpoint = ""
        self.audience = ""
        self.service_account = "gmail-push@fake-project.iam.gserviceaccount.com"
        self.subscription = "projects/fake-project/subscriptions/gmail-push"
        self.enabled = False
        self.require_watch = True
        self.drop = 0.0          # share of notifications never delivered
        self.duplicate = 0.0     # share delivered twice (the same messageId)
        self.reorder = 0         # hold this many and deliver them shuffled
        self.max_attempts = 12   # with the backoff below: about a minute of retries
        self.jwks_max_age = 300
        self.watch_ttl = WATCH_TTL
        self.token_ttl = 3600
        self.watches = {}        # email (lower case) -> {"topic", "expiration" ms, "label_ids"}
        self.watch_log = []      # {"op": "watch"|"stop", "email", "at", ...}
        self.watch_calls = []    # every call as it arrived, refused ones too: {"op", "email", "at"}
        self.queue = []          # notifications waiting for delivery
        self.held = []           # for reordering
        self.deliveries = []     # {"message_id", "email", "history_id", "status", "attempt", "at"}
        self.published = 0
        self.dropped = 0
        self.jwks_fetches = 0
        self.rng = random.Random(26)
        self.seq = 0
        self.thread = None

    # --- keys and tokens ---------------------------------------------------------------------
    def _need_crypto(self):
        if not HAVE_CRYPTO:
            raise ValueError("push needs python3-cryptography (Debian package): not installed")

    def _ensure_key(self):
        if not self.keys:
            self.rotate()

    def rotate(self, keep_old=True):
        self._need_crypto()
        with self.lock:
            key = Key("fake-%d-%08x" % (self.next_kid, random.getrandbits(32)))
            self.next_kid += 1
            self.keys = (self.keys if keep_old else []) + [key]
            return key.kid

    def jwks(self):
        self._need_crypto()
        with self.lock:
            self._ensure_key()
            self.jwks_fetches += 1
            return ({"keys": [k.jwk() for k in self.keys]},
                    "public, max-age=%d, must-revalidate, no-transform" % self.jwks_max_age)

    def claims(self, now=None):
        now = int(time.time() if now is None else now)
        return {"aud": self.audience or self.endpoint, "azp": "1234567890", "email": self.service_account,
                "email_verified": True, "exp": now + self.token_ttl, "iat": now, "iss": ISSUER,
                "sub": "112233445566778899000"}

    def mint(self, overrides=None, alg="RS256", kid=None, key="current", header=None):
        """A token: the claims of a push with `overrides` (None removes a claim), signed with
        alg by the current key ("current"), a fresh key nobody publishes ("unknown"), or with
        HS256 keyed by the current key's public JWK text ("public-as-secret"); "none" gives an
        unsigned one. kid overrides the header's kid."""
        self._need_crypto()
        with self.lock:
            self._ensure_key()
            current = self.keys[-1]
        claims = self.claims()
        for name, value in (overrides or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        signer = Key("unpublished") if key == "unknown" else current
        hdr = {"alg": alg, "kid": kid if kid is not None else signer.kid, "typ": "JWT"}
        hdr.update(header or {})
        signing_input = (b64url(json.dumps(hdr)) + "." + b64url(json.dumps(claims))).encode()
        if alg == "none":
            return signing_input.decode() + "."
        if alg == "HS256":
            mac = hmac.HMAC(json.dumps(current.jwk()).encode(), hashes.SHA256())
            mac.update(signing_input)
            return signing_input.decode() + "." + b64url(mac.finalize())
        return signing_input.decode() + "." + b64url(signer.sign(signing_input))

    # --- configuration, watch, stop ----------------------------------------------------------
    def configure(self, data):
        with self.lock:
            for name, value in data.items():
                kind = self.CONFIG.get(name)
                if kind is None:
                    raise ValueError("unknown push setting %s" % name)
                if kind is float and isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                    raise ValueError("%s must be %s" % (name, kind.__name__))
                if name in ("drop", "duplicate") and not 0.0 <= value <= 1.0:
                    raise ValueError("%s must be within 0..1" % name)
                setattr(self, name, value)
            if self.enabled:
                self._need_crypto()
                self._ensure_key()
                self._start()
            self.lock.notify_all()
            return self.describe()

    def describe(self):
        return {name: getattr(self, name) for name in self.CONFIG}

    def watch(self, email_lc, topic, label_ids, history_id):
        if not isinstance(topic, str) or not topic.startswith("projects/") or "/topics/" not in topic:
            raise ValueError("Invalid topicName")
        expiration = int((time.time() + self.watch_ttl) * 1000)
        with self.lock:
            self.watches[email_lc] = {"topic": topic, "expiration": expiration, "label_ids": label_ids}
            self.watch_log.append({"op": "watch", "email": email_lc, "topic": topic,
                                   "label_ids": label_ids, "expiration": expiration, "at": time.time()})
        return {"historyId": str(history_id), "expiration": str(expiration)}

    def called(self, method, email_lc):
        """Every users.watch / users.stop call as it arrives (before faults and quota)."""
        with self.lock:
            self.watch_calls.append({"op": method, "email": email_lc, "at": time.time()})

    def stop(self, email_lc):
        with self.lock:
            self.watches.pop(email_lc, None)
            self.watch_log.append({"op": "stop", "email": email_lc, "at": time.time()})

    def _watched(self, email_lc):
        w = self.watches.get(email_lc)
        return w is not None and w["expiration"] > time.time() * 1000

    # --- the simulator -----------------------------------------------------------------------
    def changed(self, email, history_id):
        """The mailbox's history moved: publish a notification (if push is on and it is watched)."""
        email_lc = email.lower()
        with self.lock:
            if not self.enabled or (self.require_watch and not self._watched(email_lc)):
                return
            self.seq += 1
            self.published += 1
            note = {"message_id": "%d%06d" % (int(time.time()), self.seq), "email": email,
                    "history_id": int(history_id), "publish_time": time.strftime(
                        "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "attempt": 0}
            if self.rng.random() < self.drop:
                self.dropped += 1
                return
            copies = [note, dict(note)] if self.rng.random() < self.duplicate else [note]
            if self.reorder > 1:
                self.held.extend(copies)
                if len(self.held) >= self.reorder:
                    self.rng.shuffle(self.held)
                    self.queue.extend(self.held)
                    self.held = []
            else:
                self.queue.extend(copies)
            self.lock.notify_all()

    def flush(self):
        """Delivers the held (reordered) notifications now, shuffled."""
        with self.lock:
            self.rng.shuffle(self.held)
            self.queue.extend(self.held)
            self.held = []
            self.lock.notify_all()

    def send(self, note, token=None):
        """One delivery attempt; returns the HTTP status (0: no answer)."""
        data = base64.b64encode(json.dumps({"emailAddress": note["email"],
                                            "historyId": note["history_id"]}).encode()).decode()
        body = json.dumps({"message": {"data": data, "messageId": note["message_id"],
                                       "message_id": note["message_id"],
                                       "publishTime": note["publish_time"],
                                       "publish_time": note["publish_time"]},
                           "subscription": self.subscription}).encode()
        req = urllib.request.Request(self.endpoint, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
            "Authorization": "Bearer " + (token or self.mint())})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
                return r.status
        except urllib.error.HTTPError as e:
            e.read()
            return e.code
        except (OSError, ValueError):
            return 0

    def _start(self):
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="push", daemon=True)
            self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            with self.lock:
                self.lock.wait_for(lambda: self.queue or self.stopping.is_set(), timeout=1.0)
                if not self.queue:
                    continue
                note = self.queue.pop(0)
            note["attempt"] += 1
            status = self.send(note)
            with self.lock:
                self.deliveries.append({"message_id": note["message_id"], "email": note["email"],
                                        "history_id": note["history_id"], "status": status,
                                        "attempt": note["attempt"], "at": time.time()})
                if not 200 <= status < 300 and note["attempt"] < self.max_attempts:
                    retry = dict(note)
                    # Pub/Sub's exponential backoff (its default: 10 s to 600 s), shortened
                    threading.Timer(min(0.1 * 2 ** note["attempt"], 10.0), self._requeue, (retry,)).start()

    def _requeue(self, note):
        with self.lock:
            self.queue.append(note)
            self.lock.notify_all()

    def snapshot(self):
        with self.lock:
            return {"published": self.published, "dropped": self.dropped, "queued": len(self.queue),
                    "held": len(self.held), "deliveries": list(self.deliveries),
                    "jwks_fetches": self.jwks_fetches, "kids": [k.kid for k in self.keys],
                    "watches": dict(self.watches), "watch_log": list(self.watch_log),
                    "watch_calls": list(self.watch_calls)}


def control(push, http_method, parts, data):
    """/_control/push/...: config (GET|POST), rotate (POST {"keep_old"}), token (POST: mint),
    send (POST {"email", "history_id", "message_id"?, "token"?}: one delivery now, its status),
    flush (POST), state (GET), reset (POST: forget deliveries and watches)."""
    what = parts[1] if len(parts) > 1 else ""
    if what == "config":
        return push.configure(data) if http_method == "POST" else push.describe()
    if http_method == "GET" and what == "state":
        return push.snapshot()
    if http_method != "POST":
        raise ValueError("POST")
    if what == "rotate":
        return {"kid": push.rotate(bool(data.get("keep_old", True)))}
    if what == "token":
        return {"token": push.mint(data.get("claims"), data.get("alg", "RS256"), data.get("kid"),
                                   data.get("key", "current"), data.get("header"))}
    if what == "send":
        if not isinstance(data.get("email"), str) or not isinstance(data.get("history_id"), int):
            raise ValueError("send needs email and history_id")
        note = {"message_id": str(data.get("message_id") or "manual-%d" % time.monotonic_ns()),
                "email": data["email"], "history_id": int(data["history_id"]),
                "publish_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "attempt": 1}
        return {"status": push.send(note, data.get("token")), "message_id": note["message_id"]}
    if what == "flush":
        push.flush()
        return {"ok": True}
    if what == "reset":
        with push.lock:
            push.deliveries = []
            push.watches = {}
            push.watch_log = []
            push.watch_calls = []
            push.queue = []
            push.held = []
            push.published = push.dropped = push.jwks_fetches = 0
        return {"ok": True}
    raise ValueError("unknown push control %s" % what)
