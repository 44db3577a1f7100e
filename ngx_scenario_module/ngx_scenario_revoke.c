
/*
 * Live connections that must end with their login session: a chat
 * watches its token, and logout, heard on "scenario:invalidate" by every
 * worker of every instance (ngx_scenario_cache.c), ends each watcher of
 * that token at once.  Per worker, a list: logouts are rare next to the
 * messages of a chat, and a list costs a chat nothing while it lives.
 *
 * A chat also watches its member: a role change or a removal from the
 * organization ("member:<id>" on the same channel) ends it the same way;
 * a reconnect is admitted only where the member may still go.
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


/* a member's key: the hash of "member:<id>", as long as a token's */

void
ngx_scenario_member_key(ngx_str_t *id, u_char *key)
{
    u_char  name[sizeof("member:") - 1 + NGX_INT64_LEN];
    size_t  len;

    len = ngx_snprintf(name, sizeof(name), "member:%V", id) - name;

    ngx_scenario_token_key(name, len, key);
}


ngx_int_t
ngx_scenario_watch_member(ngx_http_request_t *r, ngx_str_t *id,
    ngx_scenario_revoked_pt handler, void *data)
{
    u_char     hex[NGX_SCENARIO_HASH_HEX];
    ngx_str_t  key;

    ngx_scenario_member_key(id, hex);

    key.data = hex;
    key.len = NGX_SCENARIO_HASH_HEX;

    return ngx_scenario_watch(r, &key, handler, data);
}
