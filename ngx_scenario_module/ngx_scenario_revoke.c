
/*
 * Live connections that must end with their login session: a chat
 * watches its token, and logout, heard on "scenario:invalidate" by every
 * worker of every instance (ngx_scenario_cache.c), ends each watcher of
 * that token at once.  Per worker, a list: logouts are rare next to the
 * messages of a chat, and a list costs a chat nothing while it lives.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


struct ngx_scenario_watch_s {
    ngx_queue_t               queue;
    u_char                    key[NGX_SCENARIO_HASH_HEX];
    ngx_scenario_revoked_pt   handler;
    void                     *data;
};


static void ngx_scenario_watch_cleanup(void *data);


static ngx_queue_t  ngx_scenario_watches;


void
ngx_scenario_revoke_init_process(void)
{
    ngx_queue_init(&ngx_scenario_watches);
}


/* key: the token's hash in hex; the watch ends with r->pool */

ngx_int_t
ngx_scenario_watch(ngx_http_request_t *r, ngx_str_t *key,
    ngx_scenario_revoked_pt handler, void *data)
{
    ngx_pool_cleanup_t    *cln;
    ngx_scenario_watch_t  *w;

    if (key->len != NGX_SCENARIO_HASH_HEX) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_scenario_watch_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    w = cln->data;
    ngx_memcpy(w->key, key->data, NGX_SCENARIO_HASH_HEX);
    w->handler = handler;
    w->data = data;

    ngx_queue_insert_tail(&ngx_scenario_watches, &w->queue);

    cln->handler = ngx_scenario_watch_cleanup;

    return NGX_OK;
}


static void
ngx_scenario_watch_cleanup(void *data)
{
    ngx_scenario_watch_t  *w = data;

    ngx_queue_remove(&w->queue);
}


/*
 * The handlers run here and must not end their request synchronously; a
 * watcher that goes later is taken off by its pool's cleanup.
 */

void
ngx_scenario_revoked(ngx_str_t *key)
{
    ngx_queue_t           *q, *next;
    ngx_scenario_watch_t  *w;

    if (key->len != NGX_SCENARIO_HASH_HEX
        || ngx_queue_empty(&ngx_scenario_watches))
    {
        return;
    }

    for (q = ngx_queue_head(&ngx_scenario_watches);
         q != ngx_queue_sentinel(&ngx_scenario_watches);
         q = next)
    {
        next = ngx_queue_next(q);
        w = ngx_queue_data(q, ngx_scenario_watch_t, queue);

        if (ngx_strncmp(w->key, key->data, NGX_SCENARIO_HASH_HEX) == 0) {
            w->handler(w->data);
        }
    }
}
