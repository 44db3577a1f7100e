/*
 * The assessment of a practice conversation: a deterministic, explainable
 * grading by rules (always available, same transcript -> same scores), on
 * which the judge (ngx_scenario_judge.h) builds.  Pure computation over
 * jansson values: no I/O, no events, no pools; only ngx_str_t, ngx_int_t
 * and ngx_uint_t from nginx (so that t/assess/ builds it with a few
 * stand-in typedefs).
 */

#ifndef _NGX_SCENARIO_ASSESS_H_INCLUDED_
#define _NGX_SCENARIO_ASSESS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>


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
 *    "noted":N (turns holding a note to the grader, left out),
 *    "weights":{...the four weights used for overall...},
 *    "graded_by":"rules"}
 * NULL only when memory runs out.
 */
json_t *ngx_scenario_assess(ngx_scenario_assess_scenario_t *sc,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n);

/*
 * A criterion the judge credited, its quote verified by ngx_scenario_judge.c:
 * [pos, pos + len) of msgs[msg].content, the trainee's turn-th message.
 */
typedef struct {
    ngx_uint_t  msg;
    ngx_uint_t  turn;        /* 1-based; 0: no credit */
    size_t      pos;
    size_t      len;
} ngx_scenario_assess_credit_t;

/* a trainee turn as the rules read it */
typedef struct {
    ngx_uint_t  msg;         /* index in msgs */
    size_t      len;         /* bytes read: up to a note to the grader */
    ngx_uint_t  noted;       /* it held a note to the grader */
    ngx_uint_t  earns;       /* 0: a keyword list, repeat, copy or filler */
} ngx_scenario_assess_turn_t;


/*
 * ngx_scenario_assess() with the judge's verified credits: credits[i]
 * (one per criterion of the assessment's "criteria", in order; NULL: none)
 * meets criterion i when the rules did not and its turn earns; such a
 * criterion's quote is the judge's, cut at 160 bytes.  Scores follow.
 */
json_t *ngx_scenario_assess_credited(ngx_scenario_assess_scenario_t *sc,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n,
    ngx_scenario_assess_credit_t *credits);

/* The trainee's turns (at most max) into turns; answers how many. */
ngx_uint_t ngx_scenario_assess_turns(ngx_scenario_assess_scenario_t *sc,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n,
    ngx_scenario_assess_turn_t *turns, ngx_uint_t max);

/*
 * overall from the four dimensions (empathy, clarity, resolution,
 * efficiency) and an assessment's "weights", as the rules compute it.
 */
ngx_int_t ngx_scenario_assess_overall(json_t *weights, ngx_int_t *dim);


#endif /* _NGX_SCENARIO_ASSESS_H_INCLUDED_ */
