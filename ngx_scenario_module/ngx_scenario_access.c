/*
 * The access check: "scenario_auth_required on" protects any location,
 * other modules' too.  A bearer token or the session cookie is looked up in
 * Redis (where only its SHA-256 is stored); the user id is then available
 * as $scenario_user_id.
 *
 * It runs first in the location's rewrite phase rather than in the access
 * phase: "return" and "rewrite" act in the rewrite phase, before any
 * access handler, and a protected location must not answer before the
 * check.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


static ngx_int_t ngx_scenario_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_scenario_access_subrequest(ngx_http_request_t *r);
static ngx_int_t ngx_scenario_access_deny(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
static void ngx_scenario_access_done(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static ngx_int_t ngx_scenario_access_user(ngx_http_request_t *r,
    ngx_scenario_ctx_t *ctx, ngx_str_t *id);
static ngx_int_t ngx_scenario_user_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_str_t  ngx_scenario_user_id_name = ngx_string("scenario_user_id");


ngx_int_t
ngx_scenario_access_init(ngx_conf_t *cf)
{
    ngx_http_variable_t        *var;
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    var = ngx_http_add_variable(cf, &ngx_scenario_user_id_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_scenario_user_id_variable;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * A phase runs its handlers last registered first: ours is registered
     * after the rewrite module's, so it runs before "return".
     */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_scenario_access_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_access_handler(ngx_http_request_t *r)
{
    int                        argc;
    u_char                     ttl[NGX_TIME_T_LEN];   /* hiredis copies */
    size_t                     argvlen[4];
    ngx_int_t                  rc;
    ngx_str_t                  token, key, value;
    ngx_uint_t                 cookie;
    const char                *argv[4];
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_loc_conf_t   *slcf;
    ngx_scenario_main_conf_t  *smcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    if (!slcf->auth_required) {
        return NGX_DECLINED;
    }

    /*
     * a subrequest (SSI, auth_request, add_after_body, mirror) runs on
     * behalf of its main request: it passes only if the main request
     * passed the check itself, else a public page could include a
     * protected one
     */
    if (r != r->main) {
        return ngx_scenario_access_subrequest(r);
    }

    ctx = ngx_scenario_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->auth_waiting) {
        return NGX_DONE;
    }

    if (ctx->auth_done) {
        if (ctx->auth_status == 0) {
            ngx_scenario_count(r, NGX_SCENARIO_M_AUTH_OK, 1);
            return NGX_DECLINED;
        }

        if (ctx->auth_status == NGX_HTTP_SERVICE_UNAVAILABLE) {
            ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "redis"));
            return NGX_DONE;
        }

        return ngx_scenario_access_deny(r, NGX_HTTP_UNAUTHORIZED,
                                        "unauthorized",
                                        "the session has expired or was "
                                        "ended, log in again");
    }

    rc = ngx_scenario_token(r, &token, &cookie);

    if (rc == NGX_DECLINED) {
        return ngx_scenario_access_deny(r, NGX_HTTP_UNAUTHORIZED,
                                        "unauthorized",
                                        "authentication is required");
    }

    if (rc != NGX_OK) {
        return ngx_scenario_access_deny(r, NGX_HTTP_UNAUTHORIZED,
                                        "unauthorized", "malformed token");
    }

    ctx->cookie_auth = cookie;

    /* a cookie rides along with cross-site requests: check the Origin */
    if (cookie && ngx_scenario_origin_ok(r) != NGX_OK) {
        return ngx_scenario_access_deny(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                        "the request's Origin is not "
                                        "allowed");
    }

    ctx->token_key.data = ngx_pnalloc(r->pool,
                                      sizeof("sess:") - 1
                                      + NGX_SCENARIO_HASH_HEX);
    if (ctx->token_key.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->token_key.data, "sess:", sizeof("sess:") - 1);
    ngx_scenario_token_key(token.data, token.len,
                           ctx->token_key.data + sizeof("sess:") - 1);
    ctx->token_key.len = sizeof("sess:") - 1 + NGX_SCENARIO_HASH_HEX;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    /* a session this worker saw lately, and nobody ended since */

    key.data = ctx->token_key.data + sizeof("sess:") - 1;
    key.len = NGX_SCENARIO_HASH_HEX;

    if (ngx_scenario_cache_get(smcf, NGX_SCENARIO_CACHE_TOKEN, &key, &value)
        == NGX_OK)
    {
        if (ngx_scenario_access_user(r, ctx, &value) == NGX_OK) {
            ctx->auth_done = 1;
            ngx_scenario_count(r, NGX_SCENARIO_M_AUTH_OK, 1);
            return NGX_DECLINED;
        }
    }

    ngx_scenario_cache_stamp(smcf, &ctx->stamp);

    argv[1] = (char *) ctx->token_key.data;
    argvlen[1] = ctx->token_key.len;

    if (smcf->token_sliding) {
        argv[0] = "GETEX";
        argvlen[0] = 5;
        argv[2] = "EX";
        argvlen[2] = 2;
        argv[3] = (char *) ttl;
        argvlen[3] = ngx_sprintf(ttl, "%T", smcf->token_ttl) - ttl;
        argc = 4;

    } else {
        argv[0] = "GET";
        argvlen[0] = 3;
        argc = 2;
    }

    rc = ngx_scenario_redis(r, ngx_scenario_access_done, argc, argv, argvlen);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "redis"));
        return NGX_DONE;
    }

    ctx->auth_waiting = 1;

    /*
     * the rewrite phase waits on NGX_DONE; the answer runs the phases on.
     * The request is held by a reference meanwhile, as nginx's own
     * modules do, and the answer drops it.
     */
    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_scenario_access_subrequest(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    if (ctx != NULL && ctx->auth_done && ctx->auth_status == 0
        && ctx->user_id != 0)
    {
        return NGX_DECLINED;
    }

    ngx_scenario_count(r, NGX_SCENARIO_M_AUTH_DENIED, 1);

    return NGX_HTTP_UNAUTHORIZED;
}


static ngx_int_t
ngx_scenario_access_deny(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_scenario_count(r, NGX_SCENARIO_M_AUTH_DENIED, 1);
    ngx_scenario_finalize(r, ngx_http_json_error(r, status, code, message));

    return NGX_DONE;
}


static void
ngx_scenario_access_done(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    ngx_str_t                  id, key;
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_scenario_ctx(r);

    ctx->auth_waiting = 0;
    ctx->auth_done = 1;

    if (rc != NGX_OK) {
        ctx->auth_status = NGX_HTTP_SERVICE_UNAVAILABLE;

    } else if (reply->type != REDIS_REPLY_STRING) {
        ctx->auth_status = NGX_HTTP_UNAUTHORIZED;

    } else {
        id.data = (u_char *) reply->str;
        id.len = reply->len;

        if (ngx_scenario_access_user(r, ctx, &id) != NGX_OK) {
            ctx->auth_status = NGX_HTTP_UNAUTHORIZED;

        } else {
            smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

            key.data = ctx->token_key.data + sizeof("sess:") - 1;
            key.len = NGX_SCENARIO_HASH_HEX;

            ngx_scenario_cache_put(smcf, NGX_SCENARIO_CACHE_TOKEN,
                                   &ctx->stamp, &key, &ctx->user_id_text);
        }
    }

    ngx_http_core_run_phases(r);

    /* the reference taken while Redis answered */
    ngx_http_finalize_request(r, NGX_DONE);
}


static ngx_int_t
ngx_scenario_access_user(ngx_http_request_t *r, ngx_scenario_ctx_t *ctx,
    ngx_str_t *id)
{
    ngx_int_t  n;

    n = ngx_atoi(id->data, id->len);
    if (n <= 0) {
        return NGX_ERROR;
    }

    ctx->user_id_text.data = ngx_pnalloc(r->pool, id->len);
    if (ctx->user_id_text.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->user_id_text.data, id->data, id->len);
    ctx->user_id_text.len = id->len;
    ctx->user_id = n;

    return NGX_OK;
}


/*
 * The token of the request: "Authorization: Bearer <token>" first, then
 * the session cookie.  NGX_DECLINED when there is none, NGX_ERROR when it
 * cannot be one of ours.
 */

ngx_int_t
ngx_scenario_token(ngx_http_request_t *r, ngx_str_t *token,
    ngx_uint_t *cookie)
{
    u_char                    *p;
    ngx_str_t                 *auth;
    ngx_int_t                  n;
    ngx_scenario_main_conf_t  *smcf;

    *cookie = 0;

    if (r->headers_in.authorization) {
        auth = &r->headers_in.authorization->value;

        if (auth->len < sizeof("Bearer ") - 1
            || ngx_strncasecmp(auth->data, (u_char *) "Bearer ",
                               sizeof("Bearer ") - 1)
               != 0)
        {
            return NGX_ERROR;
        }

        token->data = auth->data + sizeof("Bearer ") - 1;
        token->len = auth->len - (sizeof("Bearer ") - 1);

        while (token->len && *token->data == ' ') {
            token->data++;
            token->len--;
        }

    } else {
        smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

#if (nginx_version >= 1023000)
        n = ngx_http_parse_multi_header_lines(r, r->headers_in.cookie,
                                              &smcf->cookie_name, token)
            ? NGX_OK : NGX_DECLINED;
#else
        n = ngx_http_parse_multi_header_lines(&r->headers_in.cookies,
                                              &smcf->cookie_name, token)
            == NGX_DECLINED ? NGX_DECLINED : NGX_OK;
#endif

        if (n == NGX_DECLINED) {
            return NGX_DECLINED;
        }

        *cookie = 1;
    }

    if (token->len != NGX_SCENARIO_TOKEN_LEN) {
        return NGX_ERROR;
    }

    for (p = token->data; p < token->data + token->len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* What Redis keeps: the hex SHA-256 of the token, useless as a token. */

void
ngx_scenario_token_key(u_char *token, size_t len, u_char *key)
{
    u_char  digest[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(digest, token, len);
    ngx_hex_dump(key, digest, sizeof(digest));
}


/*
 * A state-changing request authenticated by cookie must come from our own
 * pages: its Origin is the server itself or a configured one.
 */

ngx_int_t
ngx_scenario_origin_ok(ngx_http_request_t *r)
{
    u_char                    *p;
    ngx_str_t                 *o, *host;
    ngx_uint_t                 i;
    ngx_table_elt_t           *origin;
    ngx_scenario_main_conf_t  *smcf;

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_OPTIONS)
        && !(r->headers_in.upgrade))
    {
        return NGX_OK;
    }

    origin = ngx_http_headers_find(&r->headers_in.headers, "origin",
                                   sizeof("origin") - 1);
    if (origin == NULL) {
        return NGX_DECLINED;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    if (smcf->allowed_origins) {
        o = smcf->allowed_origins->elts;
        for (i = 0; i < smcf->allowed_origins->nelts; i++) {
            if (o[i].len == origin->value.len
                && ngx_strncasecmp(o[i].data, origin->value.data, o[i].len)
                   == 0)
            {
                return NGX_OK;
            }
        }
    }

    /* same origin: scheme "://" Host */

    if (r->headers_in.host == NULL) {
        return NGX_DECLINED;
    }

    host = &r->headers_in.host->value;
    p = origin->value.data;

#if (NGX_HTTP_SSL)
    if (r->connection->ssl) {
        if (origin->value.len != sizeof("https://") - 1 + host->len
            || ngx_strncmp(p, "https://", sizeof("https://") - 1) != 0)
        {
            return NGX_DECLINED;
        }

        p += sizeof("https://") - 1;
        return ngx_strncasecmp(p, host->data, host->len) == 0
               ? NGX_OK : NGX_DECLINED;
    }
#endif

    if (origin->value.len != sizeof("http://") - 1 + host->len
        || ngx_strncmp(p, "http://", sizeof("http://") - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof("http://") - 1;

    return ngx_strncasecmp(p, host->data, host->len) == 0
           ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_scenario_user_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    if (ctx == NULL || ctx->user_id_text.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ctx->user_id_text.data;
    v->len = ctx->user_id_text.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
