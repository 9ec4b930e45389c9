/* gs_sync_incremental.c -- the incremental sync from the history cursor (see gs_sync.h). */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gs_json.h"
#include "gs_log.h"
#include "gs_sync.h"
#include "gs_sync_int.h"

typedef struct {
    const char *id;
    const char *record_id;              /* the last record that changed it: its new historyId */
    apr_array_header_t *add, *remove;   /* net label changes: present at the end = in add */
    int fetched, deleted;
} msg_plan_t;

static int find_label(apr_array_header_t *a, const char *l)
{
    int i;

    for (i = 0; i < a->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(a, i, const char *), l)) {
            return i;
        }
    }
    return -1;
}

static void drop_label(apr_array_header_t *a, const char *l)
{
    int i = find_label(a, l);

    if (i >= 0) {
        memmove(a->elts + (apr_size_t)i * sizeof(char *),
                a->elts + (apr_size_t)(i + 1) * sizeof(char *),
                (apr_size_t)(a->nelts - i - 1) * sizeof(char *));
        a->nelts--;
    }
}

static msg_plan_t *plan_for(apr_pool_t *p, apr_hash_t *plans, apr_array_header_t *order,
                            const char *id)
{
    msg_plan_t *m = apr_hash_get(plans, id, APR_HASH_KEY_STRING);

    if (!m) {
        m = apr_pcalloc(p, sizeof *m);
        m->id = id;
        m->add = apr_array_make(p, 2, sizeof(const char *));
        m->remove = apr_array_make(p, 2, sizeof(const char *));
        apr_hash_set(plans, id, APR_HASH_KEY_STRING, m);
        APR_ARRAY_PUSH(order, msg_plan_t *) = m;
    }
    return m;
}

static json_object *labels_json(apr_array_header_t *a)
{
    json_object *arr = json_object_new_array();
    int i;

    for (i = 0; i < a->nelts; i++) {
        json_object_array_add(arr, json_object_new_string(APR_ARRAY_IDX(a, i, const char *)));
    }
    return arr;
}

/* The page's transaction: deletions, label changes and the cursor, together. */
typedef struct {
    apr_array_header_t *dels;   /* of const char * */
    const char *ops;            /* the relabel operations as JSON, NULL when none */
    const char *cursor;         /* the page's last record, or NULL */
    int deleted, changed;
} page_txn_t;

static apr_status_t apply_page_txn(gs_sync_t *s, apr_pool_t *p, void *baton)
{
    page_txn_t *txn = baton;
    gs_task_t *t = s->task;
    apr_status_t rv = gs_task_hold(t, p);

    txn->deleted = txn->changed = 0;
    if (rv == APR_SUCCESS) {
        rv = gs_store_delete(t, p, (const char *const *)txn->dels->elts, txn->dels->nelts,
                             s->conf->deletions, &txn->deleted);
    }
    if (rv == APR_SUCCESS && txn->ops) {
        rv = gs_store_relabel(t, p, txn->ops, &txn->changed);
    }
    if (rv == APR_SUCCESS && txn->cursor) {
        rv = gs_store_advance_cursor(t, p, txn->cursor);
    }
    return rv;
}

/* Applies one history page: fetch what was added, then delete and relabel in one transaction
 * that also moves the cursor to the page's last record. */
static apr_status_t apply_history_page(gs_sync_t *s, apr_pool_t *p, const gs_history_page_t *page)
{
    page_txn_t txn;
    gs_sync_store_ctx_t ctx = { s, NULL, NULL, 0 };
    apr_hash_t *plans = apr_hash_make(p);
    apr_array_header_t *order = apr_array_make(p, 16, sizeof(msg_plan_t *));
    apr_array_header_t *fetch = apr_array_make(p, 16, sizeof(const char *));
    apr_array_header_t *dels = apr_array_make(p, 16, sizeof(const char *));
    json_object *ops = gs_json_own(p, json_object_new_array());
    int i, j, nops = 0;
    apr_status_t rv;

    for (i = 0; i < page->changes->nelts; i++) {
        const gs_hist_change_t *c = &APR_ARRAY_IDX(page->changes, i, gs_hist_change_t);
        msg_plan_t *m = plan_for(p, plans, order, c->msg_id);

        m->record_id = c->record_id;
        /* net changes, Gmail's order kept: a removal cancels an earlier addition; an addition
         * after a removal keeps both (the label leaves its place and comes back at the end) */
        for (j = 0; j < c->labels->nelts; j++) {
            const char *l = APR_ARRAY_IDX(c->labels, j, const char *);
            apr_array_header_t *to = c->kind == GS_HIST_LABELS_ADDED ? m->add : m->remove;
            if (c->kind == GS_HIST_LABELS_REMOVED) {
                drop_label(m->add, l);
            }
            if (find_label(to, l) < 0) {
                APR_ARRAY_PUSH(to, const char *) = l;
            }
        }
        if (c->kind == GS_HIST_ADDED) {
            m->fetched = 1;
        }
        else if (c->kind == GS_HIST_DELETED) {
            m->deleted = 1;
        }
    }
    for (i = 0; i < order->nelts; i++) {
        msg_plan_t *m = APR_ARRAY_IDX(order, i, msg_plan_t *);
        if (m->deleted) {
            APR_ARRAY_PUSH(dels, const char *) = m->id;
        }
        else if (m->fetched) {
            /* fetched now, it carries every later label change already */
            APR_ARRAY_PUSH(fetch, const char *) = m->id;
        }
        else if (m->add->nelts || m->remove->nelts) {
            json_object *op = json_object_new_object();
            gs_json_set_string(op, "id", m->id);
            gs_json_set_string(op, "history_id", m->record_id);
            gs_json_set_object(op, "add", labels_json(m->add));
            gs_json_set_object(op, "remove", labels_json(m->remove));
            json_object_array_add(ops, op);
            nops++;
        }
    }
    if ((rv = gs_sync_fetch(s, p, (const char *const *)fetch->elts, fetch->nelts, &ctx))
        != APR_SUCCESS) {
        return rv;
    }
    txn.dels = dels;
    txn.ops = nops ? gs_json_to_string(p, ops) : NULL;
    txn.cursor = page->last_record_id;
    if ((rv = gs_sync_transaction(s, p, apply_page_txn, &txn)) == APR_SUCCESS) {
        s->deleted += txn.deleted;
        s->relabeled += txn.changed;
    }
    return rv;
}

/* The incremental sync's end: the cursor moves to the first history page's historyId. */
static apr_status_t record_incremental_end(gs_sync_t *s, apr_pool_t *p, void *history_id)
{
    return gs_store_advance_cursor(s->task, p, history_id);
}

apr_status_t gs_sync_incremental(gs_sync_t *s, apr_pool_t *p)
{
    gs_task_t *t = s->task;
    const char *token = NULL, *first_history_id = NULL;
    apr_int64_t total = 0;
    apr_status_t rv;

    s->mode = "incremental";
    gs_log_error(GS_LOG_INFO, p, "event=sync.mode task=%s mode=incremental reason=%s "
                 "start_history_id=%s", t->task_id, s->reason, s->account.history_id);
    if ((rv = gs_task_progress(t, "incremental", 0, 0)) != APR_SUCCESS) {
        return rv;
    }
    do {
        apr_pool_t *pp;
        gs_history_page_t page;

        if ((rv = apr_pool_create(&pp, p)) != APR_SUCCESS) {
            return rv;
        }
        rv = gs_gmail_list_history(s->gm, pp, s->account.history_id, token, &page);
        if (rv == APR_SUCCESS) {
            if (!first_history_id) {
                first_history_id = apr_pstrdup(p, page.history_id);
            }
            s->pages++;
            total += page.changes->nelts;
            rv = gs_task_progress(t, NULL, total, 0);
        }
        if (rv == APR_SUCCESS) {
            rv = apply_history_page(s, pp, &page);
        }
        if (rv == APR_SUCCESS) {
            rv = gs_task_progress(t, NULL, total, page.changes->nelts);
            token = page.next_token ? apr_pstrdup(p, page.next_token) : NULL;
        }
        apr_pool_destroy(pp);
    } while (rv == APR_SUCCESS && token);
    /* GmailSyncContent full: messages stored without their content (under GmailSyncContent
     * metadata, or by an older release) get it now; complete ones are never fetched again */
    if (rv == APR_SUCCESS) {
        rv = gs_sync_backfill(s, p, NULL, NULL, 1);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }

    return gs_sync_succeed(s, p, record_incremental_end, (void *)first_history_id);
}

