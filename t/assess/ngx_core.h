/*
 * A stand-in for nginx's ngx_core.h (see ngx_config.h here): the same
 * definitions as nginx's, reduced to what ngx_scenario_assess.c uses.
 */

#ifndef _NGX_CORE_H_INCLUDED_
#define _NGX_CORE_H_INCLUDED_


#include <ngx_config.h>


typedef struct {
    size_t      len;
    u_char     *data;
} ngx_str_t;


#define NGX_OK          0
#define NGX_ERROR      -1
#define NGX_DECLINED   -5

#define ngx_string(str)     { sizeof(str) - 1, (u_char *) str }
#define ngx_null_string     { 0, NULL }

#define ngx_strncmp(s1, s2, n)  strncmp((const char *) s1, (const char *) s2, n)
#define ngx_strcmp(s1, s2)  strcmp((const char *) s1, (const char *) s2)
#define ngx_strlen(s)       strlen((const char *) s)
#define ngx_memzero(buf, n)       (void) memset(buf, 0, n)
#define ngx_memset(buf, c, n)     (void) memset(buf, c, n)
#define ngx_strchr(s1, c)         strchr((const char *) s1, (int) c)
#define ngx_memcpy(dst, src, n)   (void) memcpy(dst, src, n)
#define ngx_memcmp(s1, s2, n)     memcmp((const char *) s1, (const char *) s2, n)
#define ngx_cpymem(dst, src, n)   (((u_char *) memcpy(dst, src, n)) + (n))
#define ngx_free            free

#define ngx_max(val1, val2)  ((val1 < val2) ? (val2) : (val1))
#define ngx_min(val1, val2)  ((val1 > val2) ? (val2) : (val1))


#endif /* _NGX_CORE_H_INCLUDED_ */
