# Self-test of the test harness (t/lib/Test/Scenario*.pm).  Needs only an
# nginx binary (TEST_NGINX_BINARY) - no PostgreSQL, Redis or our module.
#
#  1. data-driven blocks run by Test::Scenario::Mini (forced with
#     TEST_SCENARIO_MINI=1 so this file tests our runner even where
#     Test::Nginx is installed);
#  2. small generated .t files run in subprocesses: failures must be
#     reported as "not ok", nginx start failures and a missing binary as
#     failures, and Test::Scenario must hand over to a (fake)
#     Test::Nginx::Socket when one is installed;
#  3. flow tests with Test::Scenario::Util (config generator, response
#     parser, master mode, HTTP and WebSocket clients, psql/redis-cli
#     wrappers with fake binaries).
#
# A small WebSocket echo server written in Perl runs in a child process
# on an ephemeral port ($TEST_NGINX_WS_PORT); nginx proxies to it.

BEGIN { $ENV{TEST_SCENARIO_MINI} = 1 }

use strict;
use warnings;

use lib 't/lib';
use Test::Scenario;
use Test::Scenario::Util qw(:all);

use Cwd qw(getcwd);
use Digest::SHA ();
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Protocol::WebSocket::Frame;
use Protocol::WebSocket::Handshake::Server;

# ---------------------------------------------------------------------------
# WebSocket echo backend (child process)
# ---------------------------------------------------------------------------

# Serves connections one at a time: handshake, a "welcome" text frame,
# then echoes text/binary messages, answers pings, and answers a close
# frame with close 1000 "bye".
sub serve_ws_connection {
    my ($c) = @_;
    my $hs = Protocol::WebSocket::Handshake::Server->new;
    until ($hs->is_done) {
        my $n = sysread $c, my $buf, 4096;
        return unless $n;
        return unless $hs->parse($buf);
    }
    syswrite $c, $hs->to_string;
    my $frame = sub { Protocol::WebSocket::Frame->new(max_payload_size => 0, @_)->to_bytes };
    syswrite $c, $frame->(buffer => 'welcome', type => 'text');
    my $in = Protocol::WebSocket::Frame->new(max_payload_size => 0);
    while (sysread $c, my $buf, 4096) {
        $in->append($buf);
        while (defined(my $msg = $in->next_bytes)) {
            if ($in->is_close) {
                syswrite $c, $frame->(buffer => pack('n', 1000) . 'bye', type => 'close');
                return;
            }
            if ($in->is_ping) {
                syswrite $c, $frame->(buffer => $msg, type => 'pong');
                next;
            }
            syswrite $c, $frame->(buffer => $msg, opcode => $in->opcode);
        }
    }
}

sub start_ws_backend {
    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5, ReuseAddr => 1,
    ) or die "cannot listen: $!";
    my $port = $listen->sockport;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        # Child: no END blocks, no test output; never outlive the test long.
        alarm 300;
        while (my $c = $listen->accept) {
            eval { serve_ws_connection($c) };
            close $c;
        }
        POSIX::_exit(0);
    }
    close $listen;
    return ($pid, $port);
}

my ($WsPid, $WsPort) = start_ws_backend();
$ENV{TEST_NGINX_WS_PORT} = $WsPort;

END {
    if ($WsPid) {
        local $?;    # waitpid would otherwise become the exit status
        kill 'KILL', $WsPid;
        waitpid $WsPid, 0;
    }
}

# ---------------------------------------------------------------------------
# 1. Data-driven blocks
# ---------------------------------------------------------------------------

repeat_each(1);
no_shuffle();
run_tests();

# ---------------------------------------------------------------------------
# 2. Generated .t files in subprocesses
# ---------------------------------------------------------------------------

my $Tmp = tempdir('scenario-selftest-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $Repo = getcwd();

# Run a generated test file from the repository root; returns
# { rc, out, err }.  %env entries with undef values are deleted.  The
# generated code writes %%DATA%% for its data marker: a line starting with
# the real marker would end Test::Base's source filter of this very file.
sub run_t {
    my ($name, $code, %env) = @_;
    $code =~ s/^%%DATA%%$/__DATA__/m;
    my $file = "$Tmp/$name.t";
    open my $fh, '>', $file or die "$file: $!";
    print {$fh} $code;
    close $fh;
    local %ENV = %ENV;
    $ENV{TEST_NGINX_SERVROOT} = "$Tmp/servroot-$name";
    delete $ENV{HARNESS_ACTIVE};   # plain TAP, no harness-specific output
    for my $k (keys %env) {
        defined $env{$k} ? ($ENV{$k} = $env{$k}) : delete $ENV{$k};
    }
    my @inc = map { ('-I', $_) } @{ delete $env{_inc} || [] };
    require IPC::Run3;
    my ($out, $err) = ('', '');
    IPC::Run3::run3([$^X, @inc, $file], \undef, \$out, \$err);
    return { rc => $? >> 8, out => $out, err => $err };
}

sub count_lines { my ($re, $text) = @_; return scalar(() = $text =~ /$re/g) }

# 2a. Failures are reported as "not ok" with useful diagnostics.  No plan:
# Mini's END calls done_testing().
{
    my $r = run_t('failing', <<'EOT');
use lib 't/lib';
use Test::Scenario;
no_shuffle();
run_tests();
%%DATA%%
=== TEST 1: wrong body
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- response_body
bye
=== TEST 2: wrong status
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- error_code: 404
=== TEST 3: unexpected error log line
--- config
    location = /t { deny all; }
--- request
GET /t
--- error_code: 403
--- no_error_log
access forbidden by rule
=== TEST 4: client timeout without abort
--- config eval
"location = /slow { limit_rate 1; limit_rate_after 500; return 200 '" . ("x" x 1000) . "'; }"
--- request
GET /slow
--- timeout: 200ms
EOT
    my ($out, $err) = @$r{qw(out err)};
    isnt $r->{rc}, 0, 'failing file: non-zero exit status';
    like $out, qr/^not ok 2 - \S+ TEST 1: wrong body - response_body/m,
        'failing file: wrong body is "not ok"';
    like $err, qr/got: "hi\\x\{0a\}"/, 'failing file: diag shows what was received';
    like $err, qr/expected: "bye\\x\{0a\}"/, 'failing file: diag shows what was expected';
    like $out, qr/^not ok 3 - \S+ TEST 2: wrong status - status code ok/m,
        'failing file: wrong status is "not ok"';
    like $err, qr/got: '200'\n#\s+expected: '404'/, 'failing file: status diag';
    like $out, qr/^not ok 5 - .*TEST 3: unexpected error log line - no_error_log/m,
        'failing file: unwanted error.log line is "not ok"';
    like $err, qr/matching line\(s\):\n#\s+.*access forbidden by rule/,
        'failing file: diag shows the offending log line';
    like $out, qr/^not ok 6 - .*TEST 4: client timeout without abort - ERROR: client socket timed out/m,
        'failing file: client timeout is "not ok"';
    is count_lines(qr/^not ok/m, $out), 4, 'failing file: exactly 4 failures';
    like $out, qr/^1\.\.7$/m, 'failing file: done_testing plan added at the end';
}

# 2b. nginx that cannot start fails every test of the block (plan kept).
{
    my $r = run_t('badconf', <<'EOT');
use lib 't/lib';
use Test::Scenario;
plan tests => blocks() * 2;
run_tests();
%%DATA%%
=== TEST 1: bad directive
--- config
    bogus_directive on;
--- request
GET /t
--- response_body
hi
EOT
    isnt $r->{rc}, 0, 'bad config: non-zero exit status';
    is count_lines(qr/^not ok/m, $r->{out}), 2, 'bad config: both tests of the block fail';
    like $r->{err}, qr/nginx failed to start/, 'bad config: diag says nginx failed to start';
    like $r->{err}, qr/unknown directive "bogus_directive"/, 'bad config: diag shows the nginx error';
    unlike $r->{out} . $r->{err}, qr/Looks like you planned/, 'bad config: plan still consistent';
}

# 2c. A missing nginx binary is a failure, not a skip.
{
    my $r = run_t('nobinary', <<'EOT', TEST_NGINX_BINARY => '/nonexistent/nginx');
use lib 't/lib';
use Test::Scenario;
plan tests => 1;
run_tests();
%%DATA%%
=== TEST 1: anything
--- config
    location = /t { return 200; }
--- request
GET /t
EOT
    isnt $r->{rc}, 0, 'missing binary: non-zero exit status';
    like $r->{out}, qr/^not ok 1 /m, 'missing binary: reported as "not ok"';
    unlike $r->{out}, qr/# skip/i, 'missing binary: not reported as a skip';
    like $r->{err}, qr{nginx binary not found \(TEST_NGINX_BINARY=/nonexistent/nginx\)},
        'missing binary: diag names the binary';
}

# 2d. ONLY, repeat_each and a plan computed from blocks().
{
    my $r = run_t('only', <<'EOT');
use lib 't/lib';
use Test::Scenario;
repeat_each(2);
plan tests => repeat_each() * blocks() * 2;
run_tests();
%%DATA%%
=== TEST 1: not run
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never
=== TEST 2: the only one
--- ONLY
--- config
    location = /t { return 200 "only\n"; }
--- request
GET /t
--- response_body
only
EOT
    is $r->{rc}, 0, 'ONLY: exit status 0' or diag $r->{out}, $r->{err};
    like $r->{out}, qr/^1\.\.4$/m, 'ONLY: blocks() counts one block, repeated twice';
    is count_lines(qr/^ok \d+ - .*TEST 2: the only one/m, $r->{out}), 4, 'ONLY: 4 passing tests';
    unlike $r->{out}, qr/TEST 1/, 'ONLY: the other block did not run';
}

# 2e. With Test::Nginx::Socket installed (here: a fake one built on
# Test::Base), Test::Scenario hands over to it and its exports reach main.
{
    my $lib = "$Tmp/fake-lib";
    make_path("$lib/Test/Nginx");
    open my $fh, '>', "$lib/Test/Nginx/Socket.pm" or die $!;
    print {$fh} <<'EOM';
package Test::Nginx::Socket;
use Test::Base -Base;
our @EXPORT = qw(run_tests repeat_each no_shuffle fake_marker);
my $Repeat = 1;
sub repeat_each (@) { $Repeat = shift if @_; return $Repeat }
sub no_shuffle () { }
sub fake_marker () { return 'fake Test::Nginx::Socket' }
sub run_tests () {
    for my $block (Test::Base::blocks()) {
        Test::More::pass('fake ran ' . $block->name . ' for ' . caller() . " x $Repeat");
    }
}
1;
EOM
    close $fh;
    my $r = run_t('fake_tn', <<'EOT', TEST_SCENARIO_MINI => undef, _inc => [$lib]);
use lib 't/lib';
use Test::Scenario;
repeat_each(3);
plan tests => 3 + blocks();
is $Test::Scenario::BACKEND, 'Test::Nginx::Socket', 'back end is Test::Nginx::Socket';
is fake_marker(), 'fake Test::Nginx::Socket', 'its functions are exported to main';
ok !defined &main::server_root, 'ours are not';
run_tests();
%%DATA%%
=== TEST 1: a
--- request
GET /a
=== TEST 2: b
--- request
GET /b
EOT
    is $r->{rc}, 0, 'fake Test::Nginx: exit status 0' or diag $r->{out}, $r->{err};
    like $r->{out}, qr/^ok 1 - back end is Test::Nginx::Socket$/m, 'fake Test::Nginx: chosen';
    like $r->{out}, qr/^ok 2 - its functions are exported/m, 'fake Test::Nginx: exports';
    like $r->{out}, qr/^ok 4 - fake ran TEST 1: a for main x 3$/m,
        'fake Test::Nginx: run_tests, blocks() and repeat_each() are its own';
    like $r->{out}, qr/^ok 5 - fake ran TEST 2: b/m, 'fake Test::Nginx: all blocks';
}

# 2f. Without Test::Nginx::Socket, Test::Scenario falls back to Mini.
SKIP: {
    skip 'Test::Nginx::Socket is installed here', 1
        if eval { require Test::Nginx::Socket; 1 };
    my $r = run_t('fallback', <<'EOT', TEST_SCENARIO_MINI => undef);
use lib 't/lib';
use Test::Scenario;
plan tests => 1;
is $Test::Scenario::BACKEND, 'Test::Scenario::Mini', 'fallback';
EOT
    like $r->{out}, qr/^ok 1 - fallback$/m, 'Test::Scenario falls back to Test::Scenario::Mini';
}

# ---------------------------------------------------------------------------
# 3. Flow tests with Test::Scenario::Util
# ---------------------------------------------------------------------------

# 3a. Config generator.
{
    local $ENV{TEST_NGINX_LOAD_MODULES} = '/abs/ngx_a.so rel/ngx_b.so';
    my $conf = gen_nginx_conf({
        main_config      => 'MAIN_SNIPPET;',
        post_main_config => 'POST_MAIN_SNIPPET;',
        http_config      => 'HTTP_SNIPPET;',
        config           => 'SERVER_SNIPPET;',
        master           => 1,
        workers          => 3,
        env              => ['FOO'],
    });
    my $root = nginx_servroot();
    my $port = nginx_port();
    like $conf, qr/\A#[^\n]*\nload_module \/abs\/ngx_a\.so;\nload_module \Q$Repo\E\/rel\/ngx_b\.so;\n/,
        'conf: load_module lines first, relative paths made absolute';
    like $conf, qr/^master_process on;\nworker_processes 3;$/m, 'conf: master + workers';
    like $conf, qr/^user root \w+;$/m, 'conf: user root when master is on (as root)'
        if $> == 0;
    like $conf, qr/^env FOO;$/m, 'conf: env_to_nginx';
    like $conf, qr/^error_log \Q$root\E\/logs\/error\.log \w+;$/m, 'conf: error_log in servroot';
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        like $conf, qr/^\s+${t}_temp_path \Q$root\E\/${t}_temp;$/m, "conf: $t temp path in servroot";
    }
    like $conf, qr/MAIN_SNIPPET;.*events \{.*http \{.*HTTP_SNIPPET;.*server \{\s*listen 127\.0\.0\.1:$port;.*SERVER_SNIPPET;.*location \/ \{.*\}\s*\}\s*\}.*POST_MAIN_SNIPPET;/s,
        'conf: snippets in their contexts';
    unlike gen_nginx_conf({ http_config => 'proxy_temp_path /x;' }), qr/proxy_temp_path \Q$root\E/,
        'conf: a temp path in http_config replaces ours';
    unlike gen_nginx_conf({ no_root_location => 1 }), qr/location \//, 'conf: no_root_location';
    my $plain = gen_nginx_conf({});
    like $plain, qr/^master_process off;$/m, 'conf: master off by default';
    unlike $plain, qr/^user /m, 'conf: no user directive with master off';
}

# 3b. Response parser.
{
    my $r = parse_http_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
        . "3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nEXTRA");
    is $r->{body}, 'abc0123456789abcdef', 'parser: chunks with extension joined';
    is_deeply $r->{trailers}, ['X-T: 1'], 'parser: trailers';
    is $r->{left}, 'EXTRA', 'parser: bytes after the last chunk';
    is $r->{error}, undef, 'parser: no error';

    $r = parse_http_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    is $r->{body}, 'ab', 'parser: truncated chunk keeps what arrived';
    like $r->{error}, qr/truncated/, 'parser: truncated chunk is an error';

    $r = parse_http_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi\x81\x01!");
    is $r->{status}, 101, 'parser: 101 status';
    is $r->{body}, "\x81\x02hi\x81\x01!", 'parser: 101 keeps the upgraded bytes as body';

    $r = parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\nokNEXT");
    is $r->{body}, 'ok', 'parser: Content-Length';
    is $r->{left}, 'NEXT', 'parser: bytes after Content-Length';
    is_deeply $r->{headers}{'set-cookie'}, ['a=1', 'b=2'], 'parser: repeated headers as an array';

    $r = parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", head => 1);
    is $r->{body}, '', 'parser: HEAD response has no body';
    is $r->{error}, undef, 'parser: HEAD response is complete';

    $r = parse_http_response("HTTP/1.1 200 OK\r\nContent-Le");
    is $r->{status}, 200, 'parser: status of an incomplete head';
    like $r->{error}, qr/incomplete/, 'parser: incomplete head reported';
}

# 3c. nginx with a master and two workers; HTTP client.
{
    my $pid = start_nginx({
        master      => 1,
        workers     => 2,
        http_config => 'upstream self { server 127.0.0.1:$TEST_NGINX_SERVER_PORT; }',
        config      => join("\n",
            'location = /f { add_header X-A 1; add_header X-A 2; return 200 "flow\n"; }',
            'location = /echo { return 200 "len=$http_content_length x=$http_x_t\n"; }',
            'location = /up { sub_filter a b; sub_filter_types *; sub_filter_once off; return 200 "aaa\n"; }',
            'location = /proxied { proxy_pass http://self/up; proxy_http_version 1.1; }',
            'location = /deny { deny all; }'),
        user_files  => { 'file.txt' => "from a file\n" },
    });
    ok $pid, "start_nginx returned the master pid $pid";
    is nginx_pid(), $pid, 'nginx_pid()';
    my @workers;
    for (1 .. 100) {
        @workers = Test::Scenario::Util::_children_of($pid);
        last if @workers >= 2;
        select undef, undef, undef, 0.02;
    }
    is scalar(@workers), 2, 'master_on: two worker processes';

    my $res = http(GET => '/f');
    is $res->{status}, 200, 'http: status';
    is $res->{body}, "flow\n", 'http: body';
    is_deeply $res->{headers}{'x-a'}, [1, 2], 'http: repeated header as an array';
    is $res->{headers}{'content-type'}, 'text/plain', 'http: lowercased header names';

    $res = http(POST => '/echo', { 'X-T' => 'v' }, 'abc');
    is $res->{body}, "len=3 x=v\n", 'http: request headers and Content-Length';

    $res = http(GET => '/proxied');
    is $res->{headers}{'transfer-encoding'}, 'chunked', 'http: chunked response';
    like $res->{raw}, qr/\r\n\r\n4\r\nbbb\n\r\n0\r\n\r\n\z/, 'http: raw bytes kept';
    is $res->{body}, "bbb\n", 'http: body de-chunked';

    $res = http(GET => '/file.txt');
    is $res->{body}, "from a file\n", 'start_nginx: user_files under the html root';

    $res = Test::Scenario::Util::http_raw("GET /f HTTP/1.0\r\n\r\n");
    is $res->{status}, 200, 'http_raw: exact bytes';

    $res = http(GET => '/deny');
    is $res->{status}, 403, 'http: 403';
    like error_log_data(), qr/access forbidden by rule/, 'error_log_data: sees the new lines';

    ok stop_nginx(), 'stop_nginx';
    ok !Test::Scenario::Util::_alive($_), "process $_ is gone" for $pid, @workers;
    ok !stop_nginx(), 'stop_nginx again is a no-op';
    like http(GET => '/f')->{error}, qr/cannot connect/, 'http: connection refused reported';
}

# 3d. start_nginx failure.
{
    ok !eval { start_nginx({ config => 'no_such_directive 1;' }); 1 }, 'start_nginx: croaks on a bad config';
    like $@, qr/nginx failed to start.*unknown directive "no_such_directive"/s,
        'start_nginx: error includes the nginx message';
    is nginx_pid(), undef, 'start_nginx: nothing left running';
}

# 3e. WebSocket client through nginx to the echo backend.
{
    start_nginx({ config => <<"EOC" });
        location = /ws {
            proxy_pass http://127.0.0.1:$WsPort;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
        }
        location = /plain { return 200 "not ws\\n"; }
EOC
    my $ws = ws_connect('/ws', { 'X-Extra' => 'yes' });
    is $ws->status, 101, 'ws: 101 Switching Protocols';
    ok $ws->handshake_ok, 'ws: Sec-WebSocket-Accept verified';
    my $f = $ws->recv_frame;
    is_deeply [@$f{qw(opcode fin payload)}], [1, 1, 'welcome'], 'ws: first frame from the server';

    $ws->send_text('hello');
    $f = $ws->recv_frame;
    is_deeply [@$f{qw(opcode payload)}], [1, 'hello'], 'ws: text echoed';

    $ws->send_binary("\x00\xff" x 40000);
    $f = $ws->recv_frame;
    is_deeply [$f->{opcode}, length $f->{payload}], [2, 80000], 'ws: large binary echoed (64-bit length)';

    $ws->send_frame(opcode => 1, fin => 0, payload => 'frag');
    $ws->send_frame(opcode => 0, fin => 1, payload => 'mented');
    $f = $ws->recv_frame;
    is $f->{payload}, 'fragmented', 'ws: fragmented message reassembled by the server';

    $ws->send_ping('p1');
    $f = $ws->recv_frame;
    is_deeply [@$f{qw(opcode payload)}], [10, 'p1'], 'ws: pong';

    is $ws->recv_frame(0.2), undef, 'ws: recv_frame times out';
    ok $ws->timed_out, 'ws: timed_out flag';

    $ws->send_raw_bytes("\x81\x83" . "\0\0\0\0" . 'raw');
    $f = $ws->recv_frame;
    is $f->{payload}, 'raw', 'ws: send_raw_bytes';

    my $reply = $ws->close(1000, 'done');
    is_deeply [@$reply{qw(opcode close_code close_reason)}], [8, 1000, 'bye'], 'ws: close handshake';
    ok $ws->is_closed, 'ws: closed';

    my $no = ws_connect('/plain');
    is $no->status, 200, 'ws: non-upgrading location';
    ok !$no->handshake_ok, 'ws: handshake_ok false';
    stop_nginx();
}

# 3f. psql and redis-cli wrappers, with fake binaries that echo what they get.
{
    my $bin = "$Tmp/bin";
    make_path($bin);
    for my $tool (qw(psql redis-cli)) {
        open my $fh, '>', "$bin/$tool" or die $!;
        # Prints its arguments (and stdin for psql); with FAKE_REPLY set it
        # writes them to $FAKE_ARGS instead and prints FAKE_REPLY.
        print {$fh} "#!/bin/sh\n"
            . "if [ -n \"\$FAKE_REPLY\" ]; then\n"
            . "    printf 'ARG[%s]\\n' \"\$@\" > \"\$FAKE_ARGS\"; echo \"\$FAKE_REPLY\"; exit 0\n"
            . "fi\n"
            . "printf 'ARG[%s]\\n' \"\$@\"\n"
            . ($tool eq 'psql' ? "printf 'STDIN[%s]\\n' \"\$(cat)\"\n" : '')
            . "exit \${FAKE_EXIT:-0}\n";
        close $fh;
        chmod 0755, "$bin/$tool";
    }
    local $ENV{PATH} = "$bin:$ENV{PATH}";
    my $out = pg_exec("SELECT :'v1', :'v2'", "O'Reilly; DROP TABLE x", 42);
    like $out, qr/^ARG\[-v\]\nARG\[ON_ERROR_STOP=1\]\nARG\[-At\]$/m, 'pg_exec: ON_ERROR_STOP and -At';
    like $out, qr/^ARG\[v1=O'Reilly; DROP TABLE x\]$/m, 'pg_exec: parameter passed verbatim as a psql variable';
    like $out, qr/^ARG\[v2=42\]$/m, 'pg_exec: second parameter';
    like $out, qr/^STDIN\[SELECT :'v1', :'v2'\]$/m, 'pg_exec: SQL on stdin, not interpolated';
    my @lines = pg_exec('SELECT 1');
    ok @lines > 3, 'pg_exec: lines in list context';
    {
        local $ENV{FAKE_EXIT} = 3;
        ok !eval { pg_exec('SELECT 1'); 1 }, 'pg_exec: croaks when psql fails';
    }
    ok !eval { pg_exec('SELECT :v1', undef); 1 }, 'pg_exec: undef parameter refused';

    local $ENV{TEST_NGINX_REDIS_PORT} = 6390;
    is redis_cmd('SET', 'k', 'a b'),
        "ARG[-h]\nARG[127.0.0.1]\nARG[-p]\nARG[6390]\nARG[SET]\nARG[k]\nARG[a b]",
        'redis_cmd: host, port and arguments';

    # make_token: a session the way the module's login stores it.
    local $ENV{FAKE_ARGS} = "$Tmp/redis-args";
    local $ENV{FAKE_REPLY} = 'OK';
    my $token = make_token(42);
    like $token, qr/^[A-Za-z0-9_-]{43}$/, 'make_token: 43 base64url characters';
    my $hex = Digest::SHA::sha256_hex($token);
    open my $fh, '<', $ENV{FAKE_ARGS} or die $!;
    my $args = do { local $/; <$fh> };
    is $args, "ARG[-h]\nARG[127.0.0.1]\nARG[-p]\nARG[6390]\nARG[SET]\nARG[sess:$hex]\n"
        . "ARG[42]\nARG[EX]\nARG[86400]\n", 'make_token: SET sess:<sha256 hex> <id> EX <ttl>';
    isnt make_token(42), $token, 'make_token: a new token each time';
    $ENV{FAKE_REPLY} = 'NOAUTH Authentication required.';
    ok !eval { make_token(42); 1 }, 'make_token: croaks unless Redis answers OK';
}

# 3g. JSON helpers.
{
    my $json = json_encode({ b => [1, 'x'], a => "\x{e9}" });
    is $json, qq({"a":"\xc3\xa9","b":[1,"x"]}), 'json_encode: canonical UTF-8';
    is_deeply json_decode($json), { b => [1, 'x'], a => "\x{e9}" }, 'json_decode: round trip';
}

Test::More::done_testing();

__DATA__

=== TEST 1: return with body, default status and a clean error log
--- config
    location = /t { return 200 "hi\n"; }
--- request
GET /t
--- response_body
hi
--- error_code: 200
--- no_error_log
[error]

=== TEST 2: $TEST_NGINX_* expansion in http_config, config and expected body
--- http_config
    upstream backend { server 127.0.0.1:$TEST_NGINX_SERVER_PORT; }
--- config
    location = /t { proxy_pass http://backend/up?p=$TEST_NGINX_PORT; }
    location = /up { return 200 "port=$arg_p\n"; }
--- request
GET /t
--- response_body
port=$TEST_NGINX_PORT

=== TEST 3: response_headers with repeated and absent headers
--- config
    location = /h {
        add_header X-Foo bar;
        add_header X-Multi a;
        add_header X-Multi b;
        return 200 "ok\n";
    }
--- request
GET /h
--- response_headers
X-Foo: bar
X-Multi: a, b
Content-Type: text/plain
!X-Missing
--- response_body
ok

=== TEST 4: response_headers_like and raw_response_headers_like
--- config
    location = /h { return 200 "ok\n"; }
--- request
GET /h
--- response_headers_like
Date: \w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT
Server: nginx/[\d.]+
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n.*Content-Length: 3\r\n

=== TEST 5: 404 with response_body_like / error_code_like
--- config
    location = /nf { return 404; }
--- request
GET /nf
--- error_code_like: ^4\d\d$
--- response_body_like: <title>404 Not Found</title>

=== TEST 6: two requests, one connection each, expectations per request
--- config
    location = /a { return 200 "a\n"; }
    location = /b { return 201 "b\n"; }
--- request eval
["GET /a", "GET /b"]
--- error_code eval
[200, 201]
--- response_body eval
["a\n", "b\n"]
--- no_error_log
[error]

=== TEST 7: error_log and grep_error_log from "deny all"
--- config
    location = /deny { deny all; }
--- request
GET /deny
--- error_code: 403
--- error_log
access forbidden by rule
--- grep_error_log eval
qr/access forbidden by rule/
--- grep_error_log_out
access forbidden by rule

=== TEST 8: error_log eval with a regex and a literal, and wait
--- config
    location = /deny { deny all; }
--- request
GET /deny
--- error_code: 403
--- wait: 0.05
--- error_log eval
[qr/access forbidden by rule, client: 127\.0\.0\.1/, "forbidden"]

=== TEST 9: raw_request
--- config
    location = /t { return 200 "raw\n"; }
--- raw_request eval
"GET /t HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n
--- response_body
raw

=== TEST 10: raw_request sent in pieces
--- config
    location = /t { return 200 "pieces\n"; }
--- raw_request eval
["GET /t HTTP/1.1\r\nHo", "st: localhost\r\nConnection: close\r\n\r\n"]
--- raw_request_middle_delay: 20ms
--- response_body
pieces

=== TEST 11: chunked response through proxy_pass is de-chunked
--- http_config
    upstream self { server 127.0.0.1:$TEST_NGINX_SERVER_PORT; }
--- config
    location = /up {
        sub_filter_types *;
        sub_filter 'hello' 'HELLO';
        sub_filter_once off;
        return 200 "hello world, hello\n";
    }
    location = /proxied {
        proxy_pass http://self/up;
        proxy_http_version 1.1;
        chunked_transfer_encoding on;
    }
--- request
GET /proxied
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
HELLO world, HELLO

=== TEST 12: user_files served by the default root location
--- user_files
>>> foo.txt
hello from foo
>>> sub/bar.html
<p>bar</p>
--- request eval
["GET /foo.txt", "GET /sub/bar.html"]
--- response_body eval
["hello from foo\n", "<p>bar</p>\n"]

=== TEST 13: POST body gets Content-Length; more_headers are sent
--- config
    location = /echo {
        return 200 "len=$http_content_length x=$http_x_test host=$host conn=$http_connection\n";
    }
--- more_headers
X-Test: abc
--- request
POST /echo
hello world
--- response_body
len=11 x=abc host=localhost conn=close

=== TEST 14: more_headers eval per request, Host override
--- config
    location = /echo { return 200 "x=$http_x_test host=$host\n"; }
--- request eval
["GET /echo", "GET /echo"]
--- more_headers eval
["X-Test: 1", "X-Test: 2\nHost: example.com"]
--- response_body eval
["x=1 host=localhost\n", "x=2 host=example.com\n"]

=== TEST 15: HEAD has no body
--- config
    location = /t { return 200 "hello\n"; }
--- request
HEAD /t
--- response_headers
Content-Length: 6
--- response_body

=== TEST 16: init runs before nginx starts (sets an env var used by config)
--- init
$ENV{TEST_NGINX_FROM_INIT} = 'set-by-init';
--- config
    location = /t { return 200 "$TEST_NGINX_FROM_INIT\n"; }
--- request
GET /t
--- response_body
set-by-init

=== TEST 17: main_config and post_main_config land in the main context
--- main_config
    worker_rlimit_nofile 4096;
--- post_main_config
    thread_pool scenario_pool threads=2;
--- config
    location = /t { return 200 "main\n"; }
--- request
GET /t
--- response_body
main

=== TEST 18: abort: a client timeout is not a failure
--- config eval
"location = /slow { limit_rate 1; limit_rate_after 500; return 200 '" . ("x" x 1000) . "'; }"
--- request
GET /slow
--- timeout: 300ms
--- abort
--- response_body_like: ^x+$

=== TEST 19: 101 Switching Protocols keeps the upgraded bytes as body
--- config
    location = /ws {
        proxy_pass http://127.0.0.1:$TEST_NGINX_WS_PORT;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
--- request
GET /ws
--- more_headers
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Sec-WebSocket-Version: 13
Origin: http://localhost
--- error_code: 101
--- response_headers
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
--- response_body eval
"\x81\x07welcome"
--- timeout: 300ms
--- abort

=== TEST 20: response_body_unlike and shutdown_error_log
--- config
    location = /t { return 200 "fine\n"; }
--- request
GET /t
--- response_body_unlike: error
--- shutdown_error_log
signal 3 (SIGQUIT) received

=== TEST 21: a SKIP block is reported as skipped
--- SKIP
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked

=== TEST 22: skip_eval skips the given number of tests
--- skip_eval: 2: 1
--- config
    location = /t { return 500; }
--- request
GET /t
--- response_body
never checked
