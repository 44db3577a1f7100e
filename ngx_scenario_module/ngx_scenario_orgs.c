/*
 * Organizations, members and invites: GET /org, GET /org/members,
 * PATCH and DELETE /org/members/{id}, GET and POST /org/invites, DELETE
 * /org/invites/{id}.
 *
 * Every endpoint is one call of a function of sql/022, which checks the
 * caller's organization and role in the same query and answers (status,
 * body); ngx_scenario_call() is that round trip, shared with the
 * authoring endpoints.  Roles are never cached, so a role change or a
 * removal holds at once everywhere; the profile /auth/me caches (which
 * shows the role) is dropped on every worker through the invalidation
 * channel, as at logout.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


#define NGX_SCENARIO_INVITE_TTL      (7 * 86400)
#define NGX_SCENARIO_INVITE_TTL_MAX  (30 * 86400)


static void ngx_scenario_member_body(ngx_http_request_t *r);
static void ngx_scenario_member_done(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
static void ngx_scenario_invite_body(ngx_http_request_t *r);
static void ngx_scenario_member_told(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static json_t *ngx_scenario_call_body(ngx_http_request_t *r, PGresult *res);
static void ngx_scenario_call_answer(ngx_http_request_t *r,
    ngx_uint_t status, json_t *body);
static ngx_int_t ngx_scenario_role_valid(json_t *role);


static const char  ngx_scenario_org_sql[] =
    "SELECT status, body FROM org_get($1)";

static const char  ngx_scenario_members_sql[] =
    "SELECT status, body FROM org_members($1)";

static const char  ngx_scenario_member_sql[] =
    "SELECT status, body FROM org_member_change($1, $2, $3)";

static const char  ngx_scenario_invites_sql[] =
    "SELECT status, body FROM org_invites($1)";

static const char  ngx_scenario_invite_sql[] =
    "SELECT status, body FROM org_invite_create($1, $2, $3, $4)";

static const char  ngx_scenario_invite_revoke_sql[] =
    "SELECT status, body FROM org_invite_revoke($1, $2)";


ngx_int_t
ngx_scenario_org_handler(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD");
    }

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    return ngx_scenario_call(r, ngx_scenario_org_sql, 1, &ctx->user_id_text);
}


ngx_int_t
ngx_scenario_members_handler(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD");
    }

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    return ngx_scenario_call(r, ngx_scenario_members_sql, 1,
                             &ctx->user_id_text);
}


/* PATCH {"role"} changes a member's role, DELETE removes the member */

ngx_int_t
ngx_scenario_member_handler(ngx_http_request_t *r)
{
    ngx_str_t                 params[3];
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_loc_conf_t  *slcf;

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    if (ngx_scenario_session_id(r, &ctx->target) != NGX_OK) {
        return ngx_scenario_not_found(r, "member");
    }

    if (r->method == NGX_HTTP_PATCH) {
        slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);
        return ngx_http_json_read(r, slcf->max_body,
                                  ngx_scenario_member_body);
    }

    if (r->method != NGX_HTTP_DELETE) {
        return ngx_scenario_method_not_allowed(r, "PATCH, DELETE");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = ctx->user_id_text;
    params[1] = ctx->target;
    params[2].data = NULL;
    params[2].len = 0;

    return ngx_scenario_wait(r, ngx_scenario_pg(r, ngx_scenario_member_sql,
                                                3, params,
                                                ngx_scenario_member_done),
                             "postgres");
}


static void
ngx_scenario_member_body(ngx_http_request_t *r)
{
    json_t                   *body, *role;
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

    role = json_object_get(body, "role");

    if (ngx_scenario_role_valid(role) != NGX_OK) {
        ngx_scenario_finalize(r, ngx_scenario_field_error(r, "role",
                              "\"role\" must be trainee, trainer or admin"));
        return;
    }

    params[0] = ctx->user_id_text;
    params[1] = ctx->target;
    params[2].data = (u_char *) json_string_value(role);
    params[2].len = json_string_length(role);

    rc = ngx_scenario_pg(r, ngx_scenario_member_sql, 3, params,
                         ngx_scenario_member_done);
    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}


static void
ngx_scenario_member_done(ngx_http_request_t *r, PGresult *res, ngx_int_t rc)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    if (rc != NGX_OK || !ngx_pg_result_ok(res) || PQntuples(res) != 1
        || ngx_pg_int(res, 0, 0) >= 300)
    {
        ngx_scenario_call_done(r, res, rc);
        return;
    }

    /*
     * The member's cached profile shows the old role: the answer waits
     * until every worker was told to drop it, as logout does.
     */

    ctx->answer_status = ngx_pg_int(res, 0, 0);

    if (!PQgetisnull(res, 0, 1)) {
        ctx->answer = ngx_scenario_call_body(r, res);
        if (ctx->answer == NULL) {
            ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    rc = ngx_scenario_user_forget_wait(r, &ctx->target,
                                       ngx_scenario_member_told);
    if (rc != NGX_OK) {
        ngx_scenario_member_told(r, NULL, NGX_ERROR);
    }
}


static void
ngx_scenario_member_told(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    /* Postgres holds the change: Redis failing only delays the profile */
    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scenario: a member's profile was not invalidated");
    }

    ngx_scenario_call_answer(r, ctx->answer_status, ctx->answer);
}


/* GET lists the invites, POST {"role", "expires_in"} makes one */

ngx_int_t
ngx_scenario_invites_handler(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_loc_conf_t  *slcf;

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        return ngx_scenario_call(r, ngx_scenario_invites_sql, 1,
                                 &ctx->user_id_text);
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD, POST");
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    return ngx_http_json_read(r, slcf->max_body, ngx_scenario_invite_body);
}


static void
ngx_scenario_invite_body(ngx_http_request_t *r)
{
    u_char                    raw[32], code[NGX_SCENARIO_TOKEN_LEN + 1];
    u_char                    hash[NGX_SCENARIO_HASH_HEX];
    u_char                    ttl[NGX_INT_T_LEN];
    json_t                   *body, *role, *expires;
    ngx_int_t                 rc;
    ngx_str_t                 params[4], src, dst;
    json_int_t                secs;
    ngx_scenario_ctx_t       *ctx;
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_ctx(r);

    body = ngx_http_json_body(r, slcf->max_body, &rc);
    if (body == NULL) {
        ngx_scenario_finalize(r, rc);
        return;
    }

    role = json_object_get(body, "role");

    if (ngx_scenario_role_valid(role) != NGX_OK) {
        ngx_scenario_finalize(r, ngx_scenario_field_error(r, "role",
                              "\"role\" must be trainee, trainer or admin"));
        return;
    }

    expires = json_object_get(body, "expires_in");
    secs = NGX_SCENARIO_INVITE_TTL;

    if (expires != NULL) {
        secs = json_is_integer(expires) ? json_integer_value(expires) : 0;

        if (secs < 60 || secs > NGX_SCENARIO_INVITE_TTL_MAX) {
            ngx_scenario_finalize(r, ngx_scenario_field_error(r,
                                  "expires_in", "\"expires_in\" must be an "
                                  "integer from 60 to 2592000 (seconds)"));
            return;
        }
    }

    /* a code like a token: 256 random bits; Postgres keeps its hash */

    randombytes_buf(raw, sizeof(raw));

    src.data = raw;
    src.len = sizeof(raw);
    dst.data = code;

    ngx_encode_base64url(&dst, &src);
    sodium_memzero(raw, sizeof(raw));

    ngx_scenario_token_key(code, NGX_SCENARIO_TOKEN_LEN, hash);

    ctx->extra = ngx_http_json_own(r->pool,
                                   json_pack("{s:s%}", "code", (char *) code,
                                             (size_t) NGX_SCENARIO_TOKEN_LEN));
    if (ctx->extra == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    params[0] = ctx->user_id_text;
    params[1].data = (u_char *) json_string_value(role);
    params[1].len = json_string_length(role);
    params[2].data = hash;
    params[2].len = NGX_SCENARIO_HASH_HEX;
    params[3].data = ttl;
    params[3].len = ngx_sprintf(ttl, "%L", (int64_t) secs) - ttl;

    rc = ngx_scenario_pg(r, ngx_scenario_invite_sql, 4, params,
                         ngx_scenario_call_done);
    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}


ngx_int_t
ngx_scenario_invite_handler(ngx_http_request_t *r)
{
    ngx_str_t            params[2];
    ngx_scenario_ctx_t  *ctx;

    if (r->method != NGX_HTTP_DELETE) {
        return ngx_scenario_method_not_allowed(r, "DELETE");
    }

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    if (ngx_scenario_session_id(r, &params[1]) != NGX_OK) {
        return ngx_scenario_not_found(r, "invite");
    }

    params[0] = ctx->user_id_text;

    return ngx_scenario_call(r, ngx_scenario_invite_revoke_sql, 2, params);
}


static ngx_int_t
ngx_scenario_role_valid(json_t *role)
{
    const char  *s;

    if (!json_is_string(role)) {
        return NGX_DECLINED;
    }

    s = json_string_value(role);

    return (ngx_strcmp(s, "trainee") == 0 || ngx_strcmp(s, "trainer") == 0
            || ngx_strcmp(s, "admin") == 0)
           ? NGX_OK : NGX_DECLINED;
}


/*
 * The round trip of the organization and authoring endpoints, from a
 * content handler: "SELECT status, body FROM f(...)".
 */

ngx_int_t
ngx_scenario_call(ngx_http_request_t *r, const char *sql, ngx_uint_t n,
    ngx_str_t *params)
{
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_scenario_wait(r, ngx_scenario_pg(r, sql, n, params,
                                                ngx_scenario_call_done),
                             "postgres");
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


static json_t *
ngx_scenario_call_body(ngx_http_request_t *r, PGresult *res)
{
    ngx_str_t  doc;

    doc = ngx_pg_value(res, 0, 1);

    return ngx_http_json_own(r->pool, json_loadb((char *) doc.data, doc.len,
                                                 0, NULL));
}


static void
ngx_scenario_call_answer(ngx_http_request_t *r, ngx_uint_t status,
    json_t *body)
{
    ngx_scenario_ctx_t  *ctx;

    if (body == NULL) {
        r->headers_out.status = status;
        r->headers_out.content_length_n = 0;
        r->header_only = 1;
        ngx_scenario_finalize(r, ngx_http_send_header(r));
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
