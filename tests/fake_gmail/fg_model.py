"""Mailboxes: deterministic skeletons, history log, listing with opaque page tokens, rendering.

A mailbox is generated from (email, count, seed).  Only the skeleton of each message
(ids, dates, thread, labels, flags) is kept in memory; headers and bodies are generated
from it on demand (fg_content) and kept in a bounded LRU, and rendered JSON is cached in
another bounded LRU, so serving a message twice is a dictionary look-up.

Locking: each mailbox has one lock, held for mutations and for list/history snapshots.
messages.get reads `messages` (a dict) and the message's fields without the lock.
"""

import base64
import bisect
import collections
import hashlib
import hmac
import itertools
import json
import os
import random
import threading

import fg_content as C
import fg_import as I
from fg_json import jstr, dumps, apply_fields

SYSTEM_LABELS = ["INBOX", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "SENT", "DRAFT",
                 "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES",
                 "CATEGORY_FORUMS", "CHAT"]
USER_LABEL_NAMES = {"Label_1": "Receipts", "Label_2": "Travel", "Label_3": "Project Falcon",
                    "Label_4": "家庭", "Label_5": "Ünïcödé & Co", "Label_6": "Newsletters/Tech"}
CATEGORIES = ["CATEGORY_PERSONAL"] * 10 + ["CATEGORY_UPDATES"] * 5 + ["CATEGORY_PROMOTIONS"] * 3 + \
             ["CATEGORY_SOCIAL"] * 2 + ["CATEGORY_FORUMS"]
HISTORY_TYPES = {"messageadded": "messageAdded", "message_added": "messageAdded",
                 "messagedeleted": "messageDeleted", "message_deleted": "messageDeleted",
                 "labeladded": "labelAdded", "label_added": "labelAdded",
                 "labelremoved": "labelRemoved", "label_removed": "labelRemoved"}
T_END_BASE_MS = 1709251200000  # 2024-03-01T00:00:00Z; newest generated message is within 60 days after

_uid_counter = itertools.count(1)


class NotFound(Exception):
    pass


class InvalidArgument(Exception):
    pass


class LRU:
    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.data = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key, value):
        with self.lock:
            self.data[key] = value
            if len(self.data) > self.maxsize:
                self.data.popitem(last=False)

    def clear(self):
        with self.lock:
            self.data.clear()


CONTENT_CACHE = LRU(2000)
RawView = collections.namedtuple("RawView", "snippet size")    # message_dict's needs for raw
RAW_SLOT = "raw-slot-6b1f0c"   # stands for a large raw field in render()
RENDER_CACHE = LRU(60000)


class Message:
    """Skeleton of one message; content is derived from it by fg_content.generate."""

    __slots__ = ("id", "thread_id", "date_ms", "labels", "history_id", "index", "root", "parent",
                 "flags", "version", "env", "raw")

    def __init__(self, msg_id, thread_id, date_ms, labels, history_id, index, root, parent, flags):
        self.id = msg_id
        self.thread_id = thread_id
        self.date_ms = date_ms
        self.labels = labels          # tuple, Gmail order
        self.history_id = history_id  # int
        self.index = index            # generation index (0 = oldest generated)
        self.root = root              # index of the thread's first message
        self.parent = parent          # index of the message replied to, -1 for a thread start
        self.flags = flags
        self.version = 0              # bumped on every change: part of render-cache keys
        self.env = None               # fg_content.Envelope once generated (kept: small)
        self.raw = None               # bytes of an imported message (fg_import); None: generated


class HistoryRecord:
    __slots__ = ("id", "kind", "msg_id", "thread_id", "labels", "added", "removed")

    def __init__(self, hid, kind, msg_id, thread_id, labels, added=(), removed=()):
        self.id = hid
        self.kind = kind            # "messageAdded" | "messageDeleted" | "labels"
        self.msg_id = msg_id
        self.thread_id = thread_id
        self.labels = labels        # labels of the message after the change
        self.added = added
        self.removed = removed

    def types(self):
        if self.kind != "labels":
            return (self.kind,)
        return (("labelAdded",) if self.added else ()) + (("labelRemoved",) if self.removed else ())

    def to_dict(self, types=None):
        ref = {"id": self.msg_id, "threadId": self.thread_id}
        msg = dict(ref)
        if self.labels:
            msg["labelIds"] = list(self.labels)
        out = {"id": str(self.id), "messages": [ref]}
        if self.kind == "messageAdded" and (types is None or "messageAdded" in types):
            out["messagesAdded"] = [{"message": msg}]
        elif self.kind == "messageDeleted" and (types is None or "messageDeleted" in types):
            out["messagesDeleted"] = [{"message": msg}]
        elif self.kind == "labels":
            if self.added and (types is None or "labelAdded" in types):
                out["labelsAdded"] = [{"message": msg, "labelIds": list(self.added)}]
            if self.removed and (types is None or "labelRemoved" in types):
                out["labelsRemoved"] = [{"message": msg, "labelIds": list(self.removed)}]
        return out


def _owner_name(email):
    local = email.split("@", 1)[0]
    parts = [p for p in local.replace("_", ".").replace("-", ".").split(".") if p]
    return " ".join(p.capitalize() for p in parts) or local


class Mailbox:
    def __init__(self, email, count, seed, refresh_token, spam_trash=0, retention=0, prerender=False,
                 text="sentences"):
        if count < 0 or count > 2000000:
            raise InvalidArgument("messages must be between 0 and 2000000")
        if text not in C.TEXT_KINDS:
            raise InvalidArgument("text must be one of %s" % ", ".join(C.TEXT_KINDS))
        self.text = text
        self.email = email
        self.email_lc = email.lower()
        self.seed = seed
        self.key = "fg1|%s|%s" % (self.email_lc, seed)
        self.uid = next(_uid_counter)
        self.refresh_token = refresh_token
        self.owner_name = _owner_name(email)
        self.lock = threading.RLock()
        self.rng = random.Random(self.key + "|structure")
        self.token_secret = os.urandom(16)
        self.page_tokens = {}
        self.retention = retention
        self.messages = {}
        self.used_ids = set()
        self.order_keys = []      # ascending -date_ms  (newest first)
        self.order_ids = []
        self.threads = collections.Counter()
        self.spamtrash = 0
        self.user_labels = dict(USER_LABEL_NAMES)
        self.label_colors = {}        # user label id -> (textColor, backgroundColor)
        self.history = []
        self.history_ids = []
        self.version = 0
        self.recent_threads = collections.deque(maxlen=24)   # (root index, thread id, last index, kind)
        self.next_index = 0
        self.imported_threads = {}    # Message-ID of an imported message -> its threadId
        self._generate(count, spam_trash)
        if prerender:
            for msg in self.messages.values():
                self.envelope(msg)

    # --- generation ----------------------------------------------------------------------
    def _new_id(self, date_ms):
        while True:
            msg_id = "%016x" % ((date_ms << 20) | self.rng.getrandbits(20))
            if msg_id not in self.used_ids:
                self.used_ids.add(msg_id)
                return msg_id

    def _labels_for(self, flags, rng):
        if flags & C.F_SENT:
            labels = ["SENT"]
            if rng.random() < 0.15:
                labels.append("IMPORTANT")
            return labels
        r = rng.random()
        if r < 0.02:
            return []                      # archived, read, uncategorised: no labelIds at all
        labels = []
        if rng.random() < 0.3:
            labels.append("UNREAD")
        if rng.random() < 0.2:
            labels.append("IMPORTANT")
        if rng.random() < 0.03:
            labels.append("STARRED")
        labels.append(CATEGORIES[rng.randrange(len(CATEGORIES))])
        if rng.random() < 0.1:
            labels.append("Label_%d" % rng.randrange(1, 7))
        if rng.random() < 0.75:
            labels.append("INBOX")
        return labels

    def _skeleton(self, date_ms, history_id, forced_kind=None, force_new_thread=False, labels=None,
                  extra_flags=0):
        rng = self.rng
        index = self.next_index
        self.next_index += 1
        reply = None
        if not force_new_thread and forced_kind is None and self.recent_threads and rng.random() < 0.4:
            cand = self.recent_threads[-1 - min(int(rng.expovariate(0.4)), len(self.recent_threads) - 1)]
            if self.threads.get(cand[1], 0) > 0:
                reply = cand
        flags = extra_flags
        if reply is not None:
            root, thread_id, parent, kind = reply
        else:
            root, parent = index, -1
            if forced_kind is not None:
                kind = forced_kind
            else:
                r = rng.random()
                kind = (C.SUBJ_CJK if r < 0.025 else C.SUBJ_EMOJI if r < 0.045 else C.SUBJ_ACCENT if r < 0.065
                        else C.SUBJ_CYRILLIC_RTL if r < 0.075 else C.SUBJ_LONG if r < 0.08
                        else C.SUBJ_LONG_MIXED if r < 0.083 else C.SUBJ_HTMLISH if r < 0.09 else C.SUBJ_ASCII)
        flags |= kind
        if rng.random() < 0.1:
            flags |= C.F_SENT
        if rng.random() < 0.7:
            flags |= C.F_HTML
        if rng.random() < 0.08:
            flags |= C.F_ATTACH
        if rng.random() < 0.002:
            flags |= C.F_LARGE
        msg_id = self._new_id(date_ms)
        if reply is None:
            thread_id = msg_id
        label_list = self._labels_for(flags, rng) if labels is None else list(labels)
        msg = Message(msg_id, thread_id, date_ms, tuple(label_list), history_id, index, root, parent, flags)
        self.recent_threads.append((root, thread_id, index, kind))
        return msg

    def _insert(self, msg):
        self.messages[msg.id] = msg
        key = -msg.date_ms
        pos = bisect.bisect_left(self.order_keys, key)
        self.order_keys.insert(pos, key)
        self.order_ids.insert(pos, msg.id)
        self.threads[msg.thread_id] += 1
        if "SPAM" in msg.labels or "TRASH" in msg.labels:
            self.spamtrash += 1

    def _generate(self, count, spam_trash):
        rng = self.rng
        t_end = T_END_BASE_MS + rng.randrange(0, 60 * 86400 * 1000)
        avg_gap = max(20000, min(3 * 3600 * 1000, (4 * 365 * 86400 * 1000) // max(count, 1)))
        self.avg_gap = avg_gap
        dates = [0] * count
        d = t_end
        for i in range(count - 1, -1, -1):
            dates[i] = d
            d -= rng.randrange(1000, 2 * avg_gap)
        # Specials among the newest 40 so a first page always shows them.
        specials = {}
        if count >= 12:
            newest = list(range(max(0, count - 40), count))
            picks = rng.sample(newest, 8)
            kinds = [C.SUBJ_LONG, C.SUBJ_CJK, C.SUBJ_EMOJI, C.SUBJ_ACCENT, C.SUBJ_LONG_MIXED, C.SUBJ_HTMLISH]
            for i, kind in zip(picks, kinds):
                specials[i] = ("kind", kind)
            specials[picks[6]] = ("large", None)
            specials[picks[7]] = ("nolabels", None)
        hid = 1000 + rng.randrange(0, 9000000)
        built = []
        for i in range(count):
            hid += rng.randrange(1, 40)
            special = specials.get(i)
            if special is None:
                msg = self._skeleton(dates[i], hid)
            elif special[0] == "kind":
                msg = self._skeleton(dates[i], hid, forced_kind=special[1])
            elif special[0] == "large":
                msg = self._skeleton(dates[i], hid, force_new_thread=True, extra_flags=C.F_LARGE)
            else:
                msg = self._skeleton(dates[i], hid, force_new_thread=True, labels=())
            self.messages[msg.id] = msg
            self.threads[msg.thread_id] += 1
            built.append(msg)
        # Some older messages were touched recently: historyId is not monotonic in date.
        for msg in built:
            if rng.random() < 0.05:
                hid += rng.randrange(1, 40)
                msg.history_id = hid
        for msg in rng.sample(built, min(spam_trash, count)) if spam_trash > 0 else []:
            msg.labels = tuple(l for l in msg.labels if l not in ("INBOX", "SENT")) + (
                ("SPAM",) if rng.random() < 0.5 else ("TRASH",))
        built.reverse()  # newest first
        self.order_ids = [m.id for m in built]
        self.order_keys = [-m.date_ms for m in built]
        self.spamtrash = sum(1 for m in built if "SPAM" in m.labels or "TRASH" in m.labels)
        self.history_id = hid
        self.history_floor = hid

    # --- history -------------------------------------------------------------------------
    def _next_history_id(self):
        self.history_id += self.rng.randrange(1, 25)
        return self.history_id

    def _record(self, rec):
        self.history.append(rec)
        self.history_ids.append(rec.id)
        self._prune()

    def _prune(self):
        keep = self.retention
        if keep and len(self.history) > keep:
            drop = len(self.history) - keep
            self.history_floor = self.history[drop - 1].id
            del self.history[:drop]
            del self.history_ids[:drop]

    def set_retention(self, keep):
        with self.lock:
            self.retention = keep
            self._prune()

    # --- mutations (control API) ---------------------------------------------------------
    def add_messages(self, count, labels=None):
        if labels is not None:
            labels = self.check_labels(labels)
        ids = []
        with self.lock:
            newest = -self.order_keys[0] if self.order_keys else T_END_BASE_MS
            for _ in range(count):
                newest += self.rng.randrange(1000, 2 * self.avg_gap)
                hid = self._next_history_id()
                msg = self._skeleton(newest, hid, labels=labels)
                self._insert(msg)
                self._record(HistoryRecord(hid, "messageAdded", msg.id, msg.thread_id, msg.labels))
                ids.append(msg.id)
            self.version += 1
            return ids, self.history_id

    def import_message(self, raw, labels=None, internal_date=None):
        """Adds real RFC 822 bytes as a new message (a messagesAdded record), threaded with the
        imported message its In-Reply-To or References names, else a thread of its own."""
        labels = self.check_labels(["INBOX"] if labels is None else labels)
        if not isinstance(raw, bytes) or not raw.strip():
            raise InvalidArgument("the message is empty")
        date_ms = I.internal_date_ms(raw) if internal_date is None else internal_date
        if isinstance(date_ms, bool) or not isinstance(date_ms, int) or not 0 < date_ms < 2 ** 43:
            raise InvalidArgument("internalDate must be milliseconds since 1970")
        own_id, parents = I.threading_ids(raw)
        with self.lock:
            while True:      # internalDate is unique per mailbox (the list order is total)
                pos = bisect.bisect_left(self.order_keys, -date_ms)
                if pos == len(self.order_keys) or self.order_keys[pos] != -date_ms:
                    break
                date_ms += 1
            hid = self._next_history_id()
            index = self.next_index
            self.next_index += 1
            msg_id = self._new_id(date_ms)
            thread_id = msg_id
            for parent in parents:
                known = self.imported_threads.get(parent)
                if known is not None and self.threads.get(known, 0) > 0:
                    thread_id = known
                    break
            msg = Message(msg_id, thread_id, date_ms, tuple(labels), hid, index, index, -1, C.F_IMPORTED)
            msg.raw = raw
            if own_id is not None:
                self.imported_threads.setdefault(own_id, thread_id)
            self._insert(msg)
            self._record(HistoryRecord(hid, "messageAdded", msg.id, msg.thread_id, msg.labels))
            self.version += 1
            return msg

    def delete_messages(self, ids):
        deleted, missing = [], []
        with self.lock:
            for msg_id in ids:
                msg = self.messages.pop(msg_id, None)
                if msg is None:
                    missing.append(msg_id)
                    continue
                key = -msg.date_ms
                pos = bisect.bisect_left(self.order_keys, key)
                while self.order_ids[pos] != msg_id:
                    pos += 1
                del self.order_keys[pos]
                del self.order_ids[pos]
                self.threads[msg.thread_id] -= 1
                if self.threads[msg.thread_id] <= 0:
                    del self.threads[msg.thread_id]
                if "SPAM" in msg.labels or "TRASH" in msg.labels:
                    self.spamtrash -= 1
                msg.version += 1
                hid = self._next_history_id()
                self._record(HistoryRecord(hid, "messageDeleted", msg.id, msg.thread_id, msg.labels))
                deleted.append(msg_id)
            self.version += 1
            return deleted, missing, self.history_id

    # --- labels (users.labels create / patch / delete, as a Gmail user would) -------------
    def _label_name_taken(self, name, other_than=None):
        return any(n.lower() == name.lower() and lid != other_than
                   for lid, n in self.user_labels.items()) or name.upper() in SYSTEM_LABELS

    @staticmethod
    def _check_label_fields(name, color):
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 225):
            raise InvalidArgument("Invalid label name")
        if color is not None:
            if (not isinstance(color, dict) or set(color) != {"textColor", "backgroundColor"}
                    or not all(isinstance(v, str) and len(v) == 7 and v[0] == "#" for v in color.values())):
                raise InvalidArgument("color must be {textColor, backgroundColor} of #rrggbb")

    def create_label(self, name, color=None):
        self._check_label_fields(name, color)
        with self.lock:
            if self._label_name_taken(name):
                raise InvalidArgument("Label name exists or conflicts")
            n = 1 + max([int(l[6:]) for l in self.user_labels if l[6:].isdigit()] or [0])
            lid = "Label_%d" % n
            self.user_labels[lid] = name
            if color:
                self.label_colors[lid] = (color["textColor"], color["backgroundColor"])
            self.version += 1
            return lid

    def update_label(self, lid, name=None, color=None):
        """Renames and/or recolours a user label (color {} removes it)."""
        self._check_label_fields(name, color or None)
        with self.lock:
            if lid not in self.user_labels:
                raise NotFound()
            if name is not None:
                if self._label_name_taken(name, other_than=lid):
                    raise InvalidArgument("Label name exists or conflicts")
                self.user_labels[lid] = name
            if color == {}:
                self.label_colors.pop(lid, None)
            elif color:
                self.label_colors[lid] = (color["textColor"], color["backgroundColor"])
            self.version += 1

    def delete_label(self, lid):
        """Deletes a user label: Gmail takes it off every message it is on (each such change a
        labelRemoved history record) and forgets it."""
        with self.lock:
            if lid not in self.user_labels:
                raise NotFound()
            on = [mid for mid, m in self.messages.items() if lid in m.labels]
        self.relabel(on, [], [lid])
        with self.lock:
            self.user_labels.pop(lid, None)
            self.label_colors.pop(lid, None)
            self.version += 1
            return on

    def newest_ids(self, count):
        with self.lock:
            return self.order_ids[:count]

    def check_labels(self, labels):
        out = []
        for label in labels:
            if not isinstance(label, str):
                raise InvalidArgument("label ids must be strings")
            if label in SYSTEM_LABELS or label in self.user_labels:
                out.append(label)
            elif label.startswith("Label_") and label[6:].isdigit():
                self.user_labels[label] = "Label %s" % label[6:]
                out.append(label)
            else:
                raise InvalidArgument("Invalid label: %s" % label)
        return out

    def relabel(self, ids, add, remove):
        add = self.check_labels(add)
        remove = self.check_labels(remove)
        changed, missing = [], []
        with self.lock:
            for msg_id in ids:
                msg = self.messages.get(msg_id)
                if msg is None:
                    missing.append(msg_id)
                    continue
                added = tuple(l for l in dict.fromkeys(add) if l not in msg.labels and l not in remove)
                removed = tuple(l for l in dict.fromkeys(remove) if l in msg.labels)
                if not added and not removed:
                    continue
                was_st = "SPAM" in msg.labels or "TRASH" in msg.labels
                labels = tuple(l for l in msg.labels if l not in removed) + added
                hid = self._next_history_id()
                msg.labels = labels
                msg.history_id = hid
                msg.version += 1
                now_st = "SPAM" in labels or "TRASH" in labels
                self.spamtrash += int(now_st) - int(was_st)
                self._record(HistoryRecord(hid, "labels", msg.id, msg.thread_id, labels, added, removed))
                changed.append(msg_id)
            self.version += 1
            return changed, missing, self.history_id

    # --- reads ---------------------------------------------------------------------------
    def profile(self):
        with self.lock:
            return {"emailAddress": self.email, "messagesTotal": len(self.messages),
                    "threadsTotal": len(self.threads), "historyId": str(self.history_id)}

    def _token(self, payload):
        digest = hmac.new(self.token_secret, repr(payload).encode(), hashlib.sha256).digest()
        token = "%020d" % (int.from_bytes(digest[:9], "big") % 10 ** 20)
        if len(self.page_tokens) > 200000:
            self.page_tokens.clear()
        self.page_tokens[token] = payload
        return token

    def _resolve_token(self, token, kind, sig):
        payload = self.page_tokens.get(token)
        if payload is None or payload[0] != kind or payload[2] != sig:
            raise InvalidArgument("Invalid pageToken")
        return payload[1]

    def list_messages(self, label_ids, include_spam_trash, max_results, page_token, q):
        sig = (tuple(sorted(set(label_ids))), bool(include_spam_trash), q or "")
        with self.lock:
            start = 0
            if page_token:
                cursor = self._resolve_token(page_token, "m", sig)
                start = bisect.bisect_right(self.order_keys, cursor)
            want_labels = set(label_ids)
            exclude = not include_spam_trash and self.spamtrash > 0 and not (want_labels & {"SPAM", "TRASH"})
            ids = self.order_ids
            msgs = self.messages
            if not want_labels and not exclude:
                page = ids[start:start + max_results]
                end = start + len(page)
                more = end < len(ids)
                total = len(ids)
            else:
                def ok(mid):
                    labels = msgs[mid].labels
                    if want_labels and not want_labels.issubset(labels):
                        return False
                    return not (exclude and ("SPAM" in labels or "TRASH" in labels))
                page = []
                pos = start
                n = len(ids)
                while pos < n and len(page) < max_results:
                    if ok(ids[pos]):
                        page.append(ids[pos])
                    pos += 1
                end = pos
                more = any(ok(ids[p]) for p in range(pos, n))
                total = sum(1 for mid in ids if ok(mid)) if not more else 0
            result = {}
            if page:
                result["messages"] = [{"id": mid, "threadId": msgs[mid].thread_id} for mid in page]
            if more:
                result["nextPageToken"] = self._token(("m", self.order_keys[end - 1], sig))
                # Gmail's estimate saturates at 201 on a page that has a successor; exact on the last page.
                result["resultSizeEstimate"] = 201
            else:
                result["resultSizeEstimate"] = total if page else 0
            return result

    def list_history(self, start, types, label_id, max_results, page_token):
        sig = (start, tuple(sorted(types)) if types else None, label_id)
        with self.lock:
            cursor = start
            if page_token:
                cursor = self._resolve_token(page_token, "h", sig)
            if start < self.history_floor or cursor < self.history_floor:
                raise NotFound()
            i = bisect.bisect_right(self.history_ids, cursor)
            window = self.history[i:i + max_results]
            more = i + max_results < len(self.history)
            out = []
            for rec in window:
                if types and not any(t in types for t in rec.types()):
                    continue
                if label_id and label_id not in rec.labels and label_id not in rec.added \
                        and label_id not in rec.removed:
                    continue
                out.append(rec.to_dict(types))
            result = {}
            if out:
                result["history"] = out
            if more:
                result["nextPageToken"] = self._token(("h", window[-1].id, sig))
            result["historyId"] = str(self.history_id)
            return result

    def labels_list(self):
        labels = []
        for lid in SYSTEM_LABELS:
            item = {"id": lid, "name": lid, "type": "system"}
            if not lid.startswith("CATEGORY_") and lid not in ("CHAT",):
                item = {"id": lid, "name": lid, "messageListVisibility": "hide",
                        "labelListVisibility": "labelShow", "type": "system"}
            labels.append(item)
        for lid, name in sorted(self.user_labels.items()):
            item = {"id": lid, "name": name, "messageListVisibility": "show",
                    "labelListVisibility": "labelShow", "type": "user"}
            if lid in self.label_colors:
                text, background = self.label_colors[lid]
                item["color"] = {"textColor": text, "backgroundColor": background}
            labels.append(item)
        return {"labels": labels}

    def summary(self, include_ids=False):
        with self.lock:
            samples = {}
            for mid in self.order_ids:
                msg = self.messages[mid]
                kind = C.SUBJECT_KIND_NAMES[msg.flags & C.SUBJ_MASK]
                if kind != "ascii" and msg.parent < 0:
                    samples.setdefault(kind, mid)
                if msg.flags & C.F_LARGE:
                    samples.setdefault("large", mid)
                if not msg.labels:
                    samples.setdefault("no_labels", mid)
                if msg.parent >= 0:
                    samples.setdefault("reply", mid)
                if msg.flags & C.F_ATTACH:
                    samples.setdefault("attachment", mid)
            label_counts = collections.Counter(l for m in self.messages.values() for l in m.labels)
            out = {"email": self.email, "seed": self.seed, "refresh_token": self.refresh_token,
                   "messages_total": len(self.messages), "threads_total": len(self.threads),
                   "history_id": str(self.history_id), "history_floor": str(self.history_floor),
                   "history_records": len(self.history), "spam_trash": self.spamtrash,
                   "samples": samples, "label_counts": dict(sorted(label_counts.items()))}
            if include_ids:
                out["ids"] = list(self.order_ids)
            return out

    # --- content and rendering -----------------------------------------------------------
    def envelope(self, msg):
        env = msg.env
        if env is None:
            if msg.raw is not None:
                env = I.envelope(self.content(msg))
            else:
                env = C.envelope(self.key, self.email, self.owner_name, msg, self.text)
            # Escaped once, kept as one string ("lower\x01"name"\x01"value" entries joined by \x00;
            # JSON text never holds raw control characters): a metadata answer is then a join of
            # ready pieces, and a cached envelope costs ~1 KB instead of a few hundred objects.
            env.pieces = "\x00".join("%s\x01%s\x01%s" % (n.lower(), jstr(n), jstr(v)) for n, v in env.headers)
            env.snippet_json = jstr(env.snippet)
            env.headers = env.raw_values = env.plan = env.snippet = env.text = None
            msg.env = env
        return env

    def content(self, msg):
        ckey = (self.uid, msg.index)
        content = CONTENT_CACHE.get(ckey)
        if content is None:
            if msg.raw is not None:
                content = I.content(msg.raw)
            else:
                content = C.generate(self.key, self.email, self.owner_name, msg, text=self.text)
            CONTENT_CACHE.put(ckey, content)
        return content

    def render(self, msg, fmt, header_filter, pretty, fields=None):
        """Message resource as bytes.  header_filter: tuple of lower-case names or None."""
        if fields is not None or fmt in ("full", "raw"):
            if fmt == "raw" and msg.raw is not None:
                # an imported message's raw answer needs only its snippet and size, which its
                # envelope keeps for good: hostile mail (10,000 parts, deep nesting) is parsed by
                # the email package once, not again each time the bounded content cache forgot it
                env = self.envelope(msg)
                content = RawView(json.loads(env.snippet_json), env.size)
            else:
                content = self.content(msg)
            obj = self.message_dict(msg, content, fmt, header_filter)
            if fields is not None:
                obj = apply_fields(obj, fields)
            raw = obj.get("raw") if fmt == "raw" else None
            if raw is None or len(raw) < 65536:
                return dumps(obj, pretty)
            # a large raw field (base64url: nothing to escape but the '=' padding, which Google
            # writes as \u003d) spliced into the rest: the same bytes as dumps(obj), without
            # the encoder walking megabytes of text character by character
            obj["raw"] = RAW_SLOT
            text = dumps(obj, pretty)
            value = raw.rstrip("=").encode("ascii") + b"\\u003d" * (len(raw) - len(raw.rstrip("=")))
            return text.replace(b'"' + RAW_SLOT.encode("ascii") + b'"', b'"' + value + b'"', 1)
        rkey = (self.uid, msg.id, msg.version, fmt, header_filter, pretty)
        body = RENDER_CACHE.get(rkey)
        if body is None:
            if fmt == "minimal" or (header_filter is not None and C.ENVELOPE_HEADERS.issuperset(header_filter)):
                src = self.envelope(msg)
                mime = src.mime_type
            else:
                src = self.content(msg)
                mime = src.root.mime_type
            body = self._render_fast(msg, src, mime, fmt, header_filter, pretty)
            RENDER_CACHE.put(rkey, body)
        return body

    @staticmethod
    def _header_pieces(src, header_filter):
        """[(json name, json value)] of the selected headers, escaping only what is shown."""
        pieces = getattr(src, "pieces", None)
        if pieces is not None:
            out = []
            for entry in pieces.split("\x00"):
                lname, jname, jvalue = entry.split("\x01")
                if lname in header_filter:
                    out.append((jname, jvalue))
            return out
        if header_filter is None:
            pieces = src.header_json
            if pieces is None:
                pieces = src.header_json = [(jstr(n), jstr(v)) for n, v in src.headers]
            return pieces
        return [(jstr(n), jstr(v)) for n, v in src.headers if n.lower() in header_filter]

    def _render_fast(self, msg, src, mime, fmt, header_filter, pretty):
        labels = msg.labels
        tail_values = (src.size, msg.history_id, msg.date_ms)
        if pretty:
            out = ['{\n  "id": "%s",\n  "threadId": "%s",\n' % (msg.id, msg.thread_id)]
            if labels:
                out.append('  "labelIds": [\n    "%s"\n  ],\n' % '",\n    "'.join(labels))
            out.append('  "snippet": %s,\n' % (getattr(src, "snippet_json", None) or jstr(src.snippet)))
            if fmt == "metadata":
                out.append('  "payload": {\n    "mimeType": "%s"' % mime)
                pieces = self._header_pieces(src, header_filter)
                if pieces:
                    out.append(',\n    "headers": [\n')
                    out.append(",\n".join('      {\n        "name": %s,\n        "value": %s\n      }' % p
                                          for p in pieces))
                    out.append("\n    ]")
                out.append("\n  },\n")
            out.append('  "sizeEstimate": %d,\n  "historyId": "%d",\n  "internalDate": "%d"\n}\n' % tail_values)
        else:
            out = ['{"id":"%s","threadId":"%s",' % (msg.id, msg.thread_id)]
            if labels:
                out.append('"labelIds":["%s"],' % '","'.join(labels))
            out.append('"snippet":%s,' % (getattr(src, "snippet_json", None) or jstr(src.snippet)))
            if fmt == "metadata":
                out.append('"payload":{"mimeType":"%s"' % mime)
                pieces = self._header_pieces(src, header_filter)
                if pieces:
                    out.append(',"headers":[%s]' % ",".join('{"name":%s,"value":%s}' % p for p in pieces))
                out.append("},")
            out.append('"sizeEstimate":%d,"historyId":"%d","internalDate":"%d"}' % tail_values)
        return "".join(out).encode("utf-8")

    def _attachment_id(self, msg, part_id):
        digest = hashlib.blake2b(("%s|attid|%d|%s" % (self.key, msg.index, part_id)).encode(),
                                 digest_size=48).digest()
        return "ANGjdJ" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _part_dict(self, msg, part, part_id, headers):
        body = {"size": part.body_size()}
        if part.children:
            body = {"size": 0}
        elif part.filename or getattr(part, "as_attachment", False):
            body = {"attachmentId": self._attachment_id(msg, part_id), "size": part.body_size()}
        else:
            body["data"] = base64.urlsafe_b64encode(part.body).decode()
        out = {"partId": part_id, "mimeType": part.mime_type, "filename": part.filename,
               "headers": [{"name": n, "value": v} for n, v in headers], "body": body}
        if part.children:
            prefix = part_id + "." if part_id else ""
            out["parts"] = [self._part_dict(msg, child, "%s%d" % (prefix, i), child.headers)
                            for i, child in enumerate(part.children)]
        return out

    def message_dict(self, msg, content, fmt, header_filter):
        out = {"id": msg.id, "threadId": msg.thread_id}
        if msg.labels:
            out["labelIds"] = list(msg.labels)
        out["snippet"] = content.snippet
        if fmt == "metadata":
            payload = {"mimeType": content.root.mime_type}
            headers = [{"name": n, "value": v} for n, v in content.headers
                       if header_filter is None or n.lower() in header_filter]
            if headers:
                payload["headers"] = headers
            out["payload"] = payload
        elif fmt == "full":
            out["payload"] = self._part_dict(msg, content.root, "", content.headers)
        out["sizeEstimate"] = content.size
        if fmt == "raw":
            out["raw"] = I.b64url(self.raw_message(msg, content))
        out["historyId"] = str(msg.history_id)
        out["internalDate"] = str(msg.date_ms)
        return out

    def attachment(self, msg, attachment_id):
        content = self.content(msg)

        def walk(part, part_id):
            if part.children:
                prefix = part_id + "." if part_id else ""
                for i, child in enumerate(part.children):
                    found = walk(child, "%s%d" % (prefix, i))
                    if found is not None:
                        return found
                return None
            if (part.filename or getattr(part, "as_attachment", False)) and \
                    self._attachment_id(msg, part_id) == attachment_id:
                return part
            return None

        part = walk(content.root, "")
        if part is None:
            raise NotFound()
        data = C.part_bytes(self.key, msg.index, part)
        return {"size": len(data), "data": base64.urlsafe_b64encode(data).decode()}

    def raw_message(self, msg, content=None):
        """The RFC 822 bytes: an imported message's own, a generated one's from its content."""
        if msg.raw is not None:
            return msg.raw
        return C.raw_bytes(self.key, msg.index, self.content(msg) if content is None else content)


def parse_history_types(values):
    types = set()
    for value in values:
        canon = HISTORY_TYPES.get(value.lower())
        if canon is None:
            raise InvalidArgument(
                "Invalid value at 'history_types' (type.googleapis.com/google.apps.gmail.v1.HistoryType), \"%s\""
                % value)
        types.add(canon)
    return types
