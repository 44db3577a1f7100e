/*
 * JSON request and response helpers.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_json.h"


static ngx_int_t ngx_http_json_out(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len);
static ngx_int_t ngx_http_json_content_type(ngx_http_request_t *r);
static u_char *ngx_http_json_collect(ngx_http_request_t *r, size_t max,
    size_t *len, ngx_int_t *rc);
static void ngx_http_json_cleanup(void *data);
static const char *ngx_http_json_error_text(enum json_error_code code);
static u_char *ngx_http_json_path(u_char *data, size_t pos, u_char *out,
    u_char *last);
static u_char *ngx_http_json_index(u_char *p, u_char *last, ngx_uint_t n);
static size_t ngx_http_json_utf8(u_char *p, u_char *last);


#define NGX_HTTP_JSON_MSG_LEN  256
#define NGX_HTTP_JSON_DEPTH    16


/* ASCII that a JSON string holds as it is: not '"', '\\', a control */
static uint32_t  ngx_http_json_plain[8] = {
    0x00000000, 0xfffffffb, 0xefffffff, 0xffffffff, 0, 0, 0, 0
};

#define ngx_http_json_is_plain(c)                                            \
    (ngx_http_json_plain[(c) >> 5] & (1U << ((c) & 0x1f)))


static ngx_str_t  ngx_http_json_type =
    ngx_string("application/json; charset=utf-8");


ngx_int_t
ngx_http_json_read(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler)
{
    ngx_int_t  rc;

    if (ngx_http_json_content_type(r) != NGX_OK) {
        return ngx_http_json_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                   "unsupported_media_type",
                                   "Content-Type must be application/json");
    }

    if (r->headers_in.content_length_n > (off_t) max) {
        /* the body is not read: do not keep the connection */
        r->keepalive = 0;
        return ngx_http_json_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "too_large", "request body is too large");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


json_t *
ngx_http_json_body(ngx_http_request_t *r, size_t max, ngx_int_t *rc)
{
    u_char   msg[NGX_HTTP_JSON_MSG_LEN];
    u_char  *data;
    size_t   len;
    json_t  *json;

    data = ngx_http_json_collect(r, max, &len, rc);
    if (data == NULL) {
        return NULL;
    }

    json = ngx_http_json_parse(data, len, msg, sizeof(msg));
    if (json == NULL) {
        *rc = ngx_http_json_error(r, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  (char *) msg);
        return NULL;
    }

    if (ngx_http_json_own(r->pool, json) == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    if (!json_is_object(json)) {
        *rc = ngx_http_json_error(r, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "the body must be a JSON object");
        return NULL;
    }

    return json;
}


/*
 * jansson's own text may quote the input and end inside a UTF-8 character:
 * the message says what and where in words of its own, in ASCII
 */

json_t *
ngx_http_json_parse(u_char *data, size_t len, u_char *msg, size_t size)
{
    u_char        *p;
    json_t        *json;
    json_error_t   err;

    /* jansson rejects invalid UTF-8 and NUL characters in strings */
    json = json_loadb((char *) data, len, JSON_REJECT_DUPLICATES, &err);
    if (json != NULL) {
        return json;
    }

    if (size) {
        p = ngx_snprintf(msg, size - 1,
                         "invalid JSON: %s at line %d, column %d (byte %d)",
                         ngx_http_json_error_text(json_error_code(&err)),
                         err.line, err.column, err.position);

        /*
         * a string that is not UTF-8: which field ("persona.name",
         * "criteria[1].keywords[0]"), so that a client can say which
         * of its texts is broken
         */
        if (json_error_code(&err) == json_error_invalid_utf8
            && err.position > 0 && (size_t) err.position <= len)
        {
            p = ngx_http_json_path(data, err.position, p, msg + size - 1);
        }

        *p = '\0';
    }

    return NULL;
}


ngx_int_t
ngx_http_json_send(ngx_http_request_t *r, ngx_uint_t status, json_t *json)
{
    ngx_str_t  doc;

    if (ngx_http_json_dump(r->pool, json, &doc) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_json_out(r, status, doc.data, doc.len);
}


ngx_int_t
ngx_http_json_send_raw(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, data, len);

    return ngx_http_json_out(r, status, p, len);
}


/* data is in r->pool already; a newline ends every document */

static ngx_int_t
ngx_http_json_out(ngx_http_request_t *r, ngx_uint_t status, u_char *data,
    size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b[2];
    ngx_chain_t   out[2];

    b[0] = ngx_calloc_buf(r->pool);
    b[1] = ngx_calloc_buf(r->pool);
    if (b[0] == NULL || b[1] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b[0]->pos = data;
    b[0]->last = data + len;
    b[0]->memory = 1;

    b[1]->pos = (u_char *) "\n";
    b[1]->last = b[1]->pos + 1;
    b[1]->memory = 1;
    b[1]->last_buf = (r == r->main) ? 1 : 0;
    b[1]->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_json_type;
    r->headers_out.content_type_len = ngx_http_json_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len + 1;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out[0].buf = b[0];
    out[0].next = &out[1];
    out[1].buf = b[1];
    out[1].next = NULL;

    return ngx_http_output_filter(r, &out[0]);
}


ngx_int_t
ngx_http_json_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    json_t           *json;
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    json = json_pack("{s:{s:s,s:s}}", "error", "code", code,
                     "message", message);
    if (json == NULL) {
        /* a message that is not UTF-8 must not turn a 4xx into a 500 */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "json error: message for \"%s\" is not valid UTF-8",
                      code);
        json = json_pack("{s:{s:s,s:s}}", "error", "code", code,
                         "message", "(the message could not be encoded)");
        if (json == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (status == NGX_HTTP_UNAUTHORIZED
        && r->headers_out.www_authenticate == NULL)
    {
        h = ngx_list_push(&r->headers_out.headers);
        if (h != NULL) {
            h->hash = 1;
            ngx_str_set(&h->key, "WWW-Authenticate");
            ngx_str_set(&h->value, "Bearer");
#if (nginx_version >= 1023000)
            h->next = NULL;
#endif
            r->headers_out.www_authenticate = h;
        }
    }

    /* an error answers for the whole request: drop a body not yet read */
    if (r == r->main && !r->request_body && !r->discard_body) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }
    }

    rc = ngx_http_json_send(r, status, json);

    json_decref(json);

    return rc;
}


ngx_int_t
ngx_http_json_retry_after(ngx_http_request_t *r, time_t seconds)
{
    ngx_str_t  v;

    v.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    v.len = ngx_sprintf(v.data, "%T", seconds < 1 ? 1 : seconds) - v.data;

    return ngx_http_headers_add(r, "Retry-After", &v);
}


ngx_int_t
ngx_http_json_dump(ngx_pool_t *pool, json_t *json, ngx_str_t *out)
{
    size_t  len;

    len = json_dumpb(json, NULL, 0, JSON_COMPACT);
    if (len == 0) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = json_dumpb(json, (char *) out->data, len, JSON_COMPACT);

    return NGX_OK;
}


json_t *
ngx_http_json_own(ngx_pool_t *pool, json_t *json)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        json_decref(json);
        return NULL;
    }

    cln->handler = ngx_http_json_cleanup;
    cln->data = json;

    return json;
}


ngx_int_t
ngx_http_json_string(json_t *obj, const char *key, ngx_str_t *value,
    size_t min, size_t max)
{
    size_t   n;
    u_char  *p;
    json_t  *v;

    v = json_object_get(obj, key);
    if (v == NULL) {
        return NGX_DECLINED;
    }

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    value->data = (u_char *) json_string_value(v);
    value->len = json_string_length(v);

    /* jansson guarantees valid UTF-8: count code points */
    n = 0;
    for (p = value->data; p < value->data + value->len; p++) {
        if ((*p & 0xc0) != 0x80) {
            n++;
        }
    }

    if (n < min || n > max) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


size_t
ngx_http_json_escape_len(u_char *src, size_t len)
{
    size_t   n, k;
    u_char  *p, *last;

    n = len;
    last = src + len;
    p = src;

    while (p < last) {

        if (ngx_http_json_is_plain(*p)) {
            p++;
            continue;
        }

        if (*p >= 0x80) {
            k = ngx_http_json_utf8(p, last);
            if (k == 0) {
                return NGX_HTTP_JSON_INVALID;
            }

            p += k;
            continue;
        }

        if (*p == '"' || *p == '\\') {
            n++;

        } else if (*p < 0x20) {
            n += (*p == '\b' || *p == '\f' || *p == '\n' || *p == '\r'
                  || *p == '\t')
                 ? 1 : 5;
        }

        p++;
    }

    return n;
}


/* src is valid UTF-8 (ngx_http_json_escape_len() said so) */

u_char *
ngx_http_json_escape(u_char *dst, u_char *src, size_t len)
{
    u_char   c, *last, *run;

    static u_char  hex[] = "0123456789ABCDEF";

    last = src + len;

    while (src < last) {

        /* the common case: a run of text that needs nothing */
        for (run = src; src < last && (*src >= 0x80
                                       || ngx_http_json_is_plain(*src));
             src++)
        {
            /* void */
        }

        dst = ngx_cpymem(dst, run, src - run);

        if (src == last) {
            break;
        }

        c = *src++;

        *dst++ = '\\';

        switch (c) {

        case '"':
        case '\\':
            *dst++ = c;
            break;

        case '\b':
            *dst++ = 'b';
            break;

        case '\f':
            *dst++ = 'f';
            break;

        case '\n':
            *dst++ = 'n';
            break;

        case '\r':
            *dst++ = 'r';
            break;

        case '\t':
            *dst++ = 't';
            break;

        default:
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 0xf];
        }
    }

    return dst;
}


u_char *
ngx_http_json_scan_string(u_char *p, u_char *last)
{
    u_char  c;
    size_t  k;

    if (p == last || *p++ != '"') {
        return NULL;
    }

    while (p < last) {
        c = *p;

        if (ngx_http_json_is_plain(c)) {
            p++;
            continue;
        }

        if (c == '"') {
            return p + 1;
        }

        if (c < 0x20) {
            return NULL;
        }

        if (c >= 0x80) {
            k = ngx_http_json_utf8(p, last);
            if (k == 0) {
                return NULL;
            }

            p += k;
            continue;
        }

        if (c != '\\') {
            p++;
            continue;
        }

        if (last - p < 2) {
            return NULL;
        }

        switch (p[1]) {

        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            break;

        case 'u':
            /* what a dump writes for a control character, not NUL */
            if (last - p < 6 || p[2] != '0' || p[3] != '0'
                || (p[4] != '0' && p[4] != '1')
                || !((p[5] >= '0' && p[5] <= '9')
                     || (p[5] >= 'a' && p[5] <= 'f')
                     || (p[5] >= 'A' && p[5] <= 'F'))
                || (p[4] == '0' && p[5] == '0'))
            {
                return NULL;
            }

            p += 6;
            break;

        default:
            return NULL;
        }
    }

    return NULL;
}


u_char *
ngx_http_json_time(ngx_pool_t *pool, time_t t)
{
    u_char    *p;
    ngx_tm_t   tm;

    p = ngx_pnalloc(pool, sizeof("1970-01-01T00:00:00Z"));
    if (p == NULL) {
        return NULL;
    }

    ngx_gmtime(t, &tm);

    ngx_sprintf(p, "%4d-%02d-%02dT%02d:%02d:%02dZ%Z",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    return p;
}


static ngx_int_t
ngx_http_json_content_type(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return NGX_ERROR;
    }

    ct = &r->headers_in.content_type->value;
    last = ct->data + ct->len;

    for (p = ct->data; p < last && *p != ';' && *p != ' '; p++) {
        /* void */
    }

    if ((size_t) (p - ct->data) == sizeof("application/json") - 1
        && ngx_strncasecmp(ct->data, (u_char *) "application/json",
                           sizeof("application/json") - 1)
           == 0)
    {
        return NGX_OK;
    }

    return NGX_ERROR;
}


/* the body as one piece of memory; it is small, so a file is read whole */

static u_char *
ngx_http_json_collect(ngx_http_request_t *r, size_t max, size_t *len,
    ngx_int_t *rc)
{
    u_char       *data, *p;
    size_t        size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        *rc = ngx_http_json_error(r, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "a JSON body is required");
        return NULL;
    }

    size = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        size += b->in_file ? (size_t) (b->file_last - b->file_pos)
                           : (size_t) (b->last - b->pos);
    }

    if (size > max) {
        *rc = ngx_http_json_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                  "too_large", "request body is too large");
        return NULL;
    }

    if (size == 0) {
        *rc = ngx_http_json_error(r, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "a JSON body is required");
        return NULL;
    }

    data = ngx_pnalloc(r->pool, size);
    if (data == NULL) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NULL;
    }

    p = data;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);
        if (n != b->file_last - b->file_pos) {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NULL;
        }

        p += n;
    }

    *len = size;

    return data;
}


static void
ngx_http_json_cleanup(void *data)
{
    json_decref(data);
}


/*
 * The path of the value that holds byte pos, as ' in "a.b[2]"', written
 * at out: the text before pos was valid JSON for the parser, so a small
 * scan of its containers and keys finds it.  Printable ASCII only (other
 * bytes of a key become '?'); nothing when pos is at the top level.
 */

static u_char *
ngx_http_json_path(u_char *data, size_t pos, u_char *out, u_char *last)
{
    u_char      *p, *end, *start, *k, *o;
    ngx_uint_t   depth, string, key, i;
    struct {
        u_char      *key;
        size_t       len;
        ngx_uint_t   index;
        unsigned     array:1;
        unsigned     want_key:1;
    } f[NGX_HTTP_JSON_DEPTH];

    depth = 0;
    string = 0;
    key = 0;
    start = NULL;
    end = data + pos;

    for (p = data; p < end; p++) {

        if (string) {
            if (*p == '\\') {
                p++;

            } else if (*p == '"') {
                string = 0;

                if (key && depth <= NGX_HTTP_JSON_DEPTH) {
                    f[depth - 1].key = start;
                    f[depth - 1].len = p - start;
                }
            }

            continue;
        }

        switch (*p) {

        case '{':
        case '[':
            if (depth < NGX_HTTP_JSON_DEPTH) {
                f[depth].key = NULL;
                f[depth].len = 0;
                f[depth].index = 0;
                f[depth].array = (*p == '[');
                f[depth].want_key = (*p == '{');
            }

            depth++;
            break;

        case '}':
        case ']':
            if (depth) {
                depth--;
            }
            break;

        case ',':
            if (depth && depth <= NGX_HTTP_JSON_DEPTH) {
                f[depth - 1].index++;
                f[depth - 1].want_key = !f[depth - 1].array;
            }
            break;

        case ':':
            if (depth && depth <= NGX_HTTP_JSON_DEPTH) {
                f[depth - 1].want_key = 0;
            }
            break;

        case '"':
            string = 1;
            start = p + 1;
            key = depth && depth <= NGX_HTTP_JSON_DEPTH
                  && !f[depth - 1].array && f[depth - 1].want_key;
            break;
        }
    }

    if (depth > NGX_HTTP_JSON_DEPTH) {
        depth = NGX_HTTP_JSON_DEPTH;
    }

    if (depth == 0 || last - out < 8) {
        return out;
    }

    o = ngx_cpymem(out, " in \"", 5);

    for (i = 0; i < depth && o < last - 1; i++) {

        if (f[i].array) {
            o = ngx_http_json_index(o, last - 1, f[i].index);
            continue;
        }

        if (f[i].key == NULL || f[i].want_key) {
            break;
        }

        if (i > 0 && o < last - 1) {
            *o++ = '.';
        }

        for (k = f[i].key; k < f[i].key + f[i].len && o < last - 1; k++) {
            *o++ = (*k >= 0x20 && *k < 0x7f && *k != '"' && *k != '\\')
                   ? *k : '?';
        }
    }

    if (o == out + 5) {
        return out;
    }

    *o++ = '"';

    return o;
}


/* "[n]" at p, if it fits before last */

static u_char *
ngx_http_json_index(u_char *p, u_char *last, ngx_uint_t n)
{
    u_char   digits[NGX_INT_T_LEN];
    size_t   len;

    len = 0;

    do {
        digits[len++] = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n && len < sizeof(digits));

    if ((size_t) (last - p) < len + 2) {
        return p;
    }

    *p++ = '[';

    while (len) {
        *p++ = digits[--len];
    }

    *p++ = ']';

    return p;
}


/*
 * The length of the character of more than one byte at p, 0 when it is
 * not valid UTF-8 as jansson checks it: no overlong forms, no surrogates,
 * nothing above U+10FFFF.
 */

static size_t
ngx_http_json_utf8(u_char *p, u_char *last)
{
    u_char  c, lo, hi;
    size_t  n, i;

    c = *p;
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = (c == 0xe0) ? 0xa0 : 0x80;
        hi = (c == 0xed) ? 0x9f : 0xbf;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = (c == 0xf0) ? 0x90 : 0x80;
        hi = (c == 0xf4) ? 0x8f : 0xbf;

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return n;
}


/* fixed, ASCII descriptions: library text never reaches a reply */

static const char *
ngx_http_json_error_text(enum json_error_code code)
{
    switch (code) {

    case json_error_invalid_utf8:
        return "the body is not valid UTF-8";

    case json_error_premature_end_of_input:
        return "the body ends too early";

    case json_error_end_of_input_expected:
        return "extra data after the JSON value";

    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "a string contains a NUL character";

    case json_error_duplicate_key:
        return "a key appears twice in one object";

    case json_error_numeric_overflow:
        return "a number is too large";

    case json_error_stack_overflow:
        return "the body is nested too deeply";

    case json_error_out_of_memory:
        return "the body could not be parsed";

    default:
        return "syntax error";
    }
}
