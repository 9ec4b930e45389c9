"""JSON output the way Google's API front end writes it.

Google's JSON encoder (ESF) pretty-prints by default (the standard `prettyPrint`
parameter defaults to true, two-space indent), writes non-ASCII characters as raw
UTF-8, and escapes the HTML-sensitive characters < > & = ' as \\u003c \\u003e
\\u0026 \\u003d \\u0027.  A client that uses a real JSON parser never notices;
one that greps bytes does, which is the point of reproducing it.
"""

import json
from json.encoder import encode_basestring as _encode_basestring  # C, ensure_ascii=False

_HTML_ESCAPES = (
    ("&", "\\u0026"),
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("=", "\\u003d"),
    ("'", "\\u0027"),
)


def escape_html_chars(text):
    """Escape < > & = ' in already-encoded JSON text (they only occur inside strings)."""
    for char, escaped in _HTML_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text


def jstr(value):
    """One JSON string literal, Google-escaped."""
    return escape_html_chars(_encode_basestring(value))


def dumps(obj, pretty=True):
    """Serialise obj to UTF-8 bytes like Google does (pretty: 2-space indent, trailing newline)."""
    if pretty:
        text = json.dumps(obj, ensure_ascii=False, indent=2) + "\n"
    else:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return escape_html_chars(text).encode("utf-8")


def parse_fields(spec):
    """Parse the standard `fields` partial-response selector into a tree.

    Grammar: `a,b/c,d(e,f/g)`.  Returns {name: subtree-or-None}; None selects the whole value.
    Raises ValueError on unbalanced parentheses or empty names.
    """
    pos = 0

    def parse_list(end_char):
        nonlocal pos
        tree = {}
        while True:
            start = pos
            while pos < len(spec) and spec[pos] not in ",()/":
                pos += 1
            name = spec[start:pos].strip()
            if not name:
                raise ValueError("empty field name")
            node = tree
            while pos < len(spec) and spec[pos] == "/":
                sub = node.get(name)
                if sub is None:
                    sub = node[name] = {}
                node = sub
                pos += 1
                start = pos
                while pos < len(spec) and spec[pos] not in ",()/":
                    pos += 1
                name = spec[start:pos].strip()
                if not name:
                    raise ValueError("empty field name")
            if pos < len(spec) and spec[pos] == "(":
                pos += 1
                sub = parse_list(")")
                existing = node.get(name)
                if isinstance(existing, dict):
                    existing.update(sub)
                else:
                    node[name] = sub
            elif name not in node:
                node[name] = None
            if pos >= len(spec):
                if end_char is not None:
                    raise ValueError("unbalanced parentheses")
                return tree
            if spec[pos] == ",":
                pos += 1
                continue
            if spec[pos] == ")" and end_char == ")":
                pos += 1
                return tree
            raise ValueError("unexpected %r" % spec[pos])

    return parse_list(None)


def apply_fields(obj, tree):
    """Keep only the selected fields of obj (dicts filtered, lists filtered element-wise)."""
    if tree is None:
        return obj
    if isinstance(obj, list):
        return [apply_fields(item, tree) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        if key in tree:
            out[key] = apply_fields(value, tree[key])
    return out
