-- 032_chat_turn_lean.sql: less Postgres work per chat turn (issue 10).
--
-- chat_store_message and chat_store_turn (031) took the session's row
-- with SELECT ... FOR UPDATE and then updated it: two writes of the row
-- and two WAL records per statement.  Here the UPDATE that takes the seq
-- comes first: it locks the row as well, so it orders the session's
-- writers as before, and under READ COMMITTED each later statement of
-- the function sees what the earlier lock holders committed.  Only on the
-- rare duplicate (a repeated client_msg_id, a reply already stored after
-- p_answers) is the increment given back, still under the lock, so seqs
-- keep no holes.  The rules are those of 031: a repeated client_msg_id
-- gets its seq (also once the session is resolved), a resolved or missing
-- session stores nothing, a reply already stored after p_answers is
-- returned as a duplicate, pending says whether a message of the trainee
-- newer than p_answers exists.
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

    SELECT m.seq INTO v_dup FROM messages m
    WHERE m.session_id = p_session AND m.client_msg_id = p_client_msg_id;

    IF FOUND THEN
        IF v_seq IS NOT NULL THEN
            -- the seq goes back: no message takes it
            UPDATE sessions s SET last_seq = s.last_seq - 1
            WHERE s.id = p_session;
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
        RETURN;
    END IF;

    IF v_seq IS NULL THEN
        RETURN;
    END IF;

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
    v_last int;
BEGIN
    UPDATE sessions s SET last_seq = s.last_seq + 1
    WHERE s.id = p_session AND s.status = 'active'
    RETURNING s.last_seq INTO v_last;

    IF NOT FOUND THEN
        RETURN;
    END IF;

    SELECT m.seq, m.created_at, m.content INTO seq, created_at, content
    FROM messages m
    WHERE m.session_id = p_session AND m.role = 'assistant'
      AND m.seq > p_answers
    ORDER BY m.seq LIMIT 1;

    IF FOUND THEN
        -- the seq goes back: no reply takes it
        UPDATE sessions s SET last_seq = s.last_seq - 1
        WHERE s.id = p_session RETURNING s.last_seq INTO v_last;
        duplicate := true;

    ELSE
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

INSERT INTO schema_migrations (version) VALUES ('032_chat_turn_lean')
ON CONFLICT DO NOTHING;
