/*
 * A fast read of one streamed Chat Completions chunk,
 * {"choices":[{"delta":{"content":"..."},"finish_reason":null}],...},
 * without building a JSON tree.  It accepts only text that jansson's
 * json_loadb(data, len, 0) would accept, reading it to the same values
 * (escapes, \uXXXX and surrogate pairs decoded as jansson does), and only
 * chunks that a reader of the tree would take without an error; for
 * anything else it declines and the caller asks jansson, which then also
 * gives the error.  Knows nothing of the module that uses it.
 */

#ifndef _NGX_MODEL_CHUNK_H_INCLUDED_
#define _NGX_MODEL_CHUNK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct {
    ngx_str_t    content;       /* choices[0].delta.content, a string */
    ngx_str_t    reason;        /* choices[0].finish_reason, a string */
    unsigned     has_content:1;
    unsigned     has_reason:1;
} ngx_model_chunk_t;


/*
 * NGX_OK: chunk is filled in (its strings point into data, or into buf
 * when they had escapes: buf must have room for len bytes); NGX_DECLINED:
 * not recognised, read it with jansson.
 */
ngx_int_t ngx_model_chunk_parse(u_char *data, size_t len, u_char *buf,
    ngx_model_chunk_t *chunk);


#endif /* _NGX_MODEL_CHUNK_H_INCLUDED_ */
