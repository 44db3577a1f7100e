# Scenario authoring (issue 9, item 2): trainers create, edit, publish and
# archive their organization's scenarios; every field is checked with a
# 400 that names it; an edit makes a new version and a session keeps the
# version it began with, its assessment too; a draft is tried in a chat
# without XP or leaderboard; the seeded scenarios stay everyone's.
use strict;
use warnings;
use lib 't/lib';
use utf8;
use Encode qw(encode_utf8);
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;
use Test::Scenario::Orgs;

my %conf = %{ platform_conf(http_config => "scenario_judge off;\n") };

my $org = new_org();
my ($tid, $trainer) = new_user('trainer', $org);
my ($uid, $trainee) = new_user('trainee', $org);

sub messages {
    my ($sid, @lines) = @_;
    my $seq = pg_exec(q{SELECT last_seq FROM sessions WHERE id = :'v1'}, $sid);
    for my $m (@lines) {
        $seq++;
        pg_exec(q{INSERT INTO messages (session_id, seq, role, content, client_msg_id)
                  VALUES (:'v1', :'v2', :'v3', :'v4', NULLIF(:'v5', ''))},
                $sid, $seq, $m->[0], $m->[1], $m->[0] eq 'user' ? "m$seq" : '');
    }
    pg_exec(q{UPDATE sessions SET last_seq = :'v2' WHERE id = :'v1'}, $sid, $seq);
}

sub criteria_keys {
    my ($assessment) = @_;
    return [map { $_->{key} } @{ $assessment->{performance}{criteria} }];
}

start_nginx(\%conf);

my ($st, $sc) = api('POST', '/authoring/scenarios', $trainer, scenario_doc());
is $st, 201, 'a trainer creates a scenario' or diag explain $sc;
my $id = $sc->{id};
is_deeply [@{$sc}{qw(status version title difficulty target_turns xp_reward pass_mark)}],
    ['draft', 1, 'Price rise, loyal customer', 'medium', 5, 90, 60],
    'a draft, version 1, as written';
is $sc->{persona}{name}, 'Morgan Hale', 'its persona';
is_deeply [map { $_->{key} } @{ $sc->{criteria} }], ['explain', 'offer'], 'its rubric';
is $sc->{criteria}[1]{weight}, 3, 'with the criteria\'s weights';
like $sc->{slug}, qr/^price-rise-loyal-customer-$id$/, 'a slug from its title';

subtest 'every field is checked, and named' => sub {
    my $doc = scenario_doc();
    my @bad = (
        [{ %$doc, title => undef }, 'title', qr/is required/],
        [{ %$doc, title => 'x' x 121 }, 'title', qr/3 to 120 characters/],
        [{ %$doc, title => "two\x01lines" }, 'title', qr/control character/],
        [{ %$doc, title => '    ' }, 'title', qr/not blank/],
        [{ %$doc, description => 42 }, 'description', qr/must be a string/],
        [{ %$doc, difficulty => 'extreme' }, 'difficulty', qr/easy, medium or hard/],
        [{ %$doc, persona => 'Morgan' }, 'persona', qr/must be an object/],
        [{ %$doc, persona => { %{ $doc->{persona} }, prompt => 'short' } },
         'persona.prompt', qr/20 to 8000/],
        [{ %$doc, persona => { %{ $doc->{persona} }, age => 40 } },
         'persona.age', qr/not a field/],
        [{ %$doc, persona => { name => 'M', role => 'R' } }, 'persona.prompt',
         qr/is required/],
        [{ %$doc, good_resolution => 'y' x 4001 }, 'good_resolution', qr/1 to 4000/],
        [{ %$doc, criteria => [] }, 'criteria', qr/1 to 12 criteria/],
        [{ %$doc, criteria => [($doc->{criteria}[0]) x 13] }, 'criteria',
         qr/1 to 12 criteria/],
        [{ %$doc, criteria => [$doc->{criteria}[0], $doc->{criteria}[0]] },
         'criteria[1].key', qr/repeats the key of criteria\[0\]/],
        [{ %$doc, criteria => [{ %{ $doc->{criteria}[0] }, key => 'Bad Key' }] },
         'criteria[0].key', qr/a-z, 0-9 and _/],
        [{ %$doc, criteria => [$doc->{criteria}[0],
                               { %{ $doc->{criteria}[1] }, keywords => ['ok', ''] }] },
         'criteria[1].keywords[1]', qr/1 to 60 characters/],
        [{ %$doc, criteria => [{ %{ $doc->{criteria}[0] }, keywords => [] }] },
         'criteria[0].keywords', qr/1 to 20 strings/],
        [{ %$doc, criteria => [{ %{ $doc->{criteria}[0] }, weight => 11 }] },
         'criteria[0].weight', qr/from 1 to 10/],
        [{ %$doc, criteria => [{ %{ $doc->{criteria}[0] }, score => 1 }] },
         'criteria[0].score', qr/not a field/],
        [{ %$doc, criteria => ['explain'] }, 'criteria[0]', qr/must be an object/],
        [{ %$doc, weights => { %{ $doc->{weights} }, clarity => undef } },
         'weights.clarity', qr/from 0 to 10/],
        [{ %$doc, weights => { %{ $doc->{weights} }, humour => 1 } },
         'weights.humour', qr/not a dimension/],
        [{ %$doc, weights => { map { $_ => 0 } qw(empathy clarity resolution efficiency) } },
         'weights', qr/not all be 0/],
        [{ %$doc, target_turns => 0 }, 'target_turns', qr/from 1 to 50/],
        [{ %$doc, xp_reward => 1001 }, 'xp_reward', qr/from 1 to 1000/],
        [{ %$doc, pass_mark => 100.5 }, 'pass_mark', qr/integer from 0 to 100/],
        [{ %$doc, colour => 'blue' }, 'colour', qr/not a field/],
    );
    for my $case (@bad) {
        my ($body, $field, $msg) = @$case;
        delete $body->{$_} for grep { !defined $body->{$_} } keys %$body;
        for my $k (qw(persona weights)) {
            next unless ref $body->{$k} eq 'HASH';
            delete $body->{$k}{$_} for grep { !defined $body->{$k}{$_} } keys %{ $body->{$k} };
        }
        my ($st, $err) = api('POST', '/authoring/scenarios', $trainer, $body);
        is $st, 400, "$field: 400";
        is $err->{error}{field}, $field, "names $field";
        like $err->{error}{message}, qr/^"\Q$field\E" /, 'in the message too';
        like $err->{error}{message}, $msg, 'and says what is wrong';
    }

    # lengths are characters: 120 two-byte characters fit, 121 do not
    my ($ok) = api('POST', '/authoring/scenarios', $trainer,
                   { %$doc, title => 'é' x 120 });
    is $ok, 201, '120 characters of two bytes each fit';
    my ($no, $err) = api('POST', '/authoring/scenarios', $trainer,
                         { %$doc, title => 'é' x 121 });
    is_deeply [$no, $err->{error}{field}], [400, 'title'], '121 do not';

    my $json = encode_utf8(json_encode($doc));
    $json =~ s/Morgan Hale/Morgan \xff\xfe/;
    ($st, $err) = api('POST', '/authoring/scenarios', $trainer, $json);
    is_deeply [$st, $err->{error}{code}], [400, 'bad_request'], 'invalid UTF-8 is 400';
    like $err->{error}{message}, qr/not valid UTF-8 .* in "persona\.name"$/,
        'saying so, and where';

    $json = encode_utf8(json_encode($doc));
    $json =~ s/"because"/"bec\xc3ause"/;
    (undef, $err) = api('PUT', "/authoring/scenarios/$id", $trainer, $json);
    like $err->{error}{message}, qr/ in "criteria\[0\]\.keywords\[0\]"$/,
        'down into lists';

    is pg_exec(q{SELECT count(*) FROM scenarios WHERE org_id = :'v1'}, $org), 2,
        'nothing invalid was stored';
};

subtest 'a draft is tried in a chat, and earns nothing' => sub {
    my ($st, $s) = api('GET', '/scenarios', $trainee);
    ok !(grep { $_->{id} == $id } @$s), 'a draft is not offered to trainees';
    ($st, $s) = api('POST', '/sessions', $trainee, { scenario_id => $id });
    is $st, 404, 'nor can they start it';

    my ($tst, $trial) = api('POST', "/authoring/scenarios/$id/try", $trainer);
    is $tst, 201, 'its author tries it' or diag explain $trial;
    is_deeply [@{$trial}{qw(scenario_id scenario_version status trial)}],
        [$id, 1, 'active', JSON::PP::true], 'a trial session of version 1';

    my $ws = ws_connect("/sessions/$trial->{id}/chat",
                        { Authorization => "Bearer $trainer" }, { timeout => 5 });
    is $ws->status, 101, 'its chat opens';
    my ($ready, $end);
    while (my $f = $ws->recv_frame(5)) {
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        $ready //= $ev if $ev->{type} eq 'ready';
        last if $ev->{type} eq 'assistant_end';
    }
    is $ready->{scenario}{title}, 'Price rise, loyal customer', 'with the draft';
    is $ready->{scenario}{persona}{name}, 'Morgan Hale', 'and its persona';
    $ws->send_text(json_encode({ type => 'user_message', client_msg_id => 't1',
        content => 'I am sorry, the price rose because our costs rose; '
                 . 'I can give you our loyalty discount today.' }));
    while (my $f = $ws->recv_frame(5)) {
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        if ($ev->{type} eq 'assistant_end') { $end = $ev; last }
    }
    ok $end && length $end->{content}, 'the persona answers';
    $ws->disconnect;

    my $xp = pg_exec(q{SELECT xp FROM users WHERE id = :'v1'}, $tid);
    my $board = redis_cmd('ZSCORE', 'leaderboard:all', $tid);
    my ($rst, $a) = api('POST', "/sessions/$trial->{id}/resolve", $trainer);
    is $rst, 200, 'the trial is resolved' or diag explain $a;
    is_deeply criteria_keys($a), ['explain', 'offer'], 'against the draft\'s rubric';
    ok((grep { $_->{met} } @{ $a->{performance}{criteria} }), 'which it meets');
    is $a->{performance}{pass_mark}, 60, 'and pass mark';
    is_deeply $a->{rewards}, { xp_awarded => 0, xp_total => $xp + 0, level => 1,
                               level_up => JSON::PP::false,
                               achievements_unlocked => [] },
        'no XP, no achievement';
    is pg_exec(q{SELECT xp FROM users WHERE id = :'v1'}, $tid), $xp, 'users.xp unchanged';
    is pg_exec(q{SELECT count(*) FROM xp_ledger WHERE user_id = :'v1'}, $tid), 0,
        'nothing in the ledger';
    is redis_cmd('ZSCORE', 'leaderboard:all', $tid), $board, 'nor on the leaderboard';
    is pg_exec(q{SELECT count(*) FROM game_leaderboard_rows('all')
                 WHERE user_id = :'v1'}, $tid), 0, 'whose rows do not have the trainer';
};

my ($v1_session, $v2_session);

subtest 'publish, and a session keeps its version through an edit' => sub {
    my ($st, $doc) = api('POST', "/authoring/scenarios/$id/publish", $trainer);
    is_deeply [$st, $doc->{status}, $doc->{version}], [200, 'published', 1], 'published';

    my (undef, $list) = api('GET', '/scenarios', $trainee);
    my ($mine) = grep { $_->{id} == $id } @$list;
    is $mine->{title}, 'Price rise, loyal customer', 'the trainee is offered it';
    my $s;
    ($st, $s) = api('POST', '/sessions', $trainee, { scenario_id => $id });
    is $st, 201, 'and starts it';
    $v1_session = $s->{id};

    my $edit = scenario_doc(
        title => 'Price rise, new terms',
        persona => { %{ scenario_doc()->{persona} }, name => 'Morgan Vale' },
        criteria => [{ key => 'apologise', description => 'Apologises',
                       keywords => ['sorry'], weight => 1 }],
        pass_mark => 80);
    ($st, $doc) = api('PUT', "/authoring/scenarios/$id", $trainer, $edit);
    is $st, 200, 'the trainer edits it' or diag explain $doc;
    is_deeply [@{$doc}{qw(version status title pass_mark)}],
        [2, 'published', 'Price rise, new terms', 80], 'version 2, still published';
    is_deeply [map { $_->{version} } @{ $doc->{versions} }], [1, 2], 'both versions kept';

    ($st, $doc) = api('PUT', "/authoring/scenarios/$id", $trainer, $edit);
    is $doc->{version}, 2, 'the same content again makes no version';

    ($st, $doc) = api('PUT', "/authoring/scenarios/$id", $trainer,
                      { %$edit, xp_reward => 0 });
    is_deeply [$st, $doc->{error}{field}], [400, 'xp_reward'], 'an edit is checked too';

    my (undef, $old) = api('GET', "/sessions/$v1_session", $trainee);
    is $old->{scenario}{title}, 'Price rise, loyal customer',
        'the running session still shows version 1';
    is $old->{scenario}{persona}{name}, 'Morgan Hale', 'and its persona';
    is pg_exec(q{SELECT persona_name FROM scenario_at s JOIN sessions se
                 ON s.id = se.scenario_id AND s.version = se.scenario_version
                 WHERE se.id = :'v1'}, $v1_session), 'Morgan Hale',
        'the chat\'s persona prompt is version 1\'s';

    ($st, $s) = api('POST', '/sessions', $trainee, { scenario_id => $id });
    $v2_session = $s->{id};
    my (undef, $new) = api('GET', "/sessions/$v2_session", $trainee);
    is $new->{scenario}{title}, 'Price rise, new terms', 'a new session gets version 2';

    for my $sid ($v1_session, $v2_session) {
        messages($sid, [assistant => 'Why did my bill go up?'],
                 [user => 'I am sorry: it rose because costs rose, and I can '
                        . 'offer our loyalty discount.']);
    }
    my (undef, $a1) = api('POST', "/sessions/$v1_session/resolve", $trainee);
    is_deeply criteria_keys($a1), ['explain', 'offer'],
        'resolve assesses the old session with version 1\'s rubric';
    is $a1->{performance}{pass_mark}, 60, 'and its pass mark';
    cmp_ok $a1->{rewards}{xp_awarded}, '>', 0, 'a trainee earns XP';
    my (undef, $again) = api('POST', "/sessions/$v1_session/resolve", $trainee);
    is_deeply $again, $a1, 'reproducibly';
};

subtest 'archive' => sub {
    my ($st, $doc) = api('POST', "/authoring/scenarios/$id/archive", $trainer);
    is_deeply [$st, $doc->{status}], [200, 'archived'], 'archived';
    my (undef, $list) = api('GET', '/scenarios', $trainee);
    ok !(grep { $_->{id} == $id } @$list), 'no longer offered';
    ($st) = api('POST', '/sessions', $trainee, { scenario_id => $id });
    is $st, 404, 'nor started';
    my ($rst, $a2) = api('POST', "/sessions/$v2_session/resolve", $trainee);
    is $rst, 200, 'a session begun before is still resolved';
    is_deeply criteria_keys($a2), ['apologise'], 'with version 2\'s rubric';
    is $a2->{performance}{pass_mark}, 80, 'and pass mark';

    ($st, $list) = api('GET', '/authoring/scenarios', $trainer);
    is $st, 200, 'the trainer lists the organization\'s scenarios';
    my ($row) = grep { $_->{id} == $id } @$list;
    is_deeply [@{$row}{qw(status version)}], ['archived', 2], 'with status and version';
    ($st, $doc) = api('POST', "/authoring/scenarios/$id/publish", $trainer);
    is $doc->{status}, 'published', 'an archived scenario can be published again';
};

subtest 'the seeded scenarios stay everyone\'s' => sub {
    my $seeded = pg_exec(q{SELECT count(*) FROM scenarios WHERE org_id IS NULL});
    cmp_ok $seeded, '>=', 6, 'the seed\'s scenarios are global';
    my (undef, $list) = api('GET', '/scenarios', $trainee);
    is scalar(grep { $_->{slug} eq 'refund-angry-customer' } @$list), 1,
        'a trainee of a new organization is offered them';
    my (undef, $mine) = api('GET', '/authoring/scenarios', $trainer);
    ok !(grep { $_->{slug} eq 'refund-angry-customer' } @$mine),
        'they are not the organization\'s to edit';
    my $refund = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
    my ($st) = api('PUT', "/authoring/scenarios/$refund", $trainer, scenario_doc());
    is $st, 404, 'a trainer cannot edit one';
    is pg_exec(q{SELECT version FROM scenarios WHERE id = :'v1'}, $refund), 1,
        'it is unchanged';
};

stop_nginx();
done_testing();
