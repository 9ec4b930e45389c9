/* gs_sync_full.c -- the full sync (see gs_sync.h and sql/002 for the resume rules). */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "gs_json.h"
#include "gs_log.h"
#include "gs_sync.h"
#include "gs_sync_int.h"

/* The full sync's end: the cursor it recorded first, and the rows it did not list removed. */
static apr_status_t record_full_end(gs_sync_t *s, apr_pool_t *p, void *cursor)
{
    int removed = 0;
    apr_status_t rv = gs_store_full_finish(s->task, p, cursor, s->conf->deletions, &removed);

    s->removed = removed;
    return rv;
}

apr_status_t gs_sync_fetch_page(gs_sync_t *s, apr_pool_t *p, const gs_list_page_t *page,
                                apr_hash_t *existing, gs_sync_store_ctx_t *ctx)
{
    const char **to_fetch;
    apr_status_t rv;
    int i, n = 0;

    to_fetch = apr_palloc(p, sizeof(char *) * (apr_size_t)(page->ids->nelts + 1));
    for (i = 0; i < page->ids->nelts; i++) {
        const char *id = APR_ARRAY_IDX(page->ids, i, const char *);
        if (!existing || !apr_hash_get(existing, id, APR_HASH_KEY_STRING)) {
            to_fetch[n++] = id;
        }
    }
    s->skipped += page->ids->nelts - n;
    s->pages++;
    rv = gs_task_progress(s->task, NULL, s->task->total, page->ids->nelts - n);
    return rv == APR_SUCCESS ? gs_sync_fetch(s, p, to_fetch, n, ctx) : rv;
}

apr_status_t gs_sync_full(gs_sync_t *s, apr_pool_t *p)
{
    gs_task_t *t = s->task;
    const gs_account_t *acc = &s->account;
    gs_sync_store_ctx_t ctx = { s, NULL, NULL, 1 };
    gs_profile_t profile;
    const char *cursor, *token = NULL;
    apr_status_t rv;

    s->mode = "full";
    if ((rv = gs_gmail_profile(s->gm, p, &profile)) != APR_SUCCESS) {
        return rv;
    }
    if (acc->pending_task && acc->pending_history_id && acc->pending_fresh) {
        s->resumed = 1;
        ctx.gen = acc->pending_task;
        cursor = acc->pending_history_id;   /* changes since the FIRST attempt get replayed */
    }
    else {
        ctx.gen = t->task_id;
        cursor = apr_pstrdup(p, profile.history_id);
        if ((rv = gs_store_full_begin(t, p, cursor)) != APR_SUCCESS) {
            return rv;
        }
    }
    ctx.seen_by = t->task_id;
    gs_log_error(GS_LOG_INFO, p, "event=sync.mode task=%s mode=full reason=%s resumed=%d "
                 "messages_total=%" APR_INT64_T_FMT, t->task_id, s->reason, s->resumed,
                 profile.messages_total);
    if ((rv = gs_task_progress(t, "full", profile.messages_total, 0)) != APR_SUCCESS) {
        return rv;
    }
    do {
        apr_pool_t *pp;
        gs_list_page_t page;
        apr_hash_t *existing = NULL;

        if ((rv = apr_pool_create(&pp, p)) != APR_SUCCESS) {
            return rv;
        }
        rv = gs_gmail_list_messages(s->gm, pp, token, &page);
        /* only a resumed sync can have stored some of these already */
        if (rv == APR_SUCCESS && s->resumed) {
            rv = gs_store_mark_seen(t, pp, ctx.gen, (const char *const *)page.ids->elts,
                                    page.ids->nelts, &existing);
        }
        if (rv == APR_SUCCESS) {
            rv = gs_sync_fetch_page(s, pp, &page, existing, &ctx);
            token = page.next_token ? apr_pstrdup(p, page.next_token) : NULL;
        }
        apr_pool_destroy(pp);
    } while (rv == APR_SUCCESS && token);
    /* GmailSyncContent full: what this sync listed and skipped as stored may lack its content
     * (stored by an attempt under GmailSyncContent metadata) */
    if (rv == APR_SUCCESS) {
        rv = gs_sync_backfill(s, p, ctx.gen, ctx.seen_by, 0);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }

    return gs_sync_succeed(s, p, record_full_end, (void *)cursor);
}

