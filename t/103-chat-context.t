# The model's context in Redis is checked against Postgres (issue 11 item
# 12): each item carries its seq, and a turn uses the list only when its
# seqs run without a hole to the session's last seq (the one the user
# message's insert returned).  Whatever happens to the list between turns
# (deleted, cut at the front, a middle item gone, garbage, items of an
# older format), the next model request still has the whole history, in
# order, as Postgres has it.  Also: in the common path a turn costs at
# most 2 Postgres statements and 8 Redis commands (issue 10).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Encode qw(decode_utf8);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('ctx-' || :'v1' || '@example.com', 'x', 'Context Tester')
    RETURNING id}, time() . "-$$");
my $token = make_token($uid);
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
    VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);

sub until_end {
    my ($ws) = @_;
    my @got;
    my $deadline = time + 8;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        push @got, $ev;
        last if $ev->{type} eq 'assistant_end' || $ev->{type} eq 'error';
    }
    return @got;
}

# the conversation as Postgres has it, as the model should see it
sub history {
    my $rows = pg_exec(q{SELECT string_agg(role || ':' || content, E'\x1e'
                                           ORDER BY seq)
                         FROM messages WHERE session_id = :'v1'}, $sid);
    return split /\x1e/, decode_utf8($rows);
}

sub model_saw {
    my $last = `curl -fsS http://127.0.0.1:$ENV{TEST_NGINX_STUB_PORT}/last`;
    my $req = eval { json_decode($last) } || {};
    my @m = @{ $req->{messages} || [] };
    return ($m[0], map { "$_->{role}:$_->{content}" } @m[1 .. $#m]);
}

my $n = 0;
sub turn {
    my ($ws, $what) = @_;
    $n++;
    (my $label = $what) =~ s/[^\x20-\x7e]/?/g;
    my $text = "Message $n: $what";
    $ws->send_text(json_encode({ type => 'user_message',
                                 client_msg_id => "ctx-$n",
                                 content => $text }));
    my @ev = until_end($ws);
    my ($end) = grep { $_->{type} eq 'assistant_end' } @ev;
    ok $end, "turn $n ($label) answered";
    my $deltas = join '', map { $_->{delta} }
                          grep { $_->{type} eq 'assistant_delta' } @ev;
    is $deltas, $end && $end->{content}, "turn $n: the deltas make the reply";
    my @h = history();
    pop @h;                         # the reply itself
    @h = @h[-20 .. -1] if @h > 20;  # scenario_chat_context's default
    my ($system, @seen) = model_saw();
    like $system && $system->{content}, qr/^You are /,
        "turn $n: the prompt first";
    is_deeply \@seen, \@h, "turn $n: the model saw the whole history"
        or diag explain { seen => \@seen, history => \@h };
    ok !(grep { exists $_->{seq} } @{ json_decode(
        `curl -fsS http://127.0.0.1:$ENV{TEST_NGINX_STUB_PORT}/last`)
        ->{messages} }), "turn $n: no seq in what the model gets";
    return @ev;
}

sub redis_counts {
    my %c;
    for (split /\r?\n/, redis_cmd('info', 'commandstats')) {
        $c{$1} = $2 if /^cmdstat_([a-z|]+):calls=(\d+)/;
    }
    return \%c;
}

# the statements the workers' Postgres pools sent
sub pg_calls {
    my $m = http('GET', '/metrics')->{body};
    my $n = 0;
    $n += $1 while $m =~ /^scenario_pool_operations_total\{pool="postgres",[^}]*\} (\d+)$/mg;
    return $n;
}

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 5 });
ok $ws->handshake_ok, 'connected';
until_end($ws);                     # the persona opens

turn($ws, 'the context is built');
turn($ws, 'the context is used as it is');

my @items = split /\n/, redis_cmd('lrange', "ctx:$sid", 0, -1);
is scalar(@items), 5, 'Redis holds the five messages';
my $item = eval { json_decode($items[-1]) } || {};
is $item->{seq}, 5, 'each with its seq';

redis_cmd('del', "ctx:$sid");
turn($ws, 'after the list was deleted');

redis_cmd('ltrim', "ctx:$sid", 2, -1);
turn($ws, 'after the list was cut at the front');

@items = split /\n/, redis_cmd('lrange', "ctx:$sid", 0, -1);
redis_cmd('lrem', "ctx:$sid", 1, $items[3]);
turn($ws, 'after a middle item went');

redis_cmd('rpush', "ctx:$sid", 'not json');
turn($ws, 'after garbage was added');

redis_cmd('del', "ctx:$sid");
redis_cmd('rpush', "ctx:$sid", map { json_encode({ role => 'user', content => "old $_" }) } 1 .. 3);
turn($ws, 'after items without seqs');

# a message stored by another connection, not seen by this one's list
my $b = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                   { timeout => 5 });
ok $b->handshake_ok, 'a second connection';
pg_exec(q{SELECT chat_store_message(:'v1', 'elsewhere', 'Stored elsewhere')}, $sid);
my ($end) = grep { $_->{type} eq 'assistant_end' }
            turn($ws, 'after a message stored behind its back');
my ($heard) = grep { $_->{type} eq 'assistant_end' } until_end($b);
is $heard && $heard->{content}, $end && $end->{content},
    'the other connection of the worker hears the reply';
$b->disconnect;

# quotes, a backslash, a tab, a newline, a control character and UTF-8 in
# what the stand-in echoes: the deltas are JSON written by hand
turn($ws, "say \"it\" \\ back\tnow\nplease \x01 caf\x{e9} \x{1F600}");

# the common path: counted by Postgres and Redis themselves
# (a stream at zero delay: tokens 20 ms apart would each be published)
turn($ws, 'warm [[delay:0]]');
my ($r0, $p0) = (redis_counts(), pg_calls());
turn($ws, 'counted [[delay:0]]');
sleep 0.3;
my ($r1, $p1) = (redis_counts(), pg_calls());
my $cmds = 0;
my @by;
for my $c (sort keys %$r1) {
    my $d = $r1->{$c} - ($r0->{$c} // 0);
    next if $c eq 'info' || $d <= 0;
    $cmds += $d;
    push @by, "$c $d";
}
cmp_ok $cmds, '<=', 8, "a turn: at most 8 Redis commands (@by)";
is $p1 - $p0, 2, 'a turn: 2 Postgres statements';

$ws->disconnect;
stop_nginx();
done_testing();
