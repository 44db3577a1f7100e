/*
 * Operations: GET /healthz (Postgres and Redis asked in parallel) and
 * GET /metrics (Prometheus text).  Counters live in shared memory so that
 * every worker's requests are counted; pool figures are those of the worker
 * that answers, labelled with its pid.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


static void ngx_scenario_healthz_pg(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
static void ngx_scenario_healthz_redis(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_healthz_answer(ngx_http_request_t *r);
static ngx_int_t ngx_scenario_metrics_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);


static ngx_str_t  ngx_scenario_zone_name = ngx_string("scenario_metrics");

static ngx_str_t  ngx_scenario_text_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");


/* each family's HELP and TYPE come right before its samples */
static const char  *ngx_scenario_metric_lines[] = {
    "# HELP scenario_requests_total Requests to the module's handlers.\n"
    "# TYPE scenario_requests_total counter\n"
    "scenario_requests_total %uA\n",
    "# HELP scenario_logins_total Login attempts by result.\n"
    "# TYPE scenario_logins_total counter\n"
    "scenario_logins_total{result=\"ok\"} %uA\n",
    "scenario_logins_total{result=\"failed\"} %uA\n",
    "scenario_logins_total{result=\"rate_limited\"} %uA\n",
    "# HELP scenario_registrations_total Accounts created.\n"
    "# TYPE scenario_registrations_total counter\n"
    "scenario_registrations_total %uA\n",
    "# HELP scenario_logouts_total Sessions ended by logout.\n"
    "# TYPE scenario_logouts_total counter\n"
    "scenario_logouts_total %uA\n",
    "# HELP scenario_auth_checks_total Token checks of "
    "scenario_auth_required.\n"
    "# TYPE scenario_auth_checks_total counter\n"
    "scenario_auth_checks_total{result=\"ok\"} %uA\n",
    "scenario_auth_checks_total{result=\"denied\"} %uA\n",
    "# HELP scenario_errors_total Error answers by class.\n"
    "# TYPE scenario_errors_total counter\n"
    "scenario_errors_total{class=\"4xx\"} %uA\n",
    "scenario_errors_total{class=\"5xx\"} %uA\n",
    "# HELP scenario_unavailable_total Answers 503 for a backend down.\n"
    "# TYPE scenario_unavailable_total counter\n"
    "scenario_unavailable_total %uA\n",
    "# HELP scenario_active_chats Open chat connections.\n"
    "# TYPE scenario_active_chats gauge\n"
    "scenario_active_chats %uA\n",
    "# HELP scenario_model_calls_total Calls of the model upstream.\n"
    "# TYPE scenario_model_calls_total counter\n"
    "scenario_model_calls_total{result=\"ok\"} %uA\n",
    "scenario_model_calls_total{result=\"error\"} %uA\n",
    "# HELP scenario_model_latency_seconds Time of a whole model call.\n"
    "# TYPE scenario_model_latency_seconds histogram\n"
    "scenario_model_latency_seconds_bucket{le=\"0.5\"} %uA\n",
    "scenario_model_latency_seconds_bucket{le=\"1\"} %uA\n",
    "scenario_model_latency_seconds_bucket{le=\"2\"} %uA\n",
    "scenario_model_latency_seconds_bucket{le=\"5\"} %uA\n",
    "scenario_model_latency_seconds_bucket{le=\"10\"} %uA\n",
    "scenario_model_latency_seconds_bucket{le=\"30\"} %uA\n",
    NULL                                 /* the sum, written below */
};


ngx_int_t
ngx_scenario_healthz_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    const char          *argv[1];
    size_t               argvlen[1];
    ngx_scenario_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_json_error(r, NGX_HTTP_NOT_ALLOWED,
                                   "method_not_allowed",
                                   "this method is not allowed here");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_scenario_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->pending = 2;

    rc = ngx_scenario_pg(r, "SELECT 1", 0, NULL, ngx_scenario_healthz_pg);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->pending--;
    }

    argv[0] = "PING";
    argvlen[0] = 4;

    rc = ngx_scenario_redis(r, ngx_scenario_healthz_redis, 1, argv, argvlen);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->pending--;
    }

    r->main->count++;

    if (ctx->pending == 0) {
        ngx_scenario_healthz_answer(r);
    }

    return NGX_DONE;
}


static void
ngx_scenario_healthz_pg(ngx_http_request_t *r, PGresult *res, ngx_int_t rc)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);
    ctx->pg_ok = (rc == NGX_OK && ngx_pg_result_ok(res));

    if (--ctx->pending == 0) {
        ngx_scenario_healthz_answer(r);
    }
}


static void
ngx_scenario_healthz_redis(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);
    ctx->redis_ok = (rc == NGX_OK && reply->type == REDIS_REPLY_STATUS);

    if (--ctx->pending == 0) {
        ngx_scenario_healthz_answer(r);
    }
}


static void
ngx_scenario_healthz_answer(ngx_http_request_t *r)
{
    json_t              *json;
    ngx_uint_t           status;
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    json = json_pack("{s:s,s:s}",
                     "postgres", ctx->pg_ok ? "ok" : "down",
                     "redis", ctx->redis_ok ? "ok" : "down");

    if (json == NULL || ngx_http_json_own(r->pool, json) == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    status = NGX_HTTP_OK;

    if (!ctx->pg_ok || !ctx->redis_ok) {
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        (void) ngx_http_json_retry_after(r, 1);
    }

    ngx_scenario_finalize(r, ngx_http_json_send(r, status, json));
}


ngx_int_t
ngx_scenario_metrics_handler(ngx_http_request_t *r)
{
    size_t                     len;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    ngx_uint_t                 i, w;
    ngx_chain_t                out;
    ngx_atomic_uint_t          sum[NGX_SCENARIO_M_LAST];
    ngx_pg_pool_stats_t        pg;
    ngx_redis_pool_stats_t     rd;
    ngx_scenario_main_conf_t  *smcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_json_error(r, NGX_HTTP_NOT_ALLOWED,
                                   "method_not_allowed",
                                   "this method is not allowed here");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    ngx_pg_pool_stats(smcf->pg_pool, &pg);
    ngx_redis_pool_stats(smcf->redis_pool, &rd);

    len = 8192;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < NGX_SCENARIO_M_LAST; i++) {
        sum[i] = 0;
        for (w = 0; w < NGX_SCENARIO_M_SLOTS; w++) {
            sum[i] += smcf->metrics->w[w].v[i];
        }

        if (ngx_scenario_metric_lines[i]) {
            b->last = ngx_slprintf(b->last, b->end,
                                    ngx_scenario_metric_lines[i],
                                   sum[i]);
        }
    }

    /* +Inf is every call; the sum is kept in milliseconds */
    b->last = ngx_slprintf(b->last, b->end,
        "scenario_model_latency_seconds_bucket{le=\"+Inf\"} %uA\n"
        "scenario_model_latency_seconds_sum %uA.%03uA\n"
        "scenario_model_latency_seconds_count %uA\n",
        sum[NGX_SCENARIO_M_MODEL_OK] + sum[NGX_SCENARIO_M_MODEL_ERROR],
        sum[NGX_SCENARIO_M_MODEL_MS] / 1000,
        sum[NGX_SCENARIO_M_MODEL_MS] % 1000,
        sum[NGX_SCENARIO_M_MODEL_OK] + sum[NGX_SCENARIO_M_MODEL_ERROR]);

    b->last = ngx_slprintf(b->last, b->end,
        "# HELP scenario_pool_connections Pool connections of the worker "
        "that answered.\n"
        "# TYPE scenario_pool_connections gauge\n"
        "scenario_pool_connections{pool=\"postgres\",state=\"configured\","
        "pid=\"%P\"} %ui\n"
        "scenario_pool_connections{pool=\"postgres\",state=\"connected\","
        "pid=\"%P\"} %ui\n"
        "scenario_pool_connections{pool=\"postgres\",state=\"busy\","
        "pid=\"%P\"} %ui\n"
        "scenario_pool_connections{pool=\"redis\",state=\"configured\","
        "pid=\"%P\"} %ui\n"
        "scenario_pool_connections{pool=\"redis\",state=\"connected\","
        "pid=\"%P\"} %ui\n"
        "# HELP scenario_pool_waiting Operations waiting or in flight.\n"
        "# TYPE scenario_pool_waiting gauge\n"
        "scenario_pool_waiting{pool=\"postgres\",pid=\"%P\"} %ui\n"
        "scenario_pool_waiting{pool=\"redis\",pid=\"%P\"} %ui\n"
        "# HELP scenario_pool_operations_total Queries and commands sent.\n"
        "# TYPE scenario_pool_operations_total counter\n"
        "scenario_pool_operations_total{pool=\"postgres\",pid=\"%P\"} %ui\n"
        "scenario_pool_operations_total{pool=\"redis\",pid=\"%P\"} %ui\n"
        "# HELP scenario_pool_errors_total Failed or timed out operations.\n"
        "# TYPE scenario_pool_errors_total counter\n"
        "scenario_pool_errors_total{pool=\"postgres\",pid=\"%P\"} %ui\n"
        "scenario_pool_errors_total{pool=\"redis\",pid=\"%P\"} %ui\n"
        "# HELP scenario_pool_reconnects_total Connections re-opened.\n"
        "# TYPE scenario_pool_reconnects_total counter\n"
        "scenario_pool_reconnects_total{pool=\"postgres\",pid=\"%P\"} %ui\n"
        "scenario_pool_reconnects_total{pool=\"redis\",pid=\"%P\"} %ui\n",
        ngx_pid, pg.size, ngx_pid, pg.connected, ngx_pid, pg.busy,
        ngx_pid, rd.size, ngx_pid, rd.connected,
        ngx_pid, pg.waiting, ngx_pid, rd.pending,
        ngx_pid, pg.queries, ngx_pid, rd.commands,
        ngx_pid, pg.errors, ngx_pid, rd.errors,
        ngx_pid, pg.reconnects, ngx_pid, rd.reconnects);

    /* bounded writes: a text that outgrew the buffer is cut, and said so */
    if (b->last == b->end) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "metrics: the text is longer than %uz bytes", len);
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_scenario_text_type;
    r->headers_out.content_type_len = ngx_scenario_text_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_scenario_metrics_init(ngx_conf_t *cf, ngx_scenario_main_conf_t *smcf)
{
    smcf->shm_zone = ngx_shared_memory_add(cf, &ngx_scenario_zone_name,
                                           8 * ngx_pagesize
                                           + sizeof(ngx_scenario_metrics_t),
                                           &ngx_scenario_module);
    if (smcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    smcf->shm_zone->init = ngx_scenario_metrics_zone_init;
    smcf->shm_zone->data = smcf;

    return NGX_OK;
}


/* counters survive a reload: the old zone's are kept */

static ngx_int_t
ngx_scenario_metrics_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t           *shpool;
    ngx_scenario_main_conf_t  *smcf, *old;

    smcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        old = data;
        smcf->metrics = old->metrics;
        shm_zone->data = smcf;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        smcf->metrics = shpool->data;
        return NGX_OK;
    }

    smcf->metrics = ngx_slab_calloc(shpool, sizeof(ngx_scenario_metrics_t));
    if (smcf->metrics == NULL) {
        return NGX_ERROR;
    }

    shpool->data = smcf->metrics;

    return NGX_OK;
}
