"""Imported messages: real RFC 822 bytes (an .eml or each message of an mbox) in a fake mailbox.

The bytes are kept exactly as given: format=raw serves them base64url-encoded and sizeEstimate is
their length, as Gmail's is for real mail.  The views Gmail derives from a message (the headers of
format=metadata, the MIME tree of format=full, the snippet) come from Python's email package; no
MIME is parsed by hand here.  The one hand-written parser is the mbox splitter (the "From " lines
and the ">From " quoting are mbox's framing, not MIME).
"""

import base64
import email
import email.errors
import email.generator
import email.header
import email.policy
import email.utils
import html.parser
import io
import re
import time

import fg_content as C

_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_MSGID = re.compile(r"<[^<>\s]+>")
# Gmail puts a text part's bytes inline (body.data) and gives anything else an attachmentId; the
# inline limit is ours (Gmail's is not documented; large text parts get an attachmentId too).
INLINE_TEXT_LIMIT = 1024 * 1024


class ImportedPart(C.Part):
    """A C.Part built from a parsed part; as_attachment: served by attachmentId, not inline."""

    __slots__ = ("as_attachment",)

    def __init__(self, mime_type, headers, body=None, filename="", children=None, as_attachment=False):
        super().__init__(mime_type, headers, body, None, filename, children)
        self.as_attachment = as_attachment


def _text(value):
    """A header value from the parser as text: 8-bit bytes (surrogate-escaped) read as UTF-8."""
    if isinstance(value, email.header.Header):
        value = str(value)
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


def shown_value(raw_value):
    """A header value as Gmail's JSON shows it: unfolded (the CRLF goes, the whitespace after it
    stays), RFC 2047 encoded-words decoded to UTF-8."""
    value = _UNFOLD.sub("", _text(raw_value)).rstrip("\r\n")
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        return value


def _headers(part):
    return [(_text(name), shown_value(value)) for name, value in part.raw_items()]


class _TextOfHtml(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head", "title"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def _body_text(msg):
    """The text a snippet is made of: the text/plain body, else the HTML body's text."""
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
        if body is None:
            return ""
        content = body.get_content()
    except (LookupError, KeyError, ValueError, AttributeError, TypeError, UnicodeError):
        return ""
    if not isinstance(content, str):
        return ""
    if body.get_content_subtype() == "html":
        parser = _TextOfHtml()
        try:
            parser.feed(content)
            parser.close()
        except (AssertionError, ValueError):
            return ""
        return " ".join(parser.out)
    return content


def _leaf_bytes(part):
    if part.get_content_type() == "message/rfc822" or part.get_content_maintype() == "message":
        payload = part.get_payload()
        if isinstance(payload, list):
            out = io.BytesIO()
            for sub in payload:
                email.generator.BytesGenerator(out, mangle_from_=False, policy=sub.policy).flatten(sub)
            return out.getvalue()
    data = part.get_payload(decode=True)
    return data if data is not None else b""


def _filename(part):
    try:
        name = part.get_filename()
    except (LookupError, ValueError, TypeError, email.errors.HeaderParseError):
        name = None
    return shown_value(name) if name else ""


def _tree(part, depth=0):
    mime = part.get_content_type()
    headers = _headers(part)
    if part.is_multipart() and part.get_content_maintype() == "multipart" and depth < 100:
        children = [_tree(child, depth + 1) for child in part.get_payload()]
        return ImportedPart(mime, headers, None, "", children)
    body = _leaf_bytes(part)
    filename = _filename(part)
    as_attachment = bool(filename) or part.get_content_maintype() != "text" or len(body) > INLINE_TEXT_LIMIT
    return ImportedPart(mime, headers, body, filename, None, as_attachment)


def parse(raw):
    """The email package's message of raw bytes (policy.default: get_body, RFC 2231 names)."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def content(raw):
    """fg_content.Content of an imported message: every header, the MIME tree, snippet, size."""
    msg = parse(raw)
    root = _tree(msg)
    out = C.Content(root.headers, {}, root, C.snippet_of(_body_text(msg)), len(raw))
    root.headers = []     # the message's headers are Content.headers (as for generated mail)
    return out


def envelope(content_):
    """The C.Envelope the metadata and minimal views render from, for an imported message."""
    return C.Envelope(list(content_.headers), {}, content_.snippet, content_.size,
                      content_.root.mime_type, None, None)


def _headers_of(raw):
    """The message as compat32 reads its headers, parsed from the bytes up to its first blank
    line in any of its line ends (a superset of the header block: the headers are the same) —
    an import of a 25 MB message need not walk its attachment."""
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n"), raw.find(b"\r\r")) if i >= 0]
    return email.message_from_bytes(raw[:min(ends) + 4] if ends else raw, policy=email.policy.compat32)


def internal_date_ms(raw):
    """Milliseconds of the Date header, else now (what Gmail does for an import without a date)."""
    msg = _headers_of(raw)
    value = msg.get("Date")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(_UNFOLD.sub("", _text(value)).strip())
            if when.tzinfo is not None:
                ms = int(when.timestamp() * 1000)
                if 0 < ms < 2 ** 43:
                    return ms
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return int(time.time() * 1000)


def threading_ids(raw):
    """(its Message-ID or None, the ids it replies to: In-Reply-To first, then References newest
    first) — what the fake threads an imported message by."""
    msg = _headers_of(raw)

    def ids(name):
        value = msg.get(name)
        return _MSGID.findall(_UNFOLD.sub("", _text(value))) if value else []

    own = ids("Message-ID")
    parents = ids("In-Reply-To") + list(reversed(ids("References")))
    return (own[0] if own else None), parents


def split_mbox(data):
    """The messages of an mbox (mboxo or mboxrd): split at lines that begin with "From ", one
    level of '>' quoting removed from ">From " lines (mboxrd: ">>From " becomes ">From "), the
    blank line that ends each message in the mbox removed.  Line ends are kept as they are."""
    messages = []
    current = None
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From "):
            if current is not None:
                messages.append(current)
            current = []
            continue
        if current is None:
            if line.strip():
                raise ValueError("an mbox begins with a \"From \" line")
            continue
        if line.startswith(b">"):
            stripped = line.lstrip(b">")
            if stripped.startswith(b"From "):
                line = line[1:]
        current.append(line)
    if current is not None:
        messages.append(current)
    out = []
    for lines in messages:
        if len(lines) >= 2 and lines[-1] in (b"\n", b"\r\n") and lines[-2].endswith(b"\n"):
            lines = lines[:-1]
        raw = b"".join(lines)
        if raw.strip():
            out.append(raw)
    return out


def b64url(data):
    """base64url with padding, as Gmail's raw and body.data are."""
    return base64.urlsafe_b64encode(data).decode("ascii")
