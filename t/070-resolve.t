# Resolve, progress and the leaderboard over HTTP (API.md), on a real
# nginx, Postgres and Redis, with the stand-in model as the judge.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA ();
use POSIX ();
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;


my %conf = %{ platform_conf() };

my $tag = time() . "-$$";
my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('resolve-' || :'v1' || '@example.com', 'x', 'Resolver ' || :'v1')
    RETURNING id}, $tag);
my $token = make_token($uid);
my $auth = { Authorization => "Bearer $token" };
my $refund = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

my @polite = (
    [assistant => 'My mixer came nine days late and the bowl is cracked. I want my money back!'],
    [user => "I'm so sorry, Dana, that is unacceptable and I understand how frustrating this must be."],
    [assistant => 'It was a birthday present. What are you going to do about it?'],
    [user => "I will issue a full refund of \$289.99 including the express fee today, and I've booked a free pickup for tomorrow."],
    [assistant => 'Thank you, that works for me.'],
);
my @rude = (
    [assistant => 'My mixer came nine days late and the bowl is cracked. I want my money back!'],
    [user => 'Calm down.'],
    [assistant => 'Excuse me?'],
    [user => 'Not my problem, we will look into it at some point.'],
    [assistant => 'This is ridiculous.'],
);

sub session_with {
    my ($user, @msgs) = @_;
    my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id, last_seq, created_at)
        VALUES (:'v1', :'v2', :'v3', now() - interval '5 minutes') RETURNING id},
        $user, $refund, scalar @msgs);
    my $seq = 0;
    for my $m (@msgs) {
        $seq++;
        pg_exec(q{INSERT INTO messages (session_id, seq, role, content, client_msg_id, created_at)
            VALUES (:'v1', :'v2', :'v3', :'v4', NULLIF(:'v5', ''),
                    now() - interval '5 minutes' + :'v2' * interval '20 seconds')},
            $sid, $seq, $m->[0], $m->[1], $m->[0] eq 'user' ? "c$seq" : '');
    }
    return $sid;
}

sub resolve {
    my ($sid, $hdr) = @_;
    return http('POST', "/sessions/$sid/resolve", $hdr // $auth);
}

start_nginx(\%conf);

my ($first, $polite_score);

subtest 'resolve answers the assessment and the rewards' => sub {
    my $sid = session_with($uid, @polite);
    my $res = resolve($sid);
    is $res->{status}, 200, 'answered 200';
    my $a = json_decode($res->{body});
    $first = $res->{body};
    is $a->{session_id}, $sid, 'for this session';
    my $p = $a->{performance};
    ok $p->{overall} >= 0 && $p->{overall} <= 100, 'overall 0-100';
    is_deeply [sort keys %{ $p->{dimensions} }], [qw(clarity efficiency empathy resolution)],
        'the four dimensions';
    ok((grep { /sorry|understand/i } @{ $p->{feedback} }), 'feedback quotes the trainee');
    is $p->{metrics}{turns}, 2, 'two turns';
    ok defined $p->{metrics}{duration_s} && defined $p->{metrics}{avg_response_s}, 'timing metrics';
    my $r = $a->{rewards};
    cmp_ok $r->{xp_awarded}, '>', 0, 'XP awarded';
    is $r->{xp_total}, $r->{xp_awarded}, 'the whole of it so far';
    ok exists $r->{level} && exists $r->{level_up}, 'level and level_up';
    ok((grep { $_->{code} eq 'first_steps' } @{ $r->{achievements_unlocked} }),
       'the first resolution unlocks "first_steps"');
    $polite_score = $p->{overall};

    # issue 8: each criterion with its evidence, the pass mark and passed
    my @said = map { $_->[1] } grep { $_->[0] eq 'user' } @polite;
    my @met = grep { $_->{met} } @{ $p->{criteria} };
    cmp_ok scalar(@met), '>=', 2, 'criteria are listed, some met';
    is scalar(grep { my $c = $_; defined $c->{quote} && $c->{turn}
                     && index($said[$c->{turn} - 1], $c->{quote}) >= 0 } @met),
       scalar(@met), 'every met criterion quotes its turn exactly';
    ok !(grep { !$_->{met} && defined $_->{quote} } @{ $p->{criteria} }),
       'an unmet criterion quotes nothing';
    is $p->{pass_mark}, 70, 'the default pass mark';
    is(($p->{passed} ? 1 : 0), ($p->{overall} >= 70 ? 1 : 0),
       'passed follows overall and the pass mark');

    is resolve($sid)->{body}, $first, 'resolving again answers the same, byte for byte';
    is pg_exec(q{SELECT count(*) FROM xp_ledger WHERE session_id = :'v1'}, $sid), 1,
        'and awards nothing more';
    is pg_exec(q{SELECT status FROM sessions WHERE id = :'v1'}, $sid), 'resolved', 'resolved';
};

subtest 'a polite, effective conversation scores clearly above a rude one' => sub {
    my $other = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
        VALUES ('rude-' || :'v1' || '@example.com', 'x', 'Rude') RETURNING id}, $tag);
    my $sid = session_with($other, @rude);
    my $res = resolve($sid, { Authorization => 'Bearer ' . make_token($other) });
    is $res->{status}, 200, 'answered 200';
    my $rude = json_decode($res->{body})->{performance}{overall};
    cmp_ok $polite_score - $rude, '>=', 25, "polite $polite_score vs rude $rude";
    my $good = pg_exec(q{SELECT good_resolution FROM scenarios
        WHERE slug = 'refund-angry-customer'});
    my @tips = grep { !$_->{met} && defined $_->{suggestion} }
        @{ json_decode($res->{body})->{performance}{criteria} };
    ok @tips && !(grep { index($good, $_->{suggestion}) < 0 } @tips),
       'unmet criteria suggest sentences of the good resolution';
};

subtest '20 concurrent resolves award XP exactly once' => sub {
    my $sid = session_with($uid, @polite);
    my $dir = "/tmp/resolve-$$";
    mkdir $dir;
    my @kids;
    for my $i (1 .. 20) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $res = resolve($sid);
            open my $fh, '>', "$dir/$i" or POSIX::_exit(1);
            print {$fh} "$res->{status}\n$res->{body}";
            close $fh;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    waitpid $_, 0 for @kids;
    my %bodies;
    for my $i (1 .. 20) {
        open my $fh, '<', "$dir/$i" or next;
        local $/;
        $bodies{<$fh>}++;
    }
    system('rm', '-rf', $dir);
    is scalar(keys %bodies), 1, 'every answer is the same';
    my ($one) = keys %bodies;
    like $one, qr/^200\n\{"session_id":$sid,/, 'a 200 assessment';
    is pg_exec(q{SELECT count(*) FROM xp_ledger WHERE session_id = :'v1'}, $sid), 1,
        'one ledger row';
    is pg_exec(q{SELECT count(*) FROM user_achievements WHERE user_id = :'v1'
                 AND code = 'first_steps'}, $uid), 1, 'achievements once';
};

subtest 'errors' => sub {
    my $empty = session_with($uid, $polite[0]);
    my $res = resolve($empty);
    is $res->{status}, 409, 'no message of the trainee: 409';
    like $res->{body}, qr/"code":"conflict"/, 'conflict';

    my $alice = pg_exec("SELECT id FROM users WHERE email = 'alice\@example.com'");
    my $foreign = session_with($alice, @polite);
    $res = resolve($foreign);
    is $res->{status}, 404, "another user's session: 404";
    is pg_exec(q{SELECT status FROM sessions WHERE id = :'v1'}, $foreign), 'active',
        'and it is left alone';

    is http('GET', "/sessions/$foreign/resolve", $auth)->{status}, 405, 'GET: 405';
    is http('POST', "/sessions/$foreign/resolve")->{status}, 401, 'no token: 401';
};

subtest 'progress follows the ledger' => sub {
    my $res = http('GET', '/me/progress', $auth);
    is $res->{status}, 200, 'answered 200';
    my $p = json_decode($res->{body});
    is $p->{xp}, pg_exec(q{SELECT coalesce(sum(amount), 0) FROM xp_ledger WHERE user_id = :'v1'}, $uid),
        'xp is the ledger';
    ok defined $p->{level} && defined $p->{level_xp} && defined $p->{next_level_xp}, 'the level bar';
    is $p->{streak_days}, 1, 'a one-day streak';
    ok((grep { $_->{code} eq 'first_steps' && $_->{unlocked_at} } @{ $p->{achievements} }),
       'with its achievements');

    $res = http('GET', '/auth/me', $auth);
    is json_decode($res->{body})->{xp}, $p->{xp}, '/auth/me shows the new XP at once';
};

subtest 'the leaderboard, from Redis, rebuilt from Postgres' => sub {
    my $res = http('GET', '/leaderboard?period=all', $auth);
    is $res->{status}, 200, 'answered 200';
    my $board = json_decode($res->{body});
    my ($me) = grep { $_->{user}{id} == $uid } @$board;
    ok $me, 'the resolver is on it';
    is $me->{xp}, pg_exec(q{SELECT xp FROM users WHERE id = :'v1'}, $uid), 'with the XP of Postgres';

    my $week = json_decode(http('GET', '/leaderboard?period=week', $auth)->{body});
    ok((grep { $_->{user}{id} == $uid } @$week), 'on the weekly board too');

    redis_cmd('flushall');
    # the login session went with it: put it back, as a durable Redis would
    redis_cmd('SET', 'sess:' . Digest::SHA::sha256_hex($token), $uid, 'EX', 86400);
    my $rebuilt = http('GET', '/leaderboard?period=all', $auth);
    is $rebuilt->{status}, 200, 'after Redis was emptied: 200';
    my $expected = pg_exec(q{SELECT game_leaderboard('all', 20)});
    is_deeply json_decode($rebuilt->{body}), json_decode($expected),
        'the board matches the ledger';
    sleep 0.3;
    is_deeply json_decode(http('GET', '/leaderboard?period=all', $auth)->{body}),
        json_decode($expected), 'and so does the rebuilt sorted set';

    is http('GET', '/leaderboard?period=year', $auth)->{status}, 400, 'a bad period: 400';
};

subtest 'the model grades too, and a lying model falls back to the rules' => sub {
    my $sid = session_with($uid, @polite);
    resolve($sid);
    is pg_exec(q{SELECT graded_by FROM assessments WHERE session_id = :'v1'}, $sid),
        'rules+model', 'blended with the judge';

    for my $lie ('[[json:nonsense]]', '[[json:range]]', '[[fail:500]]') {
        my @msgs = @polite;
        $msgs[-2] = [user => $polite[3][1] . " $lie"];
        my $s = session_with($uid, @msgs);
        my $res = resolve($s);
        is $res->{status}, 200, "$lie: still 200";
        like $res->{body}, qr/could not be used|rules alone/, "$lie: says the rules stand alone";
        is pg_exec(q{SELECT graded_by FROM assessments WHERE session_id = :'v1'}, $s),
            'rules', "$lie: graded by the rules";
    }
};

subtest 'resolve closes the session\'s chat with "resolved"' => sub {
    my $sid = session_with($uid, @polite[0 .. 1]);
    my $ws = ws_connect("/sessions/$sid/chat", $auth, { timeout => 5 });
    my $f = $ws->recv_frame(3);
    like $f->{payload}, qr/"type":"ready"/, 'chatting';
    is resolve($sid)->{status}, 200, 'resolved';
    my ($resolved, $close);
    while (my $fr = $ws->recv_frame(3)) {
        $resolved = 1 if $fr->{opcode} == 1 && $fr->{payload} =~ /"type":"resolved"/;
        if ($fr->{opcode} == 8) { $close = $fr->{close_code}; last }
    }
    ok $resolved, 'the chat heard "resolved"';
    is $close, 1000, 'and was closed with 1000';
};

stop_nginx();
done_testing();
