/*
 * WebSocket (RFC 6455) server connections inside an nginx worker: the
 * handshake, frame parsing and writing, fragmentation, control frames, the
 * close handshake, UTF-8 validation, size limits, a capped output queue,
 * and ping/idle timers.  Knows nothing of the module that uses it.
 *
 * The upgraded request stays the connection's c->data and keeps nginx's
 * request handler, so that subrequests made from it (and posted requests)
 * keep working: only r->read_event_handler and r->write_event_handler are
 * replaced, as nginx's own upgraded proxying does.
 *
 * After the upgrade the request's line and headers live in a copy of
 * their own and the connection's header buffer is freed: a pointer into that
 * buffer that the owner took before ngx_http_ws_accept() (a slice of
 * r->uri, a header's value) must be copied before, as r's own are moved.
 */

#ifndef _NGX_HTTP_WS_H_INCLUDED_
#define _NGX_HTTP_WS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_WS_TEXT            1
#define NGX_HTTP_WS_BINARY          2

#define NGX_HTTP_WS_NORMAL          1000
#define NGX_HTTP_WS_GOING_AWAY      1001
#define NGX_HTTP_WS_PROTOCOL_ERROR  1002
#define NGX_HTTP_WS_UNSUPPORTED     1003
#define NGX_HTTP_WS_NO_STATUS       1005     /* on_closed: empty CLOSE */
#define NGX_HTTP_WS_ABNORMAL        1006     /* on_closed: no CLOSE */
#define NGX_HTTP_WS_INVALID_DATA    1007
#define NGX_HTTP_WS_POLICY          1008
#define NGX_HTTP_WS_TOO_BIG         1009
#define NGX_HTTP_WS_INTERNAL_ERROR  1011


typedef struct ngx_http_ws_s  ngx_http_ws_t;

/* Registered with the module that uses this file (see config). */
extern ngx_module_t  ngx_http_ws_module;

/* A whole message (fragments joined), valid during the call only. */
typedef void (*ngx_http_ws_message_pt)(ngx_http_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);

/*
 * The connection is gone or going (code is what was sent or received, 1006
 * when the peer vanished).  Called once; after it returns no more callbacks
 * come and no more sends are accepted.  The owner then calls
 * ngx_http_ws_release() when it no longer needs the object (it may keep it
 * while its own work, such as a pending subrequest, finishes): only then is
 * the request finalized.
 */
typedef void (*ngx_http_ws_closed_pt)(ngx_http_ws_t *ws, ngx_uint_t code);

/* The output queue is empty (see ngx_http_ws_on_drained()). */
typedef void (*ngx_http_ws_drained_pt)(ngx_http_ws_t *ws);


/* Kept by pointer: it must live as long as the connection (a location's
 * configuration does). */
typedef struct {
    size_t              max_message;     /* beyond: close 1009 */
    size_t              max_output;      /* queued bytes beyond: drop */
    ngx_msec_t          ping_interval;   /* 0: no pings */
    ngx_msec_t          idle_timeout;    /* nothing received: close 1001;
                                            0: none */
    ngx_msec_t          close_timeout;   /* wait for the peer's CLOSE */
    ngx_msec_t          send_timeout;    /* a blocked write: drop; 0: none */
} ngx_http_ws_conf_t;


/*
 * Checks an upgrade request: GET, HTTP/1.1, Upgrade: websocket,
 * Connection: upgrade (as one token of a list), Sec-WebSocket-Version: 13
 * (else 426 with the header), a key of 16 bytes, no body.  Returns NGX_OK
 * or the HTTP status to answer with.
 */
ngx_int_t ngx_http_ws_check(ngx_http_request_t *r);

/*
 * Answers 101 and takes the connection over.  The content handler then
 * returns NGX_DONE.  Returns NULL on failure (answer 500).
 */
ngx_http_ws_t *ngx_http_ws_accept(ngx_http_request_t *r,
    ngx_http_ws_conf_t *conf, ngx_http_ws_message_pt on_message,
    ngx_http_ws_closed_pt on_closed, void *data);

/* Queues a text frame.  NGX_ERROR when closed or over max_output (the
 * connection is then dropped with 1008 and on_closed follows). */
ngx_int_t ngx_http_ws_send_text(ngx_http_ws_t *ws, u_char *data, size_t len);

/* Sends CLOSE with code and reason, then waits for the peer's CLOSE.
 * A code that may not be sent (1005, 1006, unassigned) becomes 1000; the
 * reason is cut to 123 bytes on a character boundary.  on_closed follows,
 * from the event loop. */
void ngx_http_ws_close(ngx_http_ws_t *ws, ngx_uint_t code,
    const char *reason);

/* Finalizes the request soon after, from the event loop.  Called before
 * on_closed, it closes with 1001 and on_closed never comes. */
void ngx_http_ws_release(ngx_http_ws_t *ws);

/* Bytes queued and not yet sent (frame headers included). */
size_t ngx_http_ws_queued(ngx_http_ws_t *ws);

/*
 * Calls handler once, from the event loop, when everything queued is sent
 * (at once if nothing is): a sender of much data sends the next part then,
 * under max_output.  Not called after on_closed.
 */
void ngx_http_ws_on_drained(ngx_http_ws_t *ws, ngx_http_ws_drained_pt handler);

void *ngx_http_ws_data(ngx_http_ws_t *ws);

/* The request, valid (with its pool) until ngx_http_ws_release(). */
ngx_http_request_t *ngx_http_ws_request(ngx_http_ws_t *ws);
ngx_uint_t ngx_http_ws_is_open(ngx_http_ws_t *ws);


#endif /* _NGX_HTTP_WS_H_INCLUDED_ */
