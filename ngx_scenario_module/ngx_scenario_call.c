/*
 * The endpoints that are one call of a SQL function (sql/022 on): the
 * organization, its members and invites, scenario authoring, assignments,
 * review.  Such an endpoint is only declared: an ngx_scenario_api_t, its
 * table of routes, one per method (and verb, the URI's last segment),
 * which the content handler hands to ngx_scenario_route(); a route names
 * the query, whether the URI's id is its $2, and what checks the body and
 * adds its parameters.  The query is always
 * "SELECT status, body FROM f($1 the caller, ...)": the function checks
 * the caller's organization and role itself and answers the status, and
 * the body or an error's {"code","message"}.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


#define NGX_SCENARIO_ROUTE_PARAMS  6


static ngx_scenario_route_t *ngx_scenario_route_find(ngx_http_request_t *r,
    ngx_scenario_route_t *routes, ngx_uint_t n);
static void ngx_scenario_route_body(ngx_http_request_t *r);
static ngx_int_t ngx_scenario_route_query(ngx_http_request_t *r,
    ngx_str_t *params, ngx_uint_t n);


ngx_int_t
ngx_scenario_route(ngx_http_request_t *r, ngx_scenario_api_t *api)
{
    ngx_str_t                 params[2];
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_route_t     *rt;
    ngx_scenario_loc_conf_t  *slcf;

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_scenario_unauthorized(r);
    }

    rt = ngx_scenario_route_find(r, api->routes, api->n);

    if (rt == NULL) {
        return ngx_scenario_method_not_allowed(r, api->allow);
    }

    /* ids are below 10^9 (the scenarios' are int) */

    if (rt->target
        && (ngx_scenario_session_id(r, &ctx->target) != NGX_OK
            || ctx->target.len > 9))
    {
        return ngx_scenario_not_found(r, api->what);
    }

    ctx->route = rt;

    if (rt->check) {
        slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);
        return ngx_http_json_read(r, slcf->max_body, ngx_scenario_route_body);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = ctx->user_id_text;
    params[1] = ctx->target;

    return ngx_scenario_wait(r, ngx_scenario_route_query(r, params,
                                                         rt->target ? 2 : 1),
                             "postgres");
}


/* the route of the method (and of the URI's last segment, if it says) */

static ngx_scenario_route_t *
ngx_scenario_route_find(ngx_http_request_t *r, ngx_scenario_route_t *routes,
    ngx_uint_t n)
{
    u_char      *p, *end;
    ngx_str_t    verb;
    ngx_uint_t   i, method;

    method = (r->method == NGX_HTTP_HEAD) ? NGX_HTTP_GET : r->method;

    end = r->uri.data + r->uri.len;
    for (p = end; p > r->uri.data && p[-1] != '/'; p--) { /* void */ }

    verb.data = p;
    verb.len = end - p;

    for (i = 0; i < n; i++) {
        if (routes[i].method == method
            && (routes[i].verb == NULL
                || (ngx_strlen(routes[i].verb) == verb.len
                    && ngx_strncmp(routes[i].verb, verb.data, verb.len) == 0)))
        {
            return &routes[i];
        }
    }

    return NULL;
}


static void
ngx_scenario_route_body(ngx_http_request_t *r)
{
    json_t                   *body;
    ngx_int_t                 rc;
    ngx_str_t                 params[NGX_SCENARIO_ROUTE_PARAMS];
    ngx_uint_t                n;
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_route_t     *rt;
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_ctx(r);
    rt = ctx->route;

    body = ngx_http_json_body(r, slcf->max_body, &rc);
    if (body == NULL) {
        ngx_scenario_finalize(r, rc);
        return;
    }

    params[0] = ctx->user_id_text;
    n = 1;

    if (rt->target) {
        params[n++] = ctx->target;
    }

    /* the check answers a bad body itself */

    if (rt->check(r, body, params, &n, &rc) != NGX_OK) {
        ngx_scenario_finalize(r, rc);
        return;
    }

    rc = ngx_scenario_route_query(r, params, n);
    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}


static ngx_int_t
ngx_scenario_route_query(ngx_http_request_t *r, ngx_str_t *params,
    ngx_uint_t n)
{
    ngx_scenario_ctx_t    *ctx;
    ngx_scenario_route_t  *rt;

    ctx = ngx_scenario_ctx(r);
    rt = ctx->route;

    return ngx_scenario_pg(r, rt->sql, n, params,
                           rt->done ? rt->done : ngx_scenario_call_done);
}


/* (status, body): the body, an error's {"code","message"}, or nothing */

void
ngx_scenario_call_done(ngx_http_request_t *r, PGresult *res, ngx_int_t rc)
{
    json_t  *body;

    if (rc != NGX_OK || !ngx_pg_result_ok(res) || PQntuples(res) != 1) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    body = NULL;

    if (!PQgetisnull(res, 0, 1)) {
        body = ngx_scenario_call_body(r, res);
        if (body == NULL) {
            ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_scenario_call_answer(r, ngx_pg_int(res, 0, 0), body);
}


json_t *
ngx_scenario_call_body(ngx_http_request_t *r, PGresult *res)
{
    ngx_str_t  doc;

    doc = ngx_pg_value(res, 0, 1);

    return ngx_http_json_own(r->pool, json_loadb((char *) doc.data, doc.len,
                                                 0, NULL));
}


void
ngx_scenario_call_answer(ngx_http_request_t *r, ngx_uint_t status,
    json_t *body)
{
    json_t              *field;
    ngx_scenario_ctx_t  *ctx;

    if (body == NULL) {
        r->headers_out.status = status;
        r->headers_out.content_length_n = 0;
        r->header_only = 1;
        ngx_scenario_finalize(r, ngx_http_send_header(r));
        return;
    }

    field = json_object_get(body, "field");

    if (status == NGX_HTTP_BAD_REQUEST && json_is_string(field)) {
        ngx_scenario_finalize(r, ngx_scenario_field_error(r,
                              json_string_value(field),
                              json_string_value(json_object_get(body,
                                                                "message"))));
        return;
    }

    if (status >= NGX_HTTP_BAD_REQUEST) {
        ngx_scenario_finalize(r, ngx_http_json_error(r, status,
                              json_string_value(json_object_get(body,
                                                                "code")),
                              json_string_value(json_object_get(body,
                                                                "message"))));
        return;
    }

    ctx = ngx_scenario_ctx(r);

    if (ctx->extra && json_object_update(body, ctx->extra) != 0) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_scenario_finalize(r, ngx_http_json_send(r, status, body));
}


/* a check that leaves the body to the SQL function: it is the next $n */

ngx_int_t
ngx_scenario_check_json(ngx_http_request_t *r, json_t *body,
    ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc)
{
    if (ngx_http_json_dump(r->pool, body, &params[*n]) != NGX_OK) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    (*n)++;

    return NGX_OK;
}


/* a 400 that names the field: the error shape plus "field" */

ngx_int_t
ngx_scenario_field_error(ngx_http_request_t *r, const char *field,
    const char *message)
{
    json_t  *err;

    err = ngx_http_json_own(r->pool,
                            json_pack("{s:{s:s,s:s,s:s}}", "error",
                                      "code", "bad_request",
                                      "message", message,
                                      "field", field));
    if (err == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_json_send(r, NGX_HTTP_BAD_REQUEST, err);
}
