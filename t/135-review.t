# Review (issue 9, item 4): a trainer's view of the team (per trainee,
# attempts and scores; the weakest criteria), each session's transcript
# with its assessment, comments, a score override kept in an audit trail
# with XP following it exactly once, the CSV export, and isolation (a
# trainee gets 403, another organization 404).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;
use Test::Scenario::Orgs;

my %conf = %{ platform_conf(http_config => "scenario_judge off;\n") };

my $org = new_org();
my ($tid, $trainer) = new_user('trainer', $org);
my ($mid, $admin) = new_user('admin', $org);
my ($aid, $ann) = new_user('trainee', $org);
my ($bid, $bob) = new_user('trainee', $org);
my ($cid, $cleo) = new_user('trainee', $org);
my $other = new_org();
my ($oid, $stranger) = new_user('trainer', $other);
my ($xid, $outsider) = new_user('trainee', $other);
$_ += 0 for $aid, $bid, $cid, $xid;

# a spreadsheet would run Ann's name as a formula; it has a comma and
# quotes too
my $ann_name = '=SUM(1,2) "Ann"';
pg_exec(q{UPDATE users SET display_name = :'v2' WHERE id = :'v1'}, $aid, $ann_name);
pg_exec(q{UPDATE users SET display_name = 'Bob' WHERE id = :'v1'}, $bid);
pg_exec(q{UPDATE users SET display_name = '@Cleo' WHERE id = :'v1'}, $cid);

my $refund = 0 + pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

# a resolved session of Ann's, made in Postgres with the scores given
sub seeded {
    my ($days_ago, $overall, $dims, $apology, $refunded, %o) = @_;
    my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id, status,
                                              created_at, resolved_at, trial)
                        VALUES (:'v1', :'v2', :'v3',
                                now() - make_interval(days => :'v4'),
                                CASE WHEN :'v3' = 'resolved'
                                     THEN now() - make_interval(days => :'v4')
                                END, :'v5')
                        RETURNING id},
                      $aid, $refund, defined $overall ? 'resolved' : 'active',
                      $days_ago, $o{trial} ? 'true' : 'false');
    return $sid unless defined $overall;
    my $criteria = json_encode([
        { key => 'x_apology', description => 'Apologises', met => $apology ? \1 : \0 },
        { key => 'x_refund', description => 'Offers the refund', met => $refunded ? \1 : \0 },
    ]);
    pg_exec(q{INSERT INTO assessments (session_id, overall, empathy, clarity,
                                       resolution, efficiency, feedback,
                                       metrics, criteria)
              VALUES (:'v1', :'v2', :'v3', :'v4', :'v5', :'v6', '[]', '{}',
                      :'v7'::jsonb)},
            $sid, $overall, @$dims, $criteria);
    return $sid;
}

# Ann: three resolved sessions over three weeks, one still open, and a
# trial that counts nowhere
my @ann = (seeded(21, 40, [30, 50, 40, 60], 0, 1),
           seeded(14, 60, [50, 70, 60, 60], 0, 0),
           seeded(7, 80, [70, 90, 80, 80], 0, 1),
           seeded(1, undef));
my $trial = seeded(0, 100, [100, 100, 100, 100], 1, 1, trial => 1);

# how many users' figures kept by sql/029's triggers differ from a count
# over every session and assessment (0: none)
sub stats_drift {
    return 0 + pg_exec(q{
        WITH fresh AS (
            SELECT se.user_id, count(*)::int AS attempts,
                   count(a.session_id)::int AS resolved,
                   coalesce(sum(a.overall), 0)::bigint AS o,
                   coalesce(sum(a.empathy), 0)::bigint AS e,
                   coalesce(sum(a.clarity), 0)::bigint AS c,
                   coalesce(sum(a.resolution), 0)::bigint AS r,
                   coalesce(sum(a.efficiency), 0)::bigint AS f,
                   max(a.overall) AS best, max(se.created_at) AS last_at
            FROM sessions se LEFT JOIN assessments a ON a.session_id = se.id
            WHERE NOT se.trial GROUP BY se.user_id),
        kept AS (
            SELECT user_id, attempts, resolved, overall_sum, empathy_sum,
                   clarity_sum, resolution_sum, efficiency_sum, best_overall,
                   last_at
            FROM review_trainee_stats
            WHERE attempts <> 0 OR resolved <> 0 OR overall_sum <> 0
               OR best_overall IS NOT NULL OR last_at IS NOT NULL)
        SELECT count(*) FROM ((SELECT * FROM fresh EXCEPT SELECT * FROM kept)
                              UNION ALL
                              (SELECT * FROM kept EXCEPT SELECT * FROM fresh)) d});
}

my $good = "I'm so sorry, I understand how frustrating the missed birthday is. "
         . "I will refund the full \$289.99 plus the express fee today, a courier "
         . "will pick it up free of charge tomorrow, and you will get a "
         . "confirmation email within 24 hours.";

start_nginx(\%conf);

# Bob plays one for real and resolves it through the API: real XP
my (undef, $s) = api('POST', '/sessions', $bob, { scenario_id => $refund });
my $bs = $s->{id};
pg_exec(q{INSERT INTO messages (session_id, seq, role, content, client_msg_id)
          VALUES (:'v1', 1, 'assistant', 'My mixer came late and broken.', NULL),
                 (:'v1', 2, 'user', :'v2', 'c2'),
                 (:'v1', 3, 'assistant', 'Thank you, that works for me.', NULL)},
        $bs, $good);
pg_exec(q{UPDATE sessions SET last_seq = 3 WHERE id = :'v1'}, $bs);
my ($st, $resolved) = api('POST', "/sessions/$bs/resolve", $bob);
is $st, 200, 'Bob resolves a session' or diag explain $resolved;
my $bob_score = $resolved->{performance}{overall};
my $bob_xp = $resolved->{rewards}{xp_awarded};

subtest 'the team' => sub {
    my ($st, $team) = api('GET', '/review/team', $trainer);
    is $st, 200, 'a trainer sees the team' or diag explain $team;
    my %t = map { $_->{id} => $_ } @{ $team->{trainees} };
    is_deeply [sort { $a <=> $b } keys %t], [sort { $a <=> $b } $aid, $bid, $cid],
        'its trainees, not the trainer, the admin nor another organization\'s';
    is_deeply [@{ $t{$aid} }{qw(attempts resolved average_overall best_overall)}],
        [4, 3, 60, 80], 'Ann: 4 attempts (not the trial), 3 resolved, average 60, best 80';
    is_deeply $t{$aid}{dimensions},
        { empathy => 50, clarity => 70, resolution => 60, efficiency => 67 },
        'her average per dimension';
    is_deeply [@{ $t{$bid} }{qw(attempts resolved average_overall)}],
        [1, 1, $bob_score], 'Bob: his one resolved session';
    is_deeply [@{ $t{$cid} }{qw(attempts resolved average_overall)}],
        [0, 0, undef], 'Cleo: none yet';

    my $weak = $team->{weakest_criteria};
    is_deeply [@{ $weak->[0] }{qw(key description assessed met met_rate)}],
        ['x_apology', 'Apologises', 3, 0, 0],
        'the weakest criterion across the team: never met in three sessions'
        or diag explain $weak;
    my ($refunded) = grep { $_->{key} eq 'x_refund' } @$weak;
    is_deeply [@{$refunded}{qw(assessed met met_rate)}], [3, 2, 0.67],
        'another, met two times in three';
    is $weak->[0]{scenario}{id}, $refund, 'with its scenario';

    # the counts kept by sql/028's trigger are the assessments' sum
    is pg_exec(q{WITH fresh AS (
                     SELECT se.user_id, se.scenario_id, c ->> 'key' AS key,
                            count(*)::int AS assessed,
                            (count(*) FILTER (WHERE (c ->> 'met')::boolean))::int AS met
                     FROM assessments a
                     JOIN sessions se ON se.id = a.session_id AND NOT se.trial
                     CROSS JOIN LATERAL jsonb_array_elements(
                         coalesce(a.criteria, '[]')) c
                     GROUP BY 1, 2, 3),
                 kept AS (SELECT user_id, scenario_id, key, assessed, met
                          FROM review_criterion_counts)
                 SELECT count(*) FROM ((SELECT * FROM fresh EXCEPT SELECT * FROM kept)
                                       UNION ALL
                                       (SELECT * FROM kept EXCEPT SELECT * FROM fresh)) d}),
        0, 'the criteria\'s counts match the assessments (inserted, and resolve\'s update)';
    pg_exec(q{UPDATE assessments SET criteria = '[{"key":"x_apology","met":true}]'
              WHERE session_id = :'v1'}, $ann[0]);
    (undef, my $after) = api('GET', '/review/team', $trainer);
    my ($apo) = grep { $_->{key} eq 'x_apology' } @{ $after->{weakest_criteria} };
    is_deeply [@{$apo}{qw(assessed met)}], [3, 1], 'an assessment rewritten: counted anew';
    pg_exec(q{UPDATE assessments SET criteria = :'v2'::jsonb WHERE session_id = :'v1'},
            $ann[0], json_encode([
                { key => 'x_apology', description => 'Apologises', met => \0 },
                { key => 'x_refund', description => 'Offers the refund', met => \1 }]));

    ($st, my $same) = api('GET', '/review/team', $admin);
    is_deeply [$st, $same], [200, $team], 'an admin sees the same';

    is stats_drift(), 0, 'each trainee\'s kept figures are a full count\'s '
        . '(sessions inserted, a trial, a resolve through the API)';
};

subtest 'a trainee over time' => sub {
    my ($st, $doc) = api('GET', "/review/trainees/$aid", $trainer);
    is $st, 200, 'a trainee\'s sessions' or diag explain $doc;
    is_deeply [map { $_->{id} } @{ $doc->{sessions} }], [@ann],
        'oldest first, without the trial';
    is_deeply [map { $_->{overall} } @{ $doc->{sessions} }], [40, 60, 80, undef],
        'the overall score of each';
    is_deeply [map { $_->{dimensions} && $_->{dimensions}{clarity} }
               @{ $doc->{sessions} }], [50, 70, 90, undef], 'and per dimension';
    is_deeply $doc->{sessions}[1]{criteria},
        [{ key => 'x_apology', met => JSON::PP::false() },
         { key => 'x_refund', met => JSON::PP::false() }],
        'and per criterion';
    is_deeply [$doc->{attempts}, $doc->{trainee}{display_name}], [4, $ann_name],
        'with her attempts and name';
    is_deeply [map { [$_->{key}, $_->{met}, $_->{assessed}] } @{ $doc->{criteria} }],
        [['x_apology', 0, 3], ['x_refund', 2, 3]], 'each criterion over all';
};

subtest 'a session: transcript and assessment' => sub {
    my ($st, $doc) = api('GET', "/review/sessions/$bs", $trainer);
    is $st, 200, 'a session to review' or diag explain $doc;
    is_deeply [map { [$_->{seq}, $_->{role}] } @{ $doc->{transcript} }],
        [[1, 'assistant'], [2, 'user'], [3, 'assistant']], 'its transcript';
    is $doc->{transcript}[1]{content}, $good, 'word for word';
    is_deeply $doc->{assessment}{dimensions}, $resolved->{performance}{dimensions},
        'its assessment, as resolve answered it';
    is $doc->{assessment}{overall}, $bob_score, 'and its overall score';
    is_deeply [$doc->{trainee}{id}, $doc->{comments}, $doc->{overrides}],
        [$bid, [], []], 'whose, and no notes yet';
};

subtest 'comments' => sub {
    my ($st, $c) = api('POST', "/review/sessions/$bs/comments", $trainer,
                       { body => "  Good apology; name the refund's date.  " });
    is $st, 201, 'a trainer comments on a resolved session' or diag explain $c;
    is_deeply [$c->{body}, $c->{author}{id}, $c->{session_id}],
        ["Good apology; name the refund's date.", $tid, $bs], 'trimmed, signed';

    ($st, my $err) = api('POST', "/review/sessions/$ann[3]/comments", $trainer,
                         { body => 'Too early' });
    is_deeply [$st, $err->{error}{code}], [409, 'conflict'],
        'not on a session still open';
    for my $bad ({}, { body => '' }, { body => 7 }, { body => 'x' x 4001 }) {
        ($st, $err) = api('POST', "/review/sessions/$bs/comments", $trainer, $bad);
        is_deeply [$st, $err->{error}{field}], [400, 'body'], 'a bad body: 400 naming it';
    }
    ($st, $err) = api('POST', "/review/sessions/$bs/comments", $trainer,
                      { body => 'x', colour => 1 });
    is_deeply [$st, $err->{error}{field}], [400, 'colour'], 'an unknown field too';

    my (undef, $doc) = api('GET', "/review/sessions/$bs", $trainer);
    is_deeply [map { $_->{body} } @{ $doc->{comments} }],
        ["Good apology; name the refund's date."], 'listed with the session';
};

# the XP the session earns at a score, as game_resolve computes it (Bob's
# first resolve of the scenario, none before it that day)
sub xp_at {
    my ($score) = @_;
    return 0 + pg_exec(q{SELECT game_xp(difficulty, xp_reward, :'v1', true, 0)
                         FROM scenarios WHERE id = :'v2'}, $score, $refund);
}

sub bob_xp { return 0 + pg_exec(q{SELECT xp FROM users WHERE id = :'v1'}, $bid) }

sub ledger {
    return 0 + pg_exec(q{SELECT sum(amount) FROM xp_ledger WHERE session_id = :'v1'}, $bs);
}

subtest 'an override, its audit trail, and XP once' => sub {
    is $bob_xp, xp_at($bob_score), 'resolve awarded game_xp of the score';
    my $before = bob_xp();
    my $new = $bob_score > 50 ? 30 : 90;

    my ($st, $o) = api('POST', "/review/sessions/$bs/override", $trainer,
                       { score => $new, reason => 'The refund amount was wrong' });
    is $st, 200, 'a trainer overrides the score' or diag explain $o;
    my $delta = xp_at($new) - $bob_xp;
    is_deeply [@{$o}{qw(changed old_score new_score xp_delta xp_total)}],
        [JSON::PP::true(), $bob_score, $new, $delta, $before + $delta],
        'the old and new score, and XP moved by the difference';
    ok !exists $o->{board}, 'the leaderboards\' figures stay inside';
    is_deeply [@{ $o->{override} }{qw(old_score new_score reason xp_delta)},
               $o->{override}{author}{id}],
        [$bob_score, $new, 'The refund amount was wrong', $delta, $tid],
        'the audit entry: who, the scores, the reason';
    like $o->{override}{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'and when';
    is bob_xp(), $before + $delta, 'Bob\'s XP follows';
    is ledger(), xp_at($new), 'the session\'s ledger sums to the XP of the new score';
    is 0 + pg_exec(q{SELECT level FROM users WHERE id = :'v1'}, $bid),
        0 + pg_exec(q{SELECT level FROM game_level(:'v1')}, bob_xp()),
        'the level matches the XP';
    is redis_cmd('ZSCORE', 'leaderboard:all', $bid), bob_xp(),
        'the cached leaderboard has the new total';

    ($st, my $again) = api('POST', "/review/sessions/$bs/override", $trainer,
                           { score => $new, reason => 'The refund amount was wrong' });
    is_deeply [$st, @{$again}{qw(changed xp_delta xp_total)}, $again->{override}],
        [200, JSON::PP::false(), 0, $before + $delta, undef],
        'the same override again changes nothing';
    is bob_xp(), $before + $delta, 'not the XP';
    is 0 + pg_exec(q{SELECT count(*) FROM review_overrides WHERE session_id = :'v1'}, $bs),
        1, 'nor the audit trail';

    ($st, my $o2) = api('POST', "/review/sessions/$bs/override", $admin,
                        { score => 75, reason => 'Second look' });
    my $delta2 = xp_at(75) - xp_at($new);
    is_deeply [$st, @{$o2}{qw(old_score new_score xp_delta xp_total)}],
        [200, $new, 75, $delta2, $before + $delta + $delta2],
        'a new override moves XP by the new difference';
    is ledger(), xp_at(75), 'the ledger stays consistent';
    is redis_cmd('ZSCORE', 'leaderboard:all', $bid), bob_xp(), 'and the board';

    my (undef, $doc) = api('GET', "/review/sessions/$bs", $trainer);
    is_deeply [map { [$_->{old_score}, $_->{new_score}, $_->{author}{id}, $_->{reason}] }
               @{ $doc->{overrides} }],
        [[$bob_score, $new, $tid, 'The refund amount was wrong'],
         [$new, 75, $mid, 'Second look']], 'the audit trail, oldest first';
    is $doc->{assessment}{overall}, 75, 'the assessment has the new score';
    is $doc->{session}{overridden}, JSON::PP::true(), 'marked overridden';

    my $err;
    for my $bad ([{ reason => 'x' }, 'score'], [{ score => 101, reason => 'x' }, 'score'],
                 [{ score => '50', reason => 'x' }, 'score'], [{ score => 50 }, 'reason'],
                 [{ score => 50, reason => '  ' }, 'reason'],
                 [{ score => 50, reason => 'x', by => 1 }, 'by']) {
        ($st, $err) = api('POST', "/review/sessions/$bs/override", $trainer, $bad->[0]);
        is_deeply [$st, $err->{error}{field}], [400, $bad->[1]],
            "a bad override: 400 naming $bad->[1]";
    }
    ($st, $err) = api('POST', "/review/sessions/$ann[3]/override", $trainer,
                      { score => 50, reason => 'x' });
    is_deeply [$st, $err->{error}{code}], [409, 'conflict'], 'not of an open session';
    is bob_xp(), $before + $delta + $delta2, 'none of them moved XP';
};

subtest 'the trainee sees the notes on their own session' => sub {
    my ($st, $doc) = api('GET', "/sessions/$bs/review", $bob);
    is $st, 200, 'Bob reads his session\'s review' or diag explain $doc;
    is_deeply [$doc->{overall}, scalar @{ $doc->{comments} },
               [map { $_->{new_score} } @{ $doc->{overrides} }]],
        [75, 1, [$bob_score > 50 ? 30 : 90, 75]],
        'the comment and both overrides, with the score now';
    ok !exists $doc->{comments}[0]{author}{email}, 'the trainer\'s name, not email';
    ($st) = api('GET', "/sessions/$bs/review", $ann);
    is $st, 404, 'another trainee: not found';
    ($st) = api('GET', "/sessions/$bs/review", $stranger);
    is $st, 404, 'nor a trainer of another organization';
};

subtest 'CSV export' => sub {
    my ($st, undef, $res) = api('GET', '/review/export', $trainer);
    is $st, 200, 'the team\'s results';
    like $res->{headers}{'content-type'}, qr{^text/csv}, 'as text/csv';
    like $res->{headers}{'content-disposition'}, qr/^attachment; filename=/,
        'to save';
    my @lines = split /\r\n/, $res->{body};
    is $lines[0], 'session_id,trainee_id,trainee,email,scenario,version,status,'
                . 'started_at,resolved_at,overall,empathy,clarity,resolution,'
                . 'efficiency,passed,overridden,criteria_met,criteria_total',
        'a header row';
    is scalar @lines, 6, 'one line per session: Ann\'s four and Bob\'s (no trial)';
    my ($a1) = grep { /^$ann[0],/ } @lines;
    like $a1, qr/^$ann[0],$aid,"'=SUM\(1,2\) ""Ann""",/,
        'a formula is defused, a comma and quotes are quoted';
    like $a1, qr/,40,30,50,40,60,no,no,1,2$/, 'her scores, not passed, 1 of 2 criteria';
    my ($b1) = grep { /^$bs,/ } @lines;
    like $b1, qr/,75,\d+,\d+,\d+,\d+,yes,yes,\d+,\d+$/, 'Bob\'s, overridden to 75';
    my ($open) = grep { /^$ann[3],/ } @lines;
    like $open, qr/,active,[^,]+,,,,,,,,no,0,0$/, 'an open session has empty scores';

    pg_exec(q{INSERT INTO sessions (user_id, scenario_id) VALUES (:'v1', :'v2')},
            $cid, $refund);
    (undef, undef, $res) = api('GET', '/review/export', $trainer);
    like $res->{body}, qr/,$cid,'\@Cleo,/, 'a leading @ is defused too';

    ($st, undef, $res) = api('GET', '/review/export', $stranger);
    is_deeply [$st, scalar(() = $res->{body} =~ /\r\n/g)], [200, 1],
        'another organization\'s export: the header alone';
};

subtest 'the kept figures follow overrides, trials and inserts' => sub {
    is stats_drift(), 0, 'after the overrides of Bob\'s session';
    my (undef, $team) = api('GET', '/review/team', $trainer);
    my ($bob_t) = grep { $_->{id} == $bid } @{ $team->{trainees} };
    is_deeply [@{$bob_t}{qw(resolved average_overall best_overall)}], [1, 75, 75],
        'Bob\'s average and best are the overridden score';

    # Ann's best (80) overridden down to 20: her best is counted anew
    my ($st, $o) = api('POST', "/review/sessions/$ann[2]/override", $trainer,
                       { score => 20, reason => 'Read it again' });
    is_deeply [$st, $o->{new_score}], [200, 20], 'Ann\'s best session overridden';
    (undef, $team) = api('GET', '/review/team', $trainer);
    my ($ann_t) = grep { $_->{id} == $aid } @{ $team->{trainees} };
    is_deeply [@{$ann_t}{qw(attempts resolved average_overall best_overall)}],
        [4, 3, 40, 60], 'her average (40 + 60 + 20) / 3 and best 60 now';
    is stats_drift(), 0, 'still a full count\'s';

    # her trial overridden: it counts nowhere still
    ($st, $o) = api('POST', "/review/sessions/$trial/override", $trainer,
                    { score => 5, reason => 'A trial' });
    is_deeply [$st, $o->{new_score}], [200, 5], 'the trial overridden';
    (undef, my $again) = api('GET', '/review/team', $trainer);
    is_deeply $again, $team, 'the team view is as it was';

    # two sessions in one statement, and a score written by hand
    pg_exec(q{INSERT INTO sessions (user_id, scenario_id, trial)
              VALUES (:'v1', :'v2', false), (:'v1', :'v2', true)}, $aid, $refund);
    pg_exec(q{UPDATE assessments SET empathy = 0 WHERE session_id = :'v1'}, $ann[0]);
    (undef, $team) = api('GET', '/review/team', $trainer);
    ($ann_t) = grep { $_->{id} == $aid } @{ $team->{trainees} };
    is_deeply [$ann_t->{attempts}, $ann_t->{dimensions}{empathy}], [5, 40],
        'a bulk insert adds its attempts, not the trial\'s; a score rewritten';
    is stats_drift(), 0, 'a full count\'s at the end';
};

subtest 'isolation' => sub {
    for my $call (['GET', '/review/team'], ['GET', "/review/trainees/$bid"],
                  ['GET', "/review/sessions/$bs"], ['GET', '/review/export'],
                  ['POST', "/review/sessions/$bs/comments", { body => 'mine' }],
                  ['POST', "/review/sessions/$bs/override",
                   { score => 100, reason => 'me' }]) {
        my ($st, $err) = api($call->[0], $call->[1], $bob, $call->[2]);
        is_deeply [$st, $err->{error}{code}], [403, 'forbidden'],
            "a trainee: 403 on $call->[0] $call->[1]";
    }
    for my $call (['GET', "/review/trainees/$bid"], ['GET', "/review/sessions/$bs"],
                  ['POST', "/review/sessions/$bs/comments", { body => 'x' }],
                  ['POST', "/review/sessions/$bs/override",
                   { score => 100, reason => 'x' }]) {
        my ($st, $err) = api($call->[0], $call->[1], $stranger, $call->[2]);
        is_deeply [$st, $err->{error}{code}], [404, 'not_found'],
            "another organization's trainer: 404 on $call->[0] $call->[1]";
    }
    my ($st, $team) = api('GET', '/review/team', $stranger);
    is_deeply [map { $_->{id} } @{ $team->{trainees} }], [$xid],
        'and a team of his own only';
    is 0 + pg_exec(q{SELECT overall FROM assessments WHERE session_id = :'v1'}, $bs),
        75, 'nothing changed';
    ($st) = api('GET', '/review/sessions/999999999', $trainer);
    is $st, 404, 'a session that does not exist: 404';
    ($st) = api('GET', '/review/sessions/x', $trainer);
    is $st, 404, 'nor a path that is not one';
    ($st) = api('DELETE', "/review/sessions/$bs", $trainer);
    is $st, 405, 'a method it does not take: 405';

    pg_exec(q{UPDATE users SET role = 'trainee' WHERE id = :'v1'}, $tid);
    ($st) = api('GET', '/review/team', $trainer);
    is $st, 403, 'a demoted trainer loses the review at once';
};

stop_nginx();
done_testing();
