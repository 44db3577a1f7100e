# Bad input that used to get the wrong answer (found by sanitizers, fuzzing
# and hostile requests): a JSON error text cut inside a UTF-8 character, a
# resume past the range of a seq, and API paths that fell through to the
# browser app.  Every answer must be the API's JSON error shape.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $repo = $ENV{TEST_NGINX_REPO};

# the browser app's catch-all, as conf/nginx.conf ships it
my %conf = %{ platform_conf(config => <<"_EOC_", nginx => { no_root_location => 1 }) };
    location / {
        root $repo/ui;
        index index.html;
        try_files \$uri \$uri/ /index.html;
    }
_EOC_

my $uid = make_user('bad', 'Bad Input');
my $token = make_token($uid);
my $auth = { Authorization => "Bearer $token" };

sub is_json_error {
    my ($res, $status, $code, $name) = @_;
    is $res->{status}, $status, "$name: $status";
    like Test::Scenario::Util::header_value($res, 'Content-Type') // '', qr{^application/json},
        "$name: JSON";
    my $doc = eval { json_decode($res->{body}) };
    is ref $doc eq 'HASH' && ref $doc->{error} eq 'HASH' && $doc->{error}{code},
        $code, "$name: error code $code";
    return $doc;
}

start_nginx(\%conf);

subtest 'a JSON error whose library text would end inside a character' => sub {
    # {"email":"\u0<é>"}: jansson quotes the input up to the bad escape
    my $body = "\x7b\x22\x65\x6d\x61\x69\x6c\x22\x3a\x22\x5c\x75\x30"
             . "\xc3\xa9\x22\x7d";
    is length $body, 17, 'the 17 bytes of the report';
    my $res = http('POST', '/auth/login',
                   { 'Content-Type' => 'application/json' }, $body);
    my $doc = is_json_error($res, 400, 'bad_request', 'login');
    like $doc->{error}{message}, qr/^invalid JSON: .+ at line 1, column \d+ \(byte \d+\)$/,
        'a fixed description and the position';
    unlike $doc->{error}{message}, qr/[^\x20-\x7e]/, 'nothing of the input in it';

    # the same on every endpoint that reads a JSON body
    $res = http('POST', '/sessions',
                { %$auth, 'Content-Type' => 'application/json' }, $body);
    is_json_error($res, 400, 'bad_request', 'start a session');

    # each kind of parse error keeps a readable, fixed message
    my %kind = (
        '{"a":1'               => qr/ends too early/,
        '{"a":1} x'            => qr/extra data/,
        '{"a":1,"a":2}'        => qr/appears twice/,
        "{\"a\":\"\xff\"}"     => qr/not valid UTF-8/,
        '{"a":"\u0000"}'       => qr/NUL/,
        '{"a":1e99999}'        => qr/too large/,
        '{"a":tru}'            => qr/syntax error/,
    );
    for my $in (sort keys %kind) {
        $res = http('POST', '/auth/login',
                    { 'Content-Type' => 'application/json' }, $in);
        my $d = is_json_error($res, 400, 'bad_request', "body " . unpack('H*', $in));
        like $d->{error}{message}, $kind{$in}, "says what: $kind{$in}";
    }

    my @bad = grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, error_log_data();
    is_deeply \@bad, [], 'nothing alarming in error.log';
};

subtest 'resume past the range of a seq is the client\'s error' => sub {
    my $sid = make_session($uid);
    my $ws = ws_connect("/sessions/$sid/chat", $auth, { timeout => 5 });
    is $ws->status, 101, 'connected';

    my @got;
    for my $after (2147483648, 9007199254740991, -1) {
        $ws->send_text(json_encode({ type => 'resume', after_seq => $after }));
        while (my $f = $ws->recv_frame(5)) {
            next unless $f->{opcode} == 1;
            my $ev = json_decode($f->{payload});
            next unless $ev->{type} eq 'error';
            push @got, $ev;
            last;
        }
    }
    is scalar @got, 3, 'three answers';
    is_deeply [map { $_->{code} } @got], [qw(bad_request bad_request bad_request)],
        'each one bad_request, not unavailable';
    like $got[0]{message}, qr/2147483647/, 'the message gives the range';

    # the largest valid value is a real query, answered with nothing
    $ws->send_text(json_encode({ type => 'resume', after_seq => 2147483647 }));
    my $err;
    while (my $f = $ws->recv_frame(1.5)) {
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        $err = $ev if $ev->{type} eq 'error';
    }
    ok !$err, 'after_seq 2147483647 is accepted';
    $ws->close;

    unlike error_log_data(), qr/out of range for type integer/,
        'Postgres never saw the bad value';
};

subtest 'API paths answer in the API\'s error shape, never the browser app' => sub {
    for my $path ('/sessions/-1', '/sessions/abc', '/sessions/1/unknown',
                  '/sessions/', '/auth/whoami', '/scenarios/1', '/me/nothing')
    {
        my $res = http('GET', $path, $auth);
        my $doc = is_json_error($res, 404, 'not_found', $path);
        unlike $res->{body}, qr/<html/i, "$path: no HTML";
    }

    my $res = http('GET', '/sessions/987654321', $auth);
    is_json_error($res, 404, 'not_found', 'a valid id of nobody\'s');

    # the browser app still answers its own paths
    $res = http('GET', '/play/42');
    is $res->{status}, 200, 'a browser path: 200';
    like $res->{body}, qr/<html/i, 'the app';
};

stop_nginx();
done_testing();
