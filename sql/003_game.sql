-- 003_game.sql: the game engine. XP, levels, streaks, achievements and the
-- leaderboard are computed here, inside the transaction that resolves a
-- session, so that Postgres stays the single source of truth (Redis only
-- caches the leaderboard and can be rebuilt from game_leaderboard_rows).
--
-- Re-runnable: CREATE OR REPLACE and IF NOT EXISTS throughout.
--
-- Rules, as implemented below (every day is a UTC calendar day):
--
--   XP        game_xp: round(base * quality * first * repeat), where
--             base    = the scenario's xp_reward (50/80/120 by difficulty
--                       when missing),
--             quality = clamp(overall / 100, 0.2, 1.0),
--             first   = 1.5 for the user's first resolved session of the
--                       scenario, else 1,
--             repeat  = 0.9747 ^ (10 * n) for the n-th earlier resolution of
--                       the same scenario by the same user on the same day
--                       (1, 0.774, 0.599, 0.464, ...: Habitica's
--                       diminishing returns).
--   Levels    game_level: Habitica's toNextLevel curve. Level L needs
--             25 * L XP for L < 5, 150 for L = 5, and
--             round((0.25 L^2 + 10 L + 139.75) / 10) * 10 from L = 6
--             (L1 25, L2 50, L3 75, L4 100, L5 150, L6 210, L10 260): 400
--             XP in total reach level 6. Several levels can be gained at
--             once.
--   Streak    the number of consecutive days, ending today, with at least
--             one resolved session. Resolving on the day after last_day adds
--             one, on the same day changes nothing, after a gap restarts at
--             1. game_progress reports 0 once a whole day has passed
--             without a resolution (last_day before yesterday).
--   Achievements (kind, threshold), checked at every resolve, each
--             unlocked at most once per user:
--             first_resolve        the first resolved session
--             score_at_least       this session's overall >= threshold
--             perfect_dimension    one of this session's dimensions
--                                  >= threshold
--             sessions_count       resolved sessions >= threshold
--             difficulty_complete  every scenario of that difficulty resolved
--                                  at least once
--             streak               current streak >= threshold days
--             fast_resolve         overall >= 70 and resolved at most
--                                  threshold seconds after the session began
--   Leaderboard  'all' ranks users.xp, 'week' the XP earned (xp_ledger)
--             since Monday 00:00 UTC of the current ISO week. Users with
--             equal XP share a rank (1, 1, 3: standard competition ranking)
--             and are listed by user id within it.

-- The rewards returned by the first resolve, returned again verbatim by any
-- later or concurrent call (resolve is idempotent).
ALTER TABLE assessments ADD COLUMN IF NOT EXISTS rewards jsonb;

-- game_resolve counts a user's resolved sessions per scenario and per day.
CREATE INDEX IF NOT EXISTS sessions_user_scenario_resolved_idx
    ON sessions (user_id, scenario_id, resolved_at)
    WHERE status = 'resolved';


-- ---------------------------------------------------------------------------
-- XP for one resolved session.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION game_xp(
    difficulty text, xp_reward int, overall int,
    first_completion bool, repeats_today int)
RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT round(
        -- base: the scenario's reward, or the proposal's default by difficulty
        coalesce(nullif(greatest(xp_reward, 0), 0),
                 CASE difficulty WHEN 'hard' THEN 120
                                 WHEN 'medium' THEN 80
                                 ELSE 50 END)::numeric
        -- quality: a poor session still earns a fifth
        * least(greatest(coalesce(overall, 0)::numeric / 100, 0.2), 1.0)
        * CASE WHEN first_completion THEN 1.5 ELSE 1.0 END
        -- diminishing returns when grinding one scenario on one day
        * power(0.9747::numeric, 10 * greatest(coalesce(repeats_today, 0), 0))
    )::int;
$$;


-- ---------------------------------------------------------------------------
-- Levels (Habitica's curve).
-- ---------------------------------------------------------------------------

-- XP needed to go from level lvl to lvl + 1.
CREATE OR REPLACE FUNCTION game_to_next_level(lvl int)
RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN lvl < 5 THEN 25 * greatest(lvl, 1)
        WHEN lvl = 5 THEN 150
        ELSE (round((0.25 * lvl * lvl + 10 * lvl + 139.75) / 10) * 10)::int
    END;
$$;

-- level: the level reached with total_xp; level_xp: XP earned inside it;
-- next_level_xp: the XP this level takes in all (a progress bar shows
-- level_xp / next_level_xp). total_xp is clamped to 0 .. 10^9 (level 4000
-- or so), which bounds the loop.
CREATE OR REPLACE FUNCTION game_level(total_xp bigint)
RETURNS TABLE (level int, level_xp int, next_level_xp int)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v_left bigint := least(greatest(coalesce(total_xp, 0), 0), 1000000000);
    v_need int;
BEGIN
    level := 1;
    v_need := game_to_next_level(1);

    -- as Habitica's updateStats: spend the XP level by level
    WHILE v_left >= v_need LOOP
        v_left := v_left - v_need;
        level := level + 1;
        v_need := game_to_next_level(level);
    END LOOP;

    level_xp := v_left;
    next_level_xp := v_need;
    RETURN NEXT;
END;
$$;


-- ---------------------------------------------------------------------------
-- The answer of resolve, rebuilt from what is stored: the first call and
-- every later one return the same document.
-- ---------------------------------------------------------------------------
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
            'metrics', a.metrics),
        'rewards', a.rewards)
    FROM assessments a
    WHERE a.session_id = p_session;
$$;


-- ---------------------------------------------------------------------------
-- Streak: updates user_streaks for a resolution today; returns the current
-- streak in days. Called with the user's row locked (game_resolve).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION game_streak_touch(p_user bigint, p_today date)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_days int;
BEGIN
    INSERT INTO user_streaks AS st (user_id, current_days, best_days, last_day)
    VALUES (p_user, 1, 1, p_today)
    ON CONFLICT (user_id) DO UPDATE SET
        current_days = CASE
            -- already counted today (or a clock that went back)
            WHEN st.last_day >= p_today THEN greatest(st.current_days, 1)
            -- yesterday: the streak goes on
            WHEN st.last_day = p_today - 1 THEN st.current_days + 1
            -- a gap, or never: start again
            ELSE 1
        END,
        last_day = greatest(st.last_day, p_today)
    RETURNING st.current_days INTO v_days;

    UPDATE user_streaks SET best_days = greatest(best_days, v_days)
    WHERE user_id = p_user;

    RETURN v_days;
END;
$$;


-- ---------------------------------------------------------------------------
-- Achievements unlocked by the session just resolved: inserts those newly
-- earned and returns them as [{"code","title"}] in display order. Only rows
-- actually inserted count, so nothing is unlocked twice.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION game_unlock(
    p_user bigint, p_session bigint, p_overall int, p_best_dimension int,
    p_resolved_count bigint, p_streak int, p_elapsed_s numeric)
RETURNS jsonb
LANGUAGE sql AS $$
    WITH earned AS (
        INSERT INTO user_achievements (user_id, code, session_id)
        SELECT p_user, a.code, p_session
        FROM achievements a
        WHERE CASE a.kind
            WHEN 'first_resolve' THEN p_resolved_count >= 1
            WHEN 'score_at_least' THEN p_overall >= a.threshold
            WHEN 'perfect_dimension' THEN p_best_dimension >= a.threshold
            WHEN 'sessions_count' THEN p_resolved_count >= a.threshold
            WHEN 'difficulty_complete' THEN
                -- at least one such scenario, and none left unresolved
                EXISTS (SELECT 1 FROM scenarios sc
                        WHERE sc.difficulty = a.difficulty)
                AND NOT EXISTS (
                    SELECT 1 FROM scenarios sc
                    WHERE sc.difficulty = a.difficulty
                      AND NOT EXISTS (
                          SELECT 1 FROM sessions se
                          WHERE se.user_id = p_user
                            AND se.scenario_id = sc.id
                            AND se.status = 'resolved'))
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


-- ---------------------------------------------------------------------------
-- Resolve a session: the one call POST /sessions/{id}/resolve makes, with
-- the assessment the module computed (ngx_scenario_assess: overall,
-- dimensions, feedback, metrics, graded_by; other keys are ignored).
--
-- Returns NULL when the session does not exist or is not p_user's,
-- {"error":"conflict"} when it has no user message, else the document of
-- API.md: {"session_id","performance":{"overall","dimensions","feedback",
-- "metrics"},"rewards":{"xp_awarded","xp_total","level","level_up",
-- "achievements_unlocked":[{"code","title"}]}}. graded_by is kept in the
-- assessments row, not in performance, so that the answer has exactly the
-- API's shape.
--
-- Idempotent and safe under concurrency: the session row is locked first,
-- so concurrent calls for one session run one after the other, and every
-- call after the first finds the stored assessment and returns the stored
-- document unchanged (same XP, same level_up, same achievements). The
-- user's row is locked next, so that two different sessions of one user
-- resolved at once still see each other's XP, counts and streak. Meant
-- for READ COMMITTED (the default): each statement sees what the previous
-- holder of the lock committed.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION game_resolve(
    p_session bigint, p_user bigint, p_assessment jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_sess       sessions%ROWTYPE;
    v_scenario   scenarios%ROWTYPE;
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

    -- resolved before (or by a concurrent call that held the lock)
    IF EXISTS (SELECT 1 FROM assessments WHERE session_id = p_session) THEN
        RETURN game_result(p_session);
    END IF;

    IF NOT EXISTS (SELECT 1 FROM messages
                   WHERE session_id = p_session AND role = 'user') THEN
        RETURN '{"error":"conflict"}'::jsonb;
    END IF;

    -- the scores, checked: a malformed assessment is a caller's bug
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
    SELECT * INTO v_scenario FROM scenarios WHERE id = v_sess.scenario_id;

    -- earlier resolutions of this scenario by this user: ever, and today
    SELECT count(*) = 0,
           count(*) FILTER (WHERE se.resolved_at >= v_today::timestamp
                                                    AT TIME ZONE 'UTC')
      INTO v_first, v_repeats
      FROM sessions se
     WHERE se.user_id = p_user
       AND se.scenario_id = v_sess.scenario_id
       AND se.status = 'resolved'
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

    -- the unique (session_id, reason) is the last guard against a double
    -- award; under the session lock it never fires
    INSERT INTO xp_ledger (user_id, session_id, amount, reason, created_at)
    VALUES (p_user, p_session, v_xp, 'resolve', v_now)
    ON CONFLICT (session_id, reason) DO NOTHING;

    IF NOT FOUND THEN
        v_xp := 0;
    END IF;

    v_total := v_old_xp + v_xp;
    SELECT l.level INTO v_old_level FROM game_level(v_old_xp) l;
    SELECT l.level INTO v_level FROM game_level(v_total) l;

    UPDATE users SET xp = v_total, level = v_level WHERE id = p_user;

    v_streak := game_streak_touch(p_user, v_today);

    SELECT count(*) INTO v_resolved FROM sessions
    WHERE user_id = p_user AND status = 'resolved';

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


-- ---------------------------------------------------------------------------
-- GET /me/progress: {"xp","level","level_xp","next_level_xp","streak_days",
-- "achievements":[{"code","title","unlocked_at"}]}; NULL for no such user.
-- The level is derived from users.xp with the curve, so it is always
-- consistent with level_xp.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION game_progress(p_user bigint)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'xp', u.xp,
        'level', l.level,
        'level_xp', l.level_xp,
        'next_level_xp', l.next_level_xp,
        -- a streak survives until the end of the day after its last day
        'streak_days', coalesce((
            SELECT st.current_days FROM user_streaks st
            WHERE st.user_id = u.id
              AND st.last_day >= (now() AT TIME ZONE 'UTC')::date - 1), 0),
        'achievements', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'code', a.code,
                       'title', a.title,
                       'unlocked_at', to_char(ua.unlocked_at AT TIME ZONE 'UTC',
                                              'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                   ORDER BY ua.unlocked_at, a.sort, a.code)
            FROM user_achievements ua
            JOIN achievements a ON a.code = ua.code
            WHERE ua.user_id = u.id), '[]'::jsonb))
    FROM users u
    CROSS JOIN LATERAL game_level(u.xp) l
    WHERE u.id = p_user;
$$;


-- ---------------------------------------------------------------------------
-- Leaderboard rows: every user with XP in the period ('all' or 'week'),
-- best first; no rows for another period. The module rebuilds Redis's
-- sorted sets from these after a flush.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION game_leaderboard_rows(p_period text)
RETURNS TABLE (user_id bigint, display_name text, xp bigint, level int)
LANGUAGE sql STABLE AS $$
    SELECT u.id, u.display_name, u.xp, u.level
    FROM users u
    WHERE p_period = 'all' AND u.xp > 0

    UNION ALL

    SELECT u.id, u.display_name, w.xp, u.level
    FROM (SELECT x.user_id, sum(x.amount)::bigint AS xp
          FROM xp_ledger x
          -- Monday 00:00 UTC of the current ISO week
          WHERE x.created_at >= date_trunc('week', now() AT TIME ZONE 'UTC')
                                AT TIME ZONE 'UTC'
          GROUP BY x.user_id) w
    JOIN users u ON u.id = w.user_id
    WHERE p_period = 'week' AND w.xp > 0

    ORDER BY 3 DESC, 1;
$$;


-- ---------------------------------------------------------------------------
-- GET /leaderboard: [{"rank","user":{"id","display_name"},"xp","level"}],
-- the first p_limit (1-100, default 10) of game_leaderboard_rows; NULL for
-- an unknown period. Equal XP, equal rank.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION game_leaderboard(p_period text, p_limit int)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_period IN ('all', 'week') THEN
        coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'rank', r.rank,
                       'user', jsonb_build_object('id', r.user_id,
                                                  'display_name',
                                                  r.display_name),
                       'xp', r.xp,
                       'level', r.level)
                   ORDER BY r.rank, r.user_id)
            FROM (SELECT b.*, rank() OVER (ORDER BY b.xp DESC) AS rank
                  FROM game_leaderboard_rows(p_period) b
                  ORDER BY b.xp DESC, b.user_id
                  LIMIT least(greatest(coalesce(p_limit, 10), 1), 100)) r),
            '[]'::jsonb)
    END;
$$;


INSERT INTO schema_migrations (version) VALUES ('003_game')
ON CONFLICT DO NOTHING;
