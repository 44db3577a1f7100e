
/*
 * The outcome log of the split-against-whole harnesses.  Memory runs out
 * only in a broken harness: abort() makes libFuzzer keep the input.
 */

#include <stdlib.h>
#include <string.h>

#include "ngx_fuzz_log.h"


void
ngx_fuzz_log_put(ngx_fuzz_log_t *log, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }

    if (log->len + n > log->size) {
        log->size = (log->len + n) * 2;
        log->buf = realloc(log->buf, log->size);
        if (log->buf == NULL) {
            abort();
        }
    }

    memcpy(log->buf + log->len, p, n);
    log->len += n;
}


int
ngx_fuzz_log_same(ngx_fuzz_log_t *a, ngx_fuzz_log_t *b)
{
    return a->events == b->events && a->len == b->len
           && (a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0);
}
