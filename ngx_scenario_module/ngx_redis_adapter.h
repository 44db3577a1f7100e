/*
 * Runs a hiredis (0.14) async context on nginx's event loop: the context's
 * socket is wrapped in an ngx_connection_t and hiredis' event hooks are
 * mapped onto nginx events.  Knows nothing of the module that uses it.
 */

#ifndef _NGX_REDIS_ADAPTER_H_INCLUDED_
#define _NGX_REDIS_ADAPTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <hiredis/async.h>


/*
 * Called exactly once when hiredis frees the context, whatever the cause
 * (I/O error, connect failure, redisAsyncFree()), after every pending reply
 * callback has run with a NULL reply.  The context (ac->data, ac->c.errstr)
 * is still readable; the socket is already detached from nginx and hiredis
 * closes it right after.  The handler must not free the context.
 */
typedef void (*ngx_redis_adapter_close_pt)(redisAsyncContext *ac);


/*
 * Attaches a context just returned by redisAsyncConnect*() (ac->err == 0)
 * to nginx's event loop; log must outlive the context.  Returns the nginx
 * connection that now wraps the socket (valid until the close handler is
 * called), or NULL, in which case the caller still owns ac and frees it.
 */
ngx_connection_t *ngx_redis_adapter_attach(redisAsyncContext *ac,
    ngx_log_t *log, ngx_redis_adapter_close_pt close);


#endif /* _NGX_REDIS_ADAPTER_H_INCLUDED_ */
