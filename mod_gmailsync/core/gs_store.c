/* gs_store.c -- see gs_store.h */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "gs_sql.h"
#include "gs_store.h"

const char *gs_store_text_array(apr_pool_t *p, const char *const *ids, int n)
{
    apr_size_t len = 3;
    char *out, *o;
    const char *c;
    int i;

    for (i = 0; i < n; i++) {
        len += 2 * strlen(ids[i]) + 3;     /* every character escaped at worst */
    }
    o = out = apr_palloc(p, len);
    *o++ = '{';
    for (i = 0; i < n; i++) {
        if (i) {
            *o++ = ',';
        }
        *o++ = '"';
        for (c = ids[i]; *c; c++) {
            if (*c == '"' || *c == '\\') {
                *o++ = '\\';           /* PostgreSQL's array syntax: a backslash quotes the next */
            }
            *o++ = *c;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

/* apr_dbd's pgsql driver hands SQL NULL out as "" (PQgetvalue); no column read here can
 * legitimately be empty, so "" is NULL. */
static const char *cell(const gs_db_rows_t *rows, int row, int col)
{
    const char *v = gs_db_cell(rows, row, col);

    return v && *v ? v : NULL;
}

apr_status_t gs_store_load_account(gs_task_t *t, apr_pool_t *p, gs_account_t *out)
{
    const char *args[1] = { t->user_id };
    gs_db_rows_t *rows;
    const char *fresh, *ttl, *flight;
    apr_status_t rv;

    memset(out, 0, sizeof *out);
    if ((rv = gs_task_select(t, p, GS_SQL_W_ACCOUNT_LOAD, &rows, 1, args)) != APR_SUCCESS) {
        return rv;
    }
    if (rows->nrows != 1) {
        return gs_fail(t->failure, p, GS_ERR_AUTH_REVOKED,
                       "no Gmail account is linked to this user: link the Gmail account first");
    }
    out->refresh_token = cell(rows, 0, 0);
    out->access_token = cell(rows, 0, 1);
    ttl = cell(rows, 0, 2);
    out->access_ttl = ttl ? apr_atoi64(ttl) : 0;
    out->history_id = cell(rows, 0, 3);
    out->pending_task = cell(rows, 0, 4);
    out->pending_history_id = cell(rows, 0, 5);
    fresh = cell(rows, 0, 6);
    out->pending_fresh = fresh && !strcmp(fresh, "1");
    flight = cell(rows, 0, 7);
    out->parts_in_flight = flight ? atoi(flight) : 0;
    return APR_SUCCESS;
}

apr_status_t gs_store_save_flight(gs_task_t *t, apr_pool_t *p, int level)
{
    const char *args[2] = { apr_itoa(p, level), t->user_id };

    return gs_task_exec(t, p, GS_SQL_W_ACCOUNT_FLIGHT, 0, NULL, 2, args);
}

apr_status_t gs_store_save_token(gs_task_t *t, apr_pool_t *p, const char *access_token,
                                 long expires_in, const char *new_refresh)
{
    const char *args[4] = { access_token, apr_ltoa(p, expires_in), new_refresh, t->user_id };

    return gs_task_exec(t, p, GS_SQL_W_ACCOUNT_TOKEN, 0, NULL, 4, args);
}

apr_status_t gs_store_full_begin(gs_task_t *t, apr_pool_t *p, const char *history_id)
{
    const char *args[5] = { t->task_id, history_id, t->user_id, t->task_id, t->lease };

    return gs_task_exec(t, p, GS_SQL_W_FULL_BEGIN, 1, NULL, 5, args);
}

apr_status_t gs_store_mark_seen(gs_task_t *t, apr_pool_t *p, const char *gen,
                                const char *const *ids, int n, apr_hash_t **existing)
{
    const char *args[6] = { t->task_id, t->user_id, gs_store_text_array(p, ids, n), gen,
                            t->task_id, t->lease };
    gs_db_rows_t *rows;
    apr_status_t rv;
    int i;

    *existing = apr_hash_make(p);
    if (n == 0) {
        return APR_SUCCESS;
    }
    if ((rv = gs_task_select(t, p, GS_SQL_W_MESSAGES_SEEN, &rows, 6, args)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < rows->nrows; i++) {
        const char *id = gs_db_cell(rows, i, 0);
        if (id) {
            apr_hash_set(*existing, id, APR_HASH_KEY_STRING, id);
        }
    }
    return APR_SUCCESS;
}

apr_status_t gs_store_repair_stored(gs_task_t *t, apr_pool_t *p, const char *after, int limit,
                                    gs_db_rows_t **rows)
{
    const char *args[3] = { t->user_id, after, apr_itoa(p, limit) };

    return gs_task_select(t, p, GS_SQL_W_REPAIR_STORED, rows, 3, args);
}

apr_status_t gs_store_set_labels(gs_task_t *t, apr_pool_t *p, const char *rows_json,
                                 const char *const *ids, int n, int *changed)
{
    const char *args[3] = { rows_json, t->user_id, gs_store_text_array(p, ids, n) };

    return gs_task_exec(t, p, GS_SQL_W_REPAIR_LABELS, 0, changed, 3, args);
}

apr_status_t gs_store_repair_finish(gs_task_t *t, apr_pool_t *p, const char *history_id,
                                    const char *const *ids, int n, gs_deletions_t mode,
                                    int *removed)
{
    const char *cursor[2] = { history_id, t->user_id };
    apr_status_t rv = gs_store_delete(t, p, ids, n, mode, removed);

    return rv == APR_SUCCESS ? gs_task_exec(t, p, GS_SQL_W_FULL_FINISH, 0, NULL, 2, cursor) : rv;
}

apr_status_t gs_store_search_refresh(gs_task_t *t, apr_pool_t *p, const char *config,
                                     const char *const *ids, int n)
{
    const char *args[3];
    const char **users;
    gs_db_rows_t *rows;
    int i;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    users = apr_palloc(p, sizeof(char *) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        users[i] = t->user_id;
    }
    args[0] = config ? config : "simple";
    args[1] = gs_store_text_array(p, users, n);
    args[2] = gs_store_text_array(p, ids, n);
    return gs_task_select(t, p, GS_SQL_W_SEARCH_REFRESH, &rows, 3, args);
}

apr_status_t gs_store_upsert(gs_task_t *t, apr_pool_t *p, const char *gen, const char *seen_by,
                             const char *rows_json, int nrows)
{
    const char *args[6] = { t->task_id, t->lease, t->user_id, gen, seen_by, rows_json };

    return nrows > 0 ? gs_task_exec(t, p, GS_SQL_W_MESSAGES_UPSERT, 1, NULL, 6, args)
                     : APR_SUCCESS;
}

apr_status_t gs_store_delete(gs_task_t *t, apr_pool_t *p, const char *const *ids, int n,
                             gs_deletions_t mode, int *deleted)
{
    const char *args[2] = { t->user_id, gs_store_text_array(p, ids, n) };

    *deleted = 0;
    return n > 0 ? gs_task_exec(t, p, mode == GS_DELETIONS_KEEP ? GS_SQL_W_MESSAGES_MARK
                                                                : GS_SQL_W_MESSAGES_DELETE,
                                0, deleted, 2, args)
                 : APR_SUCCESS;
}

apr_status_t gs_store_labels(gs_task_t *t, apr_pool_t *p, const char *labels_json, int *written,
                             int *removed)
{
    const char *args[3] = { labels_json, t->user_id, t->user_id };
    gs_db_rows_t *rows;
    apr_status_t rv = gs_task_select(t, p, GS_SQL_W_LABELS_PUT, &rows, 3, args);

    *written = *removed = 0;
    if (rv == APR_SUCCESS && rows->nrows == 1) {
        const char *w = gs_db_cell(rows, 0, 0), *r = gs_db_cell(rows, 0, 1);
        *written = w ? atoi(w) : 0;
        *removed = r ? atoi(r) : 0;
    }
    return rv;
}

apr_status_t gs_store_relabel(gs_task_t *t, apr_pool_t *p, const char *ops_json, int *changed)
{
    const char *args[2] = { ops_json, t->user_id };

    return gs_task_exec(t, p, GS_SQL_W_MESSAGES_LABELS, 0, changed, 2, args);
}

apr_status_t gs_store_advance_cursor(gs_task_t *t, apr_pool_t *p, const char *history_id)
{
    const char *args[2] = { history_id, t->user_id };

    return gs_task_exec(t, p, GS_SQL_W_CURSOR_ADVANCE, 0, NULL, 2, args);
}

apr_status_t gs_store_full_finish(gs_task_t *t, apr_pool_t *p, const char *history_id,
                                  gs_deletions_t mode, int *removed)
{
    const char *unseen[2] = { t->user_id, t->task_id };
    const char *cursor[2] = { history_id, t->user_id };
    apr_status_t rv;

    if ((rv = gs_task_exec(t, p, mode == GS_DELETIONS_KEEP ? GS_SQL_W_UNSEEN_MARK
                                                           : GS_SQL_W_MESSAGES_UNSEEN,
                           0, removed, 2, unseen)) != APR_SUCCESS) {
        return rv;
    }
    return gs_task_exec(t, p, GS_SQL_W_FULL_FINISH, 0, NULL, 2, cursor);
}
