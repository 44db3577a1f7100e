-- 033_messages_lean.sql: fewer index entries per chat message (issue 10).
--
-- Every message cost three index insertions: the identity column's
-- primary key, (session_id, seq) and (session_id, client_msg_id), plus a
-- sequence draw.  Nothing reads messages.id: a message is named by its
-- session and seq everywhere (API.md, the functions, the module), so that
-- pair becomes the primary key and the surrogate goes.  Only the
-- trainee's messages carry a client_msg_id (the replies have NULL, which
-- never conflicts), so its unique index holds only those: the replies
-- skip it.  The lookups (session_id = $1 AND client_msg_id = $2) imply
-- client_msg_id IS NOT NULL, so the planner still uses it.
--
-- Both new indexes are built under the table's lock (migrations run in a
-- transaction, where CONCURRENTLY is refused): on a large messages table
-- chats wait while they build, so apply it in a quiet hour.
--
-- Re-runnable: each step is skipped once done.

ALTER TABLE messages DROP COLUMN IF EXISTS id;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'messages'::regclass AND contype = 'p')
    THEN
        ALTER TABLE messages
            DROP CONSTRAINT IF EXISTS messages_session_id_seq_key,
            ADD CONSTRAINT messages_pkey PRIMARY KEY (session_id, seq);
    END IF;
END
$$;

-- 001 run again (migrate's concurrent runners re-apply) adds them back
ALTER TABLE messages
    DROP CONSTRAINT IF EXISTS messages_session_id_seq_key,
    DROP CONSTRAINT IF EXISTS messages_session_id_client_msg_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_msg_id_key
    ON messages (session_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
