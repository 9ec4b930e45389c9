/* gs_gmail_fetch.c -- see gs_gmail.h: batched messages.get with per-part retries.
 *
 * The ids are asked in batch requests of batch_size, up to `parallel` at once. Each batch answer
 * is split by Content-ID: messages are handed to the store callback (one call per batch), 404s
 * are counted as gone, and only the parts that failed (429, 403 rate limits, 5xx, malformed or
 * missing) go back into the queue, to be asked again after a backoff. When the retry budget is
 * spent (a time without any successful answer, see gs_retry_decide) the task fails.
 *
 * In a paced sync the quota, not the worker, sets the speed, and a round should go out the
 * moment the quota has room for it: any delay is lost for good, since the room of the next
 * second follows the calls of this one. So the rows are not stored as each round comes back but
 * while the worker waits for the quota anyway (or once two rounds' worth are held, or before a
 * backoff, or at the end); the database's time and the spread of its commits then stay out of
 * the rounds' timing. Unpaced, the rows of each round are stored after it.
 *
 * Memory is bounded by the largest message, not by the batch (issue 22): an answer over 1 MB is
 * spooled to a temporary file (gs_http.h) and its parts are read one at a time
 * (gs_batch_reader), each into a pool of the held ones, where its JSON text is checked and its
 * raw field decoded in place (gs_gmail_raw.c: the bytes are 3/4 of the text, no second copy);
 * the held raw messages are stored as soon as they pass GS_HELD_STORE_BYTES, whatever the pacing. A batch
 * whose answer passes GS_BATCH_ANSWER_TARGET makes the batches smaller for the rest of the run.
 */
#include <string.h>

#include <apr_strings.h>

#include "gs_batch.h"
#include "gs_gmail.h"
#include "gs_gmail_retry.h"
#include "gs_json.h"
#include "gs_log.h"

#define METADATA_QUERY "?format=metadata&metadataHeaders=Subject&metadataHeaders=From" \
                       "&metadataHeaders=To&metadataHeaders=Date"
#define RAW_QUERY      "?format=raw"

/* Held raw messages are stored once they pass this, paced or not: a round of small messages
 * stays together (stored while the quota is waited for), a few large ones do not pile up. */
#define GS_HELD_STORE_BYTES (8 * 1024 * 1024)
/* A batch answer larger than this makes later batches smaller, so that an answer like it would
 * have stayed within it: the answer is on disk (spooled), but it takes disk, time within the
 * whole-request timeout, and a failure asks all its parts again. Shrunk only, for the run. */
#define GS_BATCH_ANSWER_TARGET (APR_INT64_C(64) * 1024 * 1024)

typedef struct {
    const char *id;
    int attempts;       /* failed tries so far */
} pending_t;

/* Fetched rows not handed to the store yet. */
typedef struct {
    apr_pool_t *pool;    /* the rows (and raw messages); cleared after each store */
    json_object *rows;
    apr_array_header_t *raws;   /* gs_gmail_raw_t per row with format=raw, else NULL */
    gs_fetch_format_t format;
    int nrows, gone;
    apr_size_t raw_bytes;       /* of the raws held */
    gs_gmail_store_cb *store;
    void *baton;
} held_t;

static void held_reset(held_t *h)
{
    apr_pool_clear(h->pool);
    h->rows = gs_json_own(h->pool, json_object_new_array());
    h->raws = h->format == GS_FETCH_RAW ? apr_array_make(h->pool, 16, sizeof(gs_gmail_raw_t))
                                        : NULL;
    h->nrows = h->gone = 0;
    h->raw_bytes = 0;
}

static apr_status_t held_store(held_t *h)
{
    apr_status_t rv;

    if (!h->nrows && !h->gone) {
        return APR_SUCCESS;
    }
    rv = h->store(h->baton, h->pool, h->rows, h->raws, h->nrows, h->gone);
    held_reset(h);
    return rv;
}

/* One message of a format=raw answer: its row and its decoded bytes, held for the store. The
 * text is checked where it is (the part's, which this changes), its raw field decoded in place
 * (a part of its own pool, which *kept says the held rows now own) or into the held pool (an
 * answer held in memory), and only the rest of the message (a few hundred bytes) is copied for
 * json-c: the message's text is never copied. */
static apr_status_t take_raw_message(apr_pool_t *p, const gs_batch_part_t *part, held_t *held,
                                     int *kept, const char **err)
{
    json_object *row;
    gs_gmail_raw_t r;
    /* a part read alone into the held pool (a spooled answer's) is decoded where it is: its
     * text is not copied, and the part's pool goes with the held rows */
    int in_place = part->pool != NULL;
    apr_status_t rv = gs_gmail_raw_part(p, in_place ? NULL : held->pool, part->body,
                                        part->body_len, &row, &r, err);

    if (rv == APR_SUCCESS) {
        APR_ARRAY_PUSH(held->raws, gs_gmail_raw_t) = r;
        json_object_array_add(held->rows, row);
        held->nrows++;
        held->raw_bytes += in_place ? part->body_len : r.len;
        *kept = in_place;
    }
    return rv;
}

/* On the way out with `rv`: what was fetched is stored first if it can be (a resumed sync then
 * need not ask for it again); the first failure is the one reported (gs_fail keeps it). */
static apr_status_t held_end(held_t *h, apr_status_t rv)
{
    apr_status_t srv = held_store(h);

    return rv != APR_SUCCESS ? rv : srv;
}

/* The outcome of one round of batch requests. */
typedef struct {
    int need_auth;       /* a 401 was seen */
    int max_attempts;    /* highest attempt count among requeued ids */
    int requeued;
    int refused_rate, refused_concurrent;   /* parts refused as over quota / too concurrent */
    apr_interval_time_t rate_retry_after;   /* the longest Retry-After of the quota refusals */
    gs_attempt_t worst;  /* the failure to report (rate limits win over other transients) */
    char reason[128];    /* worst.reason's text: the answers' pool ends before the round does */
} round_t;

static void requeue(apr_array_header_t *queue, const pending_t *item, int count_it, round_t *r,
                    const gs_attempt_t *a)
{
    pending_t *again = apr_array_push(queue);
    apr_time_t until;

    again->id = item->id;
    again->attempts = item->attempts + (count_it ? 1 : 0);
    if (!count_it) {
        return;
    }
    r->requeued++;
    if (again->attempts > r->max_attempts) {
        r->max_attempts = again->attempts;
    }
    until = r->worst.until > a->until ? r->worst.until : a->until;
    if (!r->worst.reason || a->cls == GS_GM_RATE_LIMITED || a->retry_after > r->worst.retry_after) {
        r->worst = *a;
        if (a->reason) {
            apr_cpystrn(r->reason, a->reason, sizeof r->reason);
            r->worst.reason = r->reason;
        }
    }
    r->worst.until = until;      /* the latest lockout end of the round */
    if (a->cls == GS_GM_RATE_LIMITED && a->concurrent) {
        r->refused_concurrent++;
    }
    else if (a->cls == GS_GM_RATE_LIMITED) {
        r->refused_rate++;
        if (a->retry_after > r->rate_retry_after) {
            r->rate_retry_after = a->retry_after;
        }
    }
}

/* One part of a batch answer: held for the store, counted gone, or requeued. *taken counts
 * the parts that came back with data (or gone). Parsed in p (the part's pool). */
static apr_status_t take_part(gs_gmail_t *gm, apr_pool_t *p, const gs_batch_part_t *part,
                              const pending_t *item, apr_array_header_t *queue, round_t *r,
                              held_t *held, int *taken, int *kept)
{
    const char *err = NULL;
    gs_attempt_t pa;

    *kept = 0;
    pa.status = part->status;
    gs_gmail_count_answer(gm, part->status);
    pa.retry_after = gs_parse_retry_after(part->retry_after, apr_time_now());
    pa.concurrent = gs_gmail_too_concurrent(part->status, part->body, part->body_len);
    pa.cls = gs_gmail_classify(p, part->status, part->body, part->body_len, &pa.reason);
    pa.until = pa.cls == GS_GM_RATE_LIMITED
               ? gs_gmail_lockout_until(p, part->body, part->body_len) : 0;
    if (pa.cls == GS_GM_OK && held->format == GS_FETCH_RAW) {
        apr_status_t mrv = take_raw_message(p, part, held, kept, &err);
        if (mrv == APR_SUCCESS) {
            (*taken)++;
            return APR_SUCCESS;
        }
        if (mrv != APR_EINVAL) {
            return mrv;
        }
        pa.cls = GS_GM_TRANSIENT;
        pa.reason = apr_pstrcat(p, "malformed message: ", err, NULL);
    }
    else if (pa.cls == GS_GM_OK) {
        json_object *row, *msg = gs_json_parse(p, part->body, part->body_len, &err);
        /* a row is a new object with copies of its strings: it outlives p in held */
        if (msg && (row = gs_gmail_message_row(p, msg, &err))) {
            json_object_array_add(held->rows, row);
            held->nrows++;
            (*taken)++;
            return APR_SUCCESS;
        }
        pa.cls = GS_GM_TRANSIENT;
        pa.reason = apr_pstrcat(p, "malformed message: ", err, NULL);
    }
    switch (pa.cls) {
    case GS_GM_NOT_FOUND:
        held->gone++;        /* deleted since it was listed */
        (*taken)++;
        break;
    case GS_GM_UNAUTHORIZED:
        r->need_auth = 1;
        requeue(queue, item, 0, r, &pa);
        break;
    case GS_GM_RATE_LIMITED:
    case GS_GM_TRANSIENT:
        requeue(queue, item, 1, r, &pa);
        break;
    case GS_GM_FORBIDDEN:
        return gs_gmail_fail_for(gm, p, "messages.get", &pa);
    default:
        /* a 400 for one id cannot be fixed by asking again: skip it, say so */
        gs_log_error(GS_LOG_WARNING, p, "event=gmail.skipped %s id=%s status=%d reason=\"%s\"",
                     gm->log_ctx, item->id, pa.status, pa.reason);
        held->gone++;
        (*taken)++;
        break;
    }
    return APR_SUCCESS;
}

/* Held raw messages past GS_HELD_STORE_BYTES are stored now, paced or not. */
static apr_status_t held_check(held_t *held)
{
    return held->raw_bytes >= GS_HELD_STORE_BYTES ? held_store(held) : APR_SUCCESS;
}

/* After a spooled answer of `bytes` for n parts: when it was larger than the target, later
 * batches are cut so that one like it would have kept to it. */
static void shrink_for(gs_gmail_t *gm, apr_pool_t *p, int n, apr_off_t bytes)
{
    apr_int64_t fit;

    if (bytes <= GS_BATCH_ANSWER_TARGET || n <= 1) {
        return;
    }
    fit = (apr_int64_t)n * GS_BATCH_ANSWER_TARGET / bytes;
    if (fit < 1) {
        fit = 1;
    }
    if (fit >= gm->batch_size) {
        return;
    }
    gs_log_error(GS_LOG_NOTICE, p, "event=gmail.batch_shrunk %s parts=%d answer_mb=%"
                 APR_INT64_T_FMT " target_mb=%" APR_INT64_T_FMT " from=%d to=%d", gm->log_ctx,
                 n, (apr_int64_t)(bytes >> 20), (apr_int64_t)(GS_BATCH_ANSWER_TARGET >> 20),
                 gm->batch_size, (int)fit);
    gm->batch_size = (int)fit;
}

/* Handles one batch answer: holds what came back for the store, requeues what must be asked
 * again. A spooled answer is read a part at a time, each part in a pool cleared after it. */
static apr_status_t take_batch(gs_gmail_t *gm, apr_pool_t *p, gs_http_request_t *req,
                               const pending_t *items, int n, apr_array_header_t *queue,
                               round_t *r, held_t *held)
{
    apr_array_header_t *parts = NULL;
    gs_batch_reader_t *reader = NULL;
    gs_batch_part_t part;
    apr_pool_t *pp;
    char *answered;
    const char *err = NULL;
    gs_attempt_t a;
    apr_status_t rv, brv;
    int i, taken = 0;

    gs_gmail_judge(p, req, &a);
    gs_gmail_count_answer(gm, req->status);
    if (a.cls == GS_GM_OK
        && (req->resp_file
            ? gs_batch_reader_file(&reader, p, req->content_type, n, req->resp_file, &err)
            : gs_batch_parse(p, req->content_type, req->resp_body, req->resp_len, n, &parts,
                             &err)) != APR_SUCCESS) {
        a.cls = GS_GM_TRANSIENT;
        a.reason = apr_pstrcat(p, "malformed batch answer: ", err, NULL);
    }
    if (req->too_large) {
        /* refused for its size (the spool's cap): ask again in batches half this size; a
         * single part that large counts as a failed attempt */
        gs_log_error(GS_LOG_WARNING, p, "event=gmail.answer_too_large %s parts=%d limit_mb=%"
                     APR_INT64_T_FMT " batch_size=%d reason=\"%s\"", gm->log_ctx, n,
                     (apr_int64_t)(GS_HTTP_MAX_SPOOL >> 20), n > 1 ? n / 2 : 1, a.reason);
        if (n > 1 && gm->batch_size > n / 2) {
            gm->batch_size = n / 2;
        }
        for (i = 0; i < n; i++) {
            requeue(queue, &items[i], n == 1, r, &a);
        }
        return APR_SUCCESS;
    }
    if (a.cls == GS_GM_BAD_REQUEST && n > 1 && strstr(req->resp_body, "Inner request count")) {
        /* "Inner request count exceeds the limit": Gmail has refused batches of 100 and even
         * fewer; halve the batch size for the rest of the run and ask again */
        gm->batch_size = n / 2;
        gs_log_error(GS_LOG_WARNING, p, "event=gmail.batch_limit %s parts=%d batch_size=%d",
                     gm->log_ctx, n, gm->batch_size);
        for (i = 0; i < n; i++) {
            requeue(queue, &items[i], 0, r, &a);
        }
        return APR_SUCCESS;
    }
    switch (a.cls) {
    case GS_GM_OK:
        break;
    case GS_GM_UNAUTHORIZED:
        r->need_auth = 1;
        /* the whole batch is asked again */
        /* fall through */
    case GS_GM_RATE_LIMITED:
    case GS_GM_TRANSIENT:
        for (i = 0; i < n; i++) {
            requeue(queue, &items[i], a.cls != GS_GM_UNAUTHORIZED, r, &a);
        }
        return APR_SUCCESS;
    default:
        return gs_gmail_fail_for(gm, p, "batch", &a);
    }

    answered = apr_pcalloc(p, (apr_size_t)n);
    if ((rv = apr_pool_create(&pp, p)) != APR_SUCCESS) {
        return rv;
    }
    brv = APR_EOF;
    for (i = 0; reader || i < parts->nelts; i++) {
        int kept = 0;

        if (reader) {
            /* a raw message is read into the held pool, where it is decoded (kept) */
            if ((brv = gs_batch_reader_next(reader, held->format == GS_FETCH_RAW ? held->pool : pp,
                                            &part, &err)) != APR_SUCCESS) {
                break;
            }
        }
        else {
            part = APR_ARRAY_IDX(parts, i, gs_batch_part_t);
        }
        answered[part.index] = 1;
        rv = take_part(gm, pp, &part, &items[part.index], queue, r, held, &taken, &kept);
        if (part.pool && !kept) {
            apr_pool_destroy(part.pool);
        }
        apr_pool_clear(pp);
        if (rv != APR_SUCCESS || (rv = held_check(held)) != APR_SUCCESS) {
            return rv;
        }
    }
    if (reader) {
        gm->spooled++;
        gm->spooled_bytes += req->resp_file_len;
        shrink_for(gm, p, n, req->resp_file_len);
    }
    a.cls = GS_GM_TRANSIENT;
    a.status = req->status;
    a.reason = brv == APR_EOF ? "part missing from the batch answer"
                              : apr_pstrcat(p, "malformed batch answer: ", err, NULL);
    a.retry_after = 0;
    a.concurrent = 0;
    a.until = 0;
    for (i = 0; i < n; i++) {
        if (!answered[i]) {
            requeue(queue, &items[i], 1, r, &a);
        }
    }
    /* some parts came back: Gmail answers again, whatever the rest of this round does */
    return taken ? gs_gmail_note_ok(gm) : APR_SUCCESS;
}

/* The parts of the next round: the parts in flight Gmail's concurrency limit allows, cut to
 * what the quota has room for now (waiting, ticking, until it has room for one part). Sending
 * what fits instead of waiting for a whole round keeps the quota spent to the last unit. The
 * wait is when the held rows are stored. */
static apr_status_t round_limit(gs_gmail_t *gm, held_t *held, int *limit, int *paced)
{
    int fit;
    apr_status_t rv;

    *limit = gm->flight.level;
    *paced = 0;
    if (gm->pace.configured <= 0.0) {
        return APR_SUCCESS;
    }
    for (;;) {
        apr_time_t now = apr_time_now();
        apr_interval_time_t d;

        fit = (int)(gs_pace_room(&gm->pace, now) / GS_UNITS_MESSAGES_GET);
        if (fit >= 1 || gm->pace.rate < GS_UNITS_MESSAGES_GET) {
            break;
        }
        d = gs_pace_take(&gm->pace, GS_UNITS_MESSAGES_GET, now);
        if (d == 0) {
            /* taken after all (the window emptied meanwhile): give it back, go on */
            gs_pace_refund(&gm->pace, GS_UNITS_MESSAGES_GET, now);
            continue;
        }
        gm->paced_at = now;
        if (held->nrows || held->gone) {
            /* then look at the clock again: the store took some of the wait */
            if ((rv = held_store(held)) != APR_SUCCESS) {
                return rv;
            }
            continue;
        }
        if ((rv = gs_http_sleep(gm->http, d)) != APR_SUCCESS) {
            return rv;
        }
    }
    /* the quota would not have let another round as large go out now, or held the sync back
     * within the last two windows: more parts at once would not make it faster */
    if (fit < 2 * *limit) {
        gm->paced_at = apr_time_now();
    }
    if (fit < *limit) {
        *limit = fit > 0 ? fit : 1;
    }
    *paced = gm->paced_at && apr_time_now() - gm->paced_at < 2 * GS_PACE_WINDOW;
    return APR_SUCCESS;
}

apr_status_t gs_gmail_fetch(gs_gmail_t *gm, apr_pool_t *p, const char *const *ids, int n,
                            gs_fetch_format_t format, gs_gmail_store_cb *store, void *baton)
{
    const char *query = format == GS_FETCH_RAW ? RAW_QUERY : METADATA_QUERY;
    apr_array_header_t *queue = apr_array_make(p, n > 0 ? n : 1, sizeof(pending_t));
    const char *batch_url = apr_pstrcat(p, gm->api_base, "/batch/gmail/v1", NULL);
    held_t held;
    int head = 0, i, refreshed_last_round = 0;
    apr_status_t rv;

    if ((rv = apr_pool_create(&held.pool, p)) != APR_SUCCESS) {
        return rv;
    }
    held.store = store;
    held.baton = baton;
    held.format = format;
    held_reset(&held);

    for (i = 0; i < n; i++) {
        pending_t *item = apr_array_push(queue);
        item->id = ids[i];
        item->attempts = 0;
    }
    while (head < queue->nelts) {
        gs_http_request_t *reqs[GS_WORKER_MAX_PARALLEL];
        const pending_t *chunk[GS_WORKER_MAX_PARALLEL];
        int sizes[GS_WORKER_MAX_PARALLEL], nreq = 0, total = 0, k, limit, level, paced;
        round_t r;
        apr_pool_t *rp;

        memset(&r, 0, sizeof r);
        /* the parts in flight: what Gmail's concurrency limit allows, and no more than the
         * quota has room for now */
        if ((rv = round_limit(gm, &held, &limit, &paced)) != APR_SUCCESS) {
            return held_end(&held, rv);
        }
        while (nreq < gm->parallel && head < queue->nelts && total < limit) {
            int size = queue->nelts - head < gm->batch_size ? queue->nelts - head : gm->batch_size;
            if (size > limit - total) {
                size = limit - total;
            }
            chunk[nreq] = &APR_ARRAY_IDX(queue, head, pending_t);
            sizes[nreq++] = size;
            head += size;
            total += size;
        }
        if ((rv = gs_gmail_ensure_token(gm, p)) != APR_SUCCESS
            || (rv = gs_gmail_wait_quota(gm, total * GS_UNITS_MESSAGES_GET)) != APR_SUCCESS
            || (rv = apr_pool_create(&rp, p)) != APR_SUCCESS) {
            return held_end(&held, rv);
        }
        /* the queue may grow (and move) while answers are taken: copy this round's items */
        for (k = 0; k < nreq; k++) {
            pending_t *copy = apr_pmemdup(rp, chunk[k], sizeof(pending_t) * (apr_size_t)sizes[k]);
            const char **paths = apr_palloc(rp, sizeof(char *) * (apr_size_t)sizes[k]);
            const char *ctype;
            apr_size_t len;

            chunk[k] = copy;
            for (i = 0; i < sizes[k]; i++) {
                paths[i] = apr_pstrcat(rp, gm->api_path, USERS_ME "/messages/", copy[i].id,
                                       query, NULL);
            }
            reqs[k] = gs_http_request(rp, "POST", batch_url);
            reqs[k]->spool = 1;     /* a large answer goes to disk, read a part at a time */
            reqs[k]->body = gs_batch_build(rp, paths, sizes[k], &ctype, &len);
            reqs[k]->body_len = len;
            gs_http_add_header(reqs[k], rp, "Content-Type", ctype);
            gs_gmail_authorize(gm, reqs[k], rp);
        }
        if ((rv = gs_http_perform(gm->http, rp, reqs, nreq)) != APR_SUCCESS) {
            apr_pool_destroy(rp);
            return held_end(&held, rv);
        }
        gm->calls += nreq;
        gm->batch_parts += total;
        /* every answer of the round is taken, even after one that ends the sync: what Gmail
         * answered in the other batches is stored (the first failure is the one reported) */
        for (k = 0; k < nreq; k++) {
            apr_status_t trv = take_batch(gm, rp, reqs[k], chunk[k], sizes[k], queue, &r, &held);
            if (trv != APR_SUCCESS && rv == APR_SUCCESS) {
                rv = trv;
            }
        }
        apr_pool_destroy(rp);
        if (rv != APR_SUCCESS) {
            return held_end(&held, rv);
        }
        /* unpaced, every round; paced, during the next wait for the quota, or now if that has
         * not come for two rounds (bounded memory) */
        if ((gm->pace.configured <= 0.0 || held.nrows + held.gone >= 2 * gm->flight.max)
            && (rv = held_store(&held)) != APR_SUCCESS) {
            return rv;
        }
        gm->refused_rate += r.refused_rate;
        gm->refused_concurrent += r.refused_concurrent;
        if (r.refused_rate) {
            gs_pace_limited(&gm->pace, (double)r.refused_rate * GS_UNITS_MESSAGES_GET,
                            r.rate_retry_after, apr_time_now());
        }
        if (r.refused_concurrent) {
            /* refused before Gmail counted them: the quota they took is free again */
            gs_pace_refund(&gm->pace, (double)r.refused_concurrent * GS_UNITS_MESSAGES_GET,
                           apr_time_now());
        }
        level = gm->flight.level;
        if (gs_flight_round(&gm->flight, total, r.refused_concurrent, paced, apr_time_now())
            != level) {
            gs_log_error(GS_LOG_NOTICE, p, "event=gmail.parts_in_flight %s from=%d to=%d "
                         "refused=%d", gm->log_ctx, level, gm->flight.level, r.refused_concurrent);
            if (gm->on_flight
                && (rv = gm->on_flight(gm->flight_baton, p, gm->flight.level)) != APR_SUCCESS) {
                return held_end(&held, rv);
            }
        }
        if (r.need_auth) {
            gs_attempt_t a = { GS_GM_UNAUTHORIZED, 401, "authError", 0, 0, 0 };
            if (refreshed_last_round) {
                return held_end(&held, gs_gmail_fail_for(gm, p, "batch", &a));
            }
            gs_oauth_invalidate(gm->oauth);
        }
        refreshed_last_round = r.need_auth;
        if (r.requeued) {
            /* a backoff is a wait too */
            if ((rv = held_store(&held)) != APR_SUCCESS
                || (rv = gs_gmail_back_off(gm, p, "messages.get", &r.worst, r.max_attempts,
                                           r.requeued)) != APR_SUCCESS) {
                return held_end(&held, rv);
            }
        }
    }
    return held_store(&held);
}
