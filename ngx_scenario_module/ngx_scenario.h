/*
 * The scenario platform's own declarations (the upper floor): the module's
 * configuration, the per-request context, and the flows' entry points.
 */

#ifndef _NGX_SCENARIO_H_INCLUDED_
#define _NGX_SCENARIO_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_pg_pool.h"
#include "ngx_redis_pool.h"
#include "ngx_pwhash.h"
#include "ngx_http_json.h"
#include "ngx_ttl_cache.h"
#include "ngx_http_ws.h"
#include "ngx_model_client.h"


#define NGX_SCENARIO_TOKEN_LEN    43    /* 256 bits, base64url unpadded */
#define NGX_SCENARIO_HASH_HEX     64    /* SHA-256 of a token, in hex */
#define NGX_SCENARIO_USER_TTL     "300" /* seconds a cached profile lives */

/* the session may go on: its scenario is still the owner's (sql/025) */
#define NGX_SCENARIO_SESSION_OPEN                                             \
    "AND session_open(se.user_id, s.org_id, se.trial) "

/* a session's scenario as the session began with it (sql/020) */
#define NGX_SCENARIO_SESSION_SCENARIO                                         \
    "JOIN scenario_at s ON s.id = se.scenario_id "                            \
    "AND s.version = se.scenario_version "

/*
 * The sender of "resolved" on a session's channel "chat:<id>", where
 * messages are "<sender> <event>": a chat's own senders are
 * "<instance>.<n>" and never take this name.
 */
#define NGX_SCENARIO_RESOLVER     "resolve"


typedef enum {
    NGX_SCENARIO_NONE = 0,
    NGX_SCENARIO_REGISTER,
    NGX_SCENARIO_LOGIN,
    NGX_SCENARIO_LOGOUT,
    NGX_SCENARIO_ME,
    NGX_SCENARIO_HEALTHZ,
    NGX_SCENARIO_METRICS,
    NGX_SCENARIO_SCENARIOS,
    NGX_SCENARIO_SESSIONS,
    NGX_SCENARIO_SESSION,
    NGX_SCENARIO_CHAT,
    NGX_SCENARIO_RESOLVE,
    NGX_SCENARIO_PROGRESS,
    NGX_SCENARIO_LEADERBOARD,
    NGX_SCENARIO_ORG,
    NGX_SCENARIO_ORG_MEMBERS,
    NGX_SCENARIO_ORG_MEMBER,
    NGX_SCENARIO_ORG_INVITES,
    NGX_SCENARIO_ORG_INVITE,
    NGX_SCENARIO_AUTHORING,
    NGX_SCENARIO_AUTHORING_SCENARIO,
    NGX_SCENARIO_AUTHORING_ACTION,
    NGX_SCENARIO_ASSIGNMENTS,
    NGX_SCENARIO_ASSIGNMENT,
    NGX_SCENARIO_MY_ASSIGNMENTS,
    NGX_SCENARIO_REVIEW_TEAM,
    NGX_SCENARIO_REVIEW_TRAINEE,
    NGX_SCENARIO_REVIEW_SESSION,
    NGX_SCENARIO_REVIEW_ACTION,
    NGX_SCENARIO_REVIEW_EXPORT,
    NGX_SCENARIO_SESSION_REVIEW,
    NGX_SCENARIO_WATCH,
    NGX_SCENARIO_NOT_FOUND
} ngx_scenario_handler_e;


/* counters shared by the workers of one nginx (a shared memory zone) */
typedef enum {
    NGX_SCENARIO_M_REQUESTS = 0,
    NGX_SCENARIO_M_LOGIN_OK,
    NGX_SCENARIO_M_LOGIN_FAILED,
    NGX_SCENARIO_M_LOGIN_LIMITED,
    NGX_SCENARIO_M_REGISTERED,
    NGX_SCENARIO_M_LOGOUT,
    NGX_SCENARIO_M_AUTH_OK,
    NGX_SCENARIO_M_AUTH_DENIED,
    NGX_SCENARIO_M_ERR_4XX,
    NGX_SCENARIO_M_ERR_5XX,
    NGX_SCENARIO_M_UNAVAILABLE,
    NGX_SCENARIO_M_ACTIVE_CHATS,
    NGX_SCENARIO_M_MODEL_OK,
    NGX_SCENARIO_M_MODEL_ERROR,
    NGX_SCENARIO_M_MODEL_LE_05,          /* latency histogram buckets */
    NGX_SCENARIO_M_MODEL_LE_1,
    NGX_SCENARIO_M_MODEL_LE_2,
    NGX_SCENARIO_M_MODEL_LE_5,
    NGX_SCENARIO_M_MODEL_LE_10,
    NGX_SCENARIO_M_MODEL_LE_30,
    NGX_SCENARIO_M_MODEL_MS,             /* sum of latencies, ms */
    NGX_SCENARIO_M_LAST
} ngx_scenario_metric_e;


/*
 * One slot per worker, each on cache lines of its own, so that counting on
 * the hot path never bounces a line between cores; /metrics adds them up.
 */
#define NGX_SCENARIO_M_SLOTS  64

typedef struct {
    ngx_atomic_t                 v[NGX_SCENARIO_M_LAST];
    u_char                       pad[128 - (NGX_SCENARIO_M_LAST
                                            * sizeof(ngx_atomic_t)) % 128];
} ngx_scenario_metrics_slot_t;

typedef struct {
    ngx_scenario_metrics_slot_t  w[NGX_SCENARIO_M_SLOTS];
} ngx_scenario_metrics_t;


#define NGX_SCENARIO_CACHE_TOKEN    0
#define NGX_SCENARIO_CACHE_PROFILE  1

typedef struct {
    ngx_uint_t                   epoch;
    ngx_uint_t                   seq;
} ngx_scenario_stamp_t;


typedef struct {
    ngx_str_t                    pg_conninfo;
    ngx_pg_pool_conf_t           pg;
    ngx_pg_pool_t               *pg_pool;

    ngx_str_t                    redis_addr;
    ngx_redis_pool_conf_t        redis;
    ngx_redis_pool_t            *redis_pool;

    ngx_pwhash_conf_t            pwhash;

    ngx_flag_t                   register_enabled;
    ngx_flag_t                   register_organization;
    ngx_array_t                 *admin_emails;        /* of ngx_str_t */
    time_t                       token_ttl;
    ngx_uint_t                   token_sliding;
    ngx_str_t                    cookie_name;
    ngx_array_t                 *allowed_origins;     /* of ngx_str_t */

    ngx_msec_t                   auth_cache;
    ngx_str_t                    api_key_env;

    ngx_uint_t                   limit_email;
    ngx_uint_t                   limit_address;
    time_t                       limit_window;

    /* registrations per address: each one costs an argon2id hash */
    ngx_uint_t                   register_address;
    time_t                       register_window;

    /* open chats per user and per address (ngx_scenario_chat_limit.c) */
    ngx_uint_t                   chat_per_user;
    ngx_uint_t                   chat_per_address;
    ngx_msec_t                   chat_lease;         /* 0: no cap */

    ngx_shm_zone_t              *shm_zone;
    ngx_scenario_metrics_t      *metrics;
} ngx_scenario_main_conf_t;


typedef struct {
    ngx_uint_t                   handler;
    ngx_flag_t                   auth_required;
    size_t                       max_body;

    ngx_model_conf_t             model;            /* location, timeout */
    ngx_str_t                    model_name;
    double                       model_temperature;
    ngx_uint_t                   model_max_tokens;

    size_t                       chat_max_message;
    size_t                       chat_max_chars;
    size_t                       chat_max_output;
    ngx_msec_t                   chat_ping;
    ngx_msec_t                   chat_idle_timeout;
    ngx_msec_t                   chat_send_timeout;
    ngx_uint_t                   chat_context;
    ngx_flag_t                   chat_reply_durable;
    ngx_http_ws_conf_t           chat_ws;          /* of the above: a
                                                      socket's, by pointer */

    ngx_flag_t                   judge;
} ngx_scenario_loc_conf_t;


typedef struct ngx_scenario_ctx_s  ngx_scenario_ctx_t;

typedef void (*ngx_scenario_pg_pt)(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
typedef void (*ngx_scenario_redis_pt)(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);


struct ngx_scenario_ctx_s {
    /* set by the access phase */
    int64_t                      user_id;
    ngx_str_t                    user_id_text;
    ngx_str_t                    token_key;       /* "sess:<sha256 hex>" */
    ngx_scenario_stamp_t         stamp;
    ngx_uint_t                   auth_status;     /* 0 or the error */

    /* what a flow waits for; cancelled if the request goes away */
    ngx_pg_op_t                 *pg_op;
    ngx_scenario_pg_pt           pg_handler;
    ngx_redis_op_t              *redis_op;
    ngx_scenario_redis_pt        redis_handler;
    ngx_pwhash_job_t            *job;
    void                        *chat;
    void                        *resolve;
    void                        *route;
    void                        *lease;           /* a chat's slot */

    /* the flow's own state */
    json_t                      *body;
    ngx_str_t                    email;
    ngx_str_t                    password;
    ngx_str_t                    display_name;
    ngx_str_t                    target;          /* the id in the URI */
    ngx_str_t                    invite;          /* hash of a code */
    ngx_str_t                    org_name;
    json_t                      *user;
    json_t                      *extra;           /* keys for the answer */
    json_t                      *answer;          /* held while Redis tells */
    ngx_uint_t                   answer_status;
    u_char                       token[NGX_SCENARIO_TOKEN_LEN + 1];
    ngx_str_t                    key_email;
    ngx_str_t                    key_address;
    ngx_uint_t                   pending;
    ngx_uint_t                   pg_ok;
    ngx_uint_t                   redis_ok;

    unsigned                     auth_done:1;
    unsigned                     auth_waiting:1;
    unsigned                     cookie_auth:1;
    unsigned                     cleanup_set:1;
};


extern ngx_module_t  ngx_scenario_module;


/* ngx_scenario_util.c: the per-request plumbing every flow calls */
ngx_scenario_ctx_t *ngx_scenario_ctx(ngx_http_request_t *r);
ngx_scenario_ctx_t *ngx_scenario_user(ngx_http_request_t *r);
void *ngx_scenario_calloc_apart(ngx_pool_t *pool, size_t size);
void *ngx_scenario_calloc_kept(ngx_http_request_t *r, size_t size);
#if (NGX_DEBUG)
ngx_uint_t ngx_scenario_pool_blocks(ngx_pool_t *pool);
#endif
ngx_int_t ngx_scenario_method_not_allowed(ngx_http_request_t *r,
    const char *allow);
ngx_int_t ngx_scenario_pg(ngx_http_request_t *r, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params, ngx_scenario_pg_pt handler);
ngx_int_t ngx_scenario_redis(ngx_http_request_t *r,
    ngx_scenario_redis_pt handler, int argc, const char **argv,
    const size_t *argvlen);
ngx_int_t ngx_scenario_redis_eval(ngx_http_request_t *r,
    ngx_scenario_redis_pt handler, ngx_str_t *script, ngx_uint_t nkeys,
    ngx_str_t *keys, ngx_uint_t nargs, ngx_str_t *args);
void ngx_scenario_finalize(ngx_http_request_t *r, ngx_int_t rc);
ngx_int_t ngx_scenario_unavailable(ngx_http_request_t *r, const char *what);
ngx_int_t ngx_scenario_unauthorized(ngx_http_request_t *r);
ngx_int_t ngx_scenario_rate_limited(ngx_http_request_t *r, time_t retry,
    const char *msg);
ngx_int_t ngx_scenario_wait(ngx_http_request_t *r, ngx_int_t rc,
    const char *what);
void ngx_scenario_fail(ngx_http_request_t *r, ngx_int_t rc, const char *what);
void ngx_scenario_count(ngx_http_request_t *r, ngx_uint_t metric,
    ngx_atomic_int_t n);
void ngx_scenario_model_observe(ngx_http_request_t *r, ngx_int_t rc,
    ngx_msec_t started);

/* ngx_scenario_access.c */
ngx_int_t ngx_scenario_access_init(ngx_conf_t *cf);
ngx_int_t ngx_scenario_origin_ok(ngx_http_request_t *r);
ngx_int_t ngx_scenario_token(ngx_http_request_t *r, ngx_str_t *token,
    ngx_uint_t *cookie);
void ngx_scenario_token_key(u_char *token, size_t len, u_char *key);

/* ngx_scenario_auth.c */
ngx_int_t ngx_scenario_register_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_login_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_logout_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_me_handler(ngx_http_request_t *r);

/* ngx_scenario_sessions.c */
ngx_int_t ngx_scenario_scenarios_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_sessions_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_session_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_session_id(ngx_http_request_t *r, ngx_str_t *id);
ngx_int_t ngx_scenario_query(ngx_http_request_t *r, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params);
ngx_int_t ngx_scenario_not_found(ngx_http_request_t *r,
    const char *what);

/* ngx_scenario_call.c: endpoints that are one SQL function's call */
/* NGX_OK with params added at *n, or NGX_DECLINED: answered, *rc */
typedef ngx_int_t (*ngx_scenario_check_pt)(ngx_http_request_t *r,
    json_t *body, ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc);

typedef struct {
    ngx_uint_t                   method;      /* NGX_HTTP_GET also HEAD */
    const char                  *verb;        /* the URI's last segment */
    const char                  *sql;         /* $1 the caller */
    ngx_uint_t                   target;      /* $2 the URI's id */
    ngx_scenario_check_pt        check;       /* reads a body, adds $n */
    ngx_scenario_pg_pt           done;        /* ngx_scenario_call_done */
} ngx_scenario_route_t;

/* a handler's routes, the Allow of its 405, the "<what> not found" */
typedef struct {
    ngx_scenario_route_t        *routes;
    ngx_uint_t                   n;
    const char                  *allow;
    const char                  *what;
} ngx_scenario_api_t;

#define ngx_scenario_api(routes, allow, what)                                \
    { routes, sizeof(routes) / sizeof(routes[0]), allow, what }

ngx_int_t ngx_scenario_route(ngx_http_request_t *r, ngx_scenario_api_t *api);
void ngx_scenario_call_done(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
json_t *ngx_scenario_call_body(ngx_http_request_t *r, PGresult *res);
void ngx_scenario_call_answer(ngx_http_request_t *r, ngx_uint_t status,
    json_t *body);
ngx_int_t ngx_scenario_check_json(ngx_http_request_t *r, json_t *body,
    ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc);
ngx_int_t ngx_scenario_field_error(ngx_http_request_t *r, const char *field,
    const char *message);

/* ngx_scenario_orgs.c */
extern ngx_scenario_api_t  ngx_scenario_org_api;
extern ngx_scenario_api_t  ngx_scenario_members_api;
extern ngx_scenario_api_t  ngx_scenario_member_api;
extern ngx_scenario_api_t  ngx_scenario_invites_api;
extern ngx_scenario_api_t  ngx_scenario_invite_api;

/* ngx_scenario_authoring.c */
extern ngx_scenario_api_t  ngx_scenario_authoring_api;
extern ngx_scenario_api_t  ngx_scenario_authoring_scenario_api;
extern ngx_scenario_api_t  ngx_scenario_authoring_action_api;

/* ngx_scenario_assignments.c */
extern ngx_scenario_api_t  ngx_scenario_assignments_api;
extern ngx_scenario_api_t  ngx_scenario_assignment_api;
extern ngx_scenario_api_t  ngx_scenario_my_assignments_api;

/* ngx_scenario_review.c */
extern ngx_scenario_api_t  ngx_scenario_review_team_api;
extern ngx_scenario_api_t  ngx_scenario_review_trainee_api;
extern ngx_scenario_api_t  ngx_scenario_review_session_api;
extern ngx_scenario_api_t  ngx_scenario_review_action_api;
extern ngx_scenario_api_t  ngx_scenario_review_export_api;
extern ngx_scenario_api_t  ngx_scenario_session_review_api;

/* ngx_scenario_fields.c */
ngx_int_t ngx_scenario_fields_check(json_t *body, u_char *field,
    size_t field_size, u_char *msg, size_t msg_size);

/* ngx_scenario_chat.c */
ngx_int_t ngx_scenario_chat_handler(ngx_http_request_t *r);
ngx_uint_t ngx_scenario_chat_echo(ngx_str_t *from);

/* ngx_scenario_live.c */
ngx_int_t ngx_scenario_live_handler(ngx_http_request_t *r);

/* ngx_scenario_chat_limit.c */
/* what follows the admission: returns as ngx_scenario_pg() does */
typedef ngx_int_t (*ngx_scenario_chat_admit_pt)(ngx_http_request_t *r);

void ngx_scenario_chat_limit_init_process(ngx_scenario_main_conf_t *smcf,
    ngx_cycle_t *cycle);
void ngx_scenario_chat_limit_exit_process(void);
ngx_int_t ngx_scenario_chat_admit_then(ngx_http_request_t *r,
    ngx_scenario_chat_admit_pt check);
void ngx_scenario_chat_leave(ngx_http_request_t *r);

/* ngx_scenario_resolve.c */
ngx_int_t ngx_scenario_resolve_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_progress_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_leaderboard_handler(ngx_http_request_t *r);
void ngx_scenario_board_award(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *xp, ngx_str_t *wxp, ngx_str_t *name, ngx_int_t level);

/* ngx_scenario_cache.c */
ngx_int_t ngx_scenario_cache_init_process(ngx_scenario_main_conf_t *smcf);
void ngx_scenario_cache_exit_process(void);
void ngx_scenario_cache_stamp(ngx_scenario_main_conf_t *smcf,
    ngx_scenario_stamp_t *stamp);
ngx_int_t ngx_scenario_cache_get(ngx_scenario_main_conf_t *smcf,
    ngx_uint_t kind, ngx_str_t *key, ngx_str_t *value);
void ngx_scenario_cache_put(ngx_scenario_main_conf_t *smcf, ngx_uint_t kind,
    ngx_scenario_stamp_t *stamp, ngx_str_t *key, ngx_str_t *value);
void ngx_scenario_user_cache(ngx_http_request_t *r, ngx_str_t *id,
    json_t *user, ngx_scenario_stamp_t *stamp);
void ngx_scenario_user_forget(ngx_http_request_t *r, ngx_str_t *id);
void ngx_scenario_cache_forget(ngx_uint_t kind, ngx_str_t *key);

/* ngx_scenario_revoke.c */
typedef struct ngx_scenario_watch_s  ngx_scenario_watch_t;
typedef void (*ngx_scenario_revoked_pt)(void *data);

void ngx_scenario_revoke_init_process(void);
ngx_int_t ngx_scenario_watch(ngx_http_request_t *r, ngx_str_t *key,
    ngx_scenario_revoked_pt handler, void *data);
void ngx_scenario_revoked(ngx_str_t *key);
void ngx_scenario_member_key(ngx_str_t *id, u_char *key);
ngx_int_t ngx_scenario_watch_member(ngx_http_request_t *r, ngx_str_t *id,
    ngx_scenario_revoked_pt handler, void *data);
ngx_int_t ngx_scenario_watch_login(ngx_http_request_t *r,
    ngx_scenario_revoked_pt handler, void *data);

/* ngx_scenario_ops.c */
ngx_int_t ngx_scenario_healthz_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_metrics_handler(ngx_http_request_t *r);
ngx_int_t ngx_scenario_metrics_init(ngx_conf_t *cf,
    ngx_scenario_main_conf_t *smcf);


#endif /* _NGX_SCENARIO_H_INCLUDED_ */
