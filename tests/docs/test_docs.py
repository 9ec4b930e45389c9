"""The documentation stays true to the tree (issue 25): every relative link of the README and the
docs resolves (the file exists, and a #fragment names a heading or an anchor of it), and every
directive the module defines is in the directive reference, which names no directive the module
does not have. No stack needed: these read files only."""
import glob
import os
import re

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIRECTIVE_REFERENCE = "docs/configuration.md"

# every Markdown file a reader reaches from the README (node_modules and run dirs excluded)
DOCS = sorted({os.path.relpath(p, ROOT) for pattern in ("README.md", "docs/*.md", "mod_gmailsync/**/README.md",
                                                          "tests/**/README.md", "conf/*.md", "rollback/*.md")
               for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)
               if "node_modules" not in p})

LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(path, blank_code=True):
    """The file's lines outside fenced code blocks, and inline code spans blanked (kept for
    headings: GitHub's anchor keeps a code span's text)."""
    out, fenced = [], False
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        for line in f:
            if FENCE.match(line.lstrip()):
                fenced = not fenced
                continue
            if not fenced:
                out.append(re.sub(r"`[^`]*`", "``", line) if blank_code else line)
    return out


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    for line in prose(path, blank_code=False):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else "%s-%d" % (base, n))
        for a in re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line):
            out.add(a)
    return out


def links(path):
    for lineno, line in enumerate(prose(path), 1):
        for m in LINK.finditer(line):
            target = m.group(1) or m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):     # http:, https:, mailto:
                continue
            yield lineno, target


def test_the_docs_are_found():
    assert "README.md" in DOCS and "docs/configuration.md" in DOCS and len(DOCS) >= 10, DOCS


@pytest.mark.parametrize("path", DOCS)
def test_every_relative_link_resolves(path):
    broken = []
    for lineno, target in links(path):
        file_part, _, fragment = target.partition("#")
        if file_part:
            resolved = os.path.normpath(os.path.join(os.path.dirname(os.path.join(ROOT, path)), file_part))
            if not os.path.exists(resolved):
                broken.append("%s:%d: %s (no such file)" % (path, lineno, target))
                continue
        else:
            resolved = os.path.join(ROOT, path)
        if fragment and resolved.endswith(".md") and fragment not in anchors(os.path.relpath(resolved, ROOT)):
            broken.append("%s:%d: %s (no such heading)" % (path, lineno, target))
    assert not broken, "\n".join(broken)


def directives_in_code():
    names = set()
    for src in glob.glob(os.path.join(ROOT, "mod_gmailsync", "**", "*.[ch]"), recursive=True):
        with open(src, encoding="utf-8") as f:
            names.update(re.findall(r"#define\s+GS_DIR_\w+\s+\"(GmailSync\w*)\"", f.read()))
    return names


def directives_documented():
    """The first cells of the reference's table rows: `GmailSyncName ARGS`."""
    with open(os.path.join(ROOT, DIRECTIVE_REFERENCE), encoding="utf-8") as f:
        return {m.group(1) for m in (re.match(r"^\|\s*`(GmailSync\w*)", line) for line in f) if m}


def test_every_directive_is_in_the_reference_and_only_those():
    code, documented = directives_in_code(), directives_documented()
    assert len(code) >= 40, sorted(code)
    assert not code - documented, "defined but not in %s: %s" % (DIRECTIVE_REFERENCE, sorted(code - documented))
    assert not documented - code, "documented but not defined: %s" % sorted(documented - code)
