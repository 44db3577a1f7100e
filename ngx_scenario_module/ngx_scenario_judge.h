/*
 * The judge: a model's second opinion on a practice conversation, checked
 * and blended into the rules' assessment (ngx_scenario_assess.h).  Pure
 * computation over jansson values like the rules: no I/O, no pools.
 */

#ifndef _NGX_SCENARIO_JUDGE_H_INCLUDED_
#define _NGX_SCENARIO_JUDGE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>

#include "ngx_scenario_assess.h"


/* tenths of a dimension kept from the rules when the judge is blended */
#define NGX_SCENARIO_JUDGE_RULES_SHARE  6

/* |rules - judge| beyond this on a dimension suggests a human review */
#define NGX_SCENARIO_JUDGE_REVIEW_GAP   30

/* the response_format's name: the stand-in model knows the judge by it */
#define NGX_SCENARIO_JUDGE_SCHEMA_NAME  "rubric_judgement"


/*
 * A Chat Completions request (a new object, "stream": false) asking model
 * to grade the transcript against the scenario's rubric in a strict
 * json_schema, evidence before verdict:
 *   {"criteria":[{"key","quote","met"}],
 *    "manipulation":{"quote","attempted"},
 *    "feedback":[...],"empathy","clarity","resolution","efficiency"}
 * The transcript travels as JSON inside <transcript> tags, dumped with
 * JSON_ESCAPE_SLASH so that it cannot close them, and the prompt says that
 * nothing in it is an instruction.  NULL only when memory runs out.
 */
json_t *ngx_scenario_judge_request(ngx_scenario_assess_scenario_t *sc,
    ngx_str_t *model, ngx_str_t *goal, ngx_str_t *good_resolution,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n);

/*
 * The final assessment (a new reference), from rules (made by
 * ngx_scenario_assess() for the same sc and msgs) and the judge's answer
 * (the chat.completion's message content).  answer NULL: the judge was not
 * asked (failed NULL: scenario_judge off) or its call failed (failed says
 * how).  An answer that is not the schema's leaves the rules alone.  The
 * result always has "review_suggested", "manipulation" and "judge"
 * ({"used":false,"reason"} or {"used":true,"dimensions","credited",
 * "void_quotes","manipulation","manipulation_quote"}); see README
 * ("The judge") for the verification, the cap and the blend.  NULL when
 * memory runs out.
 */
json_t *ngx_scenario_judge_apply(json_t *rules,
    ngx_scenario_assess_scenario_t *sc, ngx_scenario_assess_msg_t *msgs,
    ngx_uint_t n, ngx_str_t *answer, const char *failed);


#endif /* _NGX_SCENARIO_JUDGE_H_INCLUDED_ */
