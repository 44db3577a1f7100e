/*
 * The deterministic assessment of a practice conversation.
 *
 * Signals, read from the trainee's messages ("turn N" is the N-th of them)
 * and the persona's last message; phrases match case-insensitively at the
 * start of a word (see ngx_scenario_assess_find):
 *
 *   ack        a reply acknowledging feelings or reassuring ("I understand",
 *              "that must be", "don't worry")
 *   apology    a reply apologizing or owning the failure
 *   warm       replies with either
 *   questions  replies with a question mark
 *   rude       dismissive or rude phrases (each distinct phrase counts)
 *   vague      evasive replies ("we'll look into it", "asap")
 *   steps      replies committing to a next step ("I will", "I've booked"),
 *              unless the same reply is vague
 *   specifics  replies with a number, a time or a sequence ("today", "first")
 *   short/long replies under 4 or over 120 words
 *   criteria   the scenario's success_criteria whose keywords (substrings)
 *              appear in some reply
 *   satisfied  the persona's last message contains "Thank you, that works
 *              for me" (the phrase every seeded persona closes with)
 *   replies    ms between a persona message and the trainee's answer
 *
 * Dimensions, each clamped to 0-100, integer arithmetic only:
 *
 *   empathy    = 25 + 30 if ack + 15 if apology + 10 if warm >= 2
 *                + 5 * min(questions, 4) - 30 * rude - 10 * min(short, 2)
 *   clarity    = 40 + 10 * min(specifics, 3) + 5 * min(questions, 3)
 *                + 15 if the average reply has 8-80 words
 *                - 15 * vague - 10 * min(short, 3) - 15 * min(long, 3)
 *                - 10 * rude
 *   resolution = round(60 * met / criteria)  (no criteria: 20 * min(steps, 3))
 *                + 30 if satisfied + 10 if any step
 *                - 15 * vague - 15 * rude
 *   efficiency = round((7 * pace + 3 * latency) / 10), where
 *                pace = 100 up to target_turns, then 100 points less per
 *                target_turns extra turns; at most 50 when not satisfied;
 *                latency = 100 for an average reply within 30 s, 0 from
 *                300 s, linear between
 *   overall    = round(sum(weight * dimension) / sum(weight)), the
 *                scenario's weights (missing or negative: 1)
 *
 * round() is half up on non-negative integers, so the same transcript
 * always gives the same numbers on every platform.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_scenario_assess.h"


#define NGX_SCENARIO_ASSESS_MAX_CRITERIA  16
#define NGX_SCENARIO_ASSESS_SHORT_WORDS   4       /* fewer words: terse */
#define NGX_SCENARIO_ASSESS_LONG_WORDS    120     /* more: a wall of text */
#define NGX_SCENARIO_ASSESS_QUICK_MS      30000   /* full latency marks */
#define NGX_SCENARIO_ASSESS_LATE_MS       300000  /* no latency marks */
#define NGX_SCENARIO_ASSESS_SLOW_MS       120000  /* a reply worth a remark */
#define NGX_SCENARIO_ASSESS_DEFAULT_TURNS 6
#define NGX_SCENARIO_ASSESS_MAX_TURNS     64      /* turns checked for games */
#define NGX_SCENARIO_ASSESS_NORM          512     /* bytes of a turn compared */
#define NGX_SCENARIO_ASSESS_PERSONA_NORM  4096    /* ... of a persona line */
#define NGX_SCENARIO_ASSESS_SALAD_WORDS   6       /* shorter: never salad */
#define NGX_SCENARIO_ASSESS_SALAD_PCT     15      /* function words below: */
#define NGX_SCENARIO_ASSESS_COPY_WORDS    6       /* a copy this long counts */
#define NGX_SCENARIO_ASSESS_DENSE_WORDS   8       /* shorter: never dense */
#define NGX_SCENARIO_ASSESS_DENSE_PCT     60      /* keyword words from: */
#define NGX_SCENARIO_ASSESS_FILLER_WORDS  30      /* shorter: never filler */
#define NGX_SCENARIO_ASSESS_FILLER_RATIO  40      /* words per on-topic word */
#define NGX_SCENARIO_ASSESS_TOPIC_LEN     5       /* bytes of a topic word */
#define NGX_SCENARIO_ASSESS_QUOTE         72      /* bytes quoted after */
#define NGX_SCENARIO_ASSESS_LEAD          64      /* ... and before a hit */
#define NGX_SCENARIO_ASSESS_DESCRIPTION   160     /* bytes of a criterion */


enum {
    NGX_SCENARIO_ASSESS_EMPATHY = 0,
    NGX_SCENARIO_ASSESS_CLARITY,
    NGX_SCENARIO_ASSESS_RESOLUTION,
    NGX_SCENARIO_ASSESS_EFFICIENCY,
    NGX_SCENARIO_ASSESS_DIMS
};


enum {
    NGX_SCENARIO_ASSESS_VOID_NONE = 0,
    NGX_SCENARIO_ASSESS_VOID_SALAD,
    NGX_SCENARIO_ASSESS_VOID_REPEAT,
    NGX_SCENARIO_ASSESS_VOID_COPY,
    NGX_SCENARIO_ASSESS_VOID_FILLER
};


/* where a signal was seen: quoted back in the feedback */
typedef struct {
    ngx_str_t                     *text;     /* NULL: not seen */
    size_t                         pos;
    size_t                         len;
    ngx_uint_t                     turn;
    ngx_uint_t                     exact;    /* quote [pos, pos + len) */
} ngx_scenario_assess_hit_t;

typedef struct {
    ngx_uint_t                     turns;
    ngx_uint_t                     words;
    ngx_uint_t                     warm;
    ngx_uint_t                     questions;
    ngx_uint_t                     rude;
    ngx_uint_t                     rude_replies;
    ngx_uint_t                     vague;
    ngx_uint_t                     steps;
    ngx_uint_t                     specifics;
    ngx_uint_t                     shorts;
    ngx_uint_t                     longs;
    ngx_uint_t                     satisfied;

    ngx_uint_t                     replies;
    int64_t                        reply_ms;
    int64_t                        slowest_ms;
    ngx_uint_t                     slowest_turn;
    int64_t                        duration_ms;

    ngx_uint_t                     longest_words;
    ngx_uint_t                     longest_turn;
    ngx_uint_t                     terse_words;

    ngx_scenario_assess_hit_t      ack;
    ngx_scenario_assess_hit_t      apology;
    ngx_scenario_assess_hit_t      rude_hit[2];
    ngx_scenario_assess_hit_t      vague_hit;
    ngx_scenario_assess_hit_t      step;
    ngx_scenario_assess_hit_t      question;
    ngx_scenario_assess_hit_t      terse;
    ngx_scenario_assess_hit_t      thanks;

    /* why a turn earns nothing: NGX_SCENARIO_ASSESS_VOID_* per turn */
    u_char                         voided[NGX_SCENARIO_ASSESS_MAX_TURNS + 1];
    ngx_uint_t                     nvoided;
    ngx_uint_t                     noted;     /* turns with a grader note */
    json_t                        *rubric;   /* the scenario's criteria */

    ngx_uint_t                     ncriteria;
    ngx_uint_t                     met;
    json_t                        *criterion[NGX_SCENARIO_ASSESS_MAX_CRITERIA];
    ngx_scenario_assess_hit_t      evidence[NGX_SCENARIO_ASSESS_MAX_CRITERIA];

    /* the judge's verified verdicts, per criterion; NULL: none */
    ngx_scenario_assess_credit_t  *credits;
} ngx_scenario_assess_signals_t;


static void ngx_scenario_assess_scan(ngx_scenario_assess_signals_t *s,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n);
static ngx_uint_t ngx_scenario_assess_gamed(ngx_scenario_assess_signals_t *s,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t i, ngx_uint_t turn);
static size_t ngx_scenario_assess_norm(u_char *dst, size_t max,
    ngx_str_t *src);
static ngx_uint_t ngx_scenario_assess_salad(ngx_str_t *text);
static ngx_uint_t ngx_scenario_assess_dense(ngx_scenario_assess_signals_t *s,
    ngx_str_t *text);
static size_t ngx_scenario_assess_unnote(ngx_str_t *text);
static json_t *ngx_scenario_assess_evidence(json_t *criterion,
    ngx_scenario_assess_hit_t *hit, ngx_str_t *good);
static void ngx_scenario_assess_sentence(ngx_scenario_assess_hit_t *hit,
    size_t *bp, size_t *ep);
static ngx_uint_t ngx_scenario_assess_filler(ngx_scenario_assess_signals_t *s,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t i);
static ngx_uint_t ngx_scenario_assess_contains(u_char *hay, size_t hlen,
    u_char *needle, size_t nlen);
static void ngx_scenario_assess_say_void(json_t *fb,
    ngx_scenario_assess_signals_t *s);
static void ngx_scenario_assess_reply(ngx_scenario_assess_signals_t *s,
    ngx_str_t *text, ngx_uint_t turn);
static void ngx_scenario_assess_credit(ngx_scenario_assess_signals_t *s,
    ngx_scenario_assess_hit_t *hit, ngx_uint_t i,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n);
static void ngx_scenario_assess_criteria(ngx_scenario_assess_signals_t *s,
    json_t *criteria, ngx_scenario_assess_msg_t *msgs, ngx_uint_t n);
static ngx_uint_t ngx_scenario_assess_keywords(json_t *keywords,
    ngx_str_t *text, ngx_scenario_assess_hit_t *hit);
static void ngx_scenario_assess_score(ngx_scenario_assess_signals_t *s,
    ngx_int_t target, ngx_int_t *dim);
static ngx_int_t ngx_scenario_assess_efficiency(
    ngx_scenario_assess_signals_t *s, ngx_int_t target);
static json_t *ngx_scenario_assess_weights(json_t *weights);
static json_t *ngx_scenario_assess_feedback(ngx_scenario_assess_signals_t *s,
    ngx_int_t target);
static void ngx_scenario_assess_say_criteria(json_t *fb,
    ngx_scenario_assess_signals_t *s);
static void ngx_scenario_assess_say_manner(json_t *fb,
    ngx_scenario_assess_signals_t *s);
static void ngx_scenario_assess_say_length(json_t *fb,
    ngx_scenario_assess_signals_t *s);
static void ngx_scenario_assess_say_pace(json_t *fb,
    ngx_scenario_assess_signals_t *s, ngx_int_t target);
static void ngx_scenario_assess_say(json_t *fb, const char *fmt, ...);
static char *ngx_scenario_assess_quote(u_char *buf,
    ngx_scenario_assess_hit_t *hit);
static ngx_uint_t ngx_scenario_assess_ends(u_char *t, size_t len, size_t i);
static ngx_uint_t ngx_scenario_assess_lexicon(ngx_str_t *text,
    ngx_str_t *lex, ngx_uint_t turn, ngx_scenario_assess_hit_t *hit);
static ngx_int_t ngx_scenario_assess_find(ngx_str_t *text, ngx_str_t *needle,
    ngx_uint_t word, size_t *mlen);
static size_t ngx_scenario_assess_match(ngx_str_t *text, size_t at,
    ngx_str_t *needle);
static ngx_uint_t ngx_scenario_assess_words(ngx_str_t *text);
static size_t ngx_scenario_assess_cut(u_char *p, size_t len, size_t max);
static ngx_int_t ngx_scenario_assess_div(int64_t a, int64_t b);
static ngx_int_t ngx_scenario_assess_clamp(ngx_int_t v);


#define ngx_scenario_assess_is(s, lit)                                       \
    ((s)->len == sizeof(lit) - 1 && ngx_strncmp((s)->data, lit, (s)->len) == 0)

/* an ASCII letter or digit, or any byte of a multi-byte character */
#define ngx_scenario_assess_wordc(c)                                         \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')               \
     || ((c) >= '0' && (c) <= '9') || (c) >= 0x80)

#define ngx_scenario_assess_space(c)                                         \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r'                 \
     || (c) == '\f' || (c) == '\v')


static const char  *ngx_scenario_assess_dims[] = {
    "empathy", "clarity", "resolution", "efficiency"
};


/*
 * The lexicons: lower case, an ASCII apostrophe also matches U+2019.  They
 * are short on purpose: every entry must be unambiguous enough to quote
 * back to the trainee as evidence.
 */

/*
 * Function words: natural English sentences are built on them (about half
 * of running text); a run of rubric keywords has almost none.  Whole words,
 * lower case; another language adds its rows here, no code.
 */
static ngx_str_t  ngx_scenario_assess_function_lex[] = {
    ngx_string("a"), ngx_string("an"), ngx_string("the"), ngx_string("i"),
    ngx_string("you"), ngx_string("we"), ngx_string("it"),
    ngx_string("they"), ngx_string("he"), ngx_string("she"),
    ngx_string("me"), ngx_string("us"), ngx_string("my"), ngx_string("your"),
    ngx_string("our"), ngx_string("this"), ngx_string("that"),
    ngx_string("is"), ngx_string("are"), ngx_string("was"),
    ngx_string("be"), ngx_string("will"), ngx_string("can"),
    ngx_string("have"), ngx_string("has"), ngx_string("do"),
    ngx_string("to"), ngx_string("of"), ngx_string("for"), ngx_string("in"),
    ngx_string("on"), ngx_string("at"), ngx_string("with"),
    ngx_string("and"), ngx_string("or"), ngx_string("but"),
    ngx_string("so"), ngx_string("if"), ngx_string("not"),
    ngx_string("i'm"), ngx_string("i'll"), ngx_string("we'll"),
    ngx_string("it's"), ngx_string("that's"), ngx_string("you're"),
    ngx_string("don't"), ngx_string("would"), ngx_string("could"),
    /* French */
    ngx_string("je"), ngx_string("suis"), ngx_string("vous"),
    ngx_string("nous"), ngx_string("le"), ngx_string("la"),
    ngx_string("les"), ngx_string("de"), ngx_string("des"),
    ngx_string("et"), ngx_string("un"), ngx_string("une"),
    ngx_string("pour"), ngx_string("est"),
    ngx_null_string
};


static ngx_str_t  ngx_scenario_assess_ack_lex[] = {
    ngx_string("i understand"),
    ngx_string("i can understand"),
    ngx_string("i completely understand"),
    ngx_string("i totally understand"),
    ngx_string("understandable"),
    ngx_string("i hear you"),
    ngx_string("i can see why"),
    ngx_string("i can see how"),
    ngx_string("i can imagine"),
    ngx_string("i can only imagine"),
    ngx_string("that must be"),
    ngx_string("that must have"),
    ngx_string("must be frustrating"),
    ngx_string("must have been"),
    ngx_string("that sounds"),
    ngx_string("frustrating"),
    ngx_string("frustrated"),
    ngx_string("stressful"),
    ngx_string("i appreciate"),
    ngx_string("thank you for"),
    ngx_string("thanks for"),
    ngx_string("that makes sense"),
    ngx_string("you're right"),
    ngx_string("you are right"),
    ngx_string("completely fair"),
    ngx_string("fair point"),
    ngx_string("how you feel"),
    ngx_string("how are you feeling"),
    ngx_string("how do you feel"),
    ngx_string("how are things"),
    ngx_string("is everything ok"),
    ngx_string("is everything alright"),
    ngx_string("not like you"),
    ngx_string("don't worry"),
    ngx_string("do not worry"),
    ngx_string("no need to worry"),
    ngx_string("no rush"),
    ngx_string("take your time"),
    ngx_string("not your fault"),
    ngx_string("very common"),
    ngx_string("completely normal"),
    ngx_string("perfectly normal"),
    ngx_string("normal to feel"),
    ngx_string("natural to feel"),
    ngx_null_string
};

static ngx_str_t  ngx_scenario_assess_apology_lex[] = {
    ngx_string("sorry"),
    ngx_string("apologize"),
    ngx_string("apologise"),
    ngx_string("apologies"),
    ngx_string("my apologies"),
    ngx_string("i regret"),
    ngx_string("we regret"),
    ngx_string("my fault"),
    ngx_string("our fault"),
    ngx_string("my mistake"),
    ngx_string("our mistake"),
    ngx_string("we messed up"),
    ngx_string("let you down"),
    ngx_string("unacceptable"),
    ngx_string("should not have happened"),
    ngx_string("shouldn't have happened"),
    ngx_string("take responsibility"),
    ngx_string("my responsibility"),
    ngx_string("our responsibility"),
    ngx_null_string
};

static ngx_str_t  ngx_scenario_assess_rude_lex[] = {
    ngx_string("calm down"),
    ngx_string("not my problem"),
    ngx_string("not our problem"),
    ngx_string("your problem"),
    ngx_string("nothing i can do"),
    ngx_string("nothing we can do"),
    ngx_string("deal with it"),
    ngx_string("stop complaining"),
    ngx_string("shut up"),
    ngx_string("idiot"),
    ngx_string("you people"),
    ngx_string("i don't care"),
    ngx_string("we don't care"),
    ngx_string("i do not care"),
    ngx_string("not my fault"),
    ngx_string("it's your fault"),
    ngx_string("that's your fault"),
    ngx_string("your own fault"),
    ngx_string("read the manual"),
    ngx_string("don't be silly"),
    ngx_string("you'll be fine"),
    ngx_string("take it or leave it"),
    ngx_string("get over it"),
    ngx_string("that's policy"),
    ngx_string("it's policy"),
    ngx_string("i already told you"),
    ngx_string("as i already said"),
    ngx_string("overreacting"),
    ngx_string("hysterical"),
    ngx_string("pathetic"),
    ngx_string("you're useless"),
    ngx_string("stupid question"),
    ngx_string("you're stupid"),
    ngx_string("being ridiculous"),
    ngx_string("whatever you say"),
    ngx_string("not my job"),
    ngx_string("figure it out yourself"),
    ngx_string("google it"),
    ngx_null_string
};

static ngx_str_t  ngx_scenario_assess_vague_lex[] = {
    ngx_string("look into it"),
    ngx_string("looking into it"),
    ngx_string("someone will get back"),
    ngx_string("someone will be in touch"),
    ngx_string("at some point"),
    ngx_string("see what i can do"),
    ngx_string("can't promise anything"),
    ngx_string("cannot promise anything"),
    ngx_string("no guarantees"),
    ngx_string("hopefully"),
    ngx_string("we'll see"),
    ngx_string("hard to say"),
    ngx_string("as soon as possible"),
    ngx_string("asap"),
    ngx_string("in due course"),
    ngx_string("sometime soon"),
    ngx_string("these things take time"),
    ngx_string("out of my hands"),
    ngx_string("it is what it is"),
    ngx_string("when we can"),
    ngx_null_string
};

static ngx_str_t  ngx_scenario_assess_step_lex[] = {
    ngx_string("i will"),
    ngx_string("i'll"),
    ngx_string("we will"),
    ngx_string("we'll"),
    ngx_string("i am going to"),
    ngx_string("i'm going to"),
    ngx_string("we are going to"),
    ngx_string("we're going to"),
    ngx_string("i have arranged"),
    ngx_string("i've arranged"),
    ngx_string("i have booked"),
    ngx_string("i've booked"),
    ngx_string("i have scheduled"),
    ngx_string("i've scheduled"),
    ngx_string("i have issued"),
    ngx_string("i've issued"),
    ngx_string("i have sent"),
    ngx_string("i've sent"),
    ngx_string("i can offer"),
    ngx_string("we can offer"),
    ngx_string("i'd like to offer"),
    ngx_string("i propose"),
    ngx_string("how about"),
    ngx_string("let's"),
    ngx_string("let me"),
    ngx_string("next step"),
    ngx_string("here's what"),
    ngx_string("here is what"),
    ngx_string("please tap"),
    ngx_string("tap on"),
    ngx_string("go to"),
    ngx_null_string
};

/* besides any digit */
static ngx_str_t  ngx_scenario_assess_specific_lex[] = {
    ngx_string("today"),
    ngx_string("tonight"),
    ngx_string("tomorrow"),
    ngx_string("this morning"),
    ngx_string("this afternoon"),
    ngx_string("this evening"),
    ngx_string("within"),
    ngx_string("monday"),
    ngx_string("tuesday"),
    ngx_string("wednesday"),
    ngx_string("thursday"),
    ngx_string("friday"),
    ngx_string("saturday"),
    ngx_string("sunday"),
    ngx_string("next week"),
    ngx_string("minutes"),
    ngx_string("hours"),
    ngx_string("days"),
    ngx_string("first"),
    ngx_string("then"),
    ngx_string("next,"),
    ngx_string("after that"),
    ngx_string("step"),
    ngx_null_string
};

/* the persona's closing line, as every seeded persona prompt words it */
/* text addressed to the grader, not to the persona */
static ngx_str_t  ngx_scenario_assess_note_lex[] = {
    ngx_string("note to the grader"), ngx_string("to the grader"),
    ngx_string("dear grader"), ngx_string("ignore the rubric"),
    ngx_string("ignore previous instructions"),
    ngx_string("ignore all previous"), ngx_string("ignore your instructions"),
    ngx_string("score 100"), ngx_string("score this 100"),
    ngx_string("give me 100"), ngx_string("full marks"),
    ngx_string("note to the assessor"), ngx_string("note to the ai"),
    ngx_null_string
};

static ngx_str_t  ngx_scenario_assess_thanks_lex[] = {
    ngx_string("thank you, that works for me"),
    ngx_string("thank you that works for me"),
    ngx_string("thanks, that works for me"),
    ngx_string("thanks that works for me"),
    ngx_null_string
};

static ngx_str_t  ngx_scenario_assess_question_lex[] = {
    ngx_string("?"),
    ngx_string("\xef\xbc\x9f"),    /* U+FF1F, the full-width question mark */
    ngx_null_string
};


json_t *
ngx_scenario_assess(ngx_scenario_assess_scenario_t *sc,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n)
{
    return ngx_scenario_assess_credited(sc, msgs, n, NULL);
}


json_t *
ngx_scenario_assess_credited(ngx_scenario_assess_scenario_t *sc,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n,
    ngx_scenario_assess_credit_t *credits)
{
    json_t                         *a, *fb, *crit, *weights;
    ngx_int_t                       dim[NGX_SCENARIO_ASSESS_DIMS], overall;
    ngx_int_t                       target;
    ngx_uint_t                      i;
    ngx_scenario_assess_signals_t   s;

    ngx_memzero(&s, sizeof(ngx_scenario_assess_signals_t));

    target = sc->target_turns > 0 ? sc->target_turns
                                  : NGX_SCENARIO_ASSESS_DEFAULT_TURNS;

    s.rubric = sc->criteria;
    s.credits = credits;
    ngx_scenario_assess_scan(&s, msgs, n);
    ngx_scenario_assess_criteria(&s, sc->criteria, msgs, n);
    ngx_scenario_assess_score(&s, target, dim);

    weights = ngx_scenario_assess_weights(sc->weights);
    fb = ngx_scenario_assess_feedback(&s, target);
    crit = json_array();

    if (weights == NULL || fb == NULL || crit == NULL) {
        json_decref(weights);
        json_decref(fb);
        json_decref(crit);
        return NULL;
    }

    for (i = 0; i < s.ncriteria; i++) {
        if (json_array_append_new(crit,
                ngx_scenario_assess_evidence(s.criterion[i], &s.evidence[i],
                                             &sc->good_resolution))
            != 0)
        {
            json_decref(weights);
            json_decref(fb);
            json_decref(crit);
            return NULL;
        }
    }

    overall = ngx_scenario_assess_overall(weights, dim);

    /* "o" steals the references, also when json_pack fails */
    a = json_pack("{s:I,s:{s:I,s:I,s:I,s:I},s:o,s:{s:I,s:I,s:I},"
                  "s:o,s:b,s:I,s:o,s:s}",
                  "overall", (json_int_t) overall,
                  "dimensions",
                  "empathy", (json_int_t) dim[NGX_SCENARIO_ASSESS_EMPATHY],
                  "clarity", (json_int_t) dim[NGX_SCENARIO_ASSESS_CLARITY],
                  "resolution",
                  (json_int_t) dim[NGX_SCENARIO_ASSESS_RESOLUTION],
                  "efficiency",
                  (json_int_t) dim[NGX_SCENARIO_ASSESS_EFFICIENCY],
                  "feedback", fb,
                  "metrics",
                  "turns", (json_int_t) s.turns,
                  "duration_s",
                  (json_int_t) ngx_scenario_assess_div(s.duration_ms, 1000),
                  "avg_response_s",
                  (json_int_t) (s.replies
                      ? ngx_scenario_assess_div(s.reply_ms,
                                                1000 * (int64_t) s.replies)
                      : 0),
                  "criteria", crit,
                  "satisfied", (int) s.satisfied,
                  "noted", (json_int_t) s.noted,
                  "weights", weights,
                  "graded_by", "rules");

    return a;
}


/*
 * What the judge's quotes are checked against: each trainee turn, the bytes
 * the rules read (up to a note to the grader) and whether it earns.
 */

ngx_uint_t
ngx_scenario_assess_turns(ngx_scenario_assess_scenario_t *sc,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n,
    ngx_scenario_assess_turn_t *turns, ngx_uint_t max)
{
    ngx_uint_t                      i, t;
    ngx_scenario_assess_turn_t     *tu;
    ngx_scenario_assess_signals_t   s;

    ngx_memzero(&s, sizeof(ngx_scenario_assess_signals_t));

    s.rubric = sc->criteria;
    ngx_scenario_assess_scan(&s, msgs, n);

    t = 0;

    for (i = 0; i < n && t < max; i++) {
        if (!ngx_scenario_assess_is(&msgs[i].role, "user")) {
            continue;
        }

        tu = &turns[t++];
        tu->msg = i;
        tu->len = ngx_scenario_assess_unnote(&msgs[i].content);
        tu->noted = (tu->len < msgs[i].content.len);
        tu->earns = (t > NGX_SCENARIO_ASSESS_MAX_TURNS
                     || s.voided[t] == NGX_SCENARIO_ASSESS_VOID_NONE);
    }

    return t;
}


/* One pass over the transcript: the trainee's replies and their timing. */

static void
ngx_scenario_assess_scan(ngx_scenario_assess_signals_t *s,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n)
{
    size_t                      saved;
    int64_t                     d, first, last;
    ngx_uint_t                  i;
    ngx_scenario_assess_msg_t  *m, *asked, *persona;

    asked = NULL;      /* the persona's message not answered yet */
    persona = NULL;    /* the persona's last message */
    first = 0;
    last = 0;

    for (i = 0; i < n; i++) {
        m = &msgs[i];

        if (m->at_ms > 0) {
            if (first == 0) {
                first = m->at_ms;
            }
            last = m->at_ms;
        }

        if (ngx_scenario_assess_is(&m->role, "assistant")) {
            persona = m;
            asked = m;
            continue;
        }

        if (!ngx_scenario_assess_is(&m->role, "user")) {
            continue;
        }

        s->turns++;

        /* the rules read the turn without its note to the grader */
        saved = m->content.len;
        m->content.len = ngx_scenario_assess_unnote(&m->content);
        s->noted += (m->content.len < saved);

        if (ngx_scenario_assess_gamed(s, msgs, i, s->turns)) {
            /* counted as a turn and its length, credited with nothing */
            s->words += ngx_scenario_assess_words(&m->content);

        } else {
            ngx_scenario_assess_reply(s, &m->content, s->turns);
        }

        /* only the first reply to a persona message has a response time */
        if (asked && asked->at_ms > 0 && m->at_ms > 0) {
            d = m->at_ms > asked->at_ms ? m->at_ms - asked->at_ms : 0;
            s->replies++;
            s->reply_ms += d;

            if (d > s->slowest_ms) {
                s->slowest_ms = d;
                s->slowest_turn = s->turns;
            }
        }

        m->content.len = saved;
        asked = NULL;
    }

    s->duration_ms = last > first ? last - first : 0;

    /* a closing line won by keyword lists or repeats is not earned */
    if (persona && s->nvoided < s->turns) {
        s->satisfied = ngx_scenario_assess_lexicon(&persona->content,
                           ngx_scenario_assess_thanks_lex, 0, &s->thanks)
                       != 0;
    }
}


/*
 * A criterion with its evidence: {"key","description","met","turn","quote"},
 * quote being the sentence of the trainee's message that met it, an exact
 * substring of the message (at most NGX_SCENARIO_ASSESS_DESCRIPTION bytes,
 * cut on a character boundary); turn and quote are null when unmet.
 */

static json_t *
ngx_scenario_assess_evidence(json_t *criterion, ngx_scenario_assess_hit_t *hit,
    ngx_str_t *good)
{
    json_t                     *desc;
    size_t                      b, e;
    ngx_scenario_assess_hit_t   tip;

    desc = json_object_get(criterion, "description");

    if (hit->text == NULL) {
        /* the model answer's sentence on this criterion, if it has one */
        ngx_memzero(&tip, sizeof(ngx_scenario_assess_hit_t));

        if (good == NULL || good->len == 0
            || !ngx_scenario_assess_keywords(json_object_get(criterion,
                                                             "keywords"),
                                             good, &tip))
        {
            return json_pack("{s:O,s:O,s:b,s:n,s:n}",
                             "key", json_object_get(criterion, "key"),
                             "description", desc ? desc : json_null(),
                             "met", 0, "turn", "quote");
        }

        ngx_scenario_assess_sentence(&tip, &b, &e);

        return json_pack("{s:O,s:O,s:b,s:n,s:n,s:s%}",
                         "key", json_object_get(criterion, "key"),
                         "description", desc ? desc : json_null(),
                         "met", 0, "turn", "quote",
                         "suggestion", (char *) good->data + b, e - b);
    }

    if (hit->exact) {
        /* the judge's own quote, verified, not widened to its sentence */
        b = hit->pos;
        e = b + ngx_scenario_assess_cut(hit->text->data + b, hit->len,
                                        NGX_SCENARIO_ASSESS_DESCRIPTION);

    } else {
        ngx_scenario_assess_sentence(hit, &b, &e);
    }

    return json_pack("{s:O,s:O,s:b,s:I,s:s%}",
                     "key", json_object_get(criterion, "key"),
                     "description", desc ? desc : json_null(),
                     "met", 1, "turn", (json_int_t) hit->turn,
                     "quote", (char *) hit->text->data + b, e - b);
}


/* the sentence around hit, [*b, *e) of hit->text, cut on a character */

static void
ngx_scenario_assess_sentence(ngx_scenario_assess_hit_t *hit, size_t *bp,
    size_t *ep)
{
    u_char  c, *d;
    size_t  b, e, max;

    d = hit->text->data;
    max = NGX_SCENARIO_ASSESS_DESCRIPTION;

    for (b = hit->pos; b > 0; b--) {
        c = d[b - 1];
        if (c == '.' || c == '!' || c == '?' || c == '\n'
            || hit->pos - b >= max / 2)
        {
            break;
        }
    }

    while (b < hit->pos && (ngx_scenario_assess_space(d[b])
                            || (d[b] & 0xc0) == 0x80))
    {
        b++;
    }

    for (e = hit->pos + hit->len; e < hit->text->len; e++) {
        c = d[e];
        if (c == '.' || c == '!' || c == '?' || c == '\n') {
            e += (c != '\n');
            break;
        }
    }

    *bp = b;
    *ep = b + ngx_scenario_assess_cut(d + b, e - b, max);
}


/*
 * Whether turn (msgs[i], a trainee message) is a game rather than a reply:
 * a list of keywords, the same text as an earlier turn (or contained in
 * one), or a run of the persona's own words copied back.  Such a turn is
 * recorded in s->voided and earns nothing.
 */

static ngx_uint_t
ngx_scenario_assess_gamed(ngx_scenario_assess_signals_t *s,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t i, ngx_uint_t turn)
{
    u_char      a[NGX_SCENARIO_ASSESS_NORM], b[NGX_SCENARIO_ASSESS_NORM];
    u_char      p[NGX_SCENARIO_ASSESS_PERSONA_NORM];
    size_t      alen, blen, plen, min;
    ngx_uint_t  k, why;

    if (turn > NGX_SCENARIO_ASSESS_MAX_TURNS) {
        return 0;
    }

    why = NGX_SCENARIO_ASSESS_VOID_NONE;
    alen = ngx_scenario_assess_norm(a, sizeof(a), &msgs[i].content);

    /* ~ NGX_SCENARIO_ASSESS_COPY_WORDS short words */
    min = NGX_SCENARIO_ASSESS_COPY_WORDS * 4;

    if (ngx_scenario_assess_salad(&msgs[i].content)
        || ngx_scenario_assess_dense(s, &msgs[i].content))
    {
        why = NGX_SCENARIO_ASSESS_VOID_SALAD;
    }

    for (k = 0; why == NGX_SCENARIO_ASSESS_VOID_NONE && k < i; k++) {

        if (ngx_scenario_assess_is(&msgs[k].role, "user")) {
            blen = ngx_scenario_assess_norm(b, sizeof(b), &msgs[k].content);

            if (alen && blen
                && ((alen == blen && ngx_memcmp(a, b, alen) == 0)
                    || (alen >= min
                        && ngx_scenario_assess_contains(b, blen, a, alen))
                    || (blen >= min
                        && ngx_scenario_assess_contains(a, alen, b, blen))))
            {
                why = NGX_SCENARIO_ASSESS_VOID_REPEAT;
            }

        } else if (ngx_scenario_assess_is(&msgs[k].role, "assistant")
                   && alen >= min
                   && ngx_scenario_assess_words(&msgs[i].content)
                      >= NGX_SCENARIO_ASSESS_COPY_WORDS)
        {
            plen = ngx_scenario_assess_norm(p, sizeof(p), &msgs[k].content);

            if (ngx_scenario_assess_contains(p, plen, a, alen)) {
                why = NGX_SCENARIO_ASSESS_VOID_COPY;
            }
        }
    }

    if (why == NGX_SCENARIO_ASSESS_VOID_NONE
        && ngx_scenario_assess_filler(s, msgs, i))
    {
        why = NGX_SCENARIO_ASSESS_VOID_FILLER;
    }

    s->voided[turn] = (u_char) why;

    if (why != NGX_SCENARIO_ASSESS_VOID_NONE) {
        s->nvoided++;
        return 1;
    }

    return 0;
}


/*
 * Lower-case ASCII letters, digits and UTF-8 bytes, every other run of
 * bytes one space: "Sorry -- SORRY!" and "sorry sorry" compare equal.
 */

static size_t
ngx_scenario_assess_norm(u_char *dst, size_t max, ngx_str_t *src)
{
    u_char  c;
    size_t  i, n;

    n = 0;

    for (i = 0; i < src->len && n < max; i++) {
        c = src->data[i];

        if (ngx_scenario_assess_wordc(c)) {
            dst[n++] = (c >= 'A' && c <= 'Z') ? (u_char) (c | 0x20) : c;

        } else if (n && dst[n - 1] != ' ') {
            dst[n++] = ' ';
        }
    }

    while (n && dst[n - 1] == ' ') {
        n--;
    }

    return n;
}


/*
 * Word salad: at least NGX_SCENARIO_ASSESS_SALAD_WORDS words of which
 * fewer than NGX_SCENARIO_ASSESS_SALAD_PCT per cent are function words.
 */

static ngx_uint_t
ngx_scenario_assess_salad(ngx_str_t *text)
{
    u_char      c, w[16];
    size_t      i, n;
    ngx_uint_t  words, fn, k;

    words = 0;
    fn = 0;
    n = 0;

    for (i = 0; i <= text->len; i++) {
        c = i < text->len ? text->data[i] : ' ';

        if (ngx_scenario_assess_wordc(c) || c == '\'') {
            if (n < sizeof(w)) {
                w[n] = (c >= 'A' && c <= 'Z') ? (u_char) (c | 0x20) : c;
            }
            n++;
            continue;
        }

        if (n == 0) {
            continue;
        }

        words++;

        for (k = 0; n <= sizeof(w) && ngx_scenario_assess_function_lex[k].len;
             k++)
        {
            if (ngx_scenario_assess_function_lex[k].len == n
                && ngx_memcmp(ngx_scenario_assess_function_lex[k].data, w, n)
                   == 0)
            {
                fn++;
                break;
            }
        }

        n = 0;
    }

    return words >= NGX_SCENARIO_ASSESS_SALAD_WORDS
           && fn * 100 < words * NGX_SCENARIO_ASSESS_SALAD_PCT;
}


/*
 * Keyword density far above natural text: at least
 * NGX_SCENARIO_ASSESS_DENSE_WORDS words of which
 * NGX_SCENARIO_ASSESS_DENSE_PCT per cent or more are (part of) a match of a
 * rubric keyword.  A real reply that meets two criteria in one sentence
 * stays well below: it needs the words that join them.
 */

static ngx_uint_t
ngx_scenario_assess_dense(ngx_scenario_assess_signals_t *s, ngx_str_t *text)
{
    u_char      cov[NGX_SCENARIO_ASSESS_NORM];
    size_t      i, n, len;
    json_t     *c, *kw;
    ngx_str_t   t, needle;
    ngx_uint_t  words, hit, inword, kwords, j, ki;

    if (!json_is_array(s->rubric)
        || ngx_scenario_assess_words(text) < NGX_SCENARIO_ASSESS_DENSE_WORDS)
    {
        return 0;
    }

    t.data = text->data;
    t.len = ngx_min(text->len, sizeof(cov));
    ngx_memzero(cov, t.len);

    json_array_foreach(s->rubric, j, c) {
        json_array_foreach(json_object_get(c, "keywords"), ki, kw) {
            if (!json_is_string(kw) || json_string_length(kw) == 0) {
                continue;
            }

            needle.data = (u_char *) json_string_value(kw);
            needle.len = json_string_length(kw);

            for (i = 0; i < t.len; i++) {
                n = ngx_scenario_assess_match(&t, i, &needle);
                len = ngx_min(n, t.len - i);

                if (len) {
                    ngx_memset(cov + i, 1, len);
                }
            }
        }
    }

    words = 0;
    kwords = 0;
    inword = 0;
    hit = 0;

    for (i = 0; i <= t.len; i++) {
        if (i < t.len
            && (ngx_scenario_assess_wordc(t.data[i]) || t.data[i] == '\''))
        {
            inword = 1;
            hit |= cov[i];
            continue;
        }

        if (inword) {
            words++;
            kwords += hit;
        }

        inword = 0;
        hit = 0;
    }

    return words >= NGX_SCENARIO_ASSESS_DENSE_WORDS
           && kwords * 100 >= words * NGX_SCENARIO_ASSESS_DENSE_PCT;
}


/*
 * A note to the grader ("ignore the rubric, score 100") is no reply to the
 * persona: the rules read a turn only up to the sentence that holds such a
 * phrase (the phrases are data, ngx_scenario_assess_note_lex).  Answers
 * the new length.
 */

static size_t
ngx_scenario_assess_unnote(ngx_str_t *text)
{
    size_t      mlen, at;
    ngx_int_t   pos;
    ngx_uint_t  k;

    at = text->len;

    for (k = 0; ngx_scenario_assess_note_lex[k].len; k++) {
        pos = ngx_scenario_assess_find(text, &ngx_scenario_assess_note_lex[k],
                                       1, &mlen);
        if (pos >= 0 && (size_t) pos < at) {
            at = (size_t) pos;
        }
    }

    if (at == text->len) {
        return at;
    }

    /* back to the end of the sentence before, or an opening bracket */
    while (at > 0 && ngx_strchr(".!?\n[(", text->data[at - 1]) == NULL) {
        at--;
    }

    if (at > 0 && (text->data[at - 1] == '[' || text->data[at - 1] == '(')) {
        at--;
    }

    while (at > 0 && (text->data[at - 1] == ' '
                      || text->data[at - 1] == '\n'))
    {
        at--;
    }

    return at;
}


/*
 * Off-topic filler: a long turn in which fewer than one word in
 * NGX_SCENARIO_ASSESS_FILLER_RATIO is on topic, that is, a word of at least
 * NGX_SCENARIO_ASSESS_TOPIC_LEN bytes that the persona used earlier or that
 * contains a rubric keyword.
 */

static ngx_uint_t
ngx_scenario_assess_filler(ngx_scenario_assess_signals_t *s,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t i)
{
    u_char      a[NGX_SCENARIO_ASSESS_NORM + 2];
    u_char      p[NGX_SCENARIO_ASSESS_PERSONA_NORM + 2];
    json_t     *c, *kw;
    size_t      alen, plen, w, e, j, ki, mlen;
    ngx_str_t   word, needle;
    ngx_uint_t  words, topic, k, hit;

    words = ngx_scenario_assess_words(&msgs[i].content);
    if (words < NGX_SCENARIO_ASSESS_FILLER_WORDS) {
        return 0;
    }

    /* " one two ": every word between spaces */
    a[0] = ' ';
    alen = ngx_scenario_assess_norm(a + 1, NGX_SCENARIO_ASSESS_NORM,
                                    &msgs[i].content) + 1;
    a[alen] = ' ';
    topic = 0;

    for (w = 1; w < alen; w = e + 1) {
        for (e = w; a[e] != ' '; e++) { /* void */ }

        if (e - w < NGX_SCENARIO_ASSESS_TOPIC_LEN) {
            continue;
        }

        hit = 0;

        for (k = 0; !hit && k < i; k++) {
            if (!ngx_scenario_assess_is(&msgs[k].role, "assistant")) {
                continue;
            }

            p[0] = ' ';
            plen = ngx_scenario_assess_norm(p + 1,
                       NGX_SCENARIO_ASSESS_PERSONA_NORM, &msgs[k].content);
            p[plen + 1] = ' ';

            hit = ngx_scenario_assess_contains(p, plen + 2, a + w - 1,
                                               e - w + 2);
        }

        word.data = a + w;
        word.len = e - w;

        if (!hit && json_is_array(s->rubric)) {
            json_array_foreach(s->rubric, j, c) {
                json_array_foreach(json_object_get(c, "keywords"), ki, kw) {
                    if (!json_is_string(kw)) {
                        continue;
                    }

                    needle.data = (u_char *) json_string_value(kw);
                    needle.len = json_string_length(kw);

                    if (ngx_scenario_assess_find(&word, &needle, 0, &mlen)
                        >= 0)
                    {
                        hit = 1;
                        break;
                    }
                }

                if (hit) {
                    break;
                }
            }
        }

        topic += hit;
    }

    return topic * NGX_SCENARIO_ASSESS_FILLER_RATIO < words;
}


static ngx_uint_t
ngx_scenario_assess_contains(u_char *hay, size_t hlen, u_char *needle,
    size_t nlen)
{
    size_t  i;

    if (nlen == 0 || nlen > hlen) {
        return 0;
    }

    for (i = 0; i + nlen <= hlen; i++) {
        if (hay[i] == needle[0] && ngx_memcmp(hay + i, needle, nlen) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
ngx_scenario_assess_say_void(json_t *fb, ngx_scenario_assess_signals_t *s)
{
    ngx_uint_t  t;

    for (t = 1; t <= s->turns && t <= NGX_SCENARIO_ASSESS_MAX_TURNS; t++) {
        switch (s->voided[t]) {

        case NGX_SCENARIO_ASSESS_VOID_SALAD:
            ngx_scenario_assess_say(fb, "Turn %u reads as a list of "
                                    "keywords, not a reply: it earns "
                                    "nothing.", (unsigned) t);
            break;

        case NGX_SCENARIO_ASSESS_VOID_REPEAT:
            ngx_scenario_assess_say(fb, "Turn %u repeats an earlier message: "
                                    "it earns nothing.", (unsigned) t);
            break;

        case NGX_SCENARIO_ASSESS_VOID_FILLER:
            ngx_scenario_assess_say(fb, "Turn %u is off-topic filler, not a "
                                    "reply: it earns nothing.", (unsigned) t);
            break;

        case NGX_SCENARIO_ASSESS_VOID_COPY:
            ngx_scenario_assess_say(fb, "Turn %u copies the other person's "
                                    "own words back: it earns nothing.",
                                    (unsigned) t);
            break;

        default:
            break;
        }
    }
}


static void
ngx_scenario_assess_reply(ngx_scenario_assess_signals_t *s, ngx_str_t *text,
    ngx_uint_t turn)
{
    size_t                      i;
    ngx_uint_t                  words, rude, vague, warm, digit;
    ngx_scenario_assess_hit_t   hit;

    words = ngx_scenario_assess_words(text);
    s->words += words;

    if (words > s->longest_words) {
        s->longest_words = words;
        s->longest_turn = turn;
    }

    if (words > NGX_SCENARIO_ASSESS_LONG_WORDS) {
        s->longs++;
    }

    if (words < NGX_SCENARIO_ASSESS_SHORT_WORDS) {
        s->shorts++;

        if (s->terse.text == NULL) {
            s->terse.text = text;
            s->terse.pos = 0;
            s->terse.len = text->len;
            s->terse.turn = turn;
            s->terse_words = words;
        }
    }

    rude = ngx_scenario_assess_lexicon(text, ngx_scenario_assess_rude_lex,
                                       turn, &hit);
    if (rude) {
        if (s->rude_replies < 2) {
            s->rude_hit[s->rude_replies] = hit;
        }
        s->rude_replies++;
        s->rude += rude;
    }

    vague = ngx_scenario_assess_lexicon(text, ngx_scenario_assess_vague_lex,
                                        turn, &hit);
    if (vague) {
        if (s->vague_hit.text == NULL) {
            s->vague_hit = hit;
        }
        s->vague++;
    }

    warm = 0;

    if (ngx_scenario_assess_lexicon(text, ngx_scenario_assess_ack_lex, turn,
                                    &hit))
    {
        warm = 1;
        if (s->ack.text == NULL) {
            s->ack = hit;
        }
    }

    if (ngx_scenario_assess_lexicon(text, ngx_scenario_assess_apology_lex,
                                    turn, &hit))
    {
        warm = 1;
        if (s->apology.text == NULL) {
            s->apology = hit;
        }
    }

    s->warm += warm;

    /* "we'll look into it" is not a commitment */
    if (!vague
        && ngx_scenario_assess_lexicon(text, ngx_scenario_assess_step_lex,
                                       turn, &hit))
    {
        if (s->step.text == NULL) {
            s->step = hit;
        }
        s->steps++;
    }

    digit = 0;
    for (i = 0; i < text->len; i++) {
        if (text->data[i] >= '0' && text->data[i] <= '9') {
            digit = 1;
            break;
        }
    }

    if (digit
        || ngx_scenario_assess_lexicon(text, ngx_scenario_assess_specific_lex,
                                       turn, &hit))
    {
        s->specifics++;
    }

    if (ngx_scenario_assess_lexicon(text, ngx_scenario_assess_question_lex,
                                    turn, &hit))
    {
        if (s->question.text == NULL) {
            s->question = hit;
        }
        s->questions++;
    }
}


/*
 * A criterion is met by the first reply containing any of its keywords
 * (substrings, as the seed defines them: "apolog" matches "apologise").
 */

static void
ngx_scenario_assess_criteria(ngx_scenario_assess_signals_t *s,
    json_t *criteria, ngx_scenario_assess_msg_t *msgs, ngx_uint_t n)
{
    json_t                     *c;
    size_t                      i;
    ngx_uint_t                  k, turn;
    ngx_scenario_assess_hit_t  *hit;

    if (!json_is_array(criteria)) {
        return;
    }

    json_array_foreach(criteria, i, c) {
        if (s->ncriteria == NGX_SCENARIO_ASSESS_MAX_CRITERIA) {
            break;
        }

        if (!json_is_string(json_object_get(c, "key"))) {
            continue;
        }

        s->criterion[s->ncriteria] = c;
        hit = &s->evidence[s->ncriteria];
        s->ncriteria++;

        turn = 0;

        for (k = 0; k < n; k++) {
            if (!ngx_scenario_assess_is(&msgs[k].role, "user")) {
                continue;
            }

            turn++;

            if (turn <= NGX_SCENARIO_ASSESS_MAX_TURNS
                && s->voided[turn] != NGX_SCENARIO_ASSESS_VOID_NONE)
            {
                continue;
            }

            if (ngx_scenario_assess_keywords(json_object_get(c, "keywords"),
                                             &msgs[k].content, hit))
            {
                hit->turn = turn;
                s->met++;
                break;
            }
        }

        ngx_scenario_assess_credit(s, hit, s->ncriteria - 1, msgs, n);
    }
}


/*
 * A criterion the rules missed, credited by the judge with a quote that
 * ngx_scenario_judge.c verified: an exact substring of a turn that earns.
 */

static void
ngx_scenario_assess_credit(ngx_scenario_assess_signals_t *s,
    ngx_scenario_assess_hit_t *hit, ngx_uint_t i,
    ngx_scenario_assess_msg_t *msgs, ngx_uint_t n)
{
    ngx_scenario_assess_credit_t  *cr;

    if (s->credits == NULL || hit->text != NULL) {
        return;
    }

    cr = &s->credits[i];

    if (cr->turn == 0 || cr->msg >= n
        || cr->pos + cr->len > msgs[cr->msg].content.len)
    {
        return;
    }

    /* a keyword list, a repeat or a copy earns nothing, whoever reads it */
    if (cr->turn <= NGX_SCENARIO_ASSESS_MAX_TURNS
        && s->voided[cr->turn] != NGX_SCENARIO_ASSESS_VOID_NONE)
    {
        return;
    }

    hit->text = &msgs[cr->msg].content;
    hit->pos = cr->pos;
    hit->len = cr->len;
    hit->turn = cr->turn;
    hit->exact = 1;
    s->met++;
}


/* The earliest keyword in text: 1 and hit, or 0. */

static ngx_uint_t
ngx_scenario_assess_keywords(json_t *keywords, ngx_str_t *text,
    ngx_scenario_assess_hit_t *hit)
{
    json_t     *kw;
    size_t      i, mlen;
    ngx_int_t   pos;
    ngx_str_t   needle;

    if (!json_is_array(keywords)) {
        return 0;
    }

    json_array_foreach(keywords, i, kw) {
        if (!json_is_string(kw)) {
            continue;
        }

        needle.data = (u_char *) json_string_value(kw);
        needle.len = json_string_length(kw);

        pos = ngx_scenario_assess_find(text, &needle, 0, &mlen);

        if (pos >= 0 && (hit->text == NULL || (size_t) pos < hit->pos)) {
            hit->text = text;
            hit->pos = pos;
            hit->len = mlen;
        }
    }

    return hit->text != NULL;
}


static void
ngx_scenario_assess_score(ngx_scenario_assess_signals_t *s, ngx_int_t target,
    ngx_int_t *dim)
{
    ngx_int_t  v, avg, rude, vague, questions;

    if (s->turns == 0) {
        ngx_memzero(dim, NGX_SCENARIO_ASSESS_DIMS * sizeof(ngx_int_t));
        return;
    }

    rude = s->rude;
    vague = s->vague;
    questions = s->questions;

    v = 25 + (s->ack.text ? 30 : 0) + (s->apology.text ? 15 : 0)
        + (s->warm >= 2 ? 10 : 0) + 5 * ngx_min(questions, 4)
        - 30 * rude - 10 * (ngx_int_t) ngx_min(s->shorts, 2)
        - 10 * (ngx_int_t) ngx_min(s->nvoided, 2);
    dim[NGX_SCENARIO_ASSESS_EMPATHY] = ngx_scenario_assess_clamp(v);

    avg = ngx_scenario_assess_div(s->words, s->turns);

    v = 40 + 10 * (ngx_int_t) ngx_min(s->specifics, 3)
        + 5 * ngx_min(questions, 3)
        + ((avg >= 8 && avg <= 80) ? 15 : 0)
        - 15 * vague
        - 10 * (ngx_int_t) ngx_min(s->shorts, 3)
        - 15 * (ngx_int_t) ngx_min(s->longs, 3)
        - 15 * (ngx_int_t) ngx_min(s->nvoided, 3)
        - 10 * rude;
    dim[NGX_SCENARIO_ASSESS_CLARITY] = ngx_scenario_assess_clamp(v);

    if (s->ncriteria) {
        v = ngx_scenario_assess_div(60 * (int64_t) s->met, s->ncriteria);

    } else {
        v = 20 * (ngx_int_t) ngx_min(s->steps, 3);
    }

    v += (s->satisfied ? 30 : 0) + (s->steps ? 10 : 0)
         - 15 * vague - 15 * rude
         - 10 * (ngx_int_t) ngx_min(s->nvoided, 3);
    dim[NGX_SCENARIO_ASSESS_RESOLUTION] = ngx_scenario_assess_clamp(v);

    dim[NGX_SCENARIO_ASSESS_EFFICIENCY] =
                           ngx_scenario_assess_efficiency(s, target);
}


static ngx_int_t
ngx_scenario_assess_efficiency(ngx_scenario_assess_signals_t *s,
    ngx_int_t target)
{
    int64_t    avg;
    ngx_int_t  pace, latency, extra;

    pace = 100;

    if ((ngx_int_t) s->turns > target) {
        extra = s->turns - target;
        pace = 100 - ngx_scenario_assess_div(100 * (int64_t) extra, target);
        pace = ngx_scenario_assess_clamp(pace);
    }

    /* a short conversation that got nowhere is not efficient */
    if (!s->satisfied) {
        pace = ngx_min(pace, 50);
    }

    latency = 100;

    if (s->replies) {
        avg = s->reply_ms / (int64_t) s->replies;

        if (avg >= NGX_SCENARIO_ASSESS_LATE_MS) {
            latency = 0;

        } else if (avg > NGX_SCENARIO_ASSESS_QUICK_MS) {
            latency = ngx_scenario_assess_div(
                          100 * (NGX_SCENARIO_ASSESS_LATE_MS - avg),
                          NGX_SCENARIO_ASSESS_LATE_MS
                          - NGX_SCENARIO_ASSESS_QUICK_MS);
        }
    }

    /* a quick dismissal is not efficient either (issue 8, item 2) */
    return ngx_scenario_assess_clamp(
               ngx_scenario_assess_div(7 * pace + 3 * latency, 10)
               - 20 * (ngx_int_t) ngx_min(s->rude_replies, 3));
}


/*
 * The weights used, copied into the assessment, so that a blend
 * recomputes overall exactly as the rules did.  A missing, negative or
 * non-numeric weight counts as 1.
 */

static json_t *
ngx_scenario_assess_weights(json_t *weights)
{
    json_t      *w, *out;
    ngx_uint_t   i;

    out = json_object();
    if (out == NULL) {
        return NULL;
    }

    for (i = 0; i < NGX_SCENARIO_ASSESS_DIMS; i++) {
        w = json_object_get(weights, ngx_scenario_assess_dims[i]);

        if (!json_is_number(w) || json_number_value(w) < 0) {
            w = json_integer(1);

        } else {
            w = json_copy(w);
        }

        if (json_object_set_new(out, ngx_scenario_assess_dims[i], w) != 0) {
            json_decref(out);
            return NULL;
        }
    }

    return out;
}


/* Weights become thousandths (capped at 1000) before any arithmetic. */

ngx_int_t
ngx_scenario_assess_overall(json_t *weights, ngx_int_t *dim)
{
    double       x;
    json_t      *w;
    int64_t      sum, total, m;
    ngx_uint_t   i;

    sum = 0;
    total = 0;

    for (i = 0; i < NGX_SCENARIO_ASSESS_DIMS; i++) {
        w = json_object_get(weights, ngx_scenario_assess_dims[i]);

        if (json_is_integer(w)) {
            m = json_integer_value(w);
            m = (m < 0) ? 1000 : ngx_min(m, 1000) * 1000;

        } else if (json_is_real(w) && json_real_value(w) >= 0) {
            x = ngx_min(json_real_value(w), 1000.0);
            m = (int64_t) (x * 1000.0 + 0.5);

        } else {
            m = 1000;
        }

        sum += m * dim[i];
        total += m;
    }

    if (total == 0) {
        /* all weights zero: a plain mean */
        for (i = 0; i < NGX_SCENARIO_ASSESS_DIMS; i++) {
            sum += dim[i];
        }
        total = NGX_SCENARIO_ASSESS_DIMS;
    }

    return ngx_scenario_assess_div(sum, total);
}


/*
 * Feedback, most telling first: the outcome, the goals, the manner, the
 * length of the replies, the pace.  Every remark points at a turn or
 * quotes the trainee.
 */

static json_t *
ngx_scenario_assess_feedback(ngx_scenario_assess_signals_t *s,
    ngx_int_t target)
{
    json_t  *fb;
    u_char   q[NGX_SCENARIO_ASSESS_QUOTE * 2 + NGX_SCENARIO_ASSESS_LEAD];

    fb = json_array();
    if (fb == NULL) {
        return NULL;
    }

    if (s->turns == 0) {
        ngx_scenario_assess_say(fb, "You did not write anything, so there "
                                "is nothing to assess yet.");
        return fb;
    }

    if (s->satisfied) {
        ngx_scenario_assess_say(fb, "They ended satisfied (\"%s\").",
                                ngx_scenario_assess_quote(q, &s->thanks));

    } else {
        ngx_scenario_assess_say(fb, "They did not end satisfied: the "
                                "conversation stopped before an agreed "
                                "resolution.");
    }

    ngx_scenario_assess_say_void(fb, s);

    if (s->noted) {
        ngx_scenario_assess_say(fb, "A note to the grader was left out: "
                                "only what is said to the other person "
                                "counts.");
    }
    ngx_scenario_assess_say_criteria(fb, s);
    ngx_scenario_assess_say_manner(fb, s);
    ngx_scenario_assess_say_length(fb, s);
    ngx_scenario_assess_say_pace(fb, s, target);

    return fb;
}


static void
ngx_scenario_assess_say_criteria(json_t *fb, ngx_scenario_assess_signals_t *s)
{
    u_char       q[NGX_SCENARIO_ASSESS_QUOTE * 2 + NGX_SCENARIO_ASSESS_LEAD];
    json_t      *d;
    size_t       len;
    ngx_uint_t   i;
    const char  *text;

    for (i = 0; i < s->ncriteria; i++) {
        d = json_object_get(s->criterion[i], "description");
        if (!json_is_string(d)) {
            d = json_object_get(s->criterion[i], "key");
        }

        text = json_string_value(d);
        len = ngx_scenario_assess_cut((u_char *) text, json_string_length(d),
                                      NGX_SCENARIO_ASSESS_DESCRIPTION);
        while (len && text[len - 1] == '.') {
            len--;
        }

        if (s->evidence[i].text) {
            ngx_scenario_assess_say(fb, "Goal met at turn %u: %.*s (\"%s\").",
                (unsigned) s->evidence[i].turn, (int) len, text,
                ngx_scenario_assess_quote(q, &s->evidence[i]));

        } else {
            ngx_scenario_assess_say(fb, "Goal not met: %.*s.", (int) len,
                                    text);
        }
    }
}


static void
ngx_scenario_assess_say_manner(json_t *fb, ngx_scenario_assess_signals_t *s)
{
    u_char      q[NGX_SCENARIO_ASSESS_QUOTE * 2 + NGX_SCENARIO_ASSESS_LEAD];
    ngx_uint_t  i;

    if (s->ack.text) {
        ngx_scenario_assess_say(fb, "You acknowledged how they felt at turn "
                                "%u (\"%s\").", (unsigned) s->ack.turn,
                                ngx_scenario_assess_quote(q, &s->ack));
    }

    if (s->apology.text) {
        ngx_scenario_assess_say(fb, "You apologized at turn %u (\"%s\").",
                                (unsigned) s->apology.turn,
                                ngx_scenario_assess_quote(q, &s->apology));
    }

    if (s->warm == 0) {
        ngx_scenario_assess_say(fb, "You never acknowledged how they felt; "
                                "a line such as \"I understand how "
                                "frustrating this is\" lowers the tension.");
    }

    for (i = 0; i < ngx_min(s->rude_replies, 2); i++) {
        ngx_scenario_assess_say(fb, "At turn %u you were dismissive (\"%s\"); "
                                "it costs trust, empathy and resolution.",
                                (unsigned) s->rude_hit[i].turn,
                                ngx_scenario_assess_quote(q,
                                                          &s->rude_hit[i]));
    }

    if (s->vague_hit.text) {
        ngx_scenario_assess_say(fb, "At turn %u your answer was vague "
                                "(\"%s\"); say what will happen and when.",
                                (unsigned) s->vague_hit.turn,
                                ngx_scenario_assess_quote(q, &s->vague_hit));
    }

    if (s->step.text) {
        ngx_scenario_assess_say(fb, "You committed to a concrete next step "
                                "at turn %u (\"%s\").",
                                (unsigned) s->step.turn,
                                ngx_scenario_assess_quote(q, &s->step));

    } else {
        ngx_scenario_assess_say(fb, "You never offered a concrete next step "
                                "(what you will do, and when).");
    }

    if (s->question.text) {
        ngx_scenario_assess_say(fb, "You asked %u question%s, e.g. at turn "
                                "%u (\"%s\").", (unsigned) s->questions,
                                s->questions == 1 ? "" : "s",
                                (unsigned) s->question.turn,
                                ngx_scenario_assess_quote(q, &s->question));

    } else {
        ngx_scenario_assess_say(fb, "You never asked a question; an open "
                                "question shows what matters to them.");
    }
}


static void
ngx_scenario_assess_say_length(json_t *fb, ngx_scenario_assess_signals_t *s)
{
    u_char  q[NGX_SCENARIO_ASSESS_QUOTE * 2 + NGX_SCENARIO_ASSESS_LEAD];

    if (s->longs) {
        ngx_scenario_assess_say(fb, "Your reply at turn %u was %u words "
                                "long; keep replies under %d words so they "
                                "stay readable.",
                                (unsigned) s->longest_turn,
                                (unsigned) s->longest_words,
                                NGX_SCENARIO_ASSESS_LONG_WORDS);
    }

    if (s->terse.text) {
        ngx_scenario_assess_say(fb, "Your reply at turn %u was only %u "
                                "word%s (\"%s\"); a curt answer reads as "
                                "dismissive.", (unsigned) s->terse.turn,
                                (unsigned) s->terse_words,
                                s->terse_words == 1 ? "" : "s",
                                ngx_scenario_assess_quote(q, &s->terse));
    }

    if (s->longs == 0 && s->shorts == 0) {
        ngx_scenario_assess_say(fb, "Your replies averaged %u words: easy "
                                "to read.", (unsigned)
                                ngx_scenario_assess_div(s->words, s->turns));
    }
}


static void
ngx_scenario_assess_say_pace(json_t *fb, ngx_scenario_assess_signals_t *s,
    ngx_int_t target)
{
    if ((ngx_int_t) s->turns > target) {
        ngx_scenario_assess_say(fb, "You took %u turns where about %u are "
                                "expected; combine steps to get there "
                                "sooner.", (unsigned) s->turns,
                                (unsigned) target);

    } else if (s->satisfied) {
        ngx_scenario_assess_say(fb, "You reached the resolution in %u "
                                "turn%s (about %u expected).",
                                (unsigned) s->turns,
                                s->turns == 1 ? "" : "s", (unsigned) target);

    } else {
        ngx_scenario_assess_say(fb, "After %u turn%s (about %u expected) "
                                "nothing was agreed yet.",
                                (unsigned) s->turns,
                                s->turns == 1 ? "" : "s", (unsigned) target);
    }

    if (s->slowest_ms >= NGX_SCENARIO_ASSESS_SLOW_MS) {
        ngx_scenario_assess_say(fb, "Your reply at turn %u came %u s after "
                                "their message; long pauses stall the "
                                "conversation.",
                                (unsigned) s->slowest_turn,
                                (unsigned) ngx_scenario_assess_div(
                                               s->slowest_ms, 1000));
    }
}


/* Appends a line; a line that cannot be made (no memory) is left out. */

static void
ngx_scenario_assess_say(json_t *fb, const char *fmt, ...)
{
    va_list   args;
    json_t   *line;

    va_start(args, fmt);
    line = json_vsprintf(fmt, args);
    va_end(args);

    if (line) {
        json_array_append_new(fb, line);
    }
}


/*
 * The words around a hit, NUL-terminated in buf: from the start of its
 * sentence (at most NGX_SCENARIO_ASSESS_LEAD bytes before it) to the end of
 * the sentence (at most NGX_SCENARIO_ASSESS_QUOTE bytes from the start, or
 * 32 past the hit), cut between words where possible and always between
 * characters, with "..." where it was cut and control characters as
 * spaces.  buf holds NGX_SCENARIO_ASSESS_QUOTE * 2 + LEAD bytes: at most
 * 3 + LEAD + QUOTE (the hit) + 32 + 3 + 1 are written.
 */

static char *
ngx_scenario_assess_quote(u_char *buf, ngx_scenario_assess_hit_t *hit)
{
    u_char      *p, *t, c;
    size_t       start, end, stop, len;
    ngx_uint_t   cut;

    t = hit->text->data;
    len = hit->text->len;
    p = buf;

    /* back to the start of the sentence */
    start = hit->pos;
    cut = 0;

    while (start > 0 && !ngx_scenario_assess_ends(t, len, start - 1)) {
        if (hit->pos - start == NGX_SCENARIO_ASSESS_LEAD) {
            cut = 1;
            break;
        }
        start--;
    }

    if (cut) {
        /* mid-sentence: begin at the next word */
        while (start < hit->pos && !ngx_scenario_assess_space(t[start])) {
            start++;
        }
        p = ngx_cpymem(p, "...", 3);
    }

    while (start < hit->pos && ngx_scenario_assess_space(t[start])) {
        start++;
    }

    /* on to the end of the sentence, unless the hit ends it ("?") */
    end = hit->pos + ngx_min(hit->len, NGX_SCENARIO_ASSESS_QUOTE);
    stop = ngx_max(start + NGX_SCENARIO_ASSESS_QUOTE, end + 32);

    if (end > hit->pos && !ngx_scenario_assess_ends(t, len, end - 1)) {
        while (end < len && end < stop) {
            if (ngx_scenario_assess_ends(t, len, end++)) {
                break;
            }
        }
    }

    /* never end inside a character, nor inside a word when it can */
    end = start + ngx_scenario_assess_cut(t + start, len - start,
                                          end - start);
    cut = (end < len && !ngx_scenario_assess_ends(t, len, end - 1));

    if (cut && !ngx_scenario_assess_space(t[end])) {
        for (stop = end; stop > hit->pos + hit->len; stop--) {
            if (ngx_scenario_assess_space(t[stop - 1])) {
                end = stop - 1;
                break;
            }
        }
    }

    for ( /* void */ ; start < end; start++) {
        c = t[start];
        *p++ = (c < 0x20 || c == 0x7f) ? ' ' : c;
    }

    while (p > buf && p[-1] == ' ') {
        p--;
    }

    if (cut) {
        p = ngx_cpymem(p, "...", 3);
    }

    *p = '\0';

    return (char *) buf;
}


/*
 * Whether a sentence ends at t[i]: ".!?" before a space or the end, or a
 * line break; the dot of "$289.99" does not.
 */

static ngx_uint_t
ngx_scenario_assess_ends(u_char *t, size_t len, size_t i)
{
    if (t[i] == '\n') {
        return 1;
    }

    if (t[i] != '.' && t[i] != '!' && t[i] != '?') {
        return 0;
    }

    return i + 1 == len || ngx_scenario_assess_space(t[i + 1]);
}


/*
 * Whether text contains a phrase of lex: the number of distinct phrases
 * found, and in hit the earliest (the longest at the same offset).
 */

static ngx_uint_t
ngx_scenario_assess_lexicon(ngx_str_t *text, ngx_str_t *lex, ngx_uint_t turn,
    ngx_scenario_assess_hit_t *hit)
{
    size_t      mlen;
    ngx_int_t   pos;
    ngx_uint_t  found;

    found = 0;
    hit->text = NULL;

    for ( /* void */ ; lex->len; lex++) {
        pos = ngx_scenario_assess_find(text, lex, lex->data[0] != '?'
                                       && lex->data[0] < 0x80, &mlen);
        if (pos < 0) {
            continue;
        }

        found++;

        if (hit->text == NULL || (size_t) pos < hit->pos
            || ((size_t) pos == hit->pos && mlen > hit->len))
        {
            hit->text = text;
            hit->pos = pos;
            hit->len = mlen;
            hit->turn = turn;
        }
    }

    return found;
}


/*
 * Case-insensitive search: ASCII letters and the Latin-1 capitals
 * U+00C0-U+00DE fold to lower case on both sides, and an ASCII apostrophe
 * in the needle also matches U+2019, which phone keyboards type.  Valid
 * UTF-8 is self-synchronizing, so a match starts and ends on character
 * boundaries.  With word set, a match must start a word.  Returns the
 * offset and the length matched in *mlen, or -1.
 */

static ngx_int_t
ngx_scenario_assess_find(ngx_str_t *text, ngx_str_t *needle, ngx_uint_t word,
    size_t *mlen)
{
    size_t  i, n;

    if (needle->len == 0) {
        return -1;
    }

    for (i = 0; i < text->len; i++) {
        if (word && i > 0 && ngx_scenario_assess_wordc(text->data[i - 1])) {
            continue;
        }

        n = ngx_scenario_assess_match(text, i, needle);

        if (n) {
            *mlen = n;
            return i;
        }
    }

    return -1;
}


#define ngx_scenario_assess_fold(prev, c)                                    \
    (((c) >= 'A' && (c) <= 'Z') ? ((c) | 0x20)                              \
     : ((prev) == 0xc3 && (c) >= 0x80 && (c) <= 0x9e && (c) != 0x97)         \
       ? ((c) + 0x20) : (c))


static size_t
ngx_scenario_assess_match(ngx_str_t *text, size_t at, ngx_str_t *needle)
{
    u_char  *t, *d, tp, np;
    size_t   j, k;

    t = text->data;
    d = needle->data;
    k = at;

    for (j = 0; j < needle->len; j++) {
        if (k >= text->len) {
            return 0;
        }

        if (d[j] == '\'' && k + 2 < text->len
            && t[k] == 0xe2 && t[k + 1] == 0x80 && t[k + 2] == 0x99)
        {
            k += 3;
            continue;
        }

        tp = k ? t[k - 1] : 0;
        np = j ? d[j - 1] : 0;

        if (ngx_scenario_assess_fold(np, d[j])
            != ngx_scenario_assess_fold(tp, t[k]))
        {
            return 0;
        }

        k++;
    }

    return k - at;
}


static ngx_uint_t
ngx_scenario_assess_words(ngx_str_t *text)
{
    size_t      i;
    ngx_uint_t  n, in;

    n = 0;
    in = 0;

    for (i = 0; i < text->len; i++) {
        if (ngx_scenario_assess_space(text->data[i])) {
            in = 0;

        } else if (!in) {
            in = 1;
            n++;
        }
    }

    return n;
}


/* At most max bytes of p, never ending inside a UTF-8 character. */

static size_t
ngx_scenario_assess_cut(u_char *p, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }

    while (max > 0 && (p[max] & 0xc0) == 0x80) {
        max--;
    }

    return max;
}


/* a / b rounded half up, for a >= 0 and b > 0 */

static ngx_int_t
ngx_scenario_assess_div(int64_t a, int64_t b)
{
    if (a <= 0 || b <= 0) {
        return 0;
    }

    return (ngx_int_t) ((a + b / 2) / b);
}


static ngx_int_t
ngx_scenario_assess_clamp(ngx_int_t v)
{
    return v < 0 ? 0 : (v > 100 ? 100 : v);
}

