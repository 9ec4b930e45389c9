/* gs_accept.h -- the Accept request header (RFC 9110 section 12.5.1), for choosing between the
 * task JSON and its Server-Sent Events stream.
 *
 * Accept is a comma-separated list of media ranges with parameters: type/subtype, or the
 * wildcards type/STAR and STAR/STAR (written so here because the real spelling would end this
 * comment). q=0..1, at most three decimals, weighs each range; 1 when absent. Types, subtypes and
 * parameter names compare case-insensitively. An element that does not parse, or whose q is not
 * a valid qvalue, is ignored as if it were absent rather than spoiling the whole header.
 */
#ifndef GS_ACCEPT_H
#define GS_ACCEPT_H

/* The weight, 0..1000 (q times 1000), that `accept` gives to type/subtype: that of the most
 * specific matching range (type/subtype, then type/STAR, then STAR/STAR; the highest q when
 * equally specific ranges are listed more than once). With exact_only, only type/subtype ranges
 * count. -1 when no range matches, and for a NULL header. */
int gs_accept_weight(const char *accept, const char *type, const char *subtype, int exact_only);

/* The rule for GET {prefix}/progress/{id}: the event stream is sent only when Accept names
 * text/event-stream itself (wildcards never select it) with q > 0, and application/json, by
 * name or through a wildcard, does not get a higher q. Everything else, no Accept included,
 * gets the task JSON. */
int gs_accept_wants_event_stream(const char *accept);

#endif /* GS_ACCEPT_H */
