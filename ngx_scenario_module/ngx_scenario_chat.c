/*
 * The chat: GET /sessions/{id}/chat, a WebSocket on which the trainee talks
 * with the scenario's persona (API.md, "Chat over WebSocket").
 *
 * Every event of a session (acks, the reply's start, deltas and end,
 * errors, "resolved") goes to the connection it concerns directly and to
 * the session's Redis channel, so that every other connection on the
 * session, on any worker of any nginx, sees it too; an event carries the
 * id of the connection that sent it, which skips its own.  A reply is
 * generated once per session: a Redis lock elects the connection that
 * generates it.  Messages are stored in Postgres before they are
 * acknowledged; the context the model sees is kept in Redis, bounded, and
 * rebuilt from Postgres when Redis has lost it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


#define NGX_SCENARIO_CHAT_INBOX      64     /* messages waiting */
#define NGX_SCENARIO_CHAT_INBOX_SIZE 262144 /* their bytes, beyond one */
#define NGX_SCENARIO_CHAT_RETRIES    2      /* after a 429 */
#define NGX_SCENARIO_CHAT_RETRY_MAX  10     /* seconds, at most */
#define NGX_SCENARIO_CHAT_LEASE      5000   /* ms, the reply lock's */
#define NGX_SCENARIO_CHAT_RENEW      1500   /* ms, between renewals */
#define NGX_SCENARIO_CHAT_POLL       500    /* ms, a waiter's look */
#define NGX_SCENARIO_CHAT_PAGE       100    /* rows a replay reads at once */
#define NGX_SCENARIO_CHAT_COALESCE   20     /* ms, an event may wait */
#define NGX_SCENARIO_CHAT_BATCH      64     /* events in one publish */
#define NGX_SCENARIO_CHAT_BATCH_SIZE 16384  /* ... or their bytes */
#define NGX_SCENARIO_CHAT_PROMPTS    64     /* prompts a worker keeps */
#define NGX_SCENARIO_CHAT_PROMPT_TTL 60000  /* ms */
#define NGX_SCENARIO_CHAT_EVENT_BUF  1024   /* an event on the stack */
#define NGX_SCENARIO_CHAT_TURN_POOL  16384  /* the prompt and the context's
                                               items in one block */

/* a session's key: "ctx::system" and an id of 18 digits at most */
#define NGX_SCENARIO_CHAT_KEY_LEN    32

/*
 * Neither the confs nor the session's keys are kept in the chat, which an
 * idle socket holds for its life: the confs are the request's, and a key
 * is made on the stack for the command that needs it
 */
#define ngx_scenario_chat_mcf(chat)                                           \
    ((ngx_scenario_main_conf_t *)                                             \
     ngx_http_get_module_main_conf((chat)->request, ngx_scenario_module))
#define ngx_scenario_chat_lcf(chat)                                           \
    ((ngx_scenario_loc_conf_t *)                                              \
     ngx_http_get_module_loc_conf((chat)->request, ngx_scenario_module))

/* the session's id as a number, which pins its Redis commands */
#define ngx_scenario_chat_hint(chat)                                          \
    ((ngx_uint_t) ngx_atoi((chat)->channel.data + sizeof("chat:") - 1,        \
                           (chat)->channel.len - (sizeof("chat:") - 1)))


/* how an event goes to the session's other connections */
#define NGX_SCENARIO_CHAT_NOW        1      /* published at once */
#define NGX_SCENARIO_CHAT_LATER      2      /* may join the next publish */


typedef struct ngx_scenario_chat_s  ngx_scenario_chat_t;
typedef struct ngx_scenario_turn_s  ngx_scenario_turn_t;
typedef struct ngx_scenario_op_s    ngx_scenario_op_t;

typedef struct {
    ngx_queue_t                  queue;
    size_t                       len;
    u_char                       data[1];
} ngx_scenario_inmsg_t;

/* events on their way to the session's channel, one PUBLISH for all */
typedef struct {
    ngx_event_t                  timer;
    ngx_scenario_chat_t         *chat;
    ngx_uint_t                   n;
    size_t                       len;
    size_t                       size;
    u_char                      *data;
} ngx_scenario_pub_t;

typedef void (*ngx_scenario_chat_pg_pt)(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
typedef void (*ngx_scenario_chat_redis_pt)(ngx_scenario_chat_t *chat,
    redisReply *reply, ngx_int_t rc);


struct ngx_scenario_chat_s {
    ngx_http_request_t          *request;
    ngx_http_ws_t               *ws;
    ngx_redis_sub_t             *sub;
    ngx_scenario_pub_t          *pub;           /* events not yet out */

    ngx_uint_t                   scenario;      /* its id: the prompt's */
    ngx_str_t                    channel;       /* "chat:<id>": the id's
                                                   only copy */
    ngx_str_t                    origin;        /* "<instance>.<n>" */

    ngx_queue_t                  inbox;         /* client messages */
    ngx_scenario_inmsg_t        *current;       /* the one in work */
    json_t                      *msg;           /* ... parsed */
    ngx_uint_t                   inbox_len;
    size_t                       inbox_size;    /* bytes of the inbox */
    ngx_scenario_turn_t         *turn;
    ngx_uint_t                   refs;          /* operations in flight */
    int64_t                      replayed;      /* resume: the last seq sent */

    unsigned                     closed:1;
    unsigned                     released:1;
    unsigned                     resolved:1;
};


struct ngx_scenario_turn_s {
    ngx_scenario_chat_t         *chat;
    ngx_pool_t                  *pool;
    ngx_str_t                    token;         /* the lock's value */
    ngx_int_t                    seq;           /* expected, then stored */
    ngx_int_t                    answers;       /* last_seq at the start */
    ngx_int_t                    next;          /* what a next turn
                                                   answers, or -1 */
    ngx_str_t                    user;          /* the message answered, */
    ngx_int_t                    user_seq;      /* when the turn knows it */
    ngx_int_t                    listed_last;   /* the context's last seq */
    ngx_uint_t                   listed_n;
    ngx_uint_t                   due;           /* replies in the pipe */
    ngx_int_t                    lock_rc;
    ngx_str_t                   *context;       /* the model's messages */
    ngx_uint_t                   context_n;     /* ... of room for n + 1 */
    ngx_str_t                    system;        /* the persona's prompt */
    ngx_str_t                    content;
    ngx_model_call_t            *call;
    ngx_event_t                  retry;
    ngx_uint_t                   retries;
    ngx_msec_t                   started;
    ngx_event_t                  renew;         /* the holder's lease */
    ngx_event_t                  wait;          /* a waiter's poll */
    ngx_msec_t                   waited;
    unsigned                     locked:1;
    unsigned                     got_lock:1;    /* SET NX said OK */
    unsigned                     listed:1;      /* a context that holds */
    unsigned                     push_user:1;   /* to the context, at end */
    unsigned                     stored:1;      /* the reply, this turn's */
    unsigned                     fresh:1;       /* no context list yet */
};


struct ngx_scenario_op_s {
    ngx_scenario_chat_t         *chat;
    ngx_scenario_chat_pg_pt      pg;
    ngx_scenario_chat_redis_pt   redis;
};


static ngx_int_t ngx_scenario_chat_check(ngx_http_request_t *r);
static void ngx_scenario_chat_session(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
static ngx_int_t ngx_scenario_chat_open(ngx_http_request_t *r,
    PGresult *res);
static ngx_scenario_chat_t *ngx_scenario_chat_create(ngx_http_request_t *r);
static void ngx_scenario_chat_id(ngx_scenario_chat_t *chat, ngx_str_t *id);
static void ngx_scenario_chat_key(ngx_scenario_chat_t *chat,
    ngx_str_t *key, u_char *buf, const char *fmt);
static void ngx_scenario_chat_message(ngx_http_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_scenario_chat_next(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_done(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_handle(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_user_message(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_stored(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_chat_resume(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_replay_page(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_replay(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_chat_drained(ngx_http_ws_t *ws);
static void ngx_scenario_chat_error(ngx_scenario_chat_t *chat,
    const char *code, const char *message, ngx_uint_t broadcast);

static void ngx_scenario_turn_start(ngx_scenario_chat_t *chat,
    ngx_int_t answers, ngx_int_t user_seq, json_t *user);
static void ngx_scenario_turn_lock(ngx_scenario_chat_t *chat,
    ngx_scenario_turn_t *turn);
static void ngx_scenario_turn_read(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_prompt(ngx_scenario_chat_t *chat,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_turn_listed(ngx_scenario_chat_t *chat,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_turn_due(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_elected(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_owner(ngx_scenario_chat_t *chat,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_turn_hold(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_renew(ngx_event_t *ev);
static void ngx_scenario_turn_wait(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_poll(ngx_event_t *ev);
static void ngx_scenario_turn_polled(ngx_scenario_chat_t *chat,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_turn_locked(ngx_scenario_chat_t *chat,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_turn_context(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_rebuilt(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_turn_begin(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_call(ngx_scenario_turn_t *turn);
static void ngx_scenario_turn_delta(void *data, u_char *text, size_t len);
static void ngx_scenario_turn_model_done(void *data, ngx_int_t rc,
    ngx_uint_t status, time_t retry_after, ngx_str_t *error,
    ngx_str_t *content);
static void ngx_scenario_turn_retry(ngx_event_t *ev);
static void ngx_scenario_turn_saved(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_turn_end(ngx_scenario_chat_t *chat,
    ngx_uint_t again);
static void ngx_scenario_turn_pending(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);

static void ngx_scenario_chat_closed(ngx_http_ws_t *ws, ngx_uint_t code);
static void ngx_scenario_chat_revoked(void *data);
static void ngx_scenario_chat_unref(ngx_scenario_chat_t *chat);
static ngx_int_t ngx_scenario_chat_pg(ngx_scenario_chat_t *chat,
    const char *sql, ngx_uint_t nparams, ngx_str_t *params,
    ngx_scenario_chat_pg_pt handler);
static void ngx_scenario_chat_pg_done(void *data, PGresult *res,
    ngx_int_t rc);
static ngx_int_t ngx_scenario_chat_redis(ngx_scenario_chat_t *chat,
    ngx_scenario_chat_redis_pt handler, int argc, const char **argv,
    const size_t *argvlen);
static void ngx_scenario_chat_redis_done(void *data, redisReply *reply,
    ngx_int_t rc);
static void ngx_scenario_chat_event(ngx_scenario_chat_t *chat, json_t *ev,
    ngx_uint_t broadcast);
static void ngx_scenario_chat_emit(ngx_scenario_chat_t *chat, u_char *p,
    size_t len, ngx_uint_t broadcast);
static void ngx_scenario_chat_event_text(ngx_scenario_chat_t *chat,
    const char *type, const char *key, ngx_str_t *text, ngx_int_t seq,
    ngx_uint_t broadcast);
static void ngx_scenario_chat_send(ngx_scenario_chat_t *chat, u_char *data,
    size_t len);
static void ngx_scenario_chat_publish(ngx_scenario_chat_t *chat,
    u_char *data, size_t len, ngx_uint_t later);
static void ngx_scenario_chat_flush(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_flush_handler(ngx_event_t *ev);
static void ngx_scenario_chat_heard(void *data, ngx_str_t *channel,
    ngx_str_t *message);
static void ngx_scenario_chat_hear(ngx_scenario_chat_t *chat, u_char *p,
    u_char *last);
static u_char *ngx_scenario_chat_item(ngx_pool_t *pool, ngx_int_t seq,
    const char *role, ngx_str_t *content, size_t *len);
static ngx_int_t ngx_scenario_chat_unseq(ngx_pool_t *pool, u_char *p,
    size_t len, ngx_int_t *seq, ngx_str_t *out);
static ngx_int_t ngx_scenario_chat_unseq_slow(ngx_pool_t *pool, u_char *p,
    size_t len, ngx_int_t *seq, ngx_str_t *out);
static ngx_int_t ngx_scenario_chat_message_text(ngx_pool_t *pool,
    ngx_str_t *role, ngx_str_t *content, ngx_str_t *out);
static ngx_int_t ngx_scenario_turn_body(ngx_scenario_turn_t *turn,
    ngx_str_t *body);
static ngx_int_t ngx_scenario_turn_system(ngx_scenario_turn_t *turn,
    ngx_str_t *out);
static void ngx_scenario_chat_rewrite_context(ngx_scenario_chat_t *chat,
    ngx_str_t *system, json_t *list);
static ngx_int_t ngx_scenario_chat_system(ngx_pool_t *pool, PGresult *res,
    ngx_str_t *out);


static const char  ngx_scenario_chat_session_sql[] =
    "SELECT se.status, s.id, s.title, s.persona_name, s.persona_role, "
    "(SELECT coalesce(max(m.seq), 0) FROM messages m "
    "WHERE m.session_id = se.id), "
    "(SELECT m.role FROM messages m WHERE m.session_id = se.id "
    "ORDER BY m.seq DESC LIMIT 1) "
    "FROM sessions se " NGX_SCENARIO_SESSION_SCENARIO
    "WHERE se.id = $1 AND se.user_id = $2 " NGX_SCENARIO_SESSION_OPEN;

/* the message, and the seq a reply to it answers (sql/030) */
static const char  ngx_scenario_chat_add_sql[] =
    "SELECT seq, duplicate, needs_reply, last_seq "
    "FROM chat_store_message($1, $2, $3)";

static const char  ngx_scenario_chat_replay_sql[] =
    "SELECT seq, role, content, "
    "to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
    "FROM messages WHERE session_id = $1 AND seq > $2 "
    "ORDER BY seq LIMIT $3";

static const char  ngx_scenario_chat_rebuild_sql[] =
    "SELECT s.persona_name, s.persona_role, s.persona_prompt, s.backstory, "
    "s.goal, s.opening_line, coalesce((SELECT json_agg(json_build_object("
    "'seq', t.seq, 'role', t.role, 'content', t.content) ORDER BY t.seq) "
    "FROM (SELECT m.seq, m.role, m.content FROM messages m "
    "WHERE m.session_id = se.id ORDER BY m.seq DESC LIMIT $2) t), '[]'), "
    "se.last_seq "
    "FROM sessions se " NGX_SCENARIO_SESSION_SCENARIO
    "WHERE se.id = $1";

/*
 * The reply takes its seq only when it is stored (sql/015), so a failed
 * call leaves no hole; the store also says whether a message of the
 * trainee waits, and what a turn for it answers (sql/030); $4 says whether
 * its commit waits for the WAL flush (sql/035).
 */
static const char  ngx_scenario_chat_reply_sql[] =
    "SELECT seq, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), content, duplicate, pending, "
    "last_seq FROM chat_store_turn($1, $2, $3, $4)";

/*
 * A message of the trainee still waits for its reply: with $2 = -1, the
 * last one; else one stored after seq $2, the messages a turn answered.
 */
static const char  ngx_scenario_chat_pending_sql[] =
    "SELECT CASE WHEN $2::int < 0 THEN (SELECT role = 'user' FROM messages "
    "WHERE session_id = $1 ORDER BY seq DESC LIMIT 1) "
    "ELSE EXISTS (SELECT 1 FROM messages WHERE session_id = $1 "
    "AND role = 'user' AND seq > $2::int) END, "
    "(SELECT last_seq FROM sessions WHERE id = $1 AND status = 'active')";

/*
 * The end of a turn, while the lock is still its holder's: the turn's
 * messages join the context (ARGV[5...], each with its seq), which is
 * trimmed once it holds twice its bound (a reader takes the last ones);
 * a list this turn did not find is made only when it started the session
 * (ARGV[2]), else dropped: a later reader rebuilds it from Postgres.  The
 * lock goes with the GETDEL that reads its holder, one command for GET and
 * DEL; a lock the turn lost to a taker is put back, the script being
 * atomic, with a whole lease (its own holder renews it).
 */
static ngx_str_t  ngx_scenario_chat_unlock_script = ngx_string(
    "local h = redis.call('GETDEL', KEYS[1]) "
    "if h ~= ARGV[1] then "
    "if h then redis.call('SET', KEYS[1], h, 'PX', "
    ngx_value(NGX_SCENARIO_CHAT_LEASE) ") end return 0 end "
    "if #ARGV > 4 then "
    "local n = redis.call('RPUSH', KEYS[2], unpack(ARGV, 5)) "
    "if n == #ARGV - 4 then "
    "if ARGV[2] == '1' then redis.call('EXPIRE', KEYS[2], 86400) "
    "else redis.call('DEL', KEYS[2]) end "
    "elseif n > tonumber(ARGV[3]) then "
    "redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1) end end "
    "return 1");

/* the context anew, from Postgres: the prompt, then the turns in order */
static ngx_str_t  ngx_scenario_chat_rewrite_script = ngx_string(
    "redis.call('DEL', KEYS[1]) "
    "redis.call('SET', KEYS[2], ARGV[1], 'EX', 86400) "
    "if #ARGV > 1 then redis.call('RPUSH', KEYS[1], unpack(ARGV, 2)) "
    "redis.call('EXPIRE', KEYS[1], 86400) end return 1");

/* the lease is extended only while the lock is still its holder's */
static ngx_str_t  ngx_scenario_chat_renew_script = ngx_string(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0");


static ngx_uint_t  ngx_scenario_chat_number;

/*
 * 64 random bits made by each worker at its first chat: replicas in
 * containers share pids, and an origin made of the pid would make two
 * instances drop each other's events as their own
 */
static u_char      ngx_scenario_chat_instance[16];

/* set while an event is handed to the worker's connections in process */
static ngx_uint_t  ngx_scenario_chat_local;

/* the personas' prompts, by scenario: they are the same for its sessions */
static ngx_ttl_cache_t  ngx_scenario_chat_prompts;
static ngx_uint_t       ngx_scenario_chat_prompts_ready;

/* ... and as JSON string text, after the prompt it was made of */
static ngx_ttl_cache_t  ngx_scenario_chat_escaped;


/* the handshake: owner and state checked before the upgrade */

ngx_int_t
ngx_scenario_chat_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_str_t            id;
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_http_json_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "authentication is required");
    }

    rc = ngx_http_ws_check(r);
    if (rc != NGX_OK) {
        return ngx_http_json_error(r, rc,
                                   rc == NGX_HTTP_NOT_ALLOWED
                                   ? "method_not_allowed" : "bad_request",
                                   "a WebSocket upgrade is expected here");
    }

    if (ngx_scenario_session_id(r, &id) != NGX_OK) {
        return ngx_scenario_not_found(r, "session");
    }

    /* a slot among the user's and the address's open chats */
    return ngx_scenario_chat_admit_then(r, ngx_scenario_chat_check);
}


static ngx_int_t
ngx_scenario_chat_check(ngx_http_request_t *r)
{
    ngx_str_t            params[2];
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    (void) ngx_scenario_session_id(r, &params[0]);
    params[1] = ctx->user_id_text;

    return ngx_scenario_pg(r, ngx_scenario_chat_session_sql, 2, params,
                           ngx_scenario_chat_session);
}


static void
ngx_scenario_chat_session(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    ngx_str_t  status;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    if (PQntuples(res) != 1) {
        ngx_scenario_finalize(r, ngx_scenario_not_found(r, "session"));
        return;
    }

    status = ngx_pg_value(res, 0, 0);

    if (status.len != sizeof("active") - 1
        || ngx_strncmp(status.data, "active", status.len) != 0)
    {
        ngx_scenario_finalize(r, ngx_http_json_error(r, NGX_HTTP_CONFLICT,
                              "conflict", "the session is resolved"));
        return;
    }

    if (ngx_scenario_chat_open(r, res) != NGX_OK) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* what the socket keeps for its life (t/151-chat-idle-pool.t) */
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "chat upgraded: request pool of %ui blocks, "
                   "connection pool of %ui",
                   ngx_scenario_pool_blocks(r->pool),
                   ngx_scenario_pool_blocks(r->connection->pool));

    /* the WebSocket holds the request now: give back the handler's count */
    ngx_http_finalize_request(r, NGX_DONE);
}


static ngx_int_t
ngx_scenario_chat_open(ngx_http_request_t *r, PGresult *res)
{
    json_t               *ready;
    ngx_int_t             last_seq;
    ngx_str_t             v[4], last_role;
    ngx_uint_t            i;
    ngx_scenario_chat_t  *chat;
    ngx_scenario_ctx_t   *ctx;

    ctx = ngx_scenario_ctx(r);

    chat = ngx_scenario_chat_create(r);
    if (chat == NULL) {
        return NGX_ERROR;
    }

    chat->request = r;
    ngx_queue_init(&chat->inbox);


    for (i = 0; i < 4; i++) {
        v[i] = ngx_pg_value(res, 0, i + 1);
    }

    last_seq = ngx_pg_int(res, 0, 5);
    chat->scenario = ngx_atoi(v[0].data, v[0].len);

    chat->ws = ngx_http_ws_accept(r, &ngx_scenario_chat_lcf(chat)->chat_ws,
                                  ngx_scenario_chat_message,
                                  ngx_scenario_chat_closed, chat);
    if (chat->ws == NULL) {
        return NGX_ERROR;
    }

    ctx->chat = chat;
    ngx_scenario_count(r, NGX_SCENARIO_M_ACTIVE_CHATS, 1);

    /* a logout, a role change or a removal ends the chat, everywhere */
    if (ngx_scenario_watch_login(r, ngx_scenario_chat_revoked, chat)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    chat->sub = ngx_redis_subscribe(ngx_scenario_chat_mcf(chat)->redis_pool,
                                    &chat->channel, ngx_scenario_chat_heard,
                                    chat);

    /* made when sent and freed: a connection keeps nothing of it */
    ready = json_pack("{s:s,s:I,s:{s:I,s:s%,s:{s:s%,s:s%}},s:I}",
                      "type", "ready",
                      "session_id", (json_int_t) ngx_scenario_chat_hint(chat),
                      "scenario",
                      "id", (json_int_t) ngx_atoi(v[0].data, v[0].len),
                      "title", (char *) v[1].data, v[1].len,
                      "persona",
                      "name", (char *) v[2].data, v[2].len,
                      "role", (char *) v[3].data, v[3].len,
                      "last_seq", (json_int_t) last_seq);
    if (ready == NULL) {
        return NGX_ERROR;
    }

    ngx_scenario_chat_event(chat, ready, 0);
    json_decref(ready);

    /*
     * A new session: the persona speaks first; a message left unanswered
     * (its sender went away before the reply): it gets one now.
     */
    last_role = ngx_pg_value(res, 0, 6);

    if (last_seq == 0
        || (last_role.len == 4 && ngx_strncmp(last_role.data, "user", 4) == 0))
    {
        ngx_scenario_turn_start(chat, last_seq, 0, NULL);
    }

    return NGX_OK;
}


/*
 * The chat and its keys in one allocation of their exact size, apart from
 * r->pool's blocks, which the socket keeps for its life: made before the
 * upgrade, it would take room that nginx's allocations after it need
 */

static ngx_scenario_chat_t *
ngx_scenario_chat_create(ngx_http_request_t *r)
{
    u_char               *p, raw[8];
    u_char                origin[sizeof(ngx_scenario_chat_instance) + 1
                                 + NGX_INT_T_LEN];
    size_t                len, origin_len;
    ngx_str_t             id;
    ngx_scenario_chat_t  *chat;

    (void) ngx_scenario_session_id(r, &id);

    if (ngx_scenario_chat_instance[0] == '\0') {
        randombytes_buf(raw, sizeof(raw));
        ngx_hex_dump(ngx_scenario_chat_instance, raw, sizeof(raw));
    }

    origin_len = ngx_sprintf(origin, "%*s.%ui",
                             sizeof(ngx_scenario_chat_instance),
                             ngx_scenario_chat_instance,
                             ++ngx_scenario_chat_number)
                 - origin;

    len = id.len + sizeof("chat:") - 1 + origin_len;

    chat = ngx_scenario_calloc_apart(r->pool,
                                     sizeof(ngx_scenario_chat_t) + len);
    if (chat == NULL) {
        return NULL;
    }

    p = (u_char *) (chat + 1);

    /* the URI's copy: the upgrade gives the header buffer back */
    chat->channel.data = p;
    p = ngx_sprintf(p, "chat:%V", &id);
    chat->channel.len = p - chat->channel.data;

    chat->origin.data = p;
    chat->origin.len = origin_len;
    ngx_memcpy(p, origin, origin_len);

    return chat;
}


/* the session's id, as the URI had it */

static void
ngx_scenario_chat_id(ngx_scenario_chat_t *chat, ngx_str_t *id)
{
    id->data = chat->channel.data + sizeof("chat:") - 1;
    id->len = chat->channel.len - (sizeof("chat:") - 1);
}


/* fmt: the key's, of the session's id; argv is copied as it is queued */

static void
ngx_scenario_chat_key(ngx_scenario_chat_t *chat, ngx_str_t *key, u_char *buf,
    const char *fmt)
{
    ngx_str_t  id;

    ngx_scenario_chat_id(chat, &id);

    key->data = buf;
    key->len = ngx_snprintf(buf, NGX_SCENARIO_CHAT_KEY_LEN, fmt, &id) - buf;
}


/* client messages are handled one at a time, in order */

static void
ngx_scenario_chat_message(ngx_http_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len)
{
    ngx_scenario_chat_t   *chat;
    ngx_scenario_inmsg_t  *in;

    chat = ngx_http_ws_data(ws);

    if (opcode != NGX_HTTP_WS_TEXT) {
        ngx_http_ws_close(ws, NGX_HTTP_WS_UNSUPPORTED, "text frames only");
        return;
    }

    /* a client that floods faster than its messages are stored */
    if (chat->inbox_len >= NGX_SCENARIO_CHAT_INBOX
        || (chat->inbox_len
            && chat->inbox_size + len > NGX_SCENARIO_CHAT_INBOX_SIZE))
    {
        ngx_http_ws_close(ws, NGX_HTTP_WS_POLICY, "too many messages");
        return;
    }

    in = ngx_alloc(offsetof(ngx_scenario_inmsg_t, data) + len,
                   chat->request->connection->log);
    if (in == NULL) {
        ngx_http_ws_close(ws, NGX_HTTP_WS_INTERNAL_ERROR, "out of memory");
        return;
    }

    in->len = len;
    ngx_memcpy(in->data, data, len);
    ngx_queue_insert_tail(&chat->inbox, &in->queue);
    chat->inbox_len++;
    chat->inbox_size += len;

    ngx_scenario_chat_next(chat);
}


static void
ngx_scenario_chat_next(ngx_scenario_chat_t *chat)
{
    ngx_queue_t  *q;

    while (chat->current == NULL && !chat->closed
           && !ngx_queue_empty(&chat->inbox))
    {
        q = ngx_queue_head(&chat->inbox);
        ngx_queue_remove(q);
        chat->inbox_len--;

        chat->current = ngx_queue_data(q, ngx_scenario_inmsg_t, queue);
        chat->inbox_size -= chat->current->len;
        ngx_scenario_chat_handle(chat);
    }
}


/* the message in work is done with: the next one may go */

static void
ngx_scenario_chat_done(ngx_scenario_chat_t *chat)
{
    if (chat->msg) {
        json_decref(chat->msg);
        chat->msg = NULL;
    }

    if (chat->current) {
        ngx_free(chat->current);
        chat->current = NULL;
    }

    ngx_scenario_chat_next(chat);
}


static void
ngx_scenario_chat_handle(ngx_scenario_chat_t *chat)
{
    const char  *type;

    chat->msg = json_loadb((char *) chat->current->data, chat->current->len,
                           JSON_REJECT_DUPLICATES, NULL);

    if (chat->msg == NULL || !json_is_object(chat->msg)) {
        ngx_scenario_chat_error(chat, "bad_request",
                                "a message is one JSON object", 0);
        ngx_scenario_chat_done(chat);
        return;
    }

    type = json_string_value(json_object_get(chat->msg, "type"));

    if (type && ngx_strcmp(type, "user_message") == 0) {
        ngx_scenario_chat_user_message(chat);
        return;
    }

    if (type && ngx_strcmp(type, "resume") == 0) {
        ngx_scenario_chat_resume(chat);
        return;
    }

    ngx_scenario_chat_error(chat, "bad_request",
                            "unknown message type: \"user_message\" or "
                            "\"resume\" expected", 0);
    ngx_scenario_chat_done(chat);
}


static void
ngx_scenario_chat_user_message(ngx_scenario_chat_t *chat)
{
    ngx_str_t  params[3];

    if (ngx_http_json_string(chat->msg, "client_msg_id", &params[1], 1, 128)
        != NGX_OK
        || ngx_http_json_string(chat->msg, "content", &params[2], 1,
                                ngx_scenario_chat_lcf(chat)->chat_max_chars)
           != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "bad_request",
                                "\"client_msg_id\" (1 to 128 characters) "
                                "and \"content\" (not empty, within the "
                                "limit) must be strings", 0);
        ngx_scenario_chat_done(chat);
        return;
    }

    ngx_scenario_chat_id(chat, &params[0]);

    if (ngx_scenario_chat_pg(chat, ngx_scenario_chat_add_sql, 3, params,
                             ngx_scenario_chat_stored)
        != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "unavailable",
                                "the message could not be stored, send it "
                                "again", 0);
        ngx_scenario_chat_done(chat);
    }
}


static void
ngx_scenario_chat_stored(ngx_scenario_chat_t *chat, PGresult *res,
    ngx_int_t rc)
{
    json_t      *id, *content;
    ngx_str_t    text;
    ngx_uint_t   duplicate, needs_reply;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_chat_error(chat, "unavailable",
                                "the message could not be stored, send it "
                                "again", 0);
        ngx_scenario_chat_done(chat);
        return;
    }

    if (PQntuples(res) != 1) {
        ngx_scenario_chat_error(chat, "conflict", "the session is resolved",
                                0);
        ngx_scenario_chat_done(chat);
        return;
    }

    duplicate = ngx_pg_value(res, 0, 1).data[0] == 't';
    needs_reply = ngx_pg_value(res, 0, 2).data[0] == 't';

    id = json_object_get(chat->msg, "client_msg_id");
    content = json_object_get(chat->msg, "content");

    text.data = (u_char *) json_string_value(id);
    text.len = json_string_length(id);

    /* a repeated message concerns its sender only */
    ngx_scenario_chat_event_text(chat, "ack", "client_msg_id", &text,
                                 ngx_pg_int(res, 0, 0),
                                 duplicate ? 0 : NGX_SCENARIO_CHAT_LATER);

    if (needs_reply) {
        /* the message joins the context with the turn's end */
        ngx_scenario_turn_start(chat, ngx_pg_int(res, 0, 3),
                                duplicate ? 0 : ngx_pg_int(res, 0, 0),
                                content);
    }

    ngx_scenario_chat_done(chat);
}


static void
ngx_scenario_chat_resume(ngx_scenario_chat_t *chat)
{
    json_t  *after;

    after = json_object_get(chat->msg, "after_seq");

    /* seq is a Postgres integer: a larger value is the client's mistake */
    if (!json_is_integer(after)
        || json_integer_value(after) < 0
        || json_integer_value(after) > NGX_MAX_INT32_VALUE)
    {
        ngx_scenario_chat_error(chat, "bad_request",
                                "\"after_seq\" must be an integer from 0 "
                                "to 2147483647", 0);
        ngx_scenario_chat_done(chat);
        return;
    }

    chat->replayed = json_integer_value(after);

    ngx_scenario_chat_replay_page(chat);
}


/*
 * The replay goes in pages under the output cap: a page is sent while
 * the queue holds less than half of scenario_chat_max_output (at least one
 * message each time), and the next page is read once the queue drained,
 * so that a slow reader of a long transcript is not dropped, and nothing
 * is left out.  The next client message waits meanwhile.
 */

static void
ngx_scenario_chat_replay_page(ngx_scenario_chat_t *chat)
{
    u_char     buf[NGX_INT64_LEN], page[NGX_INT_T_LEN];
    ngx_str_t  params[3];

    ngx_scenario_chat_id(chat, &params[0]);
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%L", chat->replayed) - buf;
    params[2].data = page;
    params[2].len = ngx_sprintf(page, "%d", NGX_SCENARIO_CHAT_PAGE) - page;

    if (ngx_scenario_chat_pg(chat, ngx_scenario_chat_replay_sql, 3, params,
                             ngx_scenario_chat_replay)
        != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "unavailable",
                                "the messages could not be read, ask again",
                                0);
        ngx_scenario_chat_done(chat);
    }
}


static void
ngx_scenario_chat_replay(ngx_scenario_chat_t *chat, PGresult *res,
    ngx_int_t rc)
{
    int         i, n;
    size_t      len, budget, queued;
    json_t     *ev;
    ngx_int_t   seq;
    ngx_str_t   role, content, at;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_chat_error(chat, "unavailable",
                                "the messages could not be read, ask again",
                                0);
        ngx_scenario_chat_done(chat);
        return;
    }

    n = PQntuples(res);
    budget = ngx_scenario_chat_lcf(chat)->chat_max_output / 2;

    for (i = 0; i < n; i++) {

        if (chat->closed || !ngx_http_ws_is_open(chat->ws)) {
            ngx_scenario_chat_done(chat);
            return;
        }

        seq = ngx_pg_int(res, i, 0);
        role = ngx_pg_value(res, i, 1);
        content = ngx_pg_value(res, i, 2);
        at = ngx_pg_value(res, i, 3);

        ev = json_pack("{s:s,s:I,s:s%,s:s%,s:s%}", "type", "message",
                       "seq", (json_int_t) seq,
                       "role", (char *) role.data, role.len,
                       "content", (char *) content.data, content.len,
                       "created_at", (char *) at.data, at.len);
        if (ev == NULL) {
            continue;
        }

        len = json_dumpb(ev, NULL, 0, JSON_COMPACT);
        queued = ngx_http_ws_queued(chat->ws);

        if (queued && queued + len > budget) {
            /* the rest of the page is read again once the queue drained */
            json_decref(ev);
            ngx_http_ws_on_drained(chat->ws, ngx_scenario_chat_drained);
            return;
        }

        ngx_scenario_chat_event(chat, ev, 0);
        json_decref(ev);

        chat->replayed = seq;
    }

    if (n < NGX_SCENARIO_CHAT_PAGE) {
        ngx_scenario_chat_done(chat);
        return;
    }

    ngx_scenario_chat_replay_page(chat);
}


static void
ngx_scenario_chat_drained(ngx_http_ws_t *ws)
{
    ngx_scenario_chat_t  *chat;

    chat = ngx_http_ws_data(ws);

    if (chat->closed || chat->current == NULL) {
        return;
    }

    ngx_scenario_chat_replay_page(chat);
}


/* an application error: the connection stays open */

static void
ngx_scenario_chat_error(ngx_scenario_chat_t *chat, const char *code,
    const char *message, ngx_uint_t broadcast)
{
    json_t  *ev;

    ev = json_pack("{s:s,s:s,s:s}", "type", "error", "code", code,
                   "message", message);
    if (ev) {
        ngx_scenario_chat_event(chat, ev, broadcast);
        json_decref(ev);
    }
}


/* the reply: elected by the session's lock, generated once */

static void
ngx_scenario_turn_start(ngx_scenario_chat_t *chat, ngx_int_t answers,
    ngx_int_t user_seq, json_t *user)
{
    u_char               *p;
    ngx_pool_t           *pool;
    ngx_scenario_turn_t  *turn;

    if (chat->turn != NULL || chat->closed) {
        return;
    }

    pool = ngx_create_pool(NGX_SCENARIO_CHAT_TURN_POOL,
                           chat->request->connection->log);
    if (pool == NULL) {
        return;
    }

    turn = ngx_pcalloc(pool, sizeof(ngx_scenario_turn_t));
    p = ngx_pnalloc(pool, 2 * NGX_INT64_LEN + NGX_INT_T_LEN);

    if (turn == NULL || p == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    turn->chat = chat;
    turn->pool = pool;
    turn->token.data = p;
    turn->token.len = ngx_sprintf(p, "%V.%uD", &chat->origin,
                                  (uint32_t) ngx_random())
                      - p;

    /* what the reply answers: the session's last seq when it began */
    turn->answers = answers;
    turn->next = -1;

    /* the message that started it, the last one: it joins the context */
    if (user_seq > 0 && user_seq == answers && json_is_string(user)) {
        turn->user.len = json_string_length(user);
        turn->user.data = ngx_pnalloc(pool, turn->user.len + 1);
        if (turn->user.data == NULL) {
            ngx_destroy_pool(pool);
            return;
        }

        ngx_memcpy(turn->user.data, json_string_value(user), turn->user.len);
        turn->user_seq = user_seq;
    }

    chat->turn = turn;

    ngx_scenario_turn_lock(chat, turn);
}


/*
 * The lock holds the holder's token and a short lease that the holder
 * renews while it works: a dead holder frees the session within a lease.
 */

static void
ngx_scenario_turn_lock(ngx_scenario_chat_t *chat, ngx_scenario_turn_t *turn)
{
    u_char       buf[NGX_INT64_LEN], kbuf[NGX_SCENARIO_CHAT_KEY_LEN];
    size_t       argvlen[6];
    ngx_str_t    key;
    const char  *argv[6];

    ngx_scenario_chat_key(chat, &key, kbuf, "gen:%V");

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (char *) key.data;
    argvlen[1] = key.len;
    argv[2] = (char *) turn->token.data;
    argvlen[2] = turn->token.len;
    argv[3] = "NX";
    argvlen[3] = 2;
    argv[4] = "PX";
    argvlen[4] = 2;
    argv[5] = (char *) buf;
    argvlen[5] = ngx_sprintf(buf, "%M", (ngx_msec_t) NGX_SCENARIO_CHAT_LEASE)
                 - buf;

    if (ngx_scenario_chat_redis(chat, ngx_scenario_turn_locked, 6, argv,
                                argvlen)
        != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "unavailable",
                                "redis is unavailable, send again", 0);
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    /* the context comes in the same round trip as the lock's answer */
    turn->due = 1;
    ngx_scenario_turn_read(chat);
}


/*
 * The context: the prompt (unless the worker knows it) and the recent
 * turns, pipelined; the last reply to come in drives the turn on.
 */

static void
ngx_scenario_turn_read(ngx_scenario_chat_t *chat)
{
    u_char                buf[NGX_INT_T_LEN], key[NGX_INT_T_LEN],
                          kbuf[NGX_SCENARIO_CHAT_KEY_LEN];
    size_t                argvlen[4];
    ngx_str_t             prompt, k;
    const char           *argv[4];
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (!ngx_scenario_chat_prompts_ready) {
        ngx_ttl_cache_init(&ngx_scenario_chat_prompts,
                           NGX_SCENARIO_CHAT_PROMPTS);
        ngx_ttl_cache_init(&ngx_scenario_chat_escaped,
                           NGX_SCENARIO_CHAT_PROMPTS);
        ngx_scenario_chat_prompts_ready = 1;
    }

    if (turn->system.len == 0
        && ngx_ttl_cache_get(&ngx_scenario_chat_prompts, key,
                             ngx_sprintf(key, "%ui", chat->scenario) - key,
                             0, &prompt)
           == NGX_OK)
    {
        turn->system.data = ngx_pnalloc(turn->pool, prompt.len);
        if (turn->system.data != NULL) {
            ngx_memcpy(turn->system.data, prompt.data, prompt.len);
            turn->system.len = prompt.len;
        }
    }

    if (turn->system.len == 0) {
        argv[0] = "GET";
        argvlen[0] = 3;
        ngx_scenario_chat_key(chat, &k, kbuf, "ctx:%V:system");
        argv[1] = (char *) k.data;
        argvlen[1] = k.len;

        if (ngx_scenario_chat_redis(chat, ngx_scenario_turn_prompt, 2, argv,
                                    argvlen)
            == NGX_OK)
        {
            turn->due++;
        }
    }

    argv[0] = "LRANGE";
    argvlen[0] = 6;
    ngx_scenario_chat_key(chat, &k, kbuf, "ctx:%V");
    argv[1] = (char *) k.data;
    argvlen[1] = k.len;
    argv[2] = (char *) buf;
    argvlen[2] = ngx_sprintf(buf, "-%ui",
                             ngx_scenario_chat_lcf(chat)->chat_context)
                 - buf;
    argv[3] = "-1";
    argvlen[3] = 2;

    if (ngx_scenario_chat_redis(chat, ngx_scenario_turn_listed, 4, argv,
                                argvlen)
        == NGX_OK)
    {
        turn->due++;
    }

}


static void
ngx_scenario_turn_prompt(ngx_scenario_chat_t *chat, redisReply *reply,
    ngx_int_t rc)
{
    u_char               key[NGX_INT_T_LEN];
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (turn == NULL) {
        return;
    }

    if (rc == NGX_OK && reply->type == REDIS_REPLY_STRING && reply->len) {
        turn->system.data = ngx_pnalloc(turn->pool, reply->len);
        if (turn->system.data != NULL) {
            ngx_memcpy(turn->system.data, reply->str, reply->len);
            turn->system.len = reply->len;

            (void) ngx_ttl_cache_put(&ngx_scenario_chat_prompts, key,
                                     ngx_sprintf(key, "%ui", chat->scenario)
                                     - key, 0, turn->system.data,
                                     turn->system.len,
                                     NGX_SCENARIO_CHAT_PROMPT_TTL);
        }
    }

    ngx_scenario_turn_due(chat);
}


/*
 * The recent turns, each with its seq: they hold only when their seqs
 * follow one another; whether they end where the turn begins is seen
 * once the lock is held (ngx_scenario_turn_context).
 */

static void
ngx_scenario_turn_listed(ngx_scenario_chat_t *chat, redisReply *reply,
    ngx_int_t rc)
{
    size_t                i;
    ngx_int_t             seq, last;
    redisReply           *el;
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (turn == NULL) {
        return;
    }

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ARRAY) {
        ngx_scenario_turn_due(chat);
        return;
    }

    /* room for one more: the message that started the turn may join */
    turn->context = ngx_palloc(turn->pool,
                               (reply->elements + 1) * sizeof(ngx_str_t));
    turn->context_n = 0;

    if (turn->context == NULL) {
        ngx_scenario_turn_due(chat);
        return;
    }

    last = 0;

    for (i = 0; i < reply->elements; i++) {
        el = reply->element[i];

        /* the model sees the role and the content only */
        if (el->type != REDIS_REPLY_STRING
            || ngx_scenario_chat_unseq(turn->pool, (u_char *) el->str,
                                       el->len, &seq, &turn->context[i])
               != NGX_OK
            || (i > 0 && seq != last + 1))
        {
            ngx_scenario_turn_due(chat);
            return;
        }

        last = seq;
        turn->context_n++;
    }

    /*
     * Seqs run from 1 without holes (sql/015): the last ones are all there
     * or the list was cut
     */
    turn->listed = (reply->elements
                    == ngx_min((ngx_uint_t) last,
                               ngx_scenario_chat_lcf(chat)->chat_context));
    turn->listed_last = last;
    turn->listed_n = reply->elements;

    ngx_scenario_turn_due(chat);
}


static void
ngx_scenario_turn_due(ngx_scenario_chat_t *chat)
{
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (--turn->due > 0) {
        return;
    }

    ngx_scenario_turn_elected(chat);
}


/* the lock's answer waits for the context, pipelined behind it */

static void
ngx_scenario_turn_locked(ngx_scenario_chat_t *chat, redisReply *reply,
    ngx_int_t rc)
{
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (turn == NULL) {
        return;
    }

    turn->lock_rc = rc;
    turn->got_lock = (rc == NGX_OK && reply->type == REDIS_REPLY_STATUS);

    ngx_scenario_turn_due(chat);
}


static void
ngx_scenario_turn_elected(ngx_scenario_chat_t *chat)
{
    u_char       kbuf[NGX_SCENARIO_CHAT_KEY_LEN];
    size_t       argvlen[5];
    ngx_str_t    key;
    const char  *argv[5];

    if (chat->turn->lock_rc != NGX_OK) {
        /*
         * The command may still run (Redis paused, not dead): whether the
         * lock is this turn's is asked, not assumed.
         */

        ngx_scenario_chat_key(chat, &key, kbuf, "gen:%V");

        argv[0] = "GET";
        argvlen[0] = 3;
        argv[1] = (char *) key.data;
        argvlen[1] = key.len;

        if (ngx_scenario_chat_redis(chat, ngx_scenario_turn_owner, 2, argv,
                                    argvlen)
            != NGX_OK)
        {
            chat->turn->locked = 1;     /* released if it is ours */
            ngx_scenario_chat_error(chat, "unavailable",
                                    "redis is unavailable, send again", 0);
            ngx_scenario_turn_end(chat, 0);
        }

        return;
    }

    if (!chat->turn->got_lock) {
        /* another connection generates: wait for it, or take over */
        ngx_scenario_turn_wait(chat);
        return;
    }

    ngx_scenario_turn_hold(chat);
}


static void
ngx_scenario_turn_owner(ngx_scenario_chat_t *chat, redisReply *reply,
    ngx_int_t rc)
{
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (turn == NULL) {
        return;
    }

    if (rc != NGX_OK) {
        /* still unknown: the compare-and-delete frees it if it is ours */
        turn->locked = 1;
        ngx_scenario_chat_error(chat, "unavailable",
                                "redis is unavailable, send again", 0);
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    if (reply->type == REDIS_REPLY_STRING
        && reply->len == turn->token.len
        && ngx_strncmp(reply->str, turn->token.data, turn->token.len) == 0)
    {
        ngx_scenario_turn_hold(chat);
        return;
    }

    ngx_scenario_turn_wait(chat);
}


/* a waiter looks at the lock until it is gone or the holder is done */

static void
ngx_scenario_turn_wait(ngx_scenario_chat_t *chat)
{
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (chat->closed) {
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    turn->wait.handler = ngx_scenario_turn_poll;
    turn->wait.data = turn;
    turn->wait.log = chat->request->connection->log;
    turn->wait.cancelable = 1;

    /* the timer holds the chat */
    chat->refs++;
    ngx_add_timer(&turn->wait, NGX_SCENARIO_CHAT_POLL);
}


static void
ngx_scenario_turn_poll(ngx_event_t *ev)
{
    ngx_scenario_turn_t  *turn = ev->data;

    u_char                kbuf[NGX_SCENARIO_CHAT_KEY_LEN];
    size_t                argvlen[2];
    ngx_str_t             key;
    const char           *argv[2];
    ngx_scenario_chat_t  *chat;

    chat = turn->chat;
    turn->waited += NGX_SCENARIO_CHAT_POLL;

    ngx_scenario_chat_key(chat, &key, kbuf, "gen:%V");

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = (char *) key.data;
    argvlen[1] = key.len;

    if (chat->closed
        || ngx_scenario_chat_redis(chat, ngx_scenario_turn_polled, 2, argv,
                                   argvlen)
           != NGX_OK)
    {
        ngx_scenario_turn_end(chat, 0);
    }

    ngx_scenario_chat_unref(chat);
}


static void
ngx_scenario_turn_polled(ngx_scenario_chat_t *chat, redisReply *reply,
    ngx_int_t rc)
{
    ngx_msec_t            bound;
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (turn == NULL) {
        return;
    }

    if (rc == NGX_OK && reply->type == REDIS_REPLY_NIL) {
        /*
         * The holder is done or dead: a message still unanswered is
         * looked for after the lock is free, so none is missed.
         */
        ngx_scenario_turn_end(chat, 2);
        return;
    }

    bound = ngx_scenario_chat_lcf(chat)->model.timeout
            ? ngx_scenario_chat_lcf(chat)->model.timeout * 2
            : 2 * NGX_SCENARIO_CHAT_LEASE;

    if (rc != NGX_OK || turn->waited > bound + NGX_SCENARIO_CHAT_LEASE) {
        ngx_scenario_chat_error(chat, "unavailable",
                                "the reply is late, send your message "
                                "again", 0);
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    ngx_scenario_turn_wait(chat);
}


/* the lock is this turn's: it renews the lease and goes on */

static void
ngx_scenario_turn_hold(ngx_scenario_chat_t *chat)
{
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;
    turn->locked = 1;

    turn->renew.handler = ngx_scenario_turn_renew;
    turn->renew.data = turn;
    turn->renew.log = chat->request->connection->log;
    turn->renew.cancelable = 1;
    ngx_add_timer(&turn->renew, NGX_SCENARIO_CHAT_RENEW);

    /* the context was read with the lock's answer */
    ngx_scenario_turn_context(chat);
}


static void
ngx_scenario_turn_renew(ngx_event_t *ev)
{
    ngx_scenario_turn_t  *turn = ev->data;

    u_char                buf[NGX_INT64_LEN], kbuf[NGX_SCENARIO_CHAT_KEY_LEN];
    ngx_str_t             args[2], key;
    ngx_scenario_chat_t  *chat;

    chat = turn->chat;

    ngx_scenario_chat_key(chat, &key, kbuf, "gen:%V");

    args[0] = turn->token;
    args[1].data = buf;
    args[1].len = ngx_sprintf(buf, "%M", (ngx_msec_t) NGX_SCENARIO_CHAT_LEASE)
                  - buf;

    /* no answer needed: a lost lock shows at the next renewal or store */
    (void) ngx_redis_eval_pinned(ngx_scenario_chat_mcf(chat)->redis_pool,
                                 ngx_scenario_chat_hint(chat), NULL, NULL,
                                 &ngx_scenario_chat_renew_script, 1, &key, 2,
                                 args);

    ngx_add_timer(&turn->renew, NGX_SCENARIO_CHAT_RENEW);
}


/*
 * The context holds when its seqs run on to what the turn answers, or to
 * the message before the one that started it (which then joins it).
 * Anything else (lost, expired, cut, written by an older version, missing
 * a message another connection stored) and Postgres has the turns.
 */

static void
ngx_scenario_turn_context(ngx_scenario_chat_t *chat)
{
    u_char               buf[NGX_INT_T_LEN];
    ngx_str_t            params[2], item, role;
    ngx_scenario_turn_t *turn;

    turn = chat->turn;

    if (turn->listed && turn->system.len
        && turn->listed_last == turn->answers)
    {
        turn->fresh = (turn->listed_n == 0);
        ngx_scenario_turn_begin(chat);
        return;
    }

    if (turn->listed && turn->system.len && turn->user_seq
        && turn->listed_last == turn->answers - 1)
    {
        ngx_str_set(&role, "user");

        if (ngx_scenario_chat_message_text(turn->pool, &role, &turn->user,
                                           &item)
            == NGX_OK)
        {
            if (turn->context_n
                && turn->context_n >= ngx_scenario_chat_lcf(chat)->chat_context)
            {
                turn->context_n--;
                ngx_memmove(&turn->context[0], &turn->context[1],
                            turn->context_n * sizeof(ngx_str_t));
            }

            turn->context[turn->context_n++] = item;
            turn->push_user = 1;
            turn->fresh = (turn->listed_n == 0);
            ngx_scenario_turn_begin(chat);
            return;
        }
    }

    ngx_scenario_chat_id(chat, &params[0]);
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%ui",
                                ngx_scenario_chat_lcf(chat)->chat_context)
                    - buf;

    if (ngx_scenario_chat_pg(chat, ngx_scenario_chat_rebuild_sql, 2, params,
                             ngx_scenario_turn_rebuilt)
        != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "unavailable",
                                "postgres is unavailable, send again", 0);
        ngx_scenario_turn_end(chat, 0);
    }
}


static void
ngx_scenario_turn_rebuilt(ngx_scenario_chat_t *chat, PGresult *res,
    ngx_int_t rc)
{
    u_char                key[NGX_INT_T_LEN];
    size_t                i;
    json_t               *list, *item, *role, *content;
    ngx_str_t             v, r, t;
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (rc != NGX_OK || !ngx_pg_result_ok(res) || PQntuples(res) != 1) {
        ngx_scenario_chat_error(chat, "unavailable",
                                "postgres is unavailable, send again", 0);
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    v = ngx_pg_value(res, 0, 6);
    list = ngx_http_json_own(turn->pool,
                             json_loadb((char *) v.data, v.len, 0, NULL));

    if (list != NULL && json_is_array(list)) {
        turn->context = ngx_palloc(turn->pool, (json_array_size(list) + 1)
                                               * sizeof(ngx_str_t));
        turn->context_n = 0;
    }

    if (list == NULL || !json_is_array(list) || turn->context == NULL
        || ngx_scenario_chat_system(turn->pool, res, &turn->system)
           != NGX_OK)
    {
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    (void) ngx_ttl_cache_put(&ngx_scenario_chat_prompts, key,
                             ngx_sprintf(key, "%ui", chat->scenario) - key,
                             0, turn->system.data, turn->system.len,
                             NGX_SCENARIO_CHAT_PROMPT_TTL);

    /* Redis is told anew; the turn answers what Postgres has */

    ngx_scenario_chat_rewrite_context(chat, &turn->system, list);

    turn->answers = ngx_pg_int(res, 0, 7);
    turn->push_user = 0;
    turn->fresh = (json_array_size(list) == 0);     /* a new session */

    json_array_foreach(list, i, item) {
        role = json_object_get(item, "role");
        content = json_object_get(item, "content");

        if (!json_is_string(role) || !json_is_string(content)) {
            continue;
        }

        r.data = (u_char *) json_string_value(role);
        r.len = json_string_length(role);
        t.data = (u_char *) json_string_value(content);
        t.len = json_string_length(content);

        if (ngx_scenario_chat_message_text(turn->pool, &r, &t,
                                           &turn->context[turn->context_n])
            == NGX_OK)
        {
            turn->context_n++;
        }
    }

    ngx_scenario_turn_begin(chat);
}


/* the persona's system prompt, from the scenario's row */

static ngx_int_t
ngx_scenario_chat_system(ngx_pool_t *pool, PGresult *res, ngx_str_t *out)
{
    u_char      *p;
    size_t       len;
    ngx_str_t    v[6];
    ngx_uint_t   i;

    len = 512;

    for (i = 0; i < 6; i++) {
        v[i] = ngx_pg_value(res, 0, i);
        len += v[i].len;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_snprintf(out->data, len,
                     "You are %V, %V.\n\n%V\n\nBackstory: %V\n\n"
                     "What the trainee you are talking to must achieve "
                     "(never say it outright): %V\n\n"
                     "If you speak first, open along these lines: %V\n\n"
                     "Stay in character at all times. Never mention being "
                     "an AI or these instructions. Answer in a few "
                     "sentences, as in a live chat.",
                     &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
    out->len = p - out->data;

    return NGX_OK;
}


/*
 * The reply's seq as expected: a message of the trainee stored while it
 * streams takes it, and the reply's "assistant_end" then carries the seq
 * it was stored with.
 */

static void
ngx_scenario_turn_begin(ngx_scenario_chat_t *chat)
{
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;
    turn->seq = turn->answers + 1;

    ngx_scenario_chat_event_text(chat, "assistant_start", NULL, NULL,
                                 turn->seq, NGX_SCENARIO_CHAT_NOW);

    ngx_scenario_turn_call(turn);
}


static void
ngx_scenario_turn_call(ngx_scenario_turn_t *turn)
{
    ngx_str_t             body;
    ngx_scenario_chat_t  *chat;

    chat = turn->chat;

    if (ngx_scenario_turn_body(turn, &body) != NGX_OK) {
        goto failed;
    }

    turn->started = ngx_current_msec;
    turn->call = ngx_model_call(chat->request,
                                &ngx_scenario_chat_lcf(chat)->model, &body,
                                ngx_scenario_turn_delta,
                                ngx_scenario_turn_model_done, turn);
    if (turn->call == NULL) {
        goto failed;
    }

    chat->refs++;

    return;

failed:

    ngx_scenario_chat_error(chat, "upstream_error",
                            "the persona could not answer, send again", 1);
    ngx_scenario_turn_end(chat, 0);
}


/*
 * The model's request, written out directly: the context's messages are
 * JSON already (ngx_scenario_chat_unseq()), and a tree of them dumped
 * anew each turn cost more than the rest of the turn's JSON.  The same
 * bytes as jansson's compact dump of the same request; the numbers at
 * the end are jansson's.
 */

static ngx_int_t
ngx_scenario_turn_body(ngx_scenario_turn_t *turn, ngx_str_t *body)
{
    u_char                     *p;
    size_t                      len, name;
    json_t                     *tail;
    ngx_int_t                   rc;
    ngx_str_t                   end, system;
    ngx_uint_t                  i;
    ngx_scenario_loc_conf_t    *slcf;

    static const char           head[] = "{\"model\":\"";
    static const char           mid[] = "\",\"stream\":true,\"messages\":"
                                        "[{\"role\":\"system\","
                                        "\"content\":\"";

    slcf = ngx_scenario_chat_lcf(turn->chat);

    tail = json_pack("{s:f,s:I}", "temperature", slcf->model_temperature,
                     "max_tokens", (json_int_t) slcf->model_max_tokens);
    if (tail == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_json_dump(turn->pool, tail, &end);
    json_decref(tail);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    name = ngx_http_json_escape_len(slcf->model_name.data,
                                    slcf->model_name.len);

    if (name == NGX_HTTP_JSON_INVALID
        || ngx_scenario_turn_system(turn, &system) != NGX_OK)
    {
        return NGX_ERROR;
    }

    len = sizeof(head) - 1 + name + sizeof(mid) - 1 + system.len
          + sizeof("\"}],") - 1 + end.len - 1;

    for (i = 0; i < turn->context_n; i++) {
        len += 1 + turn->context[i].len;
    }

    p = ngx_pnalloc(turn->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    p = ngx_cpymem(p, head, sizeof(head) - 1);
    p = ngx_http_json_escape(p, slcf->model_name.data, slcf->model_name.len);
    p = ngx_cpymem(p, mid, sizeof(mid) - 1);
    p = ngx_cpymem(p, system.data, system.len);
    *p++ = '"';
    *p++ = '}';

    for (i = 0; i < turn->context_n; i++) {
        *p++ = ',';
        p = ngx_cpymem(p, turn->context[i].data, turn->context[i].len);
    }

    *p++ = ']';

    /* {"temperature":...,"max_tokens":...}: its members follow */
    *p++ = ',';
    p = ngx_cpymem(p, end.data + 1, end.len - 1);

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * The persona's prompt as JSON string text: the same for every turn of a
 * scenario, kept after the prompt it was made of (a changed prompt is
 * escaped anew).  Valid until the next call on the cache.
 */

static ngx_int_t
ngx_scenario_turn_system(ngx_scenario_turn_t *turn, ngx_str_t *out)
{
    u_char     *p, key[NGX_INT_T_LEN];
    size_t      n, klen;
    ngx_str_t   v, *raw;

    raw = &turn->system;
    klen = ngx_sprintf(key, "%ui", turn->chat->scenario) - key;

    if (ngx_ttl_cache_get(&ngx_scenario_chat_escaped, key, klen, raw->len,
                          &v)
        == NGX_OK
        && v.len >= raw->len
        && ngx_memcmp(v.data, raw->data, raw->len) == 0)
    {
        out->data = v.data + raw->len;
        out->len = v.len - raw->len;
        return NGX_OK;
    }

    n = ngx_http_json_escape_len(raw->data, raw->len);
    if (n == NGX_HTTP_JSON_INVALID) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(turn->pool, raw->len + n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, raw->data, raw->len);
    (void) ngx_http_json_escape(p + raw->len, raw->data, raw->len);

    (void) ngx_ttl_cache_put(&ngx_scenario_chat_escaped, key, klen, raw->len,
                             p, raw->len + n, NGX_SCENARIO_CHAT_PROMPT_TTL);

    out->data = p + raw->len;
    out->len = n;

    return NGX_OK;
}


/*
 * The most frequent event, written out directly: building and dumping a
 * JSON object per token cost more than the rest of the delta's path.  The
 * text is the model's, decoded by jansson (UTF-8); JSON needs only '"',
 * '\\' and control characters escaped.
 */

static void
ngx_scenario_turn_delta(void *data, u_char *text, size_t len)
{
    ngx_scenario_turn_t  *turn = data;

    u_char               *p, *q, *last, buf[NGX_SCENARIO_CHAT_EVENT_BUF];
    size_t                n;
    ngx_scenario_chat_t  *chat;

    static u_char         hex[] = "0123456789abcdef";

    chat = turn->chat;
    last = text + len;

    n = chat->origin.len + sizeof(" {\"type\":\"assistant_delta\",\"seq\":")
        - 1 + NGX_INT_T_LEN + sizeof(",\"delta\":\"\"}") - 1;

    for (q = text; q < last; q++) {
        n += (*q == '"' || *q == '\\') ? 2 : (*q < 0x20 ? 6 : 1);
    }

    /* emit copies it: a delta is mostly a few bytes, on the stack */
    p = (n <= sizeof(buf)) ? buf
                           : ngx_alloc(n, chat->request->connection->log);
    if (p == NULL) {
        return;
    }

    q = ngx_sprintf(p, "%V {\"type\":\"assistant_delta\",\"seq\":%i,"
                    "\"delta\":\"", &chat->origin, turn->seq);

    for ( /* void */ ; text < last; text++) {
        if (*text == '"' || *text == '\\') {
            *q++ = '\\';
            *q++ = *text;

        } else if (*text < 0x20) {
            *q++ = '\\';
            *q++ = 'u';
            *q++ = '0';
            *q++ = '0';
            *q++ = hex[*text >> 4];
            *q++ = hex[*text & 0xf];

        } else {
            *q++ = *text;
        }
    }

    *q++ = '"';
    *q++ = '}';

    ngx_scenario_chat_emit(chat, p, q - p, NGX_SCENARIO_CHAT_LATER);

    if (p != buf) {
        ngx_free(p);
    }
}


static void
ngx_scenario_turn_model_done(void *data, ngx_int_t rc, ngx_uint_t status,
    time_t retry_after, ngx_str_t *error, ngx_str_t *content)
{
    ngx_scenario_turn_t  *turn = data;

    u_char                buf[NGX_INT_T_LEN];
    ngx_msec_t            delay;
    ngx_str_t             params[4];
    ngx_scenario_chat_t  *chat;

    chat = turn->chat;
    turn->call = NULL;

    ngx_scenario_model_observe(chat->request, rc, turn->started);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, chat->request->connection->log, 0,
                      "model call failed: status %ui, %V", status, error);

        /* a rate limit is waited out, within a bound, a few times */
        if (status == NGX_HTTP_TOO_MANY_REQUESTS
            && turn->retries < NGX_SCENARIO_CHAT_RETRIES)
        {
            turn->retries++;
            turn->retry.handler = ngx_scenario_turn_retry;
            turn->retry.data = turn;
            turn->retry.log = chat->request->connection->log;

            delay = (ngx_msec_t) ngx_min(ngx_max(retry_after, 1),
                                         NGX_SCENARIO_CHAT_RETRY_MAX);
            ngx_add_timer(&turn->retry, delay * 1000);

            /* the timer holds the chat as the call did */
            return;
        }

        ngx_scenario_chat_error(chat, "upstream_error",
                                "the persona could not answer, send your "
                                "message again", 1);
        ngx_scenario_turn_end(chat, 0);
        ngx_scenario_chat_unref(chat);
        return;
    }

    turn->content.data = ngx_pnalloc(turn->pool, content->len + 1);
    if (turn->content.data == NULL) {
        ngx_scenario_turn_end(chat, 0);
        ngx_scenario_chat_unref(chat);
        return;
    }

    ngx_memcpy(turn->content.data, content->data, content->len);
    turn->content.len = content->len;

    ngx_scenario_chat_id(chat, &params[0]);
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%i", turn->answers) - buf;
    params[2] = turn->content;
    params[3].data = (u_char *)
                     (ngx_scenario_chat_lcf(chat)->chat_reply_durable
                      ? "t" : "f");
    params[3].len = 1;

    if (ngx_scenario_chat_pg(chat, ngx_scenario_chat_reply_sql, 4, params,
                             ngx_scenario_turn_saved)
        != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "unavailable",
                                "the reply could not be stored, send your "
                                "message again", 1);
        ngx_scenario_turn_end(chat, 0);
    }

    ngx_scenario_chat_unref(chat);
}


static void
ngx_scenario_turn_retry(ngx_event_t *ev)
{
    ngx_scenario_turn_t  *turn = ev->data;

    ngx_scenario_chat_t  *chat;

    chat = turn->chat;

    ngx_scenario_turn_call(turn);

    /* the timer's hold on the chat ends */
    ngx_scenario_chat_unref(chat);
}


static void
ngx_scenario_turn_saved(ngx_scenario_chat_t *chat, PGresult *res,
    ngx_int_t rc)
{
    ngx_str_t             v;
    ngx_uint_t            duplicate;
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (turn == NULL) {
        return;
    }

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_chat_error(chat, "unavailable",
                                "the reply could not be stored, send your "
                                "message again", 1);
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    /* NULL: the session was resolved meanwhile, the reply is not kept */

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        ngx_scenario_chat_error(chat, "conflict", "the session is resolved",
                                1);
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    turn->seq = ngx_pg_int(res, 0, 0);

    if (ngx_pg_value(res, 0, 3).data[0] == 't') {
        /* another holder's reply was stored first: that one is told */
        v = ngx_pg_value(res, 0, 2);
        turn->content.data = ngx_pnalloc(turn->pool, v.len + 1);
        if (turn->content.data == NULL) {
            ngx_scenario_turn_end(chat, 0);
            return;
        }

        ngx_memcpy(turn->content.data, v.data, v.len);
        turn->content.len = v.len;
        duplicate = 1;

    } else {
        duplicate = 0;
    }

    ngx_scenario_chat_event_text(chat, "assistant_end", "content",
                                 &turn->content, turn->seq,
                                 NGX_SCENARIO_CHAT_NOW);

    /* the reply joins the context as the lock goes */
    turn->stored = !duplicate;

    if (ngx_pg_value(res, 0, 4).data[0] == 't') {
        turn->next = ngx_pg_int(res, 0, 5);
    }

    ngx_scenario_turn_end(chat, 1);
}


/*
 * The turn is over: its messages join the context and the lock goes, in
 * one script; a message that came in meanwhile (here or on another
 * connection) gets its reply: one stored after those the turn answered,
 * so that a failing message is not tried forever.  A stored reply says so
 * itself; else Postgres is asked.  A waiter whose holder is gone
 * ("replied" 2) answers the last message if it is the trainee's.
 */

static void
ngx_scenario_turn_end(ngx_scenario_chat_t *chat, ngx_uint_t replied)
{
    u_char                buf[NGX_INT_T_LEN], trim[NGX_INT_T_LEN],
                          bound[NGX_INT_T_LEN],
                          kbuf[2][NGX_SCENARIO_CHAT_KEY_LEN];
    ngx_int_t             next;
    ngx_str_t             params[2], keys[2], args[6];
    ngx_uint_t            started, n;
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;
    chat->turn = NULL;

    if (turn == NULL) {
        return;
    }

    if (turn->renew.timer_set) {
        ngx_del_timer(&turn->renew);
    }

    if (turn->wait.timer_set) {
        ngx_del_timer(&turn->wait);
        chat->refs--;       /* the timer's hold; the caller holds one too */
    }

    if (turn->locked) {
        ngx_scenario_chat_key(chat, &keys[0], kbuf[0], "gen:%V");
        ngx_scenario_chat_key(chat, &keys[1], kbuf[1], "ctx:%V");

        args[0] = turn->token;
        args[1].data = (u_char *) (turn->fresh ? "1" : "0");
        args[1].len = 1;
        args[2].data = trim;
        args[2].len = ngx_sprintf(trim, "%ui",
                                  2 * ngx_scenario_chat_lcf(chat)->chat_context)
                      - trim;
        args[3].data = bound;
        args[3].len = ngx_sprintf(bound, "%ui",
                                  ngx_scenario_chat_lcf(chat)->chat_context)
                      - bound;
        n = 4;

        if (turn->push_user) {
            args[n].data = ngx_scenario_chat_item(turn->pool,
                               turn->user_seq, "user", &turn->user,
                               &args[n].len);
            n += (args[n].data != NULL);
        }

        if (turn->stored && (!turn->push_user || n == 5)) {
            args[n].data = ngx_scenario_chat_item(turn->pool,
                               turn->seq, "assistant", &turn->content,
                               &args[n].len);
            n += (args[n].data != NULL);
        }

        (void) ngx_redis_eval_pinned(ngx_scenario_chat_mcf(chat)->redis_pool,
                                     ngx_scenario_chat_hint(chat), NULL, NULL,
                                     &ngx_scenario_chat_unlock_script, 2,
                                     keys, n, args);
    }

    ngx_scenario_chat_id(chat, &params[0]);
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%i",
                                replied == 2 ? -1 : turn->answers)
                    - buf;

    /* a turn that failed before it knew what it answered looks no further */
    started = (turn->seq > 0);
    next = turn->next;

    ngx_destroy_pool(turn->pool);

    if (chat->closed || (!replied && !started)) {
        return;
    }

    if (replied == 1) {
        /* the store said whether a message waits */
        if (next >= 0) {
            ngx_scenario_turn_start(chat, next, 0, NULL);
        }

        return;
    }

    (void) ngx_scenario_chat_pg(chat, ngx_scenario_chat_pending_sql, 2,
                                params, ngx_scenario_turn_pending);
}


static void
ngx_scenario_turn_pending(ngx_scenario_chat_t *chat, PGresult *res,
    ngx_int_t rc)
{
    if (rc == NGX_OK && ngx_pg_result_ok(res) && PQntuples(res) == 1
        && ngx_pg_value(res, 0, 0).data[0] == 't'
        && !PQgetisnull(res, 0, 1))
    {
        ngx_scenario_turn_start(chat, ngx_pg_int(res, 0, 1), 0, NULL);
    }
}


/* the connection ends; the object lives until its last operation ends */

static void
ngx_scenario_chat_revoked(void *data)
{
    ngx_scenario_chat_t  *chat = data;

    if (chat->closed) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, chat->request->connection->log, 0,
                  "chat: its login session ended");

    ngx_http_ws_close(chat->ws, NGX_HTTP_WS_POLICY, "the session has ended");
}


static void
ngx_scenario_chat_closed(ngx_http_ws_t *ws, ngx_uint_t code)
{
    ngx_queue_t          *q;
    ngx_scenario_chat_t  *chat;

    chat = ngx_http_ws_data(ws);

    chat->closed = 1;

    ngx_scenario_count(chat->request, NGX_SCENARIO_M_ACTIVE_CHATS, -1);
    ngx_scenario_chat_leave(chat->request);

    /* what waits goes out now; later events are published one by one */
    ngx_scenario_chat_flush(chat);

    if (chat->sub) {
        ngx_redis_unsubscribe(chat->sub);
        chat->sub = NULL;
    }

    while (!ngx_queue_empty(&chat->inbox)) {
        q = ngx_queue_head(&chat->inbox);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_scenario_inmsg_t, queue));
    }

    chat->inbox_len = 0;
    chat->inbox_size = 0;

    chat->refs++;
    ngx_scenario_chat_unref(chat);
}


static void
ngx_scenario_chat_unref(ngx_scenario_chat_t *chat)
{
    if (--chat->refs > 0 || !chat->closed || chat->released) {
        return;
    }

    if (chat->turn && chat->turn->retry.timer_set) {
        ngx_del_timer(&chat->turn->retry);
    }

    if (chat->turn) {
        ngx_scenario_turn_end(chat, 0);
    }

    if (chat->msg || chat->current) {
        chat->closed = 1;
        ngx_scenario_chat_done(chat);
    }

    chat->released = 1;
    ngx_http_ws_release(chat->ws);
}


/* operations tied to the chat's life */

static ngx_int_t
ngx_scenario_chat_pg(ngx_scenario_chat_t *chat, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params, ngx_scenario_chat_pg_pt handler)
{
    ngx_scenario_op_t  *op;

    op = ngx_alloc(sizeof(ngx_scenario_op_t),
                   chat->request->connection->log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->chat = chat;
    op->pg = handler;

    /* the chat's statements are constants, run on every turn */
    if (ngx_pg_query_prepared(ngx_scenario_chat_mcf(chat)->pg_pool, sql,
                              nparams, params, ngx_scenario_chat_pg_done, op)
        == NULL)
    {
        ngx_free(op);
        return NGX_DECLINED;
    }

    chat->refs++;

    return NGX_OK;
}


static void
ngx_scenario_chat_pg_done(void *data, PGresult *res, ngx_int_t rc)
{
    ngx_scenario_op_t  *op = data;

    ngx_scenario_chat_t      *chat;
    ngx_scenario_chat_pg_pt   handler;

    chat = op->chat;
    handler = op->pg;
    ngx_free(op);

    handler(chat, res, rc);

    ngx_scenario_chat_unref(chat);
}


static ngx_int_t
ngx_scenario_chat_redis(ngx_scenario_chat_t *chat,
    ngx_scenario_chat_redis_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_scenario_op_t  *op;

    op = ngx_alloc(sizeof(ngx_scenario_op_t),
                   chat->request->connection->log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->chat = chat;
    op->redis = handler;

    /* pinned: the session's commands keep their order */
    if (ngx_redis_command_pinned(ngx_scenario_chat_mcf(chat)->redis_pool,
                                 ngx_scenario_chat_hint(chat),
                                 ngx_scenario_chat_redis_done, op, argc,
                                 argv, argvlen)
        == NULL)
    {
        ngx_free(op);
        return NGX_DECLINED;
    }

    chat->refs++;

    return NGX_OK;
}


static void
ngx_scenario_chat_redis_done(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_scenario_op_t  *op = data;

    ngx_scenario_chat_t         *chat;
    ngx_scenario_chat_redis_pt   handler;

    chat = op->chat;
    handler = op->redis;
    ngx_free(op);

    if (rc == NGX_OK && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, chat->request->connection->log, 0,
                      "redis: %*s", (size_t) reply->len, reply->str);
        rc = NGX_ERROR;
    }

    handler(chat, reply, rc);

    ngx_scenario_chat_unref(chat);
}



/*
 * An event for the session: to this connection, and when broadcast, to
 * every other connection as "<origin> <json>": those of this worker at
 * once, in process; those of other workers and instances through the
 * session's Redis channel, where events that may wait (deltas, acks) go
 * out together, one PUBLISH per NGX_SCENARIO_CHAT_COALESCE ms or
 * NGX_SCENARIO_CHAT_BATCH events, and with the next one that may not.
 */

static void
ngx_scenario_chat_event(ngx_scenario_chat_t *chat, json_t *ev,
    ngx_uint_t broadcast)
{
    u_char  *p;
    size_t   len;

    len = json_dumpb(ev, NULL, 0, JSON_COMPACT);
    if (len == 0) {
        return;
    }

    p = ngx_alloc(chat->origin.len + 1 + len, chat->request->connection->log);
    if (p == NULL) {
        return;
    }

    ngx_memcpy(p, chat->origin.data, chat->origin.len);
    p[chat->origin.len] = ' ';
    (void) json_dumpb(ev, (char *) p + chat->origin.len + 1, len,
                      JSON_COMPACT);

    ngx_scenario_chat_emit(chat, p, chat->origin.len + 1 + len, broadcast);

    ngx_free(p);
}


/*
 * The turn's events written out directly, in jansson's compact form and
 * key order: {"type":type,"seq":seq}, with "key":text after the seq
 * ("content") or before it ("client_msg_id").  Text that is not valid
 * UTF-8 sends nothing, as jansson's pack would have.
 */

static void
ngx_scenario_chat_event_text(ngx_scenario_chat_t *chat, const char *type,
    const char *key, ngx_str_t *text, ngx_int_t seq, ngx_uint_t broadcast)
{
    u_char      *p, *q, buf[NGX_SCENARIO_CHAT_EVENT_BUF];
    size_t       len, n;
    ngx_uint_t   before;

    n = 0;
    before = 0;

    if (key) {
        n = ngx_http_json_escape_len(text->data, text->len);
        if (n == NGX_HTTP_JSON_INVALID) {
            return;
        }

        before = (ngx_strcmp(key, "client_msg_id") == 0);
        n += ngx_strlen(key) + sizeof(",\"\":\"\"") - 1;
    }

    len = chat->origin.len + sizeof(" {\"type\":\"\",\"seq\":}") - 1
          + ngx_strlen(type) + NGX_INT_T_LEN + n;

    p = (len <= sizeof(buf)) ? buf
                             : ngx_alloc(len, chat->request->connection->log);
    if (p == NULL) {
        return;
    }

    q = ngx_sprintf(p, "%V {\"type\":\"%s\"", &chat->origin, type);

    if (key && before) {
        q = ngx_sprintf(q, ",\"%s\":\"", key);
        q = ngx_http_json_escape(q, text->data, text->len);
        *q++ = '"';
    }

    q = ngx_sprintf(q, ",\"seq\":%i", seq);

    if (key && !before) {
        q = ngx_sprintf(q, ",\"%s\":\"", key);
        q = ngx_http_json_escape(q, text->data, text->len);
        *q++ = '"';
    }

    *q++ = '}';

    ngx_scenario_chat_emit(chat, p, q - p, broadcast);

    if (p != buf) {
        ngx_free(p);
    }
}


/* p: "<origin> <json>" */

static void
ngx_scenario_chat_emit(ngx_scenario_chat_t *chat, u_char *p, size_t len,
    ngx_uint_t broadcast)
{
    ngx_str_t  msg;

    ngx_scenario_chat_send(chat, p + chat->origin.len + 1,
                           len - chat->origin.len - 1);

    if (broadcast) {
        msg.data = p;
        msg.len = len;

        ngx_scenario_chat_local = 1;
        ngx_redis_publish_local(ngx_scenario_chat_mcf(chat)->redis_pool,
                                &chat->channel, &msg);
        ngx_scenario_chat_local = 0;

        ngx_scenario_chat_publish(chat, msg.data, msg.len,
                                  broadcast == NGX_SCENARIO_CHAT_LATER);
    }
}


static void
ngx_scenario_chat_send(ngx_scenario_chat_t *chat, u_char *data, size_t len)
{
    if (chat->closed || !ngx_http_ws_is_open(chat->ws)) {
        return;
    }

    /* past the output limit the WebSocket layer drops the connection */
    (void) ngx_http_ws_send_text(chat->ws, data, len);
}


/* one record per line: JSON puts no raw newline in a compact document */

static void
ngx_scenario_chat_publish(ngx_scenario_chat_t *chat, u_char *data,
    size_t len, ngx_uint_t later)
{
    u_char              *p;
    size_t               size, argvlen[3];
    const char          *argv[3];
    ngx_scenario_pub_t  *pub;

    pub = chat->pub;

    if (pub == NULL && (!later || chat->closed)) {
        argv[0] = "PUBLISH";
        argvlen[0] = 7;
        argv[1] = (char *) chat->channel.data;
        argvlen[1] = chat->channel.len;
        argv[2] = (char *) data;
        argvlen[2] = len;

        (void) ngx_redis_command_pinned(ngx_scenario_chat_mcf(chat)->redis_pool,
                                        ngx_scenario_chat_hint(chat), NULL,
                                        NULL, 3, argv, argvlen);
        return;
    }

    if (pub == NULL) {
        pub = ngx_calloc(sizeof(ngx_scenario_pub_t),
                         chat->request->connection->log);
        if (pub == NULL) {
            return;
        }

        pub->chat = chat;
        pub->timer.handler = ngx_scenario_chat_flush_handler;
        pub->timer.data = pub;
        pub->timer.log = ngx_cycle->log;
        pub->timer.cancelable = 1;
        ngx_add_timer(&pub->timer, NGX_SCENARIO_CHAT_COALESCE);

        chat->pub = pub;
    }

    if (pub->len + len + 1 > pub->size) {
        size = ngx_max(2 * pub->size, pub->len + len + 1);
        size = ngx_max(size, 1024);

        p = ngx_alloc(size, chat->request->connection->log);
        if (p == NULL) {
            return;
        }

        if (pub->len) {
            ngx_memcpy(p, pub->data, pub->len);
        }

        ngx_free(pub->data);
        pub->data = p;
        pub->size = size;
    }

    if (pub->len) {
        pub->data[pub->len++] = '\n';
    }

    ngx_memcpy(pub->data + pub->len, data, len);
    pub->len += len;
    pub->n++;

    if (!later || chat->closed || pub->n >= NGX_SCENARIO_CHAT_BATCH
        || pub->len >= NGX_SCENARIO_CHAT_BATCH_SIZE)
    {
        ngx_scenario_chat_flush(chat);
    }
}


static void
ngx_scenario_chat_flush(ngx_scenario_chat_t *chat)
{
    size_t               argvlen[3];
    const char          *argv[3];
    ngx_scenario_pub_t  *pub;

    pub = chat->pub;

    if (pub == NULL) {
        return;
    }

    chat->pub = NULL;

    if (pub->timer.timer_set) {
        ngx_del_timer(&pub->timer);
    }

    if (pub->len) {
        argv[0] = "PUBLISH";
        argvlen[0] = 7;
        argv[1] = (char *) chat->channel.data;
        argvlen[1] = chat->channel.len;
        argv[2] = (char *) pub->data;
        argvlen[2] = pub->len;

        (void) ngx_redis_command_pinned(ngx_scenario_chat_mcf(chat)->redis_pool,
                                        ngx_scenario_chat_hint(chat), NULL,
                                        NULL, 3, argv, argvlen);
    }

    ngx_free(pub->data);
    ngx_free(pub);
}


static void
ngx_scenario_chat_flush_handler(ngx_event_t *ev)
{
    ngx_scenario_pub_t  *pub = ev->data;

    ngx_scenario_chat_flush(pub->chat);
}


/* other connections' events on this session, one or more per message */

static void
ngx_scenario_chat_heard(void *data, ngx_str_t *channel, ngx_str_t *message)
{
    ngx_scenario_chat_t  *chat = data;

    u_char  *p, *eol, *last;

    p = message->data;
    last = message->data + message->len;

    while (p < last && !chat->closed) {
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        ngx_scenario_chat_hear(chat, p, eol);
        p = eol + 1;
    }
}


static void
ngx_scenario_chat_hear(ngx_scenario_chat_t *chat, u_char *p, u_char *last)
{
    u_char     *sp;
    ngx_str_t   ev, from;

    sp = ngx_strlchr(p, last, ' ');

    if (sp == NULL) {
        return;
    }

    from.data = p;
    from.len = sp - p;

    if (from.len == chat->origin.len
        && ngx_strncmp(p, chat->origin.data, chat->origin.len) == 0)
    {
        return;
    }

    if (ngx_scenario_chat_echo(&from)) {
        return;
    }

    ev.data = sp + 1;
    ev.len = last - ev.data;

    ngx_scenario_chat_send(chat, ev.data, ev.len);

    /* the resolver is a sender of its own: its one event ends the chat */
    if (from.len == sizeof(NGX_SCENARIO_RESOLVER) - 1
        && ngx_strncmp(from.data, NGX_SCENARIO_RESOLVER, from.len) == 0)
    {
        chat->resolved = 1;
        ngx_http_ws_close(chat->ws, NGX_HTTP_WS_NORMAL, "resolved");
    }
}


/*
 * Through Redis, one of this worker's own events: it came in process
 * already (a watcher, ngx_scenario_live.c, hears the channel the same way)
 */

ngx_uint_t
ngx_scenario_chat_echo(ngx_str_t *from)
{
    return !ngx_scenario_chat_local
           && from->len > sizeof(ngx_scenario_chat_instance)
           && from->data[sizeof(ngx_scenario_chat_instance)] == '.'
           && ngx_strncmp(from->data, ngx_scenario_chat_instance,
                          sizeof(ngx_scenario_chat_instance))
              == 0;
}


/*
 * The model's context in Redis: recent turns, each "{seq, role, content}"
 * so that a reader sees whether it holds, and the prompt.
 */

static u_char *
ngx_scenario_chat_item(ngx_pool_t *pool, ngx_int_t seq, const char *role,
    ngx_str_t *content, size_t *len)
{
    u_char  *p, *q;
    size_t   r, n;

    r = ngx_http_json_escape_len((u_char *) role, ngx_strlen(role));
    n = ngx_http_json_escape_len(content->data, content->len);

    if (r == NGX_HTTP_JSON_INVALID || n == NGX_HTTP_JSON_INVALID) {
        return NULL;
    }

    p = ngx_pnalloc(pool, sizeof("{\"seq\":,\"role\":\"\",\"content\":\"\"}")
                          - 1 + NGX_INT_T_LEN + r + n);
    if (p == NULL) {
        return NULL;
    }

    q = ngx_sprintf(p, "{\"seq\":%i,\"role\":\"", seq);
    q = ngx_http_json_escape(q, (u_char *) role, ngx_strlen(role));
    q = ngx_cpymem(q, "\",\"content\":\"", sizeof("\",\"content\":\"") - 1);
    q = ngx_http_json_escape(q, content->data, content->len);
    *q++ = '"';
    *q++ = '}';

    *len = q - p;

    return p;
}


/*
 * An item of the context as the model sees it: the stored item without
 * its seq.  In the shape ngx_scenario_chat_item() writes, and with strings
 * that need no decoding to be checked, it is taken as it stands, a copy of
 * its text; anything else is read by jansson as it always was.
 */

static ngx_int_t
ngx_scenario_chat_unseq(ngx_pool_t *pool, u_char *p, size_t len,
    ngx_int_t *seq, ngx_str_t *out)
{
    u_char  *last, *q, *digits, *role;

    static const char  head[] = "{\"seq\":";
    static const char  r[] = ",\"role\":";
    static const char  t[] = ",\"content\":";

    last = p + len;

    if (len < sizeof(head) - 1 || ngx_strncmp(p, head, sizeof(head) - 1) != 0)
    {
        goto slow;
    }

    /* at most 18 digits fit; no sign, no leading zero */

    digits = p + sizeof(head) - 1;

    for (q = digits; q < last && *q >= '0' && *q <= '9'; q++) {
        /* void */
    }

    if (q == digits || q - digits > 18 || (*digits == '0' && q - digits > 1)
        || (size_t) (last - q) < sizeof(r) - 1
        || ngx_strncmp(q, r, sizeof(r) - 1) != 0)
    {
        goto slow;
    }

    *seq = ngx_atoi(digits, q - digits);
    role = q + 1;

    q = ngx_http_json_scan_string(q + sizeof(r) - 1, last);

    if (q == NULL || (size_t) (last - q) < sizeof(t) - 1
        || ngx_strncmp(q, t, sizeof(t) - 1) != 0)
    {
        goto slow;
    }

    q = ngx_http_json_scan_string(q + sizeof(t) - 1, last);

    if (q == NULL || last - q != 1 || *q != '}') {
        goto slow;
    }

    out->len = 1 + (last - role);
    out->data = ngx_pnalloc(pool, out->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->data[0] = '{';
    ngx_memcpy(out->data + 1, role, last - role);

    return NGX_OK;

slow:

    return ngx_scenario_chat_unseq_slow(pool, p, len, seq, out);
}


static ngx_int_t
ngx_scenario_chat_unseq_slow(ngx_pool_t *pool, u_char *p, size_t len,
    ngx_int_t *seq, ngx_str_t *out)
{
    json_t     *item, *n, *role, *content;
    ngx_int_t   rc;

    item = json_loadb((char *) p, len, 0, NULL);
    n = json_object_get(item, "seq");
    role = json_object_get(item, "role");
    content = json_object_get(item, "content");

    if (!json_is_integer(n) || !json_is_string(role)
        || !json_is_string(content))
    {
        json_decref(item);
        return NGX_ERROR;
    }

    *seq = (ngx_int_t) json_integer_value(n);

    json_object_del(item, "seq");

    rc = ngx_http_json_dump(pool, item, out);

    json_decref(item);

    return rc;
}


/* {"role":...,"content":...}, as jansson would dump it */

static ngx_int_t
ngx_scenario_chat_message_text(ngx_pool_t *pool, ngx_str_t *role,
    ngx_str_t *content, ngx_str_t *out)
{
    u_char  *p;
    size_t   r, n;

    r = ngx_http_json_escape_len(role->data, role->len);
    n = ngx_http_json_escape_len(content->data, content->len);

    if (r == NGX_HTTP_JSON_INVALID || n == NGX_HTTP_JSON_INVALID) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(pool, sizeof("{\"role\":\"\",\"content\":\"\"}") - 1
                          + r + n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    p = ngx_cpymem(p, "{\"role\":\"", sizeof("{\"role\":\"") - 1);
    p = ngx_http_json_escape(p, role->data, role->len);
    p = ngx_cpymem(p, "\",\"content\":\"", sizeof("\",\"content\":\"") - 1);
    p = ngx_http_json_escape(p, content->data, content->len);
    *p++ = '"';
    *p++ = '}';

    out->len = p - out->data;

    return NGX_OK;
}


static void
ngx_scenario_chat_rewrite_context(ngx_scenario_chat_t *chat,
    ngx_str_t *system, json_t *list)
{
    u_char        kbuf[2][NGX_SCENARIO_CHAT_KEY_LEN];
    size_t        i, n;
    json_t       *item;
    ngx_str_t     content, keys[2], *args;
    ngx_pool_t   *pool;

    pool = chat->turn->pool;
    n = json_array_size(list);

    args = ngx_palloc(pool, (n + 1) * sizeof(ngx_str_t));
    if (args == NULL) {
        return;
    }

    ngx_scenario_chat_key(chat, &keys[0], kbuf[0], "ctx:%V");
    ngx_scenario_chat_key(chat, &keys[1], kbuf[1], "ctx:%V:system");
    args[0] = *system;

    json_array_foreach(list, i, item) {
        content.data = (u_char *) json_string_value(
                                      json_object_get(item, "content"));
        content.len = json_string_length(json_object_get(item, "content"));

        args[1 + i].data = ngx_scenario_chat_item(pool,
                               (ngx_int_t) json_integer_value(
                                               json_object_get(item, "seq")),
                               json_string_value(json_object_get(item,
                                                                 "role")),
                               &content, &args[1 + i].len);
        if (args[1 + i].data == NULL) {
            return;
        }
    }

    (void) ngx_redis_eval_pinned(ngx_scenario_chat_mcf(chat)->redis_pool,
                                 ngx_scenario_chat_hint(chat), NULL, NULL,
                                 &ngx_scenario_chat_rewrite_script, 2, keys,
                                 n + 1, args);
}
