# The reply's commit (sql/035, scenario_chat_reply_durable): with the
# directive off, chat_store_turn commits the reply with synchronous_commit
# off for its own transaction only; the trainee's message is stored as
# before, durably before its ack.  On, the default, the reply's commit
# waits for the flush as it always did.  (a) In Postgres: p_durable false turns
# synchronous_commit off inside the transaction and not after it; true and
# the three-argument call leave it on.  (b) What nginx sends, from
# Postgres's log (log_min_duration_statement = 0 logs each execute with its
# parameters): $4 = 't' by default, 'f' with the directive off; the store of
# the trainee's message has no such parameter.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $pglog = "$ENV{TEST_NGINX_PG_DIR}/postgres.log";

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('commit-' || :'v1' || '@example.com', 'x', 'Commit Tester')
    RETURNING id}, time() . "-$$");
my $auth = { Authorization => 'Bearer ' . make_token($uid) };
my $scenario = pg_exec(
    "SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

sub new_session {
    return pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
}

subtest 'in Postgres: the setting lasts for the reply\'s transaction' => sub {
    my $sid = new_session();
    my @out = pg_exec(qq{
        SELECT seq FROM chat_store_message($sid, 'c-1', 'Hello');
        BEGIN;
        SELECT seq FROM chat_store_turn($sid, 1, 'Hi', false);
        SHOW synchronous_commit;
        COMMIT;
        SHOW synchronous_commit;
        SELECT seq FROM chat_store_message($sid, 'c-2', 'Again');
        BEGIN;
        SELECT seq FROM chat_store_turn($sid, 3, 'Hi again', true);
        SHOW synchronous_commit;
        COMMIT;
        SELECT seq FROM chat_store_message($sid, 'c-3', 'Once more');
        BEGIN;
        SELECT seq FROM chat_store_turn($sid, 5, 'And again');
        SHOW synchronous_commit;
        COMMIT;
    });
    is "@out", '1 2 off on 3 4 on 5 6 on',
        'off inside the transaction of p_durable false only';
    is pg_exec(q{SELECT string_agg(role || ':' || content, ',' ORDER BY seq)
                 FROM messages WHERE session_id = :'v1'}, $sid),
        'user:Hello,assistant:Hi,user:Again,assistant:Hi again,'
        . 'user:Once more,assistant:And again', 'all six stored';
};

sub until_event {   # the event $stop picks, or undef
    my ($ws, $secs, $stop) = @_;
    my @got = ws_events($ws, $secs, $stop);
    return @got && $stop->($got[-1]) ? $got[-1] : undef;
}

sub is_last { $_[0]{type} eq 'assistant_end' || $_[0]{type} eq 'error' }

sub log_from {  # Postgres's log since byte $pos, one entry per line
    my ($pos) = @_;
    open my $in, '<', $pglog or die "$pglog: $!";
    seek $in, $pos, 0;
    local $/;
    my $text = <$in> // '';
    # a statement's continuation lines and its DETAIL joined to it
    $text =~ s/\n(?!\d{4}-\d\d-\d\d )/ /g;
    $text =~ s/\n(?=\S+ \S+ \S+ \[\d+\] DETAIL: )/ /g;
    return split /\n/, $text;
}

# the fourth parameter of every execute of chat_store_turn, and how many
# executes of chat_store_message had one
sub sent {
    my ($pos) = @_;
    my @lines = log_from($pos);
    my @turn = map { /execute [^:]*: SELECT seq, to_char.*FROM chat_store_turn\(\$1, \$2, \$3, \$4\).*parameters:.*\$4 = '([^']*)'/
                     ? $1 : () } @lines;
    my $store = grep { /execute [^:]*: SELECT seq, duplicate.*FROM chat_store_message\(\$1, \$2, \$3\)/
                       && !/\$4 =/ } @lines;
    return (\@turn, $store);
}

sub two_turns {
    my ($conf) = @_;
    my $pos = -s $pglog;
    start_nginx($conf);
    my $ws = ws_connect('/sessions/' . new_session() . '/chat', $auth,
                        { timeout => 5 });
    ok $ws->handshake_ok, 'connected';
    is until_event($ws, 8, \&is_last)->{type}, 'assistant_end',
        'the persona opens';
    ws_say($ws, 'm-1', 'I will sort it out.');
    my $ack = until_event($ws, 8, sub { $_[0]{type} eq 'ack' });
    is $ack && $ack->{seq}, 2, 'acknowledged';
    my $end = until_event($ws, 8, \&is_last);
    is $end && $end->{type}, 'assistant_end', 'answered';
    $ws->close(1000);
    sleep 0.3;
    stop_nginx();
    return sent($pos);
}

pg_exec('ALTER SYSTEM SET log_min_duration_statement = 0');
pg_exec('SELECT pg_reload_conf()');
sleep 0.5;

subtest 'nginx, by default: the reply durable before its end' => sub {
    my ($turn, $store) = two_turns(platform_conf());
    is "@$turn", 't t', 'both replies (the opening one too) sent with true';
    is $store, 1, "the trainee's message stored as before";
};

subtest 'nginx, scenario_chat_reply_durable off' => sub {
    my ($turn, $store) = two_turns(platform_conf(
        http_config => "scenario_chat_reply_durable off;\n"));
    is "@$turn", 'f f', 'both replies sent with false';
    is $store, 1, "the trainee's message stored as before";
};

pg_exec('ALTER SYSTEM RESET log_min_duration_statement');
pg_exec('SELECT pg_reload_conf()');

done_testing;
