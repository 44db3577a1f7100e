/*
 * argon2id password hashing (libsodium) in an nginx thread pool, so that a
 * login never stalls the other requests of a worker.  Knows nothing of the
 * module that uses it.
 */

#ifndef _NGX_PWHASH_H_INCLUDED_
#define _NGX_PWHASH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <sodium.h>


#define NGX_PWHASH_MAX_PASSWORD  1024


typedef struct {
    ngx_str_t             name;          /* thread pool */
    ngx_thread_pool_t    *thread_pool;
    size_t                memlimit;
    ngx_uint_t            opslimit;
    char                  dummy[crypto_pwhash_STRBYTES];
} ngx_pwhash_conf_t;


typedef struct {
    ngx_uint_t            verify;        /* 0: make a hash, 1: check one */
    size_t                memlimit;
    ngx_uint_t            opslimit;
    u_char                password[NGX_PWHASH_MAX_PASSWORD];
    size_t                password_len;
    char                  hash[crypto_pwhash_STRBYTES];

    ngx_http_request_t   *request;
    ngx_event_t           hold;          /* keeps an exiting worker alive */
    ngx_http_event_handler_pt  handler;  /* runs when the job is done */

    /* results */
    ngx_int_t             rc;            /* NGX_OK, NGX_DECLINED, NGX_ERROR */
    ngx_uint_t            needs_rehash;  /* hash then holds a new one */
} ngx_pwhash_job_t;


/* Configuration: bind the thread pool, make the dummy hash. */
char *ngx_pwhash_conf_init(ngx_conf_t *cf, ngx_pwhash_conf_t *conf);

/*
 * Hashes or verifies in the thread pool.  hash is the stored hash to check
 * (NULL checks against the dummy, so that an unknown user costs the same
 * time).  When the job is done, handler runs (or, if the request was
 * terminated meanwhile, the request is finalized).  Returns NULL when the
 * pool's queue is full (answer 503) or memory is short.
 */
ngx_pwhash_job_t *ngx_pwhash_post(ngx_http_request_t *r,
    ngx_pwhash_conf_t *conf, ngx_uint_t verify, ngx_str_t *password,
    ngx_str_t *hash, ngx_http_event_handler_pt handler);


#endif /* _NGX_PWHASH_H_INCLUDED_ */
