-- 021_versioned_game.sql: resolve reads the scenario at the session's
-- version, and a trial session (a draft tried by a trainer) is assessed
-- like any other but earns nothing: no XP, no streak, no achievement, no
-- leaderboard entry (issue 9, item 2).
--
-- game_resolve_003 keeps its name (008's game_resolve calls it); only the
-- scenario lookup and the rewards of a trial change.  Achievements that
-- count scenarios (difficulty_complete) count the ones the user may play,
-- and neither they nor the counts of resolved sessions include trials.

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
            'passed', a.overall >= v.pass_mark),
        'rewards', a.rewards)
    FROM assessments a
    JOIN sessions se ON se.id = a.session_id
    JOIN scenario_versions v ON v.scenario_id = se.scenario_id
                            AND v.version = se.scenario_version
    WHERE a.session_id = p_session;
$$;


CREATE OR REPLACE FUNCTION game_unlock(
    p_user bigint, p_session bigint, p_overall int, p_best_dimension int,
    p_resolved_count bigint, p_streak int, p_elapsed_s numeric)
RETURNS jsonb
LANGUAGE sql AS $$
    WITH playable AS (
        SELECT sc.id, sc.difficulty FROM scenarios sc
        WHERE sc.status = 'published'
          AND (sc.org_id IS NULL
               OR sc.org_id = (SELECT u.org_id FROM users u
                               WHERE u.id = p_user))
    ), earned AS (
        INSERT INTO user_achievements (user_id, code, session_id)
        SELECT p_user, a.code, p_session
        FROM achievements a
        WHERE CASE a.kind
            WHEN 'first_resolve' THEN p_resolved_count >= 1
            WHEN 'score_at_least' THEN p_overall >= a.threshold
            WHEN 'perfect_dimension' THEN p_best_dimension >= a.threshold
            WHEN 'sessions_count' THEN p_resolved_count >= a.threshold
            WHEN 'difficulty_complete' THEN
                EXISTS (SELECT 1 FROM playable sc
                        WHERE sc.difficulty = a.difficulty)
                AND NOT EXISTS (
                    SELECT 1 FROM playable sc
                    WHERE sc.difficulty = a.difficulty
                      AND NOT EXISTS (
                          SELECT 1 FROM sessions se
                          WHERE se.user_id = p_user
                            AND se.scenario_id = sc.id
                            AND se.status = 'resolved'
                            AND NOT se.trial))
            WHEN 'streak' THEN p_streak >= a.threshold
            WHEN 'fast_resolve' THEN
                p_overall >= 70 AND p_elapsed_s <= a.threshold
            ELSE false
        END
        ON CONFLICT (user_id, code) DO NOTHING
        RETURNING code
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('code', a.code,
                                                 'title', a.title)
                              ORDER BY a.sort, a.code), '[]'::jsonb)
    FROM earned e JOIN achievements a ON a.code = e.code;
$$;


CREATE OR REPLACE FUNCTION game_resolve_003(
    p_session bigint, p_user bigint, p_assessment jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_sess       sessions%ROWTYPE;
    v_scenario   scenario_versions%ROWTYPE;
    v_now        timestamptz := clock_timestamp();
    v_today      date := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    v_overall    int;
    v_dims       int[];
    v_first      bool;
    v_repeats    int;
    v_xp         int;
    v_old_xp     bigint;
    v_total      bigint;
    v_old_level  int;
    v_level      int;
    v_resolved   bigint;
    v_streak     int;
    v_unlocked   jsonb;
BEGIN
    SELECT * INTO v_sess FROM sessions WHERE id = p_session FOR UPDATE;

    IF NOT FOUND OR v_sess.user_id IS DISTINCT FROM p_user THEN
        RETURN NULL;
    END IF;

    IF EXISTS (SELECT 1 FROM assessments WHERE session_id = p_session) THEN
        RETURN game_result(p_session);
    END IF;

    IF NOT EXISTS (SELECT 1 FROM messages
                   WHERE session_id = p_session AND role = 'user') THEN
        RETURN '{"error":"conflict"}'::jsonb;
    END IF;

    v_overall := (p_assessment ->> 'overall')::int;
    v_dims := ARRAY[(p_assessment #>> '{dimensions,empathy}')::int,
                    (p_assessment #>> '{dimensions,clarity}')::int,
                    (p_assessment #>> '{dimensions,resolution}')::int,
                    (p_assessment #>> '{dimensions,efficiency}')::int];

    IF v_overall IS NULL OR array_position(v_dims, NULL) IS NOT NULL
       OR v_overall NOT BETWEEN 0 AND 100
       OR (SELECT min(d) FROM unnest(v_dims) d) < 0
       OR (SELECT max(d) FROM unnest(v_dims) d) > 100
    THEN
        RAISE EXCEPTION 'game_resolve: scores must be integers from 0 to 100'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT users.xp INTO v_old_xp FROM users WHERE id = p_user FOR UPDATE;

    -- the scenario as the session began with it
    SELECT * INTO v_scenario FROM scenario_versions
    WHERE scenario_id = v_sess.scenario_id
      AND version = v_sess.scenario_version;

    SELECT count(*) = 0,
           count(*) FILTER (WHERE se.resolved_at >= v_today::timestamp
                                                    AT TIME ZONE 'UTC')
      INTO v_first, v_repeats
      FROM sessions se
     WHERE se.user_id = p_user
       AND se.scenario_id = v_sess.scenario_id
       AND se.status = 'resolved'
       AND NOT se.trial
       AND se.id <> p_session;

    v_xp := game_xp(v_scenario.difficulty, v_scenario.xp_reward, v_overall,
                    v_first, v_repeats);

    UPDATE sessions SET status = 'resolved', resolved_at = v_now
    WHERE id = p_session;

    INSERT INTO assessments (session_id, overall, empathy, clarity,
                             resolution, efficiency, feedback, metrics,
                             graded_by)
    VALUES (p_session, v_overall, v_dims[1], v_dims[2], v_dims[3], v_dims[4],
            CASE WHEN jsonb_typeof(p_assessment -> 'feedback') = 'array'
                 THEN p_assessment -> 'feedback' ELSE '[]' END,
            CASE WHEN jsonb_typeof(p_assessment -> 'metrics') = 'object'
                 THEN p_assessment -> 'metrics' ELSE '{}' END,
            coalesce(left(p_assessment ->> 'graded_by', 32), 'rules'));

    SELECT l.level INTO v_old_level FROM game_level(v_old_xp) l;

    -- a trial is assessed, and nothing else
    IF v_sess.trial THEN
        UPDATE assessments SET rewards = jsonb_build_object(
            'xp_awarded', 0,
            'xp_total', v_old_xp,
            'level', v_old_level,
            'level_up', false,
            'achievements_unlocked', '[]'::jsonb)
        WHERE session_id = p_session;

        RETURN game_result(p_session);
    END IF;

    INSERT INTO xp_ledger (user_id, session_id, amount, reason, created_at)
    VALUES (p_user, p_session, v_xp, 'resolve', v_now)
    ON CONFLICT (session_id, reason) DO NOTHING;

    IF NOT FOUND THEN
        v_xp := 0;
    END IF;

    v_total := v_old_xp + v_xp;
    SELECT l.level INTO v_level FROM game_level(v_total) l;

    UPDATE users SET xp = v_total, level = v_level WHERE id = p_user;

    v_streak := game_streak_touch(p_user, v_today);

    SELECT count(*) INTO v_resolved FROM sessions
    WHERE user_id = p_user AND status = 'resolved' AND NOT trial;

    v_unlocked := game_unlock(
        p_user, p_session, v_overall,
        (SELECT max(d) FROM unnest(v_dims) d), v_resolved, v_streak,
        extract(epoch FROM v_now - v_sess.created_at));

    UPDATE assessments SET rewards = jsonb_build_object(
        'xp_awarded', v_xp,
        'xp_total', v_total,
        'level', v_level,
        'level_up', v_level > v_old_level,
        'achievements_unlocked', v_unlocked)
    WHERE session_id = p_session;

    RETURN game_result(p_session);
END;
$$;

-- Re-runnable: CREATE OR REPLACE and IF NOT EXISTS throughout.
INSERT INTO schema_migrations (version) VALUES ('021_versioned_game')
ON CONFLICT DO NOTHING;
