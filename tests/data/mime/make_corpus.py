#!/usr/bin/env python3
"""Writes the MIME test corpus of tests/data/mime/*.eml (committed; run again to refresh).

Every message is written here by the project (no third-party mail): each one is shaped like a
kind of real mail that mail archivers get wrong (charsets, encoded words, RFC 2231 filenames,
nested multiparts, forwards, inline images, broken structure). The bytes are exact: the
bodies are encoded with Python's codecs into the declared (or a deliberately wrong) charset.
tests/unit/test_mime.c asserts what gs_mime makes of each file.
"""
import base64
import os
import quopri

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(data):
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def qp(data):
    return quopri.encodestring(data).decode().replace("\n", "\r\n")


def ew(text, charset="UTF-8", enc="B"):
    data = text.encode(charset)
    if enc == "B":
        return "=?%s?B?%s?=" % (charset, base64.b64encode(data).decode())
    return "=?%s?Q?%s?=" % (charset, quopri.encodestring(data, header=True).decode())


def write(name, head, body, crlf=True):
    """head: header lines (str); body: bytes or str (str is ASCII)."""
    if isinstance(body, str):
        body = body.encode("ascii")
    nl = b"\r\n" if crlf else b"\n"
    data = nl.join(h.encode("ascii") if isinstance(h, str) else h for h in head) + nl + nl
    if crlf:
        body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data + body)


def env(subject, extra=(), frm="Alice Example <alice@example.com>", to="Bob <bob@example.org>"):
    return ["From: " + frm, "To: " + to, "Subject: " + subject,
            "Date: Mon, 07 Dec 2026 09:15:00 +0100",
            "Message-ID: <%s@corpus.example>" % subject.split()[0].lower().strip(":=?"),
            "MIME-Version: 1.0"] + list(extra)


def text_part(ct, body_bytes, cte, extra=()):
    lines = ["Content-Type: " + ct, "Content-Transfer-Encoding: " + cte] + list(extra)
    if cte == "base64":
        payload = b64(body_bytes)
    elif cte == "quoted-printable":
        payload = qp(body_bytes)
    else:
        payload = body_bytes.decode("latin-1")
    return "\r\n".join(lines) + "\r\n\r\n" + payload


def multipart(boundary, parts, close=True):
    out = ""
    for p in parts:
        out += "--" + boundary + "\r\n" + p.rstrip("\r\n") + "\r\n"
    if close:
        out += "--" + boundary + "--\r\n"
    return out


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6300010000050001a5f645400000000049454e44ae426082")
PDF = b"%PDF-1.4\n% corpus attachment\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


def main():
    # 1. UTF-8, quoted-printable; subject and display name as encoded words (Q and B)
    write("utf8_qp.eml",
          env("utf8: " + ew("Grüße aus Köln ✓", "UTF-8", "Q"),
              ["Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: quoted-printable"],
              frm=ew("Jürgen Müller", "UTF-8", "B") + " <Juergen.Mueller@Example.COM>"),
          qp("Grüße aus Köln!\nDiese Zeile ist sehr lang und wird von quoted-printable umbrochen, "
             "damit der Decoder weiche Zeilenumbrüche zusammenfügt: äöüß€.\n".encode("utf-8")))

    # 2. ISO-8859-1, 8bit, LF line ends
    write("latin1.eml",
          env("latin1", ["Content-Type: text/plain; charset=ISO-8859-1",
                         "Content-Transfer-Encoding: 8bit"]),
          "Café crème à la française, señor.\n".encode("iso-8859-1"), crlf=False)

    # 3. Windows-1252 bytes declared ISO-8859-1 (curly quotes, euro, dash)
    write("cp1252_as_latin1.eml",
          env("cp1252", ["Content-Type: text/plain; charset=iso-8859-1",
                         "Content-Transfer-Encoding: 8bit"]),
          "“Smart quotes” cost 5 € – really.\n".encode("cp1252"))

    # 4-6. Chinese: GB2312 (base64), GBK (a character outside GB2312), GB18030 (4-byte sequences)
    write("gb2312.eml",
          env("gb2312: " + ew("中文邮件测试", "GB2312", "B"),
              ["Content-Type: text/plain; charset=gb2312", "Content-Transfer-Encoding: base64"],
              frm=ew("张伟", "GB2312", "B") + " <zhang.wei@example.cn>"),
          b64("你好，世界！这是一封中文邮件。\n".encode("gb2312")))
    write("gbk.eml",
          env("gbk", ["Content-Type: text/plain; charset=GBK", "Content-Transfer-Encoding: 8bit"]),
          "朱镕基先生：您好。\n".encode("gbk"))
    write("gb18030.eml",
          env("gb18030", ["Content-Type: text/plain; charset=GB18030",
                          "Content-Transfer-Encoding: base64"]),
          b64("中文：𠀀 与 😀 都是四字节。\n".encode("gb18030")))

    # 7. Big5, quoted-printable
    write("big5.eml",
          env("big5: " + ew("繁體中文", "Big5", "B"),
              ["Content-Type: text/plain; charset=big5", "Content-Transfer-Encoding: quoted-printable"]),
          qp("繁體中文測試：臺灣的郵件。\n".encode("big5")))

    # 8. ISO-2022-JP (7bit, the Japanese mail standard), subject in ISO-2022-JP B
    write("iso2022jp.eml",
          env("iso2022jp: " + ew("日本語の件名", "ISO-2022-JP", "B"),
              ["Content-Type: text/plain; charset=ISO-2022-JP", "Content-Transfer-Encoding: 7bit"]),
          "日本語のメールです。よろしくお願いします。\n".encode("iso-2022-jp"))

    # 9. Shift_JIS, base64
    write("shift_jis.eml",
          env("sjis", ["Content-Type: text/plain; charset=Shift_JIS", "Content-Transfer-Encoding: base64"]),
          b64("こんにちは、世界。カタカナも。\n".encode("shift_jis")))

    # 10-11. no charset declared: UTF-8 bytes, then Latin-1 bytes
    write("nocharset_utf8.eml",
          env("nocharset-utf8", ["Content-Type: text/plain", "Content-Transfer-Encoding: 8bit"]),
          "naïve résumé — 中文\n".encode("utf-8"))
    write("nocharset_latin1.eml",
          env("nocharset-latin1", ["Content-Transfer-Encoding: 8bit"]),
          "Grüße, Dänemark.\n".encode("iso-8859-1"))

    # 12-13. wrong charset: UTF-8 declared, Latin-1 sent; US-ASCII declared, UTF-8 sent
    write("wrong_utf8.eml",
          env("wrong-utf8", ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]),
          "Crème brûlée à volonté.\n".encode("iso-8859-1"))
    write("wrong_ascii.eml",
          env("wrong-ascii", ["Content-Type: text/plain; charset=us-ascii",
                              "Content-Transfer-Encoding: 8bit"]),
          "Ünïcödé in a US-ASCII part.\n".encode("utf-8"))

    # 14. a GB2312 body that declares nothing, beside an HTML part that declares gb2312
    alt = multipart("alt14", [
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "请查收附件。\n".encode("gb2312").decode("latin-1"),
        text_part("text/html; charset=gb2312", "<p>请查收附件。</p>\n".encode("gb2312"), "base64")])
    write("gb2312_undeclared_alt.eml",
          env("undeclared-gb", ['Content-Type: multipart/alternative; boundary="alt14"']), alt.encode("latin-1"))

    # 15. encoded words: split across folded lines, mixed charsets, in a name and the subject
    write("rfc2047.eml",
          env("rfc2047: " + ew("Préparation de la ", "ISO-8859-1", "Q") + "\r\n " + ew("réunion — 会议", "UTF-8", "B"),
              ["Cc: " + ew("Renée", "ISO-8859-1", "Q") + " <renee@example.fr>, " + ew("李娜", "UTF-8", "B")
               + " <li.na@example.cn>",
               "Reply-To: \"Support Team\" <SUPPORT@Example.net>",
               "Content-Type: text/plain; charset=us-ascii"]),
          "Plain ASCII body.\n")

    # 16. multipart/alternative, text (QP) and HTML (base64)
    write("alternative.eml",
          env("alternative", ['Content-Type: multipart/alternative; boundary="b16"']),
          multipart("b16", [
              text_part("text/plain; charset=UTF-8", "Hello in plain text — ok.\n".encode(), "quoted-printable"),
              text_part("text/html; charset=UTF-8", "<html><body><p>Hello in <b>HTML</b> — ok.</p></body></html>\n".encode(), "base64")]))

    # 17. multipart/mixed: alternative(text, related(html, image)), a PDF, an RFC 2231 file
    related = multipart("rel17", [
        text_part("text/html; charset=UTF-8", b'<p>See the logo: <img src="cid:logo@corpus"></p>\n', "7bit"),
        "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <logo@corpus>\r\n"
        "Content-Disposition: inline; filename=\"logo.png\"\r\n\r\n" + b64(PNG)])
    alt17 = multipart("alt17", [
        text_part("text/plain; charset=UTF-8", b"See the logo (plain).\n", "7bit"),
        'Content-Type: multipart/related; boundary="rel17"; type="text/html"\r\n\r\n' + related])
    write("mixed_nested.eml",
          env("mixed-nested", ['Content-Type: multipart/mixed; boundary="mix17"']),
          multipart("mix17", [
              'Content-Type: multipart/alternative; boundary="alt17"\r\n\r\n' + alt17,
              "Content-Type: application/pdf; name=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
              "Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\n" + b64(PDF),
              "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n"
              "Content-Disposition: attachment;\r\n filename*0*=UTF-8''%E4%BC%9A%E8%AE%AE%E7%BA%AA;\r\n"
              " filename*1*=%E8%A6%81%20%C3%A9t%C3%A9;\r\n filename*2=\".txt\"\r\n\r\n"
              + b64("会议纪要\n".encode())]))

    # 18. multipart/related without alternative: HTML root named by start, two inline images
    write("related.eml",
          env("related", ['Content-Type: multipart/related; boundary="r18"; start="<root@corpus>"; type="text/html"']),
          multipart("r18", [
              "Content-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <img2@corpus>\r\n\r\n"
              + b64(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
              "Content-Type: text/html; charset=UTF-8\r\nContent-ID: <root@corpus>\r\n\r\n"
              '<p><img src="cid:img1@corpus"><img src="cid:img2@corpus"></p>\r\n',
              "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <img1@corpus>\r\n"
              "Content-Disposition: inline\r\n\r\n" + b64(PNG)]))

    # 19. HTML only, with what a text rendering must drop or decode
    write("html_only.eml",
          env("html-only", ["Content-Type: text/html; charset=windows-1252",
                            "Content-Transfer-Encoding: quoted-printable"]),
          qp(("<html><head><title>T</title><style>p{color:red}</style></head><body>\n"
              "<h1>Weekly&nbsp;news</h1><p>Caf\u00e9 &amp; cr\u00e8me &lt;3 &#8364;5 &#x4e2d;</p>\n"
              "<script>alert(1)</script><ul><li>one</li><li>two</li></ul>"
              "<!-- hidden --><table><tr><td>a</td><td>b</td></tr></table>Bye<br>now</body></html>\n")
             .encode("cp1252")))

    # 20. a forward: text plus a message/rfc822 attachment
    inner = ("From: Carol <carol@example.com>\r\nTo: alice@example.com\r\nSubject: Original\r\n"
             "Message-ID: <original@corpus.example>\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
             "The original text.\r\n")
    write("forward.eml",
          env("forward", ['Content-Type: multipart/mixed; boundary="f20"', "In-Reply-To: <original@corpus.example>",
                          "References: <a1@corpus.example>\r\n <original@corpus.example>"]),
          multipart("f20", [
              text_part("text/plain; charset=UTF-8", b"See the forwarded message.\n", "7bit"),
              "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"original.eml\"\r\n\r\n" + inner]))

    # 21. a 0-byte attachment
    write("empty_attachment.eml",
          env("empty-attachment", ['Content-Type: multipart/mixed; boundary="e21"']),
          multipart("e21", [
              text_part("text/plain; charset=UTF-8", b"An empty file is attached.\n", "7bit"),
              "Content-Type: application/octet-stream; name=\"empty.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
              "Content-Disposition: attachment; filename=\"empty.bin\"\r\n\r\n"]))

    # 22. duplicate headers (Received, a repeated X- header, two Subject lines)
    write("duplicate_headers.eml",
          ["Received: from a.example by b.example; Mon, 07 Dec 2026 09:15:02 +0100",
           "Received: from c.example by a.example; Mon, 07 Dec 2026 09:15:01 +0100",
           "X-Tag: one", "X-Tag: " + ew("zwei ü", "UTF-8", "Q")] + env("duplicates") + ["Subject: second subject"],
          "Body.\n")

    # 23. broken: the closing boundary is missing, garbage before the first boundary and after
    write("malformed.eml",
          env("malformed", ['Content-Type: multipart/mixed; boundary="m23"']),
          "\x00\x01garbage \xff\xfe before\r\n".encode("latin-1") + multipart("m23", [
              text_part("text/plain; charset=UTF-8", "Still readable — yes.\n".encode(), "quoted-printable"),
              "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              "AAECAwQF!!!not base64 at all***\r\n"], close=False).encode("latin-1"))

    # 24. a multipart that declares no boundary, and headers with raw 8-bit bytes
    write("no_boundary.eml",
          ["From: M\xfcller <mueller@example.de>".encode("latin-1"), "To: x@example.com",
           "Subject: caf\xe9 8-bit".encode("latin-1"), "Content-Type: multipart/mixed"],
          "--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n")

    # 25. display names in several padded B-encoded words, in From, To and Cc (GMime 3.2.13 cut
    # them at the first word's padding); cut between characters, as RFC 2047 requires
    def split_words(text, cuts):
        words, at = [], 0
        for c in list(cuts) + [None]:
            words.append("=?UTF-8?B?%s?=" % base64.b64encode(text[at:c].encode()).decode())
            at = c
        return "\r\n ".join(words)
    write("padded_names.eml",
          env("padded names", ["Cc: " + split_words("Renée Dupré-Lefèvre", (4, 9)) + " <renee@example.fr>",
                               "Content-Type: text/plain; charset=UTF-8"],
              frm=split_words("张伟明 (北京分公司)", (2, 5)) + " <zhang@example.cn>",
              to=split_words("Hello world", (5,)) + " <hello@example.org>, \"Plain, Name\" <p@example.org>"),
          "Names only.\n")

if __name__ == "__main__":
    main()
