/*
 * An incremental parser of Server-Sent Events (the WHATWG EventSource
 * stream format).  It is fed the stream in chunks that may split anywhere,
 * also inside a line or a UTF-8 character, and hands over each event's data
 * once the blank line that ends the event has arrived.  Lines end with LF,
 * CRLF or CR; lines starting with ':' are comments; several "data" lines
 * are joined with LF; a UTF-8 BOM at the start is skipped; "id" and "retry"
 * are ignored.  Lines and events are bounded.  Knows nothing of the module
 * that uses it.
 */

#ifndef _NGX_SSE_H_INCLUDED_
#define _NGX_SSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_SSE_MAX_TYPE  64


/*
 * An event: type is "message" unless an "event" field named it; data is
 * valid during the call only.  A return other than NGX_OK stops the parser
 * and is what ngx_sse_feed() returns.
 */
typedef ngx_int_t (*ngx_sse_event_pt)(void *ctx, ngx_str_t *type,
    u_char *data, size_t len);


typedef struct {
    ngx_pool_t         *pool;
    ngx_sse_event_pt    handler;
    void               *ctx;

    size_t              max_line;
    size_t              max_data;

    ngx_str_t           line;       /* a line that a chunk ended inside */
    size_t              line_size;
    ngx_str_t           data;       /* the event's data, each line + LF */
    size_t              data_size;

    u_char              type[NGX_SSE_MAX_TYPE];
    size_t              type_len;

    const char         *error;      /* why NGX_ERROR was returned */

    unsigned            bom:2;      /* bytes of a BOM matched so far */
    unsigned            started:1;  /* past a possible BOM */
    unsigned            cr:1;       /* the last line ended with CR */
    unsigned            stopped:1;
} ngx_sse_parser_t;


/* Buffers are allocated from pool as lines and events need them. */
void ngx_sse_init(ngx_sse_parser_t *p, ngx_pool_t *pool, size_t max_line,
    size_t max_data, ngx_sse_event_pt handler, void *ctx);

/*
 * Parses a chunk.  Returns NGX_OK, NGX_ERROR (a line or an event over its
 * bound, or no memory: see p->error), or the handler's return.  Once it
 * returned anything but NGX_OK the parser ignores what it is fed.
 */
ngx_int_t ngx_sse_feed(ngx_sse_parser_t *p, u_char *pos, size_t len);


#endif /* _NGX_SSE_H_INCLUDED_ */
