/*
 * Request and response header lists (see ngx_http_headers.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_headers.h"


void
ngx_http_headers_iter(ngx_http_headers_iter_t *it, ngx_list_t *list)
{
    it->part = &list->part;
    it->i = 0;
}


ngx_table_elt_t *
ngx_http_headers_next(ngx_http_headers_iter_t *it, const char *name,
    size_t len)
{
    ngx_table_elt_t  *h;

    for ( ;; ) {

        if (it->i >= it->part->nelts) {
            if (it->part->next == NULL) {
                return NULL;
            }

            it->part = it->part->next;
            it->i = 0;
            continue;
        }

        h = (ngx_table_elt_t *) it->part->elts + it->i++;

        if (h->hash != 0
            && h->key.len == len
            && ngx_strncasecmp(h->key.data, (u_char *) name, len) == 0)
        {
            return h;
        }
    }
}


ngx_table_elt_t *
ngx_http_headers_find(ngx_list_t *list, const char *name, size_t len)
{
    ngx_http_headers_iter_t  it;

    ngx_http_headers_iter(&it, list);

    return ngx_http_headers_next(&it, name, len);
}


ngx_int_t
ngx_http_headers_add(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}
