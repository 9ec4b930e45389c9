/* unit_main.c -- runs every Check suite of the core library. */
#include <stdlib.h>

#include <apr_general.h>
#include <check.h>

#include "unit.h"

int main(void)
{
    SRunner *runner;
    int failed;

    if (apr_initialize() != APR_SUCCESS) {
        return EXIT_FAILURE;
    }
    runner = srunner_create(gs_config_suite());
    srunner_add_suite(runner, gs_json_suite());
    srunner_add_suite(runner, gs_json_check_suite());
    srunner_add_suite(runner, gs_accept_suite());
    srunner_add_suite(runner, gs_origin_suite());
    srunner_add_suite(runner, gs_sha256_suite());
    srunner_add_suite(runner, gs_tokenbox_suite());
    srunner_add_suite(runner, gs_connect_suite());
    srunner_add_suite(runner, gs_registry_suite());
    /* worker (issue 4) */
    srunner_add_suite(runner, gs_worker_conf_suite());
    srunner_add_suite(runner, gs_quota_suite());
    srunner_add_suite(runner, gs_pace_suite());
    srunner_add_suite(runner, gs_batch_suite());
    srunner_add_suite(runner, gs_gmail_parse_suite());
    srunner_add_suite(runner, gs_board_suite());
    srunner_add_suite(runner, gs_log_suite());
    srunner_add_suite(runner, gs_handoff_suite());
    /* message content (issue 22) */
    srunner_add_suite(runner, gs_mime_suite());
    srunner_add_suite(runner, gs_content_suite());
    srunner_add_suite(runner, gs_download_suite());
    /* push notifications (issue 26) */
    srunner_add_suite(runner, gs_push_suite());
    srunner_add_suite(runner, gs_watch_suite());
    srunner_add_suite(runner, gs_search_suite());
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    apr_terminate();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
