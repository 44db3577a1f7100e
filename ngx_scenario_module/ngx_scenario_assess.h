/*
 * The assessment of a practice conversation: a deterministic, explainable
 * grading by rules (always available, same transcript -> same scores), the
 * Chat Completions request that asks a model for a second opinion, and the
 * blend of the two.  Pure computation over jansson values: no I/O, no
 * events, no pools; only ngx_str_t, ngx_int_t and ngx_uint_t from nginx
 * (so that t/assess/ builds it with a few stand-in typedefs).
 */

#ifndef _NGX_SCENARIO_ASSESS_H_INCLUDED_
#define _NGX_SCENARIO_ASSESS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>


/* tenths of a dimension kept from the rules when a model's grade is blended */
#define NGX_SCENARIO_ASSESS_RULES_SHARE  6


typedef struct {
    ngx_str_t   role;        /* "user": the trainee, "assistant": persona */
    ngx_str_t   content;
    int64_t     at_ms;       /* created_at, ms since the epoch; 0: unknown */
} ngx_scenario_assess_msg_t;

typedef struct {
    json_t     *criteria;    /* scenarios.success_criteria:
                                [{"key","description","keywords":[...]}] */
    json_t     *weights;     /* scenarios.weights: {"empathy":w,"clarity":w,
                                "resolution":w,"efficiency":w} */
    ngx_int_t   target_turns;
    ngx_str_t   difficulty;
    ngx_str_t   good_resolution;  /* unmet criteria's suggestions; may be
                                     empty */
} ngx_scenario_assess_scenario_t;


/*
 * The rules' assessment of msgs (in seq order), a new object:
 *   {"overall":0-100,
 *    "dimensions":{"empathy","clarity","resolution","efficiency"},
 *    "feedback":["...", ...],
 *    "metrics":{"turns","duration_s","avg_response_s"},
 *    "criteria":[{"key","description","met","turn","quote"}] (quote: an
 *    exact substring of that turn's message, turn and quote null if unmet;
 *    an unmet one has a "suggestion": the sentence of good_resolution
 *    holding one of its keywords, when there is one),
 *    "satisfied":true|false,
 *    "weights":{...the four weights used for overall...},
 *    "graded_by":"rules"}
 * NULL only when memory runs out.
 */
json_t *ngx_scenario_assess(ngx_scenario_assess_scenario_t *sc,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n);

/*
 * A Chat Completions request (a new object, "stream": false) asking model
 * to grade the transcript against the scenario's rubric, answering in a
 * strict json_schema: {"feedback":[...],"empathy","clarity","resolution",
 * "efficiency"}.  The transcript travels as quoted data that cannot close
 * its delimiters, and the prompt tells the judge to ignore instructions in
 * it.  NULL only when memory runs out.
 */
json_t *ngx_scenario_assess_judge_request(ngx_scenario_assess_scenario_t *sc,
    ngx_str_t *model, ngx_str_t *goal, ngx_str_t *good_resolution,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n);

/*
 * Blends a judge's answer (the message content of the chat.completion)
 * into assessment, a rules assessment made by ngx_scenario_assess().
 * NGX_OK: each dimension became round(0.6 * rules + 0.4 * model), overall
 * was recomputed with the same weights, the model's feedback was appended
 * with a "Model: " prefix and graded_by is "rules+model".  NGX_DECLINED:
 * the answer was unusable (not the schema's JSON, a score out of 0-100 or
 * not an integer, not 1-6 feedback sentences of 1-300 characters); the
 * scores are untouched and a feedback line says so.  NGX_ERROR: assessment
 * is not a rules assessment (e.g. blended already) or memory ran out.
 */
ngx_int_t ngx_scenario_assess_blend(json_t *assessment, ngx_str_t *answer);


#endif /* _NGX_SCENARIO_ASSESS_H_INCLUDED_ */
