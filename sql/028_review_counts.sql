-- 028_review_counts.sql: the criteria's counts per trainee, kept as the
-- assessments are written, so that the team view does not expand every
-- session's criteria when it is read (1,000 trainees with 50,000
-- sessions: from some 300 ms to a few ms for the weakest criteria).
--
-- review_criterion_counts holds, per user, scenario and criterion key,
-- how many of the user's assessed sessions (trials never) judged it and
-- how many found it met.  A trigger on assessments adds a row's criteria
-- when it is written and takes back the old ones when they change, so
-- the counts are the sum over the assessments at every commit.  Sessions
-- are never deleted but with their user, whose counts go with them.

CREATE TABLE IF NOT EXISTS review_criterion_counts (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scenario_id int    NOT NULL REFERENCES scenarios (id),
    key         text   NOT NULL,
    description text,
    assessed    int    NOT NULL DEFAULT 0,
    met         int    NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, scenario_id, key)
);


-- adds (p_sign 1) or takes back (-1) one session's criteria; a key
-- listed twice counts once per listing, as review_criteria did
CREATE OR REPLACE FUNCTION review_count(p_session bigint, p_criteria jsonb,
    p_sign int)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO review_criterion_counts AS k (user_id, scenario_id, key,
                                              description, assessed, met)
    SELECT se.user_id, se.scenario_id, c ->> 'key', max(c ->> 'description'),
           p_sign * count(*),
           p_sign * count(*) FILTER (WHERE (c ->> 'met')::boolean)
    FROM sessions se
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(p_criteria) = 'array'
             THEN p_criteria ELSE '[]' END) c
    WHERE se.id = p_session AND NOT se.trial
      AND jsonb_typeof(c) = 'object' AND c ->> 'key' IS NOT NULL
    GROUP BY se.user_id, se.scenario_id, c ->> 'key'
    ON CONFLICT (user_id, scenario_id, key) DO UPDATE SET
        assessed = k.assessed + EXCLUDED.assessed,
        met = k.met + EXCLUDED.met,
        description = coalesce(EXCLUDED.description, k.description);
$$;

CREATE OR REPLACE FUNCTION review_count_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM review_count(OLD.session_id, OLD.criteria, -1);
    END IF;

    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM review_count(NEW.session_id, NEW.criteria, 1);
    END IF;

    RETURN NULL;
END;
$$;

-- made anew from the assessments: exact, and re-runnable
DROP TRIGGER IF EXISTS assessments_review_count ON assessments;

DELETE FROM review_criterion_counts;

INSERT INTO review_criterion_counts (user_id, scenario_id, key, description,
                                     assessed, met)
SELECT se.user_id, se.scenario_id, c ->> 'key', max(c ->> 'description'),
       count(*), count(*) FILTER (WHERE (c ->> 'met')::boolean)
FROM assessments a
JOIN sessions se ON se.id = a.session_id AND NOT se.trial
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(a.criteria) = 'array'
         THEN a.criteria ELSE '[]' END) c
WHERE jsonb_typeof(c) = 'object' AND c ->> 'key' IS NOT NULL
GROUP BY se.user_id, se.scenario_id, c ->> 'key';

CREATE TRIGGER assessments_review_count
    AFTER INSERT OR DELETE OR UPDATE OF criteria ON assessments
    FOR EACH ROW EXECUTE FUNCTION review_count_trigger();


-- per criterion (of a scenario): how often p_users' sessions met it,
-- weakest first (026's, from the counts)
CREATE OR REPLACE FUNCTION review_criteria(p_users bigint[], p_limit int)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'scenario', jsonb_build_object('id', c.scenario_id,
                   'title', (SELECT sc.title FROM scenarios sc
                             WHERE sc.id = c.scenario_id)),
               'key', c.key,
               'description', c.description,
               'assessed', c.assessed,
               'met', c.met,
               'met_rate', round(c.met::numeric / c.assessed, 2))
           ORDER BY c.met::numeric / c.assessed, c.assessed DESC,
                    c.scenario_id, c.key), '[]')
    FROM (
        SELECT k.scenario_id, k.key, max(k.description) AS description,
               sum(k.assessed) AS assessed, sum(k.met) AS met
        FROM review_criterion_counts k
        WHERE k.user_id = ANY (p_users)
        GROUP BY k.scenario_id, k.key
        HAVING sum(k.assessed) > 0
        ORDER BY sum(k.met)::numeric / sum(k.assessed), sum(k.assessed) DESC,
                 k.scenario_id, k.key
        LIMIT p_limit
    ) c;
$$;

INSERT INTO schema_migrations (version) VALUES ('028_review_counts')
ON CONFLICT DO NOTHING;
