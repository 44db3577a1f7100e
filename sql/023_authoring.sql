-- 023_authoring.sql: trainers write their organization's scenarios
-- (issue 9, item 2).  Same conventions as 022: one call per endpoint,
-- (status, body), the caller's role and organization checked in the
-- query, what another organization owns is not found.
--
-- The module validates every field before calling (ngx_scenario_fields.c)
-- and passes the document normalized; the table's CHECKs stay the last
-- guard.  An edit that changes the content makes a new version (the
-- triggers of 020); a session keeps the version it began with.

CREATE OR REPLACE FUNCTION author_summary(sc scenarios) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', sc.id, 'slug', sc.slug, 'status', sc.status,
        'version', sc.version, 'title', sc.title,
        'difficulty', sc.difficulty, 'created_by', sc.created_by,
        'updated_at', api_time(sc.updated_at));
$$;

CREATE OR REPLACE FUNCTION author_doc(sc scenarios) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT author_summary(sc) || jsonb_build_object(
        'description', sc.description,
        'persona', jsonb_build_object('name', sc.persona_name,
                                      'role', sc.persona_role,
                                      'prompt', sc.persona_prompt),
        'backstory', sc.backstory,
        'goal', sc.goal,
        'opening_line', sc.opening_line,
        'good_resolution', sc.good_resolution,
        'criteria', sc.success_criteria,
        'weights', sc.weights,
        'target_turns', sc.target_turns,
        'xp_reward', sc.xp_reward,
        'pass_mark', sc.pass_mark,
        'created_at', api_time(sc.created_at),
        'versions', (SELECT jsonb_agg(jsonb_build_object(
                         'version', v.version,
                         'created_by', v.created_by,
                         'created_at', api_time(v.created_at))
                         ORDER BY v.version)
                     FROM scenario_versions v WHERE v.scenario_id = sc.id));
$$;

-- the organization of a trainer or admin, else NULL
CREATE OR REPLACE FUNCTION author_org(p_caller bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT u.org_id FROM users u
    WHERE u.id = p_caller AND u.role IN ('trainer', 'admin');
$$;

CREATE OR REPLACE FUNCTION author_forbidden() RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT api_err('forbidden',
                   'this needs the trainer or admin role in an organization');
$$;


-- GET /authoring/scenarios: the organization's, every status
CREATE OR REPLACE FUNCTION author_list(p_caller bigint)
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

    RETURN QUERY SELECT 200, coalesce(jsonb_agg(author_summary(sc)
                                                ORDER BY sc.id), '[]')
        FROM scenarios sc WHERE sc.org_id = v_org;
END;
$$;


-- GET /authoring/scenarios/{id}
CREATE OR REPLACE FUNCTION author_get(p_caller bigint, p_id int)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_org bigint := author_org(p_caller);
    v_sc  scenarios%ROWTYPE;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    SELECT * INTO v_sc FROM scenarios sc
    WHERE sc.id = p_id AND sc.org_id = v_org;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such scenario');
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, author_doc(v_sc);
END;
$$;


-- a slug unique everywhere without revealing other organizations' ones:
-- the title's words and the id
CREATE OR REPLACE FUNCTION author_slug(p_title text, p_id int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(nullif(left(trim(BOTH '-' FROM
               lower(regexp_replace(p_title, '[^a-zA-Z0-9]+', '-', 'g'))),
               60), ''), 'scenario') || '-' || p_id;
$$;


-- a checked document (ngx_scenario_fields.c) as the content's columns
CREATE OR REPLACE FUNCTION author_fields(p_doc jsonb)
RETURNS TABLE (title text, description text, difficulty text,
               persona_name text, persona_role text, persona_prompt text,
               backstory text, goal text, opening_line text,
               good_resolution text, success_criteria jsonb, weights jsonb,
               target_turns int, xp_reward int, pass_mark int)
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_doc ->> 'title', p_doc ->> 'description',
           p_doc ->> 'difficulty', p_doc #>> '{persona,name}',
           p_doc #>> '{persona,role}', p_doc #>> '{persona,prompt}',
           p_doc ->> 'backstory', p_doc ->> 'goal',
           p_doc ->> 'opening_line', p_doc ->> 'good_resolution',
           p_doc -> 'criteria', p_doc -> 'weights',
           (p_doc ->> 'target_turns')::int, (p_doc ->> 'xp_reward')::int,
           (p_doc ->> 'pass_mark')::int;
$$;


-- POST /authoring/scenarios: a draft, version 1
CREATE OR REPLACE FUNCTION author_create(p_caller bigint, p_doc jsonb)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org bigint := author_org(p_caller);
    v_sc  scenarios%ROWTYPE;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    INSERT INTO scenarios (title, description, difficulty, persona_name,
        persona_role, persona_prompt, backstory, goal, opening_line,
        good_resolution, success_criteria, weights, target_turns,
        xp_reward, pass_mark, slug, org_id, status, created_by, updated_by)
    SELECT f.*, md5(random()::text || clock_timestamp()::text), v_org,
           'draft', p_caller, p_caller
    FROM author_fields(p_doc) f
    RETURNING * INTO v_sc;

    UPDATE scenarios sc SET slug = author_slug(v_sc.title, v_sc.id)
    WHERE sc.id = v_sc.id
    RETURNING * INTO v_sc;

    RETURN QUERY SELECT 201, author_doc(v_sc);
END;
$$;


-- PUT /authoring/scenarios/{id}: every field, a new version if any
-- changed; the status stays
CREATE OR REPLACE FUNCTION author_update(p_caller bigint, p_id int, p_doc jsonb)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org bigint := author_org(p_caller);
    v_sc  scenarios%ROWTYPE;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    UPDATE scenarios sc SET
        (title, description, difficulty, persona_name, persona_role,
         persona_prompt, backstory, goal, opening_line, good_resolution,
         success_criteria, weights, target_turns, xp_reward, pass_mark)
        = (SELECT * FROM author_fields(p_doc)),
        updated_by = p_caller
    WHERE sc.id = p_id AND sc.org_id = v_org
    RETURNING * INTO v_sc;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such scenario');
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, author_doc(v_sc);
END;
$$;


-- POST /authoring/scenarios/{id}/publish and .../archive
CREATE OR REPLACE FUNCTION author_set_status(p_caller bigint, p_id int,
    p_status text)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org bigint := author_org(p_caller);
    v_sc  scenarios%ROWTYPE;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    UPDATE scenarios sc SET status = p_status, updated_at = now()
    WHERE sc.id = p_id AND sc.org_id = v_org
    RETURNING * INTO v_sc;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such scenario');
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, author_doc(v_sc);
END;
$$;


-- POST /authoring/scenarios/{id}/try: a trial session of the current
-- version, whatever its status, for the caller; it earns nothing (021)
CREATE OR REPLACE FUNCTION author_try(p_caller bigint, p_id int)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org bigint := author_org(p_caller);
    v_se  sessions%ROWTYPE;
BEGIN
    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, author_forbidden();
        RETURN;
    END IF;

    INSERT INTO sessions (user_id, scenario_id, scenario_version, trial)
    SELECT p_caller, sc.id, sc.version, true FROM scenarios sc
    WHERE sc.id = p_id AND sc.org_id = v_org
    RETURNING * INTO v_se;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such scenario');
        RETURN;
    END IF;

    RETURN QUERY SELECT 201, jsonb_build_object(
        'id', v_se.id, 'scenario_id', v_se.scenario_id,
        'scenario_version', v_se.scenario_version, 'status', v_se.status,
        'trial', true, 'created_at', api_time(v_se.created_at));
END;
$$;

-- Re-runnable: CREATE OR REPLACE and IF NOT EXISTS throughout.
INSERT INTO schema_migrations (version) VALUES ('023_authoring')
ON CONFLICT DO NOTHING;
