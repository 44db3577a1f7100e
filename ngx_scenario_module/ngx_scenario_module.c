/*
 * ngx_scenario_module: directives, configuration, the content handler that
 * dispatches to the flows, and the worker's life.  What every flow calls
 * per request is in ngx_scenario_util.c.
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
static char *ngx_scenario_chat_limit(ngx_conf_t *cf, ngx_command_t *cmd,
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
    { ngx_string("review_team"), NGX_SCENARIO_REVIEW_TEAM },
    { ngx_string("review_trainee"), NGX_SCENARIO_REVIEW_TRAINEE },
    { ngx_string("review_session"), NGX_SCENARIO_REVIEW_SESSION },
    { ngx_string("review_action"), NGX_SCENARIO_REVIEW_ACTION },
    { ngx_string("review_export"), NGX_SCENARIO_REVIEW_EXPORT },
    { ngx_string("session_review"), NGX_SCENARIO_SESSION_REVIEW },
    { ngx_string("watch"), NGX_SCENARIO_WATCH },
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

    { ngx_string("scenario_postgres_prepare"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_scenario_main_conf_t, pg.prepare),
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

    { ngx_string("scenario_chat_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_scenario_chat_limit,
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

    { ngx_string("scenario_chat_reply_durable"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_scenario_loc_conf_t, chat_reply_durable),
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
    smcf->pg.prepare = NGX_CONF_UNSET;

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
    smcf->chat_per_user = NGX_CONF_UNSET_UINT;
    smcf->chat_per_address = NGX_CONF_UNSET_UINT;
    smcf->chat_lease = NGX_CONF_UNSET_MSEC;

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
    ngx_conf_init_uint_value(smcf->chat_per_user, 8);
    ngx_conf_init_uint_value(smcf->chat_per_address, 64);
    ngx_conf_init_msec_value(smcf->chat_lease, 30000);

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
    slcf->chat_reply_durable = NGX_CONF_UNSET;
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
    ngx_conf_merge_value(conf->chat_reply_durable, prev->chat_reply_durable,
                         1);

    if (conf->chat_context == 0) {
        conf->chat_context = 1;
    }

    conf->chat_ws.max_message = conf->chat_max_message;
    conf->chat_ws.max_output = conf->chat_max_output;
    conf->chat_ws.ping_interval = conf->chat_ping;
    conf->chat_ws.idle_timeout = conf->chat_idle_timeout;
    conf->chat_ws.close_timeout = 2000;
    conf->chat_ws.send_timeout = conf->chat_send_timeout;

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


/* scenario_chat_limit user=8 address=64 lease=30s; or off */

static char *
ngx_scenario_chat_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_scenario_main_conf_t  *smcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;
    ngx_msec_t   ms;

    value = cf->args->elts;

    if (smcf->chat_lease != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    if (cf->args->nelts == 2
        && value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0)
    {
        smcf->chat_lease = 0;
        return NGX_CONF_OK;
    }

    smcf->chat_lease = 30000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            smcf->chat_per_user = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "address=", 8) == 0) {
            n = ngx_atoi(value[i].data + 8, value[i].len - 8);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            smcf->chat_per_address = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "lease=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            /* renewed every third of it: under a second is only churn */
            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms < 1000) {
                goto invalid;
            }

            smcf->chat_lease = ms;
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
        return ngx_scenario_route(r, &ngx_scenario_org_api);

    case NGX_SCENARIO_ORG_MEMBERS:
        return ngx_scenario_route(r, &ngx_scenario_members_api);

    case NGX_SCENARIO_ORG_MEMBER:
        return ngx_scenario_route(r, &ngx_scenario_member_api);

    case NGX_SCENARIO_ORG_INVITES:
        return ngx_scenario_route(r, &ngx_scenario_invites_api);

    case NGX_SCENARIO_ORG_INVITE:
        return ngx_scenario_route(r, &ngx_scenario_invite_api);

    case NGX_SCENARIO_AUTHORING:
        return ngx_scenario_route(r, &ngx_scenario_authoring_api);

    case NGX_SCENARIO_AUTHORING_SCENARIO:
        return ngx_scenario_route(r, &ngx_scenario_authoring_scenario_api);

    case NGX_SCENARIO_AUTHORING_ACTION:
        return ngx_scenario_route(r, &ngx_scenario_authoring_action_api);

    case NGX_SCENARIO_ASSIGNMENTS:
        return ngx_scenario_route(r, &ngx_scenario_assignments_api);

    case NGX_SCENARIO_ASSIGNMENT:
        return ngx_scenario_route(r, &ngx_scenario_assignment_api);

    case NGX_SCENARIO_MY_ASSIGNMENTS:
        return ngx_scenario_route(r, &ngx_scenario_my_assignments_api);

    case NGX_SCENARIO_REVIEW_TEAM:
        return ngx_scenario_route(r, &ngx_scenario_review_team_api);

    case NGX_SCENARIO_REVIEW_TRAINEE:
        return ngx_scenario_route(r, &ngx_scenario_review_trainee_api);

    case NGX_SCENARIO_REVIEW_SESSION:
        return ngx_scenario_route(r, &ngx_scenario_review_session_api);

    case NGX_SCENARIO_REVIEW_ACTION:
        return ngx_scenario_route(r, &ngx_scenario_review_action_api);

    case NGX_SCENARIO_REVIEW_EXPORT:
        return ngx_scenario_route(r, &ngx_scenario_review_export_api);

    case NGX_SCENARIO_SESSION_REVIEW:
        return ngx_scenario_route(r, &ngx_scenario_session_review_api);

    case NGX_SCENARIO_WATCH:
        return ngx_scenario_live_handler(r);

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

    ngx_scenario_chat_limit_init_process(smcf, cycle);

    return ngx_scenario_cache_init_process(smcf);
}


static void
ngx_scenario_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_scenario_running == NULL) {
        return;
    }

    /* first: the Redis pool's failed commands must not renew leases */
    ngx_scenario_chat_limit_exit_process();

    ngx_pg_pool_exit_process(ngx_scenario_running->pg_pool);
    ngx_redis_pool_exit_process(ngx_scenario_running->redis_pool);
    ngx_scenario_cache_exit_process();

    ngx_scenario_running = NULL;
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
