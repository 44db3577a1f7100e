/*
 * Scenario authoring: GET and POST /authoring/scenarios, GET and PUT
 * /authoring/scenarios/{id}, POST /authoring/scenarios/{id}/publish,
 * .../archive and .../try.
 *
 * The fields are checked here (ngx_scenario_fields.c: a 400 names the
 * field); the caller's role and organization are checked by the one query
 * each endpoint makes (sql/023), so another organization's scenario is
 * not found.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


static void ngx_scenario_authoring_body(ngx_http_request_t *r);
static ngx_int_t ngx_scenario_authoring_verb(ngx_http_request_t *r,
    ngx_str_t *verb);


static const char  ngx_scenario_author_list_sql[] =
    "SELECT status, body FROM author_list($1)";

static const char  ngx_scenario_author_get_sql[] =
    "SELECT status, body FROM author_get($1, $2)";

static const char  ngx_scenario_author_create_sql[] =
    "SELECT status, body FROM author_create($1, $2::jsonb)";

static const char  ngx_scenario_author_update_sql[] =
    "SELECT status, body FROM author_update($1, $2, $3::jsonb)";

static const char  ngx_scenario_author_status_sql[] =
    "SELECT status, body FROM author_set_status($1, $2, $3)";

static const char  ngx_scenario_author_try_sql[] =
    "SELECT status, body FROM author_try($1, $2)";


/* GET: the organization's scenarios; POST: a new draft */

ngx_int_t
ngx_scenario_authoring_handler(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_loc_conf_t  *slcf;

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        return ngx_scenario_call(r, ngx_scenario_author_list_sql, 1,
                                 &ctx->user_id_text);
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD, POST");
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    return ngx_http_json_read(r, slcf->max_body,
                              ngx_scenario_authoring_body);
}


/* GET: one scenario with its versions; PUT: every field, a new version */

ngx_int_t
ngx_scenario_authoring_scenario_handler(ngx_http_request_t *r)
{
    ngx_str_t                 params[2];
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_loc_conf_t  *slcf;

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    if (ngx_scenario_session_id(r, &ctx->target) != NGX_OK
        || ctx->target.len > 9)
    {
        return ngx_scenario_not_found(r, "scenario");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        params[0] = ctx->user_id_text;
        params[1] = ctx->target;

        return ngx_scenario_call(r, ngx_scenario_author_get_sql, 2, params);
    }

    if (r->method != NGX_HTTP_PUT) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD, PUT");
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    return ngx_http_json_read(r, slcf->max_body,
                              ngx_scenario_authoring_body);
}


/* POST .../publish, .../archive, .../try */

ngx_int_t
ngx_scenario_authoring_action_handler(ngx_http_request_t *r)
{
    ngx_str_t            params[3], verb;
    ngx_scenario_ctx_t  *ctx;

    if (r->method != NGX_HTTP_POST) {
        return ngx_scenario_method_not_allowed(r, "POST");
    }

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    if (ngx_scenario_session_id(r, &params[1]) != NGX_OK
        || params[1].len > 9
        || ngx_scenario_authoring_verb(r, &verb) != NGX_OK)
    {
        return ngx_scenario_not_found(r, "scenario");
    }

    params[0] = ctx->user_id_text;

    if (verb.len == sizeof("try") - 1) {
        return ngx_scenario_call(r, ngx_scenario_author_try_sql, 2, params);
    }

    /* "publish" -> published, "archive" -> archived */

    params[2].data = ngx_pnalloc(r->pool, verb.len + 2);
    if (params[2].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[2].len = ngx_sprintf(params[2].data, "%V%s", &verb,
                                verb.data[verb.len - 1] == 'e' ? "d" : "ed")
                    - params[2].data;

    return ngx_scenario_call(r, ngx_scenario_author_status_sql, 3, params);
}


static ngx_int_t
ngx_scenario_authoring_verb(ngx_http_request_t *r, ngx_str_t *verb)
{
    u_char  *p, *end;

    end = r->uri.data + r->uri.len;

    for (p = end; p > r->uri.data && p[-1] != '/'; p--) {
        /* void */
    }

    verb->data = p;
    verb->len = end - p;

    if ((verb->len == 3 && ngx_strncmp(p, "try", 3) == 0)
        || (verb->len == 7 && ngx_strncmp(p, "publish", 7) == 0)
        || (verb->len == 7 && ngx_strncmp(p, "archive", 7) == 0))
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_scenario_authoring_body(ngx_http_request_t *r)
{
    u_char                    field[96], msg[256];
    json_t                   *body;
    ngx_int_t                 rc;
    ngx_str_t                 params[3];
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_ctx(r);

    body = ngx_http_json_body(r, slcf->max_body, &rc);
    if (body == NULL) {
        ngx_scenario_finalize(r, rc);
        return;
    }

    if (ngx_scenario_fields_check(body, field, sizeof(field), msg,
                                  sizeof(msg))
        != NGX_OK)
    {
        ngx_scenario_finalize(r, ngx_scenario_field_error(r, (char *) field,
                                                          (char *) msg));
        return;
    }

    params[0] = ctx->user_id_text;

    if (ngx_http_json_dump(r->pool, body,
                           &params[r->method == NGX_HTTP_PUT ? 2 : 1])
        != NGX_OK)
    {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (r->method == NGX_HTTP_PUT) {
        params[1] = ctx->target;
        rc = ngx_scenario_pg(r, ngx_scenario_author_update_sql, 3, params,
                             ngx_scenario_call_done);

    } else {
        rc = ngx_scenario_pg(r, ngx_scenario_author_create_sql, 2, params,
                             ngx_scenario_call_done);
    }

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}
