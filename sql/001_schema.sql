-- 001_schema.sql: initial schema for the conversation-practice platform.
--
-- Safe to re-run: every object is created with IF NOT EXISTS, and named
-- constraints are added through DO blocks that first look them up in
-- pg_constraint. scripts/migrate runs this file inside a single transaction
-- (psql --single-transaction) and records it in schema_migrations; the file
-- also records itself at the end, so applying it by hand with psql -f leaves
-- the same trace.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- users
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    display_name  text        NOT NULL,
    xp            bigint      NOT NULL DEFAULT 0,
    level         int         NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    -- Plain unique constraint on email; Postgres names it users_email_key.
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'users'::regclass AND conname = 'users_email_key') THEN
        ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'users'::regclass AND conname = 'users_email_length_check') THEN
        ALTER TABLE users ADD CONSTRAINT users_email_length_check
            CHECK (length(email) <= 254);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'users'::regclass AND conname = 'users_display_name_length_check') THEN
        ALTER TABLE users ADD CONSTRAINT users_display_name_length_check
            CHECK (length(display_name) BETWEEN 1 AND 64);
    END IF;
END
$$;

-- Case-insensitive uniqueness (the app stores emails lowercased anyway).
CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_idx ON users (lower(email));

-- ---------------------------------------------------------------------------
-- scenarios
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS scenarios (
    id               int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug             text        NOT NULL,
    title            text        NOT NULL,
    description      text        NOT NULL,
    difficulty       text        NOT NULL,
    persona_name     text        NOT NULL,
    persona_role     text        NOT NULL,
    persona_prompt   text        NOT NULL,  -- system prompt: personality, style, knowledge, reactions
    backstory        text        NOT NULL,
    goal             text        NOT NULL,  -- what the trainee must achieve
    opening_line     text        NOT NULL,  -- hint for the persona's first message
    good_resolution  text        NOT NULL,  -- what a good resolution looks like
    success_criteria jsonb       NOT NULL,  -- [{"key","description","keywords":[...]}]
    weights          jsonb       NOT NULL
                     DEFAULT '{"empathy":1,"clarity":1,"resolution":1,"efficiency":1}',
    target_turns     int         NOT NULL DEFAULT 6,  -- trainee turns a good resolution takes
    xp_reward        int         NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'scenarios'::regclass AND conname = 'scenarios_slug_key') THEN
        ALTER TABLE scenarios ADD CONSTRAINT scenarios_slug_key UNIQUE (slug);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'scenarios'::regclass AND conname = 'scenarios_difficulty_check') THEN
        ALTER TABLE scenarios ADD CONSTRAINT scenarios_difficulty_check
            CHECK (difficulty IN ('easy', 'medium', 'hard'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'scenarios'::regclass AND conname = 'scenarios_xp_reward_check') THEN
        ALTER TABLE scenarios ADD CONSTRAINT scenarios_xp_reward_check
            CHECK (xp_reward > 0);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'scenarios'::regclass AND conname = 'scenarios_success_criteria_check') THEN
        ALTER TABLE scenarios ADD CONSTRAINT scenarios_success_criteria_check
            CHECK (jsonb_typeof(success_criteria) = 'array');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'scenarios'::regclass AND conname = 'scenarios_weights_check') THEN
        ALTER TABLE scenarios ADD CONSTRAINT scenarios_weights_check
            CHECK (jsonb_typeof(weights) = 'object');
    END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- sessions
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS sessions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scenario_id int         NOT NULL REFERENCES scenarios (id),
    status      text        NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    last_seq    int         NOT NULL DEFAULT 0
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'sessions'::regclass AND conname = 'sessions_status_check') THEN
        ALTER TABLE sessions ADD CONSTRAINT sessions_status_check
            CHECK (status IN ('active', 'resolved'));
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS sessions_user_created_idx ON sessions (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS sessions_scenario_idx ON sessions (scenario_id);

-- ---------------------------------------------------------------------------
-- messages
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS messages (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id    bigint      NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq           int         NOT NULL,
    role          text        NOT NULL,
    content       text        NOT NULL,
    client_msg_id text,       -- NULL for assistant messages
    created_at    timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'messages'::regclass AND conname = 'messages_role_check') THEN
        ALTER TABLE messages ADD CONSTRAINT messages_role_check
            CHECK (role IN ('user', 'assistant'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'messages'::regclass AND conname = 'messages_session_id_seq_key') THEN
        ALTER TABLE messages ADD CONSTRAINT messages_session_id_seq_key
            UNIQUE (session_id, seq);
    END IF;
    -- NULL client_msg_id values never conflict (Postgres default NULLS DISTINCT).
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'messages'::regclass AND conname = 'messages_session_id_client_msg_id_key') THEN
        ALTER TABLE messages ADD CONSTRAINT messages_session_id_client_msg_id_key
            UNIQUE (session_id, client_msg_id);
    END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- assessments
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS assessments (
    session_id bigint PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    overall    int         NOT NULL,
    empathy    int         NOT NULL,
    clarity    int         NOT NULL,
    resolution int         NOT NULL,
    efficiency int         NOT NULL,
    feedback   jsonb       NOT NULL,
    metrics    jsonb       NOT NULL,
    graded_by  text        NOT NULL DEFAULT 'rules',
    created_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    col text;
BEGIN
    FOREACH col IN ARRAY ARRAY['overall', 'empathy', 'clarity', 'resolution', 'efficiency'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                       WHERE conrelid = 'assessments'::regclass
                         AND conname = 'assessments_' || col || '_check') THEN
            EXECUTE format('ALTER TABLE assessments ADD CONSTRAINT %I CHECK (%I BETWEEN 0 AND 100)',
                           'assessments_' || col || '_check', col);
        END IF;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- xp_ledger
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS xp_ledger (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id bigint      REFERENCES sessions (id) ON DELETE CASCADE,
    amount     int         NOT NULL,
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'xp_ledger'::regclass AND conname = 'xp_ledger_session_id_reason_key') THEN
        ALTER TABLE xp_ledger ADD CONSTRAINT xp_ledger_session_id_reason_key
            UNIQUE (session_id, reason);
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS xp_ledger_user_created_idx ON xp_ledger (user_id, created_at DESC);

-- ---------------------------------------------------------------------------
-- achievements
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS achievements (
    code        text PRIMARY KEY,
    title       text NOT NULL,
    description text NOT NULL,
    kind        text NOT NULL,  -- see achievements_kind_check
    threshold   int  NOT NULL DEFAULT 0,
    difficulty  text,           -- only for kind = 'difficulty_complete'
    sort        int  NOT NULL DEFAULT 0
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'achievements'::regclass AND conname = 'achievements_kind_check') THEN
        ALTER TABLE achievements ADD CONSTRAINT achievements_kind_check
            CHECK (kind IN ('first_resolve', 'perfect_dimension', 'sessions_count',
                            'difficulty_complete', 'streak', 'fast_resolve', 'score_at_least'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'achievements'::regclass AND conname = 'achievements_difficulty_check') THEN
        ALTER TABLE achievements ADD CONSTRAINT achievements_difficulty_check
            CHECK (difficulty IS NULL OR difficulty IN ('easy', 'medium', 'hard'));
    END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- user_achievements
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS user_achievements (
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code        text        NOT NULL REFERENCES achievements (code),
    session_id  bigint      REFERENCES sessions (id) ON DELETE SET NULL,
    unlocked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, code)
);

-- ---------------------------------------------------------------------------
-- user_streaks
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS user_streaks (
    user_id      bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    current_days int    NOT NULL DEFAULT 0,
    best_days    int    NOT NULL DEFAULT 0,
    last_day     date
);

INSERT INTO schema_migrations (version) VALUES ('001_schema')
ON CONFLICT (version) DO NOTHING;
