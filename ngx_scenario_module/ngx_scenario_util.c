
/*
 * The per-request plumbing every flow calls: the request's context,
 * Postgres and Redis calls tied to the request's life (cancelled if the
 * request goes first), finalizing, and the common answers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


static ngx_int_t ngx_scenario_hold(ngx_http_request_t *r,
    ngx_scenario_ctx_t *ctx);
static void ngx_scenario_cleanup(void *data);
static void ngx_scenario_pg_done(void *data, PGresult *res, ngx_int_t rc);
static ngx_scenario_ctx_t *ngx_scenario_redis_ctx(ngx_http_request_t *r,
    ngx_scenario_redis_pt handler);
static void ngx_scenario_redis_done(void *data, redisReply *reply,
    ngx_int_t rc);


ngx_scenario_ctx_t *
ngx_scenario_ctx(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->main->pool, sizeof(ngx_scenario_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ngx_http_set_ctx(r->main, ctx, ngx_scenario_module);

    return ctx;
}


/*
 * A zeroed allocation of its own, freed with the pool (after its
 * cleanups): an upgraded request keeps its 1 KiB blocks for the
 * connection's life, and state that fills part of one more block would
 * keep all of it.  ngx_pmemalign() always allocates apart from the blocks.
 */

void *
ngx_scenario_calloc_apart(ngx_pool_t *pool, size_t size)
{
    void  *p;

    p = ngx_pmemalign(pool, size, NGX_ALIGNMENT);
    if (p) {
        ngx_memzero(p, size);
    }

    return p;
}


/* a block of the pool from its current one on has size bytes free */

static ngx_uint_t
ngx_scenario_pool_room(ngx_pool_t *pool, size_t size)
{
    u_char      *m;
    ngx_pool_t  *p;

    if (size > pool->max) {
        return 0;
    }

    for (p = pool->current; p; p = p->d.next) {
        m = ngx_align_ptr(p->d.last, NGX_ALIGNMENT);

        if (m <= p->d.end && (size_t) (p->d.end - m) >= size) {
            return 1;
        }
    }

    return 0;
}


/*
 * Zeroed memory kept as long as r, never in a block more: in the free room
 * of r's pool (beside room for one cleanup more: an object's cleanup may
 * be added after it), else, when the connection ends with r (no
 * keepalive, as an upgraded one), of the connection's pool, which is freed
 * after r's, else apart.  An upgraded request keeps its blocks for the
 * connection's life: a small object in a new 1 KiB block would keep most
 * of it unused.  For what an upgraded request allocates last: anything
 * after it may find the room taken.
 */

void *
ngx_scenario_calloc_kept(ngx_http_request_t *r, size_t size)
{
    if (ngx_scenario_pool_room(r->pool,
                               ngx_align(size, NGX_ALIGNMENT)
                               + sizeof(ngx_pool_cleanup_t)))
    {
        return ngx_pcalloc(r->pool, size);
    }

    if (r == r->main
        && !r->keepalive
        && r->http_version < NGX_HTTP_VERSION_20
        && ngx_scenario_pool_room(r->connection->pool, size))
    {
        return ngx_pcalloc(r->connection->pool, size);
    }

    return ngx_scenario_calloc_apart(r->pool, size);
}


#if (NGX_DEBUG)

/* a pool's blocks: the debug log shows what an upgraded request keeps */

ngx_uint_t
ngx_scenario_pool_blocks(ngx_pool_t *pool)
{
    ngx_uint_t   n;
    ngx_pool_t  *p;

    n = 0;

    for (p = pool; p; p = p->d.next) {
        n++;
    }

    return n;
}

#endif


/* an operation in flight is cancelled if the request goes first */

static ngx_int_t
ngx_scenario_hold(ngx_http_request_t *r, ngx_scenario_ctx_t *ctx)
{
    ngx_http_cleanup_t  *cln;

    if (ctx->cleanup_set) {
        return NGX_OK;
    }

    cln = ngx_http_cleanup_add(r->main, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_scenario_cleanup;
    cln->data = ctx;
    ctx->cleanup_set = 1;

    return NGX_OK;
}


static void
ngx_scenario_cleanup(void *data)
{
    ngx_scenario_ctx_t  *ctx = data;

    if (ctx->pg_op) {
        ngx_pg_op_cancel(ctx->pg_op);
        ctx->pg_op = NULL;
    }

    if (ctx->redis_op) {
        ngx_redis_op_cancel(ctx->redis_op);
        ctx->redis_op = NULL;
    }
}


ngx_int_t
ngx_scenario_pg(ngx_http_request_t *r, const char *sql, ngx_uint_t nparams,
    ngx_str_t *params, ngx_scenario_pg_pt handler)
{
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_ctx(r);

    if (ctx == NULL || ngx_scenario_hold(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->pg_handler = handler;
    ctx->pg_op = ngx_pg_query(smcf->pg_pool, sql, nparams, params,
                              ngx_scenario_pg_done, r);

    return ctx->pg_op ? NGX_OK : NGX_DECLINED;
}


static void
ngx_scenario_pg_done(void *data, PGresult *res, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_scenario_ctx_t  *ctx;

    r = data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    ctx->pg_op = NULL;
    ctx->pg_handler(r, res, rc);

    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_scenario_redis(ngx_http_request_t *r, ngx_scenario_redis_pt handler,
    int argc, const char **argv, const size_t *argvlen)
{
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_redis_ctx(r, handler);

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->redis_op = ngx_redis_command(smcf->redis_pool,
                                      ngx_scenario_redis_done, r, argc,
                                      argv, argvlen);

    return ctx->redis_op ? NGX_OK : NGX_DECLINED;
}


/* an EVAL: keys[0..nkeys-1], then args[0..nargs-1] */

ngx_int_t
ngx_scenario_redis_eval(ngx_http_request_t *r, ngx_scenario_redis_pt handler,
    ngx_str_t *script, ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs,
    ngx_str_t *args)
{
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_redis_ctx(r, handler);

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->redis_op = ngx_redis_eval(smcf->redis_pool, ngx_scenario_redis_done,
                                   r, script, nkeys, keys, nargs, args);

    return ctx->redis_op ? NGX_OK : NGX_DECLINED;
}


static ngx_scenario_ctx_t *
ngx_scenario_redis_ctx(ngx_http_request_t *r, ngx_scenario_redis_pt handler)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    if (ctx == NULL || ngx_scenario_hold(r, ctx) != NGX_OK) {
        return NULL;
    }

    ctx->redis_handler = handler;

    return ctx;
}


static void
ngx_scenario_redis_done(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_scenario_ctx_t  *ctx;

    r = data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    ctx->redis_op = NULL;

    if (rc == NGX_OK && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "redis: %*s",
                      (size_t) reply->len, reply->str);
        rc = NGX_ERROR;
    }

    ctx->redis_handler(r, reply, rc);

    ngx_http_run_posted_requests(c);
}


void
ngx_scenario_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_uint_t  status;

    status = (rc >= NGX_HTTP_OK) ? (ngx_uint_t) rc : r->headers_out.status;

    if (status >= 500) {
        ngx_scenario_count(r, NGX_SCENARIO_M_ERR_5XX, 1);

    } else if (status >= 400) {
        ngx_scenario_count(r, NGX_SCENARIO_M_ERR_4XX, 1);
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * In a content handler, after starting a Postgres or Redis operation: wait
 * for it, or answer at once when it could not start.
 */

ngx_int_t
ngx_scenario_wait(ngx_http_request_t *r, ngx_int_t rc, const char *what)
{
    if (rc == NGX_DECLINED) {
        return ngx_scenario_unavailable(r, what);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->main->count++;

    return NGX_DONE;
}


/* In a callback: the next operation could not start, the request ends. */

void
ngx_scenario_fail(ngx_http_request_t *r, ngx_int_t rc, const char *what)
{
    ngx_scenario_finalize(r, rc == NGX_DECLINED
                             ? ngx_scenario_unavailable(r, what)
                             : NGX_HTTP_INTERNAL_SERVER_ERROR);
}


ngx_int_t
ngx_scenario_unavailable(ngx_http_request_t *r, const char *what)
{
    char  msg[128];

    ngx_scenario_count(r, NGX_SCENARIO_M_UNAVAILABLE, 1);

    ngx_snprintf((u_char *) msg, sizeof(msg),
                 "%s is unavailable, try again shortly%Z", what);

    (void) ngx_http_json_retry_after(r, 1);

    return ngx_http_json_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                               "unavailable", msg);
}


ngx_int_t
ngx_scenario_unauthorized(ngx_http_request_t *r)
{
    return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                               "authentication is required");
}


/* 429 with Retry-After: a limit holds for so many seconds more */

ngx_int_t
ngx_scenario_rate_limited(ngx_http_request_t *r, time_t retry,
    const char *msg)
{
    (void) ngx_http_json_retry_after(r, retry);

    return ngx_http_json_error(r, NGX_HTTP_TOO_MANY_REQUESTS, "rate_limited",
                               msg);
}


void
ngx_scenario_count(ngx_http_request_t *r, ngx_uint_t metric,
    ngx_atomic_int_t n)
{
    ngx_scenario_main_conf_t     *smcf;
    ngx_scenario_metrics_slot_t  *slot;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    if (smcf->metrics) {
        slot = &smcf->metrics->w[ngx_worker % NGX_SCENARIO_M_SLOTS];
        (void) ngx_atomic_fetch_add(&slot->v[metric], n);
    }
}


/* a model call ended: its outcome and latency for /metrics */

void
ngx_scenario_model_observe(ngx_http_request_t *r, ngx_int_t rc,
    ngx_msec_t started)
{
    ngx_uint_t  i;
    ngx_msec_t  ms;

    static ngx_msec_t  bounds[] = { 500, 1000, 2000, 5000, 10000, 30000 };

    ms = ngx_current_msec - started;

    ngx_scenario_count(r, rc == NGX_OK ? NGX_SCENARIO_M_MODEL_OK
                                       : NGX_SCENARIO_M_MODEL_ERROR, 1);
    ngx_scenario_count(r, NGX_SCENARIO_M_MODEL_MS, ms);

    for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        if (ms <= bounds[i]) {
            ngx_scenario_count(r, NGX_SCENARIO_M_MODEL_LE_05 + i, 1);
        }
    }
}


ngx_int_t
ngx_scenario_method_not_allowed(ngx_http_request_t *r, const char *allow)
{
    ngx_str_t  v;

    v.data = (u_char *) allow;
    v.len = ngx_strlen(allow);

    if (ngx_http_headers_add(r, "Allow", &v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_json_error(r, NGX_HTTP_NOT_ALLOWED, "method_not_allowed",
                               "this method is not allowed here");
}


/* the context of an authenticated request, NULL when there is no user */

ngx_scenario_ctx_t *
ngx_scenario_user(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    if (ctx == NULL || ctx->user_id == 0) {
        return NULL;
    }

    return ctx;
}
