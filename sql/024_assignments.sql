-- 024_assignments.sql: a trainer assigns a scenario to trainees or to the
-- whole organization, with an optional due date, required score and
-- maximum attempts (issue 9, item 3).
--
-- An assignment's status for a trainee is computed when it is read, from
-- the trainee's sessions of that scenario begun since it was assigned
-- (trials never count), so a resolve updates it at once without any
-- bookkeeping:
--   passed       one of the counted attempts (the first max_attempts) was
--                resolved with overall >= the required score (default:
--                the scenario's pass mark)
--   not_passed   every allowed attempt is resolved, none passed
--   overdue      the due date is past, not passed
--   in_progress  an attempt was begun
--   not_started  none yet
-- Attempts beyond max_attempts may still be played; they do not count.

CREATE TABLE IF NOT EXISTS assignments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id         bigint      NOT NULL REFERENCES organizations (id)
                               ON DELETE CASCADE,
    scenario_id    int         NOT NULL REFERENCES scenarios (id),
    user_id        bigint      REFERENCES users (id) ON DELETE CASCADE,
                               -- NULL: every trainee of the organization
    assigned_by    bigint      REFERENCES users (id) ON DELETE SET NULL,
    due_at         timestamptz,
    required_score int         CHECK (required_score BETWEEN 0 AND 100),
    max_attempts   int         CHECK (max_attempts BETWEEN 1 AND 100),
    created_at     timestamptz NOT NULL DEFAULT now(),
    cancelled_at   timestamptz
);

CREATE INDEX IF NOT EXISTS assignments_org_idx ON assignments (org_id, id)
    WHERE cancelled_at IS NULL;
CREATE INDEX IF NOT EXISTS assignments_user_idx ON assignments (user_id)
    WHERE cancelled_at IS NULL;


CREATE OR REPLACE FUNCTION assignment_progress(a assignments, p_user bigint)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH tries AS (
        SELECT se.status, x.overall
        FROM sessions se
        LEFT JOIN assessments x ON x.session_id = se.id
        WHERE se.user_id = p_user AND se.scenario_id = a.scenario_id
          AND NOT se.trial AND se.created_at >= a.created_at
        ORDER BY se.created_at, se.id
        LIMIT a.max_attempts
    ), t AS (
        SELECT count(*) AS attempts,
               count(*) FILTER (WHERE status = 'resolved') AS resolved,
               max(overall) AS best,
               coalesce(a.required_score,
                        (SELECT sc.pass_mark FROM scenarios sc
                         WHERE sc.id = a.scenario_id)) AS required
        FROM tries
    )
    SELECT jsonb_build_object(
        'attempts', t.attempts,
        'best_score', t.best,
        'status', CASE
            WHEN t.best >= t.required THEN 'passed'
            WHEN a.max_attempts IS NOT NULL
                 AND t.resolved >= a.max_attempts THEN 'not_passed'
            WHEN a.due_at IS NOT NULL AND a.due_at < now() THEN 'overdue'
            WHEN t.attempts > 0 THEN 'in_progress'
            ELSE 'not_started' END)
    FROM t;
$$;

CREATE OR REPLACE FUNCTION assignment_doc(a assignments) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', a.id,
        'scenario', (SELECT jsonb_build_object('id', sc.id, 'slug', sc.slug,
                                               'title', sc.title,
                                               'difficulty', sc.difficulty)
                     FROM scenarios sc WHERE sc.id = a.scenario_id),
        'user_id', a.user_id,
        'due_at', api_time(a.due_at),
        'required_score', a.required_score,
        'max_attempts', a.max_attempts,
        'assigned_by', a.assigned_by,
        'created_at', api_time(a.created_at));
$$;

-- the members an assignment is for, now
CREATE OR REPLACE FUNCTION assignment_members(a assignments)
RETURNS SETOF users
LANGUAGE sql STABLE AS $$
    SELECT u.* FROM users u
    WHERE u.org_id = a.org_id
      AND (u.id = a.user_id OR (a.user_id IS NULL AND u.role = 'trainee'));
$$;


CREATE OR REPLACE FUNCTION api_field_err(p_field text, p_message text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('code', 'bad_request',
                              'message', '"' || p_field || '" ' || p_message,
                              'field', p_field);
$$;


-- NULL when p_key is absent or an integer from p_min to p_max, else the
-- 400 that names it
CREATE OR REPLACE FUNCTION api_int_check(p_doc jsonb, p_key text,
    p_min int, p_max int)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    -- statements, not one expression: the cast runs only after the test
    IF NOT p_doc ? p_key THEN
        RETURN NULL;
    END IF;

    IF jsonb_typeof(p_doc -> p_key) = 'number'
       AND (p_doc ->> p_key) ~ '^-?[0-9]{1,9}$'
    THEN
        IF (p_doc ->> p_key)::int BETWEEN p_min AND p_max THEN
            RETURN NULL;
        END IF;
    END IF;

    RETURN api_field_err(p_key, format('must be an integer from %s to %s',
                                       p_min, p_max));
END;
$$;


-- POST /assignments {"scenario_id", "user_ids"?, "due_at"?,
-- "required_score"?, "max_attempts"?}: one assignment per member named,
-- or one for the whole organization.  The scenario must be one the
-- organization's trainees may play; the members must be the
-- organization's (else 404, as for anything of another organization).
CREATE OR REPLACE FUNCTION assignment_create(p_caller bigint, p_doc jsonb)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org      bigint := author_org(p_caller);
    v_scenario int;
    v_users    bigint[];
    v_due      timestamptz;
    v_score    int;
    v_max      int;
    v_key      text;
    v_err      jsonb;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    SELECT k INTO v_key FROM jsonb_object_keys(p_doc) k
    WHERE k NOT IN ('scenario_id', 'user_ids', 'due_at', 'required_score',
                    'max_attempts')
    LIMIT 1;

    IF v_key IS NOT NULL THEN
        RETURN QUERY SELECT 400, api_field_err(v_key, 'is not a field here');
        RETURN;
    END IF;

    v_err := coalesce(
        CASE WHEN NOT p_doc ? 'scenario_id'
             THEN api_field_err('scenario_id', 'is required') END,
        api_int_check(p_doc, 'scenario_id', 1, 999999999),
        api_int_check(p_doc, 'required_score', 0, 100),
        api_int_check(p_doc, 'max_attempts', 1, 100));

    IF v_err IS NOT NULL THEN
        RETURN QUERY SELECT 400, v_err;
        RETURN;
    END IF;

    v_scenario := (p_doc ->> 'scenario_id')::int;

    IF p_doc ? 'user_ids' THEN
        IF jsonb_typeof(p_doc -> 'user_ids') IS DISTINCT FROM 'array'
           OR jsonb_array_length(p_doc -> 'user_ids') NOT BETWEEN 1 AND 500
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_doc -> 'user_ids') e
                      WHERE jsonb_typeof(e) <> 'number'
                         OR e::text !~ '^[1-9][0-9]{0,17}$')
        THEN
            RETURN QUERY SELECT 400, api_field_err('user_ids',
                'must be a list of 1 to 500 member ids');
            RETURN;
        END IF;

        SELECT array_agg(DISTINCT e::text::bigint) INTO v_users
        FROM jsonb_array_elements(p_doc -> 'user_ids') e;
    END IF;

    IF p_doc ? 'due_at' THEN
        IF jsonb_typeof(p_doc -> 'due_at') IS DISTINCT FROM 'string'
           OR (p_doc ->> 'due_at') !~
              '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$'
        THEN
            RETURN QUERY SELECT 400, api_field_err('due_at',
                'must be an RFC 3339 time, as 2026-12-31T17:00:00Z');
            RETURN;
        END IF;

        BEGIN
            v_due := (p_doc ->> 'due_at')::timestamptz;
        EXCEPTION WHEN others THEN
            RETURN QUERY SELECT 400, api_field_err('due_at',
                'is not a valid time');
            RETURN;
        END;
    END IF;

    v_score := (p_doc ->> 'required_score')::int;
    v_max := (p_doc ->> 'max_attempts')::int;

    IF NOT EXISTS (SELECT 1 FROM scenarios sc
                   WHERE sc.id = v_scenario AND sc.status = 'published'
                     AND (sc.org_id IS NULL OR sc.org_id = v_org))
    THEN
        RETURN QUERY SELECT 404, api_err('not_found',
            'no such published scenario');
        RETURN;
    END IF;

    IF v_users IS NOT NULL
       AND (SELECT count(*) FROM users u
            WHERE u.id = ANY (v_users) AND u.org_id = v_org)
           <> cardinality(v_users)
    THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such member');
        RETURN;
    END IF;

    RETURN QUERY
    WITH made AS (
        INSERT INTO assignments (org_id, scenario_id, user_id, assigned_by,
                                 due_at, required_score, max_attempts)
        SELECT v_org, v_scenario, t.u, p_caller, v_due, v_score, v_max
        FROM unnest(coalesce(v_users, ARRAY[NULL::bigint])) t(u)
        RETURNING *
    )
    SELECT 201, jsonb_agg(assignment_doc(m) ORDER BY m.id) FROM made m;
END;
$$;


-- GET /assignments: the organization's, each with its members' progress
CREATE OR REPLACE FUNCTION assignment_list(p_caller bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_org bigint := author_org(p_caller);
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, coalesce(jsonb_agg(
        assignment_doc(a) || jsonb_build_object('members', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'user_id', m.id, 'display_name', m.display_name)
                       || assignment_progress(a, m.id) ORDER BY m.id), '[]')
            FROM assignment_members(a) m))
        ORDER BY a.id DESC), '[]')
    FROM (SELECT * FROM assignments
          WHERE org_id = v_org AND cancelled_at IS NULL
          ORDER BY id DESC LIMIT 200) a;
END;
$$;


-- DELETE /assignments/{id}
CREATE OR REPLACE FUNCTION assignment_cancel(p_caller bigint, p_id bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org bigint := author_org(p_caller);
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    UPDATE assignments SET cancelled_at = now()
    WHERE id = p_id AND org_id = v_org AND cancelled_at IS NULL;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such assignment');
        RETURN;
    END IF;

    RETURN QUERY SELECT 204, NULL::jsonb;
END;
$$;


-- GET /me/assignments: the caller's, due first, with their status
CREATE OR REPLACE FUNCTION assignment_mine(p_caller bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE sql STABLE AS $$
    SELECT 200, coalesce(jsonb_agg(
        assignment_doc(a) || assignment_progress(a, p_caller)
        ORDER BY a.due_at NULLS LAST, a.id), '[]')
    FROM users u
    JOIN assignments a ON a.org_id = u.org_id AND a.cancelled_at IS NULL
     AND (a.user_id = u.id OR (a.user_id IS NULL AND u.role = 'trainee'))
    WHERE u.id = p_caller;
$$;

-- Re-runnable: CREATE OR REPLACE and IF NOT EXISTS throughout.
INSERT INTO schema_migrations (version) VALUES ('024_assignments')
ON CONFLICT DO NOTHING;
