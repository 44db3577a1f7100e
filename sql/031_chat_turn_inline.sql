-- 031_chat_turn_inline.sql: chat_store_message and chat_store_turn (030)
-- written out in one function each, instead of calling the functions of
-- 002 and 015 and reading the session's row again: Postgres is the
-- chat's largest cost per turn (bench/chat-bench).  The rules are those of
-- 002 and 015, line for line: the session's row is locked first (which
-- orders concurrent writers of a session), a repeated client_msg_id keeps
-- its seq, a resolved session stores nothing, a reply already stored
-- after p_answers is returned as a duplicate, a new one gets last_seq + 1.
--
-- Re-runnable: CREATE OR REPLACE.

CREATE OR REPLACE FUNCTION chat_store_message(
    p_session bigint, p_client_msg_id text, p_content text)
RETURNS TABLE (seq int, duplicate boolean, needs_reply boolean,
               last_seq int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_status text;
    v_last int;
    v_seq int;
BEGIN
    SELECT s.status, s.last_seq INTO v_status, v_last FROM sessions s
    WHERE s.id = p_session FOR UPDATE;

    IF NOT FOUND THEN
        RETURN;
    END IF;

    SELECT m.seq INTO v_seq FROM messages m
    WHERE m.session_id = p_session AND m.client_msg_id = p_client_msg_id;

    IF FOUND THEN
        seq := v_seq;
        duplicate := true;
        needs_reply := coalesce((SELECT m.role = 'user' FROM messages m
                                 WHERE m.session_id = p_session
                                 ORDER BY m.seq DESC LIMIT 1), false);
        last_seq := v_last;
        RETURN NEXT;
        RETURN;
    END IF;

    IF v_status <> 'active' THEN
        RETURN;
    END IF;

    UPDATE sessions s SET last_seq = s.last_seq + 1
    WHERE s.id = p_session RETURNING s.last_seq INTO v_seq;

    INSERT INTO messages (session_id, seq, role, content, client_msg_id)
    VALUES (p_session, v_seq, 'user', p_content, p_client_msg_id);

    seq := v_seq;
    duplicate := false;
    needs_reply := true;
    last_seq := v_seq;
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION chat_store_turn(
    p_session bigint, p_answers int, p_content text)
RETURNS TABLE (seq int, created_at timestamptz, content text,
               duplicate boolean, pending boolean, last_seq int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_status text;
    v_last int;
BEGIN
    SELECT s.status, s.last_seq INTO v_status, v_last FROM sessions s
    WHERE s.id = p_session FOR UPDATE;

    IF NOT FOUND OR v_status <> 'active' THEN
        RETURN;
    END IF;

    SELECT m.seq, m.created_at, m.content INTO seq, created_at, content
    FROM messages m
    WHERE m.session_id = p_session AND m.role = 'assistant'
      AND m.seq > p_answers
    ORDER BY m.seq LIMIT 1;

    IF FOUND THEN
        duplicate := true;

    ELSE
        UPDATE sessions s SET last_seq = s.last_seq + 1
        WHERE s.id = p_session RETURNING s.last_seq INTO v_last;

        INSERT INTO messages AS m (session_id, seq, role, content)
        VALUES (p_session, v_last, 'assistant', p_content)
        RETURNING m.seq, m.created_at, m.content
        INTO seq, created_at, content;

        duplicate := false;
    END IF;

    pending := EXISTS (SELECT 1 FROM messages m
                       WHERE m.session_id = p_session AND m.role = 'user'
                         AND m.seq > p_answers);
    last_seq := v_last;
    RETURN NEXT;
END;
$$;

INSERT INTO schema_migrations (version) VALUES ('031_chat_turn_inline')
ON CONFLICT DO NOTHING;
