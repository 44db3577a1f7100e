/*
 * Server-Sent Events, parsed incrementally.
 *
 * A line that lies whole in a chunk is parsed where it is; only a line that
 * a chunk ends inside is copied, so that the next chunk can complete it.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_sse.h"


#define NGX_SSE_MIN_BUFFER  256


static ngx_int_t ngx_sse_lines(ngx_sse_parser_t *p, u_char *pos,
    u_char *last);
static ngx_int_t ngx_sse_line(ngx_sse_parser_t *p, u_char *line, size_t len);
static ngx_int_t ngx_sse_field(ngx_sse_parser_t *p, u_char *name,
    size_t name_len, u_char *value, size_t len);
static ngx_int_t ngx_sse_dispatch(ngx_sse_parser_t *p);
static ngx_int_t ngx_sse_append(ngx_sse_parser_t *p, ngx_str_t *buf,
    size_t *size, size_t max, u_char *data, size_t len);


static u_char  ngx_sse_bom[] = { 0xef, 0xbb, 0xbf };


void
ngx_sse_init(ngx_sse_parser_t *p, ngx_pool_t *pool, size_t max_line,
    size_t max_data, ngx_sse_event_pt handler, void *ctx)
{
    ngx_memzero(p, sizeof(ngx_sse_parser_t));

    p->pool = pool;
    p->max_line = max_line;
    p->max_data = max_data;
    p->handler = handler;
    p->ctx = ctx;
}


ngx_int_t
ngx_sse_feed(ngx_sse_parser_t *p, u_char *pos, size_t len)
{
    u_char     *last;
    ngx_int_t   rc;

    if (p->stopped) {
        return NGX_OK;
    }

    last = pos + len;

    while (!p->started && pos < last) {

        if (*pos == ngx_sse_bom[p->bom]) {
            pos++;

            if (++p->bom == sizeof(ngx_sse_bom)) {
                p->started = 1;
            }

            continue;
        }

        /* no BOM after all: the bytes taken for one belong to the stream */

        p->started = 1;

        rc = ngx_sse_lines(p, ngx_sse_bom, ngx_sse_bom + p->bom);
        if (rc != NGX_OK) {
            p->stopped = 1;
            return rc;
        }
    }

    rc = ngx_sse_lines(p, pos, last);
    if (rc != NGX_OK) {
        p->stopped = 1;
    }

    return rc;
}


static ngx_int_t
ngx_sse_lines(ngx_sse_parser_t *p, u_char *pos, u_char *last)
{
    size_t      len;
    u_char     *eol;
    ngx_int_t   rc;

    while (pos < last) {

        /* CRLF split between two chunks */

        if (p->cr) {
            p->cr = 0;

            if (*pos == LF) {
                pos++;
                continue;
            }
        }

        for (eol = pos; eol < last; eol++) {
            if (*eol == LF || *eol == CR) {
                break;
            }
        }

        if (eol == last) {
            return ngx_sse_append(p, &p->line, &p->line_size, p->max_line,
                                  pos, last - pos);
        }

        p->cr = (*eol == CR);

        if (p->line.len) {
            rc = ngx_sse_append(p, &p->line, &p->line_size, p->max_line,
                                pos, eol - pos);
            if (rc != NGX_OK) {
                return rc;
            }

            len = p->line.len;
            p->line.len = 0;

            /* the buffer is only written again by a later line */
            rc = ngx_sse_line(p, p->line.data, len);

        } else {
            rc = ngx_sse_line(p, pos, eol - pos);
        }

        if (rc != NGX_OK) {
            return rc;
        }

        pos = eol + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_sse_line(ngx_sse_parser_t *p, u_char *line, size_t len)
{
    u_char  *colon, *value, *last;

    if (len > p->max_line) {
        p->error = "line too long";
        return NGX_ERROR;
    }

    if (len == 0) {
        return ngx_sse_dispatch(p);
    }

    if (line[0] == ':') {
        /* a comment: servers send them to keep the connection alive */
        return NGX_OK;
    }

    last = line + len;

    colon = ngx_strlchr(line, last, ':');

    if (colon == NULL) {
        return ngx_sse_field(p, line, len, last, 0);
    }

    value = colon + 1;

    if (value < last && *value == ' ') {
        value++;
    }

    return ngx_sse_field(p, line, colon - line, value, last - value);
}


static ngx_int_t
ngx_sse_field(ngx_sse_parser_t *p, u_char *name, size_t name_len,
    u_char *value, size_t len)
{
    ngx_int_t  rc;

    if (name_len == 4 && ngx_strncmp(name, "data", 4) == 0) {

        if (p->data.len + len + 1 > p->max_data) {
            p->error = "event too large";
            return NGX_ERROR;
        }

        rc = ngx_sse_append(p, &p->data, &p->data_size, p->max_data,
                            value, len);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_sse_append(p, &p->data, &p->data_size, p->max_data,
                              (u_char *) "\n", 1);
    }

    if (name_len == 5 && ngx_strncmp(name, "event", 5) == 0) {

        if (len > NGX_SSE_MAX_TYPE) {
            p->error = "event type too long";
            return NGX_ERROR;
        }

        ngx_memcpy(p->type, value, len);
        p->type_len = len;
    }

    /* "id", "retry" and unknown fields matter to reconnecting clients only */

    return NGX_OK;
}


static ngx_int_t
ngx_sse_dispatch(ngx_sse_parser_t *p)
{
    size_t     len;
    ngx_str_t  type;

    if (p->data.len == 0) {
        p->type_len = 0;
        return NGX_OK;
    }

    if (p->type_len) {
        type.len = p->type_len;
        type.data = p->type;

    } else {
        ngx_str_set(&type, "message");
    }

    /* without the LF that the last data line added */
    len = p->data.len - 1;

    p->data.len = 0;
    p->type_len = 0;

    return p->handler(p->ctx, &type, p->data.data, len);
}


static ngx_int_t
ngx_sse_append(ngx_sse_parser_t *p, ngx_str_t *buf, size_t *size,
    size_t max, u_char *data, size_t len)
{
    size_t   need;
    u_char  *new;

    /* an empty "data:" line: buf->data may still be NULL */
    if (len == 0) {
        return NGX_OK;
    }

    need = buf->len + len;

    if (need > max) {
        p->error = (buf == &p->line) ? "line too long" : "event too large";
        return NGX_ERROR;
    }

    if (need > *size) {
        *size = ngx_max(ngx_max(*size * 2, NGX_SSE_MIN_BUFFER), need);
        *size = ngx_min(*size, max);

        new = ngx_pnalloc(p->pool, *size);
        if (new == NULL) {
            p->error = "no memory";
            return NGX_ERROR;
        }

        if (buf->len) {
            ngx_memcpy(new, buf->data, buf->len);
        }

        if (buf->data) {
            /* gives back large blocks only, which is what matters here */
            ngx_pfree(p->pool, buf->data);
        }

        buf->data = new;
    }

    ngx_memcpy(buf->data + buf->len, data, len);
    buf->len += len;

    return NGX_OK;
}
