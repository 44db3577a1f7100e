/*
 * Per-worker TTL cache: an rbtree on the key's CRC32, an LRU queue, and
 * entries allocated whole (key and value inline) on the heap.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_ttl_cache.h"


typedef struct {
    ngx_rbtree_node_t   node;
    ngx_queue_t         queue;
    ngx_msec_t          expires;
    ngx_uint_t          tag;
    size_t              klen;
    size_t              vlen;
    u_char              data[1];
} ngx_ttl_cache_entry_t;


static ngx_ttl_cache_entry_t *ngx_ttl_cache_find(ngx_ttl_cache_t *cache,
    u_char *key, size_t klen);
static void ngx_ttl_cache_remove(ngx_ttl_cache_t *cache,
    ngx_ttl_cache_entry_t *e);
static void ngx_ttl_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


void
ngx_ttl_cache_init(ngx_ttl_cache_t *cache, ngx_uint_t max)
{
    ngx_rbtree_init(&cache->tree, &cache->sentinel,
                    ngx_ttl_cache_insert_value);
    ngx_queue_init(&cache->lru);

    cache->count = 0;
    cache->max = max ? max : 1;
}


ngx_int_t
ngx_ttl_cache_get(ngx_ttl_cache_t *cache, u_char *key, size_t klen,
    ngx_uint_t tag, ngx_str_t *value)
{
    ngx_ttl_cache_entry_t  *e;

    e = ngx_ttl_cache_find(cache, key, klen);
    if (e == NULL) {
        return NGX_DECLINED;
    }

    if (e->tag != tag || (ngx_msec_int_t) (e->expires - ngx_current_msec) <= 0)
    {
        ngx_ttl_cache_remove(cache, e);
        return NGX_DECLINED;
    }

    ngx_queue_remove(&e->queue);
    ngx_queue_insert_head(&cache->lru, &e->queue);

    value->data = e->data + klen;
    value->len = e->vlen;

    return NGX_OK;
}


ngx_int_t
ngx_ttl_cache_put(ngx_ttl_cache_t *cache, u_char *key, size_t klen,
    ngx_uint_t tag, u_char *value, size_t vlen, ngx_msec_t ttl)
{
    ngx_queue_t            *q;
    ngx_ttl_cache_entry_t  *e;

    e = ngx_ttl_cache_find(cache, key, klen);
    if (e) {
        ngx_ttl_cache_remove(cache, e);
    }

    if (cache->count >= cache->max) {
        q = ngx_queue_last(&cache->lru);
        ngx_ttl_cache_remove(cache,
                             ngx_queue_data(q, ngx_ttl_cache_entry_t, queue));
    }

    e = ngx_alloc(offsetof(ngx_ttl_cache_entry_t, data) + klen + vlen,
                  ngx_cycle->log);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->node.key = ngx_crc32_short(key, klen);
    e->expires = ngx_current_msec + ttl;
    e->tag = tag;
    e->klen = klen;
    e->vlen = vlen;
    ngx_memcpy(e->data, key, klen);
    ngx_memcpy(e->data + klen, value, vlen);

    ngx_rbtree_insert(&cache->tree, &e->node);
    ngx_queue_insert_head(&cache->lru, &e->queue);
    cache->count++;

    return NGX_OK;
}


void
ngx_ttl_cache_delete(ngx_ttl_cache_t *cache, u_char *key, size_t klen)
{
    ngx_ttl_cache_entry_t  *e;

    e = ngx_ttl_cache_find(cache, key, klen);
    if (e) {
        ngx_ttl_cache_remove(cache, e);
    }
}


void
ngx_ttl_cache_flush(ngx_ttl_cache_t *cache)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&cache->lru)) {
        q = ngx_queue_head(&cache->lru);
        ngx_ttl_cache_remove(cache,
                             ngx_queue_data(q, ngx_ttl_cache_entry_t, queue));
    }
}


static ngx_ttl_cache_entry_t *
ngx_ttl_cache_find(ngx_ttl_cache_t *cache, u_char *key, size_t klen)
{
    uint32_t                hash;
    ngx_int_t               rc;
    ngx_rbtree_node_t      *node, *sentinel;
    ngx_ttl_cache_entry_t  *e;

    hash = ngx_crc32_short(key, klen);

    node = cache->tree.root;
    sentinel = cache->tree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        /* equal hashes are ordered by the key itself, as inserted */
        e = (ngx_ttl_cache_entry_t *) node;
        rc = ngx_memn2cmp(key, e->data, klen, e->klen);

        if (rc == 0) {
            return e;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_ttl_cache_remove(ngx_ttl_cache_t *cache, ngx_ttl_cache_entry_t *e)
{
    ngx_rbtree_delete(&cache->tree, &e->node);
    ngx_queue_remove(&e->queue);
    cache->count--;

    ngx_free(e);
}


static void
ngx_ttl_cache_insert_value(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t      **p;
    ngx_ttl_cache_entry_t   *n, *t;

    n = (ngx_ttl_cache_entry_t *) node;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            t = (ngx_ttl_cache_entry_t *) temp;
            p = (ngx_memn2cmp(n->data, t->data, n->klen, t->klen) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}
