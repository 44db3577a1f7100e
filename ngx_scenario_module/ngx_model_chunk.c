/*
 * Streamed chunks read without jansson.
 *
 * A validating scanner of the whole text: where jansson could fail or read
 * differently (an exponent, a number near long long's limits, \u0000, a
 * lone surrogate, invalid UTF-8, escapes in keys, a repeated key that
 * matters, deep nesting) it declines rather than repeat jansson's rules.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_model_chunk.h"


#define NGX_MODEL_CHUNK_MAX_DEPTH  32


typedef struct ngx_model_scan_s  ngx_model_scan_t;

/* reads the value of an object's member named key */
typedef ngx_int_t (*ngx_model_member_pt)(ngx_model_scan_t *s, ngx_str_t *key,
    ngx_uint_t depth);


struct ngx_model_scan_s {
    u_char             *pos;
    u_char             *last;
    u_char             *buf;        /* decoded strings, bump allocated */
    ngx_model_chunk_t  *chunk;

    /* members seen, so that a repeated one declines */
    unsigned            choices:1;
    unsigned            error:1;
    unsigned            delta:1;
    unsigned            reason:1;
    unsigned            content:1;

    unsigned            escaped:1;  /* the last string had escapes */
};


static ngx_int_t ngx_model_scan_object(ngx_model_scan_t *s,
    ngx_model_member_pt member, ngx_uint_t depth);
static ngx_int_t ngx_model_scan_top(ngx_model_scan_t *s, ngx_str_t *key,
    ngx_uint_t depth);
static ngx_int_t ngx_model_scan_choices(ngx_model_scan_t *s);
static ngx_int_t ngx_model_scan_choice(ngx_model_scan_t *s, ngx_str_t *key,
    ngx_uint_t depth);
static ngx_int_t ngx_model_scan_delta(ngx_model_scan_t *s, ngx_str_t *key,
    ngx_uint_t depth);
static ngx_int_t ngx_model_scan_skip(ngx_model_scan_t *s, ngx_str_t *key,
    ngx_uint_t depth);
static ngx_int_t ngx_model_scan_key(ngx_model_scan_t *s, ngx_str_t *key);
static ngx_int_t ngx_model_scan_value(ngx_model_scan_t *s, ngx_uint_t depth);
static ngx_int_t ngx_model_scan_array(ngx_model_scan_t *s,
    ngx_model_member_pt first, ngx_uint_t depth);
static ngx_int_t ngx_model_scan_open(ngx_model_scan_t *s, u_char close);
static ngx_int_t ngx_model_scan_next(ngx_model_scan_t *s, u_char close);
static ngx_int_t ngx_model_scan_string(ngx_model_scan_t *s, ngx_str_t *out);
static ngx_int_t ngx_model_scan_utf8(ngx_model_scan_t *s);
static ngx_int_t ngx_model_scan_hex(u_char *p, uint32_t *v);
static u_char *ngx_model_decode(u_char *dst, u_char *p, u_char *last);
static ngx_int_t ngx_model_scan_number(ngx_model_scan_t *s);
static ngx_int_t ngx_model_scan_literal(ngx_model_scan_t *s, char *word,
    size_t len);
static void ngx_model_scan_ws(ngx_model_scan_t *s);


#define ngx_model_key_is(key, s)                                            \
    ((key)->len == sizeof(s) - 1                                            \
     && ngx_strncmp((key)->data, s, sizeof(s) - 1) == 0)


ngx_int_t
ngx_model_chunk_parse(u_char *data, size_t len, u_char *buf,
    ngx_model_chunk_t *chunk)
{
    ngx_model_scan_t  s;

    ngx_memzero(chunk, sizeof(ngx_model_chunk_t));
    ngx_memzero(&s, sizeof(ngx_model_scan_t));

    s.pos = data;
    s.last = data + len;
    s.buf = buf;
    s.chunk = chunk;

    ngx_model_scan_ws(&s);

    if (ngx_model_scan_object(&s, ngx_model_scan_top, 0) != NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_model_scan_ws(&s);

    return (s.pos == s.last) ? NGX_OK : NGX_DECLINED;
}


/* an object; s->pos is past its closing brace on return */

static ngx_int_t
ngx_model_scan_object(ngx_model_scan_t *s, ngx_model_member_pt member,
    ngx_uint_t depth)
{
    ngx_int_t  rc;
    ngx_str_t  key;

    if (s->pos == s->last || *s->pos != '{'
        || depth >= NGX_MODEL_CHUNK_MAX_DEPTH)
    {
        return NGX_DECLINED;
    }

    for (rc = ngx_model_scan_open(s, '}'); rc == NGX_OK;
         rc = ngx_model_scan_next(s, '}'))
    {
        if (ngx_model_scan_key(s, &key) != NGX_OK
            || member(s, &key, depth + 1) != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    return (rc == NGX_DONE) ? NGX_OK : NGX_DECLINED;
}


/* the chunk: "choices" read, "error" null only, the rest skipped */

static ngx_int_t
ngx_model_scan_top(ngx_model_scan_t *s, ngx_str_t *key, ngx_uint_t depth)
{
    if (ngx_model_key_is(key, "choices")) {
        if (s->choices) {
            return NGX_DECLINED;
        }

        s->choices = 1;

        return ngx_model_scan_choices(s);
    }

    if (ngx_model_key_is(key, "error")) {
        if (s->error) {
            return NGX_DECLINED;
        }

        s->error = 1;

        return ngx_model_scan_literal(s, "null", 4);
    }

    return ngx_model_scan_value(s, depth);
}


/* an array whose first element, if any, is an object */

static ngx_int_t
ngx_model_scan_choices(ngx_model_scan_t *s)
{
    if (*s->pos != '[') {
        return NGX_DECLINED;
    }

    return ngx_model_scan_array(s, ngx_model_scan_choice, 1);
}


static ngx_int_t
ngx_model_scan_choice(ngx_model_scan_t *s, ngx_str_t *key, ngx_uint_t depth)
{
    if (ngx_model_key_is(key, "delta")) {
        if (s->delta) {
            return NGX_DECLINED;
        }

        s->delta = 1;

        /* not an object: as if there was no content */

        if (*s->pos == '{') {
            return ngx_model_scan_object(s, ngx_model_scan_delta, depth);
        }

        return ngx_model_scan_value(s, depth);
    }

    if (ngx_model_key_is(key, "finish_reason")) {
        if (s->reason) {
            return NGX_DECLINED;
        }

        s->reason = 1;

        if (*s->pos == '"') {
            s->chunk->has_reason = 1;
            return ngx_model_scan_string(s, &s->chunk->reason);
        }

        return ngx_model_scan_value(s, depth);
    }

    return ngx_model_scan_value(s, depth);
}


/* "content": a string or null */

static ngx_int_t
ngx_model_scan_delta(ngx_model_scan_t *s, ngx_str_t *key, ngx_uint_t depth)
{
    if (ngx_model_key_is(key, "content")) {
        if (s->content) {
            return NGX_DECLINED;
        }

        s->content = 1;

        if (*s->pos == '"') {
            s->chunk->has_content = 1;
            return ngx_model_scan_string(s, &s->chunk->content);
        }

        return ngx_model_scan_literal(s, "null", 4);
    }

    return ngx_model_scan_value(s, depth);
}


static ngx_int_t
ngx_model_scan_skip(ngx_model_scan_t *s, ngx_str_t *key, ngx_uint_t depth)
{
    return ngx_model_scan_value(s, depth);
}


/* a key without escapes, the colon, and the whitespace to the value */

static ngx_int_t
ngx_model_scan_key(ngx_model_scan_t *s, ngx_str_t *key)
{
    if (s->pos == s->last || *s->pos != '"'
        || ngx_model_scan_string(s, key) != NGX_OK
        || s->escaped)
    {
        return NGX_DECLINED;
    }

    ngx_model_scan_ws(s);

    if (s->pos == s->last || *s->pos != ':') {
        return NGX_DECLINED;
    }

    s->pos++;
    ngx_model_scan_ws(s);

    return (s->pos < s->last) ? NGX_OK : NGX_DECLINED;
}


/* any value, validated and skipped */

static ngx_int_t
ngx_model_scan_value(ngx_model_scan_t *s, ngx_uint_t depth)
{
    switch (*s->pos) {

    case '"':
        return ngx_model_scan_string(s, NULL);

    case 't':
        return ngx_model_scan_literal(s, "true", 4);

    case 'f':
        return ngx_model_scan_literal(s, "false", 5);

    case 'n':
        return ngx_model_scan_literal(s, "null", 4);

    case '{':
        return ngx_model_scan_object(s, ngx_model_scan_skip, depth);

    case '[':
        return ngx_model_scan_array(s, NULL, depth);

    default:
        return ngx_model_scan_number(s);
    }
}


/* an array; with first, its first element must be an object read by it */

static ngx_int_t
ngx_model_scan_array(ngx_model_scan_t *s, ngx_model_member_pt first,
    ngx_uint_t depth)
{
    ngx_int_t   rc;
    ngx_uint_t  n;

    if (depth >= NGX_MODEL_CHUNK_MAX_DEPTH) {
        return NGX_DECLINED;
    }

    for (rc = ngx_model_scan_open(s, ']'), n = 0; rc == NGX_OK;
         rc = ngx_model_scan_next(s, ']'), n++)
    {
        if (s->pos == s->last) {
            return NGX_DECLINED;
        }

        rc = (n == 0 && first) ? ngx_model_scan_object(s, first, depth + 1)
                               : ngx_model_scan_value(s, depth + 1);

        if (rc != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    return (rc == NGX_DONE) ? NGX_OK : NGX_DECLINED;
}


/* past an opening bracket: NGX_DONE past an empty one's close */

static ngx_int_t
ngx_model_scan_open(ngx_model_scan_t *s, u_char close)
{
    s->pos++;
    ngx_model_scan_ws(s);

    if (s->pos < s->last && *s->pos == close) {
        s->pos++;
        return NGX_DONE;
    }

    return NGX_OK;
}


/* after a member or element: NGX_OK at the next one, NGX_DONE past close */

static ngx_int_t
ngx_model_scan_next(ngx_model_scan_t *s, u_char close)
{
    ngx_model_scan_ws(s);

    if (s->pos == s->last) {
        return NGX_DECLINED;
    }

    if (*s->pos == close) {
        s->pos++;
        return NGX_DONE;
    }

    if (*s->pos != ',') {
        return NGX_DECLINED;
    }

    s->pos++;
    ngx_model_scan_ws(s);

    return NGX_OK;
}


/*
 * A string, validated; if out, its value: in place without escapes, else
 * decoded into s->buf.
 */

static ngx_int_t
ngx_model_scan_string(ngx_model_scan_t *s, ngx_str_t *out)
{
    u_char      *p, *start;
    uint32_t     v, lo;
    ngx_uint_t   escaped;

    start = ++s->pos;
    escaped = 0;

    for ( ;; ) {
        p = s->pos;

        while (p < s->last && *p >= 0x20 && *p < 0x80
               && *p != '"' && *p != '\\')
        {
            p++;
        }

        s->pos = p;

        if (p == s->last || *p < 0x20) {
            return NGX_DECLINED;
        }

        if (*p == '"') {
            break;
        }

        if (*p >= 0x80) {
            if (ngx_model_scan_utf8(s) != NGX_OK) {
                return NGX_DECLINED;
            }

            continue;
        }

        /* an escape */

        escaped = 1;

        if (s->last - p < 2) {
            return NGX_DECLINED;
        }

        switch (p[1]) {

        case '"': case '\\': case '/': case 'b':
        case 'f': case 'n': case 'r': case 't':
            s->pos = p + 2;
            continue;

        case 'u':
            break;

        default:
            return NGX_DECLINED;
        }

        if (s->last - p < 6 || ngx_model_scan_hex(p + 2, &v) != NGX_OK) {
            return NGX_DECLINED;
        }

        p += 6;

        /* jansson refuses \u0000 without JSON_ALLOW_NUL */

        if (v == 0 || (v >= 0xdc00 && v <= 0xdfff)) {
            return NGX_DECLINED;
        }

        if (v >= 0xd800 && v <= 0xdbff) {
            if (s->last - p < 6 || p[0] != '\\' || p[1] != 'u'
                || ngx_model_scan_hex(p + 2, &lo) != NGX_OK
                || lo < 0xdc00 || lo > 0xdfff)
            {
                return NGX_DECLINED;
            }

            p += 6;
        }

        s->pos = p;
    }

    /* s->pos is at the closing quote */

    if (out) {
        if (escaped) {
            out->data = s->buf;
            s->buf = ngx_model_decode(s->buf, start, s->pos);
            out->len = s->buf - out->data;

        } else {
            out->data = start;
            out->len = s->pos - start;
        }
    }

    s->escaped = escaped;
    s->pos++;

    return NGX_OK;
}


/* one UTF-8 character as jansson's utf8_check_full() takes it */

static ngx_int_t
ngx_model_scan_utf8(ngx_model_scan_t *s)
{
    u_char    *p, c;
    size_t     n, i;
    uint32_t   v;

    p = s->pos;
    c = *p;

    if (c < 0xc2 || c > 0xf4) {
        return NGX_DECLINED;
    }

    if (c < 0xe0) {
        n = 2;
        v = c & 0x1f;

    } else if (c < 0xf0) {
        n = 3;
        v = c & 0x0f;

    } else {
        n = 4;
        v = c & 0x07;
    }

    if ((size_t) (s->last - p) < n) {
        return NGX_DECLINED;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return NGX_DECLINED;
        }

        v = (v << 6) | (p[i] & 0x3f);
    }

    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000)
        || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
    {
        return NGX_DECLINED;
    }

    s->pos = p + n;

    return NGX_OK;
}


static ngx_int_t
ngx_model_scan_hex(u_char *p, uint32_t *v)
{
    u_char      c;
    ngx_uint_t  i;

    *v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return NGX_DECLINED;
        }

        *v = (*v << 4) | c;
    }

    return NGX_OK;
}


/* the value of a validated string's text, p to last; never longer */

static u_char *
ngx_model_decode(u_char *dst, u_char *p, u_char *last)
{
    uint32_t  v, lo;

    while (p < last) {

        if (*p != '\\') {
            *dst++ = *p++;
            continue;
        }

        p++;

        switch (*p++) {
        case 'b': *dst++ = '\b'; continue;
        case 'f': *dst++ = '\f'; continue;
        case 'n': *dst++ = '\n'; continue;
        case 'r': *dst++ = '\r'; continue;
        case 't': *dst++ = '\t'; continue;
        case 'u': break;
        default:  *dst++ = p[-1]; continue;     /* " \ / */
        }

        (void) ngx_model_scan_hex(p, &v);
        p += 4;

        if (v >= 0xd800 && v <= 0xdbff) {
            (void) ngx_model_scan_hex(p + 2, &lo);
            p += 6;
            v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
        }

        if (v < 0x80) {
            *dst++ = (u_char) v;

        } else if (v < 0x800) {
            *dst++ = (u_char) (0xc0 | (v >> 6));
            *dst++ = (u_char) (0x80 | (v & 0x3f));

        } else if (v < 0x10000) {
            *dst++ = (u_char) (0xe0 | (v >> 12));
            *dst++ = (u_char) (0x80 | ((v >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (v & 0x3f));

        } else {
            *dst++ = (u_char) (0xf0 | (v >> 18));
            *dst++ = (u_char) (0x80 | ((v >> 12) & 0x3f));
            *dst++ = (u_char) (0x80 | ((v >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (v & 0x3f));
        }
    }

    return dst;
}


/*
 * JSON's grammar, and only numbers that jansson reads without a range
 * error: integers of at most 18 digits, fractions without an exponent.
 */

static ngx_int_t
ngx_model_scan_number(ngx_model_scan_t *s)
{
    u_char  *p, *digits;

    p = s->pos;

    if (*p == '-') {
        p++;
    }

    digits = p;

    if (p < s->last && *p == '0') {
        p++;

    } else {
        while (p < s->last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p == digits) {
        return NGX_DECLINED;
    }

    if (p < s->last && *p == '.') {
        if (p - digits > 300) {
            return NGX_DECLINED;
        }

        digits = ++p;

        while (p < s->last && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p == digits) {
            return NGX_DECLINED;
        }

    } else if (p - digits > 18) {
        return NGX_DECLINED;
    }

    if (p < s->last && (*p == 'e' || *p == 'E')) {
        return NGX_DECLINED;
    }

    s->pos = p;

    return NGX_OK;
}


static ngx_int_t
ngx_model_scan_literal(ngx_model_scan_t *s, char *word, size_t len)
{
    if ((size_t) (s->last - s->pos) < len
        || ngx_strncmp(s->pos, word, len) != 0)
    {
        return NGX_DECLINED;
    }

    s->pos += len;

    return NGX_OK;
}


static void
ngx_model_scan_ws(ngx_model_scan_t *s)
{
    while (s->pos < s->last
           && (*s->pos == ' ' || *s->pos == '\t' || *s->pos == '\n'
               || *s->pos == '\r'))
    {
        s->pos++;
    }
}
