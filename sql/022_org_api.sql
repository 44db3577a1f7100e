-- 022_org_api.sql: the organization endpoints and registration with an
-- invite (issue 9, item 1).
--
-- Each endpoint is one call, one round trip: the function looks the caller
-- up, checks their organization and role, and answers (status, body).  A
-- body of an error status is {"code","message"} (the module wraps it in
-- API.md's error shape).  What belongs to another organization is simply
-- not found by the query: 404, never 403.  403 is for a caller whose own
-- role is too low, which reveals nothing.
--
-- Roles are read from users on every call and never cached, so a role
-- change or a removal holds at once on every worker of every nginx.

CREATE OR REPLACE FUNCTION api_err(p_code text, p_message text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('code', p_code, 'message', p_message);
$$;

CREATE OR REPLACE FUNCTION api_time(p_t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p_t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
$$;

CREATE OR REPLACE FUNCTION org_member_doc(u users) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', u.id, 'email', u.email,
                              'display_name', u.display_name,
                              'role', u.role,
                              'created_at', api_time(u.created_at));
$$;

CREATE OR REPLACE FUNCTION org_invite_doc(i invites) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', i.id, 'role', i.role,
        'created_at', api_time(i.created_at),
        'expires_at', api_time(i.expires_at),
        'used_at', api_time(i.used_at),
        'status', CASE WHEN i.used_at IS NOT NULL THEN 'used'
                       WHEN i.revoked_at IS NOT NULL THEN 'revoked'
                       WHEN i.expires_at <= now() THEN 'expired'
                       ELSE 'open' END);
$$;


-- GET /org: the caller's organization and role
CREATE OR REPLACE FUNCTION org_get(p_caller bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE sql STABLE AS $$
    SELECT 200, jsonb_build_object('id', o.id, 'name', o.name,
                                   'role', u.role,
                                   'members', (SELECT count(*) FROM users m
                                               WHERE m.org_id = o.id))
    FROM users u JOIN organizations o ON o.id = u.org_id
    WHERE u.id = p_caller
    UNION ALL
    SELECT 404, api_err('not_found', 'you belong to no organization')
    WHERE NOT EXISTS (SELECT 1 FROM users u
                      WHERE u.id = p_caller AND u.org_id IS NOT NULL);
$$;


-- GET /org/members: trainers and admins
CREATE OR REPLACE FUNCTION org_members(p_caller bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_org  bigint;
    v_role text;
BEGIN
    SELECT u.org_id, u.role INTO v_org, v_role FROM users u
    WHERE u.id = p_caller;

    IF v_org IS NULL OR v_role NOT IN ('trainer', 'admin') THEN
        RETURN QUERY SELECT 403, api_err('forbidden',
            'this needs the trainer or admin role in an organization');
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, coalesce(jsonb_agg(org_member_doc(m)
                                                ORDER BY m.id), '[]')
        FROM users m WHERE m.org_id = v_org;
END;
$$;


-- the caller is an admin of an organization: its id, else NULL
CREATE OR REPLACE FUNCTION org_admin_of(p_caller bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT u.org_id FROM users u
    WHERE u.id = p_caller AND u.role = 'admin' AND u.org_id IS NOT NULL;
$$;


-- PATCH /org/members/{id} {"role"} and DELETE /org/members/{id}: admins.
-- p_role NULL removes the member from the organization (they keep their
-- account and history, and see only the global scenarios).  The last
-- admin cannot leave or be demoted: 409.
CREATE OR REPLACE FUNCTION org_member_change(p_caller bigint, p_target bigint,
    p_role text)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org    bigint;
    v_target users%ROWTYPE;
    v_admins int;
BEGIN
    v_org := org_admin_of(p_caller);

    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, api_err('forbidden',
            'this needs the admin role');
        RETURN;
    END IF;

    -- the organization's admins, locked: two demotions cannot both pass
    SELECT count(*) INTO v_admins FROM (
        SELECT 1 FROM users a WHERE a.org_id = v_org AND a.role = 'admin'
        FOR UPDATE) x;

    SELECT * INTO v_target FROM users t
    WHERE t.id = p_target AND t.org_id = v_org FOR UPDATE;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such member');
        RETURN;
    END IF;

    IF v_target.role = 'admin' AND p_role IS DISTINCT FROM 'admin'
       AND v_admins <= 1
    THEN
        RETURN QUERY SELECT 409, api_err('conflict',
            'the organization must keep an admin');
        RETURN;
    END IF;

    IF p_role IS NULL THEN
        UPDATE users t SET org_id = NULL, role = 'trainee'
        WHERE t.id = p_target;
        RETURN QUERY SELECT 204, NULL::jsonb;
        RETURN;
    END IF;

    UPDATE users t SET role = p_role WHERE t.id = p_target
    RETURNING * INTO v_target;

    RETURN QUERY SELECT 200, org_member_doc(v_target);
END;
$$;


-- POST /org/invites: admins; p_hash is the hex SHA-256 of the code the
-- module made and answers once
CREATE OR REPLACE FUNCTION org_invite_create(p_caller bigint, p_role text,
    p_hash text, p_ttl int)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org    bigint;
    v_invite invites%ROWTYPE;
BEGIN
    v_org := org_admin_of(p_caller);

    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, api_err('forbidden',
            'this needs the admin role');
        RETURN;
    END IF;

    INSERT INTO invites (org_id, code_hash, role, created_by, expires_at)
    VALUES (v_org, p_hash, p_role, p_caller,
            now() + make_interval(secs => p_ttl))
    RETURNING * INTO v_invite;

    RETURN QUERY SELECT 201, org_invite_doc(v_invite);
END;
$$;


-- GET /org/invites: admins
CREATE OR REPLACE FUNCTION org_invites(p_caller bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_org bigint;
BEGIN
    v_org := org_admin_of(p_caller);

    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, api_err('forbidden',
            'this needs the admin role');
        RETURN;
    END IF;

    RETURN QUERY SELECT 200, coalesce(jsonb_agg(org_invite_doc(i)
                                                ORDER BY i.id DESC), '[]')
        FROM (SELECT * FROM invites WHERE org_id = v_org
              ORDER BY id DESC LIMIT 200) i;
END;
$$;


-- DELETE /org/invites/{id}: admins; a used invite stays used
CREATE OR REPLACE FUNCTION org_invite_revoke(p_caller bigint, p_id bigint)
RETURNS TABLE (status int, body jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org bigint;
BEGIN
    v_org := org_admin_of(p_caller);

    IF v_org IS NULL THEN
        RETURN QUERY SELECT 403, api_err('forbidden',
            'this needs the admin role');
        RETURN;
    END IF;

    UPDATE invites SET revoked_at = coalesce(revoked_at, now())
    WHERE id = p_id AND org_id = v_org;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, api_err('not_found', 'no such invite');
        RETURN;
    END IF;

    RETURN QUERY SELECT 204, NULL::jsonb;
END;
$$;


-- POST /auth/register.  With p_code_hash: the invite is used (once, in
-- this transaction) and gives its organization and role.  With
-- p_org_name: a new organization whose admin is the registrant.  Else the
-- default organization, as its admin when it has none yet (the first
-- account of a fresh install) or when p_admin (scenario_admin_email).
-- No row: the email is taken.  error 'invalid_invite': unknown, used,
-- revoked or expired; nothing is stored.
CREATE OR REPLACE FUNCTION org_register(p_email text, p_hash text, p_name text,
    p_code_hash text, p_org_name text, p_admin boolean)
RETURNS TABLE (id bigint, email text, display_name text, xp bigint,
               level int, error text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_org    bigint;
    v_role   text := 'trainee';
    v_invite bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = p_email) THEN
        RETURN;
    END IF;

    BEGIN
        IF p_code_hash IS NOT NULL THEN
            UPDATE invites i SET used_at = now()
            WHERE i.code_hash = p_code_hash AND i.used_at IS NULL
              AND i.revoked_at IS NULL AND i.expires_at > now()
            RETURNING i.id, i.org_id, i.role INTO v_invite, v_org, v_role;

            IF NOT FOUND THEN
                RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text,
                    NULL::bigint, NULL::int, 'invalid_invite'::text;
                RETURN;
            END IF;

        ELSIF p_org_name IS NOT NULL THEN
            INSERT INTO organizations (name) VALUES (p_org_name)
            RETURNING organizations.id INTO v_org;
            v_role := 'admin';

        ELSE
            v_org := 1;

            -- one first admin, however many register at once
            PERFORM 1 FROM organizations o WHERE o.id = 1 FOR UPDATE;

            IF NOT EXISTS (SELECT 1 FROM users u
                           WHERE u.org_id = 1 AND u.role = 'admin')
            THEN
                v_role := 'admin';
            END IF;
        END IF;

        IF p_admin THEN
            v_role := 'admin';
        END IF;

        RETURN QUERY
            INSERT INTO users AS u (email, password_hash, display_name,
                                    org_id, role)
            VALUES (p_email, p_hash, p_name, v_org, v_role)
            ON CONFLICT DO NOTHING
            RETURNING u.id, u.email, u.display_name, u.xp, u.level,
                      NULL::text;

        IF NOT FOUND THEN
            -- taken meanwhile: undo the invite's use, no row
            RAISE unique_violation;
        END IF;

        UPDATE invites i SET used_by = (SELECT u.id FROM users u
                                        WHERE lower(u.email) = p_email)
        WHERE i.id = v_invite;

    EXCEPTION WHEN unique_violation THEN
        RETURN;
    END;
END;
$$;

-- Re-runnable: CREATE OR REPLACE and IF NOT EXISTS throughout.
INSERT INTO schema_migrations (version) VALUES ('022_org_api')
ON CONFLICT DO NOTHING;
