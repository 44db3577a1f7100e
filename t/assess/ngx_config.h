/*
 * A stand-in for nginx's ngx_config.h, for the unit test of
 * ngx_scenario_assess.c only (t/assess/assess_test.c): the engine uses
 * nothing of nginx but these types and a few libc wrappers, so it builds
 * without an nginx tree.  The module itself is built against the real
 * headers.
 */

#ifndef _NGX_CONFIG_H_INCLUDED_
#define _NGX_CONFIG_H_INCLUDED_


#include <sys/types.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


typedef intptr_t   ngx_int_t;
typedef uintptr_t  ngx_uint_t;


#endif /* _NGX_CONFIG_H_INCLUDED_ */
