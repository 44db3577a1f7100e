/*
 * Request and response header lists: finding headers by name (they may
 * repeat) and adding a response header.  Knows nothing of the modules
 * that use it.
 */

#ifndef _NGX_HTTP_HEADERS_H_INCLUDED_
#define _NGX_HTTP_HEADERS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    ngx_list_part_t            *part;
    ngx_uint_t                  i;
} ngx_http_headers_iter_t;


/* Starts a walk over list (&r->headers_in.headers, ...). */
void ngx_http_headers_iter(ngx_http_headers_iter_t *it, ngx_list_t *list);

/*
 * The next header of the walk named name (len bytes, any case), skipping
 * deleted ones (hash 0); NULL when none is left.
 */
ngx_table_elt_t *ngx_http_headers_next(ngx_http_headers_iter_t *it,
    const char *name, size_t len);

/* The first header named name in list, or NULL. */
ngx_table_elt_t *ngx_http_headers_find(ngx_list_t *list, const char *name,
    size_t len);

/* Adds a response header; name must live as long as the request. */
ngx_int_t ngx_http_headers_add(ngx_http_request_t *r, const char *name,
    ngx_str_t *value);


#endif /* _NGX_HTTP_HEADERS_H_INCLUDED_ */
