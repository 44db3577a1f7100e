/*
 * Watch live (issue 9, item 5): GET /sessions/{id}/watch, a WebSocket on
 * which a trainer or admin of the trainee's organization hears the
 * session's events as they happen, read-only.
 *
 * The watcher is one more subscriber of the session's Redis channel
 * (ngx_scenario_chat.c sends every event there), so it hears the chat on
 * whichever worker or instance it lives.  It tells the session's
 * connections that it watches, and that it stopped, with a "watching"
 * event of its own origin on the channel.  A message from the watcher
 * closes it (1008): it may not speak.  sql/027 checks the caller.
 *
 * A watch holds a slot of scenario_chat_limit, as a chat does (the same
 * user and address leases): it costs the worker what a chat costs (a
 * socket, a subscription), and a trainer could otherwise open any number.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_ws_t               *ws;
    ngx_redis_sub_t             *sub;
    ngx_scenario_main_conf_t    *smcf;
    ngx_str_t                    channel;       /* "chat:<id>" */
    ngx_str_t                    origin;        /* "live.<random>" */
    json_t                      *watcher;       /* {"id","display_name"} */
    unsigned                     closed:1;
} ngx_scenario_live_t;


static ngx_int_t ngx_scenario_live_check(ngx_http_request_t *r);
static void ngx_scenario_live_checked(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);
static ngx_int_t ngx_scenario_live_open(ngx_http_request_t *r,
    json_t *doc);
static void ngx_scenario_live_tell(ngx_scenario_live_t *lv,
    ngx_uint_t watching);
static void ngx_scenario_live_message(ngx_http_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_scenario_live_heard(void *data, ngx_str_t *channel,
    ngx_str_t *message);
static void ngx_scenario_live_hear(ngx_scenario_live_t *lv, u_char *p,
    u_char *last);
static void ngx_scenario_live_revoked(void *data);
static void ngx_scenario_live_closed(ngx_http_ws_t *ws, ngx_uint_t code);


static const char  ngx_scenario_live_sql[] =
    "SELECT status, body FROM review_watch($1, $2)";


ngx_int_t
ngx_scenario_live_handler(ngx_http_request_t *r)
{
    ngx_int_t            rc;
    ngx_str_t            id;
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_scenario_unauthorized(r);
    }

    rc = ngx_http_ws_check(r);
    if (rc != NGX_OK) {
        return ngx_http_json_error(r, rc,
                                   rc == NGX_HTTP_NOT_ALLOWED
                                   ? "method_not_allowed" : "bad_request",
                                   "a WebSocket upgrade is expected here");
    }

    if (ngx_scenario_session_id(r, &id) != NGX_OK || id.len > 18) {
        return ngx_scenario_not_found(r, "session");
    }

    /* a slot among the user's and the address's open chats, as a chat */
    return ngx_scenario_chat_admit_then(r, ngx_scenario_live_check);
}


static ngx_int_t
ngx_scenario_live_check(ngx_http_request_t *r)
{
    ngx_str_t            params[2];
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    params[0] = ctx->user_id_text;
    (void) ngx_scenario_session_id(r, &params[1]);

    return ngx_scenario_pg(r, ngx_scenario_live_sql, 2, params,
                           ngx_scenario_live_checked);
}


/* (200, the session) opens the socket; an error is answered as JSON */

static void
ngx_scenario_live_checked(ngx_http_request_t *r, PGresult *res, ngx_int_t rc)
{
    json_t  *doc;

    if (rc != NGX_OK || !ngx_pg_result_ok(res) || PQntuples(res) != 1
        || PQgetisnull(res, 0, 1) || ngx_pg_int(res, 0, 0) != NGX_HTTP_OK)
    {
        ngx_scenario_call_done(r, res, rc);
        return;
    }

    doc = ngx_scenario_call_body(r, res);

    if (doc == NULL || ngx_scenario_live_open(r, doc) != NGX_OK) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the WebSocket holds the request now */
    ngx_http_finalize_request(r, NGX_DONE);
}


static ngx_int_t
ngx_scenario_live_open(ngx_http_request_t *r, json_t *doc)
{
    u_char                   *p, raw[8], hex[16];
    char                     *text;
    json_t                   *id;
    ngx_scenario_live_t      *lv;
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    lv = ngx_pcalloc(r->pool, sizeof(ngx_scenario_live_t));
    id = json_object_get(doc, "session_id");
    p = ngx_pnalloc(r->pool, sizeof("chat:") + NGX_INT64_LEN
                             + sizeof("live.") + sizeof(hex));
    if (lv == NULL || p == NULL || !json_is_integer(id)) {
        return NGX_ERROR;
    }

    lv->request = r;
    lv->smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);
    lv->watcher = json_object_get(doc, "watcher");

    lv->channel.data = p;
    p = ngx_sprintf(p, "chat:%L", (int64_t) json_integer_value(id));
    lv->channel.len = p - lv->channel.data;

    /* not this worker's chats' instance: they hear it through Redis */
    randombytes_buf(raw, sizeof(raw));
    ngx_hex_dump(hex, raw, sizeof(raw));

    lv->origin.data = p;
    p = ngx_sprintf(p, "live.%*s", sizeof(hex), hex);
    lv->origin.len = p - lv->origin.data;

    lv->ws = ngx_http_ws_accept(r, &slcf->chat_ws, ngx_scenario_live_message,
                                ngx_scenario_live_closed, lv);
    if (lv->ws == NULL) {
        return NGX_ERROR;
    }

    /* a logout, a role change or a removal ends the watch, as a chat */
    if (ngx_scenario_watch_login(r, ngx_scenario_live_revoked, lv)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    lv->sub = ngx_redis_subscribe(lv->smcf->redis_pool, &lv->channel,
                                  ngx_scenario_live_heard, lv);

    /* "ready", as a chat's, with "watch": true and who is watched */
    if (json_object_set_new(doc, "type", json_string("ready")) != 0
        || json_object_set_new(doc, "watch", json_true()) != 0)
    {
        return NGX_ERROR;
    }

    text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_http_ws_send_text(lv->ws, (u_char *) text, ngx_strlen(text));
    free(text);

    ngx_scenario_live_tell(lv, 1);

    return NGX_OK;
}


/* "<origin> {"type":"watching","watching":bool,"watcher":{...}}" */

static void
ngx_scenario_live_tell(ngx_scenario_live_t *lv, ngx_uint_t watching)
{
    u_char      *msg;
    char        *text;
    json_t      *ev;
    size_t       len, argvlen[3];
    const char  *argv[3];

    ev = json_pack("{s:s,s:b,s:O}", "type", "watching",
                   "watching", (int) watching, "watcher",
                   lv->watcher ? lv->watcher : json_null());
    text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);

    if (text == NULL) {
        return;
    }

    len = lv->origin.len + 1 + ngx_strlen(text);
    msg = ngx_alloc(len, ngx_cycle->log);

    if (msg != NULL) {
        ngx_memcpy(ngx_cpymem(msg, lv->origin.data, lv->origin.len), " ", 1);
        ngx_memcpy(msg + lv->origin.len + 1, text, ngx_strlen(text));

        argv[0] = "PUBLISH";
        argvlen[0] = 7;
        argv[1] = (char *) lv->channel.data;
        argvlen[1] = lv->channel.len;
        argv[2] = (char *) msg;
        argvlen[2] = len;

        (void) ngx_redis_command(lv->smcf->redis_pool, NULL, NULL, 3, argv,
                                 argvlen);
        ngx_free(msg);
    }

    free(text);
}


/* read-only: whatever the watcher sends ends the watch */

static void
ngx_scenario_live_message(ngx_http_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len)
{
    ngx_http_ws_close(ws, NGX_HTTP_WS_POLICY, "watching is read-only");
}


static void
ngx_scenario_live_heard(void *data, ngx_str_t *channel, ngx_str_t *message)
{
    ngx_scenario_live_t  *lv = data;

    u_char  *p, *eol, *last;

    p = message->data;
    last = message->data + message->len;

    while (p < last && !lv->closed) {
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        ngx_scenario_live_hear(lv, p, eol);
        p = eol + 1;
    }
}


static void
ngx_scenario_live_hear(ngx_scenario_live_t *lv, u_char *p, u_char *last)
{
    u_char     *sp;
    ngx_str_t   from;

    sp = ngx_strlchr(p, last, ' ');

    if (sp == NULL) {
        return;
    }

    from.data = p;
    from.len = sp - p;

    if ((from.len == lv->origin.len
         && ngx_strncmp(p, lv->origin.data, from.len) == 0)
        || ngx_scenario_chat_echo(&from))
    {
        return;
    }

    if (ngx_http_ws_is_open(lv->ws)) {
        (void) ngx_http_ws_send_text(lv->ws, sp + 1, last - sp - 1);
    }

    if (from.len == sizeof(NGX_SCENARIO_RESOLVER) - 1
        && ngx_strncmp(from.data, NGX_SCENARIO_RESOLVER, from.len) == 0)
    {
        ngx_http_ws_close(lv->ws, NGX_HTTP_WS_NORMAL, "resolved");
    }
}


static void
ngx_scenario_live_revoked(void *data)
{
    ngx_scenario_live_t  *lv = data;

    if (!lv->closed) {
        ngx_http_ws_close(lv->ws, NGX_HTTP_WS_POLICY,
                          "the session has ended");
    }
}


static void
ngx_scenario_live_closed(ngx_http_ws_t *ws, ngx_uint_t code)
{
    ngx_scenario_live_t  *lv;

    lv = ngx_http_ws_data(ws);
    lv->closed = 1;

    if (lv->sub) {
        ngx_redis_unsubscribe(lv->sub);
        lv->sub = NULL;
    }

    ngx_scenario_live_tell(lv, 0);

    /* the slot is free at once, not when the closing handshake ends */
    ngx_scenario_chat_leave(lv->request);

    ngx_http_ws_release(ws);
}
