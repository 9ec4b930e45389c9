/* gs_mime_html.c -- decoded HTML rendered as text for search and previews (gs_mime_html.h),
 * with GLib's ASCII and Unicode helpers (so it is in the MIME archive with gs_mime.c).
 */
#include <string.h>

#include <apr_strings.h>
#include <glib.h>

#include "gs_mime_html.h"

/* ------------------------------------------------------------------ HTML as text
 *
 * Neither GMime nor GLib renders HTML as text (GMime's HTML filter goes the other way), so this
 * is a small routine over the decoded UTF-8: one pass, no backtracking (a search for a closing
 * tag that fails is remembered, so hostile input stays linear), and the output never grows
 * past the input (every tag, reference and run of white space is at least as long as what it
 * becomes). Tested in tests/unit/test_mime.c and fuzzed by tests/fuzz/fuzz_mime.c.
 */

typedef struct {
    char *out;
    apr_size_t n;
    int space;     /* a collapsed space is pending */
    int newlines;  /* line breaks at the end of the output (0..2) */
} html_out_t;

static void h_char(html_out_t *o, const char *s, apr_size_t len)
{
    if (o->space && o->n && !o->newlines) {
        o->out[o->n++] = ' ';
    }
    o->space = 0;
    memcpy(o->out + o->n, s, len);
    o->n += len;
    o->newlines = 0;
}

static void h_break(html_out_t *o, int lines)
{
    o->space = 0;
    while (o->n && o->out[o->n - 1] == ' ') {
        o->n--;
    }
    if (!o->n) {
        return;
    }
    while (o->newlines < lines) {
        o->out[o->n++] = '\n';
        o->newlines++;
    }
}

/* ASCII case-insensitive search for needle in s[from..len); len when absent. */
static apr_size_t h_find(const char *s, apr_size_t len, apr_size_t from, const char *needle)
{
    apr_size_t nl = strlen(needle), i;

    for (i = from; i + nl <= len; i++) {
        if (g_ascii_strncasecmp(s + i, needle, nl) == 0) {
            return i;
        }
    }
    return len;
}

static const struct { const char *name; const char *utf8; } entities[] = {
    { "amp", "&" }, { "lt", "<" }, { "gt", ">" }, { "quot", "\"" }, { "apos", "'" },
    { "nbsp", " " }, { "copy", "\xc2\xa9" }, { "reg", "\xc2\xae" }, { "trade", "\xe2\x84\xa2" },
    { "hellip", "\xe2\x80\xa6" }, { "mdash", "\xe2\x80\x94" }, { "ndash", "\xe2\x80\x93" },
    { "lsquo", "\xe2\x80\x98" }, { "rsquo", "\xe2\x80\x99" }, { "ldquo", "\xe2\x80\x9c" },
    { "rdquo", "\xe2\x80\x9d" }, { "laquo", "\xc2\xab" }, { "raquo", "\xc2\xbb" },
    { "euro", "\xe2\x82\xac" }, { "pound", "\xc2\xa3" }, { "yen", "\xc2\xa5" },
    { "cent", "\xc2\xa2" }, { "bull", "\xe2\x80\xa2" }, { "middot", "\xc2\xb7" },
    { "deg", "\xc2\xb0" }, { "times", "\xc3\x97" }, { "shy", "" }, { "zwnj", "" }, { "zwj", "" },
};

/* A character reference at s[i] ('&'): its length, and its UTF-8 in buf; 0 when it is none. */
static apr_size_t h_entity(const char *s, apr_size_t len, apr_size_t i, char *buf, apr_size_t *blen)
{
    apr_size_t j = i + 1, k;

    if (j < len && s[j] == '#') {
        gunichar u = 0;
        int hex = (j + 1 < len && (s[j + 1] == 'x' || s[j + 1] == 'X')), digits = 0;

        j += hex ? 2 : 1;
        for (; j < len && digits < 8; j++, digits++) {
            int d = hex ? g_ascii_xdigit_value(s[j]) : g_ascii_digit_value(s[j]);

            if (d < 0) {
                break;
            }
            u = u * (hex ? 16 : 10) + (gunichar)d;
        }
        if (!digits || j >= len || s[j] != ';') {
            return 0;
        }
        if (u == 0 || u > 0x10FFFF || (u >= 0xD800 && u <= 0xDFFF)) {
            u = 0xFFFD;
        }
        else if (u < 0x20 || u == 0x7F || u == 0xA0) {
            u = ' ';
        }
        *blen = (apr_size_t)g_unichar_to_utf8(u, buf);
        return j + 1 - i;
    }
    for (k = 0; k < sizeof(entities) / sizeof(entities[0]); k++) {
        apr_size_t nl = strlen(entities[k].name);

        if (j + nl < len && strncmp(s + j, entities[k].name, nl) == 0 && s[j + nl] == ';') {
            *blen = strlen(entities[k].utf8);
            memcpy(buf, entities[k].utf8, *blen);
            return nl + 2;
        }
    }
    return 0;
}

/* Elements that start a new line (block level), and those whose content is not text. */
static int h_block(const char *name)
{
    static const char *const blocks[] = {
        "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "hr", "section", "article", "header", "footer", "dd", "dt", "dl",
        "address", "center", "form", "fieldset", "nav", "aside", "main", "figure", "tbody",
        "thead", "tfoot", "caption", "body", "html",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) {
        if (g_ascii_strcasecmp(name, blocks[i]) == 0) {
            return (strcmp(blocks[i], "p") == 0 || blocks[i][0] == 'h') ? 2 : 1;
        }
    }
    return 0;
}

char *gs_mime_html_to_text(apr_pool_t *p, const char *s, apr_size_t len)
{
    static const char *const skipped[] = { "script", "style", "head", "title", "template" };
    apr_size_t no_close[5] = { 0, 0, 0, 0, 0 };   /* 1 + the position where a search failed */
    html_out_t o;
    apr_size_t i = 0, pre = 0;
    int comment_unclosed = 0;

    o.out = apr_palloc(p, len + 2);
    o.n = 0;
    o.space = 0;
    o.newlines = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '<') {
            char name[16];
            apr_size_t j = i + 1, nl = 0, k;
            int closing = 0, quote = 0;

            if (!comment_unclosed && i + 4 <= len && strncmp(s + i, "<!--", 4) == 0) {
                apr_size_t end = h_find(s, len, i + 4, "-->");

                if (end < len) {
                    i = end + 3;
                    continue;
                }
                comment_unclosed = 1;
            }
            if (j < len && s[j] == '/') {
                closing = 1;
                j++;
            }
            if (j >= len || !(g_ascii_isalpha(s[j]) || s[j] == '!' || s[j] == '?')) {
                h_char(&o, "<", 1);      /* a lone '<' is text */
                i++;
                continue;
            }
            while (j < len && (g_ascii_isalnum(s[j]) || s[j] == '!' || s[j] == '?' || s[j] == '-')) {
                if (nl < sizeof(name) - 1) {
                    name[nl++] = s[j];
                }
                j++;
            }
            name[nl] = '\0';
            for (; j < len; j++) {           /* the end of the tag, quoted values skipped */
                if (quote) {
                    if (s[j] == quote) {
                        quote = 0;
                    }
                }
                else if (s[j] == '"' || s[j] == '\'') {
                    quote = s[j];
                }
                else if (s[j] == '>') {
                    break;
                }
            }
            if (j >= len) {
                break;                       /* a tag unclosed at the end: dropped */
            }
            i = j + 1;
            if (!closing) {
                for (k = 0; k < sizeof(skipped) / sizeof(skipped[0]); k++) {
                    if (g_ascii_strcasecmp(name, skipped[k]) == 0) {
                        char close[16];
                        apr_size_t end;

                        if (no_close[k] && i >= no_close[k] - 1) {
                            break;
                        }
                        apr_snprintf(close, sizeof(close), "</%s", skipped[k]);
                        end = h_find(s, len, i, close);
                        if (end >= len) {
                            no_close[k] = i + 1;
                            break;
                        }
                        i = end;             /* the closing tag is read as a tag next */
                        break;
                    }
                }
            }
            if (g_ascii_strcasecmp(name, "pre") == 0) {
                pre = closing ? (pre ? pre - 1 : 0) : pre + 1;
            }
            if (g_ascii_strcasecmp(name, "td") == 0 || g_ascii_strcasecmp(name, "th") == 0) {
                if (!closing) {
                    o.space = 1;
                }
            }
            else if (g_ascii_strcasecmp(name, "li") == 0 && !closing) {
                h_break(&o, 1);
                h_char(&o, "- ", 2);
            }
            else if (g_ascii_strcasecmp(name, "br") == 0) {
                h_break(&o, 0);              /* each <br> is a line break, two at most */
                if (o.n && o.newlines < 2) {
                    o.out[o.n++] = '\n';
                    o.newlines++;
                }
            }
            else if ((k = (apr_size_t)h_block(name)) != 0) {
                h_break(&o, (int)k);
            }
            continue;
        }
        if (ch == '&') {
            char buf[8];
            apr_size_t blen = 0, used = h_entity(s, len, i, buf, &blen);

            if (used) {
                if (blen == 1 && buf[0] == ' ' && !pre) {
                    o.space = 1;
                }
                else if (blen) {
                    h_char(&o, buf, blen);
                }
                i += used;
                continue;
            }
        }
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f') {
            if (pre) {
                if (ch == '\n') {
                    o.out[o.n++] = '\n';
                    o.newlines = o.newlines < 2 ? o.newlines + 1 : 2;
                    o.space = 0;
                }
                else if (ch != '\r') {
                    h_char(&o, " ", 1);
                }
            }
            else {
                o.space = 1;
            }
            i++;
            continue;
        }
        h_char(&o, s + i, 1);
        i++;
    }
    while (o.n && (o.out[o.n - 1] == '\n' || o.out[o.n - 1] == ' ')) {
        o.n--;
    }
    o.out[o.n] = '\0';
    return o.out;
}
