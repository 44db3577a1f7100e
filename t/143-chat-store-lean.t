# The chat's two statements (sql/032) take the seq with the UPDATE that
# locks the session, before they know whether the call is a duplicate: a
# repeated client_msg_id or a reply already stored after p_answers gives
# the seq back, so the next message still gets last_seq + 1, with no hole.
# Also: a resolved session answers a repeated client_msg_id and stores
# nothing new, a missing session answers nothing.  Needs a migrated and
# seeded database (PGHOST, PGPORT, PGUSER, PGDATABASE, as scripts/test sets
# them); every user it makes is new.

use strict;
use warnings;
use lib 't/lib';

use Test::More;
use Test::Scenario::Util qw(pg_exec);

plan skip_all => 'PGDATABASE is not set (run through scripts/test)'
    unless $ENV{PGDATABASE};

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('lean-' || :'v1' || '@example.test', 'x', 'Lean Tester')
    RETURNING id}, time() . "-$$");
my $scenario = pg_exec(
    "SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id, last_seq)
    VALUES (:'v1', :'v2', 1) RETURNING id}, $uid, $scenario);
pg_exec(q{INSERT INTO messages (session_id, seq, role, content)
    VALUES (:'v1', 1, 'assistant', 'Where is my refund?')}, $sid);

sub message {   # "seq|duplicate|needs_reply|last_seq"
    my ($id, $text) = @_;
    return scalar pg_exec(q{SELECT concat_ws('|', seq, duplicate,
        needs_reply, last_seq) FROM chat_store_message(:'v1', :'v2', :'v3')},
        $sid, $id, $text);
}

sub turn {      # "seq|content|duplicate|pending|last_seq"
    my ($answers, $text) = @_;
    return scalar pg_exec(q{SELECT concat_ws('|', seq, content, duplicate,
        pending, last_seq) FROM chat_store_turn(:'v1', :'v2', :'v3')},
        $sid, $answers, $text);
}

sub last_seq { pg_exec(q{SELECT last_seq FROM sessions WHERE id = :'v1'},
                       $sid) }

is message('a', 'First'), '2|f|t|2', 'a message gets last_seq + 1';
is message('a', 'First again'), '2|t|t|2',
    'repeated: its seq, it waits for a reply, last_seq as it was';
is last_seq(), 2, 'the duplicate gave its seq back';

is turn(2, 'Reply one'), '3|Reply one|f|f|3', 'the reply gets the next seq';
is turn(2, 'Reply two'), '3|Reply one|t|f|3',
    'a second reply to the same messages: the first one, as a duplicate';
is last_seq(), 3, 'the duplicate reply gave its seq back';

is message('a', 'First, late'), '2|t|f|3',
    'repeated once answered: no reply needed';
is message('b', 'Second'), '4|f|t|4', 'the next message: no hole';
is message('c', 'Third'), '5|f|t|5', 'and the one after';
is turn(4, 'Reply three'), '6|Reply three|f|t|6',
    'a reply to the second: a newer message waits';

is pg_exec(q{SELECT string_agg(seq::text, ',' ORDER BY seq) FROM messages
             WHERE session_id = :'v1'}, $sid), '1,2,3,4,5,6',
    'seqs without holes or duplicates';

pg_exec(q{UPDATE sessions SET status = 'resolved', resolved_at = now()
          WHERE id = :'v1'}, $sid);
is message('b', 'Second, after resolve'), '4|t|f|6',
    'resolved: a repeated client_msg_id still gets its seq';
is message('d', 'New after resolve'), '', 'resolved: a new one is refused';
is turn(6, 'Late reply'), '', 'resolved: a reply is refused';
is last_seq(), 6, 'resolved: last_seq untouched';
is pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'}, $sid),
    6, 'resolved: nothing stored';

# 033/034: messages are keyed by (session_id, seq); the client_msg_id
# index holds the trainee's messages only, and it is what finds a repeat
is pg_exec(q{SELECT string_agg(a.attname, ',' ORDER BY k.n)
             FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(att, n),
                  pg_attribute a
             WHERE i.indrelid = 'messages'::regclass AND i.indisprimary
               AND a.attrelid = i.indrelid AND a.attnum = k.att}),
    'session_id,seq', 'the primary key is (session_id, seq)';
is pg_exec(q{SELECT count(*) FROM pg_attribute
             WHERE attrelid = 'messages'::regclass AND attname = 'id'
               AND NOT attisdropped}), 0, 'no surrogate id';
is pg_exec(q{SELECT pg_get_expr(indpred, indrelid) FROM pg_index
             WHERE indexrelid = 'messages_client_msg_id_key'::regclass}),
    '(client_msg_id IS NOT NULL)', 'the client_msg_id index is partial';

# two writers of one repeat at once: the second waits for the session's
# row, then finds the first one's message, without an error
my $sid2 = pg_exec(q{INSERT INTO sessions (user_id, scenario_id, last_seq)
    VALUES (:'v1', :'v2', 0) RETURNING id}, $uid, $scenario);
open my $first, '-|', 'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
    '-c', 'BEGIN',
    '-c', "SELECT concat_ws('|', seq, duplicate) FROM chat_store_message($sid2, 'same', 'one')",
    '-c', 'SELECT pg_sleep(1)', '-c', 'COMMIT'
    or die "psql: $!";
select undef, undef, undef, 0.4;
is pg_exec(q{SELECT concat_ws('|', seq, duplicate, needs_reply, last_seq)
             FROM chat_store_message(:'v1', 'same', 'two')}, $sid2),
    '1|t|t|1', 'the concurrent repeat: the first one\'s seq, a duplicate';
my @out = grep { /\S/ } <$first>;
close $first;
chomp @out;
is "@out", '1|f', 'the first writer stored it';
is pg_exec(q{SELECT string_agg(content, ',') FROM messages
             WHERE session_id = :'v1'}, $sid2), 'one', 'stored once';
is pg_exec(q{SELECT last_seq FROM sessions WHERE id = :'v1'}, $sid2), 1,
    'the repeat gave its seq back';

my $none = pg_exec('SELECT coalesce(max(id), 0) + 1000 FROM sessions');
is pg_exec(q{SELECT count(*) FROM chat_store_message(:'v1', 'x', 'y')},
           $none), 0, 'a missing session: no row';
is pg_exec(q{SELECT count(*) FROM chat_store_turn(:'v1', 0, 'y')}, $none),
    0, 'a missing session: no reply';

done_testing;
