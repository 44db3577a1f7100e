-- 027_watch.sql: a trainer or admin watches a trainee's live chat,
-- read-only (issue 9, item 5): GET /sessions/{id}/watch, a WebSocket
-- (ngx_scenario_live.c).  Same rules as the review (026): a trainee gets
-- 403, a session whose owner is not of the caller's organization 404, a
-- resolved one 409.  A trial is the trainer's own: it may be watched by
-- another trainer of the organization like any session.

CREATE OR REPLACE FUNCTION review_watch(p_caller bigint, p_id bigint)
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

    IF v_sess.status <> 'active' THEN
        RETURN QUERY SELECT 409, api_err('conflict',
                                         'the session is resolved');
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, jsonb_build_object(
        'session_id', v_sess.id,
        'trainee', review_person(v_sess.user_id),
        'watcher', review_person(p_caller),
        'scenario', (SELECT jsonb_build_object('id', v.scenario_id,
                                               'title', v.title)
                     FROM scenario_versions v
                     WHERE v.scenario_id = v_sess.scenario_id
                       AND v.version = v_sess.scenario_version),
        'last_seq', (SELECT coalesce(max(m.seq), 0) FROM messages m
                     WHERE m.session_id = v_sess.id));
END;
$$;

-- Re-runnable: CREATE OR REPLACE throughout.
INSERT INTO schema_migrations (version) VALUES ('027_watch')
ON CONFLICT DO NOTHING;
