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
 *
 * A token that expires ends its watchers too: each watch has a timer at
 * the key's expiry (PTTL, asked once at the start), which asks again when
 * it fires, since a sliding renewal by another request may have moved it;
 * one command per token lifetime, not per message.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


#define NGX_SCENARIO_WATCH_RETRY  5000    /* ms, after a failed PTTL */


struct ngx_scenario_watch_s {
    ngx_queue_t               queue;
    u_char                    key[NGX_SCENARIO_HASH_HEX];
    ngx_scenario_revoked_pt   handler;
    void                     *data;
    ngx_redis_pool_t         *redis;
    ngx_redis_op_t           *op;          /* the PTTL in flight */
    unsigned                  ended:1;
    unsigned                  expires:1;

    /* last: a watch that does not expire is allocated without it */
    ngx_event_t               expiry;
};


static ngx_int_t ngx_scenario_watch_add(ngx_http_request_t *r,
    ngx_str_t *key, ngx_scenario_revoked_pt handler, void *data,
    ngx_uint_t expires);
static void ngx_scenario_watch_cleanup(void *data);
static void ngx_scenario_watch_ttl(ngx_scenario_watch_t *w);
static void ngx_scenario_watch_ttl_done(void *data, redisReply *reply,
    ngx_int_t rc);
static void ngx_scenario_watch_expiry(ngx_event_t *ev);


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
    return ngx_scenario_watch_add(r, key, handler, data, 1);
}


/* expires: the key is a token's, whose expiry also ends the watch */

static ngx_int_t
ngx_scenario_watch_add(ngx_http_request_t *r, ngx_str_t *key,
    ngx_scenario_revoked_pt handler, void *data, ngx_uint_t expires)
{
    ngx_pool_cleanup_t        *cln;
    ngx_scenario_watch_t      *w;
    ngx_scenario_main_conf_t  *smcf;

    if (key->len != NGX_SCENARIO_HASH_HEX) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    /* never a pool block more: a WebSocket keeps its blocks for its life */
    w = ngx_scenario_calloc_kept(r, expires ? sizeof(ngx_scenario_watch_t)
                                    : offsetof(ngx_scenario_watch_t, expiry));
    if (w == NULL) {
        return NGX_ERROR;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    ngx_memcpy(w->key, key->data, NGX_SCENARIO_HASH_HEX);
    w->handler = handler;
    w->data = data;
    w->redis = smcf->redis_pool;

    if (expires) {
        w->expires = 1;
        w->expiry.handler = ngx_scenario_watch_expiry;
        w->expiry.data = w;
        w->expiry.log = r->connection->log;
        w->expiry.cancelable = 1;
    }

    ngx_queue_insert_tail(&ngx_scenario_watches, &w->queue);

    cln->handler = ngx_scenario_watch_cleanup;
    cln->data = w;

    if (expires) {
        ngx_scenario_watch_ttl(w);
    }

    return NGX_OK;
}


static void
ngx_scenario_watch_cleanup(void *data)
{
    ngx_scenario_watch_t  *w = data;

    ngx_queue_remove(&w->queue);

    if (w->op) {
        ngx_redis_op_cancel(w->op);
        w->op = NULL;
    }

    if (w->expires && w->expiry.timer_set) {
        ngx_del_timer(&w->expiry);
    }
}


static void
ngx_scenario_watch_ttl(ngx_scenario_watch_t *w)
{
    u_char       key[sizeof("sess:") - 1 + NGX_SCENARIO_HASH_HEX];
    size_t       argvlen[2];
    const char  *argv[2];

    ngx_memcpy(key, "sess:", sizeof("sess:") - 1);
    ngx_memcpy(key + sizeof("sess:") - 1, w->key, NGX_SCENARIO_HASH_HEX);

    argv[0] = "PTTL";
    argvlen[0] = 4;
    argv[1] = (char *) key;
    argvlen[1] = sizeof(key);

    w->op = ngx_redis_command(w->redis, ngx_scenario_watch_ttl_done, w, 2,
                              argv, argvlen);

    if (w->op == NULL) {
        ngx_add_timer(&w->expiry, NGX_SCENARIO_WATCH_RETRY);
    }
}


static void
ngx_scenario_watch_ttl_done(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_scenario_watch_t  *w = data;

    w->op = NULL;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_INTEGER) {
        /* Redis cannot say: ask again later, the chat goes on meanwhile */
        ngx_add_timer(&w->expiry, NGX_SCENARIO_WATCH_RETRY);
        return;
    }

    if (reply->integer == -1) {
        return;                         /* a key that never expires */
    }

    if (reply->integer == -2) {
        if (!w->ended) {
            w->ended = 1;
            ngx_log_error(NGX_LOG_INFO, w->expiry.log, 0,
                          "chat: its login session expired");
            w->handler(w->data);
        }

        return;
    }

    /* a little past the expiry, so that Redis has seen it too */
    ngx_add_timer(&w->expiry, (ngx_msec_t) reply->integer + 10);
}


static void
ngx_scenario_watch_expiry(ngx_event_t *ev)
{
    ngx_scenario_watch_t  *w = ev->data;

    if (w->op == NULL && !w->ended) {
        ngx_scenario_watch_ttl(w);
    }
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

    /* a member does not expire: no "sess:" key to ask about */
    return ngx_scenario_watch_add(r, &key, handler, data, 0);
}


/*
 * What ends a live connection of a signed-in user: a logout or the expiry
 * of its token, and a role change or a removal of its member.
 */

ngx_int_t
ngx_scenario_watch_login(ngx_http_request_t *r,
    ngx_scenario_revoked_pt handler, void *data)
{
    ngx_str_t            key;
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    if (ctx->token_key.len > sizeof("sess:") - 1) {
        key.data = ctx->token_key.data + sizeof("sess:") - 1;
        key.len = ctx->token_key.len - (sizeof("sess:") - 1);

        if (ngx_scenario_watch(r, &key, handler, data) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_scenario_watch_member(r, &ctx->user_id_text, handler, data);
}
