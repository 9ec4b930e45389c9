/* gs_sync_repair.c -- the repair after Gmail's history expired (issue 23; see gs_sync.h). */
#include <stdlib.h>
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gs_json.h"
#include "gs_log.h"
#include "gs_sync.h"
#include "gs_sync_int.h"

/* Messages whose label sets are written per transaction. */
#define REPAIR_CHUNK 500

/* A listed message and the labels Gmail's per-label listings gave it. */
typedef struct {
    const char *id;
    apr_array_header_t *labels;   /* const char *; NULL: none (archived and read) */
} repair_msg_t;

typedef struct {
    apr_pool_t *pool;             /* the ids and label sets of the whole mailbox, no bodies */
    apr_hash_t *stored;           /* id -> its label key (sorted_key), the rows stored at first */
    apr_hash_t *msgs;             /* id -> repair_msg_t, what Gmail listed */
    apr_array_header_t *order;    /* repair_msg_t *, as listed */
} repair_t;

/* Stored rows read per statement. */
#define STORED_PAGE 5000

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A label set as one string: the ids sorted bytewise, joined by "," (ids hold no comma). */
static const char *sorted_key(apr_pool_t *p, const apr_array_header_t *labels)
{
    const char **sorted;
    const char *key = "";
    int i;

    if (!labels || labels->nelts == 0) {
        return "";
    }
    sorted = apr_pmemdup(p, labels->elts, sizeof(const char *) * (apr_size_t)labels->nelts);
    qsort(sorted, (apr_size_t)labels->nelts, sizeof(const char *), cmp_str);
    for (i = 0; i < labels->nelts; i++) {
        key = i ? apr_pstrcat(p, key, ",", sorted[i], NULL) : sorted[i];
    }
    return key;
}

/* What is stored, read once: ids and label sets of the rows not deleted. */
static apr_status_t read_stored(gs_sync_t *s, apr_pool_t *p, repair_t *r)
{
    const char *after = "";
    apr_status_t rv;
    int n;

    do {
        gs_db_rows_t *rows;
        apr_pool_t *pp;
        int i;

        if ((rv = apr_pool_create(&pp, p)) != APR_SUCCESS) {
            return rv;
        }
        rv = gs_store_repair_stored(s->task, pp, after, STORED_PAGE, &rows);
        n = rv == APR_SUCCESS ? rows->nrows : 0;
        for (i = 0; i < n; i++) {
            const char *id = gs_db_cell(rows, i, 0), *key = gs_db_cell(rows, i, 1);
            if (id && *id) {
                id = apr_pstrdup(r->pool, id);
                apr_hash_set(r->stored, id, APR_HASH_KEY_STRING,
                             apr_pstrdup(r->pool, key ? key : ""));
                after = id;
            }
        }
        apr_pool_destroy(pp);
    } while (rv == APR_SUCCESS && n == STORED_PAGE);
    return rv;
}

/* The label ids of labels.list (gs_gmail_labels' rows), and the same sorted and joined (to see
 * whether the list changed during the repair). */
static apr_status_t label_ids(gs_sync_t *s, apr_pool_t *p, apr_array_header_t **ids,
                              const char **key)
{
    const char *rows_json, *err = NULL;
    json_object *doc;
    apr_status_t rv;
    int count, i, n;

    if ((rv = gs_gmail_labels(s->gm, p, &rows_json, &count)) != APR_SUCCESS) {
        return rv;
    }
    doc = gs_json_parse(p, rows_json, strlen(rows_json), &err);
    if (!doc || !json_object_is_type(doc, json_type_array)) {
        return gs_fail(s->failure, p, GS_ERR_INTERNAL, "the label list did not parse: %s",
                       err ? err : "not an array");
    }
    n = (int)json_object_array_length(doc);
    *ids = apr_array_make(p, n > 0 ? n : 1, sizeof(const char *));
    for (i = 0; i < n; i++) {
        json_object *id;
        if (json_object_object_get_ex(json_object_array_get_idx(doc, (size_t)i), "id", &id)
            && json_object_is_type(id, json_type_string)) {
            APR_ARRAY_PUSH(*ids, const char *) = apr_pstrdup(p, json_object_get_string(id));
        }
    }
    *key = sorted_key(p, *ids);
    return APR_SUCCESS;
}

/* Every id, spam and trash included: those not stored are fetched (content only for them). */
static apr_status_t list_all(gs_sync_t *s, apr_pool_t *p, repair_t *r)
{
    gs_task_t *t = s->task;
    gs_sync_store_ctx_t ctx = { s, NULL, NULL, 1 };
    const char *token = NULL;
    apr_status_t rv;

    ctx.gen = t->task_id;
    ctx.seen_by = t->task_id;
    do {
        apr_pool_t *pp;
        gs_list_page_t page;

        if ((rv = apr_pool_create(&pp, p)) != APR_SUCCESS) {
            return rv;
        }
        rv = gs_gmail_list_label(s->gm, pp, NULL, token, &page);
        if (rv == GS_ENOTFOUND) {
            rv = gs_fail(s->failure, pp, GS_ERR_INTERNAL, "Gmail answered 404 to messages.list");
        }
        if (rv == APR_SUCCESS) {
            int i;

            for (i = 0; i < page.ids->nelts; i++) {
                const char *id = APR_ARRAY_IDX(page.ids, i, const char *);
                if (!apr_hash_get(r->msgs, id, APR_HASH_KEY_STRING)) {
                    repair_msg_t *m = apr_pcalloc(r->pool, sizeof *m);
                    m->id = apr_pstrdup(r->pool, id);
                    apr_hash_set(r->msgs, m->id, APR_HASH_KEY_STRING, m);
                    APR_ARRAY_PUSH(r->order, repair_msg_t *) = m;
                }
            }
            rv = gs_sync_fetch_page(s, pp, &page, r->stored, &ctx);
            token = page.next_token ? apr_pstrdup(p, page.next_token) : NULL;
        }
        apr_pool_destroy(pp);
    } while (rv == APR_SUCCESS && token);
    return rv;
}

/* A Gmail failure that asking again will not cure and that does not stop the whole sync
 * (Gmail refused the request itself: a label gone, an argument it no longer takes): the repair
 * cannot be exact, a full refetch can. Rate limits, outages, a revoked grant fail the task. */
static int inexact_failure(gs_sync_t *s, apr_status_t rv)
{
    if (rv == GS_ENOTFOUND) {
        return 1;
    }
    if (rv == GS_EFAILED && s->failure->code && !strcmp(s->failure->code, GS_ERR_INTERNAL)) {
        s->failure->code = NULL;
        s->failure->message = NULL;
        return 1;
    }
    return 0;
}

/* Each label's messages (messages.list?labelIds=X&includeSpamTrash=true), into the listed
 * messages' label sets. *inexact when a listing failed or the label list changed meanwhile. */
static apr_status_t list_labels(gs_sync_t *s, apr_pool_t *p, repair_t *r, const char **inexact)
{
    apr_array_header_t *labels, *again;
    const char *key, *key_again;
    apr_status_t rv;
    int l;

    if ((rv = label_ids(s, r->pool, &labels, &key)) != APR_SUCCESS) {
        return rv;
    }
    for (l = 0; l < labels->nelts; l++) {
        const char *label = APR_ARRAY_IDX(labels, l, const char *);
        const char *token = NULL;

        do {
            apr_pool_t *pp;
            gs_list_page_t page;
            int i;

            if ((rv = apr_pool_create(&pp, p)) != APR_SUCCESS) {
                return rv;
            }
            rv = gs_gmail_list_label(s->gm, pp, label, token, &page);
            if (rv != APR_SUCCESS) {
                apr_pool_destroy(pp);
                if (inexact_failure(s, rv)) {
                    *inexact = "label_listing_failed";
                    gs_log_error(GS_LOG_NOTICE, p, "event=sync.repair_label_failed task=%s "
                                 "label=%s", s->task->task_id, gs_log_value(p, label));
                    return APR_SUCCESS;
                }
                return rv;
            }
            s->pages++;
            for (i = 0; i < page.ids->nelts; i++) {
                repair_msg_t *m = apr_hash_get(r->msgs, APR_ARRAY_IDX(page.ids, i, const char *),
                                               APR_HASH_KEY_STRING);
                /* an id listed by no listing above came after it: the next sync replays it */
                if (m && !(m->labels && m->labels->nelts
                           && APR_ARRAY_IDX(m->labels, m->labels->nelts - 1, const char *)
                              == label)) {
                    if (!m->labels) {
                        m->labels = apr_array_make(r->pool, 4, sizeof(const char *));
                    }
                    APR_ARRAY_PUSH(m->labels, const char *) = label;
                }
            }
            token = page.next_token ? apr_pstrdup(p, page.next_token) : NULL;
            apr_pool_destroy(pp);
        } while (token);
    }
    /* a label created or deleted during the listings: what it covered is not known whole */
    if ((rv = label_ids(s, p, &again, &key_again)) != APR_SUCCESS) {
        return rv;
    }
    if (strcmp(key, key_again)) {
        *inexact = "labels_changed";
    }
    return APR_SUCCESS;
}

/* One chunk's label sets, written in one transaction. */
typedef struct {
    const char *rows;
    const char **ids;
    int n, changed;
} labels_txn_t;

static apr_status_t labels_txn(gs_sync_t *s, apr_pool_t *p, void *baton)
{
    labels_txn_t *txn = baton;
    apr_status_t rv = gs_task_hold(s->task, p);

    txn->changed = 0;
    return rv == APR_SUCCESS ? gs_store_set_labels(s->task, p, txn->rows,
                                                   (const char *const *)txn->ids, txn->n,
                                                   &txn->changed)
                             : rv;
}

/* The label sets that differ from the stored ones (and those of the messages fetched now),
 * REPAIR_CHUNK per transaction; the statement writes only the rows that still differ. */
static apr_status_t write_labels(gs_sync_t *s, apr_pool_t *p, repair_t *r)
{
    apr_array_header_t *differ = apr_array_make(p, 64, sizeof(repair_msg_t *));
    apr_status_t rv = APR_SUCCESS;
    int from, i, j;

    for (i = 0; i < r->order->nelts; i++) {
        repair_msg_t *m = APR_ARRAY_IDX(r->order, i, repair_msg_t *);
        const char *have = apr_hash_get(r->stored, m->id, APR_HASH_KEY_STRING);
        if (!have || strcmp(have, sorted_key(p, m->labels))) {
            APR_ARRAY_PUSH(differ, repair_msg_t *) = m;
        }
    }
    for (from = 0; rv == APR_SUCCESS && from < differ->nelts; from += REPAIR_CHUNK) {
        int to = from + REPAIR_CHUNK < differ->nelts ? from + REPAIR_CHUNK : differ->nelts;
        json_object *rows;
        labels_txn_t txn;
        apr_pool_t *pp;

        if ((rv = apr_pool_create(&pp, p)) != APR_SUCCESS) {
            return rv;
        }
        rows = gs_json_own(pp, json_object_new_array());
        txn.ids = apr_palloc(pp, sizeof(char *) * (apr_size_t)(to - from));
        txn.n = to - from;
        for (i = from; i < to; i++) {
            const repair_msg_t *m = APR_ARRAY_IDX(differ, i, repair_msg_t *);
            txn.ids[i - from] = m->id;
            json_object *row = json_object_new_object(), *ls = json_object_new_array();
            for (j = 0; m->labels && j < m->labels->nelts; j++) {
                json_object_array_add(ls, json_object_new_string(
                                              APR_ARRAY_IDX(m->labels, j, const char *)));
            }
            gs_json_set_string(row, "id", m->id);
            gs_json_set_object(row, "labels", ls);
            json_object_array_add(rows, row);
        }
        txn.rows = gs_json_to_string(pp, rows);
        rv = gs_sync_transaction(s, pp, labels_txn, &txn);
        if (rv == APR_SUCCESS) {
            s->relabeled += txn.changed;
            rv = gs_task_progress(s->task, NULL, s->task->total, to - from);
        }
        apr_pool_destroy(pp);
    }
    /* the others agreed already: each is one processed too */
    return rv == APR_SUCCESS ? gs_task_progress(s->task, NULL, s->task->total,
                                                r->order->nelts - differ->nelts) : rv;
}

/* The repair's end: the rows stored at first that Gmail did not list. */
typedef struct {
    const char *cursor;
    const char **gone;
    int ngone;
} repair_end_t;

/* The repair's end: the cursor taken before the listings, and the rows they did not list
 * removed (or marked, GmailSyncDeletions keep), as a full sync ends. */
static apr_status_t record_repair_end(gs_sync_t *s, apr_pool_t *p, void *baton)
{
    repair_end_t *end = baton;
    int removed = 0;
    apr_status_t rv = gs_store_repair_finish(s->task, p, end->cursor, end->gone, end->ngone,
                                             s->conf->deletions, &removed);

    s->removed = removed;
    return rv;
}

apr_status_t gs_sync_repair(gs_sync_t *s, apr_pool_t *p, const char **inexact)
{
    gs_task_t *t = s->task;
    gs_profile_t profile;
    const char *cursor;
    repair_t r;
    repair_end_t end;
    apr_time_t at[4];
    apr_int64_t pages = 0;
    apr_status_t rv;

    *inexact = NULL;
    s->mode = "repair";
    /* the cursor first: what changes during the repair is replayed by the next sync */
    if ((rv = gs_gmail_profile(s->gm, p, &profile)) != APR_SUCCESS) {
        return rv;
    }
    cursor = apr_pstrdup(p, profile.history_id);
    gs_log_error(GS_LOG_INFO, p, "event=sync.mode task=%s mode=repair reason=%s "
                 "messages_total=%" APR_INT64_T_FMT " start_history_id=%s", t->task_id, s->reason,
                 profile.messages_total, cursor);
    /* the task's mode stays "full" (the schema knows full and incremental); its total counts
     * each message twice: listed, then its labels written */
    if ((rv = gs_task_progress(t, "full", 2 * profile.messages_total, 0)) != APR_SUCCESS
        || (rv = apr_pool_create(&r.pool, p)) != APR_SUCCESS) {
        return rv;
    }
    r.stored = apr_hash_make(r.pool);
    r.msgs = apr_hash_make(r.pool);
    r.order = apr_array_make(r.pool, 1024, sizeof(repair_msg_t *));
    at[0] = apr_time_now();
    rv = read_stored(s, p, &r);
    if (rv == APR_SUCCESS) {
        rv = list_all(s, p, &r);
    }
    at[1] = apr_time_now();
    if (rv == APR_SUCCESS) {
        pages = s->pages;
        rv = list_labels(s, p, &r, inexact);
        pages = s->pages - pages;
    }
    at[2] = apr_time_now();
    if (rv == APR_SUCCESS && !*inexact) {
        rv = write_labels(s, p, &r);
    }
    at[3] = apr_time_now();
    if (rv == APR_SUCCESS) {
        gs_log_error(GS_LOG_INFO, p, "event=sync.repair task=%s listed=%d label_pages=%"
                     APR_INT64_T_FMT " relabeled=%" APR_INT64_T_FMT " list_ms=%" APR_TIME_T_FMT
                     " labels_ms=%" APR_TIME_T_FMT " write_ms=%" APR_TIME_T_FMT "%s%s",
                     t->task_id, r.order->nelts, pages, s->relabeled,
                     apr_time_as_msec(at[1] - at[0]), apr_time_as_msec(at[2] - at[1]),
                     apr_time_as_msec(at[3] - at[2]), *inexact ? " inexact=" : "",
                     *inexact ? *inexact : "");
    }
    if (rv == APR_SUCCESS && !*inexact) {
        apr_hash_index_t *hi;

        end.cursor = cursor;
        end.gone = apr_palloc(p, sizeof(char *) * (apr_size_t)(apr_hash_count(r.stored) + 1));
        end.ngone = 0;
        for (hi = apr_hash_first(p, r.stored); hi; hi = apr_hash_next(hi)) {
            const void *id;
            apr_hash_this(hi, &id, NULL, NULL);
            if (!apr_hash_get(r.msgs, id, APR_HASH_KEY_STRING)) {
                end.gone[end.ngone++] = apr_pstrdup(p, id);
            }
        }
    }
    apr_pool_destroy(r.pool);
    if (rv != APR_SUCCESS || *inexact) {
        return rv;
    }
    /* GmailSyncContent full: listed rows stored without their content get it */
    if ((rv = gs_sync_backfill(s, p, t->task_id, t->task_id, 0)) != APR_SUCCESS) {
        return rv;
    }
    return gs_sync_succeed(s, p, record_repair_end, &end);
}
