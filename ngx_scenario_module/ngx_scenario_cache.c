/*
 * Per-worker caches of live sessions (token hash -> user id) and of the
 * profiles /auth/me answers with, so that the hot path needs no round trip.
 *
 * They stay exact through Redis pub/sub: logout and profile changes publish
 * on "scenario:invalidate" and every worker of every instance drops the
 * entry at once.  An entry is used only while the subscription is known to
 * be live and unbroken since it was stored (the subscription's epoch), and
 * an answer is not stored if any invalidation arrived while it was asked
 * for, so a message that overtakes the answer cannot be lost.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


#define NGX_SCENARIO_CACHE_MAX  16384


static void ngx_scenario_cache_message(void *data, ngx_str_t *channel,
    ngx_str_t *message);


static ngx_ttl_cache_t   ngx_scenario_tokens;
static ngx_ttl_cache_t   ngx_scenario_profiles;
static ngx_uint_t        ngx_scenario_invalidations;
static ngx_redis_sub_t  *ngx_scenario_sub;

static ngx_str_t  ngx_scenario_channel = ngx_string("scenario:invalidate");


ngx_int_t
ngx_scenario_cache_init_process(ngx_scenario_main_conf_t *smcf)
{
    ngx_ttl_cache_init(&ngx_scenario_tokens, NGX_SCENARIO_CACHE_MAX);
    ngx_ttl_cache_init(&ngx_scenario_profiles, NGX_SCENARIO_CACHE_MAX);
    ngx_scenario_revoke_init_process();

    /* also without a cache: a logout ends the chats of its token */

    ngx_scenario_sub = ngx_redis_subscribe(smcf->redis_pool,
                                           &ngx_scenario_channel,
                                           ngx_scenario_cache_message, NULL);

    return ngx_scenario_sub ? NGX_OK : NGX_ERROR;
}


void
ngx_scenario_cache_exit_process(void)
{
    ngx_ttl_cache_flush(&ngx_scenario_tokens);
    ngx_ttl_cache_flush(&ngx_scenario_profiles);
    ngx_scenario_sub = NULL;
}


/* what an answer asked for now must match to be stored later */

void
ngx_scenario_cache_stamp(ngx_scenario_main_conf_t *smcf,
    ngx_scenario_stamp_t *stamp)
{
    stamp->epoch = smcf->auth_cache ? ngx_redis_sub_epoch(smcf->redis_pool)
                                    : 0;
    stamp->seq = ngx_scenario_invalidations;
}


static ngx_uint_t
ngx_scenario_cache_valid(ngx_scenario_main_conf_t *smcf,
    ngx_scenario_stamp_t *stamp)
{
    return stamp->epoch != 0
           && stamp->epoch == ngx_redis_sub_epoch(smcf->redis_pool)
           && stamp->seq == ngx_scenario_invalidations;
}


ngx_int_t
ngx_scenario_cache_get(ngx_scenario_main_conf_t *smcf, ngx_uint_t kind,
    ngx_str_t *key, ngx_str_t *value)
{
    ngx_uint_t  epoch;

    if (smcf->auth_cache == 0) {
        return NGX_DECLINED;
    }

    epoch = ngx_redis_sub_epoch(smcf->redis_pool);
    if (epoch == 0) {
        return NGX_DECLINED;
    }

    return ngx_ttl_cache_get(kind == NGX_SCENARIO_CACHE_TOKEN
                             ? &ngx_scenario_tokens : &ngx_scenario_profiles,
                             key->data, key->len, epoch, value);
}


void
ngx_scenario_cache_put(ngx_scenario_main_conf_t *smcf, ngx_uint_t kind,
    ngx_scenario_stamp_t *stamp, ngx_str_t *key, ngx_str_t *value)
{
    if (!ngx_scenario_cache_valid(smcf, stamp)) {
        return;
    }

    (void) ngx_ttl_cache_put(kind == NGX_SCENARIO_CACHE_TOKEN
                             ? &ngx_scenario_tokens : &ngx_scenario_profiles,
                             key->data, key->len, stamp->epoch, value->data,
                             value->len, smcf->auth_cache);
}


void
ngx_scenario_cache_forget(ngx_uint_t kind, ngx_str_t *key)
{
    ngx_scenario_invalidations++;

    ngx_ttl_cache_delete(kind == NGX_SCENARIO_CACHE_TOKEN
                         ? &ngx_scenario_tokens : &ngx_scenario_profiles,
                         key->data, key->len);
}


/* "sess:<token hash>", "user:<id>" or "member:<id>" */

static void
ngx_scenario_cache_message(void *data, ngx_str_t *channel,
    ngx_str_t *message)
{
    u_char     hex[NGX_SCENARIO_HASH_HEX];
    ngx_str_t  key, id;

    if (message->len > 5 && ngx_strncmp(message->data, "sess:", 5) == 0) {
        key.data = message->data + 5;
        key.len = message->len - 5;
        ngx_scenario_cache_forget(NGX_SCENARIO_CACHE_TOKEN, &key);
        ngx_scenario_revoked(&key);
        return;
    }

    if (message->len > 5 && ngx_strncmp(message->data, "user:", 5) == 0) {
        key.data = message->data + 5;
        key.len = message->len - 5;
        ngx_scenario_cache_forget(NGX_SCENARIO_CACHE_PROFILE, &key);
        return;
    }

    /* a member's role or organization changed: their chats end */
    if (message->len > 7 && ngx_strncmp(message->data, "member:", 7) == 0) {
        id.data = message->data + 7;
        id.len = message->len - 7;

        if (id.len <= NGX_INT64_LEN) {
            ngx_scenario_member_key(&id, hex);
            key.data = hex;
            key.len = NGX_SCENARIO_HASH_HEX;
            ngx_scenario_revoked(&key);
        }

        return;
    }

    /* anything else: forget everything, to be safe */
    ngx_scenario_invalidations++;
    ngx_ttl_cache_flush(&ngx_scenario_tokens);
    ngx_ttl_cache_flush(&ngx_scenario_profiles);
}


/*
 * The profile that /auth/me answers with, kept in Redis so that the hot
 * path needs no Postgres.  Nothing waits for these commands.
 */


void
ngx_scenario_user_cache(ngx_http_request_t *r, ngx_str_t *id, json_t *user,
    ngx_scenario_stamp_t *stamp)
{
    u_char                    *key;
    char                      *doc;
    size_t                     argvlen[5];
    ngx_str_t                  value;
    const char                *argv[5];
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    key = ngx_pnalloc(r->pool, sizeof("user:") - 1 + id->len);
    doc = json_dumps(user, JSON_COMPACT);

    if (key == NULL || doc == NULL) {
        free(doc);
        return;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (char *) key;
    argvlen[1] = ngx_sprintf(key, "user:%V", id) - key;
    argv[2] = doc;
    argvlen[2] = ngx_strlen(doc);
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = NGX_SCENARIO_USER_TTL;
    argvlen[4] = sizeof(NGX_SCENARIO_USER_TTL) - 1;

    (void) ngx_redis_command(smcf->redis_pool, NULL, NULL, 5,
                             argv, argvlen);

    value.data = (u_char *) doc;
    value.len = argvlen[2];
    ngx_scenario_cache_put(smcf, NGX_SCENARIO_CACHE_PROFILE, stamp, id,
                           &value);

    free(doc);
}


/* the profile changed: Redis drops it and every worker is told */

static ngx_str_t  ngx_scenario_forget_script = ngx_string(
    "redis.call('DEL', KEYS[1]) "
    "redis.call('PUBLISH', 'scenario:invalidate', KEYS[1]) "
    "return 1");


void
ngx_scenario_user_forget(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_str_t                  key;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    ngx_scenario_cache_forget(NGX_SCENARIO_CACHE_PROFILE, id);

    key.data = ngx_pnalloc(r->pool, sizeof("user:") - 1 + id->len);
    if (key.data == NULL) {
        return;
    }

    key.len = ngx_sprintf(key.data, "user:%V", id) - key.data;

    (void) ngx_redis_eval(smcf->redis_pool, NULL, NULL,
                          &ngx_scenario_forget_script, 1, &key, 0, NULL);
}
