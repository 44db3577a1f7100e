
/*
 * The event loop as the WebSocket harness needs it: timers that are only
 * flags, events that are always armed, and requests that finalize by
 * doing nothing.  The harness looks at what the parser delivers and sends,
 * not at scheduling.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>


volatile ngx_msec_t  ngx_current_msec;
ngx_uint_t           ngx_exiting;
ngx_rbtree_t         ngx_event_timer_rbtree;
ngx_queue_t          ngx_posted_events;
ngx_queue_t          ngx_posted_next_events;
ngx_module_t         ngx_http_core_module;


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    return malloc(size);
}


void
ngx_rbtree_insert(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
}


void
ngx_rbtree_delete(ngx_rbtree_t *tree, ngx_rbtree_node_t *node)
{
}


ngx_int_t
ngx_handle_read_event(ngx_event_t *rev, ngx_uint_t flags)
{
    return NGX_OK;
}


ngx_int_t
ngx_handle_write_event(ngx_event_t *wev, size_t lowat)
{
    return NGX_OK;
}


void
ngx_http_block_reading(ngx_http_request_t *r)
{
}


void
ngx_http_request_empty_handler(ngx_http_request_t *r)
{
}


void
ngx_http_finalize_request(ngx_http_request_t *r, ngx_int_t rc)
{
}


void
ngx_http_run_posted_requests(ngx_connection_t *c)
{
}


ngx_int_t
ngx_http_write_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    return NGX_OK;
}
