/*
 * Chat Completions calls as background subrequests.
 *
 * The subrequest is made with NGX_HTTP_SUBREQUEST_BACKGROUND: it does not
 * become c->data and does not postpone the parent's output, so an upgraded
 * parent keeps its connection.  It is recognised by its post_subrequest
 * handler, which is how the capture filters find their call.
 *
 * Memory.  ngx_http_subrequest() allocates the subrequest from r->pool and
 * makes that sr->pool, which everything the subrequest and its upstream
 * allocate comes from.  The parent's r->pool points at the call's own pool
 * for the time of that one call, so all of it is the call's.  The one other
 * allocation, the upstream's ngx_http_cleanup_add(), is from r->main->pool:
 * that is lent the call's pool while the subrequest first runs.  What would
 * still tie the main request to the pool is dealt with:
 *   - headers_in and variables, shared with the parent by default, are the
 *     subrequest's own (both are written to from sr->pool);
 *   - cleanups and posted requests from the pool are unlinked at the end
 *     (ngx_http_cleanup_add() links into r->main->cleanup);
 *   - the log's current request is pointed back at the main request.
 * The capture filters stop the subrequest's output before any other filter
 * sees it, so none of those keeps state on the main request either.
 * The call ends in an event posted once nginx is done with the subrequest,
 * never inside the subrequest's own code; it then calls done and destroys
 * the pool.  A cleanup of the call's own in r->main->cleanup learns when
 * nginx terminates the main request, which ends the subrequest silently.
 * If the main request goes first, a cleanup on its pool destroys the pools
 * of calls left (nginx has ended their subrequests by then).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_model_client.h"
#include "ngx_http_headers.h"
#include "ngx_sse.h"
#include "ngx_model_chunk.h"


#define NGX_MODEL_POOL_SIZE       16384    /* a call's subrequest and
                                              upstream in one block */
#define NGX_MODEL_MAX_LINE        65536
#define NGX_MODEL_MAX_EVENT       65536
#define NGX_MODEL_MAX_BODY        1024     /* of an error answer, kept */
#define NGX_MODEL_MAX_MESSAGE     256      /* of the API's error message */
#define NGX_MODEL_MAX_ERROR       512
#define NGX_MODEL_MAX_REASON      32
#define NGX_MODEL_MIN_CONTENT     1024
#define NGX_MODEL_CHUNK_BUF       1024     /* decoded strings, on the stack */


typedef struct {
    ngx_queue_t                  calls;
} ngx_model_main_t;


struct ngx_model_call_s {
    ngx_pool_t                  *pool;
    ngx_http_request_t          *parent;
    ngx_http_request_t          *sr;
    ngx_queue_t                  queue;       /* ngx_model_main_t calls */

    ngx_model_delta_pt           delta;
    ngx_model_done_pt            done;
    void                        *data;

    ngx_http_post_subrequest_t   ps;
    ngx_http_cleanup_t          *cleanup;     /* in r->main->cleanup */
    ngx_event_t                  timer;       /* the whole call */
    ngx_event_t                  event;       /* start, stop, end */
    ngx_msec_t                   timeout;

    ngx_sse_parser_t             sse;
    size_t                       max_content;

    ngx_uint_t                   status;
    time_t                       retry_after;
    ngx_int_t                    rc;          /* the subrequest's */

    ngx_str_t                    content;
    size_t                       content_size;
    size_t                       emitted;     /* given to delta */

    ngx_str_t                    body;        /* of an error answer */
    u_char                       reason[NGX_MODEL_MAX_REASON];
    ngx_str_t                    finish_reason;
    ngx_str_t                    error;

    unsigned                     started:1;
    unsigned                     starting:1;
    unsigned                     header:1;
    unsigned                     stream:1;    /* a 2xx event stream */
    unsigned                     done_seen:1; /* data: [DONE] */
    unsigned                     failed:1;
    unsigned                     stop:1;      /* end it early */
    unsigned                     finished:1;  /* nginx is done with sr */
    unsigned                     ended:1;
    unsigned                     cancelled:1;
    unsigned                     terminated:1;
    unsigned                     conn_error:1;
};


static ngx_int_t ngx_model_subrequest(ngx_model_call_t *call,
    ngx_model_conf_t *conf, ngx_str_t *body);
static ngx_int_t ngx_model_setup(ngx_model_call_t *call,
    ngx_http_request_t *sr, ngx_str_t *body);
static ngx_int_t ngx_model_headers(ngx_model_call_t *call,
    ngx_http_request_t *sr, size_t len);
static ngx_table_elt_t *ngx_model_add_header(ngx_model_call_t *call,
    ngx_http_request_t *sr, ngx_str_t *key, ngx_str_t *value);
static ngx_int_t ngx_model_post_subrequest(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);

static void ngx_model_handler(ngx_event_t *ev);
static void ngx_model_timeout(ngx_event_t *ev);
static void ngx_model_start(ngx_model_call_t *call);
static void ngx_model_terminated(void *data);
static void ngx_model_stop(ngx_model_call_t *call);
static void ngx_model_end(ngx_model_call_t *call);
static ngx_int_t ngx_model_result(ngx_model_call_t *call,
    ngx_uint_t *status, ngx_str_t *error);
static void ngx_model_http_error(ngx_model_call_t *call, ngx_str_t *error);
static void ngx_model_unlink(ngx_model_call_t *call);
static void ngx_model_unpost(ngx_model_call_t *call);
static ngx_uint_t ngx_model_owns(ngx_pool_t *pool, void *p);
static void ngx_model_events_off(ngx_model_call_t *call);

static ngx_model_main_t *ngx_model_main(ngx_http_request_t *mr,
    ngx_uint_t create);
static void ngx_model_main_cleanup(void *data);

static ngx_model_call_t *ngx_model_call_of(ngx_http_request_t *r);
static ngx_int_t ngx_model_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_model_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_uint_t ngx_model_is_stream(ngx_http_request_t *r);
static time_t ngx_model_retry_after(ngx_http_request_t *r);
static void ngx_model_feed(ngx_model_call_t *call, u_char *data,
    size_t len);
static void ngx_model_keep(ngx_model_call_t *call, u_char *data,
    size_t len);
static ngx_int_t ngx_model_event(void *ctx, ngx_str_t *type, u_char *data,
    size_t len);
static ngx_int_t ngx_model_fast(ngx_model_call_t *call, u_char *data,
    size_t len);
static ngx_int_t ngx_model_chunk(ngx_model_call_t *call, json_t *json);
static void ngx_model_reason(ngx_model_call_t *call, u_char *data,
    size_t len);
static ngx_int_t ngx_model_content(ngx_model_call_t *call, u_char *data,
    size_t len);
static void ngx_model_emit(ngx_model_call_t *call);

static ngx_int_t ngx_model_fail(ngx_model_call_t *call, const char *fmt,
    ...);
static void ngx_model_error(ngx_model_call_t *call, const char *fmt, ...);
static void ngx_model_verror(ngx_model_call_t *call, const char *fmt,
    va_list args);
static void ngx_model_stop_soon(ngx_model_call_t *call);
static size_t ngx_model_utf8_whole(u_char *p, size_t len);
static size_t ngx_model_clean(u_char *dst, u_char *src, size_t len,
    size_t max);


static ngx_str_t  ngx_model_post = ngx_string("POST");
static ngx_str_t  ngx_model_content_length = ngx_string("Content-Length");
static ngx_str_t  ngx_model_content_type = ngx_string("Content-Type");
static ngx_str_t  ngx_model_json = ngx_string("application/json");


static ngx_http_output_header_filter_pt  ngx_model_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_model_next_body_filter;


ngx_int_t
ngx_model_client_init(ngx_conf_t *cf)
{
    ngx_model_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_model_header_filter;

    ngx_model_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_model_body_filter;

    return NGX_OK;
}


ngx_model_call_t *
ngx_model_call(ngx_http_request_t *r, ngx_model_conf_t *conf,
    ngx_str_t *body, ngx_model_delta_pt delta, ngx_model_done_pt done,
    void *data)
{
    ngx_pool_t        *pool;
    ngx_model_main_t  *m;
    ngx_model_call_t  *call;

    m = ngx_model_main(r->main, 1);
    if (m == NULL) {
        return NULL;
    }

    pool = ngx_create_pool(NGX_MODEL_POOL_SIZE, r->connection->log);
    if (pool == NULL) {
        return NULL;
    }

    call = ngx_pcalloc(pool, sizeof(ngx_model_call_t));
    if (call == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    call->pool = pool;
    call->parent = r;
    call->delta = delta;
    call->done = done;
    call->data = data;
    call->timeout = conf->timeout;
    call->max_content = conf->max_content;

    ngx_sse_init(&call->sse, pool, NGX_MODEL_MAX_LINE, NGX_MODEL_MAX_EVENT,
                 ngx_model_event, call);

    if (ngx_model_subrequest(call, conf, body) != NGX_OK) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    ngx_queue_insert_tail(&m->calls, &call->queue);

    call->event.handler = ngx_model_handler;
    call->event.data = call;
    call->event.log = r->connection->log;

    /* not cancelable: an exiting worker waits for the call */

    call->timer.handler = ngx_model_timeout;
    call->timer.data = call;
    call->timer.log = r->connection->log;

    if (conf->timeout) {
        ngx_add_timer(&call->timer, conf->timeout);
    }

    /*
     * The subrequest is started from an event of the call's own: no request
     * code runs under the caller, and no callback.
     */

    ngx_post_event(&call->event, &ngx_posted_events);

    return call;
}


void
ngx_model_cancel(ngx_model_call_t *call)
{
    if (call->ended) {
        return;
    }

    call->cancelled = 1;

    /* nobody waits for the answer: do not pay for the rest of it */
    ngx_model_stop_soon(call);
}


ngx_uint_t
ngx_model_busy(ngx_http_request_t *r)
{
    ngx_model_main_t  *m;

    m = ngx_model_main(r->main, 0);

    return m != NULL && !ngx_queue_empty(&m->calls);
}


ngx_str_t *
ngx_model_finish_reason(ngx_model_call_t *call)
{
    return &call->finish_reason;
}


/* the subrequest */


static ngx_int_t
ngx_model_subrequest(ngx_model_call_t *call, ngx_model_conf_t *conf,
    ngx_str_t *body)
{
    ngx_int_t            rc;
    ngx_pool_t          *pool;
    ngx_http_request_t  *r, *sr;

    r = call->parent;

    call->ps.handler = ngx_model_post_subrequest;
    call->ps.data = call;

    /*
     * ngx_http_subrequest() allocates from r->pool and makes it sr->pool:
     * it gets the call's pool instead.  It runs no other code meanwhile.
     */

    pool = r->pool;
    r->pool = call->pool;

    sr = NULL;

    rc = ngx_http_subrequest(r, &conf->location, NULL, &sr, &call->ps,
                             NGX_HTTP_SUBREQUEST_BACKGROUND);

    r->pool = pool;

    if (rc != NGX_OK) {
        if (sr != NULL) {
            /* counted, but it could not be posted */
            r->main->count--;
        }

        return NGX_ERROR;
    }

    call->sr = sr;

    /* it is run by the call's own event, see ngx_model_start() */
    ngx_model_unpost(call);

    if (ngx_model_setup(call, sr, body) != NGX_OK) {
        r->main->count--;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_model_setup(ngx_model_call_t *call, ngx_http_request_t *sr,
    ngx_str_t *body)
{
    size_t                      size;
    ngx_buf_t                  *b;
    ngx_chain_t                *cl;
    ngx_http_request_body_t    *rb;
    ngx_http_core_main_conf_t  *cmcf;

    /* a copy: the body is sent again if the upstream module retries */

    b = ngx_create_temp_buf(call->pool, body->len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, body->data, body->len);
    b->last_buf = 1;

    cl = ngx_alloc_chain_link(call->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    rb = ngx_pcalloc(call->pool, sizeof(ngx_http_request_body_t));
    if (rb == NULL) {
        return NGX_ERROR;
    }

    rb->bufs = cl;

    sr->request_body = rb;
    sr->method = NGX_HTTP_POST;
    sr->method_name = ngx_model_post;

    /* the parent's body state is no business of the subrequest */
    sr->discard_body = 0;

    if (ngx_model_headers(call, sr, body->len) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * Shared, the parent's array would keep cached values that point into
     * the call's pool: the subrequest starts from a copy instead.
     */

    cmcf = ngx_http_get_module_main_conf(sr, ngx_http_core_module);

    size = cmcf->variables.nelts * sizeof(ngx_http_variable_value_t);

    sr->variables = ngx_palloc(call->pool, size);
    if (sr->variables == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sr->variables, call->parent->variables, size);

    return NGX_OK;
}


/*
 * Headers of its own: none of the client's (cookies, tokens) are there to
 * be passed on, and nothing is pushed onto the parent's list.
 */

static ngx_int_t
ngx_model_headers(ngx_model_call_t *call, ngx_http_request_t *sr,
    size_t len)
{
    ngx_str_t         value;
    ngx_table_elt_t  *h;

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    if (ngx_list_init(&sr->headers_in.headers, call->pool, 2,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->headers_in.content_length_n = len;
    sr->headers_in.keep_alive_n = -1;

    value.data = ngx_pnalloc(call->pool, NGX_SIZE_T_LEN);
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    value.len = ngx_sprintf(value.data, "%uz", len) - value.data;

    h = ngx_model_add_header(call, sr, &ngx_model_content_length, &value);
    if (h == NULL) {
        return NGX_ERROR;
    }

    sr->headers_in.content_length = h;

    h = ngx_model_add_header(call, sr, &ngx_model_content_type,
                             &ngx_model_json);
    if (h == NULL) {
        return NGX_ERROR;
    }

    sr->headers_in.content_type = h;

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_model_add_header(ngx_model_call_t *call, ngx_http_request_t *sr,
    ngx_str_t *key, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&sr->headers_in.headers);
    if (h == NULL) {
        return NULL;
    }

    h->key = *key;
    h->value = *value;

    h->lowcase_key = ngx_pnalloc(call->pool, key->len);
    if (h->lowcase_key == NULL) {
        return NULL;
    }

    ngx_strlow(h->lowcase_key, key->data, key->len);

    /* as the request parser computes it: proxy looks headers up by it */
    h->hash = ngx_hash_key(h->lowcase_key, key->len);

    return h;
}


/*
 * Runs when nginx finalizes the subrequest.  Whatever went wrong is the
 * call's result, reported through done: anything but NGX_OK here would make
 * nginx terminate the main request.
 */

static ngx_int_t
ngx_model_post_subrequest(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_model_call_t  *call = data;

    if (call->finished || sr->buffered || sr->postponed) {
        /* not over yet: nginx calls again */
        return NGX_OK;
    }

    call->finished = 1;
    call->rc = rc;

    /*
     * c->error (the client connection's, shared with the main request)
     * would also make nginx terminate the main request, under the feet of
     * whoever holds it.  It is set again when the call has ended.  When the
     * subrequest is the last holder, nginx closes the request as usual.
     */

    if (sr->connection->error && sr->main->count > 1) {
        sr->connection->error = 0;
        call->conn_error = 1;
    }

    ngx_post_event(&call->event, &ngx_posted_events);

    return NGX_OK;
}


/* the call's life */


static void
ngx_model_handler(ngx_event_t *ev)
{
    ngx_model_call_t    *call = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *mr;

    mr = call->parent->main;
    c = mr->connection;

    /* whatever the call does, the main request outlives it */
    mr->count++;

    if (!call->started) {
        call->started = 1;

        if (call->stop) {
            /* cancelled before it ran: only its count is to be given back */
            ngx_http_finalize_request(call->sr, NGX_DONE);
            call->finished = 1;

        } else {
            ngx_model_start(call);
        }
    }

    if (call->stop && !call->finished) {
        ngx_model_stop(call);
    }

    if (call->finished) {
        ngx_model_end(call);
    }

    ngx_http_finalize_request(mr, NGX_DONE);
    ngx_http_run_posted_requests(c);
}


/*
 * Runs the subrequest for the first time, which is when the upstream module
 * calls ngx_http_cleanup_add(): that allocates from r->main->pool, lent the
 * call's pool meanwhile, as r->pool was for ngx_http_subrequest().
 */

static void
ngx_model_start(ngx_model_call_t *call)
{
    ngx_pool_t          *pool;
    ngx_http_request_t  *mr, *sr;

    sr = call->sr;
    mr = sr->main;

    ngx_http_set_log_request(mr->connection->log, sr);

    /*
     * A location that answers at once is read meanwhile: its deltas wait,
     * lest the owner allocate from the lent pool.
     */

    pool = mr->pool;
    mr->pool = call->pool;
    call->starting = 1;

    call->cleanup = ngx_http_cleanup_add(sr, 0);

    if (call->cleanup) {
        call->cleanup->handler = ngx_model_terminated;
        call->cleanup->data = call;
    }

    sr->write_event_handler(sr);

    call->starting = 0;
    mr->pool = pool;

    ngx_model_emit(call);
}


/*
 * The main request is terminated: nginx runs its cleanups, the upstream's
 * among them, which ends the subrequest without the post_subrequest
 * handler.  If something still holds the request (r->main->blocked), done
 * tells the owner.
 */

static void
ngx_model_terminated(void *data)
{
    ngx_model_call_t  *call = data;

    call->cleanup = NULL;

    if (call->finished) {
        return;
    }

    call->finished = 1;
    call->terminated = 1;

    ngx_post_event(&call->event, &ngx_posted_events);
}


static void
ngx_model_timeout(ngx_event_t *ev)
{
    ngx_model_call_t  *call = ev->data;

    if (!call->finished) {
        (void) ngx_model_fail(call, "no complete answer within %M ms",
                              call->timeout);
    }

    ngx_model_handler(&call->event);
}


/*
 * Ends the subrequest the way nginx does when it terminates a request: the
 * upstream's cleanup closes the upstream connection and finalizes the
 * subrequest with NGX_DONE.  Only from an event of the call's own, never
 * inside the subrequest's code.
 */

static void
ngx_model_stop(ngx_model_call_t *call)
{
    ngx_http_upstream_t  *u;
    ngx_http_cleanup_pt   cleanup;

    u = call->sr->upstream;

    if (u == NULL || u->cleanup == NULL || *u->cleanup == NULL) {
        /* not in the upstream module: it ends by itself */
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, call->parent->connection->log, 0,
                       "model call cannot be stopped, waiting");
        return;
    }

    cleanup = *u->cleanup;
    cleanup(call->sr);

    call->finished = 1;
}


static void
ngx_model_end(ngx_model_call_t *call)
{
    ngx_int_t          rc;
    ngx_str_t          error, content;
    ngx_uint_t         status;
    ngx_connection_t  *c;

    c = call->parent->connection;

    ngx_model_unlink(call);
    ngx_queue_remove(&call->queue);
    ngx_model_events_off(call);

    if (call->conn_error) {
        c->error = 1;
    }

    /* the upstream's last words ("sending to client") are not the main's */
    c->log->action = NULL;

    /*
     * the upstream arms the connection's write timer (send_timeout) while
     * the client is slow to read, and nothing disarms it: firing later, or
     * left as wev->timedout, it would end the next call with a 408
     */
    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->write->timedout = 0;

    call->ended = 1;

    if (call->cancelled) {
        ngx_destroy_pool(call->pool);
        return;
    }

    /* a failure is logged once, by the caller, which knows what it cost */
    rc = ngx_model_result(call, &status, &error);

    /* what was streamed, without a character the stream broke off in */
    content.data = call->content.data;
    content.len = call->emitted;

    call->done(call->data, rc, status, call->retry_after, &error, &content);

    ngx_destroy_pool(call->pool);
}


static ngx_int_t
ngx_model_result(ngx_model_call_t *call, ngx_uint_t *status,
    ngx_str_t *error)
{
    *status = 0;
    ngx_str_null(error);

    if (call->header && (call->status < 200 || call->status > 299)) {
        *status = call->status;
        ngx_model_http_error(call, error);
        return NGX_ERROR;
    }

    if (call->failed) {
        *error = call->error;
        return NGX_ERROR;
    }

    if (call->terminated) {
        ngx_str_set(error, "the request was terminated");
        return NGX_ERROR;
    }

    if (!call->header) {

        switch (call->rc) {

        case NGX_HTTP_GATEWAY_TIME_OUT:
            ngx_str_set(error, "the model API timed out");
            break;

        case NGX_HTTP_BAD_GATEWAY:
            ngx_str_set(error, "the model API could not be reached");
            break;

        default:
            ngx_model_error(call, "the model location failed (%i)",
                            call->rc);
            *error = call->error;
        }

        return NGX_ERROR;
    }

    if (!call->stream) {
        ngx_str_set(error, "the answer is not an event stream");
        return NGX_ERROR;
    }

    if (!call->done_seen) {
        ngx_str_set(error, "the stream was cut before [DONE]");
        return NGX_ERROR;
    }

    if (call->finish_reason.len == 0) {
        ngx_str_set(error, "the stream ended without a finish_reason");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* "HTTP 429: <the API's error message, or the start of its body>" */

static void
ngx_model_http_error(ngx_model_call_t *call, ngx_str_t *error)
{
    u_char        msg[NGX_MODEL_MAX_MESSAGE];
    size_t        len;
    json_t       *json, *message;
    json_error_t  err;

    json = json_loadb((char *) call->body.data, call->body.len, 0, &err);

    message = json_object_get(json_object_get(json, "error"), "message");

    if (json_is_string(message)) {
        len = ngx_model_clean(msg, (u_char *) json_string_value(message),
                              json_string_length(message), sizeof(msg));

    } else {
        len = ngx_model_clean(msg, call->body.data, call->body.len,
                              sizeof(msg));
    }

    json_decref(json);

    if (len) {
        ngx_model_error(call, "HTTP %ui: %*s", call->status, len, msg);

    } else {
        ngx_model_error(call, "HTTP %ui", call->status);
    }

    *error = call->error;
}


/*
 * Takes out of the main request what the subrequest linked into it from
 * the call's pool, before the pool goes.
 */

static void
ngx_model_unlink(ngx_model_call_t *call)
{
    ngx_http_request_t   *mr;
    ngx_http_cleanup_t  **cln;
    ngx_http_log_ctx_t   *ctx;

    mr = call->parent->main;

    if (call->cleanup) {
        call->cleanup->handler = NULL;
        call->cleanup = NULL;
    }

    for (cln = &mr->cleanup; *cln; /* void */) {

        if (!ngx_model_owns(call->pool, *cln)) {
            cln = &(*cln)->next;
            continue;
        }

        if ((*cln)->handler) {
            ngx_log_error(NGX_LOG_ALERT, mr->connection->log, 0,
                          "model call: a cleanup of its subrequest was "
                          "left to run");
        }

        *cln = (*cln)->next;
    }

    ngx_model_unpost(call);

    ctx = mr->connection->log->data;

    if (ctx->current_request == call->sr) {
        ctx->current_request = mr;
    }
}


static void
ngx_model_unpost(ngx_model_call_t *call)
{
    ngx_http_posted_request_t  **pr;

    pr = &call->parent->main->posted_requests;

    while (*pr) {

        if (ngx_model_owns(call->pool, *pr) || (*pr)->request == call->sr) {
            *pr = (*pr)->next;

        } else {
            pr = &(*pr)->next;
        }
    }
}


/* whether p was allocated from the small blocks of pool */

static ngx_uint_t
ngx_model_owns(ngx_pool_t *pool, void *p)
{
    ngx_pool_t  *b;

    for (b = pool; b; b = b->d.next) {
        if ((u_char *) p >= (u_char *) b && (u_char *) p < b->d.end) {
            return 1;
        }
    }

    return 0;
}


static void
ngx_model_events_off(ngx_model_call_t *call)
{
    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }

    if (call->event.posted) {
        ngx_delete_posted_event(&call->event);
    }
}


/* the calls of a main request, found through a cleanup on its pool */


static ngx_model_main_t *
ngx_model_main(ngx_http_request_t *mr, ngx_uint_t create)
{
    ngx_model_main_t    *m;
    ngx_pool_cleanup_t  *cln;

    for (cln = mr->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_model_main_cleanup) {
            return cln->data;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(mr->pool, sizeof(ngx_model_main_t));
    if (cln == NULL) {
        return NULL;
    }

    m = cln->data;
    ngx_queue_init(&m->calls);

    cln->handler = ngx_model_main_cleanup;

    return m;
}


/*
 * The main request is freed with calls left (it was terminated, or let go
 * while a cancelled call ran): nginx has ended their subrequests already.
 */

static void
ngx_model_main_cleanup(void *data)
{
    ngx_model_main_t  *m = data;

    ngx_queue_t       *q;
    ngx_model_call_t  *call;

    while (!ngx_queue_empty(&m->calls)) {
        q = ngx_queue_head(&m->calls);
        ngx_queue_remove(q);

        call = ngx_queue_data(q, ngx_model_call_t, queue);
        call->ended = 1;

        ngx_model_events_off(call);

        call->pool->log = ngx_cycle->log;
        ngx_destroy_pool(call->pool);
    }
}


/* capture filters: the answer of a call's subrequest stops here */


static ngx_model_call_t *
ngx_model_call_of(ngx_http_request_t *r)
{
    if (r == r->main
        || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_model_post_subrequest)
    {
        return NULL;
    }

    return r->post_subrequest->data;
}


static ngx_int_t
ngx_model_header_filter(ngx_http_request_t *r)
{
    ngx_model_call_t  *call;

    call = ngx_model_call_of(r);
    if (call == NULL) {
        return ngx_model_next_header_filter(r);
    }

    /* what is below in the chain would send it to the client */
    r->header_sent = 1;

    call->header = 1;
    call->status = r->headers_out.status;
    call->retry_after = ngx_model_retry_after(r);
    call->stream = ngx_model_is_stream(r);

    return NGX_OK;
}


static ngx_uint_t
ngx_model_is_stream(ngx_http_request_t *r)
{
    ngx_str_t  *type;

    if (r->headers_out.status < 200 || r->headers_out.status > 299) {
        return 0;
    }

    type = &r->headers_out.content_type;

    if (type->len == 0) {
        return 1;
    }

    return type->len >= sizeof("text/event-stream") - 1
           && ngx_strncasecmp(type->data, (u_char *) "text/event-stream",
                              sizeof("text/event-stream") - 1)
              == 0;
}


static ngx_int_t
ngx_model_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t         *b;
    ngx_chain_t       *cl;
    ngx_model_call_t  *call;

    call = ngx_model_call_of(r);
    if (call == NULL) {
        return ngx_model_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            ngx_model_feed(call, b->pos, b->last - b->pos);
            b->pos = b->last;

        } else if (ngx_buf_size(b) && !call->failed) {
            (void) ngx_model_fail(call, "the answer was buffered to a file: "
                                  "set proxy_buffering off");
        }

        if (b->in_file) {
            b->file_pos = b->file_last;
        }
    }

    /* never NGX_ERROR: nginx would take it for the client connection's */

    return NGX_OK;
}


static time_t
ngx_model_retry_after(ngx_http_request_t *r)
{
    time_t            t;
    ngx_table_elt_t  *h;

    h = ngx_http_headers_find(&r->headers_out.headers, "Retry-After",
                              sizeof("Retry-After") - 1);
    if (h == NULL) {
        return 0;
    }

    /* seconds, or an HTTP date */

    t = ngx_atotm(h->value.data, h->value.len);
    if (t != NGX_ERROR) {
        return t;
    }

    t = ngx_parse_http_time(h->value.data, h->value.len);
    if (t != NGX_ERROR && t > ngx_time()) {
        return t - ngx_time();
    }

    return 0;
}


static void
ngx_model_feed(ngx_model_call_t *call, u_char *data, size_t len)
{
    ngx_int_t  rc;

    if (len == 0 || call->failed || call->done_seen) {
        return;
    }

    if (!call->stream) {
        ngx_model_keep(call, data, len);
        return;
    }

    rc = ngx_sse_feed(&call->sse, data, len);

    if (rc == NGX_ERROR && !call->failed) {
        (void) ngx_model_fail(call, "malformed event stream: %s",
                              call->sse.error);
    }
}


/* the start of an answer that is not a stream, for the error text */

static void
ngx_model_keep(ngx_model_call_t *call, u_char *data, size_t len)
{
    if (call->body.data == NULL) {
        call->body.data = ngx_pnalloc(call->pool, NGX_MODEL_MAX_BODY);
        if (call->body.data == NULL) {
            return;
        }
    }

    len = ngx_min(len, NGX_MODEL_MAX_BODY - call->body.len);

    ngx_memcpy(call->body.data + call->body.len, data, len);
    call->body.len += len;
}


static ngx_int_t
ngx_model_event(void *ctx, ngx_str_t *type, u_char *data, size_t len)
{
    ngx_model_call_t  *call = ctx;

    ngx_int_t      rc;
    json_t        *json;
    json_error_t   err;

    if (len == 0) {
        return NGX_OK;
    }

    if (len == sizeof("[DONE]") - 1
        && ngx_strncmp(data, "[DONE]", sizeof("[DONE]") - 1) == 0)
    {
        call->done_seen = 1;
        return NGX_DONE;
    }

    rc = ngx_model_fast(call, data, len);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    json = json_loadb((char *) data, len, 0, &err);

    if (json == NULL) {
        ngx_log_error(NGX_LOG_INFO, call->parent->connection->log, 0,
                      "model call: invalid JSON in the stream: %s", err.text);

        return ngx_model_fail(call, "malformed chunk: invalid JSON");
    }

    rc = ngx_model_chunk(call, json);

    json_decref(json);

    return rc;
}


/*
 * The common chunk read without a tree; NGX_DECLINED for what jansson is
 * to read (and to find errors in).
 */

static ngx_int_t
ngx_model_fast(ngx_model_call_t *call, u_char *data, size_t len)
{
    u_char             *buf, local[NGX_MODEL_CHUNK_BUF];
    ngx_model_chunk_t   chunk;

    if (len <= sizeof(local)) {
        buf = local;

    } else {
        /* rare: the pool's, until the call ends */
        buf = ngx_pnalloc(call->pool, len);
        if (buf == NULL) {
            return NGX_DECLINED;
        }
    }

    if (ngx_model_chunk_parse(data, len, buf, &chunk) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (chunk.has_content
        && ngx_model_content(call, chunk.content.data, chunk.content.len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (chunk.has_reason) {
        ngx_model_reason(call, chunk.reason.data, chunk.reason.len);
    }

    return NGX_OK;
}


/*
 * {"choices":[{"delta":{"content":"..."},"finish_reason":null}]}, or an
 * {"error":{...}} sent in the stream.  A chunk without choices (usage) is
 * let through.
 */

static ngx_int_t
ngx_model_chunk(ngx_model_call_t *call, json_t *json)
{
    u_char   msg[NGX_MODEL_MAX_MESSAGE];
    size_t   len;
    json_t  *error, *choices, *choice, *content, *reason;

    if (!json_is_object(json)) {
        return ngx_model_fail(call, "malformed chunk: not an object");
    }

    error = json_object_get(json, "error");

    if (error && !json_is_null(error)) {
        content = json_object_get(error, "message");

        if (!json_is_string(content)) {
            return ngx_model_fail(call, "the model API sent an error");
        }

        len = ngx_model_clean(msg, (u_char *) json_string_value(content),
                              json_string_length(content), sizeof(msg));

        return ngx_model_fail(call, "the model API sent an error: %*s",
                              len, msg);
    }

    choices = json_object_get(json, "choices");

    if (choices == NULL) {
        return NGX_OK;
    }

    if (!json_is_array(choices)) {
        return ngx_model_fail(call, "malformed chunk: choices");
    }

    if (json_array_size(choices) == 0) {
        return NGX_OK;
    }

    choice = json_array_get(choices, 0);

    if (!json_is_object(choice)) {
        return ngx_model_fail(call, "malformed chunk: choices");
    }

    content = json_object_get(json_object_get(choice, "delta"), "content");

    if (content && !json_is_null(content)) {

        if (!json_is_string(content)) {
            return ngx_model_fail(call, "malformed chunk: content");
        }

        if (ngx_model_content(call, (u_char *) json_string_value(content),
                              json_string_length(content))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    reason = json_object_get(choice, "finish_reason");

    if (json_is_string(reason)) {
        ngx_model_reason(call, (u_char *) json_string_value(reason),
                         json_string_length(reason));
    }

    return NGX_OK;
}


static void
ngx_model_reason(ngx_model_call_t *call, u_char *data, size_t len)
{
    call->finish_reason.len = ngx_min(len, NGX_MODEL_MAX_REASON);
    call->finish_reason.data = call->reason;

    ngx_memcpy(call->reason, data, call->finish_reason.len);
}


/*
 * Appends to the content; a character split between two pieces waits for
 * the rest before it is handed over.
 */

static ngx_int_t
ngx_model_content(ngx_model_call_t *call, u_char *data, size_t len)
{
    size_t   need, size;
    u_char  *p;

    /* the first delta is often "content":"", before any buffer exists */
    if (len == 0) {
        return NGX_OK;
    }

    need = call->content.len + len;

    if (call->max_content && need > call->max_content) {
        return ngx_model_fail(call, "the answer is longer than %uz bytes",
                              call->max_content);
    }

    if (need > call->content_size) {
        size = ngx_max(ngx_max(call->content_size * 2, NGX_MODEL_MIN_CONTENT),
                       need);

        p = ngx_pnalloc(call->pool, size);
        if (p == NULL) {
            return ngx_model_fail(call, "no memory");
        }

        if (call->content.len) {
            ngx_memcpy(p, call->content.data, call->content.len);
        }

        if (call->content.data) {
            ngx_pfree(call->pool, call->content.data);
        }

        call->content.data = p;
        call->content_size = size;
    }

    ngx_memcpy(call->content.data + call->content.len, data, len);
    call->content.len = need;

    if (!call->starting) {
        ngx_model_emit(call);
    }

    return NGX_OK;
}


/* hands over what ends on a character boundary */

static void
ngx_model_emit(ngx_model_call_t *call)
{
    u_char  *p;
    size_t   whole;

    whole = ngx_model_utf8_whole(call->content.data + call->emitted,
                                 call->content.len - call->emitted);
    if (whole == 0) {
        return;
    }

    p = call->content.data + call->emitted;
    call->emitted += whole;

    if (!call->cancelled) {
        call->delta(call->data, p, whole);
    }
}


/* helpers */


/* the first failure is the call's error; the answer is not read further */

static ngx_int_t
ngx_model_fail(ngx_model_call_t *call, const char *fmt, ...)
{
    va_list  args;

    if (!call->failed) {
        call->failed = 1;

        va_start(args, fmt);
        ngx_model_verror(call, fmt, args);
        va_end(args);
    }

    ngx_model_stop_soon(call);

    return NGX_ERROR;
}


static void
ngx_model_error(ngx_model_call_t *call, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    ngx_model_verror(call, fmt, args);
    va_end(args);
}


static void
ngx_model_verror(ngx_model_call_t *call, const char *fmt, va_list args)
{
    u_char  *p;

    p = ngx_pnalloc(call->pool, NGX_MODEL_MAX_ERROR);

    if (p == NULL) {
        ngx_str_set(&call->error, "the model call failed");
        return;
    }

    call->error.data = p;
    call->error.len = ngx_vslprintf(p, p + NGX_MODEL_MAX_ERROR, fmt, args)
                      - p;
}


static void
ngx_model_stop_soon(ngx_model_call_t *call)
{
    call->stop = 1;

    if (!call->finished) {
        ngx_post_event(&call->event, &ngx_posted_events);
    }
}


/* the length of the part of p that does not end inside a character */

static size_t
ngx_model_utf8_whole(u_char *p, size_t len)
{
    u_char  c;
    size_t  n, need;

    for (n = 1; n <= 4 && n <= len; n++) {
        c = p[len - n];

        if ((c & 0xc0) == 0x80) {
            continue;
        }

        /* c starts the last character */

        need = (c >= 0xf0) ? 4 : (c >= 0xe0) ? 3 : (c >= 0xc0) ? 2 : 1;

        return (n < need) ? len - n : len;
    }

    return len;
}


/*
 * A one-line, valid UTF-8 copy of at most max bytes of text from the API:
 * control characters become spaces and invalid bytes '?'.
 */

static size_t
ngx_model_clean(u_char *dst, u_char *src, size_t len, size_t max)
{
    u_char    *p, *last, *start, *d;
    uint32_t   ch;

    p = src;
    last = src + len;
    d = dst;

    while (p < last) {
        start = p;

        if (*p < 0x80) {
            ch = *p++;

        } else {
            ch = ngx_utf8_decode(&p, last - p);

            if (ch > 0x10ffff) {
                p = start + 1;
                ch = '?';
            }
        }

        if ((size_t) (p - start) > (size_t) (dst + max - d)) {
            break;
        }

        if (ch < 0x80) {
            *d++ = (ch < 0x20 || ch == 0x7f) ? ' ' : (u_char) ch;

        } else {
            d = ngx_cpymem(d, start, p - start);
        }
    }

    /* trailing spaces, such as the newline most bodies end with */

    while (d > dst && d[-1] == ' ') {
        d--;
    }

    return d - dst;
}
