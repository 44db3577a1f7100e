/*
 * A per-worker pool of hiredis async connections on nginx events.
 *
 * Every command is an ngx_redis_op_t on the heap, hiredis' privdata until
 * hiredis calls back (with a reply, or with NULL when the context goes
 * away), so a request pool is never touched after the request is gone.
 * A command that is not answered within command_timeout fails with
 * NGX_ETIMEDOUT and its connection is dropped: a Redis that stops answering
 * is taken for dead, and dropping it fails its other commands with
 * NGX_ERROR.  Lost connections are re-opened with exponential backoff.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <hiredis/async.h>

#include "ngx_redis_pool.h"
#include "ngx_redis_adapter.h"


#define NGX_REDIS_DEFAULT_PORT      6379

/* an EVAL this long goes without an allocation */
#define NGX_REDIS_EVAL_ARGS         16

#define NGX_REDIS_DOWN              0
#define NGX_REDIS_CONNECTING        1
#define NGX_REDIS_READY             2


typedef struct {
    ngx_redis_pool_t          *pool;
    redisAsyncContext         *ac;
    ngx_event_t                timer;       /* connect timeout or retry */
    ngx_log_t                  log;
    ngx_uint_t                 state;
    ngx_uint_t                 pending;     /* commands in flight */
    ngx_uint_t                 handshake;   /* AUTH/SELECT/PING replies */
    ngx_msec_t                 backoff;

    unsigned                   subscriber:1;
    unsigned                   was_ready:1;
    unsigned                   failed:1;    /* failure logged since ready */
} ngx_redis_conn_t;


/* one per channel a worker listens to: a chat socket's, each */
typedef struct {
    ngx_str_node_t             sn;          /* sn.str: the channel */
    ngx_queue_t                subs;
    uint32_t                   dispatching;
    u_char                     name[1];     /* sn.str's bytes: in the
                                               padding, not behind it */
} ngx_redis_channel_t;


struct ngx_redis_sub_s {
    ngx_queue_t                queue;
    ngx_redis_pool_t          *pool;
    ngx_redis_channel_t       *channel;
    ngx_redis_message_pt       handler;
    void                      *data;

    unsigned                   removed:1;
};


struct ngx_redis_op_s {
    ngx_event_t                timer;
    ngx_redis_conn_t          *conn;
    ngx_redis_handler_pt       handler;
    void                      *data;

    unsigned                   cancelled:1;
    unsigned                   replied:1;   /* hiredis let go of it */
    unsigned                   timedout:1;
};


struct ngx_redis_pool_s {
    ngx_redis_pool_conf_t      conf;
    char                      *host;        /* numeric, for hiredis */
    int                        port;

    ngx_log_t                 *log;
    ngx_redis_conn_t          *conns;       /* conf.size commands + 1 */
    ngx_redis_conn_t          *subscriber;
    ngx_uint_t                 next;

    ngx_rbtree_t               channels;
    ngx_rbtree_node_t          sentinel;

    ngx_uint_t                 commands;
    ngx_uint_t                 errors;
    ngx_uint_t                 reconnects;

    ngx_uint_t                 sub_epoch;   /* subscriptions made anew */

    unsigned                   running:1;
    unsigned                   sub_live:1;  /* confirmed, no loss since */
};


static void ngx_redis_conn_init(ngx_redis_pool_t *pool, ngx_redis_conn_t *pc,
    ngx_log_t *log);
static void ngx_redis_conn_open(ngx_redis_conn_t *pc);
static void ngx_redis_conn_handshake_start(ngx_redis_conn_t *pc);
static void ngx_redis_conn_handshake(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_redis_conn_ready(ngx_redis_conn_t *pc);
static void ngx_redis_conn_closed(redisAsyncContext *ac);
static void ngx_redis_conn_close(ngx_redis_conn_t *pc);
static void ngx_redis_conn_retry(ngx_redis_conn_t *pc);
static void ngx_redis_conn_timer_handler(ngx_event_t *ev);
static ngx_redis_op_t *ngx_redis_command_on(ngx_redis_pool_t *pool,
    ngx_redis_conn_t *pc, ngx_redis_handler_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen);
static ngx_redis_op_t *ngx_redis_eval_send(ngx_redis_pool_t *pool,
    ngx_uint_t pinned, ngx_uint_t hint, ngx_redis_handler_pt handler,
    void *data, ngx_str_t *script, ngx_uint_t nkeys, ngx_str_t *keys,
    ngx_uint_t nargs, ngx_str_t *args);
static ngx_redis_conn_t *ngx_redis_pool_pick(ngx_redis_pool_t *pool);
static ngx_uint_t ngx_redis_conn_usable(ngx_redis_conn_t *pc);
static u_char *ngx_redis_log_error(ngx_log_t *log, u_char *buf, size_t len);

static void ngx_redis_op_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_redis_op_timeout(ngx_event_t *ev);

static ngx_redis_channel_t *ngx_redis_channel_get(ngx_redis_pool_t *pool,
    ngx_str_t *name, ngx_uint_t create);
static void ngx_redis_channel_send(ngx_redis_pool_t *pool,
    ngx_redis_channel_t *ch, const char *command);
static void ngx_redis_channel_purge(ngx_redis_pool_t *pool,
    ngx_redis_channel_t *ch);
static void ngx_redis_channel_dispatch(ngx_redis_pool_t *pool,
    ngx_redis_channel_t *ch, ngx_str_t *channel, ngx_str_t *message);
static void ngx_redis_channel_free(ngx_redis_pool_t *pool,
    ngx_redis_channel_t *ch);
static void ngx_redis_subscribe_all(ngx_redis_conn_t *pc);
static void ngx_redis_sub_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_redis_free_channels(ngx_redis_pool_t *pool);


/* configuration */


void
ngx_redis_pool_conf_init(ngx_redis_pool_conf_t *conf)
{
    if (conf->size == NGX_CONF_UNSET_UINT || conf->size == 0) {
        conf->size = 2;
    }

    if (conf->max_pending == NGX_CONF_UNSET_UINT || conf->max_pending == 0) {
        conf->max_pending = 1024;
    }

    if (conf->connect_timeout == NGX_CONF_UNSET_MSEC
        || conf->connect_timeout == 0)
    {
        conf->connect_timeout = 3000;
    }

    if (conf->command_timeout == NGX_CONF_UNSET_MSEC
        || conf->command_timeout == 0)
    {
        conf->command_timeout = 3000;
    }

    if (conf->backoff_min == NGX_CONF_UNSET_MSEC || conf->backoff_min == 0) {
        conf->backoff_min = 100;
    }

    if (conf->backoff_max == NGX_CONF_UNSET_MSEC || conf->backoff_max == 0) {
        conf->backoff_max = 5000;
    }

    if (conf->backoff_max < conf->backoff_min) {
        conf->backoff_max = conf->backoff_min;
    }

    if (conf->db == NGX_CONF_UNSET) {
        conf->db = 0;
    }
}


char *
ngx_redis_pool_conf_parse(ngx_conf_t *cf, ngx_redis_pool_conf_t *conf,
    ngx_str_t *addr)
{
    u_char     *path;
    ngx_url_t   u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *addr;
    u.default_port = NGX_REDIS_DEFAULT_PORT;

    /* resolving a name blocks, which is fine at configuration time only */

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in redis address \"%V\"", u.err, addr);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        return "has a redis address that does not resolve";
    }

    if (u.family == AF_UNIX) {
        path = ngx_pnalloc(cf->pool, u.host.len + 1);
        if (path == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(path, u.host.data, u.host.len + 1);

        conf->unix_path.len = u.host.len;
        conf->unix_path.data = path;
    }

    conf->addr = *addr;
    conf->peer = &u.addrs[0];

    return NGX_CONF_OK;
}


ngx_redis_pool_t *
ngx_redis_pool_create(ngx_conf_t *cf, ngx_redis_pool_conf_t *conf)
{
    size_t             len;
    ngx_addr_t        *peer;
    ngx_redis_pool_t  *pool;

    if (conf->peer == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "no redis address");
        return NULL;
    }

    pool = ngx_pcalloc(cf->pool, sizeof(ngx_redis_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->conf = *conf;
    ngx_redis_pool_conf_init(&pool->conf);

    if (conf->unix_path.len == 0) {
        peer = conf->peer;

        pool->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (pool->host == NULL) {
            return NULL;
        }

        /* no port: a bare numeric address, so hiredis does no lookup */
        len = ngx_sock_ntop(peer->sockaddr, peer->socklen,
                            (u_char *) pool->host, NGX_SOCKADDR_STRLEN, 0);
        pool->host[len] = '\0';
        pool->port = ngx_inet_get_port(peer->sockaddr);
    }

    ngx_rbtree_init(&pool->channels, &pool->sentinel,
                    ngx_str_rbtree_insert_value);

    return pool;
}


/* worker life */


ngx_int_t
ngx_redis_pool_init_process(ngx_redis_pool_t *pool, ngx_cycle_t *cycle)
{
    ngx_uint_t         i, n;
    ngx_redis_conn_t  *conns;

    /* cache manager and loader run init_process too, but serve nothing */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (pool->running) {
        return NGX_OK;
    }

    n = pool->conf.size;

    conns = ngx_pcalloc(cycle->pool, (n + 1) * sizeof(ngx_redis_conn_t));
    if (conns == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n + 1; i++) {
        ngx_redis_conn_init(pool, &conns[i], cycle->log);
    }

    pool->log = cycle->log;
    pool->conns = conns;
    pool->subscriber = &conns[n];
    pool->subscriber->subscriber = 1;
    pool->running = 1;

    for (i = 0; i < n; i++) {
        ngx_redis_conn_open(&conns[i]);
    }

    /* the subscriber connection opens on the first subscription */

    if (pool->channels.root != pool->channels.sentinel) {
        ngx_redis_conn_open(pool->subscriber);
    }

    return NGX_OK;
}


void
ngx_redis_pool_exit_process(ngx_redis_pool_t *pool)
{
    ngx_uint_t  i;

    if (!pool->running) {
        return;
    }

    /* no reconnects from here on */
    pool->running = 0;

    for (i = 0; i < pool->conf.size + 1; i++) {
        ngx_redis_conn_close(&pool->conns[i]);
    }

    ngx_redis_free_channels(pool);
}


void
ngx_redis_pool_stats(ngx_redis_pool_t *pool, ngx_redis_pool_stats_t *stats)
{
    ngx_uint_t         i;
    ngx_redis_conn_t  *pc;

    ngx_memzero(stats, sizeof(ngx_redis_pool_stats_t));

    stats->size = pool->conf.size;
    stats->commands = pool->commands;
    stats->errors = pool->errors;
    stats->reconnects = pool->reconnects;

    if (!pool->running) {
        return;
    }

    for (i = 0; i < pool->conf.size; i++) {
        pc = &pool->conns[i];

        if (pc->state == NGX_REDIS_READY) {
            stats->connected++;
        }

        stats->pending += pc->pending;
    }
}


/* connections */


static void
ngx_redis_conn_init(ngx_redis_pool_t *pool, ngx_redis_conn_t *pc,
    ngx_log_t *log)
{
    pc->pool = pool;
    pc->backoff = pool->conf.backoff_min;

    pc->log = *log;
    pc->log.handler = ngx_redis_log_error;
    pc->log.data = pc;
    pc->log.action = NULL;

    pc->timer.handler = ngx_redis_conn_timer_handler;
    pc->timer.data = pc;
    pc->timer.log = &pc->log;
    pc->timer.cancelable = 1;
}


static void
ngx_redis_conn_open(ngx_redis_conn_t *pc)
{
    ngx_connection_t   *c;
    ngx_redis_pool_t   *pool;
    redisAsyncContext  *ac;

    pool = pc->pool;

    pc->log.connection = 0;
    pc->log.action = "connecting to redis";

    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, &pc->log, 0, "redis connect");

    if (pool->conf.unix_path.len) {
        ac = redisAsyncConnectUnix((char *) pool->conf.unix_path.data);

    } else {
        ac = redisAsyncConnect(pool->host, pool->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "redisAsyncConnect() failed: out of memory");
        goto failed;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "redis connect failed: %s", ac->c.errstr);
        redisAsyncFree(ac);
        goto failed;
    }

    c = ngx_redis_adapter_attach(ac, &pc->log, ngx_redis_conn_closed);
    if (c == NULL) {
        redisAsyncFree(ac);
        goto failed;
    }

    pc->log.connection = c->number;

    /* an idle connection to a vanished host is found before it is used */
    if (pool->conf.unix_path.len == 0) {
        (void) redisEnableKeepAlive(&ac->c);
    }

    ac->data = pc;
    pc->ac = ac;
    pc->state = NGX_REDIS_CONNECTING;

    ngx_redis_conn_handshake_start(pc);

    ngx_add_timer(&pc->timer, pool->conf.connect_timeout);

    return;

failed:

    pc->failed = 1;
    ngx_redis_conn_retry(pc);
}


/*
 * Queued before the socket is even connected, so that commands queued on a
 * connecting connection go after it; hiredis writes it all on connect.
 */

static void
ngx_redis_conn_handshake_start(ngx_redis_conn_t *pc)
{
    u_char              db[NGX_INT_T_LEN];
    size_t              len[2];
    const char         *argv[2];
    ngx_redis_pool_t   *pool;
    redisAsyncContext  *ac;

    pool = pc->pool;
    ac = pc->ac;

    pc->handshake = 0;

    if (pool->conf.password.len) {
        argv[0] = "AUTH";
        len[0] = sizeof("AUTH") - 1;
        argv[1] = (const char *) pool->conf.password.data;
        len[1] = pool->conf.password.len;

        if (redisAsyncCommandArgv(ac, ngx_redis_conn_handshake, pc, 2, argv,
                                  len)
            == REDIS_OK)
        {
            pc->handshake++;
        }
    }

    /* channels are not per database */

    if (pool->conf.db && !pc->subscriber) {
        argv[0] = "SELECT";
        len[0] = sizeof("SELECT") - 1;
        argv[1] = (const char *) db;
        len[1] = ngx_sprintf(db, "%i", pool->conf.db) - db;

        if (redisAsyncCommandArgv(ac, ngx_redis_conn_handshake, pc, 2, argv,
                                  len)
            == REDIS_OK)
        {
            pc->handshake++;
        }
    }

    /*
     * The kernel accepts connections for a Redis that is stuck (or busy
     * loading): the connection is ready only once Redis has answered.
     */

    if (pc->handshake == 0
        && redisAsyncCommand(ac, ngx_redis_conn_handshake, pc, "PING")
           == REDIS_OK)
    {
        pc->handshake++;
    }

    /* if nothing could be queued, the connect timer retries */
}


static void
ngx_redis_conn_handshake(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply        *reply = r;
    ngx_redis_conn_t  *pc = privdata;

    if (reply == NULL || pc->ac != ac || pc->state != NGX_REDIS_CONNECTING) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "redis rejected the handshake: %*s",
                      reply->len, reply->str);

        pc->failed = 1;

        /* hiredis frees the context once this callback returns */
        ngx_redis_conn_close(pc);
        ngx_redis_conn_retry(pc);
        return;
    }

    if (--pc->handshake == 0) {
        ngx_redis_conn_ready(pc);
    }
}


static void
ngx_redis_conn_ready(ngx_redis_conn_t *pc)
{
    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    pc->state = NGX_REDIS_READY;
    pc->backoff = pc->pool->conf.backoff_min;
    pc->log.action = pc->subscriber ? "receiving redis messages"
                                    : "processing redis commands";

    if (pc->was_ready) {
        pc->pool->reconnects++;
    }

    if (pc->failed) {
        ngx_log_error(NGX_LOG_NOTICE, &pc->log, 0,
                      "redis connection restored");
    }

    pc->was_ready = 1;
    pc->failed = 0;

    if (pc->subscriber) {
        ngx_redis_subscribe_all(pc);
    }
}


/*
 * The adapter's close handler: hiredis is freeing a context, after failing
 * its pending commands with NULL replies.  Contexts closed on purpose were
 * unlinked from their connection first.
 */

static void
ngx_redis_conn_closed(redisAsyncContext *ac)
{
    ngx_redis_conn_t  *pc;

    pc = ac->data;

    if (pc == NULL || pc->ac != ac) {
        return;
    }

    if (pc->state == NGX_REDIS_CONNECTING) {
        ngx_log_error(NGX_LOG_ERR, &pc->log, 0, "redis connect failed: %s",
                      ac->c.errstr[0] ? ac->c.errstr : "closed by peer");

    } else {
        ngx_log_error(NGX_LOG_ERR, &pc->log, 0,
                      "redis connection lost: %s",
                      ac->c.errstr[0] ? ac->c.errstr : "closed");
    }

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    pc->ac = NULL;
    pc->state = NGX_REDIS_DOWN;
    pc->failed = 1;

    if (pc->subscriber) {
        pc->pool->sub_live = 0;
    }

    ngx_redis_conn_retry(pc);
}


static void
ngx_redis_conn_close(ngx_redis_conn_t *pc)
{
    redisAsyncContext  *ac;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    ac = pc->ac;

    pc->ac = NULL;
    pc->state = NGX_REDIS_DOWN;

    if (pc->subscriber) {
        pc->pool->sub_live = 0;
    }

    if (ac == NULL) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_EVENT, &pc->log, 0, "redis close");

    /*
     * Fails every pending command with a NULL reply; from inside a hiredis
     * callback the free is deferred until that callback returns.
     */
    redisAsyncFree(ac);
}


static void
ngx_redis_conn_retry(ngx_redis_conn_t *pc)
{
    ngx_msec_t         delay;
    ngx_redis_pool_t  *pool;

    pool = pc->pool;

    if (!pool->running || ngx_exiting || ngx_quit) {
        return;
    }

    /*
     * A random delay in [backoff / 2, backoff], so that the connections of
     * all workers do not come back in lockstep.
     */

    delay = pc->backoff / 2 + ngx_random() % (pc->backoff / 2 + 1);
    delay = ngx_max(delay, pool->conf.backoff_min);

    pc->backoff = ngx_min(pc->backoff * 2, pool->conf.backoff_max);
    pc->log.action = NULL;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, &pc->log, 0,
                   "redis reconnect in %M ms", delay);

    ngx_add_timer(&pc->timer, delay);
}


static void
ngx_redis_conn_timer_handler(ngx_event_t *ev)
{
    ngx_redis_conn_t  *pc;

    pc = ev->data;

    if (ngx_exiting || ngx_quit) {
        /* exit_process closes what is left */
        return;
    }

    if (pc->state == NGX_REDIS_CONNECTING) {
        ngx_log_error(NGX_LOG_ERR, &pc->log, NGX_ETIMEDOUT,
                      "redis connect timed out");

        pc->failed = 1;

        ngx_redis_conn_close(pc);
        ngx_redis_conn_retry(pc);
        return;
    }

    ngx_redis_conn_open(pc);
}


/*
 * Round robin over ready connections.  With none ready, a connection still
 * on its first connect takes the command, queued behind the handshake, so
 * that a new worker does not refuse its first requests; one that failed
 * before takes commands again only once Redis has answered.
 */

static ngx_redis_conn_t *
ngx_redis_pool_pick(ngx_redis_pool_t *pool)
{
    ngx_uint_t         i, n;
    ngx_redis_conn_t  *pc, *connecting;

    n = pool->conf.size;
    connecting = NULL;

    for (i = 0; i < n; i++) {
        pc = &pool->conns[(pool->next + i) % n];

        if (!ngx_redis_conn_usable(pc)) {
            continue;
        }

        if (pc->state == NGX_REDIS_READY) {
            pool->next = (pool->next + i + 1) % n;
            return pc;
        }

        if (connecting == NULL) {
            connecting = pc;
        }
    }

    return connecting;
}


static ngx_uint_t
ngx_redis_conn_usable(ngx_redis_conn_t *pc)
{
    if (pc->pending >= pc->pool->conf.max_pending) {
        return 0;
    }

    if (pc->state != NGX_REDIS_READY
        && (pc->state != NGX_REDIS_CONNECTING || pc->failed))
    {
        return 0;
    }

    /* hiredis is failing its callbacks before it frees the context */
    if (pc->ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING)) {
        return 0;
    }

    return 1;
}


static u_char *
ngx_redis_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char            *p;
    ngx_redis_conn_t  *pc;

    p = buf;

    if (log->action) {
        p = ngx_snprintf(buf, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    pc = log->data;

    p = ngx_snprintf(buf, len, ", redis: %V", &pc->pool->conf.addr);

    return p;
}


/* commands */


ngx_redis_op_t *
ngx_redis_command(ngx_redis_pool_t *pool, ngx_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen)
{
    if (!pool->running) {
        return NULL;
    }

    return ngx_redis_command_on(pool, ngx_redis_pool_pick(pool), handler,
                                data, argc, argv, argvlen);
}


ngx_redis_op_t *
ngx_redis_command_pinned(ngx_redis_pool_t *pool, ngx_uint_t hint,
    ngx_redis_handler_pt handler, void *data, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_redis_conn_t  *pc;

    if (!pool->running) {
        return NULL;
    }

    pc = &pool->conns[hint % pool->conf.size];

    if (!ngx_redis_conn_usable(pc)) {
        pc = ngx_redis_pool_pick(pool);
    }

    return ngx_redis_command_on(pool, pc, handler, data, argc, argv,
                                argvlen);
}


ngx_redis_op_t *
ngx_redis_eval(ngx_redis_pool_t *pool, ngx_redis_handler_pt handler,
    void *data, ngx_str_t *script, ngx_uint_t nkeys, ngx_str_t *keys,
    ngx_uint_t nargs, ngx_str_t *args)
{
    return ngx_redis_eval_send(pool, 0, 0, handler, data, script, nkeys,
                               keys, nargs, args);
}


ngx_redis_op_t *
ngx_redis_eval_pinned(ngx_redis_pool_t *pool, ngx_uint_t hint,
    ngx_redis_handler_pt handler, void *data, ngx_str_t *script,
    ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs, ngx_str_t *args)
{
    return ngx_redis_eval_send(pool, 1, hint, handler, data, script, nkeys,
                               keys, nargs, args);
}


/* hiredis copies the command as it queues it: argv only lives this long */

static ngx_redis_op_t *
ngx_redis_eval_send(ngx_redis_pool_t *pool, ngx_uint_t pinned,
    ngx_uint_t hint, ngx_redis_handler_pt handler, void *data,
    ngx_str_t *script, ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs,
    ngx_str_t *args)
{
    u_char           buf[NGX_INT_T_LEN];
    size_t           lens[NGX_REDIS_EVAL_ARGS], *argvlen;
    ngx_uint_t       i, n;
    const char      *strs[NGX_REDIS_EVAL_ARGS], **argv;
    ngx_redis_op_t  *op;

    n = 3 + nkeys + nargs;

    if (n <= NGX_REDIS_EVAL_ARGS) {
        argv = strs;
        argvlen = lens;

    } else {
        argv = ngx_alloc(n * (sizeof(char *) + sizeof(size_t)), pool->log);
        if (argv == NULL) {
            return NULL;
        }

        argvlen = (size_t *) &argv[n];
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = (char *) script->data;
    argvlen[1] = script->len;
    argv[2] = (char *) buf;
    argvlen[2] = ngx_sprintf(buf, "%ui", nkeys) - buf;

    for (i = 0; i < nkeys; i++) {
        argv[3 + i] = (char *) keys[i].data;
        argvlen[3 + i] = keys[i].len;
    }

    for (i = 0; i < nargs; i++) {
        argv[3 + nkeys + i] = (char *) args[i].data;
        argvlen[3 + nkeys + i] = args[i].len;
    }

    if (pinned) {
        op = ngx_redis_command_pinned(pool, hint, handler, data, (int) n,
                                      argv, argvlen);

    } else {
        op = ngx_redis_command(pool, handler, data, (int) n, argv, argvlen);
    }

    if (argv != strs) {
        ngx_free(argv);
    }

    return op;
}


static ngx_redis_op_t *
ngx_redis_command_on(ngx_redis_pool_t *pool, ngx_redis_conn_t *pc,
    ngx_redis_handler_pt handler, void *data, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_redis_op_t  *op;

    if (pc == NULL) {
        return NULL;
    }

    op = ngx_calloc(sizeof(ngx_redis_op_t), pool->log);
    if (op == NULL) {
        return NULL;
    }

    /* only queued here: the adapter writes it from the event loop */

    if (redisAsyncCommandArgv(pc->ac, ngx_redis_op_reply, op, argc, argv,
                              argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        return NULL;
    }

    pool->commands++;
    pc->pending++;

    op->conn = pc;
    op->handler = handler;
    op->data = data;

    /* nobody waits for the reply of a command sent without a handler */
    op->cancelled = (handler == NULL);

    op->timer.handler = ngx_redis_op_timeout;
    op->timer.data = op;
    op->timer.log = &pc->log;
    /*
     * Not cancelable: a worker that is shutting down waits for the answers
     * its requests are waiting for (bounded by command_timeout) instead of
     * exiting under them.
     */
    op->timer.cancelable = 0;

    ngx_add_timer(&op->timer, pool->conf.command_timeout);

    return op;
}


void
ngx_redis_op_cancel(ngx_redis_op_t *op)
{
    /* the op stays with hiredis until its reply; the timeout still runs */
    op->cancelled = 1;
}


static void
ngx_redis_op_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_redis_op_t *op = privdata;

    ngx_redis_conn_t  *pc;

    pc = op->conn;

    op->replied = 1;
    pc->pending--;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->timedout) {
        /* ngx_redis_op_timeout() reports and frees it */
        return;
    }

    if (r == NULL) {
        pc->pool->errors++;
    }

    if (!op->cancelled) {
        if (r == NULL) {
            op->handler(op->data, NULL, NGX_ERROR);

        } else {
            op->handler(op->data, r, NGX_OK);
        }
    }

    ngx_free(op);
}


static void
ngx_redis_op_timeout(ngx_event_t *ev)
{
    ngx_redis_op_t    *op;
    ngx_redis_conn_t  *pc;

    op = ev->data;
    pc = op->conn;

    /*
     * Runs while exiting too: that fails a command, it does not reconnect
     * (ngx_redis_conn_retry() refuses to).
     */

    ngx_log_error(NGX_LOG_ERR, &pc->log, NGX_ETIMEDOUT,
                  "redis command timed out, closing connection "
                  "with %ui commands in flight", pc->pending);

    op->timedout = 1;
    pc->pool->errors++;
    pc->failed = 1;

    /* a Redis that does not answer in time is taken for dead */
    ngx_redis_conn_close(pc);
    ngx_redis_conn_retry(pc);

    if (!op->cancelled) {
        op->handler(op->data, NULL, NGX_ETIMEDOUT);
    }

    if (op->replied) {
        ngx_free(op);
        return;
    }

    /* the context is not freed yet: its NULL reply frees the op */
    op->timedout = 0;
    op->cancelled = 1;
}


/* pub/sub */


ngx_redis_sub_t *
ngx_redis_subscribe(ngx_redis_pool_t *pool, ngx_str_t *channel,
    ngx_redis_message_pt handler, void *data)
{
    ngx_redis_sub_t      *sub;
    ngx_redis_conn_t     *pc;
    ngx_redis_channel_t  *ch;

    sub = ngx_alloc(sizeof(ngx_redis_sub_t), ngx_cycle->log);
    if (sub == NULL) {
        return NULL;
    }

    ch = ngx_redis_channel_get(pool, channel, 1);
    if (ch == NULL) {
        ngx_free(sub);
        return NULL;
    }

    sub->pool = pool;
    sub->channel = ch;
    sub->handler = handler;
    sub->data = data;
    sub->removed = 0;

    ngx_queue_insert_tail(&ch->subs, &sub->queue);

    pc = pool->subscriber;

    if (pool->running
        && pc->state == NGX_REDIS_DOWN
        && !pc->timer.timer_set
        && !ngx_exiting
        && !ngx_quit)
    {
        /* first subscription: it subscribes every channel once ready */
        ngx_redis_conn_open(pc);
    }

    return sub;
}


void
ngx_redis_unsubscribe(ngx_redis_sub_t *sub)
{
    ngx_redis_pool_t     *pool;
    ngx_redis_channel_t  *ch;

    pool = sub->pool;
    ch = sub->channel;

    if (ch->dispatching) {
        /* a message handler runs: unlinked once dispatch is over */
        sub->removed = 1;
        return;
    }

    ngx_queue_remove(&sub->queue);
    ngx_free(sub);

    if (ngx_queue_empty(&ch->subs)) {
        ngx_redis_channel_free(pool, ch);
    }
}


static ngx_redis_channel_t *
ngx_redis_channel_get(ngx_redis_pool_t *pool, ngx_str_t *name,
    ngx_uint_t create)
{
    uint32_t              hash;
    ngx_redis_channel_t  *ch;

    hash = ngx_crc32_long(name->data, name->len);

    ch = (ngx_redis_channel_t *) ngx_str_rbtree_lookup(&pool->channels, name,
                                                       hash);

    if (ch != NULL || !create) {
        return ch;
    }

    ch = ngx_alloc(offsetof(ngx_redis_channel_t, name) + name->len,
                   ngx_cycle->log);
    if (ch == NULL) {
        return NULL;
    }

    ch->sn.node.key = hash;
    ch->sn.str.len = name->len;
    ch->sn.str.data = ch->name;
    ngx_memcpy(ch->sn.str.data, name->data, name->len);

    ngx_queue_init(&ch->subs);
    ch->dispatching = 0;

    ngx_rbtree_insert(&pool->channels, &ch->sn.node);

    ngx_redis_channel_send(pool, ch, "SUBSCRIBE");

    return ch;
}


static void
ngx_redis_channel_send(ngx_redis_pool_t *pool, ngx_redis_channel_t *ch,
    const char *command)
{
    size_t             len[2];
    const char        *argv[2];
    ngx_redis_conn_t  *pc;

    pc = pool->subscriber;

    if (pc == NULL || pc->state != NGX_REDIS_READY) {
        /* subscribed from ngx_redis_subscribe_all() once ready */
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, &pc->log, 0,
                   "redis %s \"%V\"", command, &ch->sn.str);

    argv[0] = command;
    len[0] = ngx_strlen(command);
    argv[1] = (const char *) ch->sn.str.data;
    len[1] = ch->sn.str.len;

    /* fails only on a dying context, and reconnecting subscribes again */
    (void) redisAsyncCommandArgv(pc->ac, ngx_redis_sub_reply, pc, 2, argv,
                                 len);
}


static void
ngx_redis_channel_purge(ngx_redis_pool_t *pool, ngx_redis_channel_t *ch)
{
    ngx_queue_t      *q;
    ngx_redis_sub_t  *sub;

    q = ngx_queue_head(&ch->subs);

    while (q != ngx_queue_sentinel(&ch->subs)) {
        sub = ngx_queue_data(q, ngx_redis_sub_t, queue);
        q = ngx_queue_next(q);

        if (sub->removed) {
            ngx_queue_remove(&sub->queue);
            ngx_free(sub);
        }
    }

    if (ngx_queue_empty(&ch->subs)) {
        ngx_redis_channel_free(pool, ch);
    }
}


static void
ngx_redis_channel_free(ngx_redis_pool_t *pool, ngx_redis_channel_t *ch)
{
    ngx_redis_channel_send(pool, ch, "UNSUBSCRIBE");

    ngx_rbtree_delete(&pool->channels, &ch->sn.node);
    ngx_free(ch);
}


static void
ngx_redis_subscribe_all(ngx_redis_conn_t *pc)
{
    ngx_rbtree_t       *tree;
    ngx_rbtree_node_t  *node;

    tree = &pc->pool->channels;

    if (tree->root == tree->sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(tree->root, tree->sentinel);
         node;
         node = ngx_rbtree_next(tree, node))
    {
        ngx_redis_channel_send(pc->pool, (ngx_redis_channel_t *) node,
                               "SUBSCRIBE");
    }
}


/*
 * Every subscription shares this callback and privdata: hiredis 0.14 may
 * hand a reply for an unknown channel to the previous reply's callback, so
 * the channel is always taken from the reply itself.
 */

static void
ngx_redis_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;

    ngx_str_t             channel, message;
    redisReply          **e;
    ngx_redis_conn_t     *pc;
    ngx_redis_channel_t  *ch;

    pc = privdata;

    if (reply == NULL
        || pc->ac != ac
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3)
    {
        return;
    }

    e = reply->element;

    if (e[0]->type != REDIS_REPLY_STRING
        || e[0]->len != sizeof("message") - 1
        || ngx_strncmp(e[0]->str, "message", sizeof("message") - 1) != 0
        || e[1]->type != REDIS_REPLY_STRING
        || e[2]->type != REDIS_REPLY_STRING)
    {
        /*
         * (un)subscribe confirmations: from the first one on, Redis has
         * taken this connection's subscriptions and every later message
         * reaches us
         */
        if (e[0]->type == REDIS_REPLY_STRING
            && e[0]->len == sizeof("subscribe") - 1
            && ngx_strncmp(e[0]->str, "subscribe", sizeof("subscribe") - 1)
               == 0
            && !pc->pool->sub_live)
        {
            pc->pool->sub_live = 1;
            pc->pool->sub_epoch++;
        }

        return;
    }

    channel.len = e[1]->len;
    channel.data = (u_char *) e[1]->str;
    message.len = e[2]->len;
    message.data = (u_char *) e[2]->str;

    ch = ngx_redis_channel_get(pc->pool, &channel, 0);
    if (ch == NULL) {
        return;
    }

    ngx_redis_channel_dispatch(pc->pool, ch, &channel, &message);
}


void
ngx_redis_publish_local(ngx_redis_pool_t *pool, ngx_str_t *channel,
    ngx_str_t *message)
{
    ngx_redis_channel_t  *ch;

    ch = ngx_redis_channel_get(pool, channel, 0);
    if (ch == NULL) {
        return;
    }

    ngx_redis_channel_dispatch(pool, ch, channel, message);
}


/*
 * Handlers may unsubscribe (themselves or others) and subscribe: removals
 * are deferred, and subscribers added meanwhile wait for the next message.
 */

static void
ngx_redis_channel_dispatch(ngx_redis_pool_t *pool, ngx_redis_channel_t *ch,
    ngx_str_t *channel, ngx_str_t *message)
{
    ngx_queue_t      *q, *last;
    ngx_redis_sub_t  *sub;

    ch->dispatching++;

    last = ngx_queue_last(&ch->subs);

    for (q = ngx_queue_head(&ch->subs); /* void */; q = ngx_queue_next(q)) {
        sub = ngx_queue_data(q, ngx_redis_sub_t, queue);

        if (!sub->removed) {
            sub->handler(sub->data, channel, message);
        }

        if (q == last) {
            break;
        }
    }

    if (--ch->dispatching == 0) {
        ngx_redis_channel_purge(pool, ch);
    }
}


static void
ngx_redis_free_channels(ngx_redis_pool_t *pool)
{
    ngx_queue_t          *q;
    ngx_rbtree_t         *tree;
    ngx_redis_sub_t      *sub;
    ngx_redis_channel_t  *ch;

    tree = &pool->channels;

    while (tree->root != tree->sentinel) {
        ch = (ngx_redis_channel_t *) ngx_rbtree_min(tree->root,
                                                    tree->sentinel);

        while (!ngx_queue_empty(&ch->subs)) {
            q = ngx_queue_head(&ch->subs);
            sub = ngx_queue_data(q, ngx_redis_sub_t, queue);

            ngx_queue_remove(q);
            ngx_free(sub);
        }

        ngx_rbtree_delete(tree, &ch->sn.node);
        ngx_free(ch);
    }
}


ngx_uint_t
ngx_redis_sub_epoch(ngx_redis_pool_t *pool)
{
    return pool->sub_live ? pool->sub_epoch : 0;
}
