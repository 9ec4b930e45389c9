/* gs_gmail.h -- the Gmail API client of the sync engine: the calls it needs, each with the
 * access token refreshed when due, the quota bucket respected, and transient failures retried
 * with capped exponential backoff and jitter (honouring Retry-After) until the retry budget runs
 * out: a time without any successful answer (retry_budget), optionally also a count of
 * consecutive failures of one request (retries). Then the task fails: quota_exhausted when the
 * last answers were rate limits, gmail_unavailable otherwise; a revoked grant fails it at once
 * with auth_revoked. Every wait is announced through the wait callback, and so is the first
 * success after one.
 *
 * Every function returns APR_SUCCESS, GS_EFAILED (the failure record is set), GS_ENOTFOUND
 * where documented, or whatever the tick returned (GS_ELOST) while waiting.
 */
#ifndef GS_GMAIL_H
#define GS_GMAIL_H

#include <apr_pools.h>

#include "gs_board.h"
#include <json-c/json.h>

#include "gs_error.h"
#include "gs_gmail_parse.h"
#include "gs_http.h"
#include "gs_oauth.h"
#include "gs_pace.h"
#include "gs_quota.h"
#include "gs_worker_conf.h"

/* A new access token was obtained: persist it (the cache in gmailsync.accounts). */
typedef apr_status_t gs_gmail_token_cb(void *baton, apr_pool_t *p, const char *access_token,
                                       long expires_in, const char *new_refresh_token);

/* What messages.get is asked for: format=metadata (Subject, From, To, Date) or format=raw (the
 * whole RFC 822 message, issue 22). Both cost 5 quota units. */
typedef enum { GS_FETCH_METADATA = 0, GS_FETCH_RAW = 1 } gs_fetch_format_t;

/* One message fetched with format=raw: its bytes, base64url-decoded (apr_base64), in a pool of
 * their own (a subpool of the store's pool). */
typedef struct {
    const unsigned char *bytes;
    apr_size_t len;
} gs_gmail_raw_t;

/* Fetched messages: `rows` is a JSON array of gs_gmail_message_row objects (owned by p), `gone`
 * the number of ids that no longer exist (404). With format=raw, `raws` holds each row's
 * message (gs_gmail_raw_t, same order; the rows have no subject, from or to: the store reads
 * them from the message); NULL with format=metadata. Called with the answers of one or more
 * batches (unpaced, once per round; paced, while the quota holds the next round back), each id
 * once, and for all of them before gs_gmail_fetch returns. */
typedef apr_status_t gs_gmail_store_cb(void *baton, apr_pool_t *p, json_object *rows,
                                       const apr_array_header_t *raws, int nrows, int gone);

/* A retry wait begins (reason "rate_limited" or "unavailable", attempt: retries since the last
 * successful answer), or, with reason NULL, a call succeeded after one. */
typedef apr_status_t gs_gmail_wait_cb(void *baton, const char *reason, apr_interval_time_t wait,
                                      int attempt);

/* The parts in flight changed to `level` (after "too many concurrent requests", or growing
 * back): remember it for the account's next sync. */
typedef apr_status_t gs_gmail_flight_cb(void *baton, apr_pool_t *p, int level);

typedef struct {
    gs_http_t *http;
    gs_oauth_t *oauth;
    gs_failure_t *failure;
    const char *api_base;        /* scheme://host[:port][/prefix] */
    const char *api_path;        /* "/prefix" or "": inner batch requests are paths */
    int batch_size, parallel;
    gs_flight_t flight;          /* batch parts in flight at once (all parallel batches) */
    gs_gmail_flight_cb *on_flight;
    void *flight_baton;
    gs_retry_policy_t policy;
    apr_time_t last_ok;          /* the last successful answer (or the start): the budget's origin */
    int streak;                  /* retries since then */
    int waiting;                 /* a wait was announced and nothing succeeded since */
    gs_gmail_wait_cb *on_wait;
    void *wait_baton;
    gs_pace_t pace;              /* quota units in any one-second window */
    apr_time_t paced_at;         /* the last time a call waited for the quota (0: never) */
    gs_gmail_token_cb *token_saved;
    void *token_baton;
    const char *log_ctx;         /* "task=<uuid>" for log lines */
    apr_uint64_t rand_state;
    /* counters for the final log line and the benchmark */
    apr_int64_t calls, batch_parts, units, retries_done, rate_limited, refreshes;
    apr_int64_t refused_rate, refused_concurrent;    /* batch parts refused, by cause */
    apr_int64_t spooled, spooled_bytes;  /* batch answers spooled to disk (gs_http.h), bytes */
    /* Gmail's answers (top-level requests and batch parts) by class, see gs_board_calls() */
    apr_int64_t answers[GS_BOARD_CALL_CLASSES];
} gs_gmail_t;

/* A successful answer: the retry budget starts again; ends an announced wait. */
apr_status_t gs_gmail_note_ok(gs_gmail_t *gm);

/* Counts one answer of Gmail by its HTTP status (0: no answer, a transport error). */
void gs_gmail_count_answer(gs_gmail_t *gm, int status);

gs_gmail_t *gs_gmail_make(apr_pool_t *p, gs_http_t *http, gs_oauth_t *oauth,
                          const gs_worker_conf_t *conf, gs_failure_t *failure,
                          const char *log_ctx);

/* Sets the parts in flight to `remembered` (> 0, the account's last working level) or to the
 * configured maximum (batch_size x parallel, at most one window of quota). */
void gs_gmail_flight_reset(gs_gmail_t *gm, int remembered);

/* Makes sure a usable access token is in place (refreshing it if due). */
apr_status_t gs_gmail_ensure_token(gs_gmail_t *gm, apr_pool_t *p);

apr_status_t gs_gmail_profile(gs_gmail_t *gm, apr_pool_t *p, gs_profile_t *out);
/* users.labels.list (1 unit): the rows of gmailsync.labels as JSON (gs_gmail_parse_labels). */
apr_status_t gs_gmail_labels(gs_gmail_t *gm, apr_pool_t *p, const char **rows_json, int *count);

/* One page (up to 500) of message ids, spam and trash included; page_token NULL for the first. */
apr_status_t gs_gmail_list_messages(gs_gmail_t *gm, apr_pool_t *p, const char *page_token,
                                    gs_list_page_t *out);
/* The same, of the messages carrying label_id (messages.list?labelIds=, 5 units a page; NULL:
 * every message). GS_ENOTFOUND when Gmail answers 404 (a label deleted meanwhile), nothing
 * recorded as a failure. */
apr_status_t gs_gmail_list_label(gs_gmail_t *gm, apr_pool_t *p, const char *label_id,
                                 const char *page_token, gs_list_page_t *out);

/* One page of history after start_history_id. GS_ENOTFOUND: the id is older than Gmail keeps. */
apr_status_t gs_gmail_list_history(gs_gmail_t *gm, apr_pool_t *p, const char *start_history_id,
                                   const char *page_token, gs_history_page_t *out);

/* Fetches the messages ids[0..n-1] in `format` in batch requests of batch_size, up to
 * `parallel` at once, and hands each batch's results to store. Failed parts (429, 5xx, missing,
 * a raw message that is not base64url) are asked again, alone, after a backoff; 404 parts are
 * counted as gone. */
apr_status_t gs_gmail_fetch(gs_gmail_t *gm, apr_pool_t *p, const char *const *ids, int n,
                            gs_fetch_format_t format, gs_gmail_store_cb *store, void *baton);

/* Gmail's base64url text (RFC 4648 section 5, '=' padding optional) decoded with apr_base64
 * into p. APR_EINVAL when text holds anything else. */
apr_status_t gs_gmail_decode_raw(apr_pool_t *p, const char *text, apr_size_t len,
                                 gs_gmail_raw_t *out);
/* The same decoded where the text is (the bytes are 3/4 of it): out->bytes is text. */
apr_status_t gs_gmail_decode_raw_in_place(char *text, apr_size_t len, gs_gmail_raw_t *out);

/* One part of a format=raw batch answer (the JSON of messages.get) as the worker takes it: its
 * row (gs_gmail_message_row; the caller owns the reference) and its raw message decoded by
 * gs_gmail_decode_raw into `into` (NULL: in place, raw->bytes then points into body). The text
 * is checked where it is (gs_json_validate_member)
 * and the raw field unescaped in place, so body may change; only the rest of the message (a few
 * hundred bytes) is parsed by json-c, in a subpool of p for this call only. APR_EINVAL with
 * *err set (from p; *row NULL) when the part is not a message with a valid id and a base64url
 * "raw" string: a malformed part, asked again. */
apr_status_t gs_gmail_raw_part(apr_pool_t *p, apr_pool_t *into, char *body, apr_size_t len,
                               json_object **row, gs_gmail_raw_t *raw, const char **err);

#endif /* GS_GMAIL_H */
