/*
 * Organizations, members and invites: GET /org, GET /org/members,
 * PATCH and DELETE /org/members/{id}, GET and POST /org/invites, DELETE
 * /org/invites/{id}.
 *
 * Each is one call of a function of sql/022 (ngx_scenario_call.c), which
 * checks the caller's organization and role in the same query.  Roles
 * are never cached, so a role change or a removal holds at once
 * everywhere; before the change is answered, every worker is told through
 * the invalidation channel to drop the profile /auth/me caches (it shows
 * the role) and to end the member's live chats, as at logout.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


#define NGX_SCENARIO_INVITE_TTL      (7 * 86400)
#define NGX_SCENARIO_INVITE_TTL_MAX  (30 * 86400)


static ngx_int_t ngx_scenario_member_check(ngx_http_request_t *r,
    json_t *body, ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc);
static void ngx_scenario_member_done(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
static void ngx_scenario_member_told(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static ngx_int_t ngx_scenario_invite_check(ngx_http_request_t *r,
    json_t *body, ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc);
static ngx_int_t ngx_scenario_role(ngx_http_request_t *r, json_t *body,
    ngx_str_t *role, ngx_int_t *rc);


/* KEYS[1] "user:<id>", ARGV[1] "member:<id>" (ngx_scenario_cache.c) */
static ngx_str_t  ngx_scenario_member_script = ngx_string(
    "redis.call('DEL', KEYS[1]) "
    "redis.call('PUBLISH', 'scenario:invalidate', KEYS[1]) "
    "redis.call('PUBLISH', 'scenario:invalidate', ARGV[1]) "
    "return 1");


static ngx_scenario_route_t  ngx_scenario_org_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM org_get($1)",
      0, NULL, NULL }
};

static ngx_scenario_route_t  ngx_scenario_members_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM org_members($1)",
      0, NULL, NULL }
};

/* PATCH {"role"} changes a member's role; DELETE removes the member */
static ngx_scenario_route_t  ngx_scenario_member_routes[] = {
    { NGX_HTTP_PATCH, NULL,
      "SELECT status, body FROM org_member_change($1, $2, $3)",
      1, ngx_scenario_member_check, ngx_scenario_member_done },
    { NGX_HTTP_DELETE, NULL,
      "SELECT status, body FROM org_member_change($1, $2, NULL)",
      1, NULL, ngx_scenario_member_done }
};

/* GET lists the invites; POST {"role", "expires_in"} makes one */
static ngx_scenario_route_t  ngx_scenario_invites_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM org_invites($1)",
      0, NULL, NULL },
    { NGX_HTTP_POST, NULL,
      "SELECT status, body FROM org_invite_create($1, $2, $3, $4)",
      0, ngx_scenario_invite_check, NULL }
};

static ngx_scenario_route_t  ngx_scenario_invite_routes[] = {
    { NGX_HTTP_DELETE, NULL,
      "SELECT status, body FROM org_invite_revoke($1, $2)",
      1, NULL, NULL }
};


ngx_scenario_api_t  ngx_scenario_org_api =
    ngx_scenario_api(ngx_scenario_org_routes, "GET, HEAD", "organization");

ngx_scenario_api_t  ngx_scenario_members_api =
    ngx_scenario_api(ngx_scenario_members_routes, "GET, HEAD", "member");

ngx_scenario_api_t  ngx_scenario_member_api =
    ngx_scenario_api(ngx_scenario_member_routes, "PATCH, DELETE", "member");

ngx_scenario_api_t  ngx_scenario_invites_api =
    ngx_scenario_api(ngx_scenario_invites_routes, "GET, HEAD, POST", "invite");

ngx_scenario_api_t  ngx_scenario_invite_api =
    ngx_scenario_api(ngx_scenario_invite_routes, "DELETE", "invite");


static ngx_int_t
ngx_scenario_member_check(ngx_http_request_t *r, json_t *body,
    ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc)
{
    return ngx_scenario_role(r, body, &params[(*n)++], rc);
}


static void
ngx_scenario_member_done(ngx_http_request_t *r, PGresult *res, ngx_int_t rc)
{
    ngx_str_t            user, member;
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    if (rc != NGX_OK || !ngx_pg_result_ok(res) || PQntuples(res) != 1
        || ngx_pg_int(res, 0, 0) >= 300)
    {
        ngx_scenario_call_done(r, res, rc);
        return;
    }

    /*
     * The member's cached profile shows the old role, and their chats may
     * be on what they lost: the answer waits until every worker was told
     * (to drop the profile, to end the chats), as logout does.
     */

    ctx->answer_status = ngx_pg_int(res, 0, 0);

    if (!PQgetisnull(res, 0, 1)) {
        ctx->answer = ngx_scenario_call_body(r, res);
        if (ctx->answer == NULL) {
            ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_scenario_cache_forget(NGX_SCENARIO_CACHE_PROFILE, &ctx->target);

    user.data = ngx_pnalloc(r->pool, sizeof("user:") - 1 + ctx->target.len);
    member.data = ngx_pnalloc(r->pool,
                              sizeof("member:") - 1 + ctx->target.len);
    if (user.data == NULL || member.data == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    user.len = ngx_sprintf(user.data, "user:%V", &ctx->target) - user.data;
    member.len = ngx_sprintf(member.data, "member:%V", &ctx->target)
                 - member.data;

    rc = ngx_scenario_redis_eval(r, ngx_scenario_member_told,
                                 &ngx_scenario_member_script, 1, &user, 1,
                                 &member);
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

    /*
     * Postgres holds the change, and every check reads it there; without
     * Redis, the workers' subscriptions are broken too, which stops their
     * caches, and a chat cannot reopen on what the member lost
     */
    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scenario: a member's profile was not invalidated");
    }

    ngx_scenario_call_answer(r, ctx->answer_status, ctx->answer);
}


static ngx_int_t
ngx_scenario_invite_check(ngx_http_request_t *r, json_t *body,
    ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc)
{
    u_char              *code, *hash, *ttl, raw[32];
    json_t              *expires;
    ngx_str_t            src, dst;
    json_int_t           secs;
    ngx_scenario_ctx_t  *ctx;

    if (ngx_scenario_role(r, body, &params[*n], rc) != NGX_OK) {
        return NGX_DECLINED;
    }

    expires = json_object_get(body, "expires_in");
    secs = NGX_SCENARIO_INVITE_TTL;

    if (expires != NULL) {
        secs = json_is_integer(expires) ? json_integer_value(expires) : 0;

        if (secs < 60 || secs > NGX_SCENARIO_INVITE_TTL_MAX) {
            *rc = ngx_scenario_field_error(r, "expires_in",
                                           "\"expires_in\" must be an "
                                           "integer from 60 to 2592000 "
                                           "(seconds)");
            return NGX_DECLINED;
        }
    }

    *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    code = ngx_pnalloc(r->pool, NGX_SCENARIO_TOKEN_LEN + 1);
    hash = ngx_pnalloc(r->pool, NGX_SCENARIO_HASH_HEX);
    ttl = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (code == NULL || hash == NULL || ttl == NULL) {
        return NGX_DECLINED;
    }

    /* a code like a token: 256 random bits; Postgres keeps its hash */

    randombytes_buf(raw, sizeof(raw));

    src.data = raw;
    src.len = sizeof(raw);
    dst.data = code;

    ngx_encode_base64url(&dst, &src);
    sodium_memzero(raw, sizeof(raw));

    ngx_scenario_token_key(code, NGX_SCENARIO_TOKEN_LEN, hash);

    /* the code is answered once, and never stored */

    ctx = ngx_scenario_ctx(r);
    ctx->extra = ngx_http_json_own(r->pool,
                                   json_pack("{s:s%}", "code", (char *) code,
                                             (size_t) NGX_SCENARIO_TOKEN_LEN));
    if (ctx->extra == NULL) {
        return NGX_DECLINED;
    }

    params[*n + 1].data = hash;
    params[*n + 1].len = NGX_SCENARIO_HASH_HEX;
    params[*n + 2].data = ttl;
    params[*n + 2].len = ngx_sprintf(ttl, "%L", (int64_t) secs) - ttl;

    *n += 3;

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_role(ngx_http_request_t *r, json_t *body, ngx_str_t *role,
    ngx_int_t *rc)
{
    json_t      *v;
    const char  *s;

    v = json_object_get(body, "role");
    s = json_is_string(v) ? json_string_value(v) : "";

    if (ngx_strcmp(s, "trainee") != 0 && ngx_strcmp(s, "trainer") != 0
        && ngx_strcmp(s, "admin") != 0)
    {
        *rc = ngx_scenario_field_error(r, "role", "\"role\" must be "
                                       "trainee, trainer or admin");
        return NGX_DECLINED;
    }

    role->data = (u_char *) s;
    role->len = ngx_strlen(s);

    return NGX_OK;
}
