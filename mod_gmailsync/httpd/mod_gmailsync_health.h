/* mod_gmailsync_health.h -- what /health (mod_gmailsync_health.c) shares with /metrics
 * (mod_gmailsync_metrics.c): the same reads, the same bearer token, the same read-only
 * transaction. */
#ifndef MOD_GMAILSYNC_HEALTH_H
#define MOD_GMAILSYNC_HEALTH_H

#include <httpd.h>

#include "gs_db.h"
#include "mod_gmailsync.h"

/* What /health and /metrics tell about this host's daemon and the queue (all ages in seconds;
 * a negative queued age: nothing queued). The daemon's ages count from its last round that did
 * not fail, or from the start of this httpd generation if it never had one: a daemon that is
 * gone, wedged or failing every round ages the same way. */
typedef struct {
    double queued_age;           /* oldest CREATED task, all hosts; < 0 none */
    double claim_age, rescue_age;
    apr_uint64_t claim_failures, rescue_failures;
    apr_time_t claim_at, rescue_at;   /* 0: never */
    apr_uint64_t pid;
} gs_liveness_t;

/* Auto sync over every host (GS_SQL_SCHEDULE_STATS) with the main server's settings (the
 * daemon schedules with those): linked accounts due now, running, backing off after failures,
 * waiting for a new link; and the age of the stalest last successful sync (or of the link, for
 * an account never synced). With GmailSyncAutoSync Off the ages are still right (the counts
 * then describe a 1 s interval and are not shown). */
typedef struct {
    apr_interval_time_t interval;     /* 0: Off */
    apr_int64_t due, active, backoff, revoked, linked;
    double oldest_age;
    double late;                      /* the most overdue due account: now - its due time */
} gs_autosync_stats_t;

/* The task states in the order both report them (NULL-terminated). */
extern const char *const gs_health_states[];

const char *gs_health_seconds(apr_pool_t *p, apr_interval_time_t t);
apr_status_t gs_health_autosync_stats(request_rec *r, gs_db_t *db, gs_autosync_stats_t *st);
apr_status_t gs_health_liveness(request_rec *r, gs_db_t *db, gs_liveness_t *lv);

/* 503 database-unavailable, logged with the driver's reason. */
int gs_health_db_unavailable(request_rec *r, gs_db_t *db);

/* May r read /health and /metrics (GmailSyncHealthTokenFile)? And the 401 when it may not. */
int gs_health_bearer_ok(request_rec *r, const gs_srv_conf_t *conf);
int gs_health_unauthorized(request_rec *r);

/* The read-only transaction of /health and /metrics, with its lock and statement timeouts. */
apr_status_t gs_health_begin_read_only(request_rec *r, gs_db_t *db);

#endif
