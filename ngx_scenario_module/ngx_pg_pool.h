/*
 * A per-worker pool of non-blocking PostgreSQL connections (libpq), driven
 * by nginx events.  Knows nothing of the module that uses it.
 *
 * One query runs on one connection at a time; requests beyond the pool wait
 * in a bounded queue.  Queries are parameterized only (PQsendQueryParams).
 * The handler is called exactly once, never from inside ngx_pg_query(),
 * unless the caller cancelled the operation first.
 */

#ifndef _NGX_PG_POOL_H_INCLUDED_
#define _NGX_PG_POOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <libpq-fe.h>


typedef struct ngx_pg_pool_s  ngx_pg_pool_t;
typedef struct ngx_pg_op_s    ngx_pg_op_t;


/*
 * rc is NGX_OK with the last result of the query (its status may still be
 * an error such as a unique violation: check PQresultStatus), or NGX_ERROR
 * (connection failed or lost), NGX_ETIMEDOUT (query or wait timed out) or
 * NGX_DECLINED (no database: every connection is down), with res NULL.
 * The result is cleared after the handler returns.
 */
typedef void (*ngx_pg_handler_pt)(void *data, PGresult *res, ngx_int_t rc);


typedef struct {
    ngx_str_t           conninfo;
    const char        **keywords;        /* parsed from conninfo */
    const char        **values;
    ngx_uint_t          size;            /* connections per worker */
    ngx_uint_t          queue;           /* operations allowed to wait */
    ngx_msec_t          connect_timeout;
    ngx_msec_t          query_timeout;   /* also bounds the wait in queue */
    ngx_msec_t          backoff_min;
    ngx_msec_t          backoff_max;
    ngx_flag_t          prepare;         /* ngx_pg_query_prepared() names */
} ngx_pg_pool_conf_t;


typedef struct {
    ngx_uint_t          size;
    ngx_uint_t          connected;
    ngx_uint_t          busy;
    ngx_uint_t          waiting;
    ngx_uint_t          queries;
    ngx_uint_t          errors;
    ngx_uint_t          reconnects;
} ngx_pg_pool_stats_t;


void ngx_pg_pool_conf_init(ngx_pg_pool_conf_t *conf);
char *ngx_pg_pool_conf_parse(ngx_conf_t *cf, ngx_pg_pool_conf_t *conf,
    ngx_str_t *conninfo);

ngx_pg_pool_t *ngx_pg_pool_create(ngx_conf_t *cf, ngx_pg_pool_conf_t *conf);
ngx_int_t ngx_pg_pool_init_process(ngx_pg_pool_t *pool, ngx_cycle_t *cycle);
void ngx_pg_pool_exit_process(ngx_pg_pool_t *pool);

/*
 * params[i].data == NULL sends SQL NULL.  The SQL text must outlive the
 * operation (a string constant); parameters are copied.  Returns NULL when
 * the wait queue is full or memory is short: the caller answers 503.
 */
ngx_pg_op_t *ngx_pg_query(ngx_pg_pool_t *pool, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params, ngx_pg_handler_pt handler,
    void *data);

/*
 * The same for a statement run often: with the pool's prepare set, it is
 * prepared once per connection and then only executed (no parse and plan
 * per call).  sql must have static storage: its address names the
 * statement for the worker's life.  A named statement is session state,
 * which a pooler in transaction mode may not keep: with prepare off (the
 * default), or on a connection where its prepare failed, it runs as
 * ngx_pg_query() does.
 */
ngx_pg_op_t *ngx_pg_query_prepared(ngx_pg_pool_t *pool, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params, ngx_pg_handler_pt handler,
    void *data);

void ngx_pg_op_cancel(ngx_pg_op_t *op);

void ngx_pg_pool_stats(ngx_pg_pool_t *pool, ngx_pg_pool_stats_t *stats);

/* Helpers for reading results. */
ngx_int_t ngx_pg_result_ok(PGresult *res);
ngx_str_t ngx_pg_value(PGresult *res, int row, int col);
/*
 * An integer column: NGX_OK with *value, NGX_DECLINED for NULL, NGX_ERROR
 * for text that is not an integer of ngx_int_t's range.
 */
ngx_int_t ngx_pg_get_int(PGresult *res, int row, int col, ngx_int_t *value);

/*
 * The same for a column that can be neither NULL nor negative (ids, counts,
 * seqs): the value, or NGX_ERROR (-1), which such a column never holds.
 */
ngx_int_t ngx_pg_int(PGresult *res, int row, int col);


#endif /* _NGX_PG_POOL_H_INCLUDED_ */
