/*
 * A small per-worker cache of byte strings with a time to live, a size
 * bound (least recently used entries go first) and a tag: an entry is only
 * found under the tag it was stored with, so that a caller can invalidate
 * everything at once by changing the tag.  Knows nothing of its users.
 */

#ifndef _NGX_TTL_CACHE_H_INCLUDED_
#define _NGX_TTL_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct {
    ngx_rbtree_t        tree;
    ngx_rbtree_node_t   sentinel;
    ngx_queue_t         lru;
    ngx_uint_t          count;
    ngx_uint_t          max;
} ngx_ttl_cache_t;


void ngx_ttl_cache_init(ngx_ttl_cache_t *cache, ngx_uint_t max);

/* NGX_OK and the value (valid until the next call), or NGX_DECLINED. */
ngx_int_t ngx_ttl_cache_get(ngx_ttl_cache_t *cache, u_char *key, size_t klen,
    ngx_uint_t tag, ngx_str_t *value);

ngx_int_t ngx_ttl_cache_put(ngx_ttl_cache_t *cache, u_char *key, size_t klen,
    ngx_uint_t tag, u_char *value, size_t vlen, ngx_msec_t ttl);

void ngx_ttl_cache_delete(ngx_ttl_cache_t *cache, u_char *key, size_t klen);
void ngx_ttl_cache_flush(ngx_ttl_cache_t *cache);


#endif /* _NGX_TTL_CACHE_H_INCLUDED_ */
