# Issue 9's migrations on a database that already has data (sql/020-024):
# the users join the default organization as trainees, the scenarios
# become global, published and versioned, the sessions take version 1 and
# resolve as before; the seed then adds the demo trainer and no version.
# Applied a second time, the migrations change nothing (scripts/migrate
# may re-apply one when two runs race).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);

my $repo = $ENV{TEST_NGINX_REPO} or die "run me through scripts/test\n";
my $db = "upgrade_$$";

pg_exec("CREATE DATABASE $db");
local $ENV{PGDATABASE} = $db;

my @old = grep { m{/0[01]\d_[^/]+\.sql$} } sort glob("$repo/sql/*.sql");
my @new = grep { m{/02\d_[^/]+\.sql$} } sort glob("$repo/sql/*.sql");
ok @old >= 5 && @new >= 5, 'the migrations before and of issue 9';

sub apply {
    my ($file) = @_;
    system('psql', '-X', '-q', '-o', '/dev/null', '-v', 'ON_ERROR_STOP=1',
           '--single-transaction',
           '-c', 'SET client_min_messages = warning', '-f', $file) == 0
        or die "psql -f $file failed\n";
    (my $v = $file) =~ s{.*/|\.sql$}{}g;
    pg_exec(q{INSERT INTO schema_migrations (version) VALUES (:'v1')
              ON CONFLICT DO NOTHING}, $v);
}

apply($_) for @old;

# what an installation of before had: a scenario, users, sessions
my $sc = pg_exec(q{INSERT INTO scenarios (slug, title, description, difficulty,
        persona_name, persona_role, persona_prompt, backstory, goal, opening_line,
        good_resolution, success_criteria, xp_reward)
    VALUES ('old-one', 'Old one', 'd', 'easy', 'P', 'R', 'prompt', 'b', 'g', 'o',
            'gr', '[{"key":"k","description":"d","keywords":["sorry"]}]', 50)
    RETURNING id});
my $u = pg_exec(q{INSERT INTO users (email, password_hash, display_name, xp)
    VALUES ('before@example.com', 'x', 'Before', 75) RETURNING id});
my $done = pg_exec(q{INSERT INTO sessions (user_id, scenario_id, status, resolved_at)
    VALUES (:'v1', :'v2', 'resolved', now()) RETURNING id}, $u, $sc);
pg_exec(q{INSERT INTO assessments (session_id, overall, empathy, clarity, resolution,
        efficiency, feedback, metrics, rewards)
    VALUES (:'v1', 80, 80, 80, 80, 80, '[]', '{}', '{"xp_awarded":75}')}, $done);
my $open = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
    VALUES (:'v1', :'v2') RETURNING id}, $u, $sc);

system("$repo/scripts/migrate >/dev/null") == 0 or die "scripts/migrate failed\n";

is pg_exec(q{SELECT org_id || ' ' || role FROM users WHERE id = :'v1'}, $u),
    '1 trainee', 'an existing user is a trainee of the default organization';
is pg_exec(q{SELECT coalesce(org_id::text, 'global') || ' ' || status || ' ' || version
             FROM scenarios WHERE id = :'v1'}, $sc),
    'global published 1', 'an existing scenario is global, published, version 1';
is pg_exec(q{SELECT count(*) FROM scenario_versions WHERE scenario_id = :'v1'}, $sc), 1,
    'with its version stored';
is_deeply [pg_exec(q{SELECT scenario_version FROM sessions WHERE user_id = :'v1'
                     ORDER BY id}, $u)], [1, 1], 'its sessions are of version 1';
is pg_exec(q{SELECT game_result(:'v1') #>> '{performance,overall}'}, $done), 80,
    'a resolved session answers as before';
is pg_exec(q{SELECT count(*) FROM scenarios s JOIN scenario_versions v
             ON v.scenario_id = s.id AND v.version = s.version}),
   pg_exec(q{SELECT count(*) FROM scenarios}), 'every scenario has its current version';
is pg_exec(q{SELECT max(version) FROM scenarios WHERE org_id IS NULL}), 1,
    'the seed made no second version';
is pg_exec(q{SELECT role FROM users WHERE email = 'trainer@example.com'}), 'trainer',
    'the seed added the demo trainer';
ok pg_exec(q{SELECT scenario_visible(:'v1', :'v2')}, $u, $sc) eq 't',
    'the user may still play the scenario';

# what happened since must survive the migrations run again
pg_exec(q{UPDATE users SET org_id = NULL WHERE id = :'v1'}, $u);
pg_exec(q{UPDATE scenarios SET goal = 'new goal' WHERE id = :'v1'}, $sc);
my $before = pg_exec(q{SELECT count(*) FROM scenario_versions});
apply($_) for @new;
is pg_exec(q{SELECT coalesce(org_id::text, 'none') FROM users WHERE id = :'v1'}, $u),
    'none', 'run again, the migrations do not bring a removed member back';
is pg_exec(q{SELECT count(*) FROM scenario_versions}), $before, 'nor add versions';
is_deeply [pg_exec(q{SELECT scenario_version FROM sessions WHERE user_id = :'v1'
                     ORDER BY id}, $u)], [1, 1], 'nor move sessions';
is pg_exec(q{SELECT version FROM scenarios WHERE id = :'v1'}, $sc), 2,
    'and the edit made version 2';

local $ENV{PGDATABASE} = 'postgres';
pg_exec("DROP DATABASE $db WITH (FORCE)");

done_testing();
