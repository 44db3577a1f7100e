-- 025_session_open.sql: a session's chat and resolve stay open to its
-- owner while the scenario is still theirs to play (issue 9, item 1: a
-- removal or a role change holds at once).  A global scenario always is;
-- an organization's only while the owner belongs to it; a trial only
-- while the owner is a trainer or admin there.  Reading a session
-- (GET /sessions/{id}) stays open: it is the owner's history.
--
-- Re-runnable: CREATE OR REPLACE.

CREATE OR REPLACE FUNCTION session_open(p_user bigint, p_org bigint,
    p_trial boolean)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (p_org IS NULL AND NOT p_trial)
        OR EXISTS (SELECT 1 FROM users u
                   WHERE u.id = p_user AND u.org_id = p_org
                     AND (NOT p_trial OR u.role IN ('trainer', 'admin')));
$$;

INSERT INTO schema_migrations (version) VALUES ('025_session_open')
ON CONFLICT DO NOTHING;
