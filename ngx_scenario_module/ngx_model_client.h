/*
 * Streaming calls to an OpenAI-compatible Chat Completions API, made as
 * nginx subrequests to an internal location that proxy_passes to the
 * configured base URL.  The SSE answer is parsed as it arrives and each
 * content delta is handed over at once.  Knows nothing of the module that
 * uses it.
 *
 * What one call allocates lives in a pool of its own, destroyed when the
 * call has ended: a long-lived parent (a WebSocket) does not grow per call.
 *
 * The internal location must proxy with "proxy_buffering off" (the answer is
 * read as it arrives; buffered, it is refused) and no proxy_cache,
 * proxy_intercept_errors or limit_req (a delayed subrequest is not woken);
 * its client_max_body_size must hold the largest request body.  The
 * subrequest carries none of the client's headers (it has its own, with
 * only Content-Type and Content-Length); still set
 * "proxy_pass_request_headers off" and the headers the API needs with
 * proxy_set_header.  The location's proxy_connect_timeout,
 * proxy_send_timeout and proxy_read_timeout bound each step; conf->timeout
 * bounds the whole call (0: no bound).
 *
 * Nginx's upstream code, run for the subrequest, deletes the client
 * connection's read timer and may set or delete its write timer
 * (send_timeout): the owner keeps its own timers on events of its own.
 */

#ifndef _NGX_MODEL_CLIENT_H_INCLUDED_
#define _NGX_MODEL_CLIENT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct ngx_model_call_s  ngx_model_call_t;


/*
 * A piece of the answer's content (valid UTF-8, never a split character),
 * valid during the call only.  Never called from inside ngx_model_call().
 */
typedef void (*ngx_model_delta_pt)(void *data, u_char *text, size_t len);

/*
 * The call ended.  rc is NGX_OK when the stream finished properly (a
 * finish_reason and "data: [DONE]"), else NGX_ERROR with status the
 * upstream's HTTP status (0 when none: timeout, connection error, cut or
 * malformed stream), retry_after the upstream's Retry-After in seconds (or
 * 0), and error a short description.  content is the whole text streamed
 * (also when it failed part way).  Called exactly once, unless cancelled,
 * from an event of its own (never from ngx_model_call() or a delta), once
 * nginx is done with the subrequest; error and content are valid during
 * the call only, and so is the call itself (see ngx_model_finish_reason()).
 * The main request may be released from it.  If nginx terminates the main
 * request, done follows ("the request was terminated") while something
 * holds it (r->main->blocked); if it is freed first, done is not called.
 * A failure is not logged here: done logs it once, with its own context.
 */
typedef void (*ngx_model_done_pt)(void *data, ngx_int_t rc,
    ngx_uint_t status, time_t retry_after, ngx_str_t *error,
    ngx_str_t *content);


typedef struct {
    ngx_str_t           location;    /* internal location, e.g. /_model */
    ngx_msec_t          timeout;     /* the whole call */
    size_t              max_content; /* answer longer than this: error */
} ngx_model_conf_t;


/* postconfiguration: installs the capture filters */
ngx_int_t ngx_model_client_init(ngx_conf_t *cf);

/*
 * Starts a call from request r (the main request of a connection that
 * stays open, e.g. a WebSocket) with body, the JSON of a Chat Completions
 * request ("stream": true), copied.  Returns NULL on failure.  r must stay
 * alive until done is called (or the call is cancelled and then has ended:
 * see ngx_model_busy); the caller holds it (r->main->count), and does not
 * finalize it with an error from a delta.
 */
ngx_model_call_t *ngx_model_call(ngx_http_request_t *r,
    ngx_model_conf_t *conf, ngx_str_t *body, ngx_model_delta_pt delta,
    ngx_model_done_pt done, void *data);

/*
 * No more callbacks; the call still ends on its own, soon: its upstream
 * connection is closed from an event of its own.  Not after done.
 */
void ngx_model_cancel(ngx_model_call_t *call);

/*
 * Whether calls made from r are still running (r must not be freed yet).
 * A call counts until nginx is done with its subrequest; inside done it no
 * longer does.  A cancelled call also holds r->main->count until then, so
 * r may be released meanwhile: nginx frees it when the call is over.
 */
ngx_uint_t ngx_model_busy(ngx_http_request_t *r);

/* In done: the stream's finish_reason ("stop", "length", ...), or empty. */
ngx_str_t *ngx_model_finish_reason(ngx_model_call_t *call);


#endif /* _NGX_MODEL_CLIENT_H_INCLUDED_ */
