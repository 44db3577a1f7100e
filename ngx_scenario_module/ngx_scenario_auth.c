/*
 * The login flow: POST /auth/register, POST /auth/login, POST /auth/logout
 * and GET /auth/me.
 *
 * login:    body -> rate limit (Redis) -> user row (Postgres) -> argon2id
 *           verify (thread pool) -> session (Redis) -> 200 with the cookie
 * register: body -> argon2id hash (thread pool) -> insert (Postgres) ->
 *           session (Redis) -> 201
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


#define NGX_SCENARIO_MIN_PASSWORD  8


static ngx_int_t ngx_scenario_auth_post(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler);
static ngx_int_t ngx_scenario_auth_fields(ngx_http_request_t *r,
    ngx_scenario_ctx_t *ctx, ngx_uint_t registering, ngx_int_t *rc);
static ngx_int_t ngx_scenario_register_org(ngx_http_request_t *r,
    ngx_scenario_ctx_t *ctx, ngx_int_t *rc);
static ngx_int_t ngx_scenario_auth_invalid(ngx_http_request_t *r,
    const char *code, const char *message, ngx_int_t *rc);
static const char *ngx_scenario_weak_password(ngx_scenario_ctx_t *ctx);

static void ngx_scenario_register_body(ngx_http_request_t *r);
static void ngx_scenario_register_checked(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_register_hashed(ngx_http_request_t *r);
static void ngx_scenario_register_inserted(ngx_http_request_t *r,
    PGresult *res, ngx_int_t rc);

static void ngx_scenario_login_body(ngx_http_request_t *r);
static void ngx_scenario_login_checked(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_login_user(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
static void ngx_scenario_login_verified(ngx_http_request_t *r);
static void ngx_scenario_login_rehashed(ngx_http_request_t *r,
    PGresult *res, ngx_int_t rc);

static void ngx_scenario_session_start(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_scenario_session_started(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static ngx_int_t ngx_scenario_set_cookie(ngx_http_request_t *r,
    ngx_str_t *token, time_t max_age);

static void ngx_scenario_logout_done(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_me_cached(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_me_done(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);

static json_t *ngx_scenario_user_json(PGresult *res);
static void ngx_scenario_auth_hash(ngx_http_request_t *r, ngx_uint_t verify,
    ngx_str_t *stored, ngx_http_event_handler_pt handler);
static void ngx_scenario_wait_done(ngx_http_request_t *r);


/*
 * Every attempt is counted before its argon2id verify, in one script, so
 * that parallel guesses cannot all read the same count: the answer is 0,
 * or how many milliseconds are left before the counter over its limit
 * resets.
 */
static ngx_str_t  ngx_scenario_limit_check = ngx_string(
    "local l = {tonumber(ARGV[1]), tonumber(ARGV[2])} "
    "for i, k in ipairs(KEYS) do "
    "if tonumber(redis.call('GET', k) or '0') >= l[i] then "
    "local t = redis.call('PTTL', k) "
    "if t < 1 then t = 1 end return t end end "
    "for _, k in ipairs(KEYS) do "
    "if redis.call('INCR', k) == 1 then "
    "redis.call('PEXPIRE', k, ARGV[3]) end end "
    "return 0");

/*
 * a session; on login the email's attempts are forgiven and the address
 * gets its successful attempt back
 */
static ngx_str_t  ngx_scenario_session_script = ngx_string(
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    "if KEYS[2] then redis.call('DEL', KEYS[2]) end "
    "if KEYS[3] and redis.call('DECR', KEYS[3]) < 1 then "
    "redis.call('DEL', KEYS[3]) end "
    "return 1");

/* the session is gone, and every worker's cache is told at once */
static ngx_str_t  ngx_scenario_logout_script = ngx_string(
    "local n = redis.call('DEL', KEYS[1]) "
    "redis.call('PUBLISH', 'scenario:invalidate', KEYS[1]) "
    "return n");


static const char  ngx_scenario_user_by_email[] =
    "SELECT id, email, display_name, xp, level, password_hash "
    "FROM users WHERE lower(email) = $1";

/* the invite, a new organization, or the default one (sql/022) */
static const char  ngx_scenario_user_insert[] =
    "SELECT id, email, display_name, xp, level, error "
    "FROM org_register($1, $2, $3, $4, $5, $6)";

static const char  ngx_scenario_user_rehash[] =
    "UPDATE users SET password_hash = $2 WHERE id = $1";

static const char  ngx_scenario_user_by_id[] =
    "SELECT id, email, display_name, xp, level, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "role, org_id "
    "FROM users WHERE id = $1";


static const char  *ngx_scenario_common_passwords[] = {
    "password", "password1", "password123", "12345678", "123456789",
    "1234567890", "qwertyui", "qwerty123", "iloveyou", "11111111",
    "00000000", "abcdefgh", "letmein1", "welcome1", "changeme",
    NULL
};


/* register */


ngx_int_t
ngx_scenario_register_handler(ngx_http_request_t *r)
{
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    /* off, registration takes an invite code (read with the body) */
    if (r->method == NGX_HTTP_POST && !smcf->register_enabled
        && r->headers_in.content_length_n == 0)
    {
        return ngx_http_json_error(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                   "registration is disabled");
    }

    return ngx_scenario_auth_post(r, ngx_scenario_register_body);
}


static void
ngx_scenario_register_body(ngx_http_request_t *r)
{
    u_char                     limit[NGX_INT_T_LEN];
    u_char                     window[NGX_TIME_T_LEN];
    ngx_int_t                  rc;
    ngx_str_t                  args[3];
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_scenario_ctx(r);
    if (ctx == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_scenario_auth_fields(r, ctx, 1, &rc) != NGX_OK
        || ngx_scenario_register_org(r, ctx, &rc) != NGX_OK)
    {
        ngx_scenario_finalize(r, rc);
        return;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    /* each registration costs a hash: an address has so many a window */

    ctx->key_address.data = ngx_pnalloc(r->pool,
                                        sizeof("rl:register:a:") - 1
                                        + r->connection->addr_text.len);
    if (ctx->key_address.data == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->key_address.len = ngx_cpymem(ngx_cpymem(ctx->key_address.data,
                                                 "rl:register:a:",
                                                 sizeof("rl:register:a:") - 1),
                                      r->connection->addr_text.data,
                                      r->connection->addr_text.len)
                           - ctx->key_address.data;

    args[0].data = limit;
    args[0].len = ngx_sprintf(limit, "%ui", smcf->register_address) - limit;
    ngx_str_set(&args[1], "0");
    args[2].data = window;
    args[2].len = ngx_sprintf(window, "%T", smcf->register_window * 1000)
                  - window;

    rc = ngx_scenario_redis_eval(r, ngx_scenario_register_checked,
                                 &ngx_scenario_limit_check, 1,
                                 &ctx->key_address, 3, args);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "redis");
    }
}


static void
ngx_scenario_register_checked(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    if (rc != NGX_OK || reply->type != REDIS_REPLY_INTEGER) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "redis"));
        return;
    }

    if (reply->integer != 0) {
        ngx_scenario_finalize(r, ngx_scenario_rate_limited(r,
                              (time_t) (reply->integer + 999) / 1000,
                              "too many registrations from this address, "
                              "try again later"));
        return;
    }

    ngx_scenario_auth_hash(r, 0, NULL, ngx_scenario_register_hashed);
}


static void
ngx_scenario_register_hashed(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  params[6], *e;
    ngx_uint_t                 i;
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_scenario_ctx(r);
    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    if (ctx->job->rc != NGX_OK) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    params[0] = ctx->email;
    params[1].data = (u_char *) ctx->job->hash;
    params[1].len = ngx_strlen(ctx->job->hash);
    params[2] = ctx->display_name;
    params[3] = ctx->invite;
    params[4] = ctx->org_name;
    ngx_str_set(&params[5], "f");

    /* scenario_admin_email: this account is an admin */

    e = smcf->admin_emails ? smcf->admin_emails->elts : NULL;

    for (i = 0; e && i < smcf->admin_emails->nelts; i++) {
        if (e[i].len == ctx->email.len
            && ngx_strncasecmp(e[i].data, ctx->email.data, e[i].len) == 0)
        {
            ngx_str_set(&params[5], "t");
        }
    }

    rc = ngx_scenario_pg(r, ngx_scenario_user_insert, 6, params,
                         ngx_scenario_register_inserted);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}


static void
ngx_scenario_register_inserted(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    ngx_scenario_ctx_t  *ctx;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    if (PQntuples(res) == 0) {
        ngx_scenario_finalize(r, ngx_http_json_error(r, NGX_HTTP_CONFLICT,
                              "email_taken",
                              "an account with this email already exists"));
        return;
    }

    if (!PQgetisnull(res, 0, 5)) {
        ngx_scenario_finalize(r, ngx_http_json_error(r,
                              NGX_HTTP_BAD_REQUEST, "invalid_invite",
                              "the invite code is unknown, used, revoked "
                              "or expired"));
        return;
    }

    ctx = ngx_scenario_ctx(r);

    ctx->user = ngx_http_json_own(r->pool, ngx_scenario_user_json(res));
    if (ctx->user == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_scenario_count(r, NGX_SCENARIO_M_REGISTERED, 1);
    ngx_scenario_session_start(r, NGX_HTTP_CREATED);
}


/* login */


ngx_int_t
ngx_scenario_login_handler(ngx_http_request_t *r)
{
    return ngx_scenario_auth_post(r, ngx_scenario_login_body);
}


static void
ngx_scenario_login_body(ngx_http_request_t *r)
{
    u_char                     digest[crypto_hash_sha256_BYTES];
    u_char                     limits[2][NGX_INT_T_LEN];
    u_char                     window[NGX_TIME_T_LEN];
    ngx_int_t                  rc;
    ngx_str_t                  keys[2], args[3];
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_scenario_ctx(r);
    if (ctx == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_scenario_auth_fields(r, ctx, 0, &rc) != NGX_OK) {
        ngx_scenario_finalize(r, rc);
        return;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    /* the keys of the failure counters: an email's hash, the address */

    ctx->key_email.data = ngx_pnalloc(r->pool,
                                      sizeof("rl:login:e:") - 1 + 32);
    ctx->key_address.data = ngx_pnalloc(r->pool,
                                        sizeof("rl:login:a:") - 1
                                        + r->connection->addr_text.len);
    if (ctx->key_email.data == NULL || ctx->key_address.data == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    crypto_hash_sha256(digest, ctx->email.data, ctx->email.len);

    ctx->key_email.len = ngx_hex_dump(ngx_cpymem(ctx->key_email.data,
                                                 "rl:login:e:",
                                                 sizeof("rl:login:e:") - 1),
                                      digest, 16)
                         - ctx->key_email.data;

    ctx->key_address.len = ngx_cpymem(ngx_cpymem(ctx->key_address.data,
                                                 "rl:login:a:",
                                                 sizeof("rl:login:a:") - 1),
                                      r->connection->addr_text.data,
                                      r->connection->addr_text.len)
                           - ctx->key_address.data;

    keys[0] = ctx->key_email;
    keys[1] = ctx->key_address;

    args[0].data = limits[0];
    args[0].len = ngx_sprintf(limits[0], "%ui", smcf->limit_email)
                  - limits[0];
    args[1].data = limits[1];
    args[1].len = ngx_sprintf(limits[1], "%ui", smcf->limit_address)
                  - limits[1];
    args[2].data = window;
    args[2].len = ngx_sprintf(window, "%T", smcf->limit_window * 1000)
                  - window;

    rc = ngx_scenario_redis_eval(r, ngx_scenario_login_checked,
                                 &ngx_scenario_limit_check, 2, keys, 3,
                                 args);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "redis");
    }
}


static void
ngx_scenario_login_checked(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    ngx_scenario_ctx_t  *ctx;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_INTEGER) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "redis"));
        return;
    }

    if (reply->integer != 0) {
        ngx_scenario_count(r, NGX_SCENARIO_M_LOGIN_LIMITED, 1);

        ngx_scenario_finalize(r, ngx_scenario_rate_limited(r,
                              (time_t) (reply->integer + 999) / 1000,
                              "too many failed logins, try again later"));
        return;
    }

    ctx = ngx_scenario_ctx(r);

    rc = ngx_scenario_pg(r, ngx_scenario_user_by_email, 1, &ctx->email,
                         ngx_scenario_login_user);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}


static void
ngx_scenario_login_user(ngx_http_request_t *r, PGresult *res, ngx_int_t rc)
{
    ngx_str_t            hash, *stored;
    ngx_scenario_ctx_t  *ctx;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    ctx = ngx_scenario_ctx(r);
    stored = NULL;

    if (PQntuples(res) == 1) {
        ctx->user = ngx_http_json_own(r->pool, ngx_scenario_user_json(res));
        if (ctx->user == NULL) {
            ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        hash = ngx_pg_value(res, 0, 5);
        stored = &hash;
    }

    /* an unknown email is checked against the dummy hash: same time */

    ngx_scenario_auth_hash(r, 1, stored, ngx_scenario_login_verified);
}


static void
ngx_scenario_login_verified(ngx_http_request_t *r)
{
    u_char               id[NGX_INT64_LEN];
    ngx_int_t            rc;
    ngx_str_t            params[2];
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    if (ctx->user != NULL && ctx->job->rc == NGX_OK) {
        ngx_scenario_count(r, NGX_SCENARIO_M_LOGIN_OK, 1);

        if (!ctx->job->needs_rehash) {
            ngx_scenario_session_start(r, NGX_HTTP_OK);
            return;
        }

        /* the cost changed since the hash was made: store the new one */

        params[0].data = id;
        params[0].len = ngx_sprintf(id, "%L", (int64_t) json_integer_value(
                                        json_object_get(ctx->user, "id")))
                        - id;
        params[1].data = (u_char *) ctx->job->hash;
        params[1].len = ngx_strlen(ctx->job->hash);

        rc = ngx_scenario_pg(r, ngx_scenario_user_rehash, 2, params,
                             ngx_scenario_login_rehashed);
        if (rc != NGX_OK) {
            ngx_scenario_session_start(r, NGX_HTTP_OK);
        }

        return;
    }

    /* the attempt was counted before the verify */

    ngx_scenario_count(r, NGX_SCENARIO_M_LOGIN_FAILED, 1);

    ngx_scenario_finalize(r, ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED,
                          "invalid_credentials",
                          "the email or the password is wrong"));
}


static void
ngx_scenario_login_rehashed(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    /* the old hash still works: a failed update only waits for next time */
    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "scenario: storing a rehashed password failed");
    }

    ngx_scenario_session_start(r, NGX_HTTP_OK);
}


/* a session: 256 random bits, of which Redis keeps only the hash */


static void
ngx_scenario_session_start(ngx_http_request_t *r, ngx_uint_t status)
{
    u_char                     raw[32], key[sizeof("sess:") - 1
                                            + NGX_SCENARIO_HASH_HEX];
    u_char                     id[NGX_INT64_LEN], ttl[NGX_TIME_T_LEN];
    ngx_int_t                  rc;
    ngx_str_t                  src, dst, keys[3], args[2];
    ngx_uint_t                 n;
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_scenario_ctx(r);
    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    randombytes_buf(raw, sizeof(raw));

    src.data = raw;
    src.len = sizeof(raw);
    dst.data = ctx->token;

    ngx_encode_base64url(&dst, &src);
    ctx->token[NGX_SCENARIO_TOKEN_LEN] = '\0';

    sodium_memzero(raw, sizeof(raw));

    ngx_memcpy(key, "sess:", sizeof("sess:") - 1);
    ngx_scenario_token_key(ctx->token, NGX_SCENARIO_TOKEN_LEN,
                           key + sizeof("sess:") - 1);

    r->headers_out.status = status;

    /* KEYS: the session, and on login the attempt counters */

    keys[0].data = key;
    keys[0].len = sizeof(key);
    n = 1;

    if (ctx->key_email.len) {
        keys[n++] = ctx->key_email;
        keys[n++] = ctx->key_address;
    }

    args[0].data = id;
    args[0].len = ngx_sprintf(id, "%L", (int64_t) json_integer_value(
                                  json_object_get(ctx->user, "id")))
                  - id;
    args[1].data = ttl;
    args[1].len = ngx_sprintf(ttl, "%T", smcf->token_ttl) - ttl;

    rc = ngx_scenario_redis_eval(r, ngx_scenario_session_started,
                                 &ngx_scenario_session_script, n, keys, 2,
                                 args);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "redis");
    }
}


static void
ngx_scenario_session_started(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    u_char                    *expires;
    json_t                    *json;
    ngx_str_t                  token;
    ngx_uint_t                 status;
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    if (rc != NGX_OK) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "redis"));
        return;
    }

    ctx = ngx_scenario_ctx(r);
    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    status = r->headers_out.status;

    expires = ngx_http_json_time(r->pool, ngx_time() + smcf->token_ttl);

    token.data = ctx->token;
    token.len = NGX_SCENARIO_TOKEN_LEN;

    json = json_pack("{s:s%,s:s,s:O}",
                     "token", (char *) ctx->token,
                     (size_t) NGX_SCENARIO_TOKEN_LEN,
                     "expires_at", expires ? (char *) expires : "",
                     "user", ctx->user);

    if (json == NULL || expires == NULL
        || ngx_http_json_own(r->pool, json) == NULL
        || ngx_scenario_set_cookie(r, &token, smcf->token_ttl) != NGX_OK)
    {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* a token is secret: no cache keeps the answer */
    r->headers_out.last_modified_time = -1;
    ngx_http_clear_last_modified(r);

    ngx_scenario_finalize(r, ngx_http_json_send(r, status, json));
}


static ngx_int_t
ngx_scenario_set_cookie(ngx_http_request_t *r, ngx_str_t *token,
    time_t max_age)
{
    u_char                    *p;
    size_t                     len;
    ngx_str_t                  v;
    ngx_uint_t                 secure;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    secure = 0;
#if (NGX_HTTP_SSL)
    secure = r->connection->ssl != NULL;
#endif

    len = smcf->cookie_name.len + 1 + token->len
          + sizeof("; Path=/; Max-Age=") - 1 + NGX_TIME_T_LEN
          + sizeof("; HttpOnly; SameSite=Lax; Secure") - 1;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v.data = p;
    p = ngx_sprintf(p, "%V=%V; Path=/; Max-Age=%T; HttpOnly; SameSite=Lax",
                    &smcf->cookie_name, token, max_age);

    if (secure) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

    v.len = p - v.data;

    if (ngx_http_headers_add(r, "Set-Cookie", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    v.data = (u_char *) "no-store";
    v.len = sizeof("no-store") - 1;

    return ngx_http_headers_add(r, "Cache-Control", &v);
}


/* logout */


ngx_int_t
ngx_scenario_logout_handler(ngx_http_request_t *r)
{
    u_char               *key;
    ngx_int_t             rc;
    ngx_str_t             token;
    ngx_uint_t            cookie;
    ngx_scenario_ctx_t   *ctx;

    if (r->method != NGX_HTTP_POST) {
        return ngx_scenario_method_not_allowed(r, "POST");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_scenario_token(r, &token, &cookie);
    if (rc != NGX_OK) {
        return ngx_scenario_unauthorized(r);
    }

    if (cookie && ngx_scenario_origin_ok(r) != NGX_OK) {
        return ngx_http_json_error(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                   "the request's Origin is not allowed");
    }

    ctx = ngx_scenario_ctx(r);

    key = ngx_pnalloc(r->pool, sizeof("sess:") - 1 + NGX_SCENARIO_HASH_HEX);
    if (ctx == NULL || key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(key, "sess:", sizeof("sess:") - 1);
    ngx_scenario_token_key(token.data, token.len, key + sizeof("sess:") - 1);

    ctx->token_key.data = key;
    ctx->token_key.len = sizeof("sess:") - 1 + NGX_SCENARIO_HASH_HEX;

    rc = ngx_scenario_redis_eval(r, ngx_scenario_logout_done,
                                 &ngx_scenario_logout_script, 1,
                                 &ctx->token_key, 0, NULL);

    return ngx_scenario_wait(r, rc, "redis");
}


static void
ngx_scenario_logout_done(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    ngx_str_t            none = ngx_string(""), key;
    ngx_scenario_ctx_t  *ctx;

    if (rc != NGX_OK) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "redis"));
        return;
    }

    /* this worker forgets at once, the others when the message comes */
    ctx = ngx_scenario_ctx(r);
    key.data = ctx->token_key.data + sizeof("sess:") - 1;
    key.len = NGX_SCENARIO_HASH_HEX;
    ngx_scenario_cache_forget(NGX_SCENARIO_CACHE_TOKEN, &key);

    ngx_scenario_count(r, NGX_SCENARIO_M_LOGOUT, 1);

    /* whether or not the token was alive, it is not now */
    if (ngx_scenario_set_cookie(r, &none, 0) != NGX_OK) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    ngx_scenario_finalize(r, ngx_http_send_header(r));
}


/* me: the profile is kept in Redis for a while, Postgres is the truth */


ngx_int_t
ngx_scenario_me_handler(ngx_http_request_t *r)
{
    u_char                    *key;
    size_t                     argvlen[2];
    ngx_int_t                  rc;
    ngx_str_t                  doc;
    const char                *argv[2];
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD");
    }

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    if (ctx == NULL || ctx->user_id == 0) {
        /* the location lacks "scenario_auth_required on" */
        return ngx_scenario_unauthorized(r);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    if (ngx_scenario_cache_get(smcf, NGX_SCENARIO_CACHE_PROFILE,
                               &ctx->user_id_text, &doc)
        == NGX_OK)
    {
        return ngx_http_json_send_raw(r, NGX_HTTP_OK, doc.data, doc.len);
    }

    ngx_scenario_cache_stamp(smcf, &ctx->stamp);

    key = ngx_pnalloc(r->pool, sizeof("user:") - 1 + NGX_INT64_LEN);
    if (key == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = (char *) key;
    argvlen[1] = ngx_sprintf(key, "user:%V", &ctx->user_id_text) - key;

    rc = ngx_scenario_redis(r, ngx_scenario_me_cached, 2, argv, argvlen);

    return ngx_scenario_wait(r, rc, "redis");
}


static void
ngx_scenario_me_cached(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    ngx_str_t                  doc;
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_scenario_ctx(r);

    if (rc == NGX_OK && reply->type == REDIS_REPLY_STRING) {
        smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

        doc.data = (u_char *) reply->str;
        doc.len = reply->len;
        ngx_scenario_cache_put(smcf, NGX_SCENARIO_CACHE_PROFILE, &ctx->stamp,
                               &ctx->user_id_text, &doc);

        ngx_scenario_finalize(r, ngx_http_json_send_raw(r, NGX_HTTP_OK,
                                                        doc.data, doc.len));
        return;
    }

    rc = ngx_scenario_pg(r, ngx_scenario_user_by_id, 1, &ctx->user_id_text,
                         ngx_scenario_me_done);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}


static void
ngx_scenario_me_done(ngx_http_request_t *r, PGresult *res, ngx_int_t rc)
{
    json_t               *user;
    ngx_str_t             created, role;
    ngx_scenario_ctx_t   *ctx;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    if (PQntuples(res) != 1) {
        /* the account was deleted while the session lived */
        ngx_scenario_finalize(r, ngx_http_json_error(r,
                              NGX_HTTP_UNAUTHORIZED, "unauthorized",
                              "the account no longer exists"));
        return;
    }

    user = ngx_http_json_own(r->pool, ngx_scenario_user_json(res));
    if (user == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    created = ngx_pg_value(res, 0, 5);
    json_object_set_new(user, "created_at",
                        json_stringn((char *) created.data, created.len));

    /* issue 9: the role, and the organization (null once removed) */
    role = ngx_pg_value(res, 0, 6);
    json_object_set_new(user, "role",
                        json_stringn((char *) role.data, role.len));
    json_object_set_new(user, "org_id", PQgetisnull(res, 0, 7)
                        ? json_null()
                        : json_integer(ngx_pg_int(res, 0, 7)));

    ctx = ngx_scenario_ctx(r);
    ngx_scenario_user_cache(r, &ctx->user_id_text, user, &ctx->stamp);

    ngx_scenario_finalize(r, ngx_http_json_send(r, NGX_HTTP_OK, user));
}


/* shared */


static ngx_int_t
ngx_scenario_auth_post(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt handler)
{
    ngx_scenario_loc_conf_t  *slcf;

    if (r->method != NGX_HTTP_POST) {
        return ngx_scenario_method_not_allowed(r, "POST");
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    return ngx_http_json_read(r, slcf->max_body, handler);
}


static ngx_int_t
ngx_scenario_auth_fields(ngx_http_request_t *r, ngx_scenario_ctx_t *ctx,
    ngx_uint_t registering, ngx_int_t *rc)
{
    u_char                   *p, *at;
    json_t                   *body;
    const char               *weak;
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    body = ngx_http_json_body(r, slcf->max_body, rc);
    if (body == NULL) {
        return NGX_DECLINED;
    }

    ctx->body = body;

    if (ngx_http_json_string(body, "email", &ctx->email, 3, 254) != NGX_OK
        || ngx_http_json_string(body, "password", &ctx->password, 1,
                                NGX_PWHASH_MAX_PASSWORD)
           != NGX_OK
        || ctx->password.len > NGX_PWHASH_MAX_PASSWORD)
    {
        return ngx_scenario_auth_invalid(r, "bad_request",
                                         "\"email\" and \"password\" must "
                                         "be strings (email up to 254 "
                                         "characters, password up to 1024 "
                                         "bytes)", rc);
    }

    if (registering
        && ngx_http_json_string(body, "display_name", &ctx->display_name, 1,
                                64)
           != NGX_OK)
    {
        return ngx_scenario_auth_invalid(r, "bad_request",
                                         "\"display_name\" must be a "
                                         "string of 1 to 64 characters", rc);
    }

    /* emails are kept lowercased; a plausible one has one '@' inside */

    p = ngx_pnalloc(r->pool, ctx->email.len);
    if (p == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DECLINED;
    }

    ngx_strlow(p, ctx->email.data, ctx->email.len);
    ctx->email.data = p;

    at = NULL;
    for (p = ctx->email.data; p < ctx->email.data + ctx->email.len; p++) {
        if (*p <= ' ' || *p == 0x7f || (*p == '@' && at != NULL)) {
            at = NULL;
            break;
        }

        if (*p == '@') {
            at = p;
        }
    }

    if (at == NULL || at == ctx->email.data
        || at == ctx->email.data + ctx->email.len - 1)
    {
        return ngx_scenario_auth_invalid(r, "bad_request",
                                         "\"email\" is not an email "
                                         "address", rc);
    }

    if (registering) {
        for (p = ctx->display_name.data;
             p < ctx->display_name.data + ctx->display_name.len;
             p++)
        {
            if (*p < ' ' || *p == 0x7f) {
                return ngx_scenario_auth_invalid(r, "bad_request",
                                                 "\"display_name\" has "
                                                 "control characters", rc);
            }
        }

        weak = ngx_scenario_weak_password(ctx);
        if (weak) {
            return ngx_scenario_auth_invalid(r, "weak_password", weak, rc);
        }
    }

    return NGX_OK;
}


/*
 * Which organization a registration joins: "invite_code" (its hash is
 * looked up), "organization" (a new one, with scenario_register_organization
 * on), or neither (the default one, only while scenario_register is on).
 */

static ngx_int_t
ngx_scenario_register_org(ngx_http_request_t *r, ngx_scenario_ctx_t *ctx,
    ngx_int_t *rc)
{
    ngx_int_t                  code, org;
    ngx_str_t                  value;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    code = ngx_http_json_string(ctx->body, "invite_code", &value, 1, 64);

    if (code == NGX_ERROR) {
        *rc = ngx_scenario_field_error(r, "invite_code", "\"invite_code\" "
                                       "must be a string of 1 to 64 "
                                       "characters");
        return NGX_DECLINED;
    }

    if (code == NGX_OK) {
        ctx->invite.data = ngx_pnalloc(r->pool, NGX_SCENARIO_HASH_HEX);
        if (ctx->invite.data == NULL) {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DECLINED;
        }

        ngx_scenario_token_key(value.data, value.len, ctx->invite.data);
        ctx->invite.len = NGX_SCENARIO_HASH_HEX;
    }

    org = ngx_http_json_string(ctx->body, "organization", &ctx->org_name, 1,
                               100);

    if (org == NGX_ERROR || (org == NGX_OK && code == NGX_OK)) {
        *rc = ngx_scenario_field_error(r, "organization", "\"organization\" "
                                       "must be a string of 1 to 100 "
                                       "characters, and not given with "
                                       "\"invite_code\"");
        return NGX_DECLINED;
    }

    if (org == NGX_OK && !smcf->register_organization) {
        *rc = ngx_http_json_error(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                  "creating an organization at "
                                  "registration is disabled");
        return NGX_DECLINED;
    }

    if (org != NGX_OK) {
        ctx->org_name.data = NULL;
        ctx->org_name.len = 0;
    }

    if (code != NGX_OK && !smcf->register_enabled) {
        *rc = ngx_http_json_error(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                  "registration is disabled");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_auth_invalid(ngx_http_request_t *r, const char *code,
    const char *message, ngx_int_t *rc)
{
    *rc = ngx_http_json_error(r, NGX_HTTP_BAD_REQUEST, code, message);

    return NGX_DECLINED;
}


static const char *
ngx_scenario_weak_password(ngx_scenario_ctx_t *ctx)
{
    u_char      *p;
    size_t       chars;
    ngx_str_t   *pw;
    ngx_uint_t   i, same;

    pw = &ctx->password;

    chars = 0;
    same = 1;

    for (p = pw->data; p < pw->data + pw->len; p++) {
        if ((*p & 0xc0) != 0x80) {
            chars++;
        }

        if (*p != pw->data[0]) {
            same = 0;
        }
    }

    if (chars < NGX_SCENARIO_MIN_PASSWORD) {
        return "the password must have at least 8 characters";
    }

    if (same) {
        return "the password must not repeat one character";
    }

    if (pw->len == ctx->email.len
        && ngx_strncasecmp(pw->data, ctx->email.data, pw->len) == 0)
    {
        return "the password must not be the email address";
    }

    for (i = 0; ngx_scenario_common_passwords[i]; i++) {
        if (pw->len == ngx_strlen(ngx_scenario_common_passwords[i])
            && ngx_strncasecmp(pw->data,
                               (u_char *) ngx_scenario_common_passwords[i],
                               pw->len)
               == 0)
        {
            return "the password is too common";
        }
    }

    return NULL;
}


static json_t *
ngx_scenario_user_json(PGresult *res)
{
    ngx_str_t  email, name;

    email = ngx_pg_value(res, 0, 1);
    name = ngx_pg_value(res, 0, 2);

    return json_pack("{s:I,s:s%,s:s%,s:I,s:I}",
                     "id", (json_int_t) ngx_pg_int(res, 0, 0),
                     "email", (char *) email.data, email.len,
                     "display_name", (char *) name.data, name.len,
                     "xp", (json_int_t) ngx_pg_int(res, 0, 3),
                     "level", (json_int_t) ngx_pg_int(res, 0, 4));
}


/* the password goes to the hashing threads: hashed, or checked (verify) */

static void
ngx_scenario_auth_hash(ngx_http_request_t *r, ngx_uint_t verify,
    ngx_str_t *stored, ngx_http_event_handler_pt handler)
{
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_scenario_ctx(r);
    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    r->write_event_handler = ngx_scenario_wait_done;

    ctx->job = ngx_pwhash_post(r, &smcf->pwhash, verify, &ctx->password,
                               stored, handler);
    if (ctx->job == NULL) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r,
                                                      "password hashing"));
    }
}


/* while a Postgres or Redis answer is awaited, writes have nothing to do */

static void
ngx_scenario_wait_done(ngx_http_request_t *r)
{
}
