/*
 * JSON in and out of nginx requests (jansson): reading a size-limited body,
 * sending a document, and the error shape
 * {"error": {"code": "...", "message": "..."}}.  Knows nothing of the
 * module that uses it.
 */

#ifndef _NGX_HTTP_JSON_H_INCLUDED_
#define _NGX_HTTP_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>

#include "ngx_http_headers.h"


/*
 * Checks Content-Type (415) and a declared length (413) and starts reading
 * the body; returns NGX_DONE, or a status to answer with (already sent as
 * JSON when it is an error: finalize with the returned code).
 */
ngx_int_t ngx_http_json_read(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler);

/*
 * In the body handler: parses the body read so far into an object, owned by
 * r->pool (released by a pool cleanup).  On NULL, *rc is the status of the
 * error already sent: finalize with it.
 */
json_t *ngx_http_json_body(ngx_http_request_t *r, size_t max, ngx_int_t *rc);

/*
 * Parses len bytes into a JSON value (the caller owns it).  On NULL, msg
 * holds a NUL-terminated ASCII message of at most size bytes.
 */
json_t *ngx_http_json_parse(u_char *data, size_t len, u_char *msg,
    size_t size);

/* Sends json (not stolen) with status; returns the rc to finalize with. */
ngx_int_t ngx_http_json_send(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json);

/* Sends an already serialized document (copied). */
ngx_int_t ngx_http_json_send_raw(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len);

/* Sends the error shape; returns the rc to finalize with. */
ngx_int_t ngx_http_json_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);

/* Adds Retry-After (ngx_http_headers_add() adds any other header). */
ngx_int_t ngx_http_json_retry_after(ngx_http_request_t *r, time_t seconds);

/* Serializes json compactly into memory of pool. */
ngx_int_t ngx_http_json_dump(ngx_pool_t *pool, json_t *json, ngx_str_t *out);

/* Ties a json_t to a pool: it is released when the pool is. */
json_t *ngx_http_json_own(ngx_pool_t *pool, json_t *json);

/*
 * Reads a string field of at most max characters (code points) and at least
 * min.  Returns NGX_OK, NGX_DECLINED (missing) or NGX_ERROR (wrong type or
 * length).  The value points into the object.
 */
ngx_int_t ngx_http_json_string(json_t *obj, const char *key, ngx_str_t *value,
    size_t min, size_t max);

/*
 * The text of a JSON string (without its quotes) for len bytes of UTF-8,
 * escaped as jansson's dump escapes it ('"', '\\', \b \f \n \r \t, other
 * control characters as \u00XX in capitals): without a tree, the same
 * bytes.  The length is NGX_HTTP_JSON_INVALID when src is not valid UTF-8
 * (where jansson refuses the string).
 */
#define NGX_HTTP_JSON_INVALID  ((size_t) -1)

size_t ngx_http_json_escape_len(u_char *src, size_t len);
u_char *ngx_http_json_escape(u_char *dst, u_char *src, size_t len);

/*
 * A JSON string at p, its quotes included, that jansson reads (flags 0)
 * as it stands: valid UTF-8, no raw control characters, simple escapes
 * and \u00XX of a control character other than NUL.  Returns the end of
 * the string, or NULL for anything else (it may still be valid JSON: a
 * caller then asks jansson).
 */
u_char *ngx_http_json_scan_string(u_char *p, u_char *last);

/* RFC 3339 UTC timestamp of t, allocated from pool. */
u_char *ngx_http_json_time(ngx_pool_t *pool, time_t t);


#endif /* _NGX_HTTP_JSON_H_INCLUDED_ */
