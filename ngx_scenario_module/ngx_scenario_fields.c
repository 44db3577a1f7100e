/*
 * The fields of a scenario that trainers write (POST and PUT
 * /authoring/scenarios): one table says, per field, its type and its
 * bounds; the check walks it and names the first field that is wrong, as
 * "persona.name" or "criteria[2].keywords[0]".  Unknown fields are
 * refused too, so that a misspelt one is not silently dropped.
 *
 * jansson has already refused invalid UTF-8 and NUL; lengths count
 * characters (code points), and text may hold no control character but
 * tab and newline.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_scenario.h"


typedef enum {
    NGX_SCENARIO_F_TEXT = 0,
    NGX_SCENARIO_F_KEY,          /* [a-z0-9_] */
    NGX_SCENARIO_F_ENUM,
    NGX_SCENARIO_F_INT,
    NGX_SCENARIO_F_LIST,         /* of texts, each 1 to item characters */
    NGX_SCENARIO_F_OBJECT,       /* its fields follow, named "x.y" */
    NGX_SCENARIO_F_CRITERIA,
    NGX_SCENARIO_F_WEIGHTS
} ngx_scenario_field_type_e;


typedef struct {
    const char          *name;
    ngx_uint_t           type;
    ngx_int_t            min;     /* characters, items, or the value */
    ngx_int_t            max;
    ngx_int_t            item;    /* a list's item, in characters */
    ngx_uint_t           optional;
    const char         **values;  /* an enum's */
} ngx_scenario_field_t;


typedef struct {
    u_char              *field;
    u_char              *field_end;
    u_char              *msg;
    u_char              *msg_end;
} ngx_scenario_field_err_t;


static ngx_int_t ngx_scenario_fields_walk(json_t *obj,
    ngx_scenario_field_t *fields, ngx_uint_t n, const char *prefix,
    ngx_scenario_field_err_t *err);
static ngx_int_t ngx_scenario_field_value(json_t *v, ngx_scenario_field_t *f,
    const char *path, ngx_scenario_field_err_t *err);
static ngx_int_t ngx_scenario_field_text(json_t *v, ngx_int_t min,
    ngx_int_t max, ngx_uint_t key, const char *path,
    ngx_scenario_field_err_t *err);
static ngx_int_t ngx_scenario_field_list(json_t *v, ngx_scenario_field_t *f,
    const char *path, ngx_scenario_field_err_t *err);
static ngx_int_t ngx_scenario_field_criteria(json_t *v,
    ngx_scenario_field_t *f, const char *path,
    ngx_scenario_field_err_t *err);
static ngx_int_t ngx_scenario_field_weights(json_t *v, const char *path,
    ngx_scenario_field_err_t *err);
static ngx_int_t ngx_scenario_field_unknown(json_t *obj,
    ngx_scenario_field_t *fields, ngx_uint_t n, const char *prefix,
    ngx_scenario_field_err_t *err);
static ngx_int_t ngx_scenario_field_fail(ngx_scenario_field_err_t *err,
    const char *path, const char *fmt, ...);


static const char  *ngx_scenario_difficulties[] = {
    "easy", "medium", "hard", NULL
};

static const char  *ngx_scenario_dimensions[] = {
    "empathy", "clarity", "resolution", "efficiency", NULL
};


static ngx_scenario_field_t  ngx_scenario_fields[] = {
    { "title",            NGX_SCENARIO_F_TEXT,     3,  120, 0, 0, NULL },
    { "description",      NGX_SCENARIO_F_TEXT,     1, 1000, 0, 0, NULL },
    { "difficulty",       NGX_SCENARIO_F_ENUM,     0,    0, 0, 0,
      ngx_scenario_difficulties },
    { "persona",          NGX_SCENARIO_F_OBJECT,   0,    0, 0, 0, NULL },
    { "persona.name",     NGX_SCENARIO_F_TEXT,     1,   80, 0, 0, NULL },
    { "persona.role",     NGX_SCENARIO_F_TEXT,     1,  160, 0, 0, NULL },
    { "persona.prompt",   NGX_SCENARIO_F_TEXT,    20, 8000, 0, 0, NULL },
    { "backstory",        NGX_SCENARIO_F_TEXT,     1, 4000, 0, 0, NULL },
    { "goal",             NGX_SCENARIO_F_TEXT,     1, 1000, 0, 0, NULL },
    { "opening_line",     NGX_SCENARIO_F_TEXT,     1, 1000, 0, 0, NULL },
    { "good_resolution",  NGX_SCENARIO_F_TEXT,     1, 4000, 0, 0, NULL },
    { "criteria",         NGX_SCENARIO_F_CRITERIA, 1,   12, 0, 0, NULL },
    { "weights",          NGX_SCENARIO_F_WEIGHTS,  0,   10, 0, 0, NULL },
    { "target_turns",     NGX_SCENARIO_F_INT,      1,   50, 0, 0, NULL },
    { "xp_reward",        NGX_SCENARIO_F_INT,      1, 1000, 0, 0, NULL },
    { "pass_mark",        NGX_SCENARIO_F_INT,      0,  100, 0, 0, NULL }
};

/* one rubric criterion: the keywords are what the rules look for */
static ngx_scenario_field_t  ngx_scenario_criterion_fields[] = {
    { "key",              NGX_SCENARIO_F_KEY,      1,   40, 0, 0, NULL },
    { "description",      NGX_SCENARIO_F_TEXT,     1,  300, 0, 0, NULL },
    { "keywords",         NGX_SCENARIO_F_LIST,     1,   20, 60, 0, NULL },
    { "examples",         NGX_SCENARIO_F_LIST,     0,   10, 300, 1, NULL },
    { "weight",           NGX_SCENARIO_F_INT,      1,   10, 0, 0, NULL }
};


#define ngx_scenario_nfields(a)  (sizeof(a) / sizeof(a[0]))


/*
 * NGX_OK, or NGX_DECLINED with the field's name and what is wrong with it
 * written into field and msg (NUL-terminated).
 */

ngx_int_t
ngx_scenario_fields_check(json_t *body, u_char *field, size_t field_size,
    u_char *msg, size_t msg_size)
{
    ngx_scenario_field_err_t  err;

    err.field = field;
    err.field_end = field + field_size;
    err.msg = msg;
    err.msg_end = msg + msg_size;

    if (ngx_scenario_field_unknown(body, ngx_scenario_fields,
                                   ngx_scenario_nfields(ngx_scenario_fields),
                                   "", &err)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return ngx_scenario_fields_walk(body, ngx_scenario_fields,
                                    ngx_scenario_nfields(ngx_scenario_fields),
                                    "", &err);
}


static ngx_int_t
ngx_scenario_fields_walk(json_t *obj, ngx_scenario_field_t *fields,
    ngx_uint_t n, const char *prefix, ngx_scenario_field_err_t *err)
{
    char         path[96], outer[64];
    json_t      *v;
    const char  *dot;
    ngx_uint_t   i;

    for (i = 0; i < n; i++) {
        ngx_snprintf((u_char *) path, sizeof(path), "%s%s%Z",
                     prefix, fields[i].name);

        dot = ngx_strchr(fields[i].name, '.');

        if (dot == NULL) {
            v = json_object_get(obj, fields[i].name);

        } else {
            ngx_snprintf((u_char *) outer, sizeof(outer), "%*s%Z",
                         (size_t) (dot - fields[i].name), fields[i].name);
            v = json_object_get(json_object_get(obj, outer), dot + 1);
        }

        if (v == NULL || json_is_null(v)) {
            if (fields[i].optional) {
                continue;
            }

            return ngx_scenario_field_fail(err, path, "is required");
        }

        if (ngx_scenario_field_value(v, &fields[i], path, err) != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_field_value(json_t *v, ngx_scenario_field_t *f,
    const char *path, ngx_scenario_field_err_t *err)
{
    json_int_t    n;
    const char  **e;

    switch (f->type) {

    case NGX_SCENARIO_F_TEXT:
    case NGX_SCENARIO_F_KEY:
        return ngx_scenario_field_text(v, f->min, f->max,
                                       f->type == NGX_SCENARIO_F_KEY, path,
                                       err);

    case NGX_SCENARIO_F_ENUM:
        for (e = f->values; json_is_string(v) && *e; e++) {
            if (ngx_strcmp(json_string_value(v), *e) == 0) {
                return NGX_OK;
            }
        }

        return ngx_scenario_field_fail(err, path, "must be one of %s, %s "
                                       "or %s", f->values[0], f->values[1],
                                       f->values[2]);

    case NGX_SCENARIO_F_INT:
        n = json_is_integer(v) ? json_integer_value(v) : f->min - 1;

        if (n < f->min || n > f->max) {
            return ngx_scenario_field_fail(err, path, "must be an integer "
                                           "from %i to %i", f->min, f->max);
        }

        return NGX_OK;

    case NGX_SCENARIO_F_LIST:
        return ngx_scenario_field_list(v, f, path, err);

    case NGX_SCENARIO_F_OBJECT:
        if (!json_is_object(v)) {
            return ngx_scenario_field_fail(err, path, "must be an object");
        }

        return ngx_scenario_field_unknown(v, ngx_scenario_fields,
                                          ngx_scenario_nfields(
                                              ngx_scenario_fields),
                                          path, err);

    case NGX_SCENARIO_F_CRITERIA:
        return ngx_scenario_field_criteria(v, f, path, err);

    default: /* NGX_SCENARIO_F_WEIGHTS */
        return ngx_scenario_field_weights(v, path, err);
    }
}


static ngx_int_t
ngx_scenario_field_text(json_t *v, ngx_int_t min, ngx_int_t max,
    ngx_uint_t key, const char *path, ngx_scenario_field_err_t *err)
{
    u_char      *p, *last;
    ngx_int_t    chars;
    ngx_uint_t   blank;

    if (!json_is_string(v)) {
        return ngx_scenario_field_fail(err, path, "must be a string");
    }

    p = (u_char *) json_string_value(v);
    last = p + json_string_length(v);

    chars = 0;
    blank = 1;

    for ( /* void */ ; p < last; p++) {
        if ((*p & 0xc0) != 0x80) {
            chars++;
        }

        if (key && !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                     || *p == '_'))
        {
            return ngx_scenario_field_fail(err, path, "may hold only a-z, "
                                           "0-9 and _");
        }

        if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f) {
            return ngx_scenario_field_fail(err, path, "has a control "
                                           "character");
        }

        if (*p != ' ' && *p != '\t' && *p != '\n') {
            blank = 0;
        }
    }

    if (chars < min || chars > max || (blank && min > 0)) {
        return ngx_scenario_field_fail(err, path, "must be %i to %i "
                                       "characters, not blank", min, max);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_field_list(json_t *v, ngx_scenario_field_t *f,
    const char *path, ngx_scenario_field_err_t *err)
{
    char     item[112];
    size_t   i;
    json_t  *s;

    if (!json_is_array(v) || (ngx_int_t) json_array_size(v) < f->min
        || (ngx_int_t) json_array_size(v) > f->max)
    {
        return ngx_scenario_field_fail(err, path, "must be a list of %i to "
                                       "%i strings", f->min, f->max);
    }

    json_array_foreach(v, i, s) {
        ngx_snprintf((u_char *) item, sizeof(item), "%s[%uz]%Z", path, i);

        if (ngx_scenario_field_text(s, 1, f->item, 0, item, err) != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_field_criteria(json_t *v, ngx_scenario_field_t *f,
    const char *path, ngx_scenario_field_err_t *err)
{
    char     prefix[64];
    size_t   i, j;
    json_t  *c, *other;

    if (!json_is_array(v) || (ngx_int_t) json_array_size(v) < f->min
        || (ngx_int_t) json_array_size(v) > f->max)
    {
        return ngx_scenario_field_fail(err, path, "must be a list of %i to "
                                       "%i criteria", f->min, f->max);
    }

    json_array_foreach(v, i, c) {
        ngx_snprintf((u_char *) prefix, sizeof(prefix), "%s[%uz].%Z",
                     path, i);

        if (!json_is_object(c)) {
            prefix[ngx_strlen(prefix) - 1] = '\0';
            return ngx_scenario_field_fail(err, prefix, "must be an object");
        }

        if (ngx_scenario_field_unknown(c, ngx_scenario_criterion_fields,
                                       ngx_scenario_nfields(
                                           ngx_scenario_criterion_fields),
                                       prefix, err)
            != NGX_OK
            || ngx_scenario_fields_walk(c, ngx_scenario_criterion_fields,
                                        ngx_scenario_nfields(
                                            ngx_scenario_criterion_fields),
                                        prefix, err)
               != NGX_OK)
        {
            return NGX_DECLINED;
        }

        /* the assessment reports criteria by key: one each */

        for (j = 0; j < i; j++) {
            other = json_array_get(v, j);

            if (ngx_strcmp(json_string_value(json_object_get(other, "key")),
                           json_string_value(json_object_get(c, "key")))
                == 0)
            {
                ngx_snprintf((u_char *) prefix, sizeof(prefix),
                             "%s[%uz].key%Z", path, i);
                return ngx_scenario_field_fail(err, prefix, "repeats the "
                                               "key of %s[%uz]", path, j);
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_field_weights(json_t *v, const char *path,
    ngx_scenario_field_err_t *err)
{
    char          dim[64];
    json_t       *w;
    json_int_t    sum;
    const char   *key, **d;

    if (!json_is_object(v)) {
        return ngx_scenario_field_fail(err, path, "must be an object of "
                                       "the four dimensions' weights");
    }

    json_object_foreach(v, key, w) {
        for (d = ngx_scenario_dimensions; *d; d++) {
            if (ngx_strcmp(key, *d) == 0) {
                break;
            }
        }

        if (*d == NULL) {
            ngx_snprintf((u_char *) dim, sizeof(dim), "%s.%s%Z", path, key);
            return ngx_scenario_field_fail(err, dim, "is not a dimension "
                                           "(empathy, clarity, resolution, "
                                           "efficiency)");
        }
    }

    sum = 0;

    for (d = ngx_scenario_dimensions; *d; d++) {
        ngx_snprintf((u_char *) dim, sizeof(dim), "%s.%s%Z", path, *d);
        w = json_object_get(v, *d);

        if (!json_is_integer(w) || json_integer_value(w) < 0
            || json_integer_value(w) > 10)
        {
            return ngx_scenario_field_fail(err, dim, "must be an integer "
                                           "from 0 to 10");
        }

        sum += json_integer_value(w);
    }

    if (sum == 0) {
        return ngx_scenario_field_fail(err, path, "must not all be 0");
    }

    return NGX_OK;
}


/* a key of obj that the table (at this prefix) does not name */

static ngx_int_t
ngx_scenario_field_unknown(json_t *obj, ngx_scenario_field_t *fields,
    ngx_uint_t n, const char *prefix, ngx_scenario_field_err_t *err)
{
    char         path[96], full[96];
    size_t       len;
    json_t      *v;
    const char  *key;
    ngx_uint_t   i;

    /* an object field's own fields are named "prefix.key" in the table */
    len = ngx_strlen(prefix);

    json_object_foreach(obj, key, v) {
        if (len && prefix[len - 1] != '.') {
            ngx_snprintf((u_char *) full, sizeof(full), "%s.%s%Z",
                         prefix, key);

        } else {
            ngx_snprintf((u_char *) full, sizeof(full), "%s%Z", key);
        }

        for (i = 0; i < n; i++) {
            if (ngx_strcmp(fields[i].name, full) == 0) {
                break;
            }
        }

        if (i == n) {
            ngx_snprintf((u_char *) path, sizeof(path), "%s%s%s%Z", prefix,
                         (len && prefix[len - 1] != '.') ? "." : "", key);
            return ngx_scenario_field_fail(err, path, "is not a field here");
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_scenario_field_fail(ngx_scenario_field_err_t *err, const char *path,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    ngx_snprintf(err->field, err->field_end - err->field - 1, "%s%Z", path);
    err->field[err->field_end - err->field - 1] = '\0';

    p = ngx_snprintf(err->msg, err->msg_end - err->msg - 1, "\"%s\" ", path);

    va_start(args, fmt);
    p = ngx_vslprintf(p, err->msg_end - 1, fmt, args);
    va_end(args);

    *p = '\0';

    return NGX_DECLINED;
}
