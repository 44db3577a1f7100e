/*
 * Scenarios and sessions: GET /scenarios, POST /sessions, GET /sessions and
 * GET /sessions/{id}.  Postgres builds the JSON documents; every query is
 * bound to the caller, so another user's session is simply not found.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


static void ngx_scenario_session_create(ngx_http_request_t *r);
static void ngx_scenario_document_done(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);


#define NGX_SCENARIO_TIME(col)                                               \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


static const char  ngx_scenario_scenarios_sql[] =
    "SELECT coalesce(json_agg(json_build_object("
    "'id', s.id, 'slug', s.slug, 'title', s.title, "
    "'description', s.description, 'difficulty', s.difficulty, "
    "'persona', json_build_object('name', s.persona_name, "
    "'role', s.persona_role), "
    "'xp_reward', s.xp_reward, "
    "'completed', coalesce(d.completed, false), "
    "'best_score', d.best_score) ORDER BY s.id), '[]') "
    "FROM scenarios s LEFT JOIN ("
    "SELECT se.scenario_id, bool_or(se.status = 'resolved') AS completed, "
    "max(a.overall) AS best_score "
    "FROM sessions se LEFT JOIN assessments a ON a.session_id = se.id "
    "WHERE se.user_id = $1 AND NOT se.trial GROUP BY se.scenario_id) d "
    "ON d.scenario_id = s.id "
    /* the global scenarios and the caller's organization's, published */
    "WHERE s.status = 'published' AND (s.org_id IS NULL "
    "OR s.org_id = (SELECT u.org_id FROM users u WHERE u.id = $1))";

static const char  ngx_scenario_session_insert[] =
    "INSERT INTO sessions (user_id, scenario_id) "
    "SELECT $1, id FROM scenarios WHERE id = $2 "
    "AND scenario_visible($1, $2) "
    "RETURNING json_build_object('id', id, 'scenario_id', scenario_id, "
    "'status', status, 'created_at', " NGX_SCENARIO_TIME("created_at") ")";

static const char  ngx_scenario_sessions_sql[] =
    "SELECT coalesce(json_agg(json_build_object("
    "'id', se.id, 'scenario_id', se.scenario_id, "
    "'scenario', json_build_object('id', s.id, 'slug', s.slug, "
    "'title', s.title, 'difficulty', s.difficulty), "
    "'status', se.status, "
    "'created_at', " NGX_SCENARIO_TIME("se.created_at") ", "
    "'resolved_at', " NGX_SCENARIO_TIME("se.resolved_at") ", "
    "'overall', a.overall) ORDER BY se.created_at DESC, se.id DESC), '[]') "
    "FROM (SELECT * FROM sessions WHERE user_id = $1 "
    "ORDER BY created_at DESC, id DESC LIMIT 200) se "
    NGX_SCENARIO_SESSION_SCENARIO
    "LEFT JOIN assessments a ON a.session_id = se.id";

static const char  ngx_scenario_session_sql[] =
    "SELECT json_build_object("
    "'id', se.id, "
    "'scenario', json_build_object('id', s.id, 'slug', s.slug, "
    "'title', s.title, 'description', s.description, "
    "'difficulty', s.difficulty, 'goal', s.goal, "
    "'persona', json_build_object('name', s.persona_name, "
    "'role', s.persona_role), 'xp_reward', s.xp_reward), "
    "'status', se.status, "
    "'created_at', " NGX_SCENARIO_TIME("se.created_at") ", "
    "'resolved_at', " NGX_SCENARIO_TIME("se.resolved_at") ", "
    "'messages', coalesce((SELECT json_agg(json_build_object("
    "'seq', m.seq, 'role', m.role, 'content', m.content, "
    "'created_at', " NGX_SCENARIO_TIME("m.created_at") ") ORDER BY m.seq) "
    "FROM messages m WHERE m.session_id = se.id), '[]'), "
    "'performance', (SELECT json_build_object('overall', a.overall, "
    "'dimensions', json_build_object('empathy', a.empathy, "
    "'clarity', a.clarity, 'resolution', a.resolution, "
    "'efficiency', a.efficiency), 'feedback', a.feedback, "
    "'metrics', a.metrics) FROM assessments a "
    "WHERE a.session_id = se.id)) "
    "FROM sessions se " NGX_SCENARIO_SESSION_SCENARIO
    "WHERE se.id = $1 AND se.user_id = $2";


ngx_int_t
ngx_scenario_scenarios_handler(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD");
    }

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_scenario_unauthorized(r);
    }

    return ngx_scenario_query(r, ngx_scenario_scenarios_sql, 1,
                              &ctx->user_id_text);
}


/* GET lists the caller's sessions, POST starts one */

ngx_int_t
ngx_scenario_sessions_handler(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_loc_conf_t  *slcf;

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_scenario_unauthorized(r);
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        return ngx_scenario_query(r, ngx_scenario_sessions_sql, 1,
                                  &ctx->user_id_text);
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD, POST");
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    return ngx_http_json_read(r, slcf->max_body,
                              ngx_scenario_session_create);
}


static void
ngx_scenario_session_create(ngx_http_request_t *r)
{
    u_char                   *p;
    json_t                   *body, *id;
    ngx_int_t                 rc;
    ngx_str_t                 params[2];
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_ctx(r);

    body = ngx_http_json_body(r, slcf->max_body, &rc);
    if (body == NULL) {
        ngx_scenario_finalize(r, rc);
        return;
    }

    id = json_object_get(body, "scenario_id");

    if (!json_is_integer(id) || json_integer_value(id) <= 0
        || json_integer_value(id) > NGX_MAX_INT32_VALUE)
    {
        ngx_scenario_finalize(r, ngx_http_json_error(r, NGX_HTTP_BAD_REQUEST,
                              "bad_request",
                              "\"scenario_id\" must be a positive integer"));
        return;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    params[0] = ctx->user_id_text;
    params[1].data = p;
    params[1].len = ngx_sprintf(p, "%L", (int64_t) json_integer_value(id))
                    - p;

    r->headers_out.status = NGX_HTTP_CREATED;

    rc = ngx_scenario_pg(r, ngx_scenario_session_insert, 2, params,
                         ngx_scenario_document_done);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}


ngx_int_t
ngx_scenario_session_handler(ngx_http_request_t *r)
{
    ngx_str_t            params[2];
    ngx_scenario_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD");
    }

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_scenario_unauthorized(r);
    }

    if (ngx_scenario_session_id(r, &params[0]) != NGX_OK) {
        return ngx_scenario_not_found(r, "session");
    }

    params[1] = ctx->user_id_text;

    return ngx_scenario_query(r, ngx_scenario_session_sql, 2, params);
}


/* a query whose single value is the JSON document to answer with */

ngx_int_t
ngx_scenario_query(ngx_http_request_t *r, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params)
{
    ngx_int_t  rc;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;

    rc = ngx_scenario_pg(r, sql, nparams, params,
                         ngx_scenario_document_done);

    return ngx_scenario_wait(r, rc, "postgres");
}


static void
ngx_scenario_document_done(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    json_t     *json;
    ngx_str_t   doc;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    if (PQntuples(res) == 0) {
        ngx_scenario_finalize(r, ngx_scenario_not_found(r,
                              r->method == NGX_HTTP_POST ? "scenario"
                                                         : "session"));
        return;
    }

    /* Postgres spaces its JSON out: answer it compact, as everywhere */

    doc = ngx_pg_value(res, 0, 0);

    json = json_loadb((char *) doc.data, doc.len, 0, NULL);
    if (json == NULL || ngx_http_json_own(r->pool, json) == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_scenario_finalize(r, ngx_http_json_send(r, r->headers_out.status,
                                                json));
}


/* the numeric segment of /sessions/{id}[/...]: the last one in the path */

ngx_int_t
ngx_scenario_session_id(ngx_http_request_t *r, ngx_str_t *id)
{
    u_char  *p, *end, *start;

    end = r->uri.data + r->uri.len;
    start = NULL;

    for (p = r->uri.data; p < end; p++) {
        if (*p != '/' || p + 1 == end || p[1] < '0' || p[1] > '9') {
            continue;
        }

        id->data = p + 1;

        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            /* void */
        }

        if (p == end || *p == '/') {
            start = id->data;
            id->len = p - id->data;
        }

        p--;
    }

    if (start == NULL || id->len > 18) {
        return NGX_DECLINED;
    }

    id->data = start;

    return NGX_OK;
}


ngx_int_t
ngx_scenario_not_found(ngx_http_request_t *r, const char *what)
{
    char  msg[64];

    ngx_snprintf((u_char *) msg, sizeof(msg), "no such %s%Z", what);

    return ngx_http_json_error(r, NGX_HTTP_NOT_FOUND, "not_found", msg);
}
