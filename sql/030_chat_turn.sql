-- 030_chat_turn.sql: two Postgres statements per chat turn (issue 10,
-- item 1).  Each is one function call, one implicit transaction, with no
-- session state (safe behind PgBouncer in transaction mode).
--
-- chat_store_message: chat_add_user_message (002) that also says the
-- session's last_seq after it: the seq the turn it starts answers, so the
-- turn needs no second look at the session before its model call.
--
-- chat_store_turn: chat_store_reply (015) that also says whether a message
-- of the trainee stored after p_answers waits for its reply ("pending"),
-- and the session's last_seq then (what the next turn answers), so the
-- turn needs no third statement after the store.
--
-- Both lock the session's row as the functions they extend do; the seq and
-- dedupe rules are theirs, unchanged.  The old functions stay for callers
-- of other branches.  Re-runnable: CREATE OR REPLACE.

CREATE OR REPLACE FUNCTION chat_store_message(
    p_session bigint, p_client_msg_id text, p_content text)
RETURNS TABLE (seq int, duplicate boolean, needs_reply boolean,
               last_seq int)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r
    FROM chat_add_user_message(p_session, p_client_msg_id, p_content);

    IF NOT FOUND THEN
        RETURN;
    END IF;

    -- a statement of its own: it sees the row the call above updated
    RETURN QUERY SELECT r.seq, r.duplicate, coalesce(r.needs_reply, false),
                        s.last_seq
        FROM sessions s WHERE s.id = p_session;
END;
$$;

CREATE OR REPLACE FUNCTION chat_store_turn(
    p_session bigint, p_answers int, p_content text)
RETURNS TABLE (seq int, created_at timestamptz, content text,
               duplicate boolean, pending boolean, last_seq int)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM chat_store_reply(p_session, p_answers, p_content);

    IF NOT FOUND THEN
        RETURN;
    END IF;

    RETURN QUERY SELECT r.seq, r.created_at, r.content, r.duplicate,
                        EXISTS (SELECT 1 FROM messages m
                                WHERE m.session_id = p_session
                                  AND m.role = 'user'
                                  AND m.seq > p_answers),
                        s.last_seq
        FROM sessions s WHERE s.id = p_session;
END;
$$;

INSERT INTO schema_migrations (version) VALUES ('030_chat_turn')
ON CONFLICT DO NOTHING;
