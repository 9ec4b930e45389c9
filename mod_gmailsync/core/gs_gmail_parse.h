/* gs_gmail_parse.h -- reading Gmail's answers: errors, profile, list and history pages,
 * and messages turned into the rows we store.
 *
 * Pure: JSON in, C structures and row JSON out, everything from the given pool. Ids and
 * history ids are checked to be what Gmail sends (hex ids, decimal history ids) before they
 * reach SQL casts; strings are made valid UTF-8 without NUL so PostgreSQL takes them.
 */
#ifndef GS_GMAIL_PARSE_H
#define GS_GMAIL_PARSE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <json-c/json.h>

/* How a Gmail answer (or batch part) is to be treated. */
typedef enum {
    GS_GM_OK = 0,
    GS_GM_NOT_FOUND,      /* 404: deleted (messages.get) or too old (history.list) */
    GS_GM_UNAUTHORIZED,   /* 401: refresh the token once, then give up */
    GS_GM_RATE_LIMITED,   /* 429, 403 rateLimitExceeded/userRateLimitExceeded...: back off */
    GS_GM_TRANSIENT,      /* 5xx, 408, transport errors, malformed answers: back off */
    GS_GM_FORBIDDEN,      /* other 403: access was taken away */
    GS_GM_BAD_REQUEST     /* other 4xx: our bug or an unexpected answer; not retried */
} gs_gm_class_t;

/* Classifies an HTTP status and error body; *reason gets Gmail's error reason (or status
 * text) for messages and logs, cleaned of control characters. */
gs_gm_class_t gs_gmail_classify(apr_pool_t *p, int status, const char *body, apr_size_t len,
                                const char **reason);

/* Gmail's per-user lockout: the time in an error body's message ("User-rate limit exceeded.  Retry
 * after 2026-12-06T20:15:00.123Z"; error.message, else errors[0].message), or 0 when it names
 * none. See gs_parse_retry_after_text (gs_quota.h). */
apr_time_t gs_gmail_lockout_until(apr_pool_t *p, const char *body, apr_size_t len);

typedef struct {
    apr_int64_t messages_total;
    const char *history_id;
} gs_profile_t;

typedef struct {
    apr_array_header_t *ids;   /* const char *: message ids of the page, duplicates removed */
    const char *next_token;    /* NULL on the last page */
} gs_list_page_t;

typedef enum {
    GS_HIST_ADDED, GS_HIST_DELETED, GS_HIST_LABELS_ADDED, GS_HIST_LABELS_REMOVED
} gs_hist_kind_t;

typedef struct {
    gs_hist_kind_t kind;
    const char *record_id;        /* the history record it came in (the message's new historyId) */
    const char *msg_id;
    apr_array_header_t *labels;   /* const char *: the labels added or removed */
} gs_hist_change_t;

typedef struct {
    apr_array_header_t *changes;  /* gs_hist_change_t, in the order Gmail listed them */
    int records;                  /* history records on the page */
    const char *last_record_id;   /* id of the last record, or NULL on an empty page */
    const char *history_id;       /* the mailbox's current historyId at the time of the answer */
    const char *next_token;
} gs_history_page_t;

/* Each returns APR_EINVAL with *err when the document lacks what Gmail always sends. */
apr_status_t gs_gmail_parse_profile(json_object *doc, gs_profile_t *out, const char **err);
apr_status_t gs_gmail_parse_list(apr_pool_t *p, json_object *doc, gs_list_page_t *out,
                                 const char **err);
apr_status_t gs_gmail_parse_history(apr_pool_t *p, json_object *doc, gs_history_page_t *out,
                                    const char **err);

/* users.labels.list into the rows of gmailsync.labels: a JSON array (text, from p) of
 * {"id","name","type","text_color","background_color","message_list_visibility",
 * "label_list_visibility"}, *count of them. Ids are checked like message ids (Gmail's are
 * INBOX, CATEGORY_SOCIAL, Label_12); names are cleaned to UTF-8 without NUL and cut at 1,024
 * bytes; a type other than "system" is "user"; colours are "#rrggbb" or null. A label without a
 * valid id or a name is left out (counted in *skipped). APR_EINVAL with *err when the answer has
 * no "labels" array (an account with no labels still has the system ones). */
apr_status_t gs_gmail_parse_labels(apr_pool_t *p, json_object *doc, const char **rows_json,
                                   int *count, int *skipped, const char **err);

/* Turns a message resource (format=metadata) into a row object for the messages upsert:
 * {"id","thread_id","history_id","internal_date","labels","subject","from","to","snippet",
 * "size"}. The result is a new json-c object owned by the caller (add it to a pool-owned array).
 * NULL with *err when the message has no valid id. */
json_object *gs_gmail_message_row(apr_pool_t *p, json_object *msg, const char **err);

/* Is s a Gmail id (1..64 hex-ish characters) / a decimal history id (1..20 digits)? */
int gs_gmail_valid_id(const char *s);
int gs_gmail_valid_history_id(const char *s);

/* s as valid UTF-8 (invalid sequences become U+FFFD), cut at max bytes; s itself if it is
 * already clean. */
const char *gs_utf8_clean(apr_pool_t *p, const char *s, apr_size_t max);

#endif /* GS_GMAIL_PARSE_H */
