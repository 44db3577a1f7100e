/*
 * WebSocket (RFC 6455) server connections: see ngx_http_ws.h.
 *
 * Lifetime: the request outlives ngx_http_ws_release(), so that the owner
 * may keep its state in r->pool.  The count taken in accept is given back
 * after release; if nginx terminates the request meanwhile (a worker's
 * shutdown timeout, an error elsewhere), r->main->blocked holds it.  The
 * object is freed by a cleanup of r->pool, which stops its timers first.
 * Handlers count their nesting in ws->depth: the owner is called, and the
 * request finalized, only by the outermost one, from the event loop.
 *
 * Memory: an idle connection holds only the object, an allocation of its
 * exact size.  Frames are read into a stack buffer and parsed byte by
 * byte, so no read buffer outlives an event; a control frame's payload
 * and a message buffer exist while they are being received, and output
 * while the client has not taken it.  The 101's buffers are given back
 * once it is out.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>
#include <ngx_sha1.h>

#include "ngx_http_ws.h"
#include "ngx_http_headers.h"


#define NGX_HTTP_WS_GUID          "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#define NGX_HTTP_WS_CONTINUATION  0x0
#define NGX_HTTP_WS_CLOSE         0x8
#define NGX_HTTP_WS_PING          0x9
#define NGX_HTTP_WS_PONG          0xa

#define NGX_HTTP_WS_UPGRADE_REQUIRED  426

#define NGX_HTTP_WS_OPEN          0
#define NGX_HTTP_WS_CLOSING       1     /* CLOSE sent */
#define NGX_HTTP_WS_DONE          2     /* waiting for the owner's release */

/* c->buffered: frames queued (a bit unused by nginx's HTTP filters) */
#define NGX_HTTP_WS_BUFFERED      0x80

/* one recv() into a stack buffer: everything read is parsed at once */
#define NGX_HTTP_WS_READ_SIZE     4096

/* bytes read per event before the other connections get their turn */
#define NGX_HTTP_WS_READ_LIMIT    65536

/*
 * text frames queued within one event go out together, at its end (one
 * write for the deltas of one upstream read), while they stay under this
 */
#define NGX_HTTP_WS_BATCH_SIZE    8192

/* the room a frame's buffer is made with, for the frames after it */
#define NGX_HTTP_WS_FRAME_ROOM    2048

/* the first buffer of a message received in pieces */
#define NGX_HTTP_WS_MESSAGE_MIN   1024

/* the 101's buffers, given back once it is out */
#define NGX_HTTP_WS_SCRATCH_SIZE  1024

/* a shutting down worker waits this long at most for CLOSE replies */
#define NGX_HTTP_WS_EXIT_GRACE    1000


typedef enum {
    sw_head = 0,
    sw_length,
    sw_extended,
    sw_mask,
    sw_payload
} ngx_http_ws_parse_e;


typedef struct {
    u_char                      need;    /* continuation bytes to come */
    u_char                      lo;      /* bounds of the next one */
    u_char                      hi;
} ngx_http_ws_utf8_t;


/*
 * An idle connection keeps this for its life: one event does the timers
 * (ping and idle, the send and close deadlines) and the posted turns.
 */

struct ngx_http_ws_s {
    ngx_http_request_t         *request;     /* its connection's too */
    ngx_event_handler_pt        read_handler;    /* nginx's, while idle */

    ngx_http_ws_conf_t         *conf;
    ngx_http_ws_message_pt      on_message;
    ngx_http_ws_closed_pt       on_closed;
    ngx_http_ws_drained_pt      on_drained;
    void                       *data;

    ngx_event_t                 event;
    ngx_msec_t                  last_recv;
    ngx_msec_t                  last_ping;
    ngx_msec_t                  send_by;     /* the send deadline, if due */

    ngx_chain_t                *out;
    ngx_chain_t               **last_out;
    size_t                      out_size;    /* of the frames queued */

    uint64_t                    frame_left;  /* payload bytes to come */

    u_char                     *message;
    size_t                      message_len;
    size_t                      message_size;

    ngx_http_ws_utf8_t          utf8;
    u_char                      mask[4];
    u_char                      mask_pos;
    u_char                      parse;
    u_char                      need;        /* length or mask bytes */
    u_char                      opcode;      /* of the frame */
    u_char                      message_opcode;  /* 0: none under way */
    u_char                      control_len;
    u_char                      depth;       /* handlers nested */
    uint16_t                    code;        /* for on_closed */
    u_char                     *control;     /* a control frame's payload,
                                                while it is received */

    unsigned                    state:2;
    unsigned                    fin:1;
    unsigned                    skip:1;      /* data discarded: closing */
    unsigned                    close_sent:1;
    unsigned                    close_recv:1;
    unsigned                    fail:1;      /* close without the reply */
    unsigned                    going_away:1;
    unsigned                    notified:1;
    unsigned                    released:1;
    unsigned                    finalized:1;
    unsigned                    terminated:1;    /* by nginx */
    unsigned                    blocked:1;       /* r->main->blocked held */
    unsigned                    hung_up:1;
    unsigned                    deferred:1;      /* frames wait for c->write */
    unsigned                    send_due:1;      /* ws->send_by is set */
};


static ngx_http_ws_t *ngx_http_ws_create(ngx_http_request_t *r,
    ngx_http_ws_conf_t *conf);
static void ngx_http_ws_start(ngx_http_ws_t *ws);
static ngx_table_elt_t *ngx_http_ws_header(ngx_http_request_t *r,
    const char *name, ngx_uint_t *n);
static ngx_uint_t ngx_http_ws_has_token(ngx_http_request_t *r,
    const char *name, const char *token);
static ngx_uint_t ngx_http_ws_token(ngx_str_t *value, const char *token);
static ngx_int_t ngx_http_ws_key(ngx_http_request_t *r, ngx_str_t *key);
static ngx_int_t ngx_http_ws_send_101(ngx_http_request_t *r, ngx_str_t *key);
static ngx_int_t ngx_http_ws_scratch_done(ngx_http_request_t *r,
    ngx_pool_t *scratch, ngx_http_cleanup_t *cln);
static ngx_uint_t ngx_http_ws_in_pool(ngx_pool_t *pool, void *p);
static void ngx_http_ws_scratch_cleanup(void *data);
static void ngx_http_ws_free_header_buffers(ngx_http_request_t *r);
static u_char *ngx_http_ws_compact_header(ngx_http_request_t *r,
    size_t extra);
static void ngx_http_ws_shrink_headers(ngx_http_request_t *r, u_char *room);
static ngx_pool_large_t *ngx_http_ws_list_large(ngx_pool_t *pool,
    ngx_list_t *list);
static ngx_table_elt_t *ngx_http_ws_shrink_list(ngx_pool_t *pool,
    ngx_list_t *list, void *dst);
static void ngx_http_ws_rebase_array(ngx_array_t *a, u_char *from,
    u_char *to, u_char *copy);

static ngx_http_ws_t *ngx_http_ws_get(ngx_http_request_t *r);
static void ngx_http_ws_read_handler(ngx_http_request_t *r);
static void ngx_http_ws_write_handler(ngx_http_request_t *r);
static void ngx_http_ws_idle_handler(ngx_event_t *rev);
static void ngx_http_ws_event_handler(ngx_event_t *ev);
static void ngx_http_ws_keep(ngx_http_ws_t *ws);
static void ngx_http_ws_keep_timer(ngx_http_ws_t *ws);
static ngx_msec_t ngx_http_ws_until(ngx_msec_t at, ngx_msec_t now);

static void ngx_http_ws_read(ngx_http_ws_t *ws);
static void ngx_http_ws_parse(ngx_http_ws_t *ws, u_char *p, u_char *last);
static void ngx_http_ws_frame_head(ngx_http_ws_t *ws, u_char ch);
static void ngx_http_ws_frame_length(ngx_http_ws_t *ws, u_char ch);
static void ngx_http_ws_frame_sized(ngx_http_ws_t *ws);
static void ngx_http_ws_frame_begin(ngx_http_ws_t *ws);
static void ngx_http_ws_payload(ngx_http_ws_t *ws, u_char *p, size_t n);
static void ngx_http_ws_frame_end(ngx_http_ws_t *ws);
static void ngx_http_ws_control_frame(ngx_http_ws_t *ws);
static ngx_int_t ngx_http_ws_reserve(ngx_http_ws_t *ws, size_t n);
static void ngx_http_ws_message(ngx_http_ws_t *ws);
static void ngx_http_ws_close_frame(ngx_http_ws_t *ws);
static ngx_uint_t ngx_http_ws_valid_code(ngx_uint_t code);
static ngx_int_t ngx_http_ws_utf8(ngx_http_ws_utf8_t *u, u_char *p,
    size_t n);
static size_t ngx_http_ws_utf8_cut(u_char *p, size_t len, size_t max);

static ngx_int_t ngx_http_ws_queue(ngx_http_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
static ngx_int_t ngx_http_ws_push(ngx_http_ws_t *ws);
static ngx_int_t ngx_http_ws_flush(ngx_http_ws_t *ws);
static ngx_uint_t ngx_http_ws_pending(ngx_http_ws_t *ws);
static void ngx_http_ws_free_sent(ngx_http_ws_t *ws, ngx_chain_t *upto);

static void ngx_http_ws_send_close(ngx_http_ws_t *ws, ngx_uint_t code,
    u_char *reason, size_t len);
static ngx_msec_t ngx_http_ws_close_delay(ngx_http_ws_t *ws);
static void ngx_http_ws_fail(ngx_http_ws_t *ws, ngx_uint_t code,
    const char *reason);
static void ngx_http_ws_drop(ngx_http_ws_t *ws, ngx_uint_t code);
static ngx_int_t ngx_http_ws_last_word(ngx_http_ws_t *ws, ngx_uint_t code);
static void ngx_http_ws_check_done(ngx_http_ws_t *ws);
static void ngx_http_ws_done(ngx_http_ws_t *ws);

static void ngx_http_ws_enter(ngx_http_ws_t *ws);
static void ngx_http_ws_leave(ngx_http_ws_t *ws);
static void ngx_http_ws_hang_up(ngx_http_ws_t *ws);
static void ngx_http_ws_drain(ngx_http_request_t *r);
static void ngx_http_ws_schedule(ngx_http_ws_t *ws);
static void ngx_http_ws_set_idle(ngx_http_ws_t *ws, ngx_uint_t idle);
static void ngx_http_ws_stop(ngx_http_ws_t *ws);
static void ngx_http_ws_free_message(ngx_http_ws_t *ws);
static void ngx_http_ws_free_control(ngx_http_ws_t *ws);
static void ngx_http_ws_finalize(ngx_http_ws_t *ws);
static void ngx_http_ws_cleanup(void *data);
static void ngx_http_ws_pool_cleanup(void *data);


/*
 * A module only for its slot in r->ctx: an upgraded request's event
 * handlers find their connection's state there.
 */

static ngx_http_module_t  ngx_http_ws_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */
    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */
    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */
    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_ws_module = {
    NGX_MODULE_V1,
    &ngx_http_ws_module_ctx,               /* module context */
    NULL,                                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* handshake */

ngx_int_t
ngx_http_ws_check(ngx_http_request_t *r)
{
    ngx_str_t  key, v;

    if (r != r->main) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method != NGX_HTTP_GET) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (r->http_version != NGX_HTTP_VERSION_11) {
        return NGX_HTTP_BAD_REQUEST;
    }

    /* the connection is taken over: a body would be read as frames */

    if (r->headers_in.content_length_n > 0
        || r->headers_in.transfer_encoding != NULL)
    {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!ngx_http_ws_has_token(r, "Upgrade", "websocket")
        || !ngx_http_ws_has_token(r, "Connection", "upgrade"))
    {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!ngx_http_ws_has_token(r, "Sec-WebSocket-Version", "13")) {
        ngx_str_set(&v, "13");

        if (ngx_http_headers_add(r, "Sec-WebSocket-Version", &v)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* nginx knows no reason phrase for 426 */
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");

        return NGX_HTTP_WS_UPGRADE_REQUIRED;
    }

    if (ngx_http_ws_key(r, &key) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "client sent no valid Sec-WebSocket-Key");

        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


ngx_http_ws_t *
ngx_http_ws_accept(ngx_http_request_t *r, ngx_http_ws_conf_t *conf,
    ngx_http_ws_message_pt on_message, ngx_http_ws_closed_pt on_closed,
    void *data)
{
    ngx_str_t                  key;
    ngx_http_ws_t             *ws;
    ngx_connection_t          *c;
    ngx_http_cleanup_t        *cln;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;

    if (r != r->main || ngx_http_ws_key(r, &key) != NGX_OK) {
        return NULL;
    }

    ws = ngx_http_ws_create(r, conf);
    if (ws == NULL) {
        return NULL;
    }

    ws->on_message = on_message;
    ws->on_closed = on_closed;
    ws->data = data;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NULL;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if ((clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK)
        || ngx_http_ws_send_101(r, &key) != NGX_OK)
    {
        /* the header may be out: the owner's 500 must only close */
        c->error = 1;
        return NULL;
    }

    cln->handler = ngx_http_ws_cleanup;
    cln->data = ws;

    ngx_http_set_ctx(r, ws, ngx_http_ws_module);

    /* held until ngx_http_ws_finalize(): the content handler's NGX_DONE */
    r->main->count++;

    r->read_event_handler = ngx_http_ws_read_handler;
    r->write_event_handler = ngx_http_ws_write_handler;

    ngx_http_ws_start(ws);

    return ws;
}


static ngx_http_ws_t *
ngx_http_ws_create(ngx_http_request_t *r, ngx_http_ws_conf_t *conf)
{
    ngx_http_ws_t       *ws;
    ngx_connection_t    *c;
    ngx_pool_cleanup_t  *cln;

    c = r->connection;

    /*
     * Not from r->pool: its blocks are full by now, and a block more for
     * the object would leave most of it unused for the connection's life
     */
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    ws = ngx_calloc(sizeof(ngx_http_ws_t), c->log);
    if (ws == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_ws_pool_cleanup;
    cln->data = ws;

    ws->request = r;
    ws->conf = conf;
    ws->last_out = &ws->out;
    ws->last_recv = ngx_current_msec;
    ws->last_ping = ngx_current_msec;

    ws->event.handler = ngx_http_ws_event_handler;
    ws->event.data = ws;
    ws->event.log = c->log;
    ws->event.cancelable = 1;

    return ws;
}


/* The connection is ours from here on: 101 is out (or on its way). */

static void
ngx_http_ws_start(ngx_http_ws_t *ws)
{
    u_char              *room;
    size_t               extra;
    ngx_event_t         *rev;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ws->request;
    c = ws->request->connection;
    rev = c->read;

    c->log->action = "processing websocket";

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    ngx_http_ws_free_header_buffers(r);

    /* the request's header entries go behind its bytes' copy */
    extra = 0;

    if (ngx_http_ws_list_large(r->pool, &r->headers_in.headers) != NULL) {
        extra = r->headers_in.headers.part.nelts
                * r->headers_in.headers.size;
    }

    room = ngx_http_ws_compact_header(r, extra);
    ngx_http_ws_shrink_headers(r, room);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0, "websocket accepted");

    ngx_http_ws_keep_timer(ws);

    /*
     * Frames may have come right behind the handshake, in r->header_in or
     * in the socket; the posted ws->event then marks the connection idle
     * (or closes it if the worker is shutting down), out of the owner's
     * content handler.
     */

    if (r->header_in->pos < r->header_in->last || rev->ready) {
        ngx_post_event(rev, &ngx_posted_events);

    } else if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_ws_drop(ws, NGX_HTTP_WS_ABNORMAL);
        return;
    }

    if (r->out != NULL && ngx_http_ws_flush(ws) == NGX_ERROR) {
        ngx_http_ws_drop(ws, NGX_HTTP_WS_ABNORMAL);
        return;
    }

    ngx_post_event(&ws->event, &ngx_posted_events);
}


static ngx_table_elt_t *
ngx_http_ws_header(ngx_http_request_t *r, const char *name, ngx_uint_t *n)
{
    size_t                    len;
    ngx_table_elt_t          *h, *found;
    ngx_http_headers_iter_t   it;

    len = ngx_strlen(name);
    found = NULL;
    *n = 0;

    ngx_http_headers_iter(&it, &r->headers_in.headers);

    while ((h = ngx_http_headers_next(&it, name, len)) != NULL) {
        if (found == NULL) {
            found = h;
        }

        (*n)++;
    }

    return found;
}


/* Any header "name" (they may repeat) lists "token". */

static ngx_uint_t
ngx_http_ws_has_token(ngx_http_request_t *r, const char *name,
    const char *token)
{
    size_t                    len;
    ngx_table_elt_t          *h;
    ngx_http_headers_iter_t   it;

    len = ngx_strlen(name);

    ngx_http_headers_iter(&it, &r->headers_in.headers);

    while ((h = ngx_http_headers_next(&it, name, len)) != NULL) {
        if (ngx_http_ws_token(&h->value, token)) {
            return 1;
        }
    }

    return 0;
}


/* A comma separated list holds token, in any case ("keep-alive, Upgrade"). */

static ngx_uint_t
ngx_http_ws_token(ngx_str_t *value, const char *token)
{
    size_t   len;
    u_char  *p, *last, *start, *end;

    len = ngx_strlen(token);

    p = value->data;
    last = p + value->len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        start = p;

        while (p < last && *p != ',') {
            p++;
        }

        end = p;

        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        if ((size_t) (end - start) == len
            && ngx_strncasecmp(start, (u_char *) token, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* One Sec-WebSocket-Key, 16 bytes in base64: 22 characters and "==". */

static ngx_int_t
ngx_http_ws_key(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char            buf[24];
    ngx_str_t         decoded;
    ngx_uint_t        n;
    ngx_table_elt_t  *h;

    h = ngx_http_ws_header(r, "Sec-WebSocket-Key", &n);

    if (h == NULL || n != 1) {
        return NGX_DECLINED;
    }

    *key = h->value;

    while (key->len && (key->data[0] == ' ' || key->data[0] == '\t')) {
        key->data++;
        key->len--;
    }

    while (key->len
           && (key->data[key->len - 1] == ' '
               || key->data[key->len - 1] == '\t'))
    {
        key->len--;
    }

    if (key->len != 24 || key->data[22] != '=' || key->data[23] != '=') {
        return NGX_DECLINED;
    }

    decoded.data = buf;

    if (ngx_decode_base64(&decoded, key) != NGX_OK || decoded.len != 16) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ws_send_101(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char               hash[20];
    ngx_int_t            rc;
    ngx_str_t            src, accept, upgrade;
    ngx_sha1_t           sha1;
    ngx_pool_t          *pool, *scratch;
    ngx_http_cleanup_t  *cln;

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, key->data, key->len);
    ngx_sha1_update(&sha1, NGX_HTTP_WS_GUID, sizeof(NGX_HTTP_WS_GUID) - 1);
    ngx_sha1_final(hash, &sha1);

    src.data = hash;
    src.len = sizeof(hash);

    accept.data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(src.len));
    if (accept.data == NULL) {
        return NGX_ERROR;
    }

    ngx_encode_base64(&accept, &src);

    ngx_str_set(&upgrade, "websocket");

    if (ngx_http_headers_add(r, "Upgrade", &upgrade) != NGX_OK
        || ngx_http_headers_add(r, "Sec-WebSocket-Accept", &accept)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the header filter adds "Connection: upgrade" for 101 */

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->keepalive = 0;

    scratch = ngx_create_pool(NGX_HTTP_WS_SCRATCH_SIZE, r->connection->log);

    pool = r->pool;
    cln = r->cleanup;

    if (scratch != NULL) {
        r->pool = scratch;
    }

    rc = ngx_http_send_header(r);

    /*
     * The header is held back as shorter than postpone_output: it is sent
     * now, as ngx_http_ws_flush() sends its rest, without a flush buffer
     * through the body filters (the copy filter would keep a context)
     */
    if (rc != NGX_ERROR && rc <= NGX_OK && r->out != NULL
        && ngx_http_write_filter(r, NULL) == NGX_ERROR)
    {
        rc = NGX_ERROR;
    }

    r->pool = pool;

    if (scratch != NULL && ngx_http_ws_scratch_done(r, scratch, cln)
                           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The 101's header buffer, its chain links and the flush buffer are dead
 * once the response is out, but as small allocations of r->pool they would
 * stay for the connection's life: they come from a scratch pool lent as
 * r->pool for the send (as ngx_model_client.c lends a call's pool), which
 * is destroyed at once.  If the send may have left anything pointing into
 * it (the rest of the response, a cleanup, a module's context, a header
 * added by a filter), it lives as long as the request instead.
 */

static ngx_int_t
ngx_http_ws_scratch_done(ngx_http_request_t *r, ngx_pool_t *scratch,
    ngx_http_cleanup_t *cln)
{
    ngx_uint_t           i, keep;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h;
    ngx_pool_cleanup_t  *pcln;

    keep = (r->out != NULL || r->cleanup != cln || scratch->cleanup != NULL);

    for (i = 0; !keep && i < ngx_http_max_module; i++) {
        keep = ngx_http_ws_in_pool(scratch, r->ctx[i]);
        
    }

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; !keep; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;

            if (part->nelts == 0) {
                continue;
            }
        }

        keep = ngx_http_ws_in_pool(scratch, h[i].key.data)
               || ngx_http_ws_in_pool(scratch, h[i].value.data)
               || ngx_http_ws_in_pool(scratch, h[i].lowcase_key);
    }

    keep = keep
           || ngx_http_ws_in_pool(scratch,
                                  r->headers_out.content_type.data)
           || ngx_http_ws_in_pool(scratch, r->headers_out.charset.data);

    if (!keep) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "websocket 101 buffers given back");

        ngx_destroy_pool(scratch);
        return NGX_OK;
    }

    /* a filter's doing, once per connection: worth knowing of */
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "websocket 101 scratch pool kept with the request");

    pcln = ngx_pool_cleanup_add(r->pool, 0);
    if (pcln == NULL) {
        /* whatever points into it must stay valid: left to leak */
        return NGX_ERROR;
    }

    pcln->handler = ngx_http_ws_scratch_cleanup;
    pcln->data = scratch;

    return NGX_OK;
}


/* p lies in one of the pool's blocks, or is one of its large allocations */

static ngx_uint_t
ngx_http_ws_in_pool(ngx_pool_t *pool, void *p)
{
    ngx_pool_t        *b;
    ngx_pool_large_t  *l;

    if (p == NULL) {
        return 0;
    }

    for (b = pool; b; b = b->d.next) {
        if ((u_char *) p >= (u_char *) b && (u_char *) p < b->d.end) {
            return 1;
        }
    }

    for (l = pool->large; l; l = l->next) {
        if (l->alloc == p) {
            return 1;
        }
    }

    return 0;
}


static void
ngx_http_ws_scratch_cleanup(void *data)
{
    ngx_destroy_pool(data);
}


/*
 * Large header buffers left free by an earlier request on the connection
 * are freed as nginx does for a keepalive connection.  The one in use
 * holds the request line and headers that r still points to (and the access
 * log reads at the end): ngx_http_ws_compact_header() moves them.
 */

static void
ngx_http_ws_free_header_buffers(ngx_http_request_t *r)
{
    ngx_chain_t            *cl;
    ngx_http_connection_t  *hc;

    hc = r->http_connection;

    for (cl = hc->free; cl; cl = cl->next) {
        ngx_pfree(r->connection->pool, cl->buf->start);
    }

    hc->free = NULL;
}


/*
 * The connection's 1 KiB header buffer is held for the connection's life
 * by the request, which points into it.  The request's bytes (and any
 * frames right behind them) are copied to an allocation of their size,
 * the request's pointers moved to the copy, and the buffer freed, as
 * nginx frees it on a keepalive connection; the copy takes the buffer's
 * place in the connection's pool (freed with it, after the request).
 * Nothing of it is in the request's pool: what a client sends varies, and
 * the blocks of that pool are kept for the connection's life.  Only when
 * the whole request is in that buffer (no large header buffers).  Returns
 * extra bytes of room behind the copy (one malloc less for the header
 * entries' copy), or NULL.
 */

#define ngx_http_ws_rebase(p)                                                 \
    if ((u_char *) (p) >= from && (u_char *) (p) <= to) {                     \
        (p) = (void *) (copy + ((u_char *) (p) - from));                      \
    }

static u_char *
ngx_http_ws_compact_header(ngx_http_request_t *r, size_t extra)
{
    u_char                 *from, *to, *copy, *start;
    size_t                  size;
    ngx_buf_t              *b;
    ngx_uint_t              i;
    ngx_list_part_t        *part;
    ngx_table_elt_t        *h;
    ngx_pool_large_t       *l;
    ngx_connection_t       *c;
    ngx_http_connection_t  *hc;

    c = r->connection;
    hc = r->http_connection;
    b = c->buffer;

    if (b == NULL || r->header_in != b || hc->busy != NULL
        || r->request_start == NULL
        || r->request_start < b->start || r->request_start > b->last)
    {
        return NULL;
    }

    start = b->start;
    from = r->request_start;
    to = b->last;

    for (l = c->pool->large; l; l = l->next) {
        if (l->alloc == start) {
            break;
        }
    }

    if (l == NULL) {
        return NULL;
    }

    size = ngx_align(to - from + 1, NGX_ALIGNMENT);

    copy = ngx_alloc(size + extra, c->log);
    if (copy == NULL) {
        return NULL;
    }

    ngx_memcpy(copy, from, to - from);

    ngx_http_ws_rebase(r->request_line.data);
    ngx_http_ws_rebase(r->uri.data);
    ngx_http_ws_rebase(r->args.data);
    ngx_http_ws_rebase(r->exten.data);
    ngx_http_ws_rebase(r->unparsed_uri.data);
    ngx_http_ws_rebase(r->method_name.data);
    ngx_http_ws_rebase(r->http_protocol.data);
    ngx_http_ws_rebase(r->schema.data);
    ngx_http_ws_rebase(r->headers_in.server.data);
    ngx_http_ws_rebase(r->headers_in.user.data);
    ngx_http_ws_rebase(r->headers_in.passwd.data);
    ngx_http_ws_rebase(r->captures_data);
    ngx_http_ws_rebase(r->header_name_start);
    ngx_http_ws_rebase(r->header_name_end);
    ngx_http_ws_rebase(r->header_start);
    ngx_http_ws_rebase(r->header_end);
    ngx_http_ws_rebase(r->uri_start);
    ngx_http_ws_rebase(r->uri_end);
    ngx_http_ws_rebase(r->uri_ext);
    ngx_http_ws_rebase(r->args_start);
    ngx_http_ws_rebase(r->request_end);
    ngx_http_ws_rebase(r->method_end);
    ngx_http_ws_rebase(r->schema_start);
    ngx_http_ws_rebase(r->schema_end);
    ngx_http_ws_rebase(r->host_start);
    ngx_http_ws_rebase(r->host_end);
    ngx_http_ws_rebase(r->port_start);
    ngx_http_ws_rebase(r->port_end);

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        ngx_http_ws_rebase(h[i].key.data);
        ngx_http_ws_rebase(h[i].value.data);
        ngx_http_ws_rebase(h[i].lowcase_key);
    }

    /* frames that came behind the request are read from the copy */
    b->pos = copy + (b->pos - from);
    b->last = copy + (b->last - from);
    b->start = copy;
    b->end = b->last;

    ngx_http_ws_rebase(r->request_start);

    ngx_free(start);
    l->alloc = copy;

    return extra ? copy + size : NULL;
}


/*
 * The request's header lists (20 entries each, 1,120 bytes) are kept for
 * the connection's life: with a 1k request pool they are large
 * allocations, so each is replaced by a copy of the entries it holds (the
 * request's behind its bytes' copy, in room the caller gives; the
 * response's in its trailers' unused entries) and freed, and the pointers
 * into it (headers_in.host, the cookies...) moved to the copy.  Headers
 * added later go to a new part of the list.
 */

static void
ngx_http_ws_shrink_headers(ngx_http_request_t *r, u_char *room)
{
    u_char                  *from, *to, *copy;
    ngx_list_t              *tr;
    ngx_table_elt_t         *elts;
    ngx_http_headers_in_t   *in;
    ngx_http_headers_out_t  *out;

    in = &r->headers_in;
    from = in->headers.part.elts;
    to = from + in->headers.nalloc * in->headers.size;

    elts = ngx_http_ws_shrink_list(r->pool, &in->headers, room);

    if (elts != NULL) {
        copy = (u_char *) elts;

        ngx_http_ws_rebase(in->host);
        ngx_http_ws_rebase(in->connection);
        ngx_http_ws_rebase(in->if_modified_since);
        ngx_http_ws_rebase(in->if_unmodified_since);
        ngx_http_ws_rebase(in->if_match);
        ngx_http_ws_rebase(in->if_none_match);
        ngx_http_ws_rebase(in->user_agent);
        ngx_http_ws_rebase(in->referer);
        ngx_http_ws_rebase(in->content_length);
        ngx_http_ws_rebase(in->content_range);
        ngx_http_ws_rebase(in->content_type);
        ngx_http_ws_rebase(in->range);
        ngx_http_ws_rebase(in->if_range);
        ngx_http_ws_rebase(in->transfer_encoding);
        ngx_http_ws_rebase(in->te);
        ngx_http_ws_rebase(in->expect);
        ngx_http_ws_rebase(in->upgrade);
#if (NGX_HTTP_GZIP || NGX_HTTP_HEADERS)
        ngx_http_ws_rebase(in->accept_encoding);
        ngx_http_ws_rebase(in->via);
#endif
        ngx_http_ws_rebase(in->authorization);
        ngx_http_ws_rebase(in->keep_alive);
#if (NGX_HTTP_X_FORWARDED_FOR)
        ngx_http_ws_rebase_array(&in->x_forwarded_for, from, to, copy);
#endif
#if (NGX_HTTP_REALIP)
        ngx_http_ws_rebase(in->x_real_ip);
#endif
#if (NGX_HTTP_HEADERS)
        ngx_http_ws_rebase(in->accept);
        ngx_http_ws_rebase(in->accept_language);
#endif
#if (NGX_HTTP_DAV)
        ngx_http_ws_rebase(in->depth);
        ngx_http_ws_rebase(in->destination);
        ngx_http_ws_rebase(in->overwrite);
        ngx_http_ws_rebase(in->date);
#endif
        ngx_http_ws_rebase_array(&in->cookies, from, to, copy);
    }

    out = &r->headers_out;
    from = out->headers.part.elts;
    to = from + out->headers.nalloc * out->headers.size;

    /*
     * The response's few go to its trailers' entries, in a block of the
     * pool, which nothing uses after a 101: the trailers keep the rest
     */
    tr = &out->trailers;
    room = NULL;

    if (tr->part.next == NULL && tr->part.nelts == 0 && tr->part.elts
        && tr->size == out->headers.size
        && tr->nalloc > out->headers.part.nelts)
    {
        room = tr->part.elts;
    }

    elts = ngx_http_ws_shrink_list(r->pool, &out->headers, room);

    if (elts != NULL && (u_char *) elts == room) {
        tr->part.elts = room + out->headers.part.nelts * tr->size;
        tr->nalloc -= out->headers.part.nelts;
    }

    if (elts != NULL) {
        copy = (u_char *) elts;

        ngx_http_ws_rebase(out->server);
        ngx_http_ws_rebase(out->date);
        ngx_http_ws_rebase(out->content_length);
        ngx_http_ws_rebase(out->content_encoding);
        ngx_http_ws_rebase(out->location);
        ngx_http_ws_rebase(out->refresh);
        ngx_http_ws_rebase(out->last_modified);
        ngx_http_ws_rebase(out->content_range);
        ngx_http_ws_rebase(out->accept_ranges);
        ngx_http_ws_rebase(out->www_authenticate);
        ngx_http_ws_rebase(out->expires);
        ngx_http_ws_rebase(out->etag);
        ngx_http_ws_rebase_array(&out->cache_control, from, to, copy);
        ngx_http_ws_rebase_array(&out->link, from, to, copy);
    }
}


/*
 * Only a list of one part whose entries are a large allocation of the
 * pool: a small one cannot be given back.
 */

static ngx_pool_large_t *
ngx_http_ws_list_large(ngx_pool_t *pool, ngx_list_t *list)
{
    ngx_list_part_t   *part;
    ngx_pool_large_t  *l;

    part = &list->part;

    if (part->next != NULL || part->nelts == 0 || part->nelts >= list->nalloc
        || list->size != sizeof(ngx_table_elt_t))
    {
        return NULL;
    }

    for (l = pool->large; l; l = l->next) {
        if (l->alloc == part->elts) {
            return l;
        }
    }

    return NULL;
}


/*
 * The copy goes to dst, room for the entries the list holds that lives at
 * least as long as the pool; or it is a large allocation of their exact
 * size, in the old entries' place in the pool's list of them, so it takes
 * nothing from the pool's blocks.
 */

static ngx_table_elt_t *
ngx_http_ws_shrink_list(ngx_pool_t *pool, ngx_list_t *list, void *dst)
{
    void               *copy;
    ngx_list_part_t    *part;
    ngx_pool_large_t   *l;

    l = ngx_http_ws_list_large(pool, list);
    if (l == NULL) {
        return NULL;
    }

    part = &list->part;

    if (dst != NULL) {
        copy = dst;
        ngx_memcpy(copy, part->elts, part->nelts * list->size);

        ngx_free(part->elts);
        l->alloc = NULL;

    } else {
        copy = ngx_alloc(part->nelts * list->size, pool->log);
        if (copy == NULL) {
            return NULL;
        }

        ngx_memcpy(copy, part->elts, part->nelts * list->size);

        /* in the old entries' place in the pool's list: no entry more */
        ngx_free(part->elts);
        l->alloc = copy;
    }

    part->elts = copy;
    list->nalloc = part->nelts;

    return copy;
}


/* an array of pointers to a list's entries (the cookies, for one) */

static void
ngx_http_ws_rebase_array(ngx_array_t *a, u_char *from, u_char *to,
    u_char *copy)
{
    void        **p;
    ngx_uint_t    i;

    if (a->elts == NULL || a->size != sizeof(void *)) {
        return;
    }

    p = a->elts;

    for (i = 0; i < a->nelts; i++) {
        ngx_http_ws_rebase(p[i]);
    }
}


/* events */

static ngx_http_ws_t *
ngx_http_ws_get(ngx_http_request_t *r)
{
    return ngx_http_get_module_ctx(r->main, ngx_http_ws_module);
}


static void
ngx_http_ws_read_handler(ngx_http_request_t *r)
{
    ngx_http_ws_t  *ws;

    ws = ngx_http_ws_get(r);
    if (ws == NULL) {
        return;
    }

    ngx_http_ws_enter(ws);

    if (ws->state != NGX_HTTP_WS_DONE) {
        ngx_http_ws_read(ws);
    }

    ngx_http_ws_leave(ws);
}


static void
ngx_http_ws_write_handler(ngx_http_request_t *r)
{
    ngx_http_ws_t           *ws;
    ngx_connection_t        *c;
    ngx_http_ws_drained_pt   drained;

    ws = ngx_http_ws_get(r);
    if (ws == NULL) {
        return;
    }

    c = ws->request->connection;

    /*
     * the send deadline is ws->event's; a write timer here was left by
     * another module's code on this connection (an upstream's send_timeout)
     */
    c->write->timedout = 0;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_http_ws_enter(ws);

    if (ws->state != NGX_HTTP_WS_DONE && ws->deferred) {
        ws->deferred = 0;

        /* the output limit is checked once the batch was tried */
        if (ngx_http_ws_push(ws) == NGX_OK) {
            ngx_http_ws_check_done(ws);
        }

    } else if (ws->state != NGX_HTTP_WS_DONE) {

        if (ngx_http_ws_flush(ws) == NGX_ERROR) {
            ngx_http_ws_drop(ws, NGX_HTTP_WS_ABNORMAL);

        } else {
            ngx_http_ws_check_done(ws);
        }
    }

    if (ws->on_drained && ws->state == NGX_HTTP_WS_OPEN
        && !ngx_http_ws_pending(ws))
    {
        drained = ws->on_drained;
        ws->on_drained = NULL;
        drained(ws);
    }

    /*
     * After a subrequest, nginx wakes the request with this handler: read
     * events that came while the subrequest was c->data went to it.
     */

    /*
     * Not when a read is posted already: that is the read limit's turn
     * (a batch of frames posts this handler every turn).
     */

    if (ws->state != NGX_HTTP_WS_DONE
        && ((c->read->ready && !c->read->posted)
            || r->header_in->pos < r->header_in->last))
    {
        ngx_http_ws_read(ws);
    }

    ngx_http_ws_leave(ws);
}


/*
 * The read handler of an idle connection.  A shutting down worker sets
 * c->close on idle connections and calls this; nginx's request handler
 * would terminate the request, so c->close is taken back and the
 * connection closes with 1001 instead.  Everything else goes to nginx's
 * handler.
 */

static void
ngx_http_ws_idle_handler(ngx_event_t *rev)
{
    ngx_http_ws_t       *ws;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = rev->data;
    r = c->data;

    ws = ngx_http_ws_get(r);
    if (ws == NULL) {
        return;
    }

    if (c->close && !c->error) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "websocket closed by worker shutdown");

        c->close = 0;
        ws->going_away = 1;

        /* c->data may be a subrequest, which would not pass the event on */
        ngx_post_event(&ws->event, &ngx_posted_events);
    }

    ws->read_handler(rev);
}


/*
 * The timer: the send deadline, ping and idle (ngx_http_ws_keep() works
 * out which is due) while open, the close deadline while closing.  Also
 * posted to run ngx_http_ws_leave().
 */

static void
ngx_http_ws_event_handler(ngx_event_t *ev)
{
    ngx_http_ws_t     *ws;
    ngx_connection_t  *c;

    ws = ev->data;
    c = ws->request->connection;

    ngx_http_set_log_request(c->log, ws->request);

    ngx_http_ws_enter(ws);

    if (ev->timedout) {
        ev->timedout = 0;

        if (ws->state == NGX_HTTP_WS_OPEN
            && ws->send_due
            && (ngx_msec_int_t) (ngx_current_msec - ws->send_by) >= 0)
        {
            ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                          "client timed out reading websocket frames");
            c->timedout = 1;
            ngx_http_ws_drop(ws, NGX_HTTP_WS_ABNORMAL);

        } else if (ws->state == NGX_HTTP_WS_OPEN) {
            ngx_http_ws_keep(ws);

        } else if (ws->state == NGX_HTTP_WS_CLOSING) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "websocket close timed out");
            ngx_http_ws_done(ws);
        }
    }

    ngx_http_ws_leave(ws);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_ws_keep(ngx_http_ws_t *ws)
{
    ngx_msec_t  now;

    now = ngx_current_msec;

    if (ws->conf->idle_timeout
        && now - ws->last_recv >= ws->conf->idle_timeout)
    {
        ngx_log_error(NGX_LOG_INFO, ws->request->connection->log, 0,
                      "websocket client idle for %M ms",
                      now - ws->last_recv);

        ws->code = NGX_HTTP_WS_GOING_AWAY;
        ngx_http_ws_send_close(ws, NGX_HTTP_WS_GOING_AWAY, NULL, 0);
        return;
    }

    if (ws->conf->ping_interval
        && now - ws->last_ping >= ws->conf->ping_interval)
    {
        ws->last_ping = now;

        if (ngx_http_ws_queue(ws, NGX_HTTP_WS_PING, NULL, 0) != NGX_OK) {
            ngx_http_ws_drop(ws, NGX_HTTP_WS_INTERNAL_ERROR);
            return;
        }

        if (ngx_http_ws_push(ws) != NGX_OK) {
            return;
        }
    }

    ngx_http_ws_keep_timer(ws);
}


/*
 * One timer for all, while open: received frames only move ws->last_recv,
 * a write ws->send_by, and the timer works out what is due when it fires
 * (or fired early: the timer's lazy delay).  Cancelable, as an idle
 * connection's, unless a send deadline holds a shutting down worker.
 */

static void
ngx_http_ws_keep_timer(ngx_http_ws_t *ws)
{
    ngx_msec_t  now, t;

    /*
     * A deadline already passed (a write that stalls before the expired
     * timer ran) counts as due now: the timer comes at once, and
     * ngx_http_ws_keep() acts on it.
     */

    now = ngx_current_msec;
    t = NGX_TIMER_INFINITE;

    if (ws->conf->idle_timeout) {
        t = ngx_min(t, ngx_http_ws_until(ws->last_recv
                                         + ws->conf->idle_timeout, now));
    }

    if (ws->conf->ping_interval) {
        t = ngx_min(t, ngx_http_ws_until(ws->last_ping
                                         + ws->conf->ping_interval, now));
    }

    if (ws->send_due) {
        t = ngx_min(t, ngx_http_ws_until(ws->send_by, now));
    }

    ws->event.cancelable = !ws->send_due;

    if (t != NGX_TIMER_INFINITE) {
        ngx_add_timer(&ws->event, ngx_max(t, 1));
    }
}


static ngx_msec_t
ngx_http_ws_until(ngx_msec_t at, ngx_msec_t now)
{
    return ((ngx_msec_int_t) (at - now) > 0) ? at - now : 0;
}


/* reader */

static void
ngx_http_ws_read(ngx_http_ws_t *ws)
{
    u_char             buf[NGX_HTTP_WS_READ_SIZE];
    u_char            *p;
    size_t             total;
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    c = ws->request->connection;
    rev = c->read;
    b = ws->request->header_in;

    if (b->pos < b->last) {
        p = b->pos;
        b->pos = b->last;

        ws->last_recv = ngx_current_msec;
        ngx_http_ws_parse(ws, p, b->last);
    }

    /* until EAGAIN: an edge-triggered event does not come again */

    total = 0;

    while (ws->state != NGX_HTTP_WS_DONE && rev->ready) {

        /*
         * the rest waits for the next turn of the event loop: the posted
         * queue is drained in this one, so reposting there would let a
         * client that never stops sending keep the worker to itself
         */
        if (total >= NGX_HTTP_WS_READ_LIMIT) {
            ngx_post_event(rev, &ngx_posted_next_events);
            return;
        }

        n = c->recv(c, buf, NGX_HTTP_WS_READ_SIZE);

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "websocket recv: %z", n);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            if (ws->state == NGX_HTTP_WS_OPEN) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "client closed websocket connection "
                              "without closing handshake");
            }

            ngx_http_ws_drop(ws, NGX_HTTP_WS_ABNORMAL);
            return;
        }

        total += n;
        ws->last_recv = ngx_current_msec;

        ngx_http_ws_parse(ws, buf, buf + n);
    }

    if (ws->state != NGX_HTTP_WS_DONE
        && ngx_handle_read_event(rev, 0) != NGX_OK)
    {
        ngx_http_ws_drop(ws, NGX_HTTP_WS_ABNORMAL);
    }
}


/*
 * A state machine over any split of the stream: a frame header may end in
 * the next read, so nothing needs to be kept but the state.
 */

static void
ngx_http_ws_parse(ngx_http_ws_t *ws, u_char *p, u_char *last)
{
    size_t  n;

    while (p < last) {

        /* after a protocol error the rest of the stream is not parsed */

        if (ws->state == NGX_HTTP_WS_DONE || ws->fail) {
            return;
        }

        switch (ws->parse) {

        case sw_head:
            ngx_http_ws_frame_head(ws, *p++);
            break;

        case sw_length:
            ngx_http_ws_frame_length(ws, *p++);
            break;

        case sw_extended:
            ws->frame_left = (ws->frame_left << 8) | *p++;

            if (--ws->need == 0) {
                ngx_http_ws_frame_sized(ws);
            }

            break;

        case sw_mask:
            ws->mask[4 - ws->need] = *p++;

            if (--ws->need == 0) {
                ngx_http_ws_frame_begin(ws);
            }

            break;

        default: /* sw_payload */
            n = (size_t) ngx_min((uint64_t) (last - p), ws->frame_left);
            ngx_http_ws_payload(ws, p, n);
            p += n;
            break;
        }
    }
}


static void
ngx_http_ws_frame_head(ngx_http_ws_t *ws, u_char ch)
{
    ws->fin = ch >> 7;
    ws->opcode = ch & 0x0f;
    ws->parse = sw_length;

    if (ch & 0x70) {
        ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR,
                         "reserved bits set");
        return;
    }

    switch (ws->opcode) {

    case NGX_HTTP_WS_CONTINUATION:
        if (ws->message_opcode == 0) {
            ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR,
                             "continuation frame without a message");
        }

        return;

    case NGX_HTTP_WS_TEXT:
    case NGX_HTTP_WS_BINARY:
        if (ws->message_opcode != 0) {
            ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR,
                             "data frame inside a fragmented message");
        }

        return;

    case NGX_HTTP_WS_CLOSE:
    case NGX_HTTP_WS_PING:
    case NGX_HTTP_WS_PONG:
        if (!ws->fin) {
            ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR,
                             "fragmented control frame");
        }

        return;

    default:
        ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR, "unknown opcode");
        return;
    }
}


static void
ngx_http_ws_frame_length(ngx_http_ws_t *ws, u_char ch)
{
    if (!(ch & 0x80)) {
        ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR, "unmasked frame");
        return;
    }

    ch &= 0x7f;
    ws->frame_left = 0;

    if (ch == 126) {
        ws->need = 2;
        ws->parse = sw_extended;
        return;
    }

    if (ch == 127) {
        ws->need = 8;
        ws->parse = sw_extended;
        return;
    }

    ws->frame_left = ch;
    ngx_http_ws_frame_sized(ws);
}


/* The declared length is checked before anything is allocated for it. */

static void
ngx_http_ws_frame_sized(ngx_http_ws_t *ws)
{
    ws->need = 4;
    ws->parse = sw_mask;

    if (ws->frame_left >> 63) {
        ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR,
                         "frame length with the high bit set");
        return;
    }

    if (ws->opcode & 0x08) {
        if (ws->frame_left > 125) {
            ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR,
                             "control frame longer than 125 bytes");
        }

        return;
    }

    if (ws->state == NGX_HTTP_WS_OPEN
        && ws->frame_left > ws->conf->max_message - ws->message_len)
    {
        ngx_http_ws_fail(ws, NGX_HTTP_WS_TOO_BIG, "message too big");
    }
}


static void
ngx_http_ws_frame_begin(ngx_http_ws_t *ws)
{
    ws->parse = sw_payload;
    ws->mask_pos = 0;
    ws->control_len = 0;

    /* 125 bytes at most, kept only while the frame comes in */
    if ((ws->opcode & 0x08) && ws->frame_left && ws->control == NULL) {
        ws->control = ngx_alloc(125, ws->request->connection->log);
        if (ws->control == NULL) {
            ngx_http_ws_drop(ws, NGX_HTTP_WS_INTERNAL_ERROR);
            return;
        }
    }

    if (!(ws->opcode & 0x08)) {

        /* data that comes after our CLOSE is not delivered */
        ws->skip = (ws->state != NGX_HTTP_WS_OPEN);

        if (ws->opcode != NGX_HTTP_WS_CONTINUATION) {
            ws->message_opcode = ws->opcode;
            ws->message_len = 0;
            ngx_memzero(&ws->utf8, sizeof(ngx_http_ws_utf8_t));
        }
    }

    if (ws->frame_left == 0) {
        ngx_http_ws_frame_end(ws);
    }
}


/* Unmasks and checks what has come of the payload, however little. */

static void
ngx_http_ws_payload(ngx_http_ws_t *ws, u_char *p, size_t n)
{
    u_char      *dst;
    size_t       i;
    ngx_uint_t   k;

    if (ws->opcode & 0x08) {
        dst = ws->control + ws->control_len;
        ws->control_len += n;

    } else if (ws->skip) {
        dst = NULL;

    } else {
        if (ngx_http_ws_reserve(ws, n) != NGX_OK) {
            ngx_http_ws_drop(ws, NGX_HTTP_WS_INTERNAL_ERROR);
            return;
        }

        dst = ws->message + ws->message_len;
        ws->message_len += n;
    }

    if (dst) {
        k = ws->mask_pos;

        for (i = 0; i < n; i++) {
            dst[i] = p[i] ^ ws->mask[k];
            k = (k + 1) & 3;
        }

        ws->mask_pos = (u_char) k;
    }

    ws->frame_left -= n;

    /* fail fast: invalid text is refused before the message ends */

    if (dst
        && !(ws->opcode & 0x08)
        && ws->message_opcode == NGX_HTTP_WS_TEXT
        && ngx_http_ws_utf8(&ws->utf8, dst, n) != NGX_OK)
    {
        ngx_http_ws_fail(ws, NGX_HTTP_WS_INVALID_DATA, "invalid UTF-8 text");
        return;
    }

    if (ws->frame_left == 0) {
        ngx_http_ws_frame_end(ws);
    }
}


static void
ngx_http_ws_frame_end(ngx_http_ws_t *ws)
{
    ws->parse = sw_head;

    if (ws->opcode & 0x08) {
        ngx_http_ws_control_frame(ws);
        ngx_http_ws_free_control(ws);
        return;
    }

    if (ws->fin) {
        ngx_http_ws_message(ws);
    }
}


static void
ngx_http_ws_control_frame(ngx_http_ws_t *ws)
{
    switch (ws->opcode) {

    case NGX_HTTP_WS_PING:
        if (ws->state != NGX_HTTP_WS_OPEN) {
            return;
        }

        if (ngx_http_ws_queue(ws, NGX_HTTP_WS_PONG, ws->control,
                              ws->control_len)
            != NGX_OK)
        {
            ngx_http_ws_drop(ws, NGX_HTTP_WS_INTERNAL_ERROR);
            return;
        }

        (void) ngx_http_ws_push(ws);
        return;

    case NGX_HTTP_WS_CLOSE:
        ngx_http_ws_close_frame(ws);
        return;
    }

    /* PONG: nothing to do */
}


/*
 * The message buffer grows as the payload arrives, not by what the client
 * declares: a single frame up to its end, fragments by doubling.
 */

static ngx_int_t
ngx_http_ws_reserve(ngx_http_ws_t *ws, size_t n)
{
    u_char  *p;
    size_t   need, size, limit;

    need = ws->message_len + n;

    if (need <= ws->message_size) {
        return NGX_OK;
    }

    if (ws->fin && ws->opcode != NGX_HTTP_WS_CONTINUATION) {
        limit = need + (size_t) ws->frame_left - n;

    } else {
        limit = ws->conf->max_message;
    }

    size = ngx_max(2 * ws->message_size, NGX_HTTP_WS_MESSAGE_MIN);
    size = ngx_max(ngx_min(size, limit), need);

    p = ngx_alloc(size, ws->request->connection->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ws->message) {
        ngx_memcpy(p, ws->message, ws->message_len);
        ngx_free(ws->message);
    }

    ws->message = p;
    ws->message_size = size;

    return NGX_OK;
}


static void
ngx_http_ws_message(ngx_http_ws_t *ws)
{
    u_char      *data;
    size_t       len;
    ngx_uint_t   opcode;

    opcode = ws->message_opcode;
    ws->message_opcode = 0;

    if (ws->skip) {
        return;
    }

    if (opcode == NGX_HTTP_WS_TEXT && ws->utf8.need) {
        ngx_http_ws_fail(ws, NGX_HTTP_WS_INVALID_DATA,
                         "text ends inside a UTF-8 sequence");
        return;
    }

    /* the buffer is the handler's: it may close the connection meanwhile */

    data = ws->message;
    len = ws->message_len;

    ws->message = NULL;
    ws->message_len = 0;
    ws->message_size = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ws->request->connection->log, 0,
                   "websocket message: %ui, %uz bytes", opcode, len);

    ws->on_message(ws, opcode, data ? data : (u_char *) "", len);

    if (data) {
        ngx_free(data);
    }
}


static void
ngx_http_ws_close_frame(ngx_http_ws_t *ws)
{
    ngx_uint_t          code;
    ngx_http_ws_utf8_t  utf8;

    ws->close_recv = 1;

    if (ws->state != NGX_HTTP_WS_OPEN) {
        /* the reply to ours */
        ngx_http_ws_check_done(ws);
        return;
    }

    if (ws->control_len == 0) {
        code = NGX_HTTP_WS_NO_STATUS;

    } else if (ws->control_len == 1) {
        ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR,
                         "close frame with a 1-byte payload");
        return;

    } else {
        code = (ws->control[0] << 8) | ws->control[1];

        if (!ngx_http_ws_valid_code(code)) {
            ngx_http_ws_fail(ws, NGX_HTTP_WS_PROTOCOL_ERROR,
                             "invalid close code");
            return;
        }

        ngx_memzero(&utf8, sizeof(ngx_http_ws_utf8_t));

        if (ngx_http_ws_utf8(&utf8, ws->control + 2, ws->control_len - 2)
            != NGX_OK
            || utf8.need)
        {
            ngx_http_ws_fail(ws, NGX_HTTP_WS_INVALID_DATA,
                             "invalid UTF-8 close reason");
            return;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ws->request->connection->log, 0,
                   "websocket close from client: %ui", code);

    ws->code = code;

    /* the echo: an empty CLOSE for an empty one, 1005 is not sent */

    ngx_http_ws_send_close(ws, code == NGX_HTTP_WS_NO_STATUS ? 0 : code,
                           NULL, 0);
}


static ngx_uint_t
ngx_http_ws_valid_code(ngx_uint_t code)
{
    /* RFC 6455 7.4 and IANA's registry: 1012-1014 are in use */
    return (code >= 1000 && code <= 1003)
           || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}


/*
 * Incremental UTF-8 check: rejects overlong forms, surrogates and code
 * points past U+10FFFF by bounding the byte after a lead byte.
 */

static ngx_int_t
ngx_http_ws_utf8(ngx_http_ws_utf8_t *u, u_char *p, size_t n)
{
    u_char  c;

    while (n--) {
        c = *p++;

        if (u->need) {
            if (c < u->lo || c > u->hi) {
                return NGX_ERROR;
            }

            u->need--;
            u->lo = 0x80;
            u->hi = 0xbf;
            continue;
        }

        if (c < 0x80) {
            continue;
        }

        u->lo = 0x80;
        u->hi = 0xbf;

        if (c < 0xc2) {
            /* a continuation byte, or an overlong 2-byte form */
            return NGX_ERROR;
        }

        if (c < 0xe0) {
            u->need = 1;

        } else if (c < 0xf0) {
            u->need = 2;

            if (c == 0xe0) {
                u->lo = 0xa0;

            } else if (c == 0xed) {
                u->hi = 0x9f;
            }

        } else if (c < 0xf5) {
            u->need = 3;

            if (c == 0xf0) {
                u->lo = 0x90;

            } else if (c == 0xf4) {
                u->hi = 0x8f;
            }

        } else {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* The length of at most max bytes of p that does not split a character. */

static size_t
ngx_http_ws_utf8_cut(u_char *p, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }

    while (max > 0 && (p[max] & 0xc0) == 0x80) {
        max--;
    }

    return max;
}


/* writer */

/*
 * A buffer is one allocation: chain link, buffer, and room for at least
 * NGX_HTTP_WS_FRAME_ROOM bytes of frames; a frame joins the last buffer
 * queued when it fits there (a batch of small frames, one buffer).
 */

static ngx_int_t
ngx_http_ws_queue(ngx_http_ws_t *ws, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    u_char       *p;
    size_t        size, room;
    ngx_int_t     i;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    size = 2 + len;

    if (len > 65535) {
        size += 8;

    } else if (len > 125) {
        size += 2;
    }

    cl = NULL;

    if (ws->out) {
        cl = (ngx_chain_t *) ((u_char *) ws->last_out
                              - offsetof(ngx_chain_t, next));

        if ((size_t) (cl->buf->end - cl->buf->last) < size) {
            cl = NULL;
        }
    }

    if (cl) {
        b = cl->buf;
        p = b->last;

    } else {
        room = ngx_max(size, NGX_HTTP_WS_FRAME_ROOM);

        cl = ngx_alloc(sizeof(ngx_chain_t) + sizeof(ngx_buf_t) + room,
                       ws->request->connection->log);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        b = (ngx_buf_t *) (cl + 1);
        ngx_memzero(b, sizeof(ngx_buf_t));

        p = (u_char *) (b + 1);

        b->start = p;
        b->pos = p;
        b->last = p;
        b->end = p + room;
        b->temporary = 1;
        b->flush = 1;

        cl->buf = b;
        cl->next = NULL;

        *ws->last_out = cl;
        ws->last_out = &cl->next;
    }

    /* FIN, no mask: server frames are never masked */

    *p++ = (u_char) (0x80 | opcode);

    if (len > 65535) {
        *p++ = 127;

        for (i = 56; i >= 0; i -= 8) {
            *p++ = (u_char) ((uint64_t) len >> i);
        }

    } else if (len > 125) {
        *p++ = 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;

    } else {
        *p++ = (u_char) len;
    }

    if (len) {
        p = ngx_cpymem(p, data, len);
    }

    b->last = p;
    ws->out_size += size;

    return NGX_OK;
}


/* Sends what it can; a client that does not read is dropped. */

static ngx_int_t
ngx_http_ws_push(ngx_http_ws_t *ws)
{
    size_t  unsent;

    if (ngx_http_ws_flush(ws) == NGX_ERROR) {
        ngx_http_ws_drop(ws, NGX_HTTP_WS_ABNORMAL);
        return NGX_ERROR;
    }

    unsent = ngx_http_ws_queued(ws);

    if (unsent > ws->conf->max_output) {
        ngx_log_error(NGX_LOG_INFO, ws->request->connection->log, 0,
                      "websocket client does not read: %uz bytes queued",
                      unsent);

        ngx_http_ws_drop(ws, NGX_HTTP_WS_POLICY);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ws_flush(ngx_http_ws_t *ws)
{
    off_t                sent;
    ngx_chain_t         *cl;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = ws->request->connection;
    r = ws->request;
    sent = c->sent;

    /* the rest of the 101 response goes first */

    if (r->out && ngx_http_write_filter(r, NULL) == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (r->out == NULL
        && (ws->out || (c->buffered & NGX_LOWLEVEL_BUFFERED)))
    {
        cl = c->send_chain(c, ws->out, 0);

        if (cl == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        ngx_http_ws_free_sent(ws, cl);
    }

    if (!ngx_http_ws_pending(ws)) {
        c->buffered &= ~NGX_HTTP_WS_BUFFERED;

        /* drained outside the write handler: it tells the owner */
        if (ws->on_drained) {
            ngx_post_event(c->write, &ngx_posted_events);
        }

        /* the timer, if it was the deadline's, fires and finds none */
        if (ws->state == NGX_HTTP_WS_OPEN && ws->send_due) {
            ws->send_due = 0;
            ws->event.cancelable = 1;
        }

        return NGX_OK;
    }

    c->buffered |= NGX_HTTP_WS_BUFFERED;

    /* send_timeout is between two successful writes, as nginx's */

    if (ws->state == NGX_HTTP_WS_OPEN
        && ws->conf->send_timeout
        && (c->sent > sent || !ws->send_due))
    {
        ws->send_due = 1;
        ws->send_by = ngx_current_msec + ws->conf->send_timeout;
        ngx_http_ws_keep_timer(ws);
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


static ngx_uint_t
ngx_http_ws_pending(ngx_http_ws_t *ws)
{
    return ws->out != NULL
           || ws->request->out != NULL
           || (ws->request->connection->buffered & NGX_LOWLEVEL_BUFFERED);
}


static void
ngx_http_ws_free_sent(ngx_http_ws_t *ws, ngx_chain_t *upto)
{
    ngx_chain_t  *cl;

    while (ws->out != upto) {
        cl = ws->out;
        ws->out = cl->next;
        ws->out_size -= cl->buf->last - cl->buf->start;
        ngx_free(cl);
    }

    if (ws->out == NULL) {
        ws->last_out = &ws->out;
    }
}


/* closing */

/* Queues our CLOSE (code 0: none) and waits for the peer's. */

static void
ngx_http_ws_send_close(ngx_http_ws_t *ws, ngx_uint_t code, u_char *reason,
    size_t len)
{
    u_char  payload[125];
    size_t  n;

    ws->state = NGX_HTTP_WS_CLOSING;
    ws->close_sent = 1;

    ngx_http_ws_free_message(ws);

    /* the close deadline alone, and a shutting down worker waits for it */
    if (ws->event.timer_set) {
        ngx_del_timer(&ws->event);
    }

    ws->send_due = 0;
    ws->event.cancelable = 0;
    ngx_add_timer(&ws->event, ngx_http_ws_close_delay(ws));

    ngx_http_ws_schedule(ws);

    n = 0;

    if (code) {
        payload[0] = (u_char) (code >> 8);
        payload[1] = (u_char) code;
        len = ngx_http_ws_utf8_cut(reason, len, 123);
        n = 2 + len;

        if (len) {
            ngx_memcpy(payload + 2, reason, len);
        }
    }

    if (ngx_http_ws_queue(ws, NGX_HTTP_WS_CLOSE, payload, n) != NGX_OK) {
        ngx_http_ws_done(ws);
        return;
    }

    if (ngx_http_ws_push(ws) != NGX_OK) {
        return;
    }

    ngx_http_ws_check_done(ws);
}


static ngx_msec_t
ngx_http_ws_close_delay(ngx_http_ws_t *ws)
{
    if ((ngx_exiting || ws->going_away)
        && ws->conf->close_timeout > NGX_HTTP_WS_EXIT_GRACE)
    {
        return NGX_HTTP_WS_EXIT_GRACE;
    }

    return ws->conf->close_timeout;
}


/* A client protocol error: CLOSE with code, then close, not waiting. */

static void
ngx_http_ws_fail(ngx_http_ws_t *ws, ngx_uint_t code, const char *reason)
{
    ngx_log_error(NGX_LOG_INFO, ws->request->connection->log, 0,
                  "client sent invalid websocket data: %s", reason);

    if (ws->state != NGX_HTTP_WS_OPEN) {
        ngx_http_ws_done(ws);
        return;
    }

    ws->fail = 1;
    ws->code = code;

    ngx_http_ws_send_close(ws, code, NULL, 0);
}


/*
 * Closes now, with a CLOSE frame if it can go out at once; the owner is
 * told why (1006: the peer is gone).
 */

static void
ngx_http_ws_drop(ngx_http_ws_t *ws, ngx_uint_t code)
{
    if (ws->state == NGX_HTTP_WS_DONE) {
        return;
    }

    if (ws->state == NGX_HTTP_WS_OPEN) {
        ws->code = code;

        if (code != NGX_HTTP_WS_ABNORMAL) {
            (void) ngx_http_ws_last_word(ws, code);
        }
    }

    ngx_http_ws_done(ws);
}


/*
 * A CLOSE frame written directly, once, in place of the queue: only if the
 * stream is at a frame boundary, that is, no frame was partly sent.
 */

static ngx_int_t
ngx_http_ws_last_word(ngx_http_ws_t *ws, ngx_uint_t code)
{
    u_char             frame[4];
    ngx_connection_t  *c;

    c = ws->request->connection;

    if (c->error
        || c->write->error
        || ws->request->out
        || (c->buffered & NGX_LOWLEVEL_BUFFERED)
        || (ws->out && ws->out->buf->pos != ws->out->buf->start))
    {
        return NGX_DECLINED;
    }

    ngx_http_ws_free_sent(ws, NULL);

    frame[0] = 0x80 | NGX_HTTP_WS_CLOSE;
    frame[1] = 2;
    frame[2] = (u_char) (code >> 8);
    frame[3] = (u_char) code;

    ws->close_sent = 1;

    if (c->send(c, frame, sizeof(frame)) != (ssize_t) sizeof(frame)) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* Closed once both CLOSE frames went by (or ours after an error) and out. */

static void
ngx_http_ws_check_done(ngx_http_ws_t *ws)
{
    if (ws->state == NGX_HTTP_WS_CLOSING
        && (ws->fail || ws->close_recv)
        && !ngx_http_ws_pending(ws))
    {
        ngx_http_ws_done(ws);
    }
}


static void
ngx_http_ws_done(ngx_http_ws_t *ws)
{
    ngx_http_request_t  *r;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ws->request->connection->log, 0,
                   "websocket done: %ui", ws->code);

    ws->state = NGX_HTTP_WS_DONE;

    ngx_http_ws_stop(ws);

    r = ws->request;
    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_http_ws_schedule(ws);
}


/* lifetime */

static void
ngx_http_ws_enter(ngx_http_ws_t *ws)
{
    /* subrequests clear it (ngx_http_handler()) */
    ws->request->connection->log->action = "processing websocket";

    ws->depth++;
}


/*
 * The end of a handler: the outermost one tells the owner, finalizes when
 * the owner is done, or marks the connection idle.
 */

static void
ngx_http_ws_leave(ngx_http_ws_t *ws)
{
    if (ws->depth > 1) {
        ws->depth--;
        return;
    }

    if (ws->state == NGX_HTTP_WS_OPEN && (ngx_exiting || ws->going_away)) {
        ws->going_away = 1;
        ws->code = NGX_HTTP_WS_GOING_AWAY;
        ngx_http_ws_send_close(ws, NGX_HTTP_WS_GOING_AWAY, NULL, 0);
    }

    if (ws->state != NGX_HTTP_WS_OPEN && !ws->notified) {
        ws->notified = 1;
        ws->on_closed(ws, ws->code);
    }

    ws->depth = 0;

    if (ws->state == NGX_HTTP_WS_DONE) {

        if (ws->released) {
            ngx_http_ws_finalize(ws);

        } else {
            ngx_http_ws_hang_up(ws);
        }

        return;
    }

    ngx_http_ws_set_idle(ws, ws->state == NGX_HTTP_WS_OPEN
                             && !ngx_http_ws_pending(ws));
}


/*
 * The owner keeps the request after on_closed: the client gets its FIN now
 * rather than wait for the release (TLS would need a close_notify first),
 * and its EOF is read meanwhile, so that nginx then closes at once.
 */

static void
ngx_http_ws_hang_up(ngx_http_ws_t *ws)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = ws->request->connection;
    r = ws->request;

    if (ws->hung_up || c->error || c->write->error || c->read->eof) {
        return;
    }

#if (NGX_SSL)
    if (c->ssl) {
        return;
    }
#endif

    ws->hung_up = 1;

    if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, ngx_socket_errno,
                       "websocket shutdown() failed, fd:%d", c->fd);
        return;
    }

    r->read_event_handler = ngx_http_ws_drain;
    ngx_http_ws_drain(r);
}


static void
ngx_http_ws_drain(ngx_http_request_t *r)
{
    u_char             buf[NGX_HTTP_WS_READ_SIZE];
    ssize_t            n;
    ngx_event_t       *rev;
    ngx_connection_t  *c;

    c = r->connection;
    rev = c->read;

    while (rev->ready) {
        n = c->recv(c, buf, NGX_HTTP_WS_READ_SIZE);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            /* nothing is left to linger for */
            rev->eof = 1;
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        rev->eof = 1;
    }
}


/* A change made outside handlers gets its ngx_http_ws_leave() soon. */

static void
ngx_http_ws_schedule(ngx_http_ws_t *ws)
{
    if (ws->depth == 0) {
        ngx_post_event(&ws->event, &ngx_posted_events);
    }
}


static void
ngx_http_ws_set_idle(ngx_http_ws_t *ws, ngx_uint_t idle)
{
    ngx_connection_t  *c;

    c = ws->request->connection;
    c->idle = idle;

    if (idle) {
        if (c->read->handler != ngx_http_ws_idle_handler) {
            ws->read_handler = c->read->handler;
            c->read->handler = ngx_http_ws_idle_handler;
        }

    } else if (c->read->handler == ngx_http_ws_idle_handler) {
        c->read->handler = ws->read_handler;
    }
}


static void
ngx_http_ws_stop(ngx_http_ws_t *ws)
{
    if (ws->event.timer_set) {
        ngx_del_timer(&ws->event);
    }

    if (ws->event.posted) {
        ngx_delete_posted_event(&ws->event);
    }

    ngx_http_ws_free_sent(ws, NULL);
    ngx_http_ws_free_message(ws);
    ngx_http_ws_free_control(ws);

    ws->request->connection->buffered &= ~NGX_HTTP_WS_BUFFERED;

    ngx_http_ws_set_idle(ws, 0);
}


static void
ngx_http_ws_free_message(ngx_http_ws_t *ws)
{
    if (ws->message) {
        ngx_free(ws->message);
        ws->message = NULL;
    }

    ws->message_len = 0;
    ws->message_size = 0;
}


static void
ngx_http_ws_free_control(ngx_http_ws_t *ws)
{
    if (ws->control) {
        ngx_free(ws->control);
        ws->control = NULL;
    }

    ws->control_len = 0;
}


static void
ngx_http_ws_finalize(ngx_http_ws_t *ws)
{
    ngx_http_request_t  *r;

    if (ws->finalized) {
        return;
    }

    ws->finalized = 1;

    r = ws->request;

    ngx_http_ws_stop(ws);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ws->request->connection->log, 0,
                   "websocket finalize");

    /* ws may be freed from here on, with r->pool */

    if (ws->terminated) {

        if (ws->blocked) {
            /* nginx closes the request once nothing blocks it */
            ws->blocked = 0;
            r->main->blocked--;
            ngx_http_finalize_request(r, NGX_ERROR);
        }

        return;
    }

    if (ws->fail) {
        /* the client may still be sending: let it read our CLOSE first */
        r->lingering_close = 1;
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


/*
 * The request is freed after ngx_http_ws_finalize(), or nginx terminates
 * it: a worker's shutdown timeout, an error elsewhere in the request.
 */

static void
ngx_http_ws_cleanup(void *data)
{
    ngx_http_ws_t  *ws = data;

    ngx_uint_t           code;
    ngx_http_request_t  *r;

    if (ws->finalized) {
        return;
    }

    r = ws->request;
    ws->terminated = 1;

    if (ws->state == NGX_HTTP_WS_OPEN) {
        code = ngx_exiting ? NGX_HTTP_WS_GOING_AWAY
                           : NGX_HTTP_WS_INTERNAL_ERROR;

        ws->code = (ngx_http_ws_last_word(ws, code) == NGX_OK)
                   ? code : NGX_HTTP_WS_ABNORMAL;
    }

    ws->state = NGX_HTTP_WS_DONE;

    ngx_http_ws_stop(ws);

    r->read_event_handler = ngx_http_block_reading;

    if (!ws->notified) {
        ws->notified = 1;
        ws->depth++;
        ws->on_closed(ws, ws->code);
        ws->depth--;
    }

    if (!ws->released) {
        /* what the owner keeps in r->pool stays until it releases */
        r->main->blocked++;
        ws->blocked = 1;
    }
}


/* The last word: nothing of ws may be left in the event loop. */

static void
ngx_http_ws_pool_cleanup(void *data)
{
    ngx_http_ws_stop(data);
    ngx_free(data);
}


/* the owner's side */

ngx_int_t
ngx_http_ws_send_text(ngx_http_ws_t *ws, u_char *data, size_t len)
{
    if (ws->state != NGX_HTTP_WS_OPEN) {
        return NGX_ERROR;
    }

    if (ngx_http_ws_queue(ws, NGX_HTTP_WS_TEXT, data, len) != NGX_OK) {
        ngx_http_ws_drop(ws, NGX_HTTP_WS_INTERNAL_ERROR);
        return NGX_ERROR;
    }

    /*
     * A small batch waits for the write event, posted to the end of this
     * event loop's turn: the frames that more of the turn queues go out
     * in the same write.  Anything larger goes now, as it always did.
     */

    if (ws->out_size < NGX_HTTP_WS_BATCH_SIZE) {
        ws->deferred = 1;

        if (!ws->request->connection->write->posted) {
            ngx_post_event(ws->request->connection->write, &ngx_posted_events);
        }

        return NGX_OK;
    }

    ws->deferred = 0;

    return ngx_http_ws_push(ws);
}


void
ngx_http_ws_close(ngx_http_ws_t *ws, ngx_uint_t code, const char *reason)
{
    if (ws->state != NGX_HTTP_WS_OPEN) {
        return;
    }

    if (!ngx_http_ws_valid_code(code)) {
        code = NGX_HTTP_WS_NORMAL;
    }

    ws->code = code;

    ngx_http_ws_send_close(ws, code, (u_char *) reason,
                           reason ? ngx_strlen(reason) : 0);
}


void
ngx_http_ws_release(ngx_http_ws_t *ws)
{
    ws->released = 1;

    if (ws->state == NGX_HTTP_WS_OPEN) {
        /* released before on_closed: close politely, tell nobody */
        ws->notified = 1;
        ws->code = NGX_HTTP_WS_GOING_AWAY;
        ngx_http_ws_send_close(ws, NGX_HTTP_WS_GOING_AWAY, NULL, 0);
        return;
    }

    /* finalized from the event loop, not under the owner's feet */
    ngx_http_ws_schedule(ws);
}


size_t
ngx_http_ws_queued(ngx_http_ws_t *ws)
{
    size_t  unsent;

    /* only the first frame can be partly sent */

    unsent = ws->out_size;

    if (ws->out) {
        unsent -= ws->out->buf->pos - ws->out->buf->start;
    }

    return unsent;
}


void
ngx_http_ws_on_drained(ngx_http_ws_t *ws, ngx_http_ws_drained_pt handler)
{
    ws->on_drained = handler;

    if (!ngx_http_ws_pending(ws)) {
        ngx_post_event(ws->request->connection->write, &ngx_posted_events);
    }
}


void *
ngx_http_ws_data(ngx_http_ws_t *ws)
{
    return ws->data;
}


ngx_http_request_t *
ngx_http_ws_request(ngx_http_ws_t *ws)
{
    return ws->request;
}


ngx_uint_t
ngx_http_ws_is_open(ngx_http_ws_t *ws)
{
    return ws->state == NGX_HTTP_WS_OPEN;
}
