-- 026_review.sql: a trainer's review of the team (issue 9, item 4).  Same
-- conventions as 022-024: one call per endpoint, (status, body), the
-- caller's role and organization checked in the query; what belongs to
-- another organization is not found (404), a trainee is refused (403).
--
-- The team is the organization's members of role trainee; a session is
-- reviewable when its user is a member of the caller's organization.
-- Trials (drafts tried by a trainer) never count in the aggregates.
--
-- An override replaces the assessment's overall score and is kept in
-- review_overrides (who, when, the old and the new score, the reason).
-- XP follows it: the session's XP becomes what game_xp gives for the new
-- score (with the session's own first-time and same-day factors), and the
-- difference is one xp_ledger row ("override:<id>").  An override to the
-- score the session already has changes nothing (no row, no XP), so a
-- repeated one is idempotent.  Achievements are not revisited.

CREATE TABLE IF NOT EXISTS review_comments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id bigint      NOT NULL REFERENCES sessions (id)
                           ON DELETE CASCADE,
    author_id  bigint      REFERENCES users (id) ON DELETE SET NULL,
    body       text        NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS review_comments_session_idx
    ON review_comments (session_id, id);

CREATE TABLE IF NOT EXISTS review_overrides (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id bigint      NOT NULL REFERENCES sessions (id)
                           ON DELETE CASCADE,
    author_id  bigint      REFERENCES users (id) ON DELETE SET NULL,
    old_score  int         NOT NULL CHECK (old_score BETWEEN 0 AND 100),
    new_score  int         NOT NULL CHECK (new_score BETWEEN 0 AND 100),
    reason     text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    xp_delta   int         NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS review_overrides_session_idx
    ON review_overrides (session_id, id);

-- the team view reads every session of the organization's members
CREATE INDEX IF NOT EXISTS sessions_user_created_idx
    ON sessions (user_id, created_at);


CREATE OR REPLACE FUNCTION review_person(p_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', u.id, 'display_name', u.display_name)
    FROM users u WHERE u.id = p_id;
$$;

CREATE OR REPLACE FUNCTION review_comment_doc(c review_comments) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', c.id, 'session_id', c.session_id,
                              'author', review_person(c.author_id),
                              'body', c.body,
                              'created_at', api_time(c.created_at));
$$;

CREATE OR REPLACE FUNCTION review_override_doc(o review_overrides)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', o.id, 'session_id', o.session_id,
                              'author', review_person(o.author_id),
                              'old_score', o.old_score,
                              'new_score', o.new_score,
                              'reason', o.reason,
                              'xp_delta', o.xp_delta,
                              'created_at', api_time(o.created_at));
$$;

-- a session's comments and overrides, oldest first
CREATE OR REPLACE FUNCTION review_notes(p_session bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'comments', coalesce((SELECT jsonb_agg(review_comment_doc(c)
                                               ORDER BY c.id)
                              FROM review_comments c
                              WHERE c.session_id = p_session), '[]'),
        'overrides', coalesce((SELECT jsonb_agg(review_override_doc(o)
                                                ORDER BY o.id)
                               FROM review_overrides o
                               WHERE o.session_id = p_session), '[]'));
$$;

-- the session, when the caller may review it (else NULL: not found)
CREATE OR REPLACE FUNCTION review_session_of(p_org bigint, p_session bigint)
RETURNS sessions
LANGUAGE sql STABLE AS $$
    SELECT se.* FROM sessions se JOIN users u ON u.id = se.user_id
    WHERE se.id = p_session AND u.org_id = p_org;
$$;

-- one session's line: scores and what each criterion found
CREATE OR REPLACE FUNCTION review_session_line(se sessions) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', se.id,
        'scenario', jsonb_build_object('id', v.scenario_id, 'title', v.title,
                                       'version', v.version),
        'status', se.status,
        'trial', se.trial,
        'created_at', api_time(se.created_at),
        'resolved_at', api_time(se.resolved_at),
        'overall', a.overall,
        'passed', a.overall >= v.pass_mark,
        'dimensions', CASE WHEN a.session_id IS NOT NULL THEN
            jsonb_build_object('empathy', a.empathy, 'clarity', a.clarity,
                               'resolution', a.resolution,
                               'efficiency', a.efficiency) END,
        'criteria', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'key', c ->> 'key',
                                  'met', (c ->> 'met')::boolean))
                              FROM jsonb_array_elements(a.criteria) c), '[]'),
        'overridden', EXISTS (SELECT 1 FROM review_overrides o
                              WHERE o.session_id = se.id))
    FROM scenario_versions v
    LEFT JOIN assessments a ON a.session_id = se.id
    WHERE v.scenario_id = se.scenario_id AND v.version = se.scenario_version;
$$;

-- per criterion (of a scenario): how often the sessions met it, weakest
-- first; p_users the sessions' users
CREATE OR REPLACE FUNCTION review_criteria(p_users bigint[], p_limit int)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(c.doc ORDER BY c.rate, c.assessed DESC,
                              c.scenario_id, c.key), '[]')
    FROM (
        SELECT se.scenario_id, k.c ->> 'key' AS key,
               count(*) AS assessed,
               count(*) FILTER (WHERE (k.c ->> 'met')::boolean)::numeric
                   / count(*) AS rate,
               jsonb_build_object(
                   'scenario', jsonb_build_object('id', se.scenario_id,
                       'title', (SELECT sc.title FROM scenarios sc
                                 WHERE sc.id = se.scenario_id)),
                   'key', k.c ->> 'key',
                   'description', max(k.c ->> 'description'),
                   'assessed', count(*),
                   'met', count(*) FILTER (WHERE (k.c ->> 'met')::boolean),
                   'met_rate', round(count(*) FILTER (
                                   WHERE (k.c ->> 'met')::boolean)::numeric
                                   / count(*), 2)) AS doc
        FROM sessions se
        JOIN assessments a ON a.session_id = se.id
        CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(a.criteria) = 'array'
                 THEN a.criteria ELSE '[]' END) k(c)
        WHERE se.user_id = ANY (p_users) AND NOT se.trial
        GROUP BY se.scenario_id, k.c ->> 'key'
        ORDER BY 4, 3 DESC, 1, 2
        LIMIT p_limit
    ) c;
$$;


-- GET /review/team: per trainee, attempts and average scores; the
-- criteria the team meets least
CREATE OR REPLACE FUNCTION review_team(p_caller bigint)
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

    RETURN QUERY
    WITH team AS (
        SELECT u.id, u.display_name, u.email, u.xp, u.level
        FROM users u WHERE u.org_id = v_org AND u.role = 'trainee'
    ), stats AS (
        SELECT se.user_id,
               count(*) AS attempts,
               count(a.session_id) AS resolved,
               round(avg(a.overall))::int AS overall,
               max(a.overall) AS best,
               round(avg(a.empathy))::int AS empathy,
               round(avg(a.clarity))::int AS clarity,
               round(avg(a.resolution))::int AS resolution,
               round(avg(a.efficiency))::int AS efficiency,
               max(se.created_at) AS last_at
        FROM sessions se
        LEFT JOIN assessments a ON a.session_id = se.id
        WHERE se.user_id IN (SELECT id FROM team) AND NOT se.trial
        GROUP BY se.user_id
    )
    SELECT 200, jsonb_build_object(
        'trainees', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'id', t.id, 'display_name', t.display_name,
                       'email', t.email, 'xp', t.xp, 'level', t.level,
                       'attempts', coalesce(s.attempts, 0),
                       'resolved', coalesce(s.resolved, 0),
                       'average_overall', s.overall,
                       'best_overall', s.best,
                       'dimensions', jsonb_build_object(
                           'empathy', s.empathy, 'clarity', s.clarity,
                           'resolution', s.resolution,
                           'efficiency', s.efficiency),
                       'last_session_at', api_time(s.last_at))
                   ORDER BY t.display_name, t.id)
            FROM team t LEFT JOIN stats s ON s.user_id = t.id), '[]'),
        'weakest_criteria', review_criteria(
            (SELECT array_agg(id) FROM team), 10));
END;
$$;


-- GET /review/trainees/{id}: the trainee's sessions over time, and how
-- often each criterion was met
CREATE OR REPLACE FUNCTION review_trainee(p_caller bigint, p_id bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_org  bigint := author_org(p_caller);
    v_user users%ROWTYPE;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    SELECT * INTO v_user FROM users u WHERE u.id = p_id AND u.org_id = v_org;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such trainee');
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, jsonb_build_object(
        'trainee', jsonb_build_object('id', v_user.id,
                                      'display_name', v_user.display_name,
                                      'email', v_user.email,
                                      'role', v_user.role,
                                      'xp', v_user.xp,
                                      'level', v_user.level),
        'attempts', (SELECT count(*) FROM sessions se
                     WHERE se.user_id = p_id AND NOT se.trial),
        'sessions', coalesce((
            SELECT jsonb_agg(review_session_line(se)
                             ORDER BY se.created_at, se.id)
            FROM (SELECT * FROM sessions
                  WHERE user_id = p_id AND NOT trial
                  ORDER BY created_at DESC, id DESC LIMIT 500) se), '[]'),
        'criteria', review_criteria(ARRAY[p_id], 100));
END;
$$;


-- GET /review/sessions/{id}: the transcript, the assessment, the notes
CREATE OR REPLACE FUNCTION review_session(p_caller bigint, p_id bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_org  bigint := author_org(p_caller);
    v_sess sessions;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    v_sess := review_session_of(v_org, p_id);

    IF v_sess.id IS NULL THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such session');
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, jsonb_build_object(
        'session', review_session_line(v_sess),
        'trainee', review_person(v_sess.user_id),
        'transcript', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'seq', m.seq, 'role', m.role, 'content', m.content,
                       'created_at', api_time(m.created_at)) ORDER BY m.seq)
            FROM messages m WHERE m.session_id = v_sess.id), '[]'),
        'assessment', (SELECT g -> 'performance'
                       FROM game_result(v_sess.id) g))
        || review_notes(v_sess.id);
END;
$$;


-- POST /review/sessions/{id}/comments {"body"}: on a resolved session
CREATE OR REPLACE FUNCTION review_comment(p_caller bigint, p_id bigint,
    p_doc jsonb)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org  bigint := author_org(p_caller);
    v_sess sessions;
    v_body text;
    v_key  text;
    v_c    review_comments;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    SELECT k INTO v_key FROM jsonb_object_keys(p_doc) k
    WHERE k <> 'body' LIMIT 1;

    IF v_key IS NOT NULL THEN
        RETURN QUERY SELECT 400, api_field_err(v_key, 'is not a field here');
        RETURN;
    END IF;

    v_body := btrim(p_doc ->> 'body');

    IF jsonb_typeof(p_doc -> 'body') IS DISTINCT FROM 'string'
       OR length(v_body) NOT BETWEEN 1 AND 4000
    THEN
        RETURN QUERY SELECT 400, api_field_err('body',
            'must be a text of 1 to 4000 characters');
        RETURN;
    END IF;

    v_sess := review_session_of(v_org, p_id);

    IF v_sess.id IS NULL THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such session');
        RETURN;
    END IF;

    IF v_sess.status <> 'resolved' THEN
        RETURN QUERY SELECT 409, api_err('conflict',
            'the session is not resolved yet');
        RETURN;
    END IF;

    INSERT INTO review_comments (session_id, author_id, body)
    VALUES (v_sess.id, p_caller, v_body) RETURNING * INTO v_c;

    RETURN QUERY SELECT 201, review_comment_doc(v_c);
END;
$$;


-- POST /review/sessions/{id}/override {"score","reason"}.  The session's
-- row is locked, then its user's (resolve's order), so concurrent
-- overrides and resolves see each other's XP.
CREATE OR REPLACE FUNCTION review_override(p_caller bigint, p_id bigint,
    p_doc jsonb)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org     bigint := author_org(p_caller);
    v_sess    sessions%ROWTYPE;
    v_ver     scenario_versions%ROWTYPE;
    v_old     int;
    v_new     int;
    v_reason  text;
    v_key     text;
    v_err     jsonb;
    v_first   bool;
    v_repeats int;
    v_has     bigint;
    v_delta   int := 0;
    v_xp      bigint;
    v_level   int;
    v_o       review_overrides;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    SELECT k INTO v_key FROM jsonb_object_keys(p_doc) k
    WHERE k NOT IN ('score', 'reason') LIMIT 1;

    IF v_key IS NOT NULL THEN
        RETURN QUERY SELECT 400, api_field_err(v_key, 'is not a field here');
        RETURN;
    END IF;

    v_err := coalesce(
        CASE WHEN NOT p_doc ? 'score'
             THEN api_field_err('score', 'is required') END,
        api_int_check(p_doc, 'score', 0, 100));

    v_reason := btrim(p_doc ->> 'reason');

    IF v_err IS NULL
       AND (jsonb_typeof(p_doc -> 'reason') IS DISTINCT FROM 'string'
            OR length(v_reason) NOT BETWEEN 1 AND 500)
    THEN
        v_err := api_field_err('reason',
                               'must be a text of 1 to 500 characters');
    END IF;

    IF v_err IS NOT NULL THEN
        RETURN QUERY SELECT 400, v_err;
        RETURN;
    END IF;

    v_new := (p_doc ->> 'score')::int;

    SELECT se.* INTO v_sess FROM sessions se JOIN users u ON u.id = se.user_id
    WHERE se.id = p_id AND u.org_id = v_org
    FOR UPDATE OF se;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such session');
        RETURN;
    END IF;

    SELECT a.overall INTO v_old FROM assessments a
    WHERE a.session_id = v_sess.id;

    IF v_sess.status <> 'resolved' OR v_old IS NULL THEN
        RETURN QUERY SELECT 409, api_err('conflict',
            'the session is not resolved yet');
        RETURN;
    END IF;

    SELECT u.xp INTO v_xp FROM users u WHERE u.id = v_sess.user_id
    FOR UPDATE;

    IF v_new = v_old THEN
        -- the score it has already: nothing to record, nothing to award
        SELECT l.level INTO v_level FROM game_level(v_xp) l;
        RETURN QUERY SELECT 200, jsonb_build_object(
            'session_id', v_sess.id, 'changed', false,
            'old_score', v_old, 'new_score', v_new, 'xp_delta', 0,
            'xp_total', v_xp, 'level', v_level, 'override', NULL);
        RETURN;
    END IF;

    IF NOT v_sess.trial THEN
        SELECT * INTO v_ver FROM scenario_versions v
        WHERE v.scenario_id = v_sess.scenario_id
          AND v.version = v_sess.scenario_version;

        -- the factors game_resolve used: resolutions of the scenario
        -- before this one, ever and on its day
        SELECT count(*) = 0,
               count(*) FILTER (WHERE se.resolved_at >=
                   date_trunc('day', v_sess.resolved_at AT TIME ZONE 'UTC')
                   AT TIME ZONE 'UTC')
          INTO v_first, v_repeats
          FROM sessions se
         WHERE se.user_id = v_sess.user_id
           AND se.scenario_id = v_sess.scenario_id
           AND se.status = 'resolved' AND NOT se.trial
           AND se.id <> v_sess.id
           AND se.resolved_at < v_sess.resolved_at;

        SELECT coalesce(sum(l.amount), 0) INTO v_has FROM xp_ledger l
        WHERE l.session_id = v_sess.id;

        v_delta := game_xp(v_ver.difficulty, v_ver.xp_reward, v_new,
                           v_first, v_repeats) - v_has;
    END IF;

    UPDATE assessments SET overall = v_new WHERE session_id = v_sess.id;

    INSERT INTO review_overrides (session_id, author_id, old_score,
                                  new_score, reason, xp_delta)
    VALUES (v_sess.id, p_caller, v_old, v_new, v_reason, v_delta)
    RETURNING * INTO v_o;

    IF v_delta <> 0 THEN
        INSERT INTO xp_ledger (user_id, session_id, amount, reason)
        VALUES (v_sess.user_id, v_sess.id, v_delta, 'override:' || v_o.id);

        v_xp := greatest(v_xp + v_delta, 0);
        SELECT l.level INTO v_level FROM game_level(v_xp) l;
        UPDATE users SET xp = v_xp, level = v_level
        WHERE id = v_sess.user_id;
    ELSE
        SELECT l.level INTO v_level FROM game_level(v_xp) l;
    END IF;

    -- "board": the trainee's figures for the leaderboards' cache (the
    -- module takes it out of the answer)
    RETURN QUERY SELECT 200, jsonb_build_object(
        'session_id', v_sess.id, 'changed', true,
        'old_score', v_old, 'new_score', v_new, 'xp_delta', v_delta,
        'xp_total', v_xp, 'level', v_level,
        'override', review_override_doc(v_o),
        'board', CASE WHEN v_delta <> 0 THEN jsonb_build_object(
            'user_id', v_sess.user_id::text,
            'display_name', (SELECT u.display_name FROM users u
                             WHERE u.id = v_sess.user_id),
            'xp', v_xp::text,
            'week_xp', (SELECT coalesce(sum(l.amount), 0)::text
                        FROM xp_ledger l
                        WHERE l.user_id = v_sess.user_id
                          AND l.created_at >= date_trunc('week',
                                  now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
            'level', v_level) END);
END;
$$;


-- a CSV cell (RFC 4180): quoted when it must be; a text that a
-- spreadsheet would take for a formula gets a leading '
CREATE OR REPLACE FUNCTION review_csv_cell(p_v text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN v IS NULL THEN ''
        WHEN v ~ '[",\r\n]' THEN '"' || replace(v, '"', '""') || '"'
        ELSE v END
    FROM (SELECT CASE WHEN p_v ~ '^[=+\-@\t\r]' THEN '''' || p_v
                      ELSE p_v END AS v) t;
$$;

-- GET /review/export: the team's sessions, one CSV line each, newest
-- first (status, the CSV text or an error's JSON text)
CREATE OR REPLACE FUNCTION review_export(p_caller bigint)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_org bigint := author_org(p_caller);
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden()::text;
        RETURN;
    END IF;

    RETURN QUERY SELECT 200,
        'session_id,trainee_id,trainee,email,scenario,version,status,'
        || 'started_at,resolved_at,overall,empathy,clarity,resolution,'
        || 'efficiency,passed,overridden,criteria_met,criteria_total'
        || E'\r\n'
        || coalesce(string_agg(concat_ws(',',
               se.id, u.id, review_csv_cell(u.display_name),
               review_csv_cell(u.email), review_csv_cell(v.title),
               v.version, se.status, api_time(se.created_at),
               coalesce(api_time(se.resolved_at), ''),
               coalesce(a.overall::text, ''),
               coalesce(a.empathy::text, ''), coalesce(a.clarity::text, ''),
               coalesce(a.resolution::text, ''),
               coalesce(a.efficiency::text, ''),
               CASE WHEN a.session_id IS NULL THEN ''
                    WHEN a.overall >= v.pass_mark THEN 'yes' ELSE 'no' END,
               CASE WHEN EXISTS (SELECT 1 FROM review_overrides o
                                 WHERE o.session_id = se.id)
                    THEN 'yes' ELSE 'no' END,
               (SELECT count(*) FILTER (WHERE (c ->> 'met')::boolean)
                FROM jsonb_array_elements(coalesce(a.criteria, '[]')) c),
               jsonb_array_length(coalesce(a.criteria, '[]')))
               || E'\r\n', '' ORDER BY se.created_at DESC, se.id DESC), '')
    FROM users u
    JOIN sessions se ON se.user_id = u.id AND NOT se.trial
    JOIN scenario_versions v ON v.scenario_id = se.scenario_id
                            AND v.version = se.scenario_version
    LEFT JOIN assessments a ON a.session_id = se.id
    WHERE u.org_id = v_org AND u.role = 'trainee';
END;
$$;


-- GET /sessions/{id}/review: the trainee's own view of what a trainer
-- said and changed (the comments and overrides); anyone else: not found
CREATE OR REPLACE FUNCTION review_mine(p_caller bigint, p_id bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE sql STABLE AS $$
    SELECT 200, jsonb_build_object('session_id', se.id,
                                   'overall', (SELECT a.overall
                                               FROM assessments a
                                               WHERE a.session_id = se.id))
                || review_notes(se.id)
    FROM sessions se WHERE se.id = p_id AND se.user_id = p_caller
    UNION ALL
    SELECT 404, api_err('not_found', 'no such session')
    WHERE NOT EXISTS (SELECT 1 FROM sessions se
                      WHERE se.id = p_id AND se.user_id = p_caller);
$$;

-- Re-runnable: CREATE OR REPLACE and IF NOT EXISTS throughout.
INSERT INTO schema_migrations (version) VALUES ('026_review')
ON CONFLICT DO NOTHING;
