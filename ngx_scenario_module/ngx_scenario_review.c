/*
 * Review (issue 9, item 4): a trainer's view of the team.  GET
 * /review/team, /review/trainees/{id}, /review/sessions/{id}; POST
 * /review/sessions/{id}/comments and /override; GET /review/export (CSV);
 * and the trainee's own GET /sessions/{id}/review.  One call each of
 * sql/026, which checks the caller's organization and role.
 *
 * Two answers are not the common (status, JSON) one: the export is sent
 * as text/csv (the query writes the CSV), and an override that moved XP
 * also sets the trainee's figures on the leaderboards' cache in Redis,
 * as a resolve does.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"
#include "ngx_http_headers.h"


static void ngx_scenario_review_overridden(ngx_http_request_t *r,
    PGresult *res, ngx_int_t rc);
static void ngx_scenario_review_board(ngx_http_request_t *r, json_t *board);
static void ngx_scenario_review_csv(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc);


static ngx_scenario_route_t  ngx_scenario_review_team_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM review_team($1)",
      0, NULL, NULL }
};

static ngx_scenario_route_t  ngx_scenario_review_trainee_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM review_trainee($1, $2)",
      1, NULL, NULL }
};

static ngx_scenario_route_t  ngx_scenario_review_session_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM review_session($1, $2)",
      1, NULL, NULL }
};

static ngx_scenario_route_t  ngx_scenario_review_action_routes[] = {
    { NGX_HTTP_POST, "comments",
      "SELECT status, body FROM review_comment($1, $2, $3::jsonb)",
      1, ngx_scenario_check_json, NULL },
    { NGX_HTTP_POST, "override",
      "SELECT status, body FROM review_override($1, $2, $3::jsonb)",
      1, ngx_scenario_check_json, ngx_scenario_review_overridden }
};

static ngx_scenario_route_t  ngx_scenario_review_export_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM review_export($1)",
      0, NULL, ngx_scenario_review_csv }
};

static ngx_scenario_route_t  ngx_scenario_session_review_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM review_mine($1, $2)",
      1, NULL, NULL }
};


static ngx_str_t  ngx_scenario_csv_type = ngx_string("text/csv; charset=utf-8");
static ngx_str_t  ngx_scenario_csv_name =
    ngx_string("attachment; filename=\"team-results.csv\"");


ngx_scenario_api_t  ngx_scenario_review_team_api =
    ngx_scenario_api(ngx_scenario_review_team_routes, "GET, HEAD", "team");

ngx_scenario_api_t  ngx_scenario_review_trainee_api =
    ngx_scenario_api(ngx_scenario_review_trainee_routes,
                     "GET, HEAD", "trainee");

ngx_scenario_api_t  ngx_scenario_review_session_api =
    ngx_scenario_api(ngx_scenario_review_session_routes,
                     "GET, HEAD", "session");

ngx_scenario_api_t  ngx_scenario_review_action_api =
    ngx_scenario_api(ngx_scenario_review_action_routes, "POST", "session");

ngx_scenario_api_t  ngx_scenario_review_export_api =
    ngx_scenario_api(ngx_scenario_review_export_routes, "GET, HEAD", "team");

ngx_scenario_api_t  ngx_scenario_session_review_api =
    ngx_scenario_api(ngx_scenario_session_review_routes,
                     "GET, HEAD", "session");


/* the answer without its "board", which goes to the leaderboards */

static void
ngx_scenario_review_overridden(ngx_http_request_t *r, PGresult *res,
    ngx_int_t rc)
{
    json_t  *body, *board;

    if (rc != NGX_OK || !ngx_pg_result_ok(res) || PQntuples(res) != 1
        || PQgetisnull(res, 0, 1))
    {
        ngx_scenario_call_done(r, res, rc);
        return;
    }

    body = ngx_scenario_call_body(r, res);
    if (body == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    board = json_object_get(body, "board");

    if (json_is_object(board)) {
        ngx_scenario_review_board(r, board);
    }

    (void) json_object_del(body, "board");

    ngx_scenario_call_answer(r, ngx_pg_int(res, 0, 0), body);
}


static void
ngx_scenario_review_board(ngx_http_request_t *r, json_t *board)
{
    ngx_str_t  id, xp, wxp, name;

    if (ngx_http_json_string(board, "user_id", &id, 1, 20) != NGX_OK
        || ngx_http_json_string(board, "xp", &xp, 1, 20) != NGX_OK
        || ngx_http_json_string(board, "week_xp", &wxp, 1, 20) != NGX_OK
        || ngx_http_json_string(board, "display_name", &name, 1, 256)
           != NGX_OK)
    {
        return;
    }

    ngx_scenario_board_award(r, &id, &xp, &wxp, &name,
                             json_integer_value(json_object_get(board,
                                                                "level")));
}


/* (200, the CSV) is sent as it is; an error's body is the usual JSON */

static void
ngx_scenario_review_csv(ngx_http_request_t *r, PGresult *res, ngx_int_t rc)
{
    u_char       *p;
    ngx_buf_t    *b;
    ngx_str_t     csv;
    ngx_chain_t   out;

    if (rc != NGX_OK || !ngx_pg_result_ok(res) || PQntuples(res) != 1
        || PQgetisnull(res, 0, 1) || ngx_pg_int(res, 0, 0) != NGX_HTTP_OK)
    {
        ngx_scenario_call_done(r, res, rc);
        return;
    }

    /* the result is freed when this returns */

    csv = ngx_pg_value(res, 0, 1);

    p = ngx_pnalloc(r->pool, csv.len);
    b = ngx_calloc_buf(r->pool);
    if ((p == NULL && csv.len) || b == NULL) {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(p, csv.data, csv.len);

    b->pos = p;
    b->last = p + csv.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_scenario_csv_type;
    r->headers_out.content_type_len = ngx_scenario_csv_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = csv.len;

    if (ngx_http_headers_add(r, "Content-Disposition",
                             &ngx_scenario_csv_name)
        != NGX_OK)
    {
        ngx_scenario_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_scenario_finalize(r, rc);
        return;
    }

    out.buf = b;
    out.next = NULL;

    ngx_scenario_finalize(r, ngx_http_output_filter(r, &out));
}
