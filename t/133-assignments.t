# Assignments (issue 9, item 3): a trainer assigns a scenario to trainees
# or to the whole organization, with a due date, a required score and a
# number of attempts; the trainee's list shows each with its status (not
# started, in progress, passed, not passed, overdue), and a resolve
# changes it at once.  Another organization sees none of it.
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
my ($aid, $ann) = new_user('trainee', $org);
my ($bid, $bob) = new_user('trainee', $org);
my $other = new_org();
my ($oid, $stranger) = new_user('trainer', $other);
my ($xid, $outsider) = new_user('trainee', $other);

# numbers, not strings, in the JSON bodies
my $refund = 0 + pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
$_ += 0 for $aid, $bid, $xid;

# a session of $user on $scenario, with one reply, resolved through the API
sub play {
    my ($token, $user, $scenario, $reply) = @_;
    my (undef, $s) = api('POST', '/sessions', $token, { scenario_id => $scenario });
    pg_exec(q{INSERT INTO messages (session_id, seq, role, content, client_msg_id)
              VALUES (:'v1', 1, 'assistant', 'My mixer came late and broken.', NULL),
                     (:'v1', 2, 'user', :'v2', 'c2')}, $s->{id}, $reply);
    my $last = 2;
    if ($reply ne 'ok') {   # a good reply satisfies the persona
        pg_exec(q{INSERT INTO messages (session_id, seq, role, content)
                  VALUES (:'v1', 3, 'assistant', 'Thank you, that works for me.')},
                $s->{id});
        $last = 3;
    }
    pg_exec(q{UPDATE sessions SET last_seq = :'v2' WHERE id = :'v1'}, $s->{id}, $last);
    return $s->{id};
}

sub mine {
    my ($token) = @_;
    my ($st, $list) = api('GET', '/me/assignments', $token);
    return { map { $_->{id} => $_ } @$list };
}

my $good = "I'm so sorry, I understand how frustrating the missed birthday is. "
         . "I will refund the full \$289.99 plus the express fee today, a courier "
         . "will pick it up free of charge tomorrow, and you will get a "
         . "confirmation email within 24 hours.";
my $poor = 'ok';

start_nginx(\%conf);

my ($st, $made) = api('POST', '/assignments', $trainer,
                      { scenario_id => $refund, user_ids => [$aid],
                        due_at => '2099-01-01T12:00:00Z', required_score => 60,
                        max_attempts => 2 });
is $st, 201, 'a trainer assigns a scenario to a trainee' or diag explain $made;
my $one = $made->[0];
is_deeply [@{$one}{qw(user_id required_score max_attempts due_at)}],
    [$aid, 60, 2, '2099-01-01T12:00:00Z'], 'with its terms';
is $one->{scenario}{slug}, 'refund-angry-customer', 'and its scenario';

($st, $made) = api('POST', '/assignments', $trainer,
                   { scenario_id => $refund, due_at => '2020-01-01T00:00:00Z' });
is $st, 201, 'and one to the whole organization, already due';
my $all = $made->[0];
is $all->{user_id}, undef, 'for nobody in particular';

subtest 'bad assignments name the field' => sub {
    my @bad = (
        [{ user_ids => [$aid] }, 'scenario_id'],
        [{ scenario_id => 'x' }, 'scenario_id'],
        [{ scenario_id => $refund, user_ids => [] }, 'user_ids'],
        [{ scenario_id => $refund, user_ids => ['a'] }, 'user_ids'],
        [{ scenario_id => $refund, due_at => 'tomorrow' }, 'due_at'],
        [{ scenario_id => $refund, due_at => '2026-02-30T10:00:00Z' }, 'due_at'],
        [{ scenario_id => $refund, required_score => 101 }, 'required_score'],
        [{ scenario_id => $refund, max_attempts => 0 }, 'max_attempts'],
        [{ scenario_id => $refund, colour => 'red' }, 'colour'],
    );
    for my $case (@bad) {
        my ($body, $field) = @$case;
        my ($st, $err) = api('POST', '/assignments', $trainer, $body);
        is_deeply [$st, $err->{error}{code}, $err->{error}{field}],
            [400, 'bad_request', $field], "$field: 400 naming it";
        like $err->{error}{message}, qr/^"\Q$field\E" /, 'in the message too';
    }
};

subtest 'the trainee sees the status, and resolve changes it' => sub {
    my $m = mine($ann);
    is_deeply [sort { $a <=> $b } keys %$m], [$one->{id}, $all->{id}],
        'Ann has her own assignment and the organization\'s';
    is $m->{$one->{id}}{status}, 'not_started', 'not started';
    is $m->{$all->{id}}{status}, 'overdue', 'the other is overdue';
    is_deeply [keys %{ mine($bob) }], [$all->{id}], 'Bob has only the organization\'s';

    my $s1 = play($ann, $aid, $refund, $poor);
    is mine($ann)->{$one->{id}}{status}, 'in_progress', 'a session begun: in progress';
    my ($rst) = api('POST', "/sessions/$s1/resolve", $ann);
    is $rst, 200, 'resolved';
    $m = mine($ann)->{$one->{id}};
    is_deeply [@{$m}{qw(status attempts)}], ['in_progress', 1],
        'a poor score with an attempt left: still in progress';
    cmp_ok $m->{best_score}, '<', 60, 'below the required score';

    my $s2 = play($ann, $aid, $refund, $good);
    api('POST', "/sessions/$s2/resolve", $ann);
    $m = mine($ann)->{$one->{id}};
    is_deeply [@{$m}{qw(status attempts)}], ['passed', 2], 'a good one: passed at once';
    cmp_ok $m->{best_score}, '>=', 60, 'with its best score' or diag explain $m;
    is mine($ann)->{$all->{id}}{status}, 'passed',
        'the overdue one counts it too (the pass mark is the scenario\'s)';

    my $s3 = play($bob, $bid, $refund, $poor);
    api('POST', "/sessions/$s3/resolve", $bob);
    is mine($bob)->{$all->{id}}{status}, 'overdue', 'Bob\'s poor try: still overdue';

    my (undef, $trial) = api('POST', '/assignments', $trainer,
                             { scenario_id => $refund, user_ids => [$bid],
                               max_attempts => 1 });
    my $s4 = play($bob, $bid, $refund, $poor);
    api('POST', "/sessions/$s4/resolve", $bob);
    is mine($bob)->{ $trial->[0]{id} }{status}, 'not_passed',
        'the only attempt failed: not passed';
    my $s5 = play($bob, $bid, $refund, $good);
    api('POST', "/sessions/$s5/resolve", $bob);
    is_deeply [@{ mine($bob)->{ $trial->[0]{id} } }{qw(status attempts)}],
        ['not_passed', 1], 'attempts beyond the maximum do not count';
};

subtest 'the trainer sees each member\'s progress' => sub {
    my ($st, $list) = api('GET', '/assignments', $trainer);
    is $st, 200, 'the organization\'s assignments';
    my ($row) = grep { $_->{id} == $all->{id} } @$list;
    is_deeply [map { [$_->{user_id}, $_->{status}] } @{ $row->{members} }],
        [[$aid, 'passed'], [$bid, 'passed']],
        'the organization\'s one, for each trainee (Bob\'s late good try counts)';

    my ($dst) = api('DELETE', "/assignments/$all->{id}", $trainer);
    is $dst, 204, 'a trainer cancels an assignment';
    ok !exists mine($bob)->{ $all->{id} }, 'and it is gone from the trainee\'s list';
};

subtest 'isolation' => sub {
    my ($st, $doc) = api('POST', '/assignments', $ann,
                         { scenario_id => $refund, user_ids => [$bid] });
    is_deeply [$st, $doc->{error}{code}], [403, 'forbidden'], 'a trainee cannot assign';
    ($st) = api('GET', '/assignments', $ann);
    is $st, 403, 'nor list the organization\'s assignments';
    ($st) = api('DELETE', "/assignments/$one->{id}", $ann);
    is $st, 403, 'nor cancel one';

    ($st, $doc) = api('POST', '/assignments', $stranger,
                      { scenario_id => $refund, user_ids => [$aid] });
    is_deeply [$st, $doc->{error}{code}], [404, 'not_found'],
        'another organization\'s trainer cannot assign to Ann';
    my (undef, $mine) = api('POST', '/authoring/scenarios', $trainer, scenario_doc());
    api('POST', "/authoring/scenarios/$mine->{id}/publish", $trainer);
    ($st) = api('POST', '/assignments', $stranger, { scenario_id => $mine->{id} });
    is $st, 404, 'nor assign this organization\'s scenario';
    ($st) = api('DELETE', "/assignments/$one->{id}", $stranger);
    is $st, 404, 'nor cancel its assignment';
    my (undef, $list) = api('GET', '/assignments', $stranger);
    is_deeply $list, [], 'and lists none of them';
    is_deeply mine($outsider), {}, 'its trainees see none of them';

    (undef, $doc) = api('POST', '/authoring/scenarios', $trainer, scenario_doc());
    ($st) = api('POST', '/assignments', $trainer, { scenario_id => $doc->{id} });
    is $st, 404, 'a draft cannot be assigned';
};

stop_nginx();
done_testing();
