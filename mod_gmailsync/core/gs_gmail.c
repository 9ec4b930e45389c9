/* gs_gmail.c -- see gs_gmail.h: the client, its retry decisions, and the single calls. */
#include <string.h>

#include <apr_random.h>
#include <apr_strings.h>
#include <apr_uri.h>

#include "gs_gmail.h"
#include "gs_gmail_retry.h"
#include "gs_json.h"
#include "gs_log.h"

gs_gmail_t *gs_gmail_make(apr_pool_t *p, gs_http_t *http, gs_oauth_t *oauth,
                          const gs_worker_conf_t *conf, gs_failure_t *failure,
                          const char *log_ctx)
{
    gs_gmail_t *gm = apr_pcalloc(p, sizeof *gm);
    apr_uri_t uri;

    gm->http = http;
    gm->oauth = oauth;
    gm->failure = failure;
    gm->api_base = conf->api_base;
    gm->api_path = "";
    if (apr_uri_parse(p, conf->api_base, &uri) == APR_SUCCESS && uri.path
        && strcmp(uri.path, "/")) {
        gm->api_path = uri.path;
    }
    gm->batch_size = conf->batch_size;
    gm->parallel = conf->parallel;
    gm->policy.budget = conf->retry_budget;
    gm->policy.max_attempts = conf->retries;
    gm->policy.base = conf->backoff_base;
    gm->policy.max = conf->backoff_max;
    gm->last_ok = apr_time_now();
    gs_pace_init(&gm->pace, conf->quota_units, apr_time_now());
    gs_gmail_flight_reset(gm, 0);
    gm->log_ctx = log_ctx;
    if (apr_generate_random_bytes((unsigned char *)&gm->rand_state, sizeof gm->rand_state)
        != APR_SUCCESS || !gm->rand_state) {
        gm->rand_state = (apr_uint64_t)apr_time_now() | 1;
    }
    return gm;
}

/* xorshift64*: jitter only, no need for more */
static double random01(gs_gmail_t *gm)
{
    apr_uint64_t x = gm->rand_state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    gm->rand_state = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

void gs_gmail_flight_reset(gs_gmail_t *gm, int remembered)
{
    int max = gm->batch_size * gm->parallel;
    int per_window = (int)(gm->pace.configured / GS_UNITS_MESSAGES_GET);

    /* more parts at once than one second of quota would land in one of Gmail's windows */
    if (gm->pace.configured > 0.0 && per_window < max) {
        max = per_window > 0 ? per_window : 1;
    }
    gs_flight_init(&gm->flight, max, remembered);
}

apr_status_t gs_gmail_wait_quota(gs_gmail_t *gm, int units)
{
    apr_interval_time_t d;
    apr_status_t rv;

    while ((d = gs_pace_take(&gm->pace, (double)units, apr_time_now())) > 0) {
        gm->paced_at = apr_time_now();
        if ((rv = gs_http_sleep(gm->http, d)) != APR_SUCCESS) {
            return rv;
        }
    }
    gm->units += units;
    return APR_SUCCESS;
}

/* t as RFC 3339 UTC with milliseconds, as Gmail writes its lockout ends */
static const char *gs_rfc3339(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;

    if (apr_time_exp_gmt(&x, t) != APR_SUCCESS) {
        return "an unknown time";
    }
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", x.tm_year + 1900, x.tm_mon + 1,
                        x.tm_mday, x.tm_hour, x.tm_min, x.tm_sec, x.tm_usec / 1000);
}

static const char *status_text(apr_pool_t *p, const gs_attempt_t *a)
{
    if (a->status == 0) {
        return apr_psprintf(p, "no answer (%s)", a->reason);
    }
    return apr_psprintf(p, "%d %s", a->status, a->reason);
}

apr_status_t gs_gmail_note_ok(gs_gmail_t *gm)
{
    gm->last_ok = apr_time_now();
    gm->streak = 0;
    if (gm->waiting) {
        gm->waiting = 0;
        return gm->on_wait ? gm->on_wait(gm->wait_baton, NULL, 0, 0) : APR_SUCCESS;
    }
    return APR_SUCCESS;
}

/* After a retryable failure: fail the task when the budget is spent, else log, announce the
 * wait and back off. `attempt` is the number of consecutive failures of this request (1 after
 * the first); it drives the exponential backoff. */
apr_status_t gs_gmail_back_off(gs_gmail_t *gm, apr_pool_t *p, const char *method,
                               const gs_attempt_t *a, int attempt, int parts)
{
    apr_time_t now = apr_time_now();
    apr_interval_time_t wait;
    apr_int64_t silent_s = apr_time_sec(now - gm->last_ok);
    const char *budget, *reason = a->cls == GS_GM_RATE_LIMITED ? "rate_limited" : "unavailable";
    gs_retry_verdict_t verdict;
    apr_status_t rv;

    if (a->cls == GS_GM_RATE_LIMITED) {
        gm->rate_limited++;
    }
    /* a lockout's end named in the message: asking before it lengthens the lockout */
    verdict = a->cls == GS_GM_RATE_LIMITED && a->until > 0
              ? gs_retry_decide_lockout(&gm->policy, gm->last_ok, now, attempt, a->until, &wait)
              : gs_retry_decide(&gm->policy, gm->last_ok, now, attempt, a->retry_after,
                                random01(gm), &wait);
    if (verdict == GS_RETRY_OUT_OF_TIME && a->cls == GS_GM_RATE_LIMITED && a->until > 0) {
        const char *until = gs_rfc3339(p, a->until);
        gs_log_error(GS_LOG_NOTICE, p, "event=gmail.give_up %s method=%s status=%d reason=%s "
                     "retries=%d silent_ms=%" APR_INT64_T_FMT " locked_until=%s", gm->log_ctx,
                     method, a->status, reason, gm->streak,
                     (apr_int64_t)apr_time_as_msec(now - gm->last_ok), until);
        return gs_fail(gm->failure, p, GS_ERR_QUOTA_EXHAUSTED,
                       "Gmail locked this mailbox out for exceeding its rate limit until %s (%s, "
                       "%s), past the retry budget (%" APR_INT64_T_FMT " s without a successful "
                       "answer); try again after %s", until, method, status_text(p, a),
                       (apr_int64_t)apr_time_sec(gm->policy.budget), until);
    }
    if (verdict != GS_RETRY_WAIT) {
        budget = verdict == GS_RETRY_OUT_OF_ATTEMPTS
                 ? apr_psprintf(p, "after %d retries", gm->policy.max_attempts)
                 : apr_psprintf(p, "for %" APR_INT64_T_FMT " s without a successful answer "
                                "(retry budget %" APR_INT64_T_FMT " s%s)", silent_s,
                                (apr_int64_t)apr_time_sec(gm->policy.budget),
                                a->retry_after > 0
                                && a->retry_after > gm->last_ok + gm->policy.budget - now
                                ? ", Retry-After reaches past it" : "");
        gs_log_error(GS_LOG_NOTICE, p, "event=gmail.give_up %s method=%s status=%d reason=%s "
                     "retries=%d silent_ms=%" APR_INT64_T_FMT, gm->log_ctx, method, a->status,
                     reason, gm->streak, (apr_int64_t)apr_time_as_msec(now - gm->last_ok));
        if (a->cls == GS_GM_RATE_LIMITED) {
            return gs_fail(gm->failure, p, GS_ERR_QUOTA_EXHAUSTED,
                           "Gmail kept refusing requests over quota (%s, %s) %s; "
                           "try again later", method, status_text(p, a), budget);
        }
        return gs_fail(gm->failure, p, GS_ERR_GMAIL_UNAVAILABLE,
                       "Gmail was unavailable (%s, %s) %s; try again later",
                       method, status_text(p, a), budget);
    }
    gm->retries_done++;
    gm->streak++;
    /* a rate limit names the pace it brought the worker down to (units per second) */
    gs_log_error(GS_LOG_NOTICE, p, "event=gmail.retry %s method=%s status=%d reason=\"%s\" "
                 "attempt=%d parts=%d wait_ms=%" APR_INT64_T_FMT " retries=%d silent_ms=%"
                 APR_INT64_T_FMT "%s%s%s", gm->log_ctx, method, a->status,
                 gs_error_clean(p, a->reason, 200), attempt, parts,
                 (apr_int64_t)apr_time_as_msec(wait), gm->streak,
                 (apr_int64_t)apr_time_as_msec(now - gm->last_ok),
                 a->cls == GS_GM_RATE_LIMITED && gm->pace.configured > 0.0
                 ? apr_psprintf(p, " pace_units=%.0f", gm->pace.rate) : "",
                 a->cls == GS_GM_RATE_LIMITED && a->until > 0 ? " locked_until=" : "",
                 a->cls == GS_GM_RATE_LIMITED && a->until > 0 ? gs_rfc3339(p, a->until) : "");
    if (gm->on_wait && (rv = gm->on_wait(gm->wait_baton, reason, wait, gm->streak))
                       != APR_SUCCESS) {
        return rv;
    }
    gm->waiting = 1;
    return gs_http_sleep(gm->http, wait);
}

int gs_gmail_too_concurrent(int status, const char *body, apr_size_t len)
{
    static const char needle[] = "oo many concurrent requests";
    apr_size_t n = sizeof needle - 1, i;

    if ((status != 429 && status != 403) || !body) {
        return 0;
    }
    for (i = 0; i + n <= len && i < 4096; i++) {
        if (body[i] == needle[0] && !memcmp(body + i, needle, n)) {
            return 1;
        }
    }
    return 0;
}

void gs_gmail_count_answer(gs_gmail_t *gm, int status)
{
    gm->answers[gs_board_call_class(status)]++;
}

/* Classifies a finished top-level request into *a. */
void gs_gmail_judge(apr_pool_t *p, const gs_http_request_t *req, gs_attempt_t *a)
{
    a->status = req->status;
    a->retry_after = gs_parse_retry_after(req->retry_after, apr_time_now());
    a->concurrent = gs_gmail_too_concurrent(req->status, req->resp_body, req->resp_len);
    a->until = 0;
    if (req->status == 0) {
        a->cls = GS_GM_TRANSIENT;
        a->reason = req->transport_error ? req->transport_error : "transfer failed";
        if (req->timed_out) {
            a->reason = apr_pstrcat(p, "timeout: ", a->reason, NULL);
        }
        return;
    }
    a->cls = gs_gmail_classify(p, req->status, req->resp_body, req->resp_len, &a->reason);
    if (a->cls == GS_GM_RATE_LIMITED) {
        a->until = gs_gmail_lockout_until(p, req->resp_body, req->resp_len);
    }
}

apr_status_t gs_gmail_fail_for(gs_gmail_t *gm, apr_pool_t *p, const char *method,
                               const gs_attempt_t *a)
{
    if (a->cls == GS_GM_FORBIDDEN && a->reason && !strcmp(a->reason, "accessNotConfigured")) {
        /* "Gmail API has not been used in project N before or it is disabled": the project's
         * setting, not the user's grant; linking the account again would change nothing */
        return gs_fail(gm->failure, p, GS_ERR_API_DISABLED,
                       "the Gmail API is disabled in this server's Google Cloud project (%s, %s): "
                       "an operator must enable it for the project of the OAuth client; "
                       "the Gmail account need not be linked again", method, status_text(p, a));
    }
    if (a->cls == GS_GM_FORBIDDEN || a->cls == GS_GM_UNAUTHORIZED) {
        return gs_fail(gm->failure, p, GS_ERR_AUTH_REVOKED,
                       "Gmail refused access to the mailbox (%s, %s): link the Gmail account again",
                       method, status_text(p, a));
    }
    return gs_fail(gm->failure, p, GS_ERR_INTERNAL, "Gmail rejected a request (%s, %s)",
                   method, status_text(p, a));
}

apr_status_t gs_gmail_ensure_token(gs_gmail_t *gm, apr_pool_t *p)
{
    int attempt = 0;

    while (gs_oauth_needs_refresh(gm->oauth, apr_time_now())) {
        apr_pool_t *rp;
        gs_http_request_t *req;
        gs_oauth_outcome_t out;
        const char *why = NULL, *new_refresh = NULL;
        long expires_in = 0;
        gs_attempt_t a;
        apr_status_t rv;

        if (!gm->oauth->refresh_token) {
            return gs_fail(gm->failure, p, GS_ERR_AUTH_REVOKED,
                           "the Gmail account has no refresh token: link the Gmail account again");
        }
        if ((rv = apr_pool_create(&rp, p)) != APR_SUCCESS) {
            return rv;
        }
        req = gs_oauth_refresh_request(gm->oauth, rp);
        if ((rv = gs_http_perform(gm->http, rp, &req, 1)) != APR_SUCCESS) {
            apr_pool_destroy(rp);
            return rv;
        }
        gm->calls++;
        gm->refreshes++;
        out = gs_oauth_parse(gm->oauth, p, req, apr_time_now(), &expires_in, &new_refresh, &why);
        memset((char *)req->body, 0, req->body_len); /* held the refresh token and secret */
        a.status = req->status;
        a.retry_after = gs_parse_retry_after(req->retry_after, apr_time_now());
        a.reason = why;
        a.cls = req->status == 429 ? GS_GM_RATE_LIMITED : GS_GM_TRANSIENT;
        a.concurrent = 0;
        a.until = 0;
        apr_pool_destroy(rp);
        switch (out) {
        case GS_OAUTH_OK:
            gs_log_error(GS_LOG_INFO, p, "event=oauth.refreshed %s expires_in=%ld", gm->log_ctx,
                         expires_in);
            if ((rv = gs_gmail_note_ok(gm)) != APR_SUCCESS) {
                return rv;
            }
            return gm->token_saved ? gm->token_saved(gm->token_baton, p, gm->oauth->access_token,
                                                     expires_in, new_refresh)
                                   : APR_SUCCESS;
        case GS_OAUTH_REVOKED:
            return gs_fail(gm->failure, p, GS_ERR_AUTH_REVOKED,
                           "Google no longer accepts this account's authorization (%s): "
                           "link the Gmail account again", why);
        case GS_OAUTH_CLIENT:
            return gs_fail(gm->failure, p, GS_ERR_INTERNAL,
                           "the OAuth token endpoint rejected this server's client (%s): "
                           "an operator must check the client id and secret", why);
        case GS_OAUTH_INVALID:
            gs_log_error(GS_LOG_ERR, p, "event=oauth.refresh_refused %s reason=\"%s\"",
                         gm->log_ctx, why);
            return gs_fail(gm->failure, p, GS_ERR_INTERNAL,
                           "the OAuth token endpoint's answer was refused (%s): nothing of it "
                           "was used; an operator must check the token URL", why);
        case GS_OAUTH_RETRY:
            if ((rv = gs_gmail_back_off(gm, p, "token", &a, ++attempt, 0)) != APR_SUCCESS) {
                return rv;
            }
            break;
        }
    }
    return APR_SUCCESS;
}

void gs_gmail_authorize(gs_gmail_t *gm, gs_http_request_t *req, apr_pool_t *p)
{
    gs_http_add_header(req, p, "Authorization",
                       apr_pstrcat(p, "Bearer ", gm->oauth->access_token, NULL));
}

/* GET url and parse the JSON answer into p, retrying what is transient. */
static apr_status_t get_json(gs_gmail_t *gm, apr_pool_t *p, const char *method, const char *url,
                             int units, json_object **doc)
{
    int attempt = 0, refreshed = 0;

    for (;;) {
        apr_pool_t *rp;
        gs_http_request_t *req;
        gs_attempt_t a;
        apr_status_t rv;

        if ((rv = gs_gmail_ensure_token(gm, p)) != APR_SUCCESS
            || (rv = gs_gmail_wait_quota(gm, units)) != APR_SUCCESS
            || (rv = apr_pool_create(&rp, p)) != APR_SUCCESS) {
            return rv;
        }
        req = gs_http_request(rp, "GET", url);
        gs_gmail_authorize(gm, req, rp);
        gs_http_add_header(req, rp, "Accept", "application/json");
        if ((rv = gs_http_perform(gm->http, rp, &req, 1)) != APR_SUCCESS) {
            apr_pool_destroy(rp);
            return rv;
        }
        gm->calls++;
        gs_gmail_judge(p, req, &a);
        gs_gmail_count_answer(gm, req->status);
        if (a.cls == GS_GM_OK) {
            const char *perr = NULL;
            if ((*doc = gs_json_parse(p, req->resp_body, req->resp_len, &perr))
                && json_object_is_type(*doc, json_type_object)) {
                apr_pool_destroy(rp);
                return gs_gmail_note_ok(gm);
            }
            a.cls = GS_GM_TRANSIENT;
            a.reason = apr_pstrcat(p, "malformed answer: ", perr ? perr : "not an object", NULL);
        }
        apr_pool_destroy(rp);
        switch (a.cls) {
        case GS_GM_NOT_FOUND:
            /* a real answer: Gmail is there */
            return (rv = gs_gmail_note_ok(gm)) != APR_SUCCESS ? rv : GS_ENOTFOUND;
        case GS_GM_UNAUTHORIZED:
            if (refreshed) {
                return gs_gmail_fail_for(gm, p, method, &a);
            }
            refreshed = 1;   /* once per request: a fresh token that is refused means revoked */
            gs_oauth_invalidate(gm->oauth);
            continue;
        case GS_GM_RATE_LIMITED:
            if (!a.concurrent) {
                gs_pace_limited(&gm->pace, units, a.retry_after, apr_time_now());
            }
            /* fall through */
        case GS_GM_TRANSIENT:
            if ((rv = gs_gmail_back_off(gm, p, method, &a, ++attempt, 0)) != APR_SUCCESS) {
                return rv;
            }
            continue;
        default:
            return gs_gmail_fail_for(gm, p, method, &a);
        }
    }
}

static apr_status_t malformed(gs_gmail_t *gm, apr_pool_t *p, const char *method, const char *err)
{
    return gs_fail(gm->failure, p, GS_ERR_INTERNAL, "Gmail sent an unexpected %s answer: %s",
                   method, err);
}

apr_status_t gs_gmail_profile(gs_gmail_t *gm, apr_pool_t *p, gs_profile_t *out)
{
    json_object *doc;
    const char *err;
    apr_status_t rv;

    rv = get_json(gm, p, "getProfile", apr_pstrcat(p, gm->api_base, USERS_ME "/profile", NULL),
                  GS_UNITS_GET_PROFILE, &doc);
    if (rv == GS_ENOTFOUND) {
        return gs_fail(gm->failure, p, GS_ERR_AUTH_REVOKED,
                       "Gmail does not know this mailbox (getProfile 404): link the account again");
    }
    if (rv == APR_SUCCESS && gs_gmail_parse_profile(doc, out, &err) != APR_SUCCESS) {
        return malformed(gm, p, "getProfile", err);
    }
    return rv;
}

apr_status_t gs_gmail_labels(gs_gmail_t *gm, apr_pool_t *p, const char **rows_json, int *count)
{
    json_object *doc;
    const char *err;
    int skipped = 0;
    apr_status_t rv;

    rv = get_json(gm, p, "labels.list", apr_pstrcat(p, gm->api_base, USERS_ME "/labels", NULL),
                  GS_UNITS_LABELS_LIST, &doc);
    if (rv == GS_ENOTFOUND) {
        return gs_fail(gm->failure, p, GS_ERR_INTERNAL, "Gmail answered 404 to labels.list");
    }
    if (rv == APR_SUCCESS
        && gs_gmail_parse_labels(p, doc, rows_json, count, &skipped, &err) != APR_SUCCESS) {
        return malformed(gm, p, "labels.list", err);
    }
    if (rv == APR_SUCCESS && skipped) {
        gs_log_error(GS_LOG_WARNING, p, "event=gmail.labels_skipped count=%d reason=\"a label "
                     "without a valid id or a name\"", skipped);
    }
    return rv;
}

apr_status_t gs_gmail_list_messages(gs_gmail_t *gm, apr_pool_t *p, const char *page_token,
                                    gs_list_page_t *out)
{
    apr_status_t rv = gs_gmail_list_label(gm, p, NULL, page_token, out);

    if (rv == GS_ENOTFOUND) {
        return gs_fail(gm->failure, p, GS_ERR_INTERNAL, "Gmail answered 404 to messages.list");
    }
    return rv;
}

apr_status_t gs_gmail_list_label(gs_gmail_t *gm, apr_pool_t *p, const char *label_id,
                                 const char *page_token, gs_list_page_t *out)
{
    json_object *doc;
    const char *err, *url;
    apr_status_t rv;

    url = apr_pstrcat(p, gm->api_base, USERS_ME "/messages?maxResults=500&includeSpamTrash=true",
                      label_id ? "&labelIds=" : "", label_id ? gs_http_escape(p, label_id) : "",
                      page_token ? "&pageToken=" : "",
                      page_token ? gs_http_escape(p, page_token) : "", NULL);
    rv = get_json(gm, p, "messages.list", url, GS_UNITS_MESSAGES_LIST, &doc);
    if (rv == APR_SUCCESS && gs_gmail_parse_list(p, doc, out, &err) != APR_SUCCESS) {
        return malformed(gm, p, "messages.list", err);
    }
    return rv;
}

apr_status_t gs_gmail_list_history(gs_gmail_t *gm, apr_pool_t *p, const char *start_history_id,
                                   const char *page_token, gs_history_page_t *out)
{
    json_object *doc;
    const char *err, *url;
    apr_status_t rv;

    url = apr_pstrcat(p, gm->api_base, USERS_ME "/history?maxResults=500&startHistoryId=",
                      start_history_id, page_token ? "&pageToken=" : "",
                      page_token ? gs_http_escape(p, page_token) : "", NULL);
    rv = get_json(gm, p, "history.list", url, GS_UNITS_HISTORY_LIST, &doc);
    if (rv == APR_SUCCESS && gs_gmail_parse_history(p, doc, out, &err) != APR_SUCCESS) {
        return malformed(gm, p, "history.list", err);
    }
    return rv;
}
