
/*
 * What a harness saw, appended as bytes: the outcome of a whole read is
 * compared with that of a split one.
 */

#ifndef _NGX_FUZZ_LOG_H_INCLUDED_
#define _NGX_FUZZ_LOG_H_INCLUDED_


#include <stddef.h>


typedef struct {
    unsigned char  *buf;
    size_t          len;
    size_t          size;
    size_t          events;
} ngx_fuzz_log_t;


void ngx_fuzz_log_put(ngx_fuzz_log_t *log, const void *p, size_t n);
int ngx_fuzz_log_same(ngx_fuzz_log_t *a, ngx_fuzz_log_t *b);


#endif /* _NGX_FUZZ_LOG_H_INCLUDED_ */
