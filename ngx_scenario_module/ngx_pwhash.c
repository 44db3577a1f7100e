/*
 * argon2id in a thread pool.  The thread touches only its job; the request
 * is held with r->main->blocked so that nginx cannot free it meanwhile.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_pwhash.h"

#if (NGX_LINUX)
#include <sys/resource.h>
#include <sys/syscall.h>
#endif


/*
 * Hashing threads run at a lower priority than the event loop: a burst of
 * logins then takes the idle CPU, not the time of requests in flight.
 */
#define NGX_PWHASH_NICE  19

/*
 * A worker that shuts down exits once no timer but cancelable ones is left;
 * a job in the pool holds a plain timer so that its request is answered
 * first.  Far longer than any hash, it only bounds a stuck queue.
 */
#define NGX_PWHASH_HOLD  300000


static void ngx_pwhash_thread(void *data, ngx_log_t *log);
static void ngx_pwhash_done(ngx_event_t *ev);
static void ngx_pwhash_hold(ngx_event_t *ev);


char *
ngx_pwhash_conf_init(ngx_conf_t *cf, ngx_pwhash_conf_t *conf)
{
    u_char  secret[32];

    if (sodium_init() < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sodium_init() failed");
        return NGX_CONF_ERROR;
    }

    if (conf->memlimit < crypto_pwhash_MEMLIMIT_MIN
        || conf->opslimit < crypto_pwhash_OPSLIMIT_MIN)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "password hashing cost is below argon2id's minimum");
        return NGX_CONF_ERROR;
    }

    conf->thread_pool = ngx_thread_pool_add(cf, &conf->name);
    if (conf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    /* a hash of a random secret, with the configured cost */

    randombytes_buf(secret, sizeof(secret));

    if (crypto_pwhash_str(conf->dummy, (char *) secret, sizeof(secret),
                          conf->opslimit, conf->memlimit)
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "crypto_pwhash_str() failed: out of memory?");
        return NGX_CONF_ERROR;
    }

    sodium_memzero(secret, sizeof(secret));

    return NGX_CONF_OK;
}


ngx_pwhash_job_t *
ngx_pwhash_post(ngx_http_request_t *r, ngx_pwhash_conf_t *conf,
    ngx_uint_t verify, ngx_str_t *password, ngx_str_t *hash,
    ngx_http_event_handler_pt handler)
{
    ngx_pwhash_job_t   *job;
    ngx_thread_task_t  *task;

    if (password->len > NGX_PWHASH_MAX_PASSWORD
        || (hash && hash->len >= crypto_pwhash_STRBYTES))
    {
        return NULL;
    }

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_pwhash_job_t));
    if (task == NULL) {
        return NULL;
    }

    job = task->ctx;

    job->verify = verify;
    job->handler = handler;
    job->request = r;
    job->memlimit = conf->memlimit;
    job->opslimit = conf->opslimit;
    job->password_len = password->len;
    ngx_memcpy(job->password, password->data, password->len);

    if (verify) {
        if (hash && hash->len) {
            ngx_memcpy(job->hash, hash->data, hash->len);
            job->hash[hash->len] = '\0';

        } else {
            ngx_memcpy(job->hash, conf->dummy, sizeof(conf->dummy));
        }
    }

    task->handler = ngx_pwhash_thread;
    task->event.handler = ngx_pwhash_done;
    task->event.data = job;

    if (ngx_thread_task_post(conf->thread_pool, task) != NGX_OK) {
        sodium_memzero(job->password, job->password_len);
        return NULL;
    }

    r->main->blocked++;

    job->hold.handler = ngx_pwhash_hold;
    job->hold.data = job;
    job->hold.log = r->connection->log;
    ngx_add_timer(&job->hold, NGX_PWHASH_HOLD);

    return job;
}


/* runs in a thread: only the job is touched */

static void
ngx_pwhash_thread(void *data, ngx_log_t *log)
{
    ngx_pwhash_job_t  *job = data;

#if (NGX_LINUX)
    /* Linux keeps a nice value per thread */
    (void) setpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid),
                       NGX_PWHASH_NICE);
#endif

    if (job->verify) {
        if (crypto_pwhash_str_verify(job->hash, (char *) job->password,
                                     job->password_len)
            == 0)
        {
            job->rc = NGX_OK;
            job->needs_rehash = crypto_pwhash_str_needs_rehash(job->hash,
                                    job->opslimit, job->memlimit) != 0;

            /* the cost changed: the new hash is made while we have it */
            if (job->needs_rehash
                && crypto_pwhash_str(job->hash, (char *) job->password,
                                     job->password_len, job->opslimit,
                                     job->memlimit)
                   != 0)
            {
                job->needs_rehash = 0;
            }

        } else {
            job->rc = NGX_DECLINED;
        }

    } else {
        job->rc = crypto_pwhash_str(job->hash, (char *) job->password,
                                    job->password_len, job->opslimit,
                                    job->memlimit)
                  == 0 ? NGX_OK : NGX_ERROR;
    }

    sodium_memzero(job->password, job->password_len);
}


/* back in the event loop */

static void
ngx_pwhash_done(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_pwhash_job_t    *job;
    ngx_http_request_t  *r;

    job = ev->data;
    r = job->request;
    c = r->connection;

    r->main->blocked--;

    if (job->hold.timer_set) {
        ngx_del_timer(&job->hold);
    }

    /* a request terminated meanwhile only waited for the thread */
    if (c->error) {
        ngx_http_finalize_request(r, NGX_ERROR);

    } else {
        job->handler(r);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_pwhash_hold(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "password hashing has waited for a thread for %M ms",
                  (ngx_msec_t) NGX_PWHASH_HOLD);
}
