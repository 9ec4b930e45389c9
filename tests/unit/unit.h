/* unit.h -- the suites of the core unit tests. */
#ifndef GS_UNIT_H
#define GS_UNIT_H

#include <check.h>

Suite *gs_config_suite(void);
Suite *gs_json_suite(void);
Suite *gs_json_check_suite(void);
Suite *gs_accept_suite(void);
Suite *gs_origin_suite(void);
Suite *gs_sha256_suite(void);
Suite *gs_tokenbox_suite(void);
Suite *gs_connect_suite(void);
Suite *gs_registry_suite(void);
/* worker (issue 4) */
Suite *gs_worker_conf_suite(void);
Suite *gs_quota_suite(void);
Suite *gs_pace_suite(void);
Suite *gs_batch_suite(void);
Suite *gs_gmail_parse_suite(void);
Suite *gs_board_suite(void);
Suite *gs_log_suite(void);
Suite *gs_handoff_suite(void);
/* message content (issue 22) */
Suite *gs_mime_suite(void);
Suite *gs_content_suite(void);
/* the message view (issue 24) */
Suite *gs_download_suite(void);
/* push notifications (issue 26) */
Suite *gs_push_suite(void);
Suite *gs_watch_suite(void);
Suite *gs_search_suite(void);

#endif
