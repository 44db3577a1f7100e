-- 029_review_stats.sql: each trainee's attempts and score sums, kept as
-- sessions and assessments are written, so that the team view reads one
-- small row per trainee instead of every session joined to its
-- assessment (1,000 trainees with 50,000 sessions: the hash join and
-- aggregate of some 100 ms that 028 left).
--
-- review_trainee_stats holds, per user, over the user's sessions that are
-- not trials: how many (attempts), how many are assessed (resolved), the
-- sums of their scores, the best overall score and the latest start.
-- The triggers below run in the transaction that writes: a session's
-- insert (its attempt), a resolve's assessment (its scores) and an
-- override's new score, so the row is the sum over the tables at every
-- commit.  Inserts add to the row; anything that could lower the best
-- score or move a session (an override, a delete, a changed owner)
-- counts the user's row anew from the tables, after locking it.
--
-- Lock order: resolve and override lock the user's row (users) before
-- they write the assessment, hence before this row; a session's insert
-- takes this row alone.  So the two cannot deadlock here.

CREATE TABLE IF NOT EXISTS review_trainee_stats (
    user_id        bigint      PRIMARY KEY REFERENCES users (id)
                               ON DELETE CASCADE,
    attempts       int         NOT NULL DEFAULT 0,
    resolved       int         NOT NULL DEFAULT 0,
    overall_sum    bigint      NOT NULL DEFAULT 0,
    empathy_sum    bigint      NOT NULL DEFAULT 0,
    clarity_sum    bigint      NOT NULL DEFAULT 0,
    resolution_sum bigint      NOT NULL DEFAULT 0,
    efficiency_sum bigint      NOT NULL DEFAULT 0,
    best_overall   int,
    last_at        timestamptz
);


-- the user's row made anew from the tables; the row is locked first, so
-- the count (a later statement, a later snapshot) sees every write that
-- committed before the lock, and any later one adds to what it leaves
CREATE OR REPLACE FUNCTION review_stats_recount(p_user bigint)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- a user being deleted takes the row with it (the cascade)
    IF NOT EXISTS (SELECT 1 FROM users WHERE id = p_user) THEN
        RETURN;
    END IF;

    INSERT INTO review_trainee_stats (user_id) VALUES (p_user)
    ON CONFLICT DO NOTHING;

    PERFORM 1 FROM review_trainee_stats WHERE user_id = p_user FOR UPDATE;

    UPDATE review_trainee_stats t
    SET (attempts, resolved, overall_sum, empathy_sum, clarity_sum,
         resolution_sum, efficiency_sum, best_overall, last_at) = (
        SELECT count(*), count(a.session_id),
               coalesce(sum(a.overall), 0), coalesce(sum(a.empathy), 0),
               coalesce(sum(a.clarity), 0), coalesce(sum(a.resolution), 0),
               coalesce(sum(a.efficiency), 0), max(a.overall),
               max(se.created_at)
        FROM sessions se
        LEFT JOIN assessments a ON a.session_id = se.id
        WHERE se.user_id = p_user AND NOT se.trial)
    WHERE t.user_id = p_user;
END;
$$;

-- sessions inserted (one, or a bulk insert's many): their attempts
CREATE OR REPLACE FUNCTION review_stats_sessions_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO review_trainee_stats AS t (user_id, attempts, last_at)
    SELECT n.user_id, count(*), max(n.created_at)
    FROM review_new n
    WHERE NOT n.trial
    GROUP BY n.user_id
    ON CONFLICT (user_id) DO UPDATE SET
        attempts = t.attempts + EXCLUDED.attempts,
        last_at = greatest(t.last_at, EXCLUDED.last_at);

    RETURN NULL;
END;
$$;

-- assessments inserted (a resolve): their scores
CREATE OR REPLACE FUNCTION review_stats_assessments_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO review_trainee_stats AS t (user_id, resolved, overall_sum,
        empathy_sum, clarity_sum, resolution_sum, efficiency_sum,
        best_overall)
    SELECT se.user_id, count(*), sum(n.overall), sum(n.empathy),
           sum(n.clarity), sum(n.resolution), sum(n.efficiency),
           max(n.overall)
    FROM review_new n
    JOIN sessions se ON se.id = n.session_id AND NOT se.trial
    GROUP BY se.user_id
    ON CONFLICT (user_id) DO UPDATE SET
        resolved = t.resolved + EXCLUDED.resolved,
        overall_sum = t.overall_sum + EXCLUDED.overall_sum,
        empathy_sum = t.empathy_sum + EXCLUDED.empathy_sum,
        clarity_sum = t.clarity_sum + EXCLUDED.clarity_sum,
        resolution_sum = t.resolution_sum + EXCLUDED.resolution_sum,
        efficiency_sum = t.efficiency_sum + EXCLUDED.efficiency_sum,
        best_overall = greatest(t.best_overall, EXCLUDED.best_overall);

    RETURN NULL;
END;
$$;

-- assessments deleted (with their session): their users counted anew
CREATE OR REPLACE FUNCTION review_stats_assessments_gone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM review_stats_recount(u.user_id)
    FROM (SELECT DISTINCT se.user_id FROM review_old o
          JOIN sessions se ON se.id = o.session_id
          ORDER BY 1) u;

    RETURN NULL;
END;
$$;

-- sessions deleted: their users counted anew
CREATE OR REPLACE FUNCTION review_stats_sessions_gone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM review_stats_recount(u.user_id)
    FROM (SELECT DISTINCT o.user_id FROM review_old o ORDER BY 1) u;

    RETURN NULL;
END;
$$;

-- a score changed (an override) or a session moved: the users counted
-- anew, as the best score may have gone down
CREATE OR REPLACE FUNCTION review_stats_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_old bigint;
    v_new bigint;
BEGIN
    IF TG_TABLE_NAME = 'sessions' THEN
        v_old := OLD.user_id;
        v_new := NEW.user_id;
    ELSE
        SELECT user_id INTO v_old FROM sessions WHERE id = OLD.session_id;
        SELECT user_id INTO v_new FROM sessions WHERE id = NEW.session_id;
    END IF;

    IF v_old IS NOT NULL THEN
        PERFORM review_stats_recount(v_old);
    END IF;

    IF v_new IS DISTINCT FROM v_old AND v_new IS NOT NULL THEN
        PERFORM review_stats_recount(v_new);
    END IF;

    RETURN NULL;
END;
$$;


-- made anew from the tables, with writers kept out until the triggers
-- are in place: exact, and re-runnable
LOCK TABLE sessions, assessments IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS sessions_review_stats_added ON sessions;
DROP TRIGGER IF EXISTS sessions_review_stats_gone ON sessions;
DROP TRIGGER IF EXISTS sessions_review_stats_changed ON sessions;
DROP TRIGGER IF EXISTS assessments_review_stats_added ON assessments;
DROP TRIGGER IF EXISTS assessments_review_stats_gone ON assessments;
DROP TRIGGER IF EXISTS assessments_review_stats_changed ON assessments;

DELETE FROM review_trainee_stats;

INSERT INTO review_trainee_stats (user_id, attempts, resolved, overall_sum,
    empathy_sum, clarity_sum, resolution_sum, efficiency_sum, best_overall,
    last_at)
SELECT se.user_id, count(*), count(a.session_id),
       coalesce(sum(a.overall), 0), coalesce(sum(a.empathy), 0),
       coalesce(sum(a.clarity), 0), coalesce(sum(a.resolution), 0),
       coalesce(sum(a.efficiency), 0), max(a.overall), max(se.created_at)
FROM sessions se
LEFT JOIN assessments a ON a.session_id = se.id
WHERE NOT se.trial
GROUP BY se.user_id;

CREATE TRIGGER sessions_review_stats_added
    AFTER INSERT ON sessions REFERENCING NEW TABLE AS review_new
    FOR EACH STATEMENT EXECUTE FUNCTION review_stats_sessions_added();

CREATE TRIGGER sessions_review_stats_gone
    AFTER DELETE ON sessions REFERENCING OLD TABLE AS review_old
    FOR EACH STATEMENT EXECUTE FUNCTION review_stats_sessions_gone();

CREATE TRIGGER sessions_review_stats_changed
    AFTER UPDATE OF user_id, trial, created_at ON sessions
    FOR EACH ROW EXECUTE FUNCTION review_stats_changed();

CREATE TRIGGER assessments_review_stats_added
    AFTER INSERT ON assessments REFERENCING NEW TABLE AS review_new
    FOR EACH STATEMENT EXECUTE FUNCTION review_stats_assessments_added();

CREATE TRIGGER assessments_review_stats_gone
    AFTER DELETE ON assessments REFERENCING OLD TABLE AS review_old
    FOR EACH STATEMENT EXECUTE FUNCTION review_stats_assessments_gone();

CREATE TRIGGER assessments_review_stats_changed
    AFTER UPDATE OF session_id, overall, empathy, clarity, resolution,
                    efficiency ON assessments
    FOR EACH ROW EXECUTE FUNCTION review_stats_changed();


-- GET /review/team: 026's, with each trainee's figures read from
-- review_trainee_stats (the averages are the sums over the count, as
-- avg() computed them: the same numbers, rounded the same way)
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
        SELECT k.user_id,
               k.attempts,
               k.resolved,
               round(k.overall_sum::numeric / n.n)::int AS overall,
               k.best_overall AS best,
               round(k.empathy_sum::numeric / n.n)::int AS empathy,
               round(k.clarity_sum::numeric / n.n)::int AS clarity,
               round(k.resolution_sum::numeric / n.n)::int AS resolution,
               round(k.efficiency_sum::numeric / n.n)::int AS efficiency,
               k.last_at
        FROM review_trainee_stats k
        CROSS JOIN LATERAL (SELECT nullif(k.resolved, 0) AS n) n
        WHERE k.user_id IN (SELECT id FROM team) AND k.attempts > 0
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

INSERT INTO schema_migrations (version) VALUES ('029_review_stats')
ON CONFLICT DO NOTHING;
