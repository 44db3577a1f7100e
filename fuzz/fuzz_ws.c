
/*
 * libFuzzer harness for the WebSocket frame parser of ngx_http_ws.c: the
 * file is compiled in whole and its parser driven on a connection that
 * exists only in memory.  The first byte picks how the rest is split into
 * reads; the messages delivered and the close code must be the same as
 * for the stream read at once.
 */

#include "../ngx_scenario_module/ngx_http_ws.c"
#include "ngx_fuzz_log.h"


static ngx_fuzz_log_t  *ngx_fuzz_log;


/* the parser's callbacks carry no context of the harness: a global log */

static void
ngx_fuzz_put(const void *p, size_t n)
{
    ngx_fuzz_log_put(ngx_fuzz_log, p, n);
}


static void
ngx_fuzz_on_message(ngx_http_ws_t *ws, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    ngx_fuzz_put((u_char *) &opcode, sizeof(opcode));
    ngx_fuzz_put((u_char *) &len, sizeof(len));
    ngx_fuzz_put(data, len);
}


static void
ngx_fuzz_on_closed(ngx_http_ws_t *ws, ngx_uint_t code)
{
}


/* what would go to the client: taken as sent, and kept in the log */

static ngx_chain_t *
ngx_fuzz_send_chain(ngx_connection_t *c, ngx_chain_t *in, off_t limit)
{
    ngx_chain_t  *cl;

    for (cl = in; cl; cl = cl->next) {
        if (ngx_buf_in_memory(cl->buf)) {
            ngx_fuzz_put((u_char *) "<out>", 5);
            ngx_fuzz_put(cl->buf->pos, cl->buf->last - cl->buf->pos);
            cl->buf->pos = cl->buf->last;
        }
    }

    return NULL;
}


/* the location's, by pointer (ngx_http_ws_accept() keeps it) */
static ngx_http_ws_conf_t  ngx_fuzz_ws_conf = {
    4096,                             /* max_message */
    65536,                            /* max_output */
    0,                                /* ping_interval */
    0,                                /* idle_timeout */
    1000,                             /* close_timeout */
    0                                 /* send_timeout */
};


static void
ngx_fuzz_run(u_char *data, size_t size, size_t step, ngx_fuzz_log_t *log)
{
    size_t               off, n;
    u_char              *copy;
    ngx_log_t            nlog;
    ngx_pool_t          *pool;
    ngx_event_t          rev, wev;
    ngx_http_ws_t       *ws;
    ngx_connection_t     c;
    ngx_http_request_t   r;

    ngx_fuzz_log = log;

    ngx_queue_init(&ngx_posted_events);
    ngx_queue_init(&ngx_posted_next_events);

    pool = ngx_create_pool(1024, NULL);

    ngx_memzero(&nlog, sizeof(ngx_log_t));
    ngx_memzero(&c, sizeof(ngx_connection_t));
    ngx_memzero(&r, sizeof(ngx_http_request_t));
    ngx_memzero(&rev, sizeof(ngx_event_t));
    ngx_memzero(&wev, sizeof(ngx_event_t));

    c.log = &nlog;
    c.pool = pool;
    c.read = &rev;
    c.write = &wev;
    c.send_chain = ngx_fuzz_send_chain;
    c.data = &r;
    c.fd = -1;
    rev.data = &c;
    wev.data = &c;
    wev.ready = 1;

    r.connection = &c;
    r.main = &r;
    r.pool = pool;
    r.count = 1;

    ws = ngx_pcalloc(pool, sizeof(ngx_http_ws_t));
    ws->request = &r;
    ws->conf = &ngx_fuzz_ws_conf;
    ws->on_message = ngx_fuzz_on_message;
    ws->on_closed = ngx_fuzz_on_closed;
    ws->last_out = &ws->out;
    ws->state = NGX_HTTP_WS_OPEN;
    ws->parse = sw_head;
    ws->depth = 1;                    /* as inside ngx_http_ws_enter() */
    ws->event.data = ws;
    ws->event.log = &nlog;

    for (off = 0; off < size; off += n) {
        n = step ? ngx_min(step, size - off) : size - off;

        /* each read in memory of its own: reads past it are caught */
        copy = malloc(n);
        memcpy(copy, data + off, n);
        ngx_http_ws_parse(ws, copy, copy + n);
        free(copy);
    }

    ngx_fuzz_put((u_char *) "<end>", 5);
    n = ws->state;
    ngx_fuzz_put((u_char *) &n, sizeof(n));
    n = ws->fail;
    ngx_fuzz_put((u_char *) &n, sizeof(n));

    /* what the pool cleanup does when the request goes */
    ngx_http_ws_stop(ws);
    ngx_destroy_pool(pool);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t           step;
    ngx_fuzz_log_t   whole, split;

    if (size == 0) {
        return 0;
    }

    step = data[0] % 13 + 1;
    data++;
    size--;

    memset(&whole, 0, sizeof(whole));
    memset(&split, 0, sizeof(split));

    ngx_fuzz_run((u_char *) data, size, 0, &whole);
    ngx_fuzz_run((u_char *) data, size, step, &split);

    if (!ngx_fuzz_log_same(&whole, &split)) {
        fprintf(stderr, "split at %zu: %zu bytes of outcome against %zu\n",
                step, split.len, whole.len);
        abort();
    }

    free(whole.buf);
    free(split.buf);

    return 0;
}
