/*
 * Non-blocking PostgreSQL pool: libpq driven by nginx events.
 *
 * Events on the libpq socket are registered level-triggered: libpq may
 * leave bytes in the socket after PQconsumeInput(), and an edge-triggered
 * registration would then stall until the next packet.  The write event is
 * only registered while libpq has something to send, so that level-triggered
 * writability does not spin the worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_pg_pool.h"


/* statements ngx_pg_query_prepared() names, per worker */
#define NGX_PG_STMTS_MAX  16
#define NGX_PG_NAME_LEN   sizeof("ngx_pg_ffffffff_4294967295")


typedef enum {
    NGX_PG_CLOSED = 0,
    NGX_PG_BACKOFF,
    NGX_PG_CONNECTING,
    NGX_PG_IDLE,
    NGX_PG_BUSY
} ngx_pg_state_e;


typedef struct {
    ngx_pg_pool_t        *pool;
    PGconn               *conn;
    ngx_connection_t     *c;
    ngx_pg_op_t          *op;
    PGresult             *res;        /* answer collected so far */
    ngx_event_t           timer;
    ngx_msec_t            backoff;
    ngx_pg_state_e        state;
    ino_t                 ino;        /* the socket nginx knows as c->fd */
    uint32_t              prepared;   /* bits of pool->stmts prepared here */
    uint32_t              unnamed;    /* ... whose prepare failed here */
    unsigned              flushing:1;
    unsigned              preparing:1;
} ngx_pg_conn_t;


struct ngx_pg_op_s {
    ngx_queue_t           queue;
    ngx_pg_pool_t        *pool;
    ngx_pg_conn_t        *pc;
    const char           *sql;
    int                   nparams;
    char                **values;
    ngx_pg_handler_pt     handler;
    void                 *data;
    ngx_event_t           timer;
    ngx_uint_t            stmt;       /* index in pool->stmts */
    unsigned              prepare:1;
    unsigned              queued:1;
    unsigned              cancelled:1;
};


struct ngx_pg_pool_s {
    ngx_pg_pool_conf_t   *conf;
    ngx_pg_conn_t        *conns;
    ngx_queue_t           waiting;
    ngx_uint_t            nwaiting;
    ngx_event_t           dispatch;
    ngx_log_t            *log;
    ngx_uint_t            queries;
    ngx_uint_t            errors;
    ngx_uint_t            reconnects;
    const char           *stmts[NGX_PG_STMTS_MAX];
    u_char                names[NGX_PG_STMTS_MAX][NGX_PG_NAME_LEN];
    ngx_uint_t            nstmts;
    unsigned              exiting:1;
};


static char *ngx_pg_strdup(ngx_pool_t *pool, const char *s);
static void ngx_pg_connect(ngx_pg_conn_t *pc);
static ino_t ngx_pg_socket_ino(int fd);
static ngx_int_t ngx_pg_attach(ngx_pg_conn_t *pc);
static void ngx_pg_detach(ngx_pg_conn_t *pc);
static ngx_int_t ngx_pg_want(ngx_pg_conn_t *pc, ngx_uint_t write);
static void ngx_pg_event_handler(ngx_event_t *ev);
static void ngx_pg_poll_connect(ngx_pg_conn_t *pc);
static void ngx_pg_send(ngx_pg_conn_t *pc);
static int ngx_pg_send_op(ngx_pg_conn_t *pc, ngx_pg_op_t *op);
static ngx_int_t ngx_pg_prepared(ngx_pg_conn_t *pc);
static ngx_int_t ngx_pg_stmt(ngx_pg_pool_t *pool, const char *sql);
static void ngx_pg_flush(ngx_pg_conn_t *pc);
static void ngx_pg_receive(ngx_pg_conn_t *pc);
static void ngx_pg_idle_input(ngx_pg_conn_t *pc);
static void ngx_pg_fail(ngx_pg_conn_t *pc, const char *what);
static void ngx_pg_close(ngx_pg_conn_t *pc);
static void ngx_pg_schedule(ngx_pg_conn_t *pc, ngx_msec_t delay);
static void ngx_pg_timer_handler(ngx_event_t *ev);
static void ngx_pg_dispatch_handler(ngx_event_t *ev);
static void ngx_pg_dispatch(ngx_pg_pool_t *pool);
static void ngx_pg_fail_waiting(ngx_pg_pool_t *pool, ngx_int_t rc);
static ngx_uint_t ngx_pg_alive(ngx_pg_pool_t *pool);
static void ngx_pg_op_wait_timeout(ngx_event_t *ev);
static void ngx_pg_op_finish(ngx_pg_op_t *op, PGresult *res, ngx_int_t rc);


void
ngx_pg_pool_conf_init(ngx_pg_pool_conf_t *conf)
{
    ngx_conf_init_uint_value(conf->size, 4);
    ngx_conf_init_uint_value(conf->queue, 256);
    ngx_conf_init_msec_value(conf->connect_timeout, 3000);
    ngx_conf_init_msec_value(conf->query_timeout, 10000);
    ngx_conf_init_msec_value(conf->backoff_min, 100);
    ngx_conf_init_msec_value(conf->backoff_max, 3000);
    ngx_conf_init_value(conf->prepare, 0);

    if (conf->size == 0) {
        conf->size = 1;
    }

    if (conf->backoff_max < conf->backoff_min) {
        conf->backoff_max = conf->backoff_min;
    }
}


char *
ngx_pg_pool_conf_parse(ngx_conf_t *cf, ngx_pg_pool_conf_t *conf,
    ngx_str_t *conninfo)
{
    char               *err, *ci;
    ngx_uint_t          n, i;
    PQconninfoOption   *opts, *o;

    ci = ngx_pnalloc(cf->pool, conninfo->len + 1);
    if (ci == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(ci, conninfo->data, conninfo->len);
    ci[conninfo->len] = '\0';

    err = NULL;
    opts = PQconninfoParse(ci, &err);
    if (opts == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid PostgreSQL connection string: %s",
                           err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }
        return NGX_CONF_ERROR;
    }

    n = 0;
    for (o = opts; o->keyword; o++) {
        if (o->val != NULL) {
            n++;
        }
    }

    /* one more for client_encoding, one for the terminator */
    conf->keywords = ngx_pcalloc(cf->pool, (n + 2) * sizeof(char *));
    conf->values = ngx_pcalloc(cf->pool, (n + 2) * sizeof(char *));
    if (conf->keywords == NULL || conf->values == NULL) {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    i = 0;
    for (o = opts; o->keyword; o++) {
        if (o->val == NULL) {
            continue;
        }

        conf->keywords[i] = ngx_pg_strdup(cf->pool, o->keyword);
        conf->values[i] = ngx_pg_strdup(cf->pool, o->val);
        if (conf->keywords[i] == NULL || conf->values[i] == NULL) {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        i++;
    }

    PQconninfoFree(opts);

    /* the worker hands libpq UTF-8 JSON text only */
    for (n = 0; n < i; n++) {
        if (ngx_strcmp(conf->keywords[n], "client_encoding") == 0) {
            break;
        }
    }

    if (n == i) {
        conf->keywords[i] = "client_encoding";
        conf->values[i] = "UTF8";
    }

    conf->conninfo = *conninfo;

    return NGX_CONF_OK;
}


static char *
ngx_pg_strdup(ngx_pool_t *pool, const char *s)
{
    char    *p;
    size_t   len;

    len = ngx_strlen(s) + 1;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s, len);

    return p;
}


ngx_pg_pool_t *
ngx_pg_pool_create(ngx_conf_t *cf, ngx_pg_pool_conf_t *conf)
{
    ngx_uint_t      i;
    ngx_pg_pool_t  *pool;

    pool = ngx_pcalloc(cf->pool, sizeof(ngx_pg_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->conf = conf;
    ngx_queue_init(&pool->waiting);

    pool->conns = ngx_pcalloc(cf->pool, conf->size * sizeof(ngx_pg_conn_t));
    if (pool->conns == NULL) {
        return NULL;
    }

    for (i = 0; i < conf->size; i++) {
        pool->conns[i].pool = pool;
    }

    return pool;
}


ngx_int_t
ngx_pg_pool_init_process(ngx_pg_pool_t *pool, ngx_cycle_t *cycle)
{
    ngx_uint_t      i;
    ngx_pg_conn_t  *pc;

    pool->log = cycle->log;
    pool->exiting = 0;

    pool->dispatch.handler = ngx_pg_dispatch_handler;
    pool->dispatch.data = pool;
    pool->dispatch.log = cycle->log;

    for (i = 0; i < pool->conf->size; i++) {
        pc = &pool->conns[i];

        pc->timer.handler = ngx_pg_timer_handler;
        pc->timer.data = pc;
        pc->timer.log = cycle->log;
        pc->backoff = pool->conf->backoff_min;

        ngx_pg_connect(pc);
    }

    return NGX_OK;
}


void
ngx_pg_pool_exit_process(ngx_pg_pool_t *pool)
{
    ngx_uint_t      i;
    ngx_pg_op_t    *op;
    ngx_pg_conn_t  *pc;

    pool->exiting = 1;

    if (pool->dispatch.posted) {
        ngx_delete_posted_event(&pool->dispatch);
    }

    for (i = 0; i < pool->conf->size; i++) {
        pc = &pool->conns[i];

        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        op = pc->op;
        pc->op = NULL;

        ngx_pg_close(pc);

        if (op) {
            ngx_pg_op_finish(op, NULL, NGX_ERROR);
        }
    }

    ngx_pg_fail_waiting(pool, NGX_ERROR);
}


ngx_pg_op_t *
ngx_pg_query(ngx_pg_pool_t *pool, const char *sql, ngx_uint_t nparams,
    ngx_str_t *params, ngx_pg_handler_pt handler, void *data)
{
    u_char       *p;
    size_t        size;
    ngx_uint_t    i;
    ngx_pg_op_t  *op;

    if (pool->exiting || pool->nwaiting >= pool->conf->queue
        || !ngx_pg_alive(pool))
    {
        return NULL;
    }

    /* one heap block: the op, the value pointers, the NUL-ended values */

    size = sizeof(ngx_pg_op_t) + nparams * sizeof(char *);
    for (i = 0; i < nparams; i++) {
        if (params[i].data != NULL) {
            size += params[i].len + 1;
        }
    }

    op = ngx_calloc(size, pool->log);
    if (op == NULL) {
        return NULL;
    }

    op->pool = pool;
    op->sql = sql;
    op->nparams = (int) nparams;
    op->values = (char **) (op + 1);
    op->handler = handler;
    op->data = data;

    p = (u_char *) (op->values + nparams);
    for (i = 0; i < nparams; i++) {
        if (params[i].data == NULL) {
            op->values[i] = NULL;
            continue;
        }

        op->values[i] = (char *) p;
        p = ngx_cpymem(p, params[i].data, params[i].len);
        *p++ = '\0';
    }

    op->timer.handler = ngx_pg_op_wait_timeout;
    op->timer.data = op;
    op->timer.log = pool->log;
    ngx_add_timer(&op->timer, pool->conf->query_timeout);

    op->queued = 1;
    ngx_queue_insert_tail(&pool->waiting, &op->queue);
    pool->nwaiting++;

    /* never call the handler from here: start it from a posted event */
    if (!pool->dispatch.posted) {
        ngx_post_event(&pool->dispatch, &ngx_posted_events);
    }

    return op;
}


ngx_pg_op_t *
ngx_pg_query_prepared(ngx_pg_pool_t *pool, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params, ngx_pg_handler_pt handler,
    void *data)
{
    ngx_int_t     i;
    ngx_pg_op_t  *op;

    op = ngx_pg_query(pool, sql, nparams, params, handler, data);
    if (op == NULL || !pool->conf->prepare) {
        return op;
    }

    i = ngx_pg_stmt(pool, sql);
    if (i == NGX_ERROR) {
        return op;
    }

    op->stmt = i;
    op->prepare = 1;

    return op;
}


/*
 * The statement's index, registered on first use.  Its name is made of
 * the text's CRC32 and length, so that a name always means one text, also
 * where sessions might meet on one server connection (a pooler): two
 * texts of one name would have the second one run unnamed.
 */

static ngx_int_t
ngx_pg_stmt(ngx_pg_pool_t *pool, const char *sql)
{
    size_t      len;
    u_char     *name;
    ngx_uint_t  i;

    for (i = 0; i < pool->nstmts; i++) {
        if (pool->stmts[i] == sql) {
            return i;
        }
    }

    if (pool->nstmts == NGX_PG_STMTS_MAX) {
        return NGX_ERROR;
    }

    len = ngx_strlen(sql);
    name = pool->names[pool->nstmts];
    ngx_sprintf(name, "ngx_pg_%08xD_%uz%Z",
                ngx_crc32_long((u_char *) sql, len), len);

    for (i = 0; i < pool->nstmts; i++) {
        if (ngx_strcmp(pool->names[i], name) == 0) {
            return NGX_ERROR;
        }
    }

    pool->stmts[pool->nstmts] = sql;

    return pool->nstmts++;
}


void
ngx_pg_op_cancel(ngx_pg_op_t *op)
{
    if (op->queued) {
        ngx_queue_remove(&op->queue);
        op->pool->nwaiting--;

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        ngx_free(op);
        return;
    }

    /* running: the connection drops the result and frees the op */
    op->cancelled = 1;
}


void
ngx_pg_pool_stats(ngx_pg_pool_t *pool, ngx_pg_pool_stats_t *stats)
{
    ngx_uint_t  i;

    ngx_memzero(stats, sizeof(ngx_pg_pool_stats_t));

    stats->size = pool->conf->size;
    stats->waiting = pool->nwaiting;
    stats->queries = pool->queries;
    stats->errors = pool->errors;
    stats->reconnects = pool->reconnects;

    for (i = 0; i < pool->conf->size; i++) {
        switch (pool->conns[i].state) {
        case NGX_PG_IDLE:
            stats->connected++;
            break;
        case NGX_PG_BUSY:
            stats->connected++;
            stats->busy++;
            break;
        default:
            break;
        }
    }
}


ngx_int_t
ngx_pg_result_ok(PGresult *res)
{
    ExecStatusType  st;

    if (res == NULL) {
        return 0;
    }

    st = PQresultStatus(res);

    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}


ngx_str_t
ngx_pg_value(PGresult *res, int row, int col)
{
    ngx_str_t  s;

    if (row >= PQntuples(res) || col >= PQnfields(res)
        || PQgetisnull(res, row, col))
    {
        ngx_str_null(&s);
        return s;
    }

    s.data = (u_char *) PQgetvalue(res, row, col);
    s.len = PQgetlength(res, row, col);

    return s;
}


ngx_int_t
ngx_pg_get_int(PGresult *res, int row, int col, ngx_int_t *value)
{
    ngx_int_t  n;
    ngx_str_t  s;

    if (PQgetisnull(res, row, col)) {
        return NGX_DECLINED;
    }

    s = ngx_pg_value(res, row, col);

    if (s.len > 1 && s.data[0] == '-') {
        n = ngx_atoi(s.data + 1, s.len - 1);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        *value = -n;
        return NGX_OK;
    }

    n = ngx_atoi(s.data, s.len);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    *value = n;

    return NGX_OK;
}


ngx_int_t
ngx_pg_int(PGresult *res, int row, int col)
{
    ngx_int_t  n;

    return ngx_pg_get_int(res, row, col, &n) == NGX_OK ? n : NGX_ERROR;
}


/* connection life */


static void
ngx_pg_connect(ngx_pg_conn_t *pc)
{
    ngx_pg_pool_t  *pool;

    pool = pc->pool;

    pc->conn = PQconnectStartParams(pool->conf->keywords,
                                    pool->conf->values, 0);

    if (pc->conn == NULL) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "postgres: out of memory starting a connection");
        ngx_pg_schedule(pc, pc->backoff);
        return;
    }

    if (PQstatus(pc->conn) == CONNECTION_BAD
        || PQsetnonblocking(pc->conn, 1) != 0)
    {
        ngx_pg_fail(pc, "connect");
        return;
    }

    pc->state = NGX_PG_CONNECTING;

    if (ngx_pg_attach(pc) != NGX_OK) {
        ngx_pg_fail(pc, "connect");
        return;
    }

    /* libpq's protocol: start as if PQconnectPoll asked for writing */
    if (ngx_pg_want(pc, 1) != NGX_OK) {
        ngx_pg_fail(pc, "connect");
        return;
    }

    ngx_add_timer(&pc->timer, pool->conf->connect_timeout);
}


static ino_t
ngx_pg_socket_ino(int fd)
{
    struct stat  st;

    if (fd == -1 || fstat(fd, &st) == -1) {
        return 0;
    }

    return st.st_ino;
}


static ngx_int_t
ngx_pg_attach(ngx_pg_conn_t *pc)
{
    int                fd;
    ngx_connection_t  *c;

    fd = PQsocket(pc->conn);
    if (fd == -1) {
        return NGX_ERROR;
    }

    pc->ino = ngx_pg_socket_ino(fd);

    c = ngx_get_connection(fd, pc->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = pc;
    c->read->handler = ngx_pg_event_handler;
    c->write->handler = ngx_pg_event_handler;
    c->read->log = pc->pool->log;
    c->write->log = pc->pool->log;
    c->log->action = "talking to PostgreSQL";

    pc->c = c;

    return NGX_OK;
}


/*
 * Forget the nginx side of the socket; libpq owns and closes the fd, so
 * events are removed as if it were already closed, and the fd is never
 * closed twice.
 */

static void
ngx_pg_detach(ngx_pg_conn_t *pc)
{
    ngx_connection_t  *c;

    c = pc->c;
    if (c == NULL) {
        return;
    }

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    pc->c = NULL;
}


/* level-triggered read always; write only when asked for */

static ngx_int_t
ngx_pg_want(ngx_pg_conn_t *pc, ngx_uint_t write)
{
    ngx_connection_t  *c;

    c = pc->c;

    if (!c->read->active) {
        if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (write && !c->write->active) {
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (!write && c->write->active) {
        if (ngx_del_event(c->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;
    ngx_pg_conn_t     *pc;

    c = ev->data;
    pc = c->data;

    if (c->close) {
        ngx_pg_fail(pc, "close");
        return;
    }

    switch (pc->state) {

    case NGX_PG_CONNECTING:
        ngx_pg_poll_connect(pc);
        return;

    case NGX_PG_BUSY:
        if (pc->flushing) {
            ngx_pg_flush(pc);
            return;
        }

        ngx_pg_receive(pc);
        return;

    case NGX_PG_IDLE:
        if (ev->write) {
            (void) ngx_pg_want(pc, 0);
            return;
        }

        ngx_pg_idle_input(pc);
        return;

    default:
        return;
    }
}


static void
ngx_pg_poll_connect(ngx_pg_conn_t *pc)
{
    ngx_pg_pool_t                *pool;
    PostgresPollingStatusType     st;

    pool = pc->pool;

    st = PQconnectPoll(pc->conn);

    /*
     * libpq may have moved to another socket (the next host or address):
     * it closes the old one and opens a new one, usually with the same fd
     * number, which the kernel dropped from epoll while nginx still counts
     * it as active; the socket's inode tells the two apart
     */
    if (pc->c
        && (PQsocket(pc->conn) != pc->c->fd
            || ngx_pg_socket_ino(pc->c->fd) != pc->ino))
    {
        ngx_pg_detach(pc);

        if (st != PGRES_POLLING_FAILED && ngx_pg_attach(pc) != NGX_OK) {
            ngx_pg_fail(pc, "connect");
            return;
        }
    }

    switch (st) {

    case PGRES_POLLING_READING:
        if (ngx_pg_want(pc, 0) != NGX_OK) {
            ngx_pg_fail(pc, "connect");
        }
        return;

    case PGRES_POLLING_WRITING:
        if (ngx_pg_want(pc, 1) != NGX_OK) {
            ngx_pg_fail(pc, "connect");
        }
        return;

    case PGRES_POLLING_OK:
        break;

    default:
        ngx_pg_fail(pc, "connect");
        return;
    }

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (ngx_pg_want(pc, 0) != NGX_OK) {
        ngx_pg_fail(pc, "connect");
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, pool->log, 0,
                   "postgres: connected, fd:%d", pc->c->fd);

    pc->state = NGX_PG_IDLE;
    pc->backoff = pool->conf->backoff_min;
    pc->c->log->action = "talking to PostgreSQL";

    ngx_pg_dispatch(pool);
}


static void
ngx_pg_send(ngx_pg_conn_t *pc)
{
    ngx_pg_op_t  *op;

    op = pc->op;

    pc->state = NGX_PG_BUSY;
    pc->pool->queries++;

    if (!ngx_pg_send_op(pc, op)) {
        ngx_pg_fail(pc, "send");
        return;
    }

    ngx_add_timer(&pc->timer, pc->pool->conf->query_timeout);

    pc->flushing = 1;
    ngx_pg_flush(pc);
}


/*
 * The query, or first its statement's prepare: the query follows from
 * ngx_pg_prepared() once the prepare's answer is in.
 */

static int
ngx_pg_send_op(ngx_pg_conn_t *pc, ngx_pg_op_t *op)
{
    char      *name;
    uint32_t   bit;

    bit = (uint32_t) 1 << op->stmt;

    if (!op->prepare || (pc->unnamed & bit)) {
        return PQsendQueryParams(pc->conn, op->sql, op->nparams, NULL,
                                 (const char * const *) op->values, NULL,
                                 NULL, 0);
    }

    name = (char *) pc->pool->names[op->stmt];

    if (pc->prepared & bit) {
        return PQsendQueryPrepared(pc->conn, name, op->nparams,
                                   (const char * const *) op->values, NULL,
                                   NULL, 0);
    }

    pc->preparing = 1;

    return PQsendPrepare(pc->conn, name, op->sql, op->nparams, NULL);
}


/*
 * The prepare's answer is in (pc->res): the query goes now, named, or
 * unnamed from now on on this connection when the prepare failed (the
 * query's own error, if any, then reaches the caller).
 */

static ngx_int_t
ngx_pg_prepared(ngx_pg_conn_t *pc)
{
    uint32_t      bit;
    ngx_pg_op_t  *op;

    op = pc->op;
    pc->preparing = 0;
    bit = (uint32_t) 1 << op->stmt;

    if (pc->res && PQresultStatus(pc->res) == PGRES_COMMAND_OK) {
        pc->prepared |= bit;

    } else {
        pc->unnamed |= bit;
        ngx_log_error(NGX_LOG_WARN, pc->pool->log, 0,
                      "postgres: prepare failed, the statement runs "
                      "unnamed on this connection: %s",
                      pc->res ? PQresultErrorMessage(pc->res)
                              : PQerrorMessage(pc->conn));
    }

    if (pc->res) {
        PQclear(pc->res);
        pc->res = NULL;
    }

    if (op->cancelled) {
        return NGX_DECLINED;
    }

    if (!ngx_pg_send_op(pc, op)) {
        ngx_pg_fail(pc, "send");
        return NGX_OK;
    }

    pc->flushing = 1;
    ngx_pg_flush(pc);

    return NGX_OK;
}


/* PQflush until libpq's output buffer is empty: the query must leave */

static void
ngx_pg_flush(ngx_pg_conn_t *pc)
{
    int  rc;

    if (pc->c->read->ready && !PQconsumeInput(pc->conn)) {
        ngx_pg_fail(pc, "flush");
        return;
    }

    rc = PQflush(pc->conn);

    if (rc == -1) {
        ngx_pg_fail(pc, "flush");
        return;
    }

    if (rc == 1) {
        if (ngx_pg_want(pc, 1) != NGX_OK) {
            ngx_pg_fail(pc, "flush");
        }
        return;
    }

    pc->flushing = 0;

    if (ngx_pg_want(pc, 0) != NGX_OK) {
        ngx_pg_fail(pc, "flush");
        return;
    }

    /* a short answer may already be in */
    ngx_pg_receive(pc);
}


static void
ngx_pg_receive(ngx_pg_conn_t *pc)
{
    PGnotify       *n;
    PGresult       *res, *last;
    ngx_pg_op_t    *op;
    ngx_pg_pool_t  *pool;

    pool = pc->pool;

    if (!PQconsumeInput(pc->conn)) {
        ngx_pg_fail(pc, "read");
        return;
    }

    while ((n = PQnotifies(pc->conn)) != NULL) {
        PQfreemem(n);
    }

    /* results stay in pc->res across read events until PQgetResult()
     * gives NULL: only then is the answer complete */

    for ( ;; ) {
        if (PQisBusy(pc->conn)) {
            return;
        }

        res = PQgetResult(pc->conn);
        if (res == NULL) {
            break;
        }

        /* keep the first error, otherwise the last result */
        if (pc->res && PQresultStatus(pc->res) == PGRES_FATAL_ERROR) {
            PQclear(res);
            continue;
        }

        if (pc->res) {
            PQclear(pc->res);
        }

        pc->res = res;
    }

    if (pc->preparing && ngx_pg_prepared(pc) == NGX_OK) {
        return;
    }

    last = pc->res;
    pc->res = NULL;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    op = pc->op;
    pc->op = NULL;
    pc->state = NGX_PG_IDLE;

    if (last && PQresultStatus(last) == PGRES_FATAL_ERROR) {
        pool->errors++;
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "postgres: query failed: %s",
                      PQresultErrorMessage(last));
    }

    if (op) {
        ngx_pg_op_finish(op, last, NGX_OK);
    }

    if (last) {
        PQclear(last);
    }

    if (PQtransactionStatus(pc->conn) != PQTRANS_IDLE) {
        /* never hand out a connection left inside a transaction */
        ngx_pg_fail(pc, "transaction left open");
        return;
    }

    ngx_pg_dispatch(pool);
}


/* input on an idle connection: notices, or the server going away */

static void
ngx_pg_idle_input(ngx_pg_conn_t *pc)
{
    PGnotify  *n;
    PGresult  *res;

    if (!PQconsumeInput(pc->conn) || PQstatus(pc->conn) == CONNECTION_BAD) {
        ngx_pg_fail(pc, "idle read");
        return;
    }

    while ((n = PQnotifies(pc->conn)) != NULL) {
        PQfreemem(n);
    }

    while (!PQisBusy(pc->conn)) {
        res = PQgetResult(pc->conn);
        if (res == NULL) {
            break;
        }

        PQclear(res);
    }
}


static void
ngx_pg_fail(ngx_pg_conn_t *pc, const char *what)
{
    ngx_pg_op_t    *op;
    ngx_pg_pool_t  *pool;

    pool = pc->pool;

    if (!pool->exiting) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "postgres: connection failed (%s): %s", what,
                      pc->conn ? PQerrorMessage(pc->conn) : "no connection");
    }

    op = pc->op;
    pc->op = NULL;

    ngx_pg_close(pc);

    if (op) {
        pool->errors++;
        ngx_pg_op_finish(op, NULL, NGX_ERROR);
    }

    if (pool->exiting || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    pool->reconnects++;
    ngx_pg_schedule(pc, pc->backoff);

    /* exponential backoff, reset on success */
    pc->backoff = ngx_min(pc->backoff * 2, pool->conf->backoff_max);

    if (!ngx_pg_alive(pool)) {
        ngx_pg_fail_waiting(pool, NGX_DECLINED);
    }
}


static void
ngx_pg_close(ngx_pg_conn_t *pc)
{
    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (pc->res) {
        PQclear(pc->res);
        pc->res = NULL;
    }

    /* the nginx side first, then libpq closes its socket once */
    ngx_pg_detach(pc);

    if (pc->conn) {
        PQfinish(pc->conn);
        pc->conn = NULL;
    }

    pc->state = NGX_PG_CLOSED;
    pc->flushing = 0;
    pc->preparing = 0;
    pc->prepared = 0;
    pc->unnamed = 0;
}


static void
ngx_pg_schedule(ngx_pg_conn_t *pc, ngx_msec_t delay)
{
    delay += (ngx_msec_t) ngx_random() % (delay / 2 + 1);

    pc->state = NGX_PG_BACKOFF;
    pc->timer.cancelable = 1;
    ngx_add_timer(&pc->timer, delay);
}


static void
ngx_pg_timer_handler(ngx_event_t *ev)
{
    ngx_pg_conn_t  *pc;

    pc = ev->data;

    switch (pc->state) {

    case NGX_PG_BACKOFF:
        if (ngx_exiting || ngx_quit || pc->pool->exiting) {
            return;
        }

        pc->timer.cancelable = 0;
        ngx_pg_connect(pc);
        return;

    case NGX_PG_CONNECTING:
        ngx_pg_fail(pc, "connect timed out");
        return;

    case NGX_PG_BUSY:
        /*
         * PQcancel() would block the worker; drop the connection instead,
         * the server notices when it next writes to the socket.
         */
        if (pc->op && !pc->op->cancelled) {
            pc->pool->errors++;
            ngx_pg_op_finish(pc->op, NULL, NGX_ETIMEDOUT);
            pc->op = NULL;
        }

        pc->backoff = pc->pool->conf->backoff_min;
        ngx_pg_fail(pc, "query timed out");
        return;

    default:
        return;
    }
}


static void
ngx_pg_dispatch_handler(ngx_event_t *ev)
{
    ngx_pg_dispatch(ev->data);
}


static void
ngx_pg_dispatch(ngx_pg_pool_t *pool)
{
    ngx_uint_t      i;
    ngx_queue_t    *q;
    ngx_pg_op_t    *op;
    ngx_pg_conn_t  *pc;

    if (!ngx_pg_alive(pool)) {
        ngx_pg_fail_waiting(pool, NGX_DECLINED);
        return;
    }

    for (i = 0; i < pool->conf->size; i++) {

        if (ngx_queue_empty(&pool->waiting)) {
            return;
        }

        pc = &pool->conns[i];

        if (pc->state != NGX_PG_IDLE) {
            continue;
        }

        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        pool->nwaiting--;

        op = ngx_queue_data(q, ngx_pg_op_t, queue);
        op->queued = 0;
        op->pc = pc;

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        pc->op = op;
        ngx_pg_send(pc);
    }
}


static void
ngx_pg_fail_waiting(ngx_pg_pool_t *pool, ngx_int_t rc)
{
    ngx_queue_t  *q;
    ngx_pg_op_t  *op;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        pool->nwaiting--;

        op = ngx_queue_data(q, ngx_pg_op_t, queue);
        op->queued = 0;

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        ngx_pg_op_finish(op, NULL, rc);
    }
}


/* a connection that is up or on its way up */

static ngx_uint_t
ngx_pg_alive(ngx_pg_pool_t *pool)
{
    ngx_uint_t  i;

    for (i = 0; i < pool->conf->size; i++) {
        if (pool->conns[i].state >= NGX_PG_CONNECTING) {
            return 1;
        }
    }

    return 0;
}


static void
ngx_pg_op_wait_timeout(ngx_event_t *ev)
{
    ngx_pg_op_t  *op;

    op = ev->data;

    ngx_queue_remove(&op->queue);
    op->pool->nwaiting--;
    op->queued = 0;
    op->pool->errors++;

    ngx_log_error(NGX_LOG_ERR, op->pool->log, 0,
                  "postgres: query waited too long for a connection");

    ngx_pg_op_finish(op, NULL, NGX_ETIMEDOUT);
}


static void
ngx_pg_op_finish(ngx_pg_op_t *op, PGresult *res, ngx_int_t rc)
{
    if (!op->cancelled) {
        op->handler(op->data, res, rc);
    }

    ngx_free(op);
}
