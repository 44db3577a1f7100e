-- 015_chat_reply_seq.sql: a reply takes its seq when it is stored, not
-- before the model call, so a failed call leaves no hole (issue 12 item 3).
--
-- p_answers is the session's last_seq when the turn began: the messages the
-- reply answers.  Under the session's row lock: a resolved session stores
-- nothing (no row: the chat says "conflict", as with 012); a reply already
-- stored after p_answers (another holder, e.g. after a lost lock) is
-- returned as a duplicate instead of storing a second one; otherwise the
-- reply gets last_seq + 1.
--
-- Re-runnable: CREATE OR REPLACE.

CREATE OR REPLACE FUNCTION chat_store_reply(
    p_session bigint, p_answers int, p_content text)
RETURNS TABLE (seq int, created_at timestamptz, content text,
               duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_seq int;
BEGIN
    SELECT s.status INTO v_status FROM sessions s
    WHERE s.id = p_session FOR UPDATE;

    IF NOT FOUND OR v_status <> 'active' THEN
        RETURN;
    END IF;

    RETURN QUERY SELECT m.seq, m.created_at, m.content, true
        FROM messages m
        WHERE m.session_id = p_session AND m.role = 'assistant'
          AND m.seq > p_answers
        ORDER BY m.seq LIMIT 1;

    IF FOUND THEN
        RETURN;
    END IF;

    UPDATE sessions s SET last_seq = s.last_seq + 1
    WHERE s.id = p_session RETURNING s.last_seq INTO v_seq;

    RETURN QUERY INSERT INTO messages AS m
        (session_id, seq, role, content)
        VALUES (p_session, v_seq, 'assistant', p_content)
        RETURNING m.seq, m.created_at, m.content, false;
END;
$$;

INSERT INTO schema_migrations (version) VALUES ('015_chat_reply_seq')
ON CONFLICT DO NOTHING;
