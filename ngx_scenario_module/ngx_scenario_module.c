/*
 * ngx_scenario_module: directives, configuration, worker life, and the
 * plumbing every flow shares (async Postgres and Redis calls tied to a
 * request's life).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


static ngx_int_t ngx_scenario_postconfiguration(ngx_conf_t *cf);
static void *ngx_scenario_create_main_conf(ngx_conf_t *cf);
static char *ngx_scenario_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_scenario_create_loc_conf(ngx_conf_t *cf);
static char *ngx_scenario_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_scenario_handler_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_scenario_password_cost(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_scenario_login_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_scenario_auth_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_scenario_temperature(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_scenario_api_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_scenario_content_handler(ngx_http_request_t *r);
static ngx_int_t ngx_scenario_init_process(ngx_cycle_t *cycle);
static void ngx_scenario_exit_process(ngx_cycle_t *cycle);
static void ngx_scenario_cleanup(void *data);
static void ngx_scenario_pg_done(void *data, PGresult *res, ngx_int_t rc);
static void ngx_scenario_redis_done(void *data, redisReply *reply,
    ngx_int_t rc);


static ngx_conf_enum_t  ngx_scenario_handlers[] = {
    { ngx_string("register"), NGX_SCENARIO_REGISTER },
    { ngx_string("login"), NGX_SCENARIO_LOGIN },
    { ngx_string("logout"), NGX_SCENARIO_LOGOUT },
    { ngx_string("me"), NGX_SCENARIO_ME },
    { ngx_string("healthz"), NGX_SCENARIO_HEALTHZ },
    { ngx_string("metrics"), NGX_SCENARIO_METRICS },
    { ngx_string("scenarios"), NGX_SCENARIO_SCENARIOS },
    { ngx_string("sessions"), NGX_SCENARIO_SESSIONS },
    { ngx_string("session"), NGX_SCENARIO_SESSION },
    { ngx_string("chat"), NGX_SCENARIO_CHAT },
    { ngx_string("resolve"), NGX_SCENARIO_RESOLVE },
    { ngx_string("progress"), NGX_SCENARIO_PROGRESS },
    { ngx_string("leaderboard"), NGX_SCENARIO_LEADERBOARD },
    { ngx_string("org"), NGX_SCENARIO_ORG },
    { ngx_string("org_members"), NGX_SCENARIO_ORG_MEMBERS },
    { ngx_string("org_member"), NGX_SCENARIO_ORG_MEMBER },
    { ngx_string("org_invites"), NGX_SCENARIO_ORG_INVITES },
    { ngx_string("org_invite"), NGX_SCENARIO_ORG_INVITE },
    { ngx_string("authoring"), NGX_SCENARIO_AUTHORING },
    { ngx_string("authoring_scenario"), NGX_SCENARIO_AUTHORING_SCENARIO },
    { ngx_string("authoring_action"), NGX_SCENARIO_AUTHORING_ACTION },
    { ngx_string("assignments"), NGX_SCENARIO_ASSIGNMENTS },
    { ngx_string("assignment"), NGX_SCENARIO_ASSIGNMENT },
    { ngx_string("my_assignments"), NGX_SCENARIO_MY_ASSIGNMENTS },
    { ngx_string("not_found"), NGX_SCENARIO_NOT_FOUND },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_scenario_token_modes[] = {
    { ngx_string("fixed"), 0 },
    { ngx_string("sliding"), 1 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_scenario_commands[] = {

    { ngx_string("scenario_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, pg_conninfo),
      NULL },

    { ngx_string("scenario_postgres_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, pg.size),
      NULL },

    { ngx_string("scenario_postgres_queue"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, pg.queue),
      NULL },

    { ngx_string("scenario_postgres_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, pg.connect_timeout),
      NULL },

    { ngx_string("scenario_postgres_query_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, pg.query_timeout),
      NULL },

    { ngx_string("scenario_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, redis_addr),
      NULL },

    { ngx_string("scenario_redis_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, redis.size),
      NULL },

    { ngx_string("scenario_redis_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, redis.connect_timeout),
      NULL },

    { ngx_string("scenario_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, redis.command_timeout),
      NULL },

    { ngx_string("scenario_password_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, pwhash.name),
      NULL },

    { ngx_string("scenario_password_cost"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_scenario_password_cost,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scenario_register"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, register_enabled),
      NULL },

    { ngx_string("scenario_register_organization"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, register_organization),
      NULL },

    { ngx_string("scenario_admin_email"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, admin_emails),
      NULL },

    { ngx_string("scenario_token_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, token_ttl),
      NULL },

    { ngx_string("scenario_token_renewal"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, token_sliding),
      &ngx_scenario_token_modes },

    { ngx_string("scenario_cookie_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, cookie_name),
      NULL },

    { ngx_string("scenario_allowed_origin"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, allowed_origins),
      NULL },

    { ngx_string("scenario_auth_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_scenario_auth_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scenario_login_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_scenario_login_limit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scenario_register_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_scenario_login_limit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scenario_handler"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_scenario_handler_set,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, handler),
      &ngx_scenario_handlers },

    { ngx_string("scenario_auth_required"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, auth_required),
      NULL },

    { ngx_string("scenario_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, max_body),
      NULL },

    { ngx_string("scenario_model_location"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, model.location),
      NULL },

    { ngx_string("scenario_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, model_name),
      NULL },

    { ngx_string("scenario_model_temperature"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_scenario_temperature,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("scenario_model_max_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, model_max_tokens),
      NULL },

    { ngx_string("scenario_model_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, model.timeout),
      NULL },

    { ngx_string("scenario_model_max_reply"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, model.max_content),
      NULL },

    { ngx_string("scenario_model_api_key_env"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, api_key_env),
      NULL },

    { ngx_string("scenario_judge"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, judge),
      NULL },

    { ngx_string("scenario_chat_max_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, chat_max_message),
      NULL },

    { ngx_string("scenario_chat_max_chars"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, chat_max_chars),
      NULL },

    { ngx_string("scenario_chat_max_output"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, chat_max_output),
      NULL },

    { ngx_string("scenario_chat_ping"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, chat_ping),
      NULL },

    { ngx_string("scenario_chat_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, chat_idle_timeout),
      NULL },

    { ngx_string("scenario_chat_send_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, chat_send_timeout),
      NULL },

    { ngx_string("scenario_chat_context"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, chat_context),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_scenario_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_scenario_postconfiguration,        /* postconfiguration */

    ngx_scenario_create_main_conf,         /* create main configuration */
    ngx_scenario_init_main_conf,           /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_scenario_create_loc_conf,          /* create location configuration */
    ngx_scenario_merge_loc_conf            /* merge location configuration */
};


ngx_module_t  ngx_scenario_module = {
    NGX_MODULE_V1,
    &ngx_scenario_module_ctx,              /* module context */
    ngx_scenario_commands,                 /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_scenario_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_scenario_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_scenario_api_key_name =
    ngx_string("scenario_model_api_key");


/* the pools of the current cycle, for the worker's exit */
static ngx_scenario_main_conf_t  *ngx_scenario_running;


static void *
ngx_scenario_create_main_conf(ngx_conf_t *cf)
{
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_scenario_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    smcf->pg.size = NGX_CONF_UNSET_UINT;
    smcf->pg.queue = NGX_CONF_UNSET_UINT;
    smcf->pg.connect_timeout = NGX_CONF_UNSET_MSEC;
    smcf->pg.query_timeout = NGX_CONF_UNSET_MSEC;
    smcf->pg.backoff_min = NGX_CONF_UNSET_MSEC;
    smcf->pg.backoff_max = NGX_CONF_UNSET_MSEC;

    smcf->redis.size = NGX_CONF_UNSET_UINT;
    smcf->redis.max_pending = NGX_CONF_UNSET_UINT;
    smcf->redis.connect_timeout = NGX_CONF_UNSET_MSEC;
    smcf->redis.command_timeout = NGX_CONF_UNSET_MSEC;
    smcf->redis.backoff_min = NGX_CONF_UNSET_MSEC;
    smcf->redis.backoff_max = NGX_CONF_UNSET_MSEC;
    smcf->redis.db = NGX_CONF_UNSET;

    smcf->pwhash.memlimit = NGX_CONF_UNSET_SIZE;
    smcf->pwhash.opslimit = NGX_CONF_UNSET_UINT;

    smcf->register_enabled = NGX_CONF_UNSET;
    smcf->register_organization = NGX_CONF_UNSET;
    smcf->admin_emails = NGX_CONF_UNSET_PTR;
    smcf->token_ttl = NGX_CONF_UNSET;
    smcf->token_sliding = NGX_CONF_UNSET_UINT;
    smcf->allowed_origins = NGX_CONF_UNSET_PTR;

    smcf->auth_cache = NGX_CONF_UNSET_MSEC;
    smcf->limit_email = NGX_CONF_UNSET_UINT;
    smcf->limit_address = NGX_CONF_UNSET_UINT;
    smcf->limit_window = NGX_CONF_UNSET;
    smcf->register_address = NGX_CONF_UNSET_UINT;
    smcf->register_window = NGX_CONF_UNSET;

    return smcf;
}


static char *
ngx_scenario_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_scenario_main_conf_t  *smcf = conf;

    char  *rv;

    ngx_conf_init_value(smcf->register_enabled, 1);
    ngx_conf_init_value(smcf->register_organization, 0);
    ngx_conf_init_ptr_value(smcf->admin_emails, NULL);
    ngx_conf_init_value(smcf->token_ttl, 86400);
    ngx_conf_init_uint_value(smcf->token_sliding, 1);
    ngx_conf_init_ptr_value(smcf->allowed_origins, NULL);
    ngx_conf_init_msec_value(smcf->auth_cache, 10000);
    ngx_conf_init_uint_value(smcf->limit_email, 5);
    ngx_conf_init_uint_value(smcf->limit_address, 50);
    ngx_conf_init_value(smcf->limit_window, 900);
    ngx_conf_init_uint_value(smcf->register_address, 20);
    ngx_conf_init_value(smcf->register_window, 600);

    if (smcf->cookie_name.data == NULL) {
        ngx_str_set(&smcf->cookie_name, "scenario_token");
    }

    ngx_pg_pool_conf_init(&smcf->pg);
    ngx_redis_pool_conf_init(&smcf->redis);

    /* OWASP's minimum for argon2id: 19 MiB, 2 passes */
    ngx_conf_init_size_value(smcf->pwhash.memlimit, 19 * 1024 * 1024);
    ngx_conf_init_uint_value(smcf->pwhash.opslimit, 2);

    if (smcf->pwhash.name.data == NULL) {
        ngx_str_set(&smcf->pwhash.name, "scenario_hash");
    }

    /* a configuration that never names a database uses no pools */
    if (smcf->pg_conninfo.data == NULL && smcf->redis_addr.data == NULL) {
        return NGX_CONF_OK;
    }

    if (smcf->pg_conninfo.data == NULL || smcf->redis_addr.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "scenario_postgres and scenario_redis "
                           "go together");
        return NGX_CONF_ERROR;
    }

    rv = ngx_pg_pool_conf_parse(cf, &smcf->pg, &smcf->pg_conninfo);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rv = ngx_redis_pool_conf_parse(cf, &smcf->redis, &smcf->redis_addr);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    smcf->pg_pool = ngx_pg_pool_create(cf, &smcf->pg);
    smcf->redis_pool = ngx_redis_pool_create(cf, &smcf->redis);

    if (smcf->pg_pool == NULL || smcf->redis_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_pwhash_conf_init(cf, &smcf->pwhash);
}


static void *
ngx_scenario_create_loc_conf(ngx_conf_t *cf)
{
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_pcalloc(cf->pool, sizeof(ngx_scenario_loc_conf_t));
    if (slcf == NULL) {
        return NULL;
    }

    slcf->handler = NGX_CONF_UNSET_UINT;
    slcf->auth_required = NGX_CONF_UNSET;
    slcf->max_body = NGX_CONF_UNSET_SIZE;

    slcf->model.timeout = NGX_CONF_UNSET_MSEC;
    slcf->model.max_content = NGX_CONF_UNSET_SIZE;
    slcf->model_temperature = -1;
    slcf->model_max_tokens = NGX_CONF_UNSET_UINT;

    slcf->chat_max_message = NGX_CONF_UNSET_SIZE;
    slcf->chat_max_chars = NGX_CONF_UNSET_SIZE;
    slcf->chat_max_output = NGX_CONF_UNSET_SIZE;
    slcf->chat_ping = NGX_CONF_UNSET_MSEC;
    slcf->chat_idle_timeout = NGX_CONF_UNSET_MSEC;
    slcf->chat_send_timeout = NGX_CONF_UNSET_MSEC;
    slcf->chat_context = NGX_CONF_UNSET_UINT;
    slcf->judge = NGX_CONF_UNSET;

    return slcf;
}


static char *
ngx_scenario_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_scenario_loc_conf_t  *prev = parent;
    ngx_scenario_loc_conf_t  *conf = child;

    /* a handler belongs to its own location only */
    ngx_conf_init_uint_value(conf->handler, NGX_SCENARIO_NONE);
    ngx_conf_merge_value(conf->auth_required, prev->auth_required, 0);
    ngx_conf_merge_size_value(conf->max_body, prev->max_body, 16384);

    ngx_conf_merge_str_value(conf->model.location, prev->model.location,
                             "/_model");
    ngx_conf_merge_msec_value(conf->model.timeout, prev->model.timeout,
                              60000);
    ngx_conf_merge_size_value(conf->model.max_content,
                              prev->model.max_content, 65536);
    ngx_conf_merge_str_value(conf->model_name, prev->model_name,
                             "gpt-4o-mini");

    if (conf->model_temperature < 0) {
        conf->model_temperature = prev->model_temperature < 0
                                  ? 0.8 : prev->model_temperature;
    }

    ngx_conf_merge_uint_value(conf->model_max_tokens,
                              prev->model_max_tokens, 300);

    ngx_conf_merge_size_value(conf->chat_max_message,
                              prev->chat_max_message, 65536);
    ngx_conf_merge_size_value(conf->chat_max_chars, prev->chat_max_chars,
                              4000);
    ngx_conf_merge_size_value(conf->chat_max_output, prev->chat_max_output,
                              1024 * 1024);
    ngx_conf_merge_msec_value(conf->chat_ping, prev->chat_ping, 30000);
    ngx_conf_merge_msec_value(conf->chat_idle_timeout,
                              prev->chat_idle_timeout, 600000);
    ngx_conf_merge_msec_value(conf->chat_send_timeout,
                              prev->chat_send_timeout, 30000);
    ngx_conf_merge_uint_value(conf->chat_context, prev->chat_context, 20);

    if (conf->chat_context == 0) {
        conf->chat_context = 1;
    }

    ngx_conf_merge_value(conf->judge, prev->judge, 1);

    return NGX_CONF_OK;
}


static char *
ngx_scenario_handler_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                      *rv;
    ngx_scenario_main_conf_t  *smcf;
    ngx_http_core_loc_conf_t  *clcf;

    rv = ngx_conf_set_enum_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_scenario_module);

    if (smcf->pg_conninfo.data == NULL || smcf->redis_addr.data == NULL) {
        return "needs scenario_postgres and scenario_redis set before it "
               "in the http block";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_scenario_content_handler;

    return NGX_CONF_OK;
}


static char *
ngx_scenario_password_cost(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_scenario_main_conf_t  *smcf = conf;

    ssize_t     mem;
    ngx_int_t   ops;
    ngx_str_t  *value;

    if (smcf->pwhash.memlimit != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mem = ngx_parse_size(&value[1]);
    ops = ngx_atoi(value[2].data, value[2].len);

    if (mem == NGX_ERROR || ops == NGX_ERROR) {
        return "invalid value: expects a memory size and a number of passes";
    }

    smcf->pwhash.memlimit = mem;
    smcf->pwhash.opslimit = ops;

    return NGX_CONF_OK;
}


/* scenario_auth_cache off | time; */

static char *
ngx_scenario_auth_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_scenario_main_conf_t  *smcf = conf;

    ngx_str_t  *value;

    if (smcf->auth_cache != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        smcf->auth_cache = 0;
        return NGX_CONF_OK;
    }

    smcf->auth_cache = ngx_parse_time(&value[1], 0);
    if (smcf->auth_cache == (ngx_msec_t) NGX_ERROR) {
        return "invalid value";
    }

    return NGX_CONF_OK;
}


/* scenario_model_temperature 0.8; */

static char *
ngx_scenario_temperature(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_scenario_loc_conf_t  *slcf = conf;

    char       *end;
    double      t;
    ngx_str_t  *value;

    if (slcf->model_temperature >= 0) {
        return "is duplicate";
    }

    value = cf->args->elts;

    t = strtod((char *) value[1].data, &end);

    if (end != (char *) value[1].data + value[1].len || t < 0 || t > 2) {
        return "invalid value: a number from 0 to 2";
    }

    slcf->model_temperature = t;

    return NGX_CONF_OK;
}


/*
 * scenario_login_limit email=5 address=50 window=15m;
 * scenario_register_limit address=20 window=10m;
 */

static char *
ngx_scenario_login_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_scenario_main_conf_t  *smcf = conf;

    time_t      *window;
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i, login, *address;

    value = cf->args->elts;

    login = (cmd->name.len == sizeof("scenario_login_limit") - 1);
    address = login ? &smcf->limit_address : &smcf->register_address;
    window = login ? &smcf->limit_window : &smcf->register_window;

    for (i = 1; i < cf->args->nelts; i++) {

        if (login && ngx_strncmp(value[i].data, "email=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            smcf->limit_email = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "address=", 8) == 0) {
            n = ngx_atoi(value[i].data + 8, value[i].len - 8);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            *address = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "window=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            *window = ngx_parse_time(&s, 1);
            if (*window == (time_t) NGX_ERROR || *window == 0) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_scenario_postconfiguration(ngx_conf_t *cf)
{
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_scenario_module);

    ngx_http_variable_t       *var;

    if (ngx_scenario_metrics_init(cf, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    var = ngx_http_add_variable(cf, &ngx_scenario_api_key_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_scenario_api_key_variable;

    if (ngx_model_client_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_scenario_access_init(cf);
}


static ngx_int_t
ngx_scenario_content_handler(ngx_http_request_t *r)
{
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    ngx_scenario_count(r, NGX_SCENARIO_M_REQUESTS, 1);

    switch (slcf->handler) {

    case NGX_SCENARIO_REGISTER:
        return ngx_scenario_register_handler(r);

    case NGX_SCENARIO_LOGIN:
        return ngx_scenario_login_handler(r);

    case NGX_SCENARIO_LOGOUT:
        return ngx_scenario_logout_handler(r);

    case NGX_SCENARIO_ME:
        return ngx_scenario_me_handler(r);

    case NGX_SCENARIO_HEALTHZ:
        return ngx_scenario_healthz_handler(r);

    case NGX_SCENARIO_METRICS:
        return ngx_scenario_metrics_handler(r);

    case NGX_SCENARIO_SCENARIOS:
        return ngx_scenario_scenarios_handler(r);

    case NGX_SCENARIO_SESSIONS:
        return ngx_scenario_sessions_handler(r);

    case NGX_SCENARIO_SESSION:
        return ngx_scenario_session_handler(r);

    case NGX_SCENARIO_CHAT:
        return ngx_scenario_chat_handler(r);

    case NGX_SCENARIO_RESOLVE:
        return ngx_scenario_resolve_handler(r);

    case NGX_SCENARIO_PROGRESS:
        return ngx_scenario_progress_handler(r);

    case NGX_SCENARIO_LEADERBOARD:
        return ngx_scenario_leaderboard_handler(r);

    case NGX_SCENARIO_ORG:
        return ngx_scenario_org_handler(r);

    case NGX_SCENARIO_ORG_MEMBERS:
        return ngx_scenario_members_handler(r);

    case NGX_SCENARIO_ORG_MEMBER:
        return ngx_scenario_member_handler(r);

    case NGX_SCENARIO_ORG_INVITES:
        return ngx_scenario_invites_handler(r);

    case NGX_SCENARIO_ORG_INVITE:
        return ngx_scenario_invite_handler(r);

    case NGX_SCENARIO_AUTHORING:
        return ngx_scenario_authoring_handler(r);

    case NGX_SCENARIO_AUTHORING_SCENARIO:
        return ngx_scenario_authoring_scenario_handler(r);

    case NGX_SCENARIO_AUTHORING_ACTION:
        return ngx_scenario_authoring_action_handler(r);

    case NGX_SCENARIO_ASSIGNMENTS:
        return ngx_scenario_assignments_handler(r);

    case NGX_SCENARIO_ASSIGNMENT:
        return ngx_scenario_assignment_handler(r);

    case NGX_SCENARIO_MY_ASSIGNMENTS:
        return ngx_scenario_my_assignments_handler(r);

    case NGX_SCENARIO_NOT_FOUND:
        return ngx_scenario_not_found(r, "API path");

    default:
        return NGX_DECLINED;
    }
}


static ngx_int_t
ngx_scenario_init_process(ngx_cycle_t *cycle)
{
    ngx_scenario_main_conf_t  *smcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_scenario_module);
    if (smcf == NULL || smcf->pg_pool == NULL) {
        return NGX_OK;
    }

    ngx_scenario_running = smcf;

    if (ngx_pg_pool_init_process(smcf->pg_pool, cycle) != NGX_OK
        || ngx_redis_pool_init_process(smcf->redis_pool, cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_scenario_cache_init_process(smcf);
}


static void
ngx_scenario_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_scenario_running == NULL) {
        return;
    }

    ngx_pg_pool_exit_process(ngx_scenario_running->pg_pool);
    ngx_redis_pool_exit_process(ngx_scenario_running->redis_pool);
    ngx_scenario_cache_exit_process();

    ngx_scenario_running = NULL;
}


/* the plumbing shared by the flows */


ngx_scenario_ctx_t *
ngx_scenario_ctx(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->main->pool, sizeof(ngx_scenario_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ngx_http_set_ctx(r->main, ctx, ngx_scenario_module);

    return ctx;
}


/* an operation in flight is cancelled if the request goes first */

static ngx_int_t
ngx_scenario_hold(ngx_http_request_t *r, ngx_scenario_ctx_t *ctx)
{
    ngx_http_cleanup_t  *cln;

    if (ctx->cleanup_set) {
        return NGX_OK;
    }

    cln = ngx_http_cleanup_add(r->main, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_scenario_cleanup;
    cln->data = ctx;
    ctx->cleanup_set = 1;

    return NGX_OK;
}


static void
ngx_scenario_cleanup(void *data)
{
    ngx_scenario_ctx_t  *ctx = data;

    if (ctx->pg_op) {
        ngx_pg_op_cancel(ctx->pg_op);
        ctx->pg_op = NULL;
    }

    if (ctx->redis_op) {
        ngx_redis_op_cancel(ctx->redis_op);
        ctx->redis_op = NULL;
    }
}


ngx_int_t
ngx_scenario_pg(ngx_http_request_t *r, const char *sql, ngx_uint_t nparams,
    ngx_str_t *params, ngx_scenario_pg_pt handler)
{
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_ctx(r);

    if (ctx == NULL || ngx_scenario_hold(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->pg_handler = handler;
    ctx->pg_op = ngx_pg_query(smcf->pg_pool, sql, nparams, params,
                              ngx_scenario_pg_done, r);

    return ctx->pg_op ? NGX_OK : NGX_DECLINED;
}


static void
ngx_scenario_pg_done(void *data, PGresult *res, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_scenario_ctx_t  *ctx;

    r = data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    ctx->pg_op = NULL;
    ctx->pg_handler(r, res, rc);

    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_scenario_redis(ngx_http_request_t *r, ngx_scenario_redis_pt handler,
    int argc, const char **argv, const size_t *argvlen)
{
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);
    ctx = ngx_scenario_ctx(r);

    if (ctx == NULL || ngx_scenario_hold(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->redis_handler = handler;
    ctx->redis_op = ngx_redis_command(smcf->redis_pool,
                                      ngx_scenario_redis_done, r, argc,
                                      argv, argvlen);

    return ctx->redis_op ? NGX_OK : NGX_DECLINED;
}


static void
ngx_scenario_redis_done(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_scenario_ctx_t  *ctx;

    r = data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    ctx->redis_op = NULL;

    if (rc == NGX_OK && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "redis: %*s",
                      (size_t) reply->len, reply->str);
        rc = NGX_ERROR;
    }

    ctx->redis_handler(r, reply, rc);

    ngx_http_run_posted_requests(c);
}


void
ngx_scenario_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_uint_t  status;

    status = (rc >= NGX_HTTP_OK) ? (ngx_uint_t) rc : r->headers_out.status;

    if (status >= 500) {
        ngx_scenario_count(r, NGX_SCENARIO_M_ERR_5XX, 1);

    } else if (status >= 400) {
        ngx_scenario_count(r, NGX_SCENARIO_M_ERR_4XX, 1);
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * In a content handler, after starting a Postgres or Redis operation: wait
 * for it, or answer at once when it could not start.
 */

ngx_int_t
ngx_scenario_wait(ngx_http_request_t *r, ngx_int_t rc, const char *what)
{
    if (rc == NGX_DECLINED) {
        return ngx_scenario_unavailable(r, what);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->main->count++;

    return NGX_DONE;
}


/* In a callback: the next operation could not start, the request ends. */

void
ngx_scenario_fail(ngx_http_request_t *r, ngx_int_t rc, const char *what)
{
    ngx_scenario_finalize(r, rc == NGX_DECLINED
                             ? ngx_scenario_unavailable(r, what)
                             : NGX_HTTP_INTERNAL_SERVER_ERROR);
}


ngx_int_t
ngx_scenario_unavailable(ngx_http_request_t *r, const char *what)
{
    char  msg[128];

    ngx_scenario_count(r, NGX_SCENARIO_M_UNAVAILABLE, 1);

    ngx_snprintf((u_char *) msg, sizeof(msg),
                 "%s is unavailable, try again shortly%Z", what);

    (void) ngx_http_json_retry_after(r, 1);

    return ngx_http_json_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                               "unavailable", msg);
}


void
ngx_scenario_count(ngx_http_request_t *r, ngx_uint_t metric,
    ngx_atomic_int_t n)
{
    ngx_scenario_main_conf_t     *smcf;
    ngx_scenario_metrics_slot_t  *slot;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    if (smcf->metrics) {
        slot = &smcf->metrics->w[ngx_worker % NGX_SCENARIO_M_SLOTS];
        (void) ngx_atomic_fetch_add(&slot->v[metric], n);
    }
}


/* a model call ended: its outcome and latency for /metrics */

void
ngx_scenario_model_observe(ngx_http_request_t *r, ngx_int_t rc,
    ngx_msec_t started)
{
    ngx_uint_t  i;
    ngx_msec_t  ms;

    static ngx_msec_t  bounds[] = { 500, 1000, 2000, 5000, 10000, 30000 };

    ms = ngx_current_msec - started;

    ngx_scenario_count(r, rc == NGX_OK ? NGX_SCENARIO_M_MODEL_OK
                                       : NGX_SCENARIO_M_MODEL_ERROR, 1);
    ngx_scenario_count(r, NGX_SCENARIO_M_MODEL_MS, ms);

    for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        if (ms <= bounds[i]) {
            ngx_scenario_count(r, NGX_SCENARIO_M_MODEL_LE_05 + i, 1);
        }
    }
}


/*
 * The profile that /auth/me answers with, kept in Redis so that the hot
 * path needs no Postgres.  Nothing waits for these commands.
 */


void
ngx_scenario_user_cache(ngx_http_request_t *r, ngx_str_t *id, json_t *user,
    ngx_scenario_stamp_t *stamp)
{
    u_char                    *key;
    char                      *doc;
    size_t                     argvlen[5];
    ngx_str_t                  value;
    const char                *argv[5];
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    key = ngx_pnalloc(r->pool, sizeof("user:") - 1 + id->len);
    doc = json_dumps(user, JSON_COMPACT);

    if (key == NULL || doc == NULL) {
        free(doc);
        return;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (char *) key;
    argvlen[1] = ngx_sprintf(key, "user:%V", id) - key;
    argv[2] = doc;
    argvlen[2] = ngx_strlen(doc);
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = NGX_SCENARIO_USER_TTL;
    argvlen[4] = sizeof(NGX_SCENARIO_USER_TTL) - 1;

    (void) ngx_redis_command(smcf->redis_pool, NULL, NULL, 5,
                             argv, argvlen);

    value.data = (u_char *) doc;
    value.len = argvlen[2];
    ngx_scenario_cache_put(smcf, NGX_SCENARIO_CACHE_PROFILE, stamp, id,
                           &value);

    free(doc);
}


/* the profile changed: Redis drops it and every worker is told */

static const char  ngx_scenario_forget_script[] =
    "redis.call('DEL', KEYS[1]) "
    "redis.call('PUBLISH', 'scenario:invalidate', KEYS[1]) "
    "return 1";


void
ngx_scenario_user_forget(ngx_http_request_t *r, ngx_str_t *id)
{
    u_char                    *key;
    size_t                     argvlen[4];
    const char                *argv[4];
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    ngx_scenario_cache_forget(NGX_SCENARIO_CACHE_PROFILE, id);

    key = ngx_pnalloc(r->pool, sizeof("user:") - 1 + id->len);
    if (key == NULL) {
        return;
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_scenario_forget_script;
    argvlen[1] = sizeof(ngx_scenario_forget_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) key;
    argvlen[3] = ngx_sprintf(key, "user:%V", id) - key;

    (void) ngx_redis_command(smcf->redis_pool, NULL, NULL, 4,
                             argv, argvlen);
}


ngx_int_t
ngx_scenario_method_not_allowed(ngx_http_request_t *r, const char *allow)
{
    ngx_str_t  v;

    v.data = (u_char *) allow;
    v.len = ngx_strlen(allow);

    if (ngx_http_json_add_header(r, "Allow", &v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_json_error(r, NGX_HTTP_NOT_ALLOWED, "method_not_allowed",
                               "this method is not allowed here");
}


/* the context of an authenticated request, NULL when there is no user */

ngx_scenario_ctx_t *
ngx_scenario_user(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_scenario_module);

    if (ctx == NULL || ctx->user_id == 0) {
        return NULL;
    }

    return ctx;
}


/*
 * $scenario_model_api_key: the model's API key, read from the environment
 * variable scenario_model_api_key_env names (kept for the workers with
 * nginx's "env" directive), so that no configuration file holds it.
 */

static ngx_int_t
ngx_scenario_api_key_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    char                      *key;
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    key = NULL;

    if (smcf->api_key_env.len) {
        key = getenv((char *) smcf->api_key_env.data);
    }

    if (key == NULL || *key == '\0') {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) key;
    v->len = ngx_strlen(key);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
