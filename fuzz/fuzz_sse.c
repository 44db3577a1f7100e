
/*
 * libFuzzer harness for ngx_sse.c.  The first byte picks where the rest is
 * split into chunks; the events (type and data) of the split stream must
 * be the same, in order, as those of the whole stream, and so must the
 * result and the error.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_sse.h"
#include "ngx_fuzz_log.h"


#define NGX_FUZZ_MAX_LINE  512
#define NGX_FUZZ_MAX_DATA  2048


static ngx_int_t
ngx_fuzz_event(void *ctx, ngx_str_t *type, u_char *data, size_t len)
{
    ngx_fuzz_log_t  *log = ctx;

    /* lengths first: "a","bc" and "ab","c" must not look the same */
    ngx_fuzz_log_put(log, (u_char *) &type->len, sizeof(size_t));
    ngx_fuzz_log_put(log, type->data, type->len);
    ngx_fuzz_log_put(log, (u_char *) &len, sizeof(size_t));
    ngx_fuzz_log_put(log, data, len);

    log->events++;

    /* a handler may stop the parser: the tenth event does */
    return log->events == 10 ? NGX_DECLINED : NGX_OK;
}


static ngx_int_t
ngx_fuzz_run(u_char *data, size_t size, size_t step, ngx_fuzz_log_t *log,
    const char **error)
{
    size_t             off, n;
    u_char            *copy;
    ngx_int_t          rc;
    ngx_pool_t        *pool;
    ngx_sse_parser_t   p;

    pool = ngx_create_pool(1024, NULL);
    ngx_sse_init(&p, pool, NGX_FUZZ_MAX_LINE, NGX_FUZZ_MAX_DATA,
                 ngx_fuzz_event, log);

    rc = NGX_OK;

    for (off = 0; off < size; off += n) {
        n = step ? ngx_min(step, size - off) : size - off;

        /* each chunk in memory of its own: reads past it are caught */
        copy = malloc(n);
        memcpy(copy, data + off, n);
        rc = ngx_sse_feed(&p, copy, n);
        free(copy);

        if (rc != NGX_OK) {
            break;
        }
    }

    *error = p.error;
    ngx_destroy_pool(pool);

    return rc;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t           step;
    ngx_int_t        rc1, rc2;
    const char      *e1, *e2;
    ngx_fuzz_log_t   whole, split;

    if (size == 0) {
        return 0;
    }

    step = data[0] % 17 + 1;
    data++;
    size--;

    memset(&whole, 0, sizeof(whole));
    memset(&split, 0, sizeof(split));

    rc1 = ngx_fuzz_run((u_char *) data, size, 0, &whole, &e1);
    rc2 = ngx_fuzz_run((u_char *) data, size, step, &split, &e2);

    if (rc1 != rc2 || !ngx_fuzz_log_same(&whole, &split)
        || (e1 == NULL) != (e2 == NULL)
        || (e1 && strcmp(e1, e2) != 0))
    {
        fprintf(stderr, "split at %zu: rc %d/%d, events %lu/%lu, error %s/%s\n",
                step, (int) rc1, (int) rc2, (unsigned long) whole.events,
                (unsigned long) split.events, e1 ? e1 : "-", e2 ? e2 : "-");
        abort();
    }

    free(whole.buf);
    free(split.buf);

    return 0;
}
