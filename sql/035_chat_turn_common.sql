-- 035_chat_turn_common.sql: chat_store_turn (032) without its two lookups
-- on the common path, and with a commit that need not wait for the WAL
-- flush (issue 10).
--
-- 032 asked two questions of the messages after p_answers on every reply:
-- is a reply already stored there (a duplicate), and is a message of the
-- trainee waiting (pending).  The UPDATE that takes the reply's seq holds
-- the session's row and returns its last_seq as the last writer committed
-- it, and no message has a seq above the session's last_seq.  So when the
-- last_seq before this reply is at most p_answers, nothing is stored after
-- p_answers and both answers are no: the reply goes in at once.  That is
-- the common turn (the trainee waits for the reply); only when more came
-- in meanwhile are the questions asked, as in 032.
--
-- p_durable false (what the module sends with scenario_chat_reply_durable
-- off; on is the default): the reply's transaction commits with
-- synchronous_commit off, for
-- that transaction only (set_config(..., true), so a pooler in transaction
-- mode is fine).  The reply is seen by every reader at once, as before;
-- only its WAL flush comes later: with the next durable commit of anyone
-- (the trainee's next message is stored durably before its ack, and its
-- flush takes every earlier record with it), else within three
-- wal_writer_delay.  A Postgres crash in that window can lose the last
-- reply of a session, never a message before an acknowledged one; the
-- trainee's message then waits for a reply, and the next connection makes
-- it again.  The trainee's message itself is stored as before: durably,
-- before its ack.
--
-- The three-argument function goes: a caller of it (an nginx not yet
-- reloaded) gets this one, p_durable defaulting to true.
--
-- Re-runnable: DROP IF EXISTS, CREATE OR REPLACE.

DROP FUNCTION IF EXISTS chat_store_turn(bigint, int, text);

CREATE OR REPLACE FUNCTION chat_store_turn(
    p_session bigint, p_answers int, p_content text,
    p_durable boolean DEFAULT true)
RETURNS TABLE (seq int, created_at timestamptz, content text,
               duplicate boolean, pending boolean, last_seq int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_last int;
BEGIN
    IF NOT p_durable THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;

    UPDATE sessions s SET last_seq = s.last_seq + 1
    WHERE s.id = p_session AND s.status = 'active'
    RETURNING s.last_seq INTO v_last;

    IF NOT FOUND THEN
        RETURN;
    END IF;

    IF v_last - 1 > p_answers THEN
        SELECT m.seq, m.created_at, m.content INTO seq, created_at, content
        FROM messages m
        WHERE m.session_id = p_session AND m.role = 'assistant'
          AND m.seq > p_answers
        ORDER BY m.seq LIMIT 1;

        duplicate := FOUND;
        pending := EXISTS (SELECT 1 FROM messages m
                           WHERE m.session_id = p_session AND m.role = 'user'
                             AND m.seq > p_answers);
    ELSE
        duplicate := false;
        pending := false;
    END IF;

    IF duplicate THEN
        -- the seq goes back: no reply takes it
        UPDATE sessions s SET last_seq = s.last_seq - 1
        WHERE s.id = p_session RETURNING s.last_seq INTO v_last;
    ELSE
        INSERT INTO messages AS m (session_id, seq, role, content)
        VALUES (p_session, v_last, 'assistant', p_content)
        RETURNING m.seq, m.created_at, m.content
        INTO seq, created_at, content;
    END IF;

    last_seq := v_last;
    RETURN NEXT;
END;
$$;

INSERT INTO schema_migrations (version) VALUES ('035_chat_turn_common')
ON CONFLICT DO NOTHING;
