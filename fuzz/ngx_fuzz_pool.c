
/*
 * The few pieces of nginx's core that the lower-floor parsers call, for
 * the fuzz harnesses (nginx-dev ships headers, not objects).  A pool is a
 * list of malloc'ed blocks, freed together, so that ASan sees each one.
 */

#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_fuzz_block_s  ngx_fuzz_block_t;

struct ngx_fuzz_block_s {
    ngx_fuzz_block_t  *next;
    u_char             data[];
};


ngx_pool_t *
ngx_create_pool(size_t size, ngx_log_t *log)
{
    return calloc(1, sizeof(ngx_pool_t));
}


void
ngx_destroy_pool(ngx_pool_t *pool)
{
    ngx_fuzz_block_t  *b, *next;

    for (b = (ngx_fuzz_block_t *) pool->large; b; b = next) {
        next = b->next;
        free(b);
    }

    free(pool);
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    ngx_fuzz_block_t  *b;

    b = malloc(sizeof(ngx_fuzz_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = (ngx_fuzz_block_t *) pool->large;
    pool->large = (ngx_pool_large_t *) b;

    return b->data;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_palloc(pool, size);
    if (p) {
        memset(p, 0, size);
    }

    return p;
}


/* blocks are kept until the pool goes, as nginx keeps small ones */

ngx_int_t
ngx_pfree(ngx_pool_t *pool, void *p)
{
    return NGX_DECLINED;
}


/*
 * ngx_snprintf() for the formats the parsers' messages use (%s, %d), which
 * mean the same to vsnprintf()
 */

u_char * ngx_cdecl
ngx_snprintf(u_char *buf, size_t max, const char *fmt, ...)
{
    int      n;
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf((char *) buf, max, fmt, args);
    va_end(args);

    if (n < 0) {
        return buf;
    }

    return buf + ngx_min((size_t) n, max ? max - 1 : 0);
}
