/*
 * hiredis async context <-> nginx event loop.
 *
 * Ownership: hiredis owns the socket and closes it; the adapter owns the
 * ngx_connection_t that wraps it and releases it from hiredis' cleanup hook
 * without closing the fd.  Any call into hiredis may free the context, so
 * the handlers keep their state in a small heap object that lives until
 * they return.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_redis_adapter.h"


/*
 * Read handler rounds (16 KiB each, hiredis' read size) before the rest of
 * a large reply is left to the next event loop iteration, so that one busy
 * connection does not starve the others.
 */
#define NGX_REDIS_ADAPTER_READS  64


typedef struct {
    redisAsyncContext            *ac;
    ngx_connection_t             *connection;
    ngx_redis_adapter_close_pt    close;

    unsigned                      edge:1;         /* registered once, ET */
    unsigned                      active:1;       /* inside a handler */
    unsigned                      closed:1;       /* hiredis cleaned up */
    unsigned                      writing:1;
    unsigned                      write_again:1;
} ngx_redis_adapter_t;


static void ngx_redis_adapter_read_handler(ngx_event_t *rev);
static void ngx_redis_adapter_write_handler(ngx_event_t *wev);
static void ngx_redis_adapter_add_read(void *data);
static void ngx_redis_adapter_del_read(void *data);
static void ngx_redis_adapter_add_write(void *data);
static void ngx_redis_adapter_del_write(void *data);
static void ngx_redis_adapter_cleanup(void *data);
static void ngx_redis_adapter_release(ngx_connection_t *c);


ngx_connection_t *
ngx_redis_adapter_attach(redisAsyncContext *ac, ngx_log_t *log,
    ngx_redis_adapter_close_pt close)
{
    ngx_event_t          *rev, *wev;
    ngx_connection_t     *c;
    ngx_redis_adapter_t  *a;

    if (ac->err || ac->c.fd == -1 || ac->ev.data != NULL) {
        return NULL;
    }

    a = ngx_calloc(sizeof(ngx_redis_adapter_t), log);
    if (a == NULL) {
        return NULL;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        ngx_free(a);
        return NULL;
    }

    c->data = a;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    rev = c->read;
    wev = c->write;

    rev->log = log;
    wev->log = log;
    rev->handler = ngx_redis_adapter_read_handler;
    wev->handler = ngx_redis_adapter_write_handler;

    a->ac = ac;
    a->connection = c;
    a->close = close;

    /*
     * With edge-triggered notification (epoll, kqueue) both events are
     * registered once for the connection's life, as nginx does for its own
     * peers, and hiredis' hooks only steer posted writes; otherwise the
     * hooks add and delete level-triggered events.
     */

    if (ngx_event_flags & NGX_USE_CLEAR_EVENT) {
        a->edge = 1;

        if (ngx_add_conn) {
            if (ngx_add_conn(c) != NGX_OK) {
                goto failed;
            }

        } else {
            if (ngx_add_event(rev, NGX_READ_EVENT, NGX_CLEAR_EVENT) != NGX_OK
                || ngx_add_event(wev, NGX_WRITE_EVENT, NGX_CLEAR_EVENT)
                   != NGX_OK)
            {
                goto failed;
            }
        }
    }

    ac->ev.data = a;
    ac->ev.addRead = ngx_redis_adapter_add_read;
    ac->ev.delRead = ngx_redis_adapter_del_read;
    ac->ev.addWrite = ngx_redis_adapter_add_write;
    ac->ev.delWrite = ngx_redis_adapter_del_write;
    ac->ev.cleanup = ngx_redis_adapter_cleanup;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, log, 0,
                   "redis adapter attach fd:%d edge:%ui",
                   c->fd, (ngx_uint_t) a->edge);

    return c;

failed:

    ngx_redis_adapter_release(c);
    ngx_free(a);

    return NULL;
}


static void
ngx_redis_adapter_read_handler(ngx_event_t *rev)
{
    int                   n;
    ngx_uint_t            i, eof;
    ngx_connection_t     *c;
    ngx_redis_adapter_t  *a;

    c = rev->data;
    a = c->data;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, rev->log, 0,
                   "redis read handler fd:%d", c->fd);

    a->active = 1;

    if (c->close) {
        /* worker_shutdown_timeout: nginx closes every connection */
        redisAsyncFree(a->ac);
        goto done;
    }

    eof = 0;

    for (i = 0; /* void */ ; i++) {

        redisAsyncHandleRead(a->ac);

        if (a->closed) {
            break;
        }

        /*
         * hiredis reads at most 16 KiB per call, and an edge-triggered
         * event does not fire again for what is still in the socket.
         */

        if (ioctl(c->fd, FIONREAD, &n) == -1) {
            ngx_log_error(NGX_LOG_ALERT, rev->log, ngx_socket_errno,
                          "ioctl(FIONREAD) failed");
            break;
        }

        if (n > 0) {
            if (i == NGX_REDIS_ADAPTER_READS) {
                ngx_post_event(rev, &ngx_posted_next_events);
                break;
            }

            continue;
        }

        /* data and FIN came in one event: one more read sees the EOF */

        if (!rev->pending_eof || eof) {
            break;
        }

        eof = 1;
    }

done:

    a->active = 0;

    if (a->closed) {
        ngx_free(a);
    }
}


static void
ngx_redis_adapter_write_handler(ngx_event_t *wev)
{
    ngx_connection_t     *c;
    ngx_redis_adapter_t  *a;

    c = wev->data;
    a = c->data;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, wev->log, 0,
                   "redis write handler fd:%d", c->fd);

    a->active = 1;
    a->writing = 1;
    a->write_again = 0;

    redisAsyncHandleWrite(a->ac);

    a->writing = 0;
    a->active = 0;

    if (a->closed) {
        ngx_free(a);
        return;
    }

    /*
     * hiredis asks for another write only when the socket buffer filled up:
     * the next edge comes when it drains, so stop posting writes till then.
     */

    if (a->edge && a->write_again) {
        wev->ready = 0;
    }
}


static void
ngx_redis_adapter_add_read(void *data)
{
    ngx_redis_adapter_t *a = data;

    ngx_event_t  *rev;

    rev = a->connection->read;

    if (a->edge || rev->active) {
        return;
    }

    /* on failure nothing is read, and the command timeout drops the peer */
    (void) ngx_add_event(rev, NGX_READ_EVENT, NGX_LEVEL_EVENT);
}


static void
ngx_redis_adapter_del_read(void *data)
{
    ngx_redis_adapter_t *a = data;

    ngx_event_t  *rev;

    rev = a->connection->read;

    if (a->edge || !rev->active) {
        return;
    }

    (void) ngx_del_event(rev, NGX_READ_EVENT, 0);
}


static void
ngx_redis_adapter_add_write(void *data)
{
    ngx_redis_adapter_t *a = data;

    ngx_event_t  *wev;

    wev = a->connection->write;

    if (!a->edge) {
        if (!wev->active) {
            (void) ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
        }

        return;
    }

    if (a->writing) {
        a->write_again = 1;
        return;
    }

    /*
     * A command was queued: write it from this event loop iteration, with
     * whatever else gets queued meanwhile.  While the socket is not
     * writable (connecting, or buffer full) the next edge does it.
     */

    if (wev->ready) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


static void
ngx_redis_adapter_del_write(void *data)
{
    ngx_redis_adapter_t *a = data;

    ngx_event_t  *wev;

    wev = a->connection->write;

    if (a->edge) {
        a->write_again = 0;
        return;
    }

    if (wev->active) {
        (void) ngx_del_event(wev, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_redis_adapter_cleanup(void *data)
{
    ngx_redis_adapter_t *a = data;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, a->connection->log, 0,
                   "redis adapter cleanup fd:%d", a->connection->fd);

    ngx_redis_adapter_release(a->connection);

    if (a->close) {
        a->close(a->ac);
    }

    if (a->active) {
        /* the running handler frees it when hiredis returns */
        a->closed = 1;
        return;
    }

    ngx_free(a);
}


/* Like ngx_close_connection(), except that hiredis closes the socket. */

static void
ngx_redis_adapter_release(ngx_connection_t *c)
{
    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_del_conn) {
        ngx_del_conn(c, NGX_CLOSE_EVENT);

    } else {
        if (c->read->active || c->read->disabled) {
            ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active || c->write->disabled) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }
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

    /* stale events of this iteration see fd -1 and are skipped */
    c->fd = (ngx_socket_t) -1;
}
