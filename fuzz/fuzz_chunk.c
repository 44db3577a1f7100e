/*
 * libFuzzer harness for ngx_model_chunk.c, differential: whatever the fast
 * read accepts, jansson must read to the same content and finish_reason,
 * with none of the failures that ngx_model_chunk() in ngx_model_client.c
 * would report (the checks below are that function's, in its order).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>

#include "ngx_model_chunk.h"


typedef struct {
    int          failed;
    int          has_content;
    int          has_reason;
    const char  *content;
    size_t       content_len;
    const char  *reason;
    size_t       reason_len;
} ngx_fuzz_slow_t;


static void
ngx_fuzz_slow(json_t *json, ngx_fuzz_slow_t *out)
{
    json_t  *error, *choices, *choice, *content, *reason;

    memset(out, 0, sizeof(ngx_fuzz_slow_t));

    if (json == NULL || !json_is_object(json)) {
        out->failed = 1;
        return;
    }

    error = json_object_get(json, "error");

    if (error && !json_is_null(error)) {
        out->failed = 1;
        return;
    }

    choices = json_object_get(json, "choices");

    if (choices == NULL) {
        return;
    }

    if (!json_is_array(choices)) {
        out->failed = 1;
        return;
    }

    if (json_array_size(choices) == 0) {
        return;
    }

    choice = json_array_get(choices, 0);

    if (!json_is_object(choice)) {
        out->failed = 1;
        return;
    }

    content = json_object_get(json_object_get(choice, "delta"), "content");

    if (content && !json_is_null(content)) {
        if (!json_is_string(content)) {
            out->failed = 1;
            return;
        }

        out->has_content = 1;
        out->content = json_string_value(content);
        out->content_len = json_string_length(content);
    }

    reason = json_object_get(choice, "finish_reason");

    if (json_is_string(reason)) {
        out->has_reason = 1;
        out->reason = json_string_value(reason);
        out->reason_len = json_string_length(reason);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char             *copy, *buf;
    json_t             *json;
    ngx_int_t           rc;
    json_error_t        err;
    ngx_model_chunk_t   fast;
    ngx_fuzz_slow_t     slow;

    /* memory of its own: reads past the chunk or the buffer are caught */
    copy = malloc(size + 1);
    buf = malloc(size + 1);
    memcpy(copy, data, size);

    rc = ngx_model_chunk_parse(copy, size, buf, &fast);

    json = json_loadb((const char *) copy, size, 0, &err);
    ngx_fuzz_slow(json, &slow);

    if (rc == NGX_OK
        && (slow.failed
            || fast.has_content != slow.has_content
            || fast.has_reason != slow.has_reason
            || (slow.has_content
                && (fast.content.len != slow.content_len
                    || memcmp(fast.content.data, slow.content,
                              slow.content_len) != 0))
            || (slow.has_reason
                && (fast.reason.len != slow.reason_len
                    || memcmp(fast.reason.data, slow.reason,
                              slow.reason_len) != 0))))
    {
        fprintf(stderr, "fast read differs from jansson's (%s): %s\n",
                json ? "parsed" : "not parsed", json ? "" : err.text);
        abort();
    }

    if (rc != NGX_OK && rc != NGX_DECLINED) {
        abort();
    }

    json_decref(json);
    free(copy);
    free(buf);

    return 0;
}
