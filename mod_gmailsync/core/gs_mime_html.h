/* gs_mime_html.h -- decoded HTML as text, for search and previews (GLib, no GMime). */
#ifndef GS_MIME_HTML_H
#define GS_MIME_HTML_H

#include <apr_pools.h>

/* A text rendering of decoded HTML (UTF-8) for search and previews: tags dropped, script,
 * style, head and comments dropped, block elements as line breaks, character references
 * decoded, white space collapsed. Linear in len; the result is at most len + 1 bytes. */
char *gs_mime_html_to_text(apr_pool_t *p, const char *html, apr_size_t len);

#endif
