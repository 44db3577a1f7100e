/*
 * Resolve, progress and the leaderboard: POST /sessions/{id}/resolve,
 * GET /me/progress, GET /leaderboard?period=week|all.
 *
 * resolve: the transcript (Postgres) -> the deterministic assessment (C) ->
 *          the model's grading, blended in when it is sane -> game_resolve
 *          (Postgres: one idempotent transaction for the assessment, XP,
 *          level, streak and achievements) -> Redis: leaderboards, the
 *          profile cache, and "resolved" to the session's chat connections.
 *
 * Postgres holds the truth; Redis holds the leaderboards' sorted sets,
 * rebuilt from Postgres when they are missing.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"
#include "ngx_scenario_assess.h"
#include "ngx_scenario_judge.h"


#define NGX_SCENARIO_BOARD_SIZE  20


typedef struct {
    json_t                          *rules;
    json_t                          *assessment;
    json_t                          *messages;
    json_t                          *scenario;
    ngx_scenario_assess_msg_t       *msgs;
    ngx_uint_t                       nmsgs;
    ngx_scenario_assess_scenario_t   sc;
    ngx_str_t                        goal;
    ngx_str_t                        good;
    ngx_str_t                        session_id;
    ngx_str_t                        result;   /* game_resolve's document */
    json_t                          *board;    /* the leaderboard's */
    ngx_model_call_t                *call;
    ngx_msec_t                       started;
    ngx_uint_t                       week;     /* leaderboard period */
} ngx_scenario_resolve_t;


static void ngx_scenario_resolve_loaded(ngx_http_request_t *r,
    PGresult *res, ngx_int_t rc);
static ngx_int_t ngx_scenario_resolve_transcript(ngx_http_request_t *r,
    ngx_scenario_resolve_t *rs, PGresult *res);
static void ngx_scenario_resolve_judge(ngx_http_request_t *r,
    ngx_scenario_resolve_t *rs);
static void ngx_scenario_resolve_delta(void *data, u_char *text,
    size_t len);
static void ngx_scenario_resolve_judged(void *data, ngx_int_t rc,
    ngx_uint_t status, time_t retry_after, ngx_str_t *error,
    ngx_str_t *content);
static void ngx_scenario_resolve_grade(ngx_http_request_t *r,
    ngx_scenario_resolve_t *rs, ngx_str_t *answer, const char *failed);
static void ngx_scenario_resolve_store(ngx_http_request_t *r,
    ngx_scenario_resolve_t *rs);
static void ngx_scenario_resolve_stored(ngx_http_request_t *r,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_resolve_totals(ngx_http_request_t *r,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_resolve_answer(ngx_http_request_t *r);
static json_t *ngx_scenario_resolve_shape(json_t *in);
static json_t *ngx_scenario_resolve_pack(json_t *in, json_t *p, json_t *d,
    json_t *w);
static void ngx_scenario_resolve_tell(ngx_http_request_t *r,
    ngx_scenario_resolve_t *rs);

static void ngx_scenario_board_cached(ngx_http_request_t *r,
    redisReply *reply, ngx_int_t rc);
static void ngx_scenario_board_loaded(ngx_http_request_t *r,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_board_rebuilt(ngx_http_request_t *r,
    PGresult *res, ngx_int_t rc);
static u_char *ngx_scenario_board_key(ngx_pool_t *pool, ngx_uint_t week);


static const char  ngx_scenario_resolve_sql[] =
    "SELECT se.status, s.success_criteria, s.weights, s.target_turns, "
    "s.difficulty, s.goal, s.good_resolution, "
    "coalesce((SELECT json_agg(json_build_object('role', m.role, "
    "'content', m.content, "
    "'at', (extract(epoch FROM m.created_at) * 1000)::bigint) "
    "ORDER BY m.seq) FROM messages m WHERE m.session_id = se.id), '[]') "
    "FROM sessions se " NGX_SCENARIO_SESSION_SCENARIO
    "WHERE se.id = $1 AND se.user_id = $2 " NGX_SCENARIO_SESSION_OPEN;

/* the document, and whether it is game_resolve's {"error":"conflict"} */
static const char  ngx_scenario_game_resolve_sql[] =
    "SELECT g, g ? 'error' FROM game_resolve($1, $2, $3::jsonb) AS g";

static const char  ngx_scenario_totals_sql[] =
    "SELECT u.xp, u.level, u.display_name, "
    "(SELECT coalesce(sum(l.amount), 0) FROM xp_ledger l "
    "WHERE l.user_id = u.id AND l.created_at >= "
    "date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') "
    "FROM users u WHERE u.id = $1 "
    /* a trial (sql/021) earns nothing: the boards stay as they are */
    "AND NOT EXISTS (SELECT 1 FROM sessions t WHERE t.id = $2 AND t.trial)";

static const char  ngx_scenario_progress_sql[] =
    "SELECT game_progress($1)";

static const char  ngx_scenario_board_sql[] =
    "SELECT game_leaderboard($1, $2)";

static const char  ngx_scenario_board_rows_sql[] =
    "SELECT user_id, display_name, xp, level "
    "FROM game_leaderboard_rows($1)";

/*
 * KEYS: the board, the users' hash, the board's "built" mark.  nil when the
 * board was never built (or Redis lost it): Postgres answers and rebuilds.
 */
static ngx_str_t  ngx_scenario_board_script = ngx_string(
    "if redis.call('EXISTS', KEYS[3]) == 0 then return false end "
    "local ids = redis.call('ZREVRANGE', KEYS[1], 0, ARGV[1] - 1, "
    "'WITHSCORES') "
    "local out = {} "
    "for i = 1, #ids, 2 do "
    "out[#out + 1] = ids[i + 1] "
    "out[#out + 1] = redis.call('HGET', KEYS[2], ids[i]) or '' end "
    "return out");

static ngx_str_t  ngx_scenario_board_entry_script = ngx_string(
    "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) "
    "return redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])");

/* a user's entry on both boards: absolute figures, so repeats are exact */
static ngx_str_t  ngx_scenario_board_award_script = ngx_string(
    "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) "
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) "
    "redis.call('EXPIRE', KEYS[2], 1209600) "
    "return redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])");


/* resolve */


ngx_int_t
ngx_scenario_resolve_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_str_t                params[2];
    ngx_scenario_ctx_t      *ctx;
    ngx_scenario_resolve_t  *rs;

    if (r->method != NGX_HTTP_POST) {
        return ngx_scenario_method_not_allowed(r, "POST");
    }

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_scenario_unauthorized(r);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rs = ngx_pcalloc(r->pool, sizeof(ngx_scenario_resolve_t));
    if (rs == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->resolve = rs;

    if (ngx_scenario_session_id(r, &rs->session_id) != NGX_OK) {
        return ngx_scenario_not_found(r, "session");
    }

    params[0] = rs->session_id;
    params[1] = ctx->user_id_text;

    rc = ngx_scenario_pg(r, ngx_scenario_resolve_sql, 2, params,
                         ngx_scenario_resolve_loaded);

    return ngx_scenario_wait(r, rc, "postgres");
}


static void
ngx_scenario_resolve_loaded(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    ngx_str_t                  status;
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_resolve_t    *rs;
    ngx_scenario_loc_conf_t   *slcf;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    if (PQntuples(res) != 1) {
        ngx_scenario_finalize(r, ngx_scenario_not_found(r, "session"));
        return;
    }

    ctx = ngx_scenario_ctx(r);
    rs = ctx->resolve;

    status = ngx_pg_value(res, 0, 0);

    /* resolved already: game_resolve answers as the first time */
    if (status.len == sizeof("resolved") - 1
        && ngx_strncmp(status.data, "resolved", status.len) == 0)
    {
        rs->assessment = ngx_http_json_own(r->pool, json_object());
        if (rs->assessment == NULL) {
            ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_scenario_resolve_store(r, rs);
        return;
    }

    if (ngx_scenario_resolve_transcript(r, rs, res) != NGX_OK) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rs->rules = ngx_http_json_own(r->pool,
                    ngx_scenario_assess(&rs->sc, rs->msgs, rs->nmsgs));
    if (rs->rules == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    if (slcf->judge) {
        ngx_scenario_resolve_judge(r, rs);
        return;
    }

    ngx_scenario_resolve_grade(r, rs, NULL, NULL);
}


/* the transcript and the scenario's rubric, for the assessment */

static ngx_int_t
ngx_scenario_resolve_transcript(ngx_http_request_t *r,
    ngx_scenario_resolve_t *rs, PGresult *res)
{
    size_t      i;
    json_t     *m, *criteria, *weights;
    ngx_str_t   v;

    v = ngx_pg_value(res, 0, 1);
    criteria = ngx_http_json_own(r->pool,
                                 json_loadb((char *) v.data, v.len, 0, NULL));
    v = ngx_pg_value(res, 0, 2);
    weights = ngx_http_json_own(r->pool,
                                json_loadb((char *) v.data, v.len, 0, NULL));
    v = ngx_pg_value(res, 0, 7);
    rs->messages = ngx_http_json_own(r->pool,
                                 json_loadb((char *) v.data, v.len, 0, NULL));

    if (criteria == NULL || weights == NULL || rs->messages == NULL) {
        return NGX_ERROR;
    }

    rs->sc.criteria = criteria;
    rs->sc.weights = weights;
    rs->sc.target_turns = ngx_pg_int(res, 0, 3);

    v = ngx_pg_value(res, 0, 4);
    rs->sc.difficulty.data = ngx_pstrdup(r->pool, &v);
    rs->sc.difficulty.len = v.len;

    v = ngx_pg_value(res, 0, 5);
    rs->goal.data = ngx_pstrdup(r->pool, &v);
    rs->goal.len = v.len;

    v = ngx_pg_value(res, 0, 6);
    rs->good.data = ngx_pstrdup(r->pool, &v);
    rs->good.len = v.len;
    rs->sc.good_resolution = rs->good;

    rs->nmsgs = json_array_size(rs->messages);
    rs->msgs = ngx_pcalloc(r->pool, (rs->nmsgs + 1)
                                    * sizeof(ngx_scenario_assess_msg_t));
    if (rs->msgs == NULL) {
        return NGX_ERROR;
    }

    /* the strings stay in rs->messages, owned by the request's pool */
    json_array_foreach(rs->messages, i, m) {
        rs->msgs[i].role.data = (u_char *) json_string_value(
                                    json_object_get(m, "role"));
        rs->msgs[i].role.len = json_string_length(json_object_get(m, "role"));
        rs->msgs[i].content.data = (u_char *) json_string_value(
                                       json_object_get(m, "content"));
        rs->msgs[i].content.len = json_string_length(
                                      json_object_get(m, "content"));
        rs->msgs[i].at_ms = json_integer_value(json_object_get(m, "at"));
    }

    return NGX_OK;
}


/* the model grades the transcript too; nonsense leaves the rules alone */

static void
ngx_scenario_resolve_judge(ngx_http_request_t *r, ngx_scenario_resolve_t *rs)
{
    json_t                   *req;
    ngx_int_t                 rc;
    ngx_str_t                 body;
    ngx_scenario_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_scenario_module);

    req = ngx_scenario_judge_request(&rs->sc, &slcf->model_name,
                                     &rs->goal, &rs->good, rs->msgs,
                                     rs->nmsgs);
    if (req == NULL) {
        goto rules_only;
    }

    /* the model client reads a stream */
    json_object_set_new(req, "stream", json_true());

    rc = ngx_http_json_dump(r->pool, req, &body);
    json_decref(req);

    if (rc != NGX_OK) {
        goto rules_only;
    }

    rs->started = ngx_current_msec;
    rs->call = ngx_model_call(r, &slcf->model, &body,
                              ngx_scenario_resolve_delta,
                              ngx_scenario_resolve_judged, r);
    if (rs->call != NULL) {
        return;
    }

rules_only:

    ngx_scenario_resolve_grade(r, rs, NULL, "it could not be asked");
}


static void
ngx_scenario_resolve_delta(void *data, u_char *text, size_t len)
{
    /* the whole answer comes with the end of the call */
}


static void
ngx_scenario_resolve_judged(void *data, ngx_int_t rc, ngx_uint_t status,
    time_t retry_after, ngx_str_t *error, ngx_str_t *content)
{
    ngx_http_request_t  *r = data;

    ngx_connection_t        *c;
    ngx_scenario_ctx_t      *ctx;
    ngx_scenario_resolve_t  *rs;

    c = r->connection;
    ctx = ngx_scenario_ctx(r);
    rs = ctx->resolve;
    rs->call = NULL;

    ngx_scenario_model_observe(r, rc, rs->started);

    if (rc == NGX_OK) {
        ngx_scenario_resolve_grade(r, rs, content, NULL);

    } else {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "the model's grading failed (status %ui): %V",
                      status, error);
        ngx_scenario_resolve_grade(r, rs, NULL, "the model's call failed");
    }

    ngx_http_run_posted_requests(c);
}


/* the judge's answer, checked and blended; without one, the rules alone */

static void
ngx_scenario_resolve_grade(ngx_http_request_t *r, ngx_scenario_resolve_t *rs,
    ngx_str_t *answer, const char *failed)
{
    rs->assessment = ngx_http_json_own(r->pool,
                         ngx_scenario_judge_apply(rs->rules, &rs->sc,
                                                  rs->msgs, rs->nmsgs,
                                                  answer, failed));
    if (rs->assessment == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_scenario_resolve_store(r, rs);
}


static void
ngx_scenario_resolve_store(ngx_http_request_t *r, ngx_scenario_resolve_t *rs)
{
    ngx_int_t            rc;
    ngx_str_t            params[3];
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    if (ngx_http_json_dump(r->pool, rs->assessment, &params[2]) != NGX_OK) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    params[0] = rs->session_id;
    params[1] = ctx->user_id_text;

    rc = ngx_scenario_pg(r, ngx_scenario_game_resolve_sql, 3, params,
                         ngx_scenario_resolve_stored);

    if (rc != NGX_OK) {
        ngx_scenario_fail(r, rc, "postgres");
    }
}


static void
ngx_scenario_resolve_stored(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    ngx_str_t                v, params[2];
    ngx_scenario_ctx_t      *ctx;
    ngx_scenario_resolve_t  *rs;

    if (rc != NGX_OK || !ngx_pg_result_ok(res)) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    v = ngx_pg_value(res, 0, 0);

    if (v.data == NULL) {
        ngx_scenario_finalize(r, ngx_scenario_not_found(r, "session"));
        return;
    }

    if (ngx_pg_value(res, 0, 1).data[0] == 't') {
        ngx_scenario_finalize(r, ngx_http_json_error(r, NGX_HTTP_CONFLICT,
                              "conflict",
                              "the session has no message of yours yet"));
        return;
    }

    ctx = ngx_scenario_ctx(r);
    rs = ctx->resolve;

    rs->result.data = ngx_pstrdup(r->pool, &v);
    rs->result.len = v.len;

    if (rs->result.data == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the fast views follow the truth */
    params[0] = ctx->user_id_text;
    params[1] = rs->session_id;

    rc = ngx_scenario_pg(r, ngx_scenario_totals_sql, 2, params,
                         ngx_scenario_resolve_totals);
    if (rc != NGX_OK) {
        ngx_scenario_resolve_answer(r);
    }
}


static void
ngx_scenario_resolve_totals(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    ngx_str_t            xp, level, name, wxp;
    ngx_scenario_ctx_t  *ctx;

    ctx = ngx_scenario_ctx(r);

    if (rc == NGX_OK && ngx_pg_result_ok(res) && PQntuples(res) == 1) {
        xp = ngx_pg_value(res, 0, 0);
        level = ngx_pg_value(res, 0, 1);
        name = ngx_pg_value(res, 0, 2);
        wxp = ngx_pg_value(res, 0, 3);

        ngx_scenario_board_award(r, &ctx->user_id_text, &xp, &wxp, &name,
                                 ngx_atoi(level.data, level.len));
    }

    ngx_scenario_resolve_answer(r);
}


/*
 * A user's entry on both boards, with absolute figures (a resolve's, or
 * a review override's, ngx_scenario_review.c); nobody waits for it.
 */

void
ngx_scenario_board_award(ngx_http_request_t *r, ngx_str_t *id, ngx_str_t *xp,
    ngx_str_t *wxp, ngx_str_t *name, ngx_int_t level)
{
    u_char                    *all, *week;
    json_t                    *user;
    char                      *doc;
    ngx_str_t                  keys[3], args[4];
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    all = ngx_scenario_board_key(r->pool, 0);
    week = ngx_scenario_board_key(r->pool, 1);

    user = json_pack("{s:I,s:s%,s:I}",
                     "id", (json_int_t) ngx_atoi(id->data, id->len),
                     "display_name", (char *) name->data, name->len,
                     "level", (json_int_t) level);
    doc = user ? json_dumps(user, JSON_COMPACT) : NULL;
    json_decref(user);

    if (all && week && doc) {
        keys[0].data = all;
        keys[0].len = ngx_strlen(all);
        keys[1].data = week;
        keys[1].len = ngx_strlen(week);
        ngx_str_set(&keys[2], "leaderboard:users");

        args[0] = *id;
        args[1] = *xp;
        args[2] = *wxp;
        args[3].data = (u_char *) doc;
        args[3].len = ngx_strlen(doc);

        (void) ngx_redis_eval(smcf->redis_pool, NULL, NULL,
                              &ngx_scenario_board_award_script, 3, keys, 4,
                              args);
    }

    free(doc);
}


static void
ngx_scenario_resolve_answer(ngx_http_request_t *r)
{
    json_t                  *in, *out;
    ngx_scenario_ctx_t      *ctx;
    ngx_scenario_resolve_t  *rs;

    ctx = ngx_scenario_ctx(r);
    rs = ctx->resolve;

    ngx_scenario_user_forget(r, &ctx->user_id_text);
    ngx_scenario_resolve_tell(r, rs);

    /* Postgres's jsonb sorts keys its own way: answer in API.md's order */

    in = ngx_http_json_own(r->pool, json_loadb((char *) rs->result.data,
                                               rs->result.len, 0, NULL));
    out = in ? ngx_http_json_own(r->pool, ngx_scenario_resolve_shape(in))
             : NULL;

    if (out == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_scenario_finalize(r, ngx_http_json_send(r, NGX_HTTP_OK, out));
}


static json_t *
ngx_scenario_resolve_shape(json_t *in)
{
    json_t      *p, *d, *w, *out, *op, *v;
    ngx_uint_t   i;

    /* additive keys of issue 8 (sql/008, sql/050), after API.md's */
    static const char  *extra[] = { "criteria", "pass_mark", "passed",
                                    "review_suggested", "manipulation",
                                    "judge" };

    p = json_object_get(in, "performance");
    d = json_object_get(p, "dimensions");
    w = json_object_get(in, "rewards");

    out = ngx_scenario_resolve_pack(in, p, d, w);
    op = json_object_get(out, "performance");

    for (i = 0; op && i < sizeof(extra) / sizeof(extra[0]); i++) {
        v = json_object_get(p, extra[i]);

        if (v && json_object_set(op, extra[i], v) != 0) {
            json_decref(out);
            return NULL;
        }
    }

    return out;
}


static json_t *
ngx_scenario_resolve_pack(json_t *in, json_t *p, json_t *d, json_t *w)
{
    return json_pack("{s:O,s:{s:O,s:{s:O,s:O,s:O,s:O},s:O,s:O},"
                     "s:{s:O,s:O,s:O,s:O,s:O}}",
                     "session_id", json_object_get(in, "session_id"),
                     "performance",
                     "overall", json_object_get(p, "overall"),
                     "dimensions",
                     "empathy", json_object_get(d, "empathy"),
                     "clarity", json_object_get(d, "clarity"),
                     "resolution", json_object_get(d, "resolution"),
                     "efficiency", json_object_get(d, "efficiency"),
                     "feedback", json_object_get(p, "feedback"),
                     "metrics", json_object_get(p, "metrics"),
                     "rewards",
                     "xp_awarded", json_object_get(w, "xp_awarded"),
                     "xp_total", json_object_get(w, "xp_total"),
                     "level", json_object_get(w, "level"),
                     "level_up", json_object_get(w, "level_up"),
                     "achievements_unlocked",
                     json_object_get(w, "achievements_unlocked"));
}


/* every chat connection of the session hears it, and closes */

static void
ngx_scenario_resolve_tell(ngx_http_request_t *r, ngx_scenario_resolve_t *rs)
{
    u_char                    *channel;
    size_t                     argvlen[3];
    const char                *argv[3];
    ngx_scenario_main_conf_t  *smcf;

    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    channel = ngx_pnalloc(r->pool, sizeof("chat:") + rs->session_id.len);
    if (channel == NULL) {
        return;
    }

    argv[0] = "PUBLISH";
    argvlen[0] = 7;
    argv[1] = (char *) channel;
    argvlen[1] = ngx_sprintf(channel, "chat:%V", &rs->session_id) - channel;
    argv[2] = NGX_SCENARIO_RESOLVER " {\"type\":\"resolved\"}";
    argvlen[2] = ngx_strlen(argv[2]);

    (void) ngx_redis_command(smcf->redis_pool, NULL,
                             NULL, 3, argv, argvlen);
}


/* GET /me/progress */


ngx_int_t
ngx_scenario_progress_handler(ngx_http_request_t *r)
{
    ngx_scenario_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD");
    }

    ctx = ngx_scenario_user(r);
    if (ctx == NULL) {
        return ngx_scenario_unauthorized(r);
    }

    return ngx_scenario_query(r, ngx_scenario_progress_sql, 1,
                              &ctx->user_id_text);
}


/* GET /leaderboard?period=week|all: Redis's sorted sets, or Postgres */


ngx_int_t
ngx_scenario_leaderboard_handler(ngx_http_request_t *r)
{
    u_char                  *key, *mark, n[NGX_INT_T_LEN];
    ngx_int_t                rc;
    ngx_str_t                period, keys[3], arg;
    ngx_scenario_ctx_t      *ctx;
    ngx_scenario_resolve_t  *rs;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_scenario_method_not_allowed(r, "GET, HEAD");
    }

    ctx = ngx_scenario_user(r);
    rs = ngx_pcalloc(r->pool, sizeof(ngx_scenario_resolve_t));

    if (ctx == NULL || rs == NULL) {
        return ngx_scenario_unauthorized(r);
    }

    ctx->resolve = rs;

    if (ngx_http_arg(r, (u_char *) "period", 6, &period) != NGX_OK
        || (period.len == 3 && ngx_strncmp(period.data, "all", 3) == 0))
    {
        rs->week = 0;

    } else if (period.len == 4 && ngx_strncmp(period.data, "week", 4) == 0) {
        rs->week = 1;

    } else {
        return ngx_http_json_error(r, NGX_HTTP_BAD_REQUEST, "bad_request",
                                   "period must be \"week\" or \"all\"");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    key = ngx_scenario_board_key(r->pool, rs->week);
    mark = key ? ngx_pnalloc(r->pool, ngx_strlen(key) + sizeof(":built"))
               : NULL;
    if (mark == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    keys[0].data = key;
    keys[0].len = ngx_strlen(key);
    ngx_str_set(&keys[1], "leaderboard:users");
    keys[2].data = mark;
    keys[2].len = ngx_sprintf(mark, "%s:built%Z", key) - mark - 1;

    arg.data = n;
    arg.len = ngx_sprintf(n, "%d", NGX_SCENARIO_BOARD_SIZE) - n;

    rc = ngx_scenario_redis_eval(r, ngx_scenario_board_cached,
                                 &ngx_scenario_board_script, 3, keys, 1,
                                 &arg);

    return ngx_scenario_wait(r, rc, "redis");
}


static void
ngx_scenario_board_cached(ngx_http_request_t *r, redisReply *reply,
    ngx_int_t rc)
{
    u_char                   n[NGX_INT_T_LEN];
    json_t                  *board, *user, *entry;
    size_t                   i;
    ngx_int_t                rank, xp, prev;
    ngx_str_t                params[2];
    ngx_scenario_ctx_t      *ctx;
    ngx_scenario_resolve_t  *rs;

    ctx = ngx_scenario_ctx(r);
    rs = ctx->resolve;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ARRAY) {
        /* not built yet, or Redis lost it: Postgres answers, and rebuilds */
        ngx_str_set(&params[0], "all");
        if (rs->week) {
            ngx_str_set(&params[0], "week");
        }

        params[1].data = n;
        params[1].len = ngx_sprintf(n, "%d", NGX_SCENARIO_BOARD_SIZE) - n;

        rc = ngx_scenario_pg(r, ngx_scenario_board_sql, 2, params,
                             ngx_scenario_board_loaded);
        if (rc != NGX_OK) {
            ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        }

        return;
    }

    board = ngx_http_json_own(r->pool, json_array());
    if (board == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* pairs of the score and the user's JSON ({"display_name","level"}) */

    rank = 0;
    prev = -1;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        xp = ngx_atoi((u_char *) reply->element[i]->str,
                      reply->element[i]->len);
        user = json_loadb(reply->element[i + 1]->str,
                          reply->element[i + 1]->len, 0, NULL);
        if (user == NULL || xp == NGX_ERROR) {
            json_decref(user);
            continue;
        }

        /* equal XP, equal rank */
        if (xp != prev) {
            rank = json_array_size(board) + 1;
            prev = xp;
        }

        entry = json_pack("{s:I,s:{s:O,s:O},s:I,s:O}",
                          "rank", (json_int_t) rank,
                          "user", "id", json_object_get(user, "id"),
                          "display_name",
                          json_object_get(user, "display_name"),
                          "xp", (json_int_t) xp,
                          "level", json_object_get(user, "level"));
        json_decref(user);

        if (entry) {
            json_array_append_new(board, entry);
        }
    }

    ngx_scenario_finalize(r, ngx_http_json_send(r, NGX_HTTP_OK, board));
}


static void
ngx_scenario_board_loaded(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    json_t                  *json;
    ngx_str_t                v, period;
    ngx_scenario_ctx_t      *ctx;
    ngx_scenario_resolve_t  *rs;

    if (rc != NGX_OK || !ngx_pg_result_ok(res) || PQntuples(res) != 1) {
        ngx_scenario_finalize(r, ngx_scenario_unavailable(r, "postgres"));
        return;
    }

    v = ngx_pg_value(res, 0, 0);

    json = ngx_http_json_own(r->pool,
                             json_loadb((char *) v.data, v.len, 0, NULL));
    if (json == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx = ngx_scenario_ctx(r);
    rs = ctx->resolve;
    rs->board = json;                    /* kept for the answer */

    ngx_str_set(&period, "all");
    if (rs->week) {
        ngx_str_set(&period, "week");
    }

    rc = ngx_scenario_pg(r, ngx_scenario_board_rows_sql, 1, &period,
                         ngx_scenario_board_rebuilt);
    if (rc != NGX_OK) {
        ngx_scenario_finalize(r, ngx_http_json_send(r, NGX_HTTP_OK, json));
    }
}


/* the board's sorted set made anew from the ledger, then the answer */

static void
ngx_scenario_board_rebuilt(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    int                        i, n;
    u_char                    *key, *mark;
    json_t                    *user;
    char                      *doc;
    size_t                     argvlen[5];
    ngx_str_t                  id, name, xp, level, keys[2], args[3];
    const char                *argv[5];
    ngx_scenario_ctx_t        *ctx;
    ngx_scenario_resolve_t    *rs;
    ngx_scenario_main_conf_t  *smcf;

    ctx = ngx_scenario_ctx(r);
    rs = ctx->resolve;
    smcf = ngx_http_get_module_main_conf(r, ngx_scenario_module);

    key = ngx_scenario_board_key(r->pool, rs->week);
    mark = key ? ngx_pnalloc(r->pool, ngx_strlen(key) + sizeof(":built"))
               : NULL;

    if (rc == NGX_OK && ngx_pg_result_ok(res) && mark != NULL) {
        ngx_sprintf(mark, "%s:built%Z", key);
        n = PQntuples(res);

        for (i = 0; i < n; i++) {
            id = ngx_pg_value(res, i, 0);
            name = ngx_pg_value(res, i, 1);
            xp = ngx_pg_value(res, i, 2);
            level = ngx_pg_value(res, i, 3);

            user = json_pack("{s:I,s:s%,s:I}",
                             "id", (json_int_t) ngx_atoi(id.data, id.len),
                             "display_name", (char *) name.data, name.len,
                             "level",
                             (json_int_t) ngx_atoi(level.data, level.len));
            doc = user ? json_dumps(user, JSON_COMPACT) : NULL;
            json_decref(user);

            if (doc == NULL) {
                continue;
            }

            keys[0].data = key;
            keys[0].len = ngx_strlen(key);
            ngx_str_set(&keys[1], "leaderboard:users");

            args[0] = id;
            args[1] = xp;
            args[2].data = (u_char *) doc;
            args[2].len = ngx_strlen(doc);

            (void) ngx_redis_eval(smcf->redis_pool, NULL, NULL,
                                  &ngx_scenario_board_entry_script, 2, keys,
                                  3, args);

            free(doc);
        }

        /* the mark goes last: a board half made is made again */
        argv[0] = "SET";
        argvlen[0] = 3;
        argv[1] = (char *) mark;
        argvlen[1] = ngx_strlen(mark);
        argv[2] = "1";
        argvlen[2] = 1;
        argv[3] = "EX";
        argvlen[3] = 2;
        argv[4] = "1209600";
        argvlen[4] = 7;

        (void) ngx_redis_command(smcf->redis_pool, NULL,
                                 NULL, 5, argv, argvlen);
    }

    ngx_scenario_finalize(r, ngx_http_json_send(r, NGX_HTTP_OK, rs->board));
}


/*
 * "leaderboard:all", or "leaderboard:week:<n>" with n the number of weeks
 * (Monday to Sunday, UTC, as Postgres's date_trunc('week')) since the epoch;
 * 1970-01-01 was a Thursday.
 */

static u_char *
ngx_scenario_board_key(ngx_pool_t *pool, ngx_uint_t week)
{
    u_char  *p;

    p = ngx_pnalloc(pool, sizeof("leaderboard:week:") + NGX_TIME_T_LEN);
    if (p == NULL) {
        return NULL;
    }

    if (!week) {
        ngx_sprintf(p, "leaderboard:all%Z");
        return p;
    }

    ngx_sprintf(p, "leaderboard:week:%T%Z", (ngx_time() / 86400 + 3) / 7);

    return p;
}

