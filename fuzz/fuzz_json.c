
/*
 * libFuzzer harness for the JSON body path of ngx_http_json.c: whatever the
 * bytes, a parse error's message is short printable ASCII that the error
 * shape can carry (the 17-byte body of issue 13 once broke it), and a
 * parsed value survives a dump and a parse unchanged.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_json.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     msg[128], *p;
    char      *doc;
    json_t    *json, *again, *shape;
    ngx_str_t  value;

    memset(msg, 0xff, sizeof(msg));

    json = ngx_http_json_parse((u_char *) data, size, msg, sizeof(msg));

    if (json == NULL) {
        for (p = msg; *p; p++) {
            if (p == msg + sizeof(msg) - 1 || *p < 0x20 || *p > 0x7e) {
                fprintf(stderr, "message not ASCII at %d\n", (int) (p - msg));
                abort();
            }
        }

        shape = json_pack("{s:{s:s,s:s}}", "error", "code", "bad_request",
                          "message", (char *) msg);
        if (shape == NULL) {
            abort();
        }

        json_decref(shape);
        return 0;
    }

    doc = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (doc == NULL) {
        abort();
    }

    again = json_loads(doc, JSON_DECODE_ANY, NULL);
    if (again == NULL || !json_equal(json, again)) {
        abort();
    }

    /* the field reader on every shape of value */
    if (json_is_object(json)) {
        (void) ngx_http_json_string(json, "email", &value, 0, 254);
        (void) ngx_http_json_string(json, "a", &value, 1, 3);
    }

    free(doc);
    json_decref(again);
    json_decref(json);

    return 0;
}
