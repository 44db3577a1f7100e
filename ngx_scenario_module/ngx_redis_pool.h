/*
 * A per-worker pool of non-blocking Redis connections (hiredis async),
 * driven by nginx events.  Knows nothing of the module that uses it.
 *
 * Commands are pipelined over a small set of long-lived connections; a
 * command never blocks the worker, always has a timeout, and its handler is
 * always called exactly once (never from inside ngx_redis_command()), unless
 * the caller cancelled it first.
 */

#ifndef _NGX_REDIS_POOL_H_INCLUDED_
#define _NGX_REDIS_POOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>


typedef struct ngx_redis_pool_s  ngx_redis_pool_t;
typedef struct ngx_redis_op_s    ngx_redis_op_t;
typedef struct ngx_redis_sub_s   ngx_redis_sub_t;


/*
 * rc is NGX_OK with a reply (which may be REDIS_REPLY_ERROR), or
 * NGX_ERROR (connection lost, no reply) or NGX_ETIMEDOUT, with reply NULL.
 * The reply is only valid during the call.  Handlers run from the Redis
 * connection's events: one that finalizes an HTTP request must then call
 * ngx_http_run_posted_requests(c), as upstream handlers do.
 */
typedef void (*ngx_redis_handler_pt)(void *data, redisReply *reply,
    ngx_int_t rc);

/* A message published on a subscribed channel. */
typedef void (*ngx_redis_message_pt)(void *data, ngx_str_t *channel,
    ngx_str_t *message);


typedef struct {
    ngx_str_t                  addr;          /* "host:port", "unix:/path" */
    ngx_addr_t                *peer;          /* resolved at config time */
    ngx_str_t                  unix_path;     /* set for unix sockets */
    ngx_uint_t                 size;          /* connections per worker */
    ngx_uint_t                 max_pending;   /* in flight per connection */
    ngx_msec_t                 connect_timeout;
    ngx_msec_t                 command_timeout;
    ngx_msec_t                 backoff_min;   /* reconnect delay bounds */
    ngx_msec_t                 backoff_max;
    ngx_str_t                  password;      /* AUTH after connect if set */
    ngx_int_t                  db;            /* SELECT after connect */
} ngx_redis_pool_conf_t;


typedef struct {
    ngx_uint_t                 size;
    ngx_uint_t                 connected;
    ngx_uint_t                 pending;       /* commands in flight */
    ngx_uint_t                 commands;      /* sent since start */
    ngx_uint_t                 errors;        /* failed or timed out */
    ngx_uint_t                 reconnects;    /* re-established after loss */
} ngx_redis_pool_stats_t;


/*
 * Configuration time: fills defaults for unset fields, parses the address.
 * conf_parse returns NGX_CONF_OK, or NGX_CONF_ERROR (already logged) or an
 * error string, both fit to return from a directive handler.
 */
void ngx_redis_pool_conf_init(ngx_redis_pool_conf_t *conf);
char *ngx_redis_pool_conf_parse(ngx_conf_t *cf, ngx_redis_pool_conf_t *conf,
    ngx_str_t *addr);

/* Allocated from cf->pool; connects nothing until init_process. */
ngx_redis_pool_t *ngx_redis_pool_create(ngx_conf_t *cf,
    ngx_redis_pool_conf_t *conf);

/* Worker start: open every connection (non-blocking). */
ngx_int_t ngx_redis_pool_init_process(ngx_redis_pool_t *pool,
    ngx_cycle_t *cycle);

/*
 * Worker exit or reload: fail pending commands, close every connection.
 * Subscriptions are freed without calling their handlers; no op or sub
 * pointer may be used afterwards.
 */
void ngx_redis_pool_exit_process(ngx_redis_pool_t *pool);

/*
 * Sends one command (argv form, binary safe); with a NULL handler, nobody
 * waits for its reply.  Returns NULL when no
 * connection is up or every connection has max_pending commands in
 * flight: the caller should answer 503.  A worker's connections count as
 * up while they make their first connect (the command waits for it); after
 * a failure, only once Redis has answered again.
 */
ngx_redis_op_t *ngx_redis_command(ngx_redis_pool_t *pool,
    ngx_redis_handler_pt handler, void *data, int argc, const char **argv,
    const size_t *argvlen);

/*
 * The same, on the connection chosen by hint while it is usable: commands
 * with one hint are then carried, and answered, in the order they were
 * sent (PUBLISHes of one stream, say).
 */
ngx_redis_op_t *ngx_redis_command_pinned(ngx_redis_pool_t *pool,
    ngx_uint_t hint, ngx_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);

/*
 * EVAL of a script: "EVAL script nkeys keys... args...", sent as by
 * ngx_redis_command() or ngx_redis_command_pinned(), with the same return.
 */
ngx_redis_op_t *ngx_redis_eval(ngx_redis_pool_t *pool,
    ngx_redis_handler_pt handler, void *data, ngx_str_t *script,
    ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs, ngx_str_t *args);
ngx_redis_op_t *ngx_redis_eval_pinned(ngx_redis_pool_t *pool,
    ngx_uint_t hint, ngx_redis_handler_pt handler, void *data,
    ngx_str_t *script, ngx_uint_t nkeys, ngx_str_t *keys, ngx_uint_t nargs,
    ngx_str_t *args);

/* The handler will not be called; safe at any time before it was called. */
void ngx_redis_op_cancel(ngx_redis_op_t *op);

/*
 * Pub/sub on one dedicated subscriber connection per worker.  The
 * subscription survives reconnects (it is re-issued); each subscriber of a
 * channel gets every message.  Returns NULL on allocation failure only.
 */
ngx_redis_sub_t *ngx_redis_subscribe(ngx_redis_pool_t *pool,
    ngx_str_t *channel, ngx_redis_message_pt handler, void *data);
void ngx_redis_unsubscribe(ngx_redis_sub_t *sub);

/*
 * Hands a message to this worker's subscribers of a channel at once, as if
 * Redis had sent it (nothing is sent to Redis): a publisher delivers to
 * the worker's own subscribers in process, and publishes for the others.
 */
void ngx_redis_publish_local(ngx_redis_pool_t *pool, ngx_str_t *channel,
    ngx_str_t *message);

/*
 * 0 while the subscriber connection is down or its subscriptions are not
 * yet confirmed; otherwise a number that changes each time they are made
 * anew.  Messages may have been missed between two different numbers, so a
 * cache kept in step by messages is only valid under one number.
 */
ngx_uint_t ngx_redis_sub_epoch(ngx_redis_pool_t *pool);

void ngx_redis_pool_stats(ngx_redis_pool_t *pool,
    ngx_redis_pool_stats_t *stats);


#endif /* _NGX_REDIS_POOL_H_INCLUDED_ */
