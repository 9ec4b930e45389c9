/* gs_push_msg.h -- the body of a Cloud Pub/Sub push of a Gmail notification (issue 26):
 *
 *   {"message":{"data":"<base64 of {\"emailAddress\":\"...\",\"historyId\":\"123\"}>",
 *               "messageId":"...", ...},"subscription":"projects/P/subscriptions/S"}
 *
 * decoded with strict bounds: the body, the data, the address, the ids. historyId is an
 * unsigned 64-bit number (Gmail writes it as a JSON number; a string of digits is accepted).
 */
#ifndef GS_PUSH_MSG_H
#define GS_PUSH_MSG_H

#include <apr_pools.h>

#define GS_PUSH_BODY_MAX        (16 * 1024)
#define GS_PUSH_DATA_MAX        1024     /* base64 characters of message.data */
#define GS_PUSH_ADDRESS_MAX     320
#define GS_PUSH_MESSAGE_ID_MAX  128
#define GS_PUSH_SUBSCRIPTION_MAX 255

typedef struct {
    const char *email;         /* emailAddress, lower-cased */
    apr_uint64_t history_id;
    const char *message_id;    /* Pub/Sub's */
    const char *subscription;  /* NULL when absent */
} gs_push_msg_t;

/* Decodes body[0..len). APR_SUCCESS with *out filled (strings from p), or APR_EINVAL with *err
 * (static text) naming what is wrong. */
apr_status_t gs_push_msg_parse(apr_pool_t *p, const char *body, apr_size_t len,
                               gs_push_msg_t *out, const char **err);

#endif /* GS_PUSH_MSG_H */
