-- 012_chat_reply_active.sql: a reply finishing after the session was
-- resolved is not stored into the assessed transcript (issue 11 item 14).
-- chat_add_reply returns NULL then; the chat tells the client "conflict".
--
-- Re-runnable: CREATE OR REPLACE.

CREATE OR REPLACE FUNCTION chat_add_reply(
    p_session bigint, p_seq int, p_content text)
RETURNS timestamptz LANGUAGE sql AS $$
    INSERT INTO messages (session_id, seq, role, content)
    SELECT p_session, p_seq, 'assistant', p_content
    FROM sessions
    WHERE id = p_session AND status = 'active'
    ON CONFLICT (session_id, seq) DO UPDATE SET content = EXCLUDED.content
    RETURNING created_at;
$$;

INSERT INTO schema_migrations (version) VALUES ('012_chat_reply_active')
ON CONFLICT DO NOTHING;
