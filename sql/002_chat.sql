-- Chat storage: per-session sequence numbers handed out under the
-- session's row lock, so that concurrent writers (two tabs, two workers,
-- two nginx instances) never collide and a repeated client_msg_id is
-- answered with the seq it already has.

CREATE OR REPLACE FUNCTION chat_add_user_message(
    p_session bigint, p_client_msg_id text, p_content text)
RETURNS TABLE (seq int, duplicate boolean, needs_reply boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_seq int;
BEGIN
    SELECT s.status INTO v_status FROM sessions s
    WHERE s.id = p_session FOR UPDATE;

    IF NOT FOUND THEN
        RETURN;
    END IF;

    SELECT m.seq INTO v_seq FROM messages m
    WHERE m.session_id = p_session AND m.client_msg_id = p_client_msg_id;

    IF FOUND THEN
        RETURN QUERY SELECT v_seq, true,
            (SELECT m.role = 'user' FROM messages m
             WHERE m.session_id = p_session ORDER BY m.seq DESC LIMIT 1);
        RETURN;
    END IF;

    IF v_status <> 'active' THEN
        RETURN;
    END IF;

    UPDATE sessions s SET last_seq = s.last_seq + 1
    WHERE s.id = p_session RETURNING s.last_seq INTO v_seq;

    INSERT INTO messages (session_id, seq, role, content, client_msg_id)
    VALUES (p_session, v_seq, 'user', p_content, p_client_msg_id);

    RETURN QUERY SELECT v_seq, false, true;
END;
$$;

-- The seq of a reply about to stream; stored by chat_add_reply at its end.
CREATE OR REPLACE FUNCTION chat_reserve_seq(p_session bigint)
RETURNS int LANGUAGE sql AS $$
    UPDATE sessions SET last_seq = last_seq + 1
    WHERE id = p_session AND status = 'active'
    RETURNING last_seq;
$$;

CREATE OR REPLACE FUNCTION chat_add_reply(
    p_session bigint, p_seq int, p_content text)
RETURNS timestamptz LANGUAGE sql AS $$
    INSERT INTO messages (session_id, seq, role, content)
    VALUES (p_session, p_seq, 'assistant', p_content)
    ON CONFLICT (session_id, seq) DO UPDATE SET content = EXCLUDED.content
    RETURNING created_at;
$$;

INSERT INTO schema_migrations (version) VALUES ('002_chat')
ON CONFLICT DO NOTHING;
