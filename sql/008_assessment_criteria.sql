-- Issue 8, item 3: per-criterion evidence and a pass mark.
--
-- scenarios.pass_mark: the overall score (0-100) a session needs to pass.
-- assessments.criteria: the rules' [{"key","description","met","turn",
-- "quote"}] of ngx_scenario_assess, stored with the first resolution so
-- that every later resolve answers the same document.
-- The resolve answer's performance gains "criteria" and "passed"
-- (additive: API.md's keys are unchanged).

ALTER TABLE scenarios
    ADD COLUMN pass_mark integer NOT NULL DEFAULT 70
        CHECK (pass_mark BETWEEN 0 AND 100);

ALTER TABLE assessments ADD COLUMN criteria jsonb;


CREATE OR REPLACE FUNCTION game_result(p_session bigint)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'session_id', a.session_id,
        'performance', jsonb_build_object(
            'overall', a.overall,
            'dimensions', jsonb_build_object(
                'empathy', a.empathy,
                'clarity', a.clarity,
                'resolution', a.resolution,
                'efficiency', a.efficiency),
            'feedback', a.feedback,
            'metrics', a.metrics,
            'criteria', coalesce(a.criteria, '[]'::jsonb),
            'pass_mark', sc.pass_mark,
            'passed', a.overall >= sc.pass_mark),
        'rewards', a.rewards)
    FROM assessments a
    JOIN sessions se ON se.id = a.session_id
    JOIN scenarios sc ON sc.id = se.scenario_id
    WHERE a.session_id = p_session;
$$;


-- game_resolve of 003 stays as it was, under another name; this one also
-- keeps the criteria of the first resolution.  The session row locked by
-- the inner call stays locked until the end of the transaction, so the
-- update below cannot race a concurrent resolve.
ALTER FUNCTION game_resolve(bigint, bigint, jsonb)
    RENAME TO game_resolve_003;

CREATE FUNCTION game_resolve(
    p_session bigint, p_user bigint, p_assessment jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_result jsonb;
BEGIN
    v_result := game_resolve_003(p_session, p_user, p_assessment);

    IF v_result IS NULL OR v_result ? 'error' THEN
        RETURN v_result;
    END IF;

    UPDATE assessments
    SET criteria = CASE WHEN jsonb_typeof(p_assessment -> 'criteria')
                             = 'array'
                        THEN p_assessment -> 'criteria' ELSE '[]' END
    WHERE session_id = p_session AND criteria IS NULL;

    IF FOUND THEN
        RETURN game_result(p_session);
    END IF;

    RETURN v_result;
END;
$$;
