-- Issue 8, item 4: the judge.
--
-- assessments.judge: what the model's grading did ({"used":false,"reason"}
-- or {"used":true,"dimensions","credited","void_quotes","manipulation",
-- "manipulation_quote"}, ngx_scenario_judge.c); review_suggested: the
-- rules and the judge differ by more than 30 on a dimension (or the judge
-- claimed a manipulation it could not quote); manipulation: the trainee
-- addressed the grading (a note the rules found, or the judge's quoted
-- "yes").  A manipulated session does not pass.  Stored with the first
-- resolution, so that every later resolve answers the same document.
-- The resolve answer's performance gains the three (additive).  The pass
-- mark is the session's scenario version's (021).

ALTER TABLE assessments
    ADD COLUMN judge jsonb,
    ADD COLUMN review_suggested boolean NOT NULL DEFAULT false,
    ADD COLUMN manipulation boolean NOT NULL DEFAULT false;

-- resolved before: what their judge did was not recorded, and a repeated
-- resolve must not record it from a new grading
UPDATE assessments
SET judge = jsonb_build_object('used', graded_by <> 'rules',
                               'reason', 'not recorded');


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
            'pass_mark', v.pass_mark,
            'passed', a.overall >= v.pass_mark AND NOT a.manipulation,
            'review_suggested', a.review_suggested,
            'manipulation', a.manipulation,
            'judge', coalesce(a.judge,
                              '{"used":false,"reason":"off"}'::jsonb)),
        'rewards', a.rewards)
    FROM assessments a
    JOIN sessions se ON se.id = a.session_id
    JOIN scenario_versions v ON v.scenario_id = se.scenario_id
                            AND v.version = se.scenario_version
    WHERE a.session_id = p_session;
$$;


-- game_resolve of 008 stays as it was, under another name, as 008 did
-- with 003's; the session row it locked stays locked to the end of the
-- transaction.
ALTER FUNCTION game_resolve(bigint, bigint, jsonb)
    RENAME TO game_resolve_008;

CREATE FUNCTION game_resolve(
    p_session bigint, p_user bigint, p_assessment jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_result jsonb;
BEGIN
    v_result := game_resolve_008(p_session, p_user, p_assessment);

    IF v_result IS NULL OR v_result ? 'error' THEN
        RETURN v_result;
    END IF;

    UPDATE assessments
    SET judge = CASE WHEN jsonb_typeof(p_assessment -> 'judge') = 'object'
                     THEN p_assessment -> 'judge'
                     ELSE '{"used":false,"reason":"off"}' END,
        review_suggested = coalesce(
            (p_assessment ->> 'review_suggested')::boolean, false),
        manipulation = coalesce(
            (p_assessment ->> 'manipulation')::boolean, false)
    WHERE session_id = p_session AND judge IS NULL;

    IF FOUND THEN
        RETURN game_result(p_session);
    END IF;

    RETURN v_result;
END;
$$;
