"""Deterministic message content: headers, MIME tree, RFC 2822 bytes.

Everything here is a pure function of (mailbox key, message skeleton).  The skeleton
(id, dates, thread, flags) is decided when the mailbox is created; the content is
generated lazily from it, so 100,000 messages cost little memory until they are read.
Same inputs, same Python version -> byte-identical output.
"""

import base64
import binascii
import datetime
import hashlib
import random

# --- flags of a message skeleton -------------------------------------------------------
SUBJ_MASK = 0x7          # subject kind, shared by the whole thread
SUBJ_ASCII, SUBJ_CJK, SUBJ_EMOJI, SUBJ_ACCENT, SUBJ_CYRILLIC_RTL, SUBJ_LONG, SUBJ_LONG_MIXED, SUBJ_HTMLISH = range(8)
F_SENT = 0x08
F_LARGE = 0x10
F_ATTACH = 0x20
F_HTML = 0x40            # has a text/html alternative
F_IMPORTED = 0x80        # real bytes given to the control API (fg_import), not generated

SUBJECT_KIND_NAMES = {
    SUBJ_ASCII: "ascii", SUBJ_CJK: "cjk", SUBJ_EMOJI: "emoji", SUBJ_ACCENT: "accents",
    SUBJ_CYRILLIC_RTL: "cyrillic_rtl", SUBJ_LONG: "long", SUBJ_LONG_MIXED: "long_non_ascii",
    SUBJ_HTMLISH: "html_chars",
}

FIRST_NAMES = ["Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
               "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yuki"]
LAST_NAMES = ["Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Nguyen", "Kim",
              "Schmidt", "Rossi", "Dubois", "Kowalski", "Tanaka", "Silva"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.co.uk", "corp.example"]
SPECIAL_PEOPLE = [
    ("José Müller", "jose.mueller@example.de"),
    ("王伟", "wang.wei@example.cn"),
    ("Zoë O'Brien", "zoe.obrien@example.ie"),
    ("Doe, John", "john.doe@example.com"),
    ("Алексей Смирнов", "alexey@example.ru"),
    ("GitHub", "noreply@github.example"),
    ("Amazon.com", "shipment-tracking@amazon.example"),
    ("", "no-name@example.net"),
]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises"]
TOPICS = ["budget", "roadmap", "hiring plan", "offsite", "release 2.4", "security review", "Q3 goals",
          "customer feedback", "database migration", "on-call rotation", "design review"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or "
         "one had by word but not what all were we when your can said there use an each which she do "
         "how their if will up other about out many then them these so some her would make like him "
         "into time has look two more write go see number no way could people my than first water been "
         "call who oil its now find long down day did get come made may part report meeting invoice "
         "schedule project update review deadline attached thanks regards please").split()
CJK_WORDS = ["季度", "报告", "会议", "通知", "销售", "数据", "项目", "更新", "会議", "お知らせ", "회의", "일정"]
EMOJI = ["🎉", "🍕", "🥳", "✈️", "👍", "🚀", "📎", "🔥", "❤️", "😀"]
TIMEZONES = [0, -8 * 60, -5 * 60, 60, 120, 330, 480, 540, -3 * 60]


def _pick(rng, seq):
    return seq[int(rng.random() * len(seq))]


def _sentence_pool():
    # A fixed pool (same for every mailbox): bodies pick whole sentences, which is ~10x
    # cheaper than picking words one by one.
    rng = random.Random("fg1|sentences")
    pool = []
    for _ in range(512):
        words = [WORDS[int(rng.random() * len(WORDS))] for _ in range(5 + int(rng.random() * 11))]
        pool.append(" ".join(words).capitalize() + ".!?."[int(rng.random() * 4)])
    return pool


SENTENCES = _sentence_pool()


# --- the "wide" text of a mailbox made for search (tests/bench/bench_search.py) -------------
# Subjects and bodies drawn word by word from a vocabulary of about 4,000 words, a word k with a
# probability falling with k (k = len * random()^3: real text draws its frequent words far more
# often), and a third of the messages with 80 Chinese characters: words of every frequency, so
# that a word query can match a handful of messages or a third of the mailbox.
WIDE_BASE = ("invoice meeting report quarterly schedule attached regards thanks budget review "
             "project update deadline contract proposal client travel hotel flight dinner lunch "
             "payment receipt order shipping delivery account password security team office "
             "holiday vacation photo family weekend party birthday newsletter sale discount offer "
             "event conference agenda minutes summary draft final version approval request").split()
_SYLLABLES = "ka lo mi ne su ta ri ve do pa zu fi go ha je".split()
WIDE_WORDS = WIDE_BASE + ["".join(_SYLLABLES[(k // 15 ** j) % 15] for j in range(3 + k % 2))
                          for k in range(4000)]
HAN = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家"
       "学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见"
       "经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话")
TEXT_KINDS = ("sentences", "wide")


def _wide_words(rng, n):
    words, size = WIDE_WORDS, len(WIDE_WORDS)
    return " ".join([words[int(rng.random() ** 3 * size)] for _ in range(n)])


def wide_subject(key, root_index):
    rng = random.Random("%s|wsubject|%d" % (key, root_index))
    return _wide_words(rng, 6 + root_index % 5)


def _wide_text(rng, index):
    """120-319 words in lines of 12, and 80 Chinese characters in every third message."""
    n = 120 + index % 200
    words = _wide_words(rng, n).split(" ")
    lines = [" ".join(words[i:i + 12]) for i in range(0, n, 12)]
    if index % 3 == 0:
        lines.append("".join(HAN[int(rng.random() * len(HAN))] for _ in range(80)))
    return "\r\n".join(lines) + "\r\n"


def subject_for(key, root_index, kind):
    """The thread's subject (replies prefix 'Re: ')."""
    rng = random.Random("%s|subject|%d" % (key, root_index))
    n = rng.randrange(1, 999)
    if kind == SUBJ_CJK:
        return _pick(rng, ["季度报告：第%d季度销售数据" % (n % 4 + 1), "会議のお知らせ（%d月）" % (n % 12 + 1),
                           "회의 일정 안내 #%d" % n, "项目更新：数据库迁移完成"])
    if kind == SUBJ_EMOJI:
        return _pick(rng, ["🎉 Party on %s! 🍕🥳" % _pick(rng, DAYS), "✈️ Your flight to Zürich is confirmed",
                           "🚀 Launch day #%d 🔥" % n, "Thanks! 👍❤️"])
    if kind == SUBJ_ACCENT:
        return _pick(rng, ["Café résumé — naïve façade №%d" % n, "Grüße aus München",
                           "Ça va? Señor Ñandú à São Paulo", "Ångström-Øresund: Ærø færge"])
    if kind == SUBJ_CYRILLIC_RTL:
        return _pick(rng, ["Привет, мир — отчёт %d" % n, "مرحبا بالعالم — تقرير %d" % n,
                           "שלום עולם %d" % n])
    if kind == SUBJ_LONG:
        words = []
        total = 0
        target = rng.randrange(1100, 1700)
        while total < target:
            w = _pick(rng, WORDS)
            words.append(w)
            total += len(w) + 1
        return "Long subject %d: %s" % (n, " ".join(words))
    if kind == SUBJ_LONG_MIXED:
        words = []
        total = 0
        target = rng.randrange(1050, 1400)
        while total < target:
            w = _pick(rng, CJK_WORDS + EMOJI + WORDS + ["naïve", "Zürich", "façade"])
            words.append(w)
            total += len(w) + 1
        return "长主题 %d: %s" % (n, " ".join(words))
    if kind == SUBJ_HTMLISH:
        return _pick(rng, ["Tom's <b>draft</b> = final? & more", "a < b && c > d — is x=y?",
                           "R&D budget: <50% = \"ok\""])
    choice = int(rng.random() * 11)
    if choice == 0:
        return "Quarterly report Q%d %d" % (n % 4 + 1, 2019 + n % 6)
    if choice == 1:
        return "Invoice #%d from %s" % (10000 + n, _pick(rng, COMPANIES))
    if choice == 2:
        return "Meeting notes: %s" % _pick(rng, TOPICS)
    if choice == 3:
        return "Your order %d-%d has shipped" % (n, rng.randrange(1000000, 9999999))
    if choice == 4:
        return "Re-scheduling our call on %s" % _pick(rng, DAYS)
    if choice == 5:
        return "Lunch on %s?" % _pick(rng, DAYS)
    if choice == 6:
        return "[dev-list] %s discussion" % _pick(rng, TOPICS)
    if choice == 7:
        return "Security alert for your account"
    if choice == 8:
        return "Welcome to %s!" % _pick(rng, COMPANIES)
    if choice == 9:
        return "Weekly digest: %d new updates" % (n % 40 + 2)
    return "Don't forget: %s" % _pick(rng, TOPICS)


def message_id_header(key, index, domain):
    digest = hashlib.blake2b(("%s|msgid|%d" % (key, index)).encode(), digest_size=18).digest()
    local = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return "<CA%s@mail.%s>" % (local, domain)


def _needs_quotes(name):
    return any(c in name for c in ',.;:"()<>@[]\\') and not name.startswith('"')


_is_ascii = str.isascii


def encoded_words(text):
    """RFC 2047 B-encoded words of at most 75 characters, split on character boundaries."""
    data = text.encode("utf-8")
    words = []
    pos = 0
    n = len(data)
    while True:
        end = min(pos + 45, n)
        while end < n and end > pos and (data[end] & 0xC0) == 0x80:   # do not split a UTF-8 sequence
            end -= 1
        words.append("=?UTF-8?B?%s?=" % binascii.b2a_base64(data[pos:end], newline=False).decode())
        pos = end
        if pos >= n:
            return words


def address(name, email):
    """(logical value as Gmail's JSON shows it, raw RFC 2822 form)."""
    if not name:
        return email, email
    if _is_ascii(name):
        shown = '"%s"' % name.replace('"', '\\"') if _needs_quotes(name) else name
        value = "%s <%s>" % (shown, email)
        return value, value
    return "%s <%s>" % (name, email), "%s <%s>" % (" ".join(encoded_words(name)), email)


def fold_header(name, logical, raw=None):
    """One raw header line (with CRLF), folded below 78 columns where it can be."""
    if raw is None:
        raw = logical
    if len(name) + len(raw) <= 76 and raw.isascii():
        return name + ": " + raw + "\r\n"
    if not _is_ascii(raw):
        words = encoded_words(raw)
        return "%s: %s\r\n" % (name, "\r\n ".join(words))
    if "        " in raw:  # Received/DKIM style: fold at the 8-space runs Gmail shows unfolded
        return "%s: %s\r\n" % (name, raw.replace("        ", "\r\n        "))
    if len(name) + 2 + len(raw) <= 78:
        return "%s: %s\r\n" % (name, raw)
    lines = []
    line = name + ":"
    first = True
    for word in raw.split(" "):
        if not first and len(line) + 1 + len(word) > 78:
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
        first = False
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def header_len(name, raw):
    """len(fold_header(name, raw).encode()) without building it in the common cases."""
    if raw.isascii():
        if len(name) + len(raw) <= 76:
            return len(name) + len(raw) + 4
        if "        " in raw:
            return len(name) + len(raw) + 4 + 2 * raw.count("        ")
    return len(fold_header(name, raw).encode("utf-8"))


def _date_header(date_ms, rng):
    offset = _pick(rng, TIMEZONES)
    tz = datetime.timezone(datetime.timedelta(minutes=offset))
    sent = datetime.datetime.fromtimestamp((date_ms - rng.randrange(1000, 120000)) / 1000.0, tz)
    text = sent.strftime("%a, %d %b %Y %H:%M:%S ")
    sign = "-" if offset < 0 else "+"
    text += "%s%02d%02d" % (sign, abs(offset) // 60, abs(offset) % 60)
    if text[5] == "0" and rng.random() < 0.5:  # both "04 Mar" and "4 Mar" occur in the wild
        text = text[:5] + text[6:]
    return text


def _gmail_time(date_ms):
    dt = datetime.datetime.fromtimestamp(date_ms / 1000.0, datetime.timezone(datetime.timedelta(hours=-8)))
    return dt.strftime("%a, %d %b %Y %H:%M:%S -0800 (PST)")


def _body_text(rng, kind, subject):
    paragraphs = []
    lead = _pick(rng, ["Hi there,", "Hello,", "Dear team,", "Hey,", "Good morning,"])
    if kind in (SUBJ_CJK, SUBJ_LONG_MIXED):
        lead = "你好，这是关于「%s」的消息。" % subject[:40]
    elif kind == SUBJ_ACCENT:
        lead = "Bonjour à tous, voilà le résumé."
    elif kind == SUBJ_EMOJI:
        lead = "Great news 🎉 we're on!"
    elif kind == SUBJ_CYRILLIC_RTL:
        lead = "Добрый день! مرحبا"
    elif kind == SUBJ_HTMLISH:
        lead = "It's <not> HTML & \"quotes\" = fine."
    paragraphs.append(lead)
    for _ in range(1 + int(rng.random() * 4)):
        sentences = [_pick(rng, SENTENCES) for _ in range(2 + int(rng.random() * 4))]
        if rng.random() < 0.2:
            sentences.append("Don't forget Tom's & Jerry's notes.")
        paragraphs.append(" ".join(sentences))
    paragraphs.append(_pick(rng, ["Thanks,", "Best regards,", "Cheers,", "--"]))
    return "\r\n\r\n".join(paragraphs) + "\r\n"


def snippet_of(text):
    collapsed = " ".join(text.split())
    if len(collapsed) > 140:
        cut = collapsed.rfind(" ", 0, 140)
        collapsed = collapsed[: cut if cut > 80 else 140]
    # Gmail HTML-escapes snippets.
    return (collapsed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def _html_of(text):
    esc = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    paras = "".join("<p>%s</p>" % p for p in esc.split("\r\n\r\n") if p)
    return '<div dir="ltr">%s</div>\r\n' % paras


def _qp(data):
    encoded = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True)
    return encoded.replace(b"\n", b"\r\n") + (b"" if encoded.endswith(b"\n") else b"\r\n")


def _b64_lines(data):
    encoded = binascii.b2a_base64(data, newline=False)
    if not encoded:
        return b""
    return b"\r\n".join([encoded[i:i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


# Large attachments: a 4104-byte block (57 * 72, a whole number of 76-column base64 lines)
# repeated, so the base64 text is built by repetition instead of encoding megabytes.
_BLOCK = 57 * 72


def _large_block(key, index):
    out = b""
    counter = 0
    while len(out) < _BLOCK:
        out += hashlib.blake2b(("%s|blob|%d|%d" % (key, index, counter)).encode()).digest()
        counter += 1
    return out[:_BLOCK]


def large_attachment_bytes(key, index, size):
    block = _large_block(key, index)
    reps, tail = divmod(size, _BLOCK)
    return block * reps + block[:tail]


def _large_attachment_b64(key, index, size):
    block = _large_block(key, index)
    reps, tail = divmod(size, _BLOCK)
    return _b64_lines(block) * reps + (_b64_lines(block[:tail]) if tail else b"")


def _b64_lines_len(nbytes):
    if nbytes == 0:
        return 0
    chars = 4 * ((nbytes + 2) // 3)
    lines = (chars + 75) // 76
    return chars + 2 * lines


def large_attachment_b64_len(size):
    reps, tail = divmod(size, _BLOCK)
    return reps * _b64_lines_len(_BLOCK) + _b64_lines_len(tail)


class Part:
    """One MIME part.  body is the decoded content (bytes) or None for containers."""

    __slots__ = ("mime_type", "headers", "body", "cte", "filename", "children", "boundary", "large_size")

    def __init__(self, mime_type, headers, body=None, cte=None, filename="", children=None,
                 boundary=None, large_size=0):
        self.mime_type = mime_type
        self.headers = headers
        self.body = body
        self.cte = cte
        self.filename = filename
        self.children = children or []
        self.boundary = boundary
        self.large_size = large_size

    def body_size(self):
        return self.large_size if self.large_size else (len(self.body) if self.body is not None else 0)


ENVELOPE_HEADERS = frozenset(["mime-version", "date", "references", "in-reply-to", "message-id", "subject",
                              "from", "to", "cc", "content-type", "content-transfer-encoding"])


class Envelope:
    """What list/metadata views need, cheap to generate (no trace headers, no MIME bodies).

    size is the message's sizeEstimate: an estimate of len(raw) (within a few per cent),
    as Gmail's is.
    """

    __slots__ = ("headers", "raw_values", "snippet", "size", "mime_type", "plan", "text", "pieces", "snippet_json")

    def __init__(self, headers, raw_values, snippet, size, mime_type, plan, text):
        self.headers = headers            # [(name, value as Gmail JSON shows it)] (envelope headers only)
        self.raw_values = raw_values      # {header name: RFC 2822 form} where it differs (addresses)
        self.snippet = snippet
        self.size = size
        self.mime_type = mime_type
        self.plan = plan                  # MIME decisions for the full content
        self.text = text                  # body text (dropped once the envelope is cached)
        self.pieces = None                # [(lower name, JSON name, JSON value)], set when cached
        self.snippet_json = None


class Content:
    """Full generated content of one message (all headers, MIME tree)."""

    __slots__ = ("headers", "raw_values", "root", "snippet", "size", "header_json")

    def __init__(self, headers, raw_values, root, snippet, size):
        self.headers = headers            # [(name, value as Gmail JSON shows it)]
        self.raw_values = raw_values      # {header name: RFC 2822 form} where it differs
        self.root = root                  # Part
        self.snippet = snippet
        self.size = size
        self.header_json = None           # filled by the renderer (cache of escaped pieces)


def _boundary(rng):
    return "000000000000%012x" % rng.getrandbits(48)


def _contact(rng):
    if rng.random() < 0.25:
        return _pick(rng, SPECIAL_PEOPLE)
    first, last = _pick(rng, FIRST_NAMES), _pick(rng, LAST_NAMES)
    return ("%s %s" % (first, last), "%s.%s@%s" % (first.lower(), last.lower(), _pick(rng, DOMAINS)))


def _qp_len_estimate(nbytes, ascii_bytes):
    return int(ascii_bytes * 1.03 + (nbytes - ascii_bytes) * 3) + 2


def envelope(key, owner_email, owner_name, skel, text="sentences"):
    """The envelope of a message skeleton (see fg_model.Message); deterministic. text: the
    mailbox's kind of text (TEXT_KINDS)."""
    rng = random.Random("%s|env|%d" % (key, skel.index))
    kind = skel.flags & SUBJ_MASK
    wide = text == "wide"
    subject = wide_subject(key, skel.root) if wide else subject_for(key, skel.root, kind)
    if skel.parent >= 0:
        subject = "Re: " + subject
    contact = _contact(rng)
    owner = address(owner_name, owner_email)
    other = address(*contact)
    sent = bool(skel.flags & F_SENT)
    frm, to = (owner, other) if sent else (other, owner)
    sender_domain = (owner_email if sent else contact[1]).split("@", 1)[-1]
    headers = [("MIME-Version", "1.0"), ("Date", _date_header(skel.date_ms, rng))]
    raw_values = {}
    if skel.parent >= 0:
        parent_id = message_id_header(key, skel.parent, sender_domain)
        root_id = message_id_header(key, skel.root, sender_domain)
        headers.append(("References", parent_id if root_id == parent_id else "%s %s" % (root_id, parent_id)))
        headers.append(("In-Reply-To", parent_id))
    headers.append(("Message-ID", message_id_header(key, skel.index, "gmail.com" if sent else sender_domain)))
    headers.append(("Subject", subject))
    headers.append(("From", frm[0]))
    raw_values["From"] = frm[1]
    to_value, to_raw = to
    if rng.random() < 0.15:
        extra = address("%s %s" % (_pick(rng, FIRST_NAMES), _pick(rng, LAST_NAMES)),
                        "team-%d@%s" % (int(rng.random() * 100), _pick(rng, DOMAINS)))
        to_value, to_raw = to_value + ", " + extra[0], to_raw + ", " + extra[1]
    headers.append(("To", to_value))
    raw_values["To"] = to_raw
    if rng.random() < 0.2:
        cc = address(*_pick(rng, SPECIAL_PEOPLE))
        headers.append(("Cc", cc[0]))
        raw_values["Cc"] = cc[1]

    text = _wide_text(rng, skel.index) if wide else _body_text(rng, kind, subject)
    nbytes = len(text.encode("utf-8"))
    ascii_text = text.isascii()
    ascii_bytes = nbytes if ascii_text else len(text.encode("ascii", "ignore"))
    cte_text = ("7bit" if rng.random() < 0.5 else "quoted-printable") if ascii_text else \
        ("base64" if rng.random() < 0.5 else "quoted-printable")
    body_est = {"7bit": nbytes, "base64": _b64_lines_len(nbytes)}.get(cte_text) or \
        _qp_len_estimate(nbytes, ascii_bytes)
    mime, ctype, cte_top = "text/plain", 'text/plain; charset="UTF-8"', cte_text
    alt_boundary = mixed_boundary = None
    if skel.flags & F_HTML:
        alt_boundary = _boundary(rng)
        mime, ctype, cte_top = "multipart/alternative", 'multipart/alternative; boundary="%s"' % alt_boundary, None
        extra = 40 + 7 * text.count("\r\n\r\n") + 4 * text.count("&")
        body_est += _qp_len_estimate(nbytes + extra, ascii_bytes + extra) + 274
    attachment = None
    if skel.flags & (F_ATTACH | F_LARGE):
        if skel.flags & F_LARGE:
            attachment = ("large", "big-report-%d.pdf" % skel.index, 1500000 + int(rng.random() * 4500000),
                          rng.getrandbits(40), rng.getrandbits(40))
        else:
            attachment = ("small", _pick(rng, ["invoice.pdf", "photo.png", "notes.txt", "résumé.pdf", "图表.png"]),
                          2000 + int(rng.random() * 38000), 0, 0)
        mixed_boundary = _boundary(rng)
        mime, ctype, cte_top = "multipart/mixed", 'multipart/mixed; boundary="%s"' % mixed_boundary, None
        body_est += large_attachment_b64_len(attachment[2]) + 260 + 60
    headers.append(("Content-Type", ctype))
    if cte_top:
        headers.append(("Content-Transfer-Encoding", cte_top))
    size = 2 + body_est
    for name, value in headers:
        size += header_len(name, raw_values.get(name, value))
    if not sent:
        size += 1237 + 6 * len(sender_domain) + 2 * len(owner_email) + 2 * len(contact[1])
    plan = (cte_text, alt_boundary, mixed_boundary, attachment, contact, sent)
    return Envelope(headers, raw_values, snippet_of(text), size, mime, plan, text)


def generate(key, owner_email, owner_name, skel, env=None, text="sentences"):
    """Full content: trace headers + the envelope's headers, and the MIME tree with bodies."""
    if env is None or env.text is None:
        env = envelope(key, owner_email, owner_name, skel, text)
    cte_text, alt_boundary, mixed_boundary, attachment, contact, sent = env.plan
    rng = random.Random("%s|trace|%d" % (key, skel.index))
    headers = []
    if not sent:
        sender_domain = contact[1].split("@", 1)[-1]
        gtime = _gmail_time(skel.date_ms)
        smtp_id = "%x" % rng.getrandbits(64)
        ip = "203.0.113.%d" % rng.randrange(1, 255)
        headers += [
            ("Delivered-To", owner_email),
            ("Received", "by 2002:a05:6a10:%04x:b0:%x:%x:%x with SMTP id %s;        %s" % (
                rng.getrandbits(16), rng.getrandbits(12), rng.getrandbits(12), rng.getrandbits(12),
                smtp_id[:12], gtime)),
            ("X-Google-Smtp-Source", "AGHT+IF%s" % base64.b64encode(rng.getrandbits(240).to_bytes(30, "big")).decode()),
            ("X-Received", "by 2002:a17:902:%04x:b0:%x with SMTP id %s.%d.%d;        %s" % (
                rng.getrandbits(16), rng.getrandbits(12), smtp_id[:10], rng.randrange(100), rng.randrange(1000),
                gtime)),
            ("Return-Path", "<%s>" % contact[1]),
            ("Received", "from mail-%s.%s (mail-%s.%s. [%s])        by mx.google.com with ESMTPS id %s        "
                         "for <%s>        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);        %s" % (
                             smtp_id[:4], sender_domain, smtp_id[:4], sender_domain, ip, smtp_id,
                             owner_email, gtime)),
            ("Received-SPF", "pass (google.com: domain of %s designates %s as permitted sender) client-ip=%s;" % (
                contact[1], ip, ip)),
            ("Authentication-Results", "mx.google.com;        dkim=pass header.i=@%s;        spf=pass "
                                       "(google.com: domain of %s designates %s as permitted sender) "
                                       "smtp.mailfrom=%s" % (sender_domain, contact[1], ip, contact[1])),
            ("DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=20230601;        "
                               "h=to:subject:message-id:date:from:mime-version:from:to:cc:subject:date:message-id:reply-to;"
                               "        bh=%s;        b=%s" % (
                                   sender_domain, base64.b64encode(rng.getrandbits(256).to_bytes(32, "big")).decode(),
                                   base64.b64encode(rng.getrandbits(512).to_bytes(64, "big")).decode())),
        ]
    headers += env.headers
    text_bytes = env.text.encode("utf-8")
    plain = Part("text/plain", [("Content-Type", 'text/plain; charset="UTF-8"'),
                                ("Content-Transfer-Encoding", cte_text)], text_bytes, cte_text)
    body_root = plain
    if alt_boundary:
        html = Part("text/html", [("Content-Type", 'text/html; charset="UTF-8"'),
                                  ("Content-Transfer-Encoding", "quoted-printable")],
                    _html_of(env.text).encode("utf-8"), "quoted-printable")
        body_root = Part("multipart/alternative",
                         [("Content-Type", 'multipart/alternative; boundary="%s"' % alt_boundary)],
                         children=[plain, html], boundary=alt_boundary)
    if attachment:
        kind, fname, size, cid, xid = attachment
        if kind == "large":
            att = Part("application/pdf", [("Content-Type", 'application/pdf; name="%s"' % fname),
                                           ("Content-Disposition", 'attachment; filename="%s"' % fname),
                                           ("Content-Transfer-Encoding", "base64"),
                                           ("Content-ID", "<f_%x>" % cid),
                                           ("X-Attachment-Id", "f_%x" % xid)],
                       None, "base64", fname, large_size=size)
        else:
            data = hashlib.shake_256(("%s|att|%d" % (key, skel.index)).encode()).digest(size)
            mime = {"pdf": "application/pdf", "png": "image/png", "txt": "text/plain"}[fname.rsplit(".", 1)[1]]
            if fname.isascii():
                name_param, file_param = 'name="%s"' % fname, 'filename="%s"' % fname
            else:  # RFC 2231: raw MIME headers stay ASCII
                pct = "".join("%%%02X" % b for b in fname.encode("utf-8"))
                name_param, file_param = "name*=UTF-8''%s" % pct, "filename*=UTF-8''%s" % pct
            att = Part(mime, [("Content-Type", "%s; %s" % (mime, name_param)),
                              ("Content-Disposition", "attachment; " + file_param),
                              ("Content-Transfer-Encoding", "base64")],
                       data, "base64", fname)
        body_root = Part("multipart/mixed", [("Content-Type", 'multipart/mixed; boundary="%s"' % mixed_boundary)],
                         children=[body_root, att], boundary=mixed_boundary)
    return Content(headers, env.raw_values, body_root, env.snippet, env.size)


def _leaf_encoded(part):
    if part.cte == "base64":
        return _b64_lines(part.body)
    if part.cte == "quoted-printable":
        return _qp(part.body)
    return part.body


def _part_body_bytes(key, index, part, out):
    if part.children:
        for child in part.children:
            out.append(("--%s\r\n" % part.boundary).encode())
            out.append("".join(fold_header(n, v) for n, v in child.headers).encode("utf-8"))
            out.append(b"\r\n")
            _part_body_bytes(key, index, child, out)
        out.append(("--%s--\r\n" % part.boundary).encode())
    elif part.large_size:
        out.append(_large_attachment_b64(key, index, part.large_size))
    else:
        out.append(_leaf_encoded(part))


def raw_bytes(key, index, content):
    """The RFC 2822 message (CRLF line ends); len() == content.size."""
    raw_headers = "".join(fold_header(name, value, content.raw_values.get(name))
                          for name, value in content.headers)
    out = [raw_headers.encode("utf-8"), b"\r\n"]
    _part_body_bytes(key, index, content.root, out)
    return b"".join(out)


def part_bytes(key, index, part):
    """Decoded content of a leaf part (attachments.get, full format)."""
    if part.large_size:
        return large_attachment_bytes(key, index, part.large_size)
    return part.body
