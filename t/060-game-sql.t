# The game engine in Postgres (sql/003_game.sql): XP, levels, resolve
# (idempotent, also under 20 concurrent calls), achievements, streaks,
# progress and the leaderboard.  Needs a migrated and seeded database
# (PGHOST, PGPORT, PGUSER, PGDATABASE, as scripts/test sets them); every
# user it makes is new, so it can run against a database in use.

use strict;
use warnings;
use lib 't/lib';

use File::Temp qw(tempdir);
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep);
use Test::Scenario::Util qw(pg_exec json_decode json_encode);

plan skip_all => 'PGDATABASE is not set (run through scripts/test)'
    unless $ENV{PGDATABASE};

my $tag = "g$$" . time();
my $users = 0;

sub make_user {
    my ($name, $xp) = @_;
    $users++;
    my $id = pg_exec(<<'SQL', "$tag-$users\@example.test", $name);
INSERT INTO users (email, password_hash, display_name)
VALUES (:'v1', 'x', :'v2') RETURNING id;
SQL
    if (defined $xp) {
        pg_exec(<<'SQL', $id, $xp);
UPDATE users SET xp = :'v2',
       level = (SELECT level FROM game_level(:'v2'))
WHERE id = :'v1';
SQL
    }
    return $id;
}

my %scenario = map { split /\|/ }
    pg_exec("SELECT slug || '|' || id FROM scenarios");

# A session with the persona's opening and, unless told otherwise, one
# reply of the trainee; age_s backdates its start.
sub make_session {
    my ($user, $slug, %o) = @_;
    my $sid = pg_exec(<<'SQL', $user, $scenario{$slug}, $o{age_s} // 0);
INSERT INTO sessions (user_id, scenario_id, created_at, last_seq)
VALUES (:'v1', :'v2', now() - make_interval(secs => :'v3'), 1)
RETURNING id;
SQL
    pg_exec(<<'SQL', $sid);
INSERT INTO messages (session_id, seq, role, content)
VALUES (:'v1', 1, 'assistant', 'Hello.');
SQL
    unless ($o{no_user}) {
        pg_exec(<<'SQL', $sid);
INSERT INTO messages (session_id, seq, role, content, client_msg_id)
VALUES (:'v1', 2, 'user', 'Hi, how can I help?', 'c1');
UPDATE sessions SET last_seq = 2 WHERE id = :'v1';
SQL
    }
    return $sid;
}

sub assessment {
    my ($overall, %dims) = @_;
    return json_encode({
        overall    => $overall,
        dimensions => { map { $_ => $dims{$_} // $overall }
                        qw(empathy clarity resolution efficiency) },
        feedback   => ['They ended satisfied ("Thank you, that works '
                       . 'for me.").'],
        metrics    => { turns => 1, duration_s => 30, avg_response_s => 12 },
        criteria   => [], satisfied => JSON::PP::true(),
        graded_by  => 'rules',
    });
}

# the raw text and the decoded document of one game_resolve call
sub resolve {
    my ($sid, $uid, $assessment) = @_;
    my $raw = pg_exec("SELECT game_resolve(:'v1', :'v2', :'v3')",
                      $sid, $uid, $assessment);
    return ($raw, length $raw ? json_decode($raw) : undef);
}

# the codes of the achievements a resolve unlocked
sub codes {
    return [map { $_->{code} } @{ $_[0]{rewards}{achievements_unlocked} }];
}

sub today_sql { "(now() AT TIME ZONE 'UTC')::date" }

# ---------------------------------------------------------------------------
subtest 'game_xp' => sub {
    my @cases = (
        # difficulty, reward, overall, first, repeats => xp
        [qw(easy 50 80 t 0),   60,  'quality 0.8, first completion x1.5'],
        [qw(easy 50 80 f 1),   31,  'second time today: x0.9747^10'],
        [qw(easy 50 100 f 2),  30,  'third time today: x0.9747^20'],
        [qw(easy 50 0 f 0),    10,  'quality never below 0.2'],
        [qw(easy 50 150 f 0),  50,  'quality never above 1.0'],
        [qw(hard 125 100 t 0), 188, '187.5 rounds half up'],
        [qw(medium 0 100 f 0), 80,  'no reward: the default by difficulty'],
    );
    for my $c (@cases) {
        my ($d, $r, $o, $f, $n, $want, $name) = @$c;
        is pg_exec("SELECT game_xp(:'v1', :'v2', :'v3', :'v4', :'v5')",
                   $d, $r, $o, $f, $n), $want, $name;
    }
};

subtest 'game_level: Habitica curve' => sub {
    my %to_next = (1 => 25, 2 => 50, 4 => 100, 5 => 150, 6 => 210,
                   10 => 260, 20 => 440, 30 => 660, 50 => 1260,
                   100 => 3640);
    for my $l (sort { $a <=> $b } keys %to_next) {
        is pg_exec("SELECT game_to_next_level(:'v1')", $l), $to_next{$l},
           "level $l needs $to_next{$l}";
    }
    my @cases = (
        [0,    '1|0|25'],  [24,   '1|24|25'], [25,   '2|0|50'],
        [399,  '5|149|150'], [400, '6|0|210'], [1579, '10|259|260'],
        [1580, '11|0|280'], [5150, '21|0|460'], [-5, '1|0|25'],
    );
    for my $c (@cases) {
        is pg_exec("SELECT level || '|' || level_xp || '|' || next_level_xp "
                   . "FROM game_level(:'v1')", $c->[0]), $c->[1],
           "$c->[0] XP: level|level_xp|next_level_xp = $c->[1]";
    }
};

# ---------------------------------------------------------------------------
subtest 'game_resolve: rewards, shape and idempotence' => sub {
    my $u = make_user('Resolver');
    my $other = make_user('Intruder');
    my $s = make_session($u, 'refund-angry-customer');

    is pg_exec("SELECT game_resolve(:'v1', :'v2', :'v3') IS NULL",
               $s, $other, assessment(80)), 't',
       "another user's session: NULL";
    is pg_exec("SELECT game_resolve(:'v1', :'v2', :'v3') IS NULL",
               -1, $u, assessment(80)), 't', 'no such session: NULL';

    my ($raw, $r) = resolve($s, $u, assessment(80, empathy => 70));
    is_deeply [sort keys %$r], [qw(performance rewards session_id)],
        'top-level keys';
    is $r->{session_id}, $s, 'session_id';
    # API.md's keys, plus the additive ones of issue 8 (sql/008, sql/050)
    is_deeply [sort keys %{ $r->{performance} }],
        [qw(criteria dimensions feedback judge manipulation metrics overall
            pass_mark passed review_suggested)],
        'performance has the API keys and the criteria, pass mark, passed, '
        . 'the judge';
    is_deeply $r->{performance}{judge}, { used => JSON::PP::false,
        reason => 'off' }, 'an assessment without a judge: used false';
    is $r->{performance}{review_suggested}, JSON::PP::false,
        'review_suggested false';
    is $r->{performance}{overall}, 80, 'overall stored';
    is $r->{performance}{dimensions}{empathy}, 70, 'dimensions stored';
    is_deeply $r->{performance}{metrics},
        { turns => 1, duration_s => 30, avg_response_s => 12 }, 'metrics';
    is $r->{rewards}{xp_awarded}, 60, 'xp: 50 * 0.8 * 1.5 (first)';
    is $r->{rewards}{xp_total}, 60, 'xp_total';
    is $r->{rewards}{level}, 2, '60 XP is level 2';
    ok $r->{rewards}{level_up}, 'level_up';
    is_deeply codes($r), [qw(first_steps solid_score fast_resolve)],
        'first resolve, 80 >= 75, within 5 minutes with >= 70';
    is_deeply [sort keys %{ $r->{rewards}{achievements_unlocked}[0] }],
        [qw(code title)], 'achievements as {code, title}';

    my ($again) = resolve($s, $u, assessment(10));
    is $again, $raw, 'a second call returns exactly the same JSON';
    is pg_exec("SELECT count(*) FROM xp_ledger WHERE session_id = :'v1'", $s),
       1, 'one ledger row';
    is pg_exec("SELECT xp || '|' || level FROM users WHERE id = :'v1'", $u),
       '60|2', 'users.xp and level updated once';
    is pg_exec("SELECT status || '|' || (resolved_at IS NOT NULL) || '|' "
               . "|| graded_by FROM sessions JOIN assessments "
               . "ON session_id = id WHERE id = :'v1'", $s),
       'resolved|true|rules', 'session resolved, graded_by kept';

    my $s2 = make_session($u, 'refund-angry-customer');
    my (undef, $r2) = resolve($s2, $u, assessment(80));
    is $r2->{rewards}{xp_awarded}, 31, 'same scenario, same day: 40 * 0.774';
    is $r2->{rewards}{xp_total}, 91, 'xp_total adds up';
    is $r2->{rewards}{level}, 3, '91 XP is level 3';
    is_deeply codes($r2), [], 'nothing unlocked twice';

    my $empty = make_session($u, 'nervous-patient', no_user => 1);
    my (undef, $c) = resolve($empty, $u, assessment(80));
    is_deeply $c, { error => 'conflict' }, 'no user message: conflict';
    is pg_exec("SELECT status FROM sessions WHERE id = :'v1'", $empty),
       'active', '... and the session stays active';

    my $bad = make_session($u, 'nervous-patient');
    ok !eval { resolve($bad, $u, assessment(101)); 1 },
       'scores out of range are refused';
    like $@, qr/integers from 0 to 100/, '... with a clear error';
    is pg_exec("SELECT status FROM sessions WHERE id = :'v1'", $bad),
       'active', '... and nothing is stored';

    my $p = json_decode(pg_exec("SELECT game_progress(:'v1')", $u));
    is_deeply [sort keys %$p],
        [qw(achievements level level_xp next_level_xp streak_days xp)],
        'progress keys';
    is "$p->{xp}|$p->{level}|$p->{level_xp}|$p->{next_level_xp}",
       '91|3|16|75', 'progress: 91 XP = level 3, 16 of 75';
    is $p->{streak_days}, 1, 'progress: a streak of 1 day';
    is_deeply [map { $_->{code} } @{ $p->{achievements} }],
        [qw(first_steps solid_score fast_resolve)], 'progress: achievements';
    like $p->{achievements}[0]{unlocked_at},
        qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'unlocked_at is RFC 3339 UTC';
    is pg_exec("SELECT game_progress(-1) IS NULL"), 't',
       'progress of no such user: NULL';
};

# ---------------------------------------------------------------------------
subtest '20 concurrent resolves of one session' => sub {
    my $u = make_user('Racer');
    my $s = make_session($u, 'upset-tenant-heating');
    my $dir = tempdir(CLEANUP => 1);
    my $n = 20;

    # hold the session's row so that all 20 calls queue on it together
    my $locker;
    {
        local $ENV{PGAPPNAME} = "$tag-locker";
        open $locker, '|-', 'psql -X -q -At -v ON_ERROR_STOP=1 >/dev/null'
            or die "psql: $!";
    }
    select((select($locker), $| = 1)[0]);
    print $locker "BEGIN;\nSELECT id FROM sessions WHERE id = $s FOR UPDATE;\n";
    wait_for("SELECT count(*) FROM pg_stat_activity "
             . "WHERE application_name = :'v1' "
             . "AND state = 'idle in transaction'", "$tag-locker", 1)
        or diag 'the locker did not take the lock';

    my @pids;
    for my $i (1 .. $n) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            $ENV{PGAPPNAME} = "$tag-resolver";
            my $out = eval {
                pg_exec("SELECT game_resolve(:'v1', :'v2', :'v3')",
                        $s, $u, assessment(80 + $i % 5, efficiency => 100))
            } // "ERROR: $@";
            open my $fh, '>', "$dir/$i" or POSIX::_exit(1);
            print $fh $out;
            close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }

    ok wait_for("SELECT count(*) FROM pg_stat_activity "
                . "WHERE application_name = :'v1' "
                . "AND wait_event_type = 'Lock'", "$tag-resolver", $n),
       "all $n calls wait on the session's lock at once";

    print $locker "COMMIT;\n";
    close $locker;
    waitpid $_, 0 for @pids;

    my @out = map { local $/; open my $fh, '<', "$dir/$_" or die $!; <$fh> }
        1 .. $n;
    my %distinct = map { $_ => 1 } @out;
    is scalar(keys %distinct), 1, 'all 20 returned the same JSON';
    my $r = json_decode($out[0]);
    ok $r->{rewards}{xp_awarded} > 0, "XP awarded: $r->{rewards}{xp_awarded}";
    is pg_exec("SELECT count(*) FROM xp_ledger WHERE session_id = :'v1'", $s),
       1, 'exactly one ledger row';
    is pg_exec("SELECT xp FROM users WHERE id = :'v1'", $u),
       $r->{rewards}{xp_awarded}, 'the user got the XP once';
    is pg_exec("SELECT count(*) FROM user_achievements WHERE user_id = :'v1'",
               $u), scalar @{ $r->{rewards}{achievements_unlocked} },
       'each achievement stored once';
    is_deeply codes($r), [qw(first_steps solid_score flawless fast_resolve)],
        'unlocked: first, >= 75, a perfect dimension, fast';
};

sub wait_for {
    my ($sql, $param, $want) = @_;
    for (1 .. 150) {
        return 1 if pg_exec($sql, $param) >= $want;
        sleep 0.1;
    }
    return 0;
}

# ---------------------------------------------------------------------------
subtest 'achievements unlock once, at the right moment' => sub {
    my $u = make_user('Collector');
    my @slugs = sort keys %scenario;
    my @easy = pg_exec("SELECT slug FROM scenarios WHERE difficulty = 'easy' "
                       . "ORDER BY id");
    ok @easy >= 2, 'the seed has several easy scenarios';

    # sessions_count 5 on the 5th; complete_easy on the last easy one;
    # old sessions so that fast_resolve stays out of the way
    my @order = (@easy, grep { my $s = $_; !grep { $_ eq $s } @easy } @slugs);
    for my $i (1 .. 5) {
        my $slug = $order[$i - 1];
        my $s = make_session($u, $slug, age_s => 3600);
        my (undef, $r) = resolve($s, $u, assessment(60));
        my %got = map { $_ => 1 } @{ codes($r) };
        is !!$got{sessions_5}, $i == 5,
           'sessions_5 ' . ($i == 5 ? 'at' : 'not at') . " resolve $i";
        is !!$got{complete_easy}, $i == @easy,
           "complete_easy " . ($i == @easy ? 'when' : 'not before')
           . " every easy scenario is resolved ($slug)";
        ok !$got{fast_resolve}, "an hour-old session is not fast ($i)";
        is !!$got{first_steps}, $i == 1, "first_steps only at the first ($i)";
    }

    my $gold = make_session($u, 'nervous-patient', age_s => 3600);
    my (undef, $r) = resolve($gold, $u, assessment(92, clarity => 100));
    is_deeply codes($r), [qw(solid_score gold_standard flawless)],
        '92 overall with a perfect clarity';
    my $again = make_session($u, 'nervous-patient', age_s => 3600);
    (undef, $r) = resolve($again, $u, assessment(95, empathy => 100));
    is_deeply codes($r), [], 'the same feats again unlock nothing';

    my $v = make_user('Sprinter');
    my $slow = make_session($v, 'difficult-feedback', age_s => 301);
    (undef, $r) = resolve($slow, $v, assessment(95));
    ok !grep({ $_ eq 'fast_resolve' } @{ codes($r) }), 'after 301 s: not fast';
    my $weak = make_session($v, 'difficult-feedback', age_s => 10);
    (undef, $r) = resolve($weak, $v, assessment(69));
    ok !grep({ $_ eq 'fast_resolve' } @{ codes($r) }), 'overall 69: not fast';
    my $fast = make_session($v, 'difficult-feedback', age_s => 290);
    (undef, $r) = resolve($fast, $v, assessment(70));
    is_deeply codes($r), ['fast_resolve'], '290 s and overall 70: fast';
};

# ---------------------------------------------------------------------------
subtest 'streaks across days' => sub {
    my $set = sub {
        my ($user, $days, $ago) = @_;
        pg_exec(<<"SQL", $user, $days, $ago);
INSERT INTO user_streaks (user_id, current_days, best_days, last_day)
VALUES (:'v1', :'v2', :'v2', @{[today_sql()]} - :'v3'::int);
SQL
    };
    my $streak = sub {
        pg_exec("SELECT current_days || '|' || best_days || '|' "
                . "|| (last_day = @{[today_sql()]}) FROM user_streaks "
                . "WHERE user_id = :'v1'", $_[0]);
    };
    my $days = sub {
        json_decode(pg_exec("SELECT game_progress(:'v1')", $_[0]))
            ->{streak_days};
    };

    my $u1 = make_user('Daily');
    $set->($u1, 2, 1);
    is $days->($u1), 2, 'practised yesterday: the streak is still alive';
    my (undef, $r) = resolve(make_session($u1, 'nervous-patient'), $u1,
                             assessment(50));
    is $streak->($u1), '3|3|true', 'yesterday + today: 3 days';
    ok grep({ $_ eq 'streak_3' } @{ codes($r) }), 'streak_3 unlocked';
    is $days->($u1), 3, 'progress shows 3';
    (undef, $r) = resolve(make_session($u1, 'upset-tenant-heating'), $u1,
                          assessment(50));
    is $streak->($u1), '3|3|true', 'a second resolve today changes nothing';
    ok !grep({ $_ eq 'streak_3' } @{ codes($r) }), 'streak_3 not again';

    my $u2 = make_user('Lapsed');
    $set->($u2, 5, 3);
    is $days->($u2), 0, 'last practised 3 days ago: progress shows 0';
    resolve(make_session($u2, 'nervous-patient'), $u2, assessment(50));
    is $streak->($u2), '1|5|true', 'after a gap: back to 1, best kept';

    my $u3 = make_user('Missed one day');
    $set->($u3, 4, 2);
    is $days->($u3), 0, 'a whole day missed: broken';

    my $u4 = make_user('Weekly');
    $set->($u4, 6, 1);
    (undef, $r) = resolve(make_session($u4, 'nervous-patient'), $u4,
                          assessment(50));
    is_deeply [grep { /^streak/ } @{ codes($r) }], [qw(streak_3 streak_7)],
        'day 7: both streak achievements at once';
};

# ---------------------------------------------------------------------------
subtest 'leaderboard' => sub {
    # above everyone else in the database, also after earlier runs
    my $base = pg_exec("SELECT coalesce(max(xp), 0) + 1000 FROM users");
    my $x = make_user("$tag-X", $base + 500);
    my $y = make_user("$tag-Y", $base + 500);
    my $z = make_user("$tag-Z", $base + 400);

    my $all = json_decode(pg_exec("SELECT game_leaderboard('all', 100)"));
    my %at = map { $_->{user}{id} => $_ } @$all;
    my ($ex, $ey, $ez) = @at{$x, $y, $z};
    ok $ex && $ey && $ez, 'all three are listed';
    is_deeply [sort keys %$ex], [qw(level rank user xp)], 'entry keys';
    is_deeply [sort keys %{ $ex->{user} }], [qw(display_name id)],
        'user keys';
    is $ex->{rank}, 1, 'the highest XP ranks first';
    is $ey->{rank}, 1, 'equal XP, equal rank';
    is $ez->{rank}, 3, 'the next rank skips the tie';
    is $all->[0]{user}{id}, $x, 'within a tie, the older account first';
    is $ex->{xp}, $base + 500, 'all-time XP';
    is $ex->{level}, pg_exec("SELECT level FROM game_level(:'v1')",
                             $base + 500), 'level from the curve';

    # this week: X earned 30 (and 1000 eight days ago), Y 50, Z nothing new
    pg_exec(<<'SQL', $x, $y, $z);
INSERT INTO xp_ledger (user_id, amount, reason, created_at) VALUES
    (:'v1', 30, 'test', now()),
    (:'v1', 1000, 'test', now() - interval '8 days'),
    (:'v2', 50, 'test', now()),
    (:'v3', 700, 'test', now() - interval '8 days');
SQL
    my $week = json_decode(pg_exec("SELECT game_leaderboard('week', 100)"));
    my %wk = map { $_->{user}{id} => $_ } @$week;
    is $wk{$x}{xp}, 30, 'week: only XP since Monday counts';
    is $wk{$y}{xp}, 50, 'week: Y';
    ok !$wk{$z}, 'week: no XP this week, not listed';
    ok $wk{$y}{rank} < $wk{$x}{rank}, 'week: Y ranks above X';

    is scalar @{ json_decode(pg_exec("SELECT game_leaderboard('all', 1)")) },
       1, 'limit 1';
    is scalar @{ json_decode(pg_exec("SELECT game_leaderboard('all', 0)")) },
       1, 'a limit below 1 counts as 1';
    ok scalar @{ json_decode(pg_exec("SELECT game_leaderboard('all', 1000)")) }
       <= 100, 'at most 100';
    is pg_exec("SELECT game_leaderboard('month', 10) IS NULL"), 't',
       'unknown period: NULL';

    my @rows = pg_exec("SELECT user_id || '|' || xp || '|' || display_name "
                       . "FROM game_leaderboard_rows('all') "
                       . "WHERE user_id IN (:'v1', :'v2', :'v3')", $x, $y, $z);
    is_deeply \@rows, ["$x|" . ($base + 500) . "|$tag-X",
                       "$y|" . ($base + 500) . "|$tag-Y",
                       "$z|" . ($base + 400) . "|$tag-Z"],
        'rows for the Redis rebuild, best first';
    is pg_exec("SELECT count(*) FROM game_leaderboard_rows('all') "
               . "WHERE xp <= 0"), 0, 'no user without XP';
    is pg_exec("SELECT count(*) FROM game_leaderboard_rows('bogus')"), 0,
       'unknown period: no rows';
};

subtest 'the migration is re-runnable' => sub {
    # applied again and rolled back: later migrations (008) build on what
    # 003 defines, and a committed re-run would undo them for later tests
    ok eval {
        my $file = 'sql/003_game.sql';
        local $ENV{PGOPTIONS} = '-c client_min_messages=warning';
        open my $psql, '|-', 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1'
            or die "psql: $!";
        print $psql "BEGIN;\n\\i $file\nROLLBACK;\n";
        close $psql;
        $? == 0;
    }, 'sql/003_game.sql applies again';
    is pg_exec("SELECT count(*) FROM schema_migrations "
               . "WHERE version = '003_game'"), 1, 'recorded once';
};

# leave the shared test database as it was: the users' sessions, ledger
# rows, achievements and streaks go with them (ON DELETE CASCADE)
is pg_exec("WITH gone AS (DELETE FROM users WHERE email LIKE :'v1' "
           . "RETURNING 1) SELECT count(*) FROM gone", "$tag-%"), $users,
   "the $users test users are removed";

done_testing;
