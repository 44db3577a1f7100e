/*
 * Scenario authoring: GET and POST /authoring/scenarios, GET and PUT
 * /authoring/scenarios/{id}, POST /authoring/scenarios/{id}/publish,
 * .../archive and .../try.
 *
 * The fields are checked here (ngx_scenario_fields.c: a 400 names the
 * field); the caller's role and organization are checked by the one query
 * each endpoint makes (sql/023), so another organization's scenario is
 * not found.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


static ngx_int_t ngx_scenario_authoring_check(ngx_http_request_t *r,
    json_t *body, ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc);


/* GET: the organization's scenarios; POST: a new draft */
static ngx_scenario_route_t  ngx_scenario_authoring_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM author_list($1)",
      0, NULL, NULL },
    { NGX_HTTP_POST, NULL,
      "SELECT status, body FROM author_create($1, $2::jsonb)",
      0, ngx_scenario_authoring_check, NULL }
};

/* GET: one scenario with its versions; PUT: every field, a new version */
static ngx_scenario_route_t  ngx_scenario_authoring_scenario_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM author_get($1, $2)",
      1, NULL, NULL },
    { NGX_HTTP_PUT, NULL,
      "SELECT status, body FROM author_update($1, $2, $3::jsonb)",
      1, ngx_scenario_authoring_check, NULL }
};

static ngx_scenario_route_t  ngx_scenario_authoring_action_routes[] = {
    { NGX_HTTP_POST, "publish",
      "SELECT status, body FROM author_set_status($1, $2, 'published')",
      1, NULL, NULL },
    { NGX_HTTP_POST, "archive",
      "SELECT status, body FROM author_set_status($1, $2, 'archived')",
      1, NULL, NULL },
    { NGX_HTTP_POST, "try", "SELECT status, body FROM author_try($1, $2)",
      1, NULL, NULL }
};


ngx_scenario_api_t  ngx_scenario_authoring_api =
    ngx_scenario_api(ngx_scenario_authoring_routes,
                     "GET, HEAD, POST", "scenario");

ngx_scenario_api_t  ngx_scenario_authoring_scenario_api =
    ngx_scenario_api(ngx_scenario_authoring_scenario_routes,
                     "GET, HEAD, PUT", "scenario");

ngx_scenario_api_t  ngx_scenario_authoring_action_api =
    ngx_scenario_api(ngx_scenario_authoring_action_routes, "POST", "scenario");


/* the scenario, every field checked, goes to Postgres as one document */

static ngx_int_t
ngx_scenario_authoring_check(ngx_http_request_t *r, json_t *body,
    ngx_str_t *params, ngx_uint_t *n, ngx_int_t *rc)
{
    u_char  field[96], msg[256];

    if (ngx_scenario_fields_check(body, field, sizeof(field), msg,
                                  sizeof(msg))
        != NGX_OK)
    {
        *rc = ngx_scenario_field_error(r, (char *) field, (char *) msg);
        return NGX_DECLINED;
    }

    return ngx_scenario_check_json(r, body, params, n, rc);
}
