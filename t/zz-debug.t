# Issue 8, item 6: the labelled corpus (t/assess/corpus/corpus.pl) played
# over the whole stack for every seeded scenario: the WebSocket chat with
# the stand-in persona, then POST /sessions/{id}/resolve.  The orderings of
# the issue's "Done when" are asserted here, the scores printed as a table
# (the one in README's "Assessment and game rules").  Item 5: the persona
# does not close on stuffed, repeated or off-topic messages.  Item 7: a
# stuffed or off-topic session earns no more XP than a mediocre one.
#
# Every conversation gets its own user, so the first-completion bonus and
# the diminishing returns are the same for all and XP follows the score.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $corpus = do './t/assess/corpus/corpus.pl' or die "corpus: $@ $!";
my @labels = qw(good mediocre rude stuffed repeated offtopic injected copy short);
my $CLOSING = qr/that works for me/;

my %conf = %{ platform_conf() };
my $tag = time() . "-$$";
my $n = 0;

sub read_until_end {
    my ($ws) = @_;
    my ($text, $deadline) = ('', time + 8);
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        last if $f->{opcode} == 8;
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        $text .= $ev->{delta} if $ev->{type} eq 'assistant_delta';
        return $text if $ev->{type} eq 'assistant_end';
        die "chat error: $f->{payload}" if $ev->{type} eq 'error';
    }
    die 'no assistant_end';
}

# Plays one conversation; answers the resolve answer and the persona's lines.
sub play {
    my ($slug, $label, $msgs) = @_;
    $n++;
    my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
        VALUES ('corpus-' || :'v1' || '@example.com', 'x', 'Corpus ' || :'v1')
        RETURNING id}, "$tag-$n");
    my $auth = { Authorization => 'Bearer ' . make_token($uid) };
    my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        SELECT :'v1', id FROM scenarios WHERE slug = :'v2' RETURNING id},
        $uid, $slug);
    my $ws = ws_connect("/sessions/$sid/chat", $auth, { timeout => 5 });
    die "handshake $slug/$label" unless $ws->handshake_ok;
    my @persona = (read_until_end($ws));
    my @said = ref $msgs ? @$msgs : ();
    my $turns = ref $msgs ? @$msgs : $msgs;
    for my $i (1 .. $turns) {
        my $text = ref $msgs ? $said[$i - 1] : $persona[-1];
        $ws->send_text(json_encode({ type => 'user_message',
            client_msg_id => "m$i", content => $text }));
        push @persona, read_until_end($ws);
    }
    $ws->close if $ws->can('close');
    my $res = http('POST', "/sessions/$sid/resolve", $auth);
    die "resolve $slug/$label: $res->{status} $res->{body}"
        unless $res->{status} == 200;
    return { sid => $sid, auth => $auth, body => $res->{body},
             answer => json_decode($res->{body}), persona => \@persona };
}

# The assessment proper, without the timing metrics that differ per session.
sub assessment_of {
    my ($p) = @_;
    return json_encode({ map { $_ => $p->{$_} }
        qw(overall dimensions feedback criteria pass_mark passed) });
}

start_nginx(\%conf);

my %score;
for my $slug (sort keys %$corpus) {
    my $c = $corpus->{$slug};
    my %r = map { $_ => play($slug, $_, $c->{$_}) } @labels;
    for my $l (qw(good injected)) { diag json_encode({ map { $_ => $r{$l}{answer}{performance}{$_} } qw(overall dimensions judge criteria manipulation review_suggested) }) }
    my %s = map { $_ => $r{$_}{answer}{performance}{overall} } @labels;
    my %xp = map { $_ => $r{$_}{answer}{rewards}{xp_awarded} } @labels;
    $score{$slug} = \%s;

    subtest "$slug: the orderings hold" => sub {
        cmp_ok $s{good} - $s{mediocre}, '>=', 15,
            "good $s{good} at least 15 above mediocre $s{mediocre}";
        cmp_ok $s{mediocre} - $s{rude}, '>=', 15,
            "mediocre $s{mediocre} at least 15 above rude $s{rude}";
        for my $l (qw(stuffed repeated offtopic copy short)) {
            cmp_ok $s{$l}, '<=', $s{mediocre}, "$l $s{$l} <= mediocre";
        }
        cmp_ok abs($s{injected} - $s{good}), '<=', 3,
            "the note to the grader moves good $s{good} by at most 3"
            . " ($s{injected})";
    };

    subtest "$slug: the persona does not close on games (item 5)" => sub {
        ok((grep { /$CLOSING/ } @{ $r{good}{persona} }),
           'it closes on the good one');
        for my $l (qw(stuffed repeated offtopic)) {
            # the replies to the games; the first of the repeated turns is
            # a fresh message
            my @p = @{ $r{$l}{persona} };
            @p = @p[2 .. $#p] if $l eq 'repeated';
            ok !(grep { /$CLOSING/ } @p),
               "never on the $l one"
                or diag explain $r{$l}{persona};
        }
    };

    subtest "$slug: XP follows the score (item 7)" => sub {
        for my $l (qw(stuffed offtopic)) {
            cmp_ok $xp{$l}, '<=', $xp{mediocre},
                "$l earns $xp{$l} XP, mediocre $xp{mediocre}";
        }
        cmp_ok $xp{good}, '>', $xp{mediocre}, 'good earns more';
    };

    subtest "$slug: the same transcript, the same assessment" => sub {
        is http('POST', "/sessions/$r{good}{sid}/resolve",
                $r{good}{auth})->{body},
           $r{good}{body}, 'resolving again: byte for byte';
        my $again = play($slug, 'good', $c->{good});
        is assessment_of($again->{answer}{performance}),
           assessment_of($r{good}{answer}{performance}),
           'a second session with the same transcript: byte for byte';
    };
}

my $table = sprintf "| %-23s |%s\n", 'scenario',
    join('', map { sprintf ' %s |', $_ } @labels);
$table .= '|' . ('---|' x (@labels + 1)) . "\n";
for my $slug (sort keys %score) {
    $table .= sprintf "| %-23s |%s\n", $slug,
        join('', map { sprintf ' %*d |', length $_, $score{$slug}{$_} } @labels);
}
diag "\n$table";

done_testing;
