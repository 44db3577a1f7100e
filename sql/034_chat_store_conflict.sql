-- 034_chat_store_conflict.sql: chat_store_message (032) without the
-- lookup of the client_msg_id on the common path (issue 10).
--
-- 032 looked the client_msg_id up before every insert.  A repeat is rare,
-- and the unique index on (session_id, client_msg_id) (033) already makes
-- that check as the row goes in: the insert says ON CONFLICT DO NOTHING,
-- and only when nothing went in is the message looked up.  The session's
-- row is locked by the UPDATE first, as in 032, so writers of a session
-- still go one at a time and a repeat always finds the first one
-- committed.  The rules are those of 032: a repeated client_msg_id gets
-- its seq (also once the session is resolved) and gives the increment
-- back, a resolved or missing session stores nothing.
--
-- Re-runnable: CREATE OR REPLACE.

CREATE OR REPLACE FUNCTION chat_store_message(
    p_session bigint, p_client_msg_id text, p_content text)
RETURNS TABLE (seq int, duplicate boolean, needs_reply boolean,
               last_seq int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_seq int;
    v_dup int;
BEGIN
    UPDATE sessions s SET last_seq = s.last_seq + 1
    WHERE s.id = p_session AND s.status = 'active'
    RETURNING s.last_seq INTO v_seq;

    IF v_seq IS NOT NULL THEN
        INSERT INTO messages (session_id, seq, role, content, client_msg_id)
        VALUES (p_session, v_seq, 'user', p_content, p_client_msg_id)
        ON CONFLICT (session_id, client_msg_id)
            WHERE client_msg_id IS NOT NULL
        DO NOTHING;

        IF FOUND THEN
            seq := v_seq;
            duplicate := false;
            needs_reply := true;
            last_seq := v_seq;
            RETURN NEXT;
            RETURN;
        END IF;

        -- a repeat: the seq goes back, no message takes it
        UPDATE sessions s SET last_seq = s.last_seq - 1
        WHERE s.id = p_session;
    END IF;

    SELECT m.seq INTO v_dup FROM messages m
    WHERE m.session_id = p_session AND m.client_msg_id = p_client_msg_id;

    IF NOT FOUND THEN
        RETURN;
    END IF;

    -- resolved sessions are never written again: no lock needed
    SELECT v_dup, true,
           coalesce((SELECT m.role = 'user' FROM messages m
                     WHERE m.session_id = p_session
                     ORDER BY m.seq DESC LIMIT 1), false),
           s.last_seq
    INTO seq, duplicate, needs_reply, last_seq
    FROM sessions s WHERE s.id = p_session;
    RETURN NEXT;
END;
$$;
