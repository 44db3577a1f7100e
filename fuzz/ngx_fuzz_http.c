
/*
 * nginx functions that the harnessed files call only on paths the
 * harnesses never take (request bodies, headers, the handshake): linked so
 * that each file builds whole, and abort() so that a call would be noticed.
 */

/* nginx's headers are left out: only the names matter here */
#include <stdlib.h>


#define ngx_fuzz_never(name)                                                  \
    void name(void);                                                          \
    void name(void) { abort(); }

ngx_fuzz_never(ngx_calloc)
ngx_fuzz_never(ngx_decode_base64)
ngx_fuzz_never(ngx_encode_base64)
ngx_fuzz_never(ngx_gmtime)
ngx_fuzz_never(ngx_http_cleanup_add)
ngx_fuzz_never(ngx_http_discard_request_body)
ngx_fuzz_never(ngx_http_output_filter)
ngx_fuzz_never(ngx_http_read_client_request_body)
ngx_fuzz_never(ngx_http_send_header)
ngx_fuzz_never(ngx_http_send_special)
ngx_fuzz_never(ngx_list_push)
ngx_fuzz_never(ngx_log_error_core)
ngx_fuzz_never(ngx_pool_cleanup_add)
ngx_fuzz_never(ngx_read_file)
ngx_fuzz_never(ngx_sha1_final)
ngx_fuzz_never(ngx_sha1_init)
ngx_fuzz_never(ngx_sha1_update)
ngx_fuzz_never(ngx_sprintf)
ngx_fuzz_never(ngx_strncasecmp)
ngx_fuzz_never(ngx_tcp_nodelay)

/* read by the handshake only (the module contexts' count) */
unsigned long  ngx_http_max_module;
