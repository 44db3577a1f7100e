/*
 * A cap on open chats per user and per client address, shared by every
 * worker of every nginx on one Redis (scenario_chat_limit).
 *
 * Each open chat holds a lease: a member of the sorted sets
 * "chats:u:<user id>" and "chats:a:<address>" whose score is when it
 * expires (Redis's clock, so that the instances' clocks do not matter).
 * One script, before the upgrade, drops the expired members, counts the
 * rest and adds the new one, so parallel handshakes cannot overshoot.  A
 * chat that closes takes its member off at once.  Each worker renews all
 * of its leases in one command every third of the lease: a worker that
 * crashes, or a close that Redis never heard, frees its slots when the
 * leases run out, and a Redis that restarted empty gets the live leases
 * back at the next renewal.
 *
 * Redis down: the handshake is refused (503), like every other check that
 * needs Redis; the chat could not elect its replies anyway.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


#define NGX_SCENARIO_LEASE_HINT   0        /* one connection: in order */
#define NGX_SCENARIO_LEASE_BATCH  256      /* leases per renewal command */
#define NGX_SCENARIO_LEASE_RETRY  250      /* ms, after a failed renewal */


typedef struct {
    ngx_queue_t                  queue;     /* the worker's live leases */
    ngx_scenario_chat_admit_pt   handler;
    ngx_redis_op_t              *op;        /* the admission in flight */
    ngx_str_t                    user_key;  /* "chats:u:<id>" */
    ngx_str_t                    addr_key;  /* "chats:a:<address>" */
    ngx_str_t                    member;    /* "<instance>.<n>" */
    unsigned                     queued:1;
    unsigned                     sent:1;    /* Redis may hold the member */
} ngx_scenario_lease_t;


static ngx_int_t ngx_scenario_chat_admit(ngx_http_request_t *r,
    ngx_scenario_chat_admit_pt handler);
static void ngx_scenario_lease_admitted(void *data, redisReply *reply,
    ngx_int_t rc);
static void ngx_scenario_lease_cleanup(void *data);
static void ngx_scenario_lease_drop(ngx_scenario_lease_t *lease);
static void ngx_scenario_lease_renew(ngx_event_t *ev);
static void ngx_scenario_lease_renewed(void *data, redisReply *reply,
    ngx_int_t rc);
static void ngx_scenario_lease_arm(void);


/*
 * KEYS: the user's and the address's sets; ARGV: the member, the two caps
 * and the lease in ms.  Returns 0 (admitted), 1 (the user's cap) or 2
 * (the address's).
 */
static ngx_str_t  ngx_scenario_admit_script = ngx_string(
    "local t = redis.call('TIME') "
    "local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "local lease = tonumber(ARGV[4]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) "
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 1 end "
    "if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 2 end "
    "for i = 1, 2 do "
    "redis.call('ZADD', KEYS[i], now + lease, ARGV[1]) "
    "redis.call('PEXPIRE', KEYS[i], lease) end "
    "return 0");

static ngx_str_t  ngx_scenario_leave_script = ngx_string(
    "redis.call('ZREM', KEYS[1], ARGV[1]) "
    "return redis.call('ZREM', KEYS[2], ARGV[1])");

/*
 * KEYS: a user's and an address's set per lease; ARGV: the lease in ms,
 * then the members.  A member is added back if Redis lost it.
 */
static ngx_str_t  ngx_scenario_renew_script = ngx_string(
    "local t = redis.call('TIME') "
    "local lease = tonumber(ARGV[1]) "
    "local exp = t[1] * 1000 + math.floor(t[2] / 1000) + lease "
    "for i = 2, #ARGV do "
    "for j = 2 * i - 3, 2 * i - 2 do "
    "redis.call('ZADD', KEYS[j], exp, ARGV[i]) "
    "redis.call('PEXPIRE', KEYS[j], lease) end end "
    "return 0");


static ngx_queue_t                ngx_scenario_leases;
static ngx_event_t                ngx_scenario_lease_timer;

/*
 * the timer's ev->data: the debug log's ngx_event_ident() reads it as a
 * connection (nginx's own timers use such a stub)
 */
static ngx_connection_t           ngx_scenario_lease_dumb;
static ngx_scenario_main_conf_t  *ngx_scenario_lease_conf;
static ngx_uint_t                 ngx_scenario_lease_number;
static ngx_uint_t                 ngx_scenario_lease_exiting;
static ngx_uint_t                 ngx_scenario_lease_owed; /* renewal failed */
static u_char                     ngx_scenario_lease_instance[16];


void
ngx_scenario_chat_limit_init_process(ngx_scenario_main_conf_t *smcf,
    ngx_cycle_t *cycle)
{
    u_char  raw[8];

    ngx_queue_init(&ngx_scenario_leases);
    ngx_scenario_lease_conf = smcf;
    ngx_scenario_lease_exiting = 0;
    ngx_scenario_lease_owed = 0;

    /* members must differ across instances whose workers share pids */
    randombytes_buf(raw, sizeof(raw));
    ngx_hex_dump(ngx_scenario_lease_instance, raw, sizeof(raw));

    ngx_memzero(&ngx_scenario_lease_timer, sizeof(ngx_event_t));
    ngx_scenario_lease_timer.handler = ngx_scenario_lease_renew;
    ngx_scenario_lease_timer.data = &ngx_scenario_lease_dumb;
    ngx_scenario_lease_timer.log = cycle->log;
    ngx_scenario_lease_timer.cancelable = 1;
}


void
ngx_scenario_chat_limit_exit_process(void)
{
    /* the Redis pool is gone: the leases run out on their own */
    ngx_scenario_lease_exiting = 1;

    if (ngx_scenario_lease_timer.timer_set) {
        ngx_del_timer(&ngx_scenario_lease_timer);
    }
}


/*
 * A content handler's last step before the upgrade: a slot for r's user
 * and address, then check (the session's query), at once or once the slot
 * is taken.  Returns what the content handler returns.
 */

ngx_int_t
ngx_scenario_chat_admit_then(ngx_http_request_t *r,
    ngx_scenario_chat_admit_pt check)
{
    ngx_int_t  rc;

    rc = ngx_scenario_chat_admit(r, check);

    if (rc == NGX_AGAIN) {
        return ngx_scenario_wait(r, NGX_OK, "redis");
    }

    if (rc != NGX_OK) {
        return ngx_scenario_wait(r, rc, "redis");
    }

    return ngx_scenario_wait(r, check(r), "postgres");
}


/*
 * Takes a slot for r's user and address.  Returns
 * NGX_OK when no cap applies (go on at once), NGX_AGAIN when handler will
 * run once the slot is taken (a refusal, 429, or a failure, 503, ends the
 * request instead), NGX_DECLINED when Redis cannot take the command, or
 * NGX_ERROR.  The slot is given back by ngx_scenario_chat_leave() or with
 * r->pool.
 */

static ngx_int_t
ngx_scenario_chat_admit(ngx_http_request_t *r,
    ngx_scenario_chat_admit_pt handler)
{
    u_char                    *p, caps[2][NGX_INT_T_LEN], ms[NGX_INT_T_LEN];
    u_char                     member[sizeof(ngx_scenario_lease_instance)
                                      + 1 + NGX_INT_T_LEN];
    size_t                     member_len;
    ngx_str_t                  keys[2], args[4];
    ngx_connection_t          *c;
    ngx_pool_cleanup_t        *cln;
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_lease_t      *lease;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_ctx(r);
    c = r->connection;

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (smcf->chat_lease == 0 || ngx_scenario_lease_conf == NULL) {
        return NGX_OK;              /* scenario_chat_limit off */
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    member_len = ngx_sprintf(member, "%*s.%ui",
                             sizeof(ngx_scenario_lease_instance),
                             ngx_scenario_lease_instance,
                             ++ngx_scenario_lease_number)
                 - member;

    /*
     * The lease and its keys, of their exact size, apart from r->pool's
     * blocks, which the chat's socket keeps for its life; freed with the
     * pool, after the cleanup
     */
    lease = ngx_scenario_calloc_apart(r->pool,
                                      sizeof(ngx_scenario_lease_t)
                                      + sizeof("chats:u:") - 1
                                      + ctx->user_id_text.len
                                      + sizeof("chats:a:") - 1
                                      + c->addr_text.len + member_len);
    if (lease == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_scenario_lease_cleanup;
    cln->data = lease;

    p = (u_char *) (lease + 1);

    lease->user_key.data = p;
    p = ngx_sprintf(p, "chats:u:%V", &ctx->user_id_text);
    lease->user_key.len = p - lease->user_key.data;

    lease->addr_key.data = p;
    p = ngx_sprintf(p, "chats:a:%V", &c->addr_text);
    lease->addr_key.len = p - lease->addr_key.data;

    lease->member.data = p;
    lease->member.len = member_len;
    ngx_memcpy(p, member, member_len);

    lease->handler = handler;

    /*
     * Redis is back after an outage longer than the lease: this worker's
     * leases expired there; renewed first, on the same connection, they
     * count again before this admission is decided
     */
    if (ngx_scenario_lease_owed) {
        ngx_scenario_lease_renew(&ngx_scenario_lease_timer);
    }

    keys[0] = lease->user_key;
    keys[1] = lease->addr_key;

    args[0] = lease->member;
    args[1].data = caps[0];
    args[1].len = ngx_sprintf(caps[0], "%ui", smcf->chat_per_user) - caps[0];
    args[2].data = caps[1];
    args[2].len = ngx_sprintf(caps[1], "%ui", smcf->chat_per_address)
                  - caps[1];
    args[3].data = ms;
    args[3].len = ngx_sprintf(ms, "%M", smcf->chat_lease) - ms;

    /* pinned: a close's ZREM always comes after its admission */
    lease->op = ngx_redis_eval_pinned(smcf->redis_pool,
                                      NGX_SCENARIO_LEASE_HINT,
                                      ngx_scenario_lease_admitted, r,
                                      &ngx_scenario_admit_script, 2, keys,
                                      4, args);
    if (lease->op == NULL) {
        return NGX_DECLINED;
    }

    lease->sent = 1;
    ctx->lease = lease;

    return NGX_AGAIN;
}


/*
 * data: the request, whose ctx holds the lease until the reply (a lease
 * dropped before cancels the command: no reply comes)
 */

static void
ngx_scenario_lease_admitted(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_http_request_t  *r = data;

    time_t                     retry;
    ngx_connection_t          *c;
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_lease_t      *lease;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);
    lease = ctx->lease;

    lease->op = NULL;
    c = r->connection;
    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    if (rc != NGX_OK || reply->type != REDIS_REPLY_INTEGER) {
        if (rc == NGX_OK && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0, "redis: %*s",
                          (size_t) reply->len, reply->str);
        }

        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "redis"));
        ngx_http_run_posted_requests(c);
        return;
    }

    if (reply->integer != 0) {
        lease->sent = 0;

        /* a slot frees when a chat closes, or within a lease if it died */
        retry = (time_t) ((smcf->chat_lease + 999) / 1000);

        ngx_scenario_finalize(r, ngx_scenario_rate_limited(r, retry,
                              reply->integer == 1
                              ? "too many open chats for this user, "
                                "close one first"
                              : "too many open chats from this address, "
                                "close one first"));
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_queue_insert_tail(&ngx_scenario_leases, &lease->queue);
    lease->queued = 1;
    ngx_scenario_lease_arm();

    rc = lease->handler(r);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }

    ngx_http_run_posted_requests(c);
}


/* the chat closed: its slot is free at once */

void
ngx_scenario_chat_leave(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t    *ctx;
    ngx_scenario_lease_t  *lease;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    if (ctx == NULL || ctx->lease == NULL) {
        return;
    }

    lease = ctx->lease;
    ctx->lease = NULL;

    ngx_scenario_lease_drop(lease);
}


static void
ngx_scenario_lease_cleanup(void *data)
{
    ngx_scenario_lease_t  *lease = data;

    ngx_scenario_lease_drop(lease);
}


static void
ngx_scenario_lease_drop(ngx_scenario_lease_t *lease)
{
    ngx_str_t  keys[2];

    if (lease->op) {
        ngx_redis_op_cancel(lease->op);
        lease->op = NULL;
    }

    if (lease->queued) {
        ngx_queue_remove(&lease->queue);
        lease->queued = 0;
    }

    if (!lease->sent || ngx_scenario_lease_exiting) {
        return;
    }

    lease->sent = 0;

    keys[0] = lease->user_key;
    keys[1] = lease->addr_key;

    /* lost if Redis is down: the lease then runs out */
    (void) ngx_redis_eval_pinned(ngx_scenario_lease_conf->redis_pool,
                                 NGX_SCENARIO_LEASE_HINT, NULL, NULL,
                                 &ngx_scenario_leave_script, 2, keys, 1,
                                 &lease->member);
}


static void
ngx_scenario_lease_arm(void)
{
    ngx_msec_t  t;

    if (ngx_scenario_lease_exiting) {
        return;
    }

    /* a renewal that failed is tried again soon: Redis may be back */
    t = ngx_scenario_lease_owed ? NGX_SCENARIO_LEASE_RETRY
                                : ngx_scenario_lease_conf->chat_lease / 3;

    if (ngx_scenario_lease_timer.timer_set
        && (!ngx_scenario_lease_owed
            || ngx_scenario_lease_timer.timer.key <= ngx_current_msec + t))
    {
        return;
    }

    ngx_add_timer(&ngx_scenario_lease_timer, t);
}


/* every live lease of the worker, in one command per batch */

static void
ngx_scenario_lease_renew(ngx_event_t *ev)
{
    u_char                 ms[NGX_INT_T_LEN];
    ngx_str_t             *keys, *args;
    ngx_uint_t             i, m;
    ngx_queue_t           *q, *k;
    ngx_scenario_lease_t  *lease;

    if (ngx_exiting || ngx_quit || ngx_scenario_lease_exiting) {
        return;
    }

    ngx_scenario_lease_owed = 0;

    if (ngx_queue_empty(&ngx_scenario_leases)) {
        return;
    }

    /* the keys (user, address of each lease), then ARGV: the lease, members */

    keys = ngx_alloc((3 * NGX_SCENARIO_LEASE_BATCH + 1) * sizeof(ngx_str_t),
                     ev->log);
    if (keys == NULL) {
        ngx_scenario_lease_owed = 1;
        ngx_scenario_lease_arm();
        return;
    }

    args = &keys[2 * NGX_SCENARIO_LEASE_BATCH];

    args[0].data = ms;
    args[0].len = ngx_sprintf(ms, "%M", ngx_scenario_lease_conf->chat_lease)
                  - ms;

    q = ngx_queue_head(&ngx_scenario_leases);

    while (q != ngx_queue_sentinel(&ngx_scenario_leases)) {

        for (m = 0, k = q;
             m < NGX_SCENARIO_LEASE_BATCH
             && k != ngx_queue_sentinel(&ngx_scenario_leases);
             m++, k = ngx_queue_next(k))
        { /* void */ }

        for (i = 0; i < m; i++, q = ngx_queue_next(q)) {
            lease = ngx_queue_data(q, ngx_scenario_lease_t, queue);

            keys[2 * i] = lease->user_key;
            keys[2 * i + 1] = lease->addr_key;
            args[1 + i] = lease->member;
        }

        if (ngx_redis_eval_pinned(ngx_scenario_lease_conf->redis_pool,
                                  NGX_SCENARIO_LEASE_HINT,
                                  ngx_scenario_lease_renewed, NULL,
                                  &ngx_scenario_renew_script, 2 * m, keys,
                                  1 + m, args)
            == NULL)
        {
            ngx_scenario_lease_owed = 1;
        }
    }

    ngx_free(keys);

    ngx_scenario_lease_arm();
}


static void
ngx_scenario_lease_renewed(void *data, redisReply *reply, ngx_int_t rc)
{
    if (rc == NGX_OK && reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_scenario_lease_owed = 1;

    if (!ngx_queue_empty(&ngx_scenario_leases)) {
        ngx_scenario_lease_arm();
    }
}
