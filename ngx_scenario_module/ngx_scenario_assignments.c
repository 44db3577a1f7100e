/*
 * Assignments: GET and POST /assignments, DELETE /assignments/{id}, and
 * the trainee's GET /me/assignments.  One call each of sql/024, which
 * checks the body and the caller's organization and role, and computes
 * each status from the sessions when it is read (a resolve changes it at
 * once).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


/* GET: the organization's, with progress; POST: assign (trainers) */
static ngx_scenario_route_t  ngx_scenario_assignments_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM assignment_list($1)",
      0, NULL, NULL },
    { NGX_HTTP_POST, NULL,
      "SELECT status, body FROM assignment_create($1, $2::jsonb)",
      0, ngx_scenario_check_json, NULL }
};

static ngx_scenario_route_t  ngx_scenario_assignment_routes[] = {
    { NGX_HTTP_DELETE, NULL,
      "SELECT status, body FROM assignment_cancel($1, $2)",
      1, NULL, NULL }
};

static ngx_scenario_route_t  ngx_scenario_my_assignments_routes[] = {
    { NGX_HTTP_GET, NULL, "SELECT status, body FROM assignment_mine($1)",
      0, NULL, NULL }
};


ngx_scenario_api_t  ngx_scenario_assignments_api =
    ngx_scenario_api(ngx_scenario_assignments_routes,
                     "GET, HEAD, POST", "assignment");

ngx_scenario_api_t  ngx_scenario_assignment_api =
    ngx_scenario_api(ngx_scenario_assignment_routes, "DELETE", "assignment");

ngx_scenario_api_t  ngx_scenario_my_assignments_api =
    ngx_scenario_api(ngx_scenario_my_assignments_routes,
                     "GET, HEAD", "assignment");


