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


typedef struct ngx_scenario_chat_s  ngx_scenario_chat_t;
typedef struct ngx_scenario_turn_s  ngx_scenario_turn_t;
typedef struct ngx_scenario_op_s    ngx_scenario_op_t;

typedef struct {
    ngx_queue_t                  queue;
    size_t                       len;
    u_char                       data[1];
} ngx_scenario_inmsg_t;

typedef void (*ngx_scenario_chat_pg_pt)(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
typedef void (*ngx_scenario_chat_redis_pt)(ngx_scenario_chat_t *chat,
    redisReply *reply, ngx_int_t rc);


struct ngx_scenario_chat_s {
    ngx_http_request_t          *request;
    ngx_http_ws_t               *ws;
    ngx_scenario_main_conf_t    *smcf;
    ngx_scenario_loc_conf_t     *slcf;
    ngx_redis_sub_t             *sub;

    ngx_str_t                    session_id;
    ngx_uint_t                   hint;          /* pins Redis commands */
    ngx_str_t                    channel;       /* "chat:<id>" */
    ngx_str_t                    context_key;   /* "ctx:<id>" */
    ngx_str_t                    lock_key;      /* "gen:<id>" */
    ngx_str_t                    system_key;    /* "ctx:<id>:system" */
    ngx_str_t                    origin;        /* "<instance>.<n>" */
    ngx_str_t                    ready;         /* the "ready" event */

    ngx_queue_t                  inbox;         /* client messages */
    ngx_scenario_inmsg_t        *current;       /* the one in work */
    json_t                      *msg;           /* ... parsed */
    ngx_uint_t                   inbox_len;
    size_t                       inbox_size;    /* bytes of the inbox */
    ngx_scenario_turn_t         *turn;
    ngx_uint_t                   refs;          /* operations in flight */

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
    json_t                      *context;
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
};


struct ngx_scenario_op_s {
    ngx_scenario_chat_t         *chat;
    ngx_scenario_chat_pg_pt      pg;
    ngx_scenario_chat_redis_pt   redis;
};


static void ngx_scenario_chat_session(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
static ngx_int_t ngx_scenario_chat_open(ngx_http_request_t *r,
    PGresult *res);
static ngx_int_t ngx_scenario_chat_keys(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_message(ngx_http_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_scenario_chat_next(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_done(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_handle(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_user_message(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_stored(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_chat_resume(ngx_scenario_chat_t *chat);
static void ngx_scenario_chat_replay(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_chat_error(ngx_scenario_chat_t *chat,
    const char *code, const char *message, ngx_uint_t broadcast);

static void ngx_scenario_turn_start(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_lock(ngx_scenario_chat_t *chat,
    ngx_scenario_turn_t *turn);
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
static void ngx_scenario_turn_context(ngx_scenario_chat_t *chat,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_turn_rebuilt(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_turn_reserve(ngx_scenario_chat_t *chat);
static void ngx_scenario_turn_reserved(ngx_scenario_chat_t *chat,
    PGresult *res, ngx_int_t rc);
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
static void ngx_scenario_chat_send(ngx_scenario_chat_t *chat, u_char *data,
    size_t len);
static void ngx_scenario_chat_publish(ngx_scenario_chat_t *chat,
    u_char *data, size_t len);
static void ngx_scenario_chat_heard(void *data, ngx_str_t *channel,
    ngx_str_t *message);
static void ngx_scenario_chat_remember(ngx_scenario_chat_t *chat,
    const char *role, u_char *content, size_t len);
static void ngx_scenario_chat_forget_context(ngx_scenario_chat_t *chat,
    ngx_str_t *system);
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

static const char  ngx_scenario_chat_add_sql[] =
    "SELECT seq, duplicate, coalesce(needs_reply, false) "
    "FROM chat_add_user_message($1, $2, $3)";

static const char  ngx_scenario_chat_replay_sql[] =
    "SELECT seq, role, content, "
    "to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
    "FROM messages WHERE session_id = $1 AND seq > $2 "
    "ORDER BY seq LIMIT 1000";

static const char  ngx_scenario_chat_rebuild_sql[] =
    "SELECT s.persona_name, s.persona_role, s.persona_prompt, s.backstory, "
    "s.goal, s.opening_line, coalesce((SELECT json_agg(json_build_object("
    "'role', t.role, 'content', t.content) ORDER BY t.seq) FROM "
    "(SELECT m.seq, m.role, m.content FROM messages m "
    "WHERE m.session_id = se.id ORDER BY m.seq DESC LIMIT $2) t), '[]') "
    "FROM sessions se " NGX_SCENARIO_SESSION_SCENARIO
    "WHERE se.id = $1";

/*
 * What the reply answers: the seq is taken only when the reply is stored
 * (sql/015), so a failed call leaves no hole.
 */
static const char  ngx_scenario_chat_reserve_sql[] =
    "SELECT last_seq FROM sessions WHERE id = $1 AND status = 'active'";

static const char  ngx_scenario_chat_reply_sql[] =
    "SELECT seq, to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), content, duplicate "
    "FROM chat_store_reply($1, $2, $3)";

/*
 * A message of the trainee still waits for its reply: with $2 = -1, the
 * last one; else one stored after seq $2, the messages a turn answered.
 */
static const char  ngx_scenario_chat_pending_sql[] =
    "SELECT CASE WHEN $2::int < 0 THEN (SELECT role = 'user' FROM messages "
    "WHERE session_id = $1 ORDER BY seq DESC LIMIT 1) "
    "ELSE EXISTS (SELECT 1 FROM messages WHERE session_id = $1 "
    "AND role = 'user' AND seq > $2::int) END";

/* the persona's system prompt and the recent turns, in one round trip */
static const char  ngx_scenario_chat_context_script[] =
    "return {redis.call('GET', KEYS[2]), redis.call('LRANGE', KEYS[1], 0, -1)}";

static const char  ngx_scenario_chat_unlock_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0";

/* the lease is extended only while the lock is still its holder's */
static const char  ngx_scenario_chat_renew_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";


static ngx_uint_t  ngx_scenario_chat_number;

/*
 * 64 random bits made by each worker at its first chat: replicas in
 * containers share pids, and an origin made of the pid would make two
 * instances drop each other's events as their own
 */
static u_char      ngx_scenario_chat_instance[16];


/* the handshake: owner and state checked before the upgrade */

ngx_int_t
ngx_scenario_chat_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_str_t            params[2];
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

    if (ngx_scenario_session_id(r, &params[0]) != NGX_OK) {
        return ngx_scenario_not_found(r, "session");
    }

    params[1] = ctx->user_id_text;

    rc = ngx_scenario_pg(r, ngx_scenario_chat_session_sql, 2, params,
                         ngx_scenario_chat_session);

    return ngx_scenario_wait(r, rc, "postgres");
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

    /* the WebSocket holds the request now: give back the handler's count */
    ngx_http_finalize_request(r, NGX_DONE);
}


static ngx_int_t
ngx_scenario_chat_open(ngx_http_request_t *r, PGresult *res)
{
    json_t               *ready;
    ngx_int_t             last_seq;
    ngx_str_t             v[4], last_role, key;
    ngx_uint_t            i;
    ngx_http_ws_conf_t    wscf;
    ngx_scenario_chat_t  *chat;
    ngx_scenario_ctx_t   *ctx;

    ctx = ngx_scenario_ctx(r);

    chat = ngx_pcalloc(r->pool, sizeof(ngx_scenario_chat_t));
    if (chat == NULL) {
        return NGX_ERROR;
    }

    chat->request = r;
    chat->smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);
    chat->slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);
    ngx_queue_init(&chat->inbox);

    (void) ngx_scenario_session_id(r, &chat->session_id);
    chat->hint = ngx_atoi(chat->session_id.data, chat->session_id.len);

    if (ngx_scenario_chat_keys(chat) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < 4; i++) {
        v[i] = ngx_pg_value(res, 0, i + 1);
    }

    last_seq = ngx_pg_int(res, 0, 5);

    ready = json_pack("{s:s,s:I,s:{s:I,s:s%,s:{s:s%,s:s%}},s:I}",
                      "type", "ready",
                      "session_id", (json_int_t) chat->hint,
                      "scenario",
                      "id", (json_int_t) ngx_atoi(v[0].data, v[0].len),
                      "title", (char *) v[1].data, v[1].len,
                      "persona",
                      "name", (char *) v[2].data, v[2].len,
                      "role", (char *) v[3].data, v[3].len,
                      "last_seq", (json_int_t) last_seq);

    if (ready == NULL || ngx_http_json_own(r->pool, ready) == NULL) {
        return NGX_ERROR;
    }

    wscf.max_message = chat->slcf->chat_max_message;
    wscf.max_output = chat->slcf->chat_max_output;
    wscf.ping_interval = chat->slcf->chat_ping;
    wscf.idle_timeout = chat->slcf->chat_idle_timeout;
    wscf.close_timeout = 2000;
    wscf.send_timeout = chat->slcf->chat_send_timeout;

    chat->ws = ngx_http_ws_accept(r, &wscf, ngx_scenario_chat_message,
                                  ngx_scenario_chat_closed, chat);
    if (chat->ws == NULL) {
        return NGX_ERROR;
    }

    ctx->chat = chat;
    ngx_scenario_count(r, NGX_SCENARIO_M_ACTIVE_CHATS, 1);

    /* a logout ends the chat, on whichever worker or instance it lives */
    if (ctx->token_key.len > sizeof("sess:") - 1) {
        key.data = ctx->token_key.data + sizeof("sess:") - 1;
        key.len = ctx->token_key.len - (sizeof("sess:") - 1);

        if (ngx_scenario_watch(r, &key, ngx_scenario_chat_revoked, chat)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* and so do a role change and a removal (ngx_scenario_orgs.c) */
    if (ngx_scenario_watch_member(r, &ctx->user_id_text,
                                  ngx_scenario_chat_revoked, chat)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    chat->sub = ngx_redis_subscribe(chat->smcf->redis_pool, &chat->channel,
                                    ngx_scenario_chat_heard, chat);

    ngx_scenario_chat_event(chat, ready, 0);

    /*
     * A new session: the persona speaks first; a message left unanswered
     * (its sender went away before the reply): it gets one now.
     */
    last_role = ngx_pg_value(res, 0, 6);

    if (last_seq == 0
        || (last_role.len == 4 && ngx_strncmp(last_role.data, "user", 4) == 0))
    {
        ngx_scenario_turn_start(chat);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_chat_keys(ngx_scenario_chat_t *chat)
{
    u_char      *p, raw[8];
    ngx_pool_t  *pool;

    pool = chat->request->pool;

    p = ngx_pnalloc(pool, 4 * (sizeof("ctx::system") + NGX_INT64_LEN)
                          + NGX_INT_T_LEN + NGX_INT64_LEN + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    chat->channel.data = p;
    p = ngx_sprintf(p, "chat:%V", &chat->session_id);
    chat->channel.len = p - chat->channel.data;

    chat->context_key.data = p;
    p = ngx_sprintf(p, "ctx:%V", &chat->session_id);
    chat->context_key.len = p - chat->context_key.data;

    chat->lock_key.data = p;
    p = ngx_sprintf(p, "gen:%V", &chat->session_id);
    chat->lock_key.len = p - chat->lock_key.data;

    chat->system_key.data = p;
    p = ngx_sprintf(p, "ctx:%V:system", &chat->session_id);
    chat->system_key.len = p - chat->system_key.data;

    if (ngx_scenario_chat_instance[0] == '\0') {
        randombytes_buf(raw, sizeof(raw));
        ngx_hex_dump(ngx_scenario_chat_instance, raw, sizeof(raw));
    }

    chat->origin.data = p;
    p = ngx_sprintf(p, "%*s.%ui", sizeof(ngx_scenario_chat_instance),
                    ngx_scenario_chat_instance, ++ngx_scenario_chat_number);
    chat->origin.len = p - chat->origin.data;

    return NGX_OK;
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
                                chat->slcf->chat_max_chars)
           != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "bad_request",
                                "\"client_msg_id\" (1 to 128 characters) "
                                "and \"content\" (not empty, within the "
                                "limit) must be strings", 0);
        ngx_scenario_chat_done(chat);
        return;
    }

    params[0] = chat->session_id;

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
    json_t      *ack, *id, *content;
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

    ack = json_pack("{s:s,s:O,s:I}", "type", "ack", "client_msg_id", id,
                    "seq", (json_int_t) ngx_pg_int(res, 0, 0));

    if (ack) {
        /* a repeated message concerns its sender only */
        ngx_scenario_chat_event(chat, ack, !duplicate);
        json_decref(ack);
    }

    if (!duplicate) {
        ngx_scenario_chat_remember(chat, "user",
                                   (u_char *) json_string_value(content),
                                   json_string_length(content));
    }

    if (needs_reply) {
        ngx_scenario_turn_start(chat);
    }

    ngx_scenario_chat_done(chat);
}


static void
ngx_scenario_chat_resume(ngx_scenario_chat_t *chat)
{
    u_char     buf[NGX_INT64_LEN];
    json_t    *after;
    ngx_str_t  params[2];

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

    params[0] = chat->session_id;
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%L",
                                (int64_t) json_integer_value(after))
                    - buf;

    if (ngx_scenario_chat_pg(chat, ngx_scenario_chat_replay_sql, 2, params,
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
    json_t     *ev;
    ngx_str_t   role, content, at;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_chat_error(chat, "unavailable",
                                "the messages could not be read, ask again",
                                0);
        ngx_scenario_chat_done(chat);
        return;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        role = ngx_pg_value(res, i, 1);
        content = ngx_pg_value(res, i, 2);
        at = ngx_pg_value(res, i, 3);

        ev = json_pack("{s:s,s:I,s:s%,s:s%,s:s%}", "type", "message",
                       "seq", (json_int_t) ngx_pg_int(res, i, 0),
                       "role", (char *) role.data, role.len,
                       "content", (char *) content.data, content.len,
                       "created_at", (char *) at.data, at.len);
        if (ev) {
            ngx_scenario_chat_event(chat, ev, 0);
            json_decref(ev);
        }
    }

    ngx_scenario_chat_done(chat);
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
ngx_scenario_turn_start(ngx_scenario_chat_t *chat)
{
    u_char               *p;
    ngx_pool_t           *pool;
    ngx_scenario_turn_t  *turn;

    if (chat->turn != NULL || chat->closed) {
        return;
    }

    pool = ngx_create_pool(2048, chat->request->connection->log);
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
    u_char       buf[NGX_INT64_LEN];
    size_t       argvlen[6];
    const char  *argv[6];

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (char *) chat->lock_key.data;
    argvlen[1] = chat->lock_key.len;
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
    }
}


static void
ngx_scenario_turn_locked(ngx_scenario_chat_t *chat, redisReply *reply,
    ngx_int_t rc)
{
    size_t       argvlen[5];
    const char  *argv[5];

    if (chat->turn == NULL) {
        return;
    }

    if (rc != NGX_OK) {
        /*
         * The command may still run (Redis paused, not dead): whether the
         * lock is this turn's is asked, not assumed.
         */

        argv[0] = "GET";
        argvlen[0] = 3;
        argv[1] = (char *) chat->lock_key.data;
        argvlen[1] = chat->lock_key.len;

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

    if (reply->type != REDIS_REPLY_STATUS) {
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

    size_t                argvlen[2];
    const char           *argv[2];
    ngx_scenario_chat_t  *chat;

    chat = turn->chat;
    turn->waited += NGX_SCENARIO_CHAT_POLL;

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = (char *) chat->lock_key.data;
    argvlen[1] = chat->lock_key.len;

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

    bound = chat->slcf->model.timeout ? chat->slcf->model.timeout * 2
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
    size_t                argvlen[5];
    const char           *argv[5];
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;
    turn->locked = 1;

    turn->renew.handler = ngx_scenario_turn_renew;
    turn->renew.data = turn;
    turn->renew.log = chat->request->connection->log;
    turn->renew.cancelable = 1;
    ngx_add_timer(&turn->renew, NGX_SCENARIO_CHAT_RENEW);

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_scenario_chat_context_script;
    argvlen[1] = sizeof(ngx_scenario_chat_context_script) - 1;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (char *) chat->context_key.data;
    argvlen[3] = chat->context_key.len;
    argv[4] = (char *) chat->system_key.data;
    argvlen[4] = chat->system_key.len;

    if (ngx_scenario_chat_redis(chat, ngx_scenario_turn_context, 5, argv,
                                argvlen)
        != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "unavailable",
                                "redis is unavailable, send again", 0);
        ngx_scenario_turn_end(chat, 0);
    }
}


static void
ngx_scenario_turn_renew(ngx_event_t *ev)
{
    ngx_scenario_turn_t  *turn = ev->data;

    u_char                buf[NGX_INT64_LEN];
    size_t                argvlen[6];
    const char           *argv[6];
    ngx_scenario_chat_t  *chat;

    chat = turn->chat;

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_scenario_chat_renew_script;
    argvlen[1] = sizeof(ngx_scenario_chat_renew_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) chat->lock_key.data;
    argvlen[3] = chat->lock_key.len;
    argv[4] = (char *) turn->token.data;
    argvlen[4] = turn->token.len;
    argv[5] = (char *) buf;
    argvlen[5] = ngx_sprintf(buf, "%M", (ngx_msec_t) NGX_SCENARIO_CHAT_LEASE)
                 - buf;

    /* no answer needed: a lost lock shows at the next renewal or store */
    (void) ngx_redis_command_pinned(chat->smcf->redis_pool, chat->hint,
                                    NULL, NULL, 6, argv, argvlen);

    ngx_add_timer(&turn->renew, NGX_SCENARIO_CHAT_RENEW);
}


static void
ngx_scenario_turn_context(ngx_scenario_chat_t *chat, redisReply *reply,
    ngx_int_t rc)
{
    u_char               buf[NGX_INT_T_LEN];
    json_t              *item;
    size_t               i;
    ngx_str_t            params[2];
    redisReply          *list;
    ngx_scenario_turn_t *turn;

    turn = chat->turn;

    turn->context = json_array();
    if (turn->context == NULL
        || ngx_http_json_own(turn->pool, turn->context) == NULL)
    {
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    if (rc == NGX_OK && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[1]->type == REDIS_REPLY_ARRAY
        && reply->element[1]->elements > 0)
    {
        list = reply->element[1];

        turn->system.len = reply->element[0]->len;
        turn->system.data = ngx_pnalloc(turn->pool, turn->system.len);
        if (turn->system.data == NULL) {
            ngx_scenario_turn_end(chat, 0);
            return;
        }

        ngx_memcpy(turn->system.data, reply->element[0]->str,
                   turn->system.len);

        for (i = 0; i < list->elements; i++) {
            item = json_loadb(list->element[i]->str, list->element[i]->len,
                              0, NULL);
            if (item) {
                json_array_append_new(turn->context, item);
            }
        }

        ngx_scenario_turn_reserve(chat);
        return;
    }

    /* Redis lost the context (or never had it): Postgres has the turns */

    params[0] = chat->session_id;
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%ui", chat->slcf->chat_context) - buf;

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
    size_t                i;
    json_t               *list, *item;
    ngx_str_t             v;
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

    if (list == NULL
        || ngx_scenario_chat_system(turn->pool, res, &turn->system)
           != NGX_OK)
    {
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    /* Redis is told anew: the prompt, then the turns in order */

    ngx_scenario_chat_forget_context(chat, &turn->system);

    json_array_foreach(list, i, item) {
        json_array_append(turn->context, item);
        ngx_scenario_chat_remember(chat,
            json_string_value(json_object_get(item, "role")),
            (u_char *) json_string_value(json_object_get(item, "content")),
            json_string_length(json_object_get(item, "content")));
    }

    ngx_scenario_turn_reserve(chat);
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


static void
ngx_scenario_turn_reserve(ngx_scenario_chat_t *chat)
{
    if (ngx_scenario_chat_pg(chat, ngx_scenario_chat_reserve_sql, 1,
                             &chat->session_id, ngx_scenario_turn_reserved)
        != NGX_OK)
    {
        ngx_scenario_chat_error(chat, "unavailable",
                                "postgres is unavailable, send again", 0);
        ngx_scenario_turn_end(chat, 0);
    }
}


static void
ngx_scenario_turn_reserved(ngx_scenario_chat_t *chat, PGresult *res,
    ngx_int_t rc)
{
    json_t               *ev;
    ngx_scenario_turn_t  *turn;

    turn = chat->turn;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_chat_error(chat, "unavailable",
                                "postgres is unavailable, send again", 0);
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    if (PQntuples(res) != 1) {
        /* resolved meanwhile */
        ngx_scenario_turn_end(chat, 0);
        return;
    }

    /*
     * The seq the reply expects; a message of the trainee stored while
     * it streams takes it, and the reply's "assistant_end" then carries
     * the seq it was stored with.
     */

    turn->answers = ngx_pg_int(res, 0, 0);
    turn->seq = turn->answers + 1;

    ev = json_pack("{s:s,s:I}", "type", "assistant_start",
                   "seq", (json_int_t) turn->seq);
    if (ev) {
        ngx_scenario_chat_event(chat, ev, 1);
        json_decref(ev);
    }

    ngx_scenario_turn_call(turn);
}


static void
ngx_scenario_turn_call(ngx_scenario_turn_t *turn)
{
    json_t               *req, *messages;
    ngx_int_t             rc;
    ngx_str_t             body;
    ngx_scenario_chat_t  *chat;

    chat = turn->chat;

    messages = json_pack("[{s:s,s:s%}]", "role", "system",
                         "content", (char *) turn->system.data,
                         turn->system.len);
    if (messages == NULL) {
        goto failed;
    }

    json_array_extend(messages, turn->context);

    req = json_pack("{s:s%,s:b,s:o,s:f,s:I}",
                    "model", (char *) chat->slcf->model_name.data,
                    chat->slcf->model_name.len,
                    "stream", 1,
                    "messages", messages,
                    "temperature", chat->slcf->model_temperature,
                    "max_tokens", (json_int_t) chat->slcf->model_max_tokens);
    if (req == NULL) {
        goto failed;
    }

    rc = ngx_http_json_dump(turn->pool, req, &body);
    json_decref(req);

    if (rc != NGX_OK) {
        goto failed;
    }

    turn->started = ngx_current_msec;
    turn->call = ngx_model_call(chat->request, &chat->slcf->model, &body,
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


static void
ngx_scenario_turn_delta(void *data, u_char *text, size_t len)
{
    ngx_scenario_turn_t  *turn = data;

    json_t  *ev;

    ev = json_pack("{s:s,s:I,s:s%}", "type", "assistant_delta",
                   "seq", (json_int_t) turn->seq,
                   "delta", (char *) text, len);
    if (ev) {
        ngx_scenario_chat_event(turn->chat, ev, 1);
        json_decref(ev);
    }
}


static void
ngx_scenario_turn_model_done(void *data, ngx_int_t rc, ngx_uint_t status,
    time_t retry_after, ngx_str_t *error, ngx_str_t *content)
{
    ngx_scenario_turn_t  *turn = data;

    u_char                buf[NGX_INT_T_LEN];
    ngx_msec_t            delay;
    ngx_str_t             params[3];
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

    params[0] = chat->session_id;
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%i", turn->answers) - buf;
    params[2] = turn->content;

    if (ngx_scenario_chat_pg(chat, ngx_scenario_chat_reply_sql, 3, params,
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
    json_t               *ev;
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

    ev = json_pack("{s:s,s:I,s:s%}", "type", "assistant_end",
                   "seq", (json_int_t) turn->seq,
                   "content", (char *) turn->content.data,
                   turn->content.len);
    if (ev) {
        ngx_scenario_chat_event(chat, ev, 1);
        json_decref(ev);
    }

    if (!duplicate) {
        ngx_scenario_chat_remember(chat, "assistant", turn->content.data,
                                   turn->content.len);
    }

    ngx_scenario_turn_end(chat, 1);
}


/*
 * The turn is over: the lock goes, and a message that came in meanwhile
 * (here or on another connection) gets its reply: one stored after those
 * the turn answered, so that a failing message is not tried forever.  A
 * waiter whose holder is gone ("replied" 2) answers the last message if
 * it is the trainee's.
 */

static void
ngx_scenario_turn_end(ngx_scenario_chat_t *chat, ngx_uint_t replied)
{
    u_char                buf[NGX_INT_T_LEN];
    size_t                argvlen[5];
    ngx_str_t             params[2];
    ngx_uint_t            started;
    const char           *argv[5];
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
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = ngx_scenario_chat_unlock_script;
        argvlen[1] = sizeof(ngx_scenario_chat_unlock_script) - 1;
        argv[2] = "1";
        argvlen[2] = 1;
        argv[3] = (char *) chat->lock_key.data;
        argvlen[3] = chat->lock_key.len;
        argv[4] = (char *) turn->token.data;
        argvlen[4] = turn->token.len;

        (void) ngx_redis_command_pinned(chat->smcf->redis_pool, chat->hint,
                                        NULL, NULL, 5,
                                        argv, argvlen);
    }

    params[0] = chat->session_id;
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%i",
                                replied == 2 ? -1 : turn->answers)
                    - buf;

    /* a turn that failed before it knew what it answered looks no further */
    started = (turn->seq > 0);

    ngx_destroy_pool(turn->pool);

    if (chat->closed || (!replied && !started)) {
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
        && ngx_pg_value(res, 0, 0).data[0] == 't')
    {
        ngx_scenario_turn_start(chat);
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

    if (ngx_pg_query(chat->smcf->pg_pool, sql, nparams, params,
                     ngx_scenario_chat_pg_done, op)
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
    if (ngx_redis_command_pinned(chat->smcf->redis_pool, chat->hint,
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
 * the session's channel as "<origin> <json>" for every other connection.
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

    ngx_scenario_chat_send(chat, p + chat->origin.len + 1, len);

    if (broadcast) {
        ngx_scenario_chat_publish(chat, p, chat->origin.len + 1 + len);
    }

    ngx_free(p);
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


static void
ngx_scenario_chat_publish(ngx_scenario_chat_t *chat, u_char *data,
    size_t len)
{
    size_t       argvlen[3];
    const char  *argv[3];

    argv[0] = "PUBLISH";
    argvlen[0] = 7;
    argv[1] = (char *) chat->channel.data;
    argvlen[1] = chat->channel.len;
    argv[2] = (char *) data;
    argvlen[2] = len;

    (void) ngx_redis_command_pinned(chat->smcf->redis_pool, chat->hint,
                                    NULL, NULL, 3, argv,
                                    argvlen);
}


/* another connection's event on this session */

static void
ngx_scenario_chat_heard(void *data, ngx_str_t *channel, ngx_str_t *message)
{
    ngx_scenario_chat_t  *chat = data;

    u_char     *p, *last;
    ngx_str_t   ev;

    last = message->data + message->len;
    p = ngx_strlchr(message->data, last, ' ');

    if (p == NULL || chat->closed) {
        return;
    }

    if ((size_t) (p - message->data) == chat->origin.len
        && ngx_strncmp(message->data, chat->origin.data, chat->origin.len)
           == 0)
    {
        return;
    }

    ev.data = p + 1;
    ev.len = last - ev.data;

    ngx_scenario_chat_send(chat, ev.data, ev.len);

    if (ev.len >= sizeof("{\"type\":\"resolved\"") - 1
        && ngx_strncmp(ev.data, "{\"type\":\"resolved\"",
                       sizeof("{\"type\":\"resolved\"") - 1)
           == 0)
    {
        chat->resolved = 1;
        ngx_http_ws_close(chat->ws, NGX_HTTP_WS_NORMAL, "resolved");
    }
}


/* the model's context in Redis: recent turns, bounded, and the prompt */

static const char  ngx_scenario_chat_remember_script[] =
    "redis.call('RPUSH', KEYS[1], ARGV[1]) "
    "redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1) "
    "redis.call('EXPIRE', KEYS[1], 86400) "
    "return redis.call('EXPIRE', KEYS[2], 86400)";


static void
ngx_scenario_chat_remember(ngx_scenario_chat_t *chat, const char *role,
    u_char *content, size_t len)
{
    char        *doc;
    u_char       buf[NGX_INT_T_LEN];
    json_t      *item;
    size_t       argvlen[7];
    const char  *argv[7];

    item = json_pack("{s:s,s:s%}", "role", role, "content", (char *) content,
                     len);
    if (item == NULL) {
        return;
    }

    doc = json_dumps(item, JSON_COMPACT);
    json_decref(item);

    if (doc == NULL) {
        return;
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngx_scenario_chat_remember_script;
    argvlen[1] = sizeof(ngx_scenario_chat_remember_script) - 1;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (char *) chat->context_key.data;
    argvlen[3] = chat->context_key.len;
    argv[4] = (char *) chat->system_key.data;
    argvlen[4] = chat->system_key.len;
    argv[5] = doc;
    argvlen[5] = ngx_strlen(doc);
    argv[6] = (char *) buf;
    argvlen[6] = ngx_sprintf(buf, "%ui", chat->slcf->chat_context) - buf;

    (void) ngx_redis_command_pinned(chat->smcf->redis_pool, chat->hint,
                                    NULL, NULL, 7, argv, argvlen);
    free(doc);
}


static void
ngx_scenario_chat_forget_context(ngx_scenario_chat_t *chat,
    ngx_str_t *system)
{
    size_t       argvlen[6];
    const char  *argv[6];

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = "redis.call('DEL', KEYS[1]) "
              "return redis.call('SET', KEYS[2], ARGV[1], 'EX', 86400)";
    argvlen[1] = ngx_strlen(argv[1]);
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (char *) chat->context_key.data;
    argvlen[3] = chat->context_key.len;
    argv[4] = (char *) chat->system_key.data;
    argvlen[4] = chat->system_key.len;
    argv[5] = (char *) system->data;
    argvlen[5] = system->len;

    (void) ngx_redis_command_pinned(chat->smcf->redis_pool, chat->hint,
                                    NULL, NULL, 6, argv, argvlen);
}
