/* gs_curl.c -- the libcurl implementation of gs_http.h.
 *
 * One multi handle per client keeps connections alive between requests (its connection cache),
 * and carries several requests at once. Every transfer has connect, total and low-speed
 * timeouts, no signals (CURLOPT_NOSIGNAL), and may only speak http/https.
 *
 * An answer is gathered in a malloc'ed buffer that becomes resp_body (the request pool frees
 * it: no copy). A request with `spool` moves on to an unlinked temporary file once its answer
 * passes GS_HTTP_SPOOL_AT: what came so far is written there, then every chunk as it arrives.
 */
#include <string.h>
#include <stdlib.h>

#include <apr_file_io.h>
#include <apr_strings.h>
#include <curl/curl.h>

#include "gs_http.h"

typedef struct {
    CURLM *multi;
} curl_client_t;

typedef struct {
    gs_http_request_t *req;
    apr_pool_t *p;
    CURL *easy;
    struct curl_slist *headers;
    char *buf;            /* malloc'ed; handed to the pool as resp_body, else freed by the cleanup */
    size_t len, cap;
    apr_file_t *file;     /* the spool (opened in p, whose cleanup closes it), or NULL */
    apr_off_t flen;
    int too_large;
    const char *spool_error;
    int done;
    char errbuf[CURL_ERROR_SIZE];
} transfer_t;

apr_status_t gs_curl_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}

static apr_status_t free_cleanup(void *data)
{
    free(data);
    return APR_SUCCESS;
}

/* The spool: a temporary file of the worker's own (mkstemp: mode 0600, O_EXCL) in its temporary
 * directory, unlinked at once: no name to find, and the disk is free again when it is closed,
 * however the process ends. */
static apr_status_t spool_open(transfer_t *t)
{
    const char *dir;
    char *path;
    apr_status_t rv;

    if ((rv = apr_temp_dir_get(&dir, t->p)) != APR_SUCCESS) {
        return rv;
    }
    path = apr_pstrcat(t->p, dir, "/gmailsync-answer.XXXXXX", NULL);
    if ((rv = apr_file_mktemp(&t->file, path, APR_FOPEN_CREATE | APR_FOPEN_READ
                              | APR_FOPEN_WRITE | APR_FOPEN_EXCL, t->p)) != APR_SUCCESS) {
        t->file = NULL;
        return rv;
    }
    if ((rv = apr_file_remove(path, t->p)) != APR_SUCCESS) {
        (void)apr_file_close(t->file);
        t->file = NULL;
    }
    return rv;
}

static int spool_write(transfer_t *t, const char *data, size_t n)
{
    apr_size_t written;

    if (t->flen + (apr_off_t)n > GS_HTTP_MAX_SPOOL) {
        t->too_large = 1;
        return 0;
    }
    if (n && apr_file_write_full(t->file, data, n, &written) != APR_SUCCESS) {
        t->spool_error = "cannot write the answer to its temporary file";
        return 0;
    }
    t->flen += (apr_off_t)n;
    return 1;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *baton)
{
    transfer_t *t = baton;
    size_t n = size * nmemb;

    if (t->file) {
        return spool_write(t, data, n) ? n : 0;
    }
    if (t->req->spool && t->len + n > GS_HTTP_SPOOL_AT) {
        /* past the threshold: what came so far, and all that follows, go to the spool */
        if (spool_open(t) != APR_SUCCESS) {
            t->spool_error = "cannot create a temporary file for the answer";
            return 0;
        }
        if (!spool_write(t, t->buf, t->len) || !spool_write(t, data, n)) {
            return 0;
        }
        free(t->buf);
        t->buf = NULL;
        t->len = t->cap = 0;
        return n;
    }
    if (t->len + n > GS_HTTP_MAX_BODY) {
        t->too_large = 1;
        return 0;   /* aborts the transfer */
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 16384;
        char *bigger;
        while (cap < t->len + n + 1) {
            cap *= 2;
        }
        if (!(bigger = realloc(t->buf, cap))) {
            return 0;
        }
        t->buf = bigger;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, data, n);
    t->len += n;
    return n;
}

static const char *header_value(apr_pool_t *p, const char *line, size_t n, const char *name)
{
    size_t nlen = strlen(name);
    const char *v, *end = line + n;

    if (n <= nlen || strncasecmp(line, name, nlen) || line[nlen] != ':') {
        return NULL;
    }
    for (v = line + nlen + 1; v < end && (*v == ' ' || *v == '\t'); v++) {
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
        end--;
    }
    return apr_pstrmemdup(p, v, (apr_size_t)(end - v));
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *baton)
{
    transfer_t *t = baton;
    size_t n = size * nmemb;
    const char *v;

    if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
        /* a new response (after a 100 Continue, say): forget the previous one's headers */
        t->req->content_type = t->req->retry_after = t->req->cache_control = NULL;
    }
    else if ((v = header_value(t->p, line, n, "Content-Type"))) {
        t->req->content_type = v;
    }
    else if ((v = header_value(t->p, line, n, "Retry-After"))) {
        t->req->retry_after = v;
    }
    else if ((v = header_value(t->p, line, n, "Cache-Control"))) {
        t->req->cache_control = v;
    }
    return n;
}

static apr_status_t transfer_cleanup(void *data)
{
    transfer_t *t = data;

    if (t->easy) {
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
    }
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    free(t->buf);
    t->buf = NULL;
    if (t->file) {
        /* a transfer the tick stopped halfway */
        (void)apr_file_close(t->file);
        t->file = NULL;
    }
    return APR_SUCCESS;
}

#define SETOPT(opt, val) \
    do {                                                                          \
        if (curl_easy_setopt(t->easy, (opt), (val)) != CURLE_OK) {               \
            return APR_EGENERAL;                                                  \
        }                                                                         \
    } while (0)

static apr_status_t transfer_setup(gs_http_t *http, transfer_t *t)
{
    const gs_http_settings_t *s = &http->settings;
    gs_http_request_t *req = t->req;
    int i;

    if (!(t->easy = curl_easy_init())) {
        return APR_ENOMEM;
    }
    SETOPT(CURLOPT_URL, req->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, (long)apr_time_as_msec(s->timeout));
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)apr_time_as_msec(s->connect_timeout));
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SETOPT(CURLOPT_LOW_SPEED_TIME, (long)apr_time_sec(s->low_speed_time));
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    /* every encoding this libcurl decodes (gzip included): Google compresses when the
     * User-Agent also says "gzip" (the callers' settings.user_agent) */
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, t);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, t);
    SETOPT(CURLOPT_PRIVATE, t);
    if (s->user_agent) {
        SETOPT(CURLOPT_USERAGENT, s->user_agent);
    }
    if (!strcmp(req->method, "POST")) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SETOPT(CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    else if (strcmp(req->method, "GET")) {
        return APR_ENOTIMPL;
    }
    /* no "Expect: 100-continue" round trip for our small POST bodies */
    if (!(t->headers = curl_slist_append(t->headers, "Expect:"))) {
        return APR_ENOMEM;
    }
    for (i = 0; req->headers && i < req->headers->nelts; i++) {
        struct curl_slist *l = curl_slist_append(t->headers,
                                                 APR_ARRAY_IDX(req->headers, i, char *));
        if (!l) {
            return APR_ENOMEM;
        }
        t->headers = l;
    }
    SETOPT(CURLOPT_HTTPHEADER, t->headers);
    return APR_SUCCESS;
}

static void transfer_finish(transfer_t *t, CURLcode code)
{
    gs_http_request_t *req = t->req;
    long status = 0;

    t->done = 1;
    if (code == CURLE_OK
        && curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK) {
        req->status = (int)status;
        if (t->file) {
            req->resp_file = t->file;       /* closed by the pool's cleanup */
            req->resp_file_len = t->flen;
            t->file = NULL;
        }
        else if (t->buf) {
            /* the buffer is the answer (on_body keeps room for the NUL); the pool frees it */
            t->buf[t->len] = '\0';
            apr_pool_cleanup_register(t->p, t->buf, free_cleanup, apr_pool_cleanup_null);
            req->resp_body = t->buf;
            req->resp_len = t->len;
            t->buf = NULL;
        }
    }
    else if (t->too_large) {
        req->too_large = 1;
        req->transport_error = t->file
            ? apr_psprintf(t->p, "response too large (over %" APR_INT64_T_FMT " MB)",
                           (apr_int64_t)(GS_HTTP_MAX_SPOOL >> 20))
            : apr_psprintf(t->p, "response too large (over %d MB)", GS_HTTP_MAX_BODY >> 20);
    }
    else if (t->spool_error) {
        req->transport_error = t->spool_error;
    }
    else {
        req->timed_out = code == CURLE_OPERATION_TIMEDOUT;
        req->transport_error = apr_pstrdup(t->p, t->errbuf[0] ? t->errbuf
                                                               : curl_easy_strerror(code));
    }
    if (t->file) {
        /* a failed transfer's spool: the disk is free again now */
        (void)apr_file_close(t->file);
        t->file = NULL;
    }
    free(t->buf);
    t->buf = NULL;
    t->len = t->cap = 0;
}

static apr_status_t curl_perform(gs_http_t *http, apr_pool_t *p, gs_http_request_t **reqs, int n)
{
    curl_client_t *c = http->impl_data;
    transfer_t *ts = apr_pcalloc(p, sizeof *ts * (apr_size_t)n);
    apr_status_t rv = APR_SUCCESS;
    int i, running = 0, added = 0, left = n;

    for (i = 0; i < n; i++) {
        transfer_t *t = &ts[i];
        t->req = reqs[i];
        t->p = p;
        apr_pool_cleanup_register(p, t, transfer_cleanup, apr_pool_cleanup_null);
        if ((rv = transfer_setup(http, t)) != APR_SUCCESS) {
            t->req->transport_error = "cannot set up the transfer";
            t->done = 1;
            left--;
            continue;
        }
        if (curl_multi_add_handle(c->multi, t->easy) != CURLM_OK) {
            t->req->transport_error = "cannot start the transfer";
            t->done = 1;
            left--;
            continue;
        }
        added++;
    }
    rv = APR_SUCCESS;
    while (left > 0) {
        CURLMsg *msg;
        int queued;

        if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
            rv = APR_EGENERAL;
            break;
        }
        while ((msg = curl_multi_info_read(c->multi, &queued))) {
            transfer_t *t = NULL;
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t) == CURLE_OK
                && t && !t->done) {
                transfer_finish(t, msg->data.result);
                left--;
            }
        }
        if (left <= 0) {
            break;
        }
        if ((rv = gs_http_run_tick(http)) != APR_SUCCESS) {
            break;
        }
        if (curl_multi_poll(c->multi, NULL, 0, (int)apr_time_as_msec(GS_HTTP_TICK), NULL)
            != CURLM_OK) {
            rv = APR_EGENERAL;
            break;
        }
    }
    for (i = 0; i < n && added; i++) {
        if (ts[i].easy) {
            curl_multi_remove_handle(c->multi, ts[i].easy);
        }
    }
    for (i = 0; i < n; i++) {
        apr_pool_cleanup_run(p, &ts[i], transfer_cleanup);
    }
    return rv;
}

static void curl_destroy(gs_http_t *http)
{
    curl_client_t *c = http->impl_data;

    if (c->multi) {
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
    }
}

static const gs_http_impl_t curl_impl = { curl_perform, curl_destroy };

apr_status_t gs_curl_create(gs_http_t **phttp, apr_pool_t *p, const gs_http_settings_t *settings,
                            const char **err)
{
    curl_client_t *c = apr_pcalloc(p, sizeof *c);

    if (!(c->multi = curl_multi_init())) {
        *err = "cannot create a curl multi handle";
        return APR_ENOMEM;
    }
    /* keep one connection per request in flight alive between requests */
    if (curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)(settings->max_parallel + 2))
        != CURLM_OK) {
        curl_multi_cleanup(c->multi);
        *err = "cannot configure the curl multi handle";
        return APR_EGENERAL;
    }
    *phttp = gs_http_create(p, &curl_impl, c, settings);
    return APR_SUCCESS;
}
