/* test_registry.c -- the shared-memory registry's tables, on plain memory. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_strings.h>
#include <check.h>

#include "gs_registry.h"
#include "unit.h"

static void *block;
static apr_size_t block_bytes;

static gs_registry_t *fresh(apr_size_t slots)
{
    ck_assert(gs_registry_bytes(slots, &block_bytes) == APR_SUCCESS);
    free(block);
    block = calloc(1, block_bytes);
    ck_assert_ptr_nonnull(block);
    return gs_registry_format(block, block_bytes, slots);
}

static void teardown(void)
{
    free(block);
    block = NULL;
}

static void digest_of(const char *token, unsigned char d[GS_SHA256_DIGEST_LEN])
{
    gs_sha256(token, strlen(token), d);
}

START_TEST(sizing_rejects_overflow)
{
    apr_size_t bytes;

    ck_assert(gs_registry_bytes(0, &bytes) == APR_EINVAL);
    ck_assert(gs_registry_bytes((apr_size_t)-1, &bytes) == APR_EINVAL);
    ck_assert(gs_registry_bytes((apr_size_t)1 << 40, &bytes) == APR_EINVAL);
    ck_assert(gs_registry_bytes(1024, &bytes) == APR_SUCCESS && bytes > 1024);
}
END_TEST

START_TEST(attach_checks_the_header)
{
    gs_registry_t *reg = fresh(16);

    ck_assert_ptr_nonnull(reg);
    ck_assert_ptr_eq(gs_registry_attach(block, block_bytes), reg);
    ck_assert_ptr_null(gs_registry_attach(block, 8));
    memset(block, 0xff, 4);
    ck_assert_ptr_null(gs_registry_attach(block, block_bytes));
    ck_assert_ptr_null(gs_registry_format(block, 16, 16));
}
END_TEST

START_TEST(sessions_expire)
{
    gs_registry_t *reg = fresh(64);
    unsigned char d[GS_SHA256_DIGEST_LEN], other[GS_SHA256_DIGEST_LEN];
    char user[GS_REGISTRY_USER_MAX + 1];

    digest_of("token-1", d);
    digest_of("token-2", other);
    ck_assert(gs_registry_session_put(reg, d, "alice", 100, 200));
    ck_assert(gs_registry_session_get(reg, d, 150, user));
    ck_assert_str_eq(user, "alice");
    ck_assert(!gs_registry_session_get(reg, other, 150, user));
    ck_assert(!gs_registry_session_get(reg, d, 200, user)); /* expired at its deadline */
    ck_assert(!gs_registry_session_get(reg, d, 150, user)); /* and gone */
}
END_TEST

START_TEST(sessions_survive_a_full_table)
{
    gs_registry_t *reg = fresh(4);
    unsigned char d[GS_SHA256_DIGEST_LEN];
    char user[GS_REGISTRY_USER_MAX + 1], token[32];
    int i, found = 0;

    for (i = 0; i < 100; i++) {
        apr_snprintf(token, sizeof token, "t%d", i);
        digest_of(token, d);
        ck_assert(gs_registry_session_put(reg, d, "u", 0, 1000 + i));
    }
    for (i = 0; i < 100; i++) {
        apr_snprintf(token, sizeof token, "t%d", i);
        digest_of(token, d);
        found += gs_registry_session_get(reg, d, 1, user);
    }
    ck_assert_int_le(found, 4); /* evicted entries fall through, never a wrong answer */
    ck_assert_int_ge(found, 1);
}
END_TEST

START_TEST(long_user_ids_are_not_cached)
{
    gs_registry_t *reg = fresh(8);
    unsigned char d[GS_SHA256_DIGEST_LEN];
    char longid[GS_REGISTRY_USER_MAX + 2];

    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    digest_of("t", d);
    ck_assert(!gs_registry_session_put(reg, d, longid, 0, 10));
}
END_TEST

/* Alice's RUNNING task 1111..., nothing else set. */
static void alice_running(gs_registry_task_t *t)
{
    memset(t, 0, sizeof *t);
    apr_cpystrn(t->user_id, "alice", sizeof t->user_id);
    apr_cpystrn(t->task_id, "11111111-1111-4111-8111-111111111111", sizeof t->task_id);
    apr_cpystrn(t->state, "RUNNING", sizeof t->state);
}

START_TEST(tasks_by_user)
{
    gs_registry_t *reg = fresh(32);
    gs_registry_task_t t, got;

    alice_running(&t);
    ck_assert(gs_registry_task_put(reg, &t));
    ck_assert(gs_registry_task_get(reg, "alice", &got));
    ck_assert_str_eq(got.task_id, t.task_id);
    ck_assert_uint_eq(got.generation, 1);
    t.processed = 10;
    ck_assert(gs_registry_task_put(reg, &t));
    ck_assert(gs_registry_task_get(reg, "alice", &got));
    ck_assert_uint_eq(got.generation, 2);
    ck_assert(gs_registry_task_find(reg, t.task_id, &got) && got.processed == 10);
    ck_assert(!gs_registry_task_get(reg, "bob", &got));
    ck_assert(!gs_registry_task_remove(reg, "alice", "22222222-2222-4222-8222-222222222222", 5));
    ck_assert(gs_registry_task_get(reg, "alice", &got));
    ck_assert(gs_registry_task_remove(reg, "alice", t.task_id, 5));
    ck_assert(!gs_registry_task_get(reg, "alice", &got));
    ck_assert(!gs_registry_task_find(reg, t.task_id, &got));
}
END_TEST

/* A cancel racing with the daemon's claim: whichever comes first, the cancelled task never
 * shows up on the board again; the user's next task does. */
START_TEST(removed_tasks_stay_gone)
{
    gs_registry_t *reg = fresh(32);
    gs_registry_task_t t, next, got;

    alice_running(&t);

    /* removed before it was ever put (cancel committed first, claim's put comes late) */
    ck_assert(gs_registry_task_remove(reg, "alice", t.task_id, 10));
    ck_assert(!gs_registry_task_put(reg, &t));
    ck_assert(!gs_registry_task_update(reg, &t));
    ck_assert(!gs_registry_task_get(reg, "alice", &got));
    ck_assert(!gs_registry_task_find(reg, t.task_id, &got));

    /* the user's next task replaces the tombstone */
    next = t;
    apr_cpystrn(next.task_id, "33333333-3333-4333-8333-333333333333", sizeof next.task_id);
    ck_assert(gs_registry_task_put(reg, &next));
    ck_assert(gs_registry_task_get(reg, "alice", &got));
    ck_assert_str_eq(got.task_id, next.task_id);
    /* a late remove of the old task leaves the new one alone */
    ck_assert(!gs_registry_task_remove(reg, "alice", t.task_id, 11));
    ck_assert(gs_registry_task_get(reg, "alice", &got));

    /* removed after the put; a late progress line cannot bring it back */
    ck_assert(gs_registry_task_remove(reg, "alice", next.task_id, 12));
    ck_assert(!gs_registry_task_update(reg, &next));
    ck_assert(!gs_registry_task_put(reg, &next));
    ck_assert(!gs_registry_task_find(reg, next.task_id, &got));

    /* tombstones are swept like finished entries */
    gs_registry_tasks_sweep(reg, 13);
    ck_assert(gs_registry_task_put(reg, &next));
}
END_TEST

/* The progress on the board never goes back, not even when a worker runs the task again from
 * what a promoted standby stores; what the watchers saw of an ended task stays readable as a
 * floor until it is swept. */
START_TEST(board_progress_never_decreases)
{
    gs_registry_t *reg = fresh(32);
    gs_registry_task_t t, got;

    alice_running(&t);
    t.total = 600;
    t.processed = 250;
    t.progress_percentage = 41.66;
    ck_assert(gs_registry_task_put(reg, &t));
    t.processed = 100;
    t.progress_percentage = 16.66;
    apr_cpystrn(t.retry_reason, "unavailable", sizeof t.retry_reason);
    ck_assert(gs_registry_task_update(reg, &t));
    ck_assert(gs_registry_task_find(reg, t.task_id, &got));
    ck_assert(got.processed == 250 && got.total == 600 && got.progress_percentage > 41.6);
    ck_assert_str_eq(got.retry_reason, "unavailable");   /* the rest of the line is taken */
    t.processed = 300;
    t.progress_percentage = 50;
    ck_assert(gs_registry_task_update(reg, &t));
    ck_assert(gs_registry_task_find(reg, t.task_id, &got) && got.processed == 300);

    ck_assert(gs_registry_task_remove(reg, "alice", t.task_id, 20));
    ck_assert(!gs_registry_task_find(reg, t.task_id, &got));
    ck_assert(gs_registry_task_seen(reg, t.task_id, &got) && got.processed == 300);
    ck_assert(!gs_registry_task_seen(reg, "22222222-2222-4222-8222-222222222222", &got));
    gs_registry_tasks_sweep(reg, 21);
    ck_assert(!gs_registry_task_seen(reg, t.task_id, &got));
}
END_TEST

START_TEST(task_table_full_falls_through)
{
    gs_registry_t *reg = fresh(4);
    gs_registry_task_t t, got;
    int i, stored = 0;

    memset(&t, 0, sizeof t);
    for (i = 0; i < 50; i++) {
        apr_snprintf(t.user_id, sizeof t.user_id, "user-%d", i);
        apr_snprintf(t.task_id, sizeof t.task_id, "task-%d", i);
        stored += gs_registry_task_put(reg, &t);
    }
    ck_assert_int_eq(stored, 4);
    for (i = 0, stored = 0; i < 50; i++) {
        char user[32];
        apr_snprintf(user, sizeof user, "user-%d", i);
        if (gs_registry_task_get(reg, user, &got)) {
            ck_assert_str_eq(got.user_id, user);
            stored++;
        }
    }
    ck_assert_int_eq(stored, 4);
}
END_TEST

/* Stream holders for the tests: pid 7 "crashed", every other pid lives. */
static int all_alive(apr_int32_t pid)
{
    (void)pid;
    return 1;
}

static int seven_died(apr_int32_t pid)
{
    return pid != 7;
}

START_TEST(streams_are_capped_per_user_and_host)
{
    gs_registry_t *reg = fresh(32);
    int i;

    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(gs_registry_stream_enter(reg, "alice", 1, 3, 5, all_alive), GS_STREAM_ADMITTED);
    }
    ck_assert_int_eq(gs_registry_stream_enter(reg, "alice", 1, 3, 5, all_alive), GS_STREAM_USER_FULL);
    ck_assert_int_eq(gs_registry_stream_enter(reg, "bob", 1, 3, 5, all_alive), GS_STREAM_ADMITTED);
    ck_assert_int_eq(gs_registry_stream_enter(reg, "carol", 1, 3, 5, all_alive), GS_STREAM_ADMITTED);
    ck_assert_int_eq(gs_registry_stream_enter(reg, "dave", 1, 3, 5, all_alive), GS_STREAM_HOST_FULL);
    ck_assert_uint_eq(gs_registry_streams(reg), 5);
    gs_registry_stream_leave(reg, "alice", 1);
    ck_assert_int_eq(gs_registry_stream_enter(reg, "dave", 1, 3, 5, all_alive), GS_STREAM_ADMITTED);
    gs_registry_stream_leave(reg, "dave", 1);
    gs_registry_stream_leave(reg, "dave", 1);   /* a stray leave changes nothing */
    gs_registry_stream_leave(reg, "nobody", 1);
    ck_assert_uint_eq(gs_registry_streams(reg), 4);
    gs_registry_stream_leave(reg, "alice", 1);
    gs_registry_stream_leave(reg, "alice", 1);
    gs_registry_stream_leave(reg, "bob", 1);
    gs_registry_stream_leave(reg, "carol", 1);
    ck_assert_uint_eq(gs_registry_streams(reg), 0);
    /* every slot is free again: a full round for a new set of users fits */
    for (i = 0; i < 5; i++) {
        char user[16];
        apr_snprintf(user, sizeof user, "u%d", i);
        ck_assert_int_eq(gs_registry_stream_enter(reg, user, 1, 1, 5, all_alive),
                         GS_STREAM_ADMITTED);
    }
}
END_TEST

START_TEST(streams_of_a_crashed_child_are_reaped_when_a_limit_is_reached)
{
    gs_registry_t *reg = fresh(4096);   /* alice's and bob's windows apart (the hash is fixed) */
    int i;

    /* child 7 holds two of alice's streams and bob's only one, then dies without leaving */
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(gs_registry_stream_enter(reg, "alice", 7, 2, 5, all_alive),
                         GS_STREAM_ADMITTED);
    }
    ck_assert_int_eq(gs_registry_stream_enter(reg, "bob", 7, 2, 5, all_alive), GS_STREAM_ADMITTED);
    ck_assert_int_eq(gs_registry_stream_enter(reg, "carol", 8, 2, 5, all_alive),
                     GS_STREAM_ADMITTED);
    /* while 7 lives, the limits hold */
    ck_assert_int_eq(gs_registry_stream_enter(reg, "alice", 8, 2, 5, all_alive),
                     GS_STREAM_USER_FULL);
    /* once it is gone: alice's own places are reaped for her limit... */
    ck_assert_int_eq(gs_registry_stream_enter(reg, "alice", 8, 2, 5, seven_died),
                     GS_STREAM_ADMITTED);
    ck_assert_uint_eq(gs_registry_streams(reg), 3);   /* bob's dead one still counts */
    ck_assert_int_eq(gs_registry_stream_enter(reg, "dave", 8, 2, 5, seven_died),
                     GS_STREAM_ADMITTED);
    ck_assert_int_eq(gs_registry_stream_enter(reg, "erin", 8, 2, 5, seven_died),
                     GS_STREAM_ADMITTED);
    ck_assert_int_eq(gs_registry_stream_enter(reg, "frank", 8, 2, 5, all_alive),
                     GS_STREAM_HOST_FULL);
    /* ...and the host's limit reaps every dead place */
    ck_assert_int_eq(gs_registry_stream_enter(reg, "frank", 8, 2, 5, seven_died),
                     GS_STREAM_ADMITTED);
    ck_assert_uint_eq(gs_registry_streams(reg), 5);
    ck_assert_uint_eq(gs_registry_streams_reap(reg, seven_died), 0);
    /* leaving counts only the leaver's own places: a dead child's leave does nothing */
    gs_registry_stream_leave(reg, "alice", 7);
    ck_assert_uint_eq(gs_registry_streams(reg), 5);
    gs_registry_stream_leave(reg, "alice", 8);
    ck_assert_uint_eq(gs_registry_streams(reg), 4);
    ck_assert(gs_registry_pid_alive((apr_int32_t)getpid()));
    ck_assert(!gs_registry_pid_alive(0));
}
END_TEST

Suite *gs_registry_suite(void)
{
    Suite *s = suite_create("gs_registry");
    TCase *tc = tcase_create("registry");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, sizing_rejects_overflow);
    tcase_add_test(tc, attach_checks_the_header);
    tcase_add_test(tc, sessions_expire);
    tcase_add_test(tc, sessions_survive_a_full_table);
    tcase_add_test(tc, long_user_ids_are_not_cached);
    tcase_add_test(tc, tasks_by_user);
    tcase_add_test(tc, removed_tasks_stay_gone);
    tcase_add_test(tc, board_progress_never_decreases);
    tcase_add_test(tc, streams_are_capped_per_user_and_host);
    tcase_add_test(tc, streams_of_a_crashed_child_are_reaped_when_a_limit_is_reached);
    tcase_add_test(tc, task_table_full_falls_through);
    suite_add_tcase(s, tc);
    return s;
}
