package Test::Scenario::Mini;

# A small runner for .t files written in Test::Nginx::Socket's data-driven
# format (=== TEST blocks with --- sections), used when Test::Nginx is not
# installed.  It is our own implementation on top of Test::Base; see the
# POD at the end for the supported sections and how tests are counted.
#
# We use "use Test::Base -base" (no source filter) rather than "-Base", so
# the subs below are ordinary subs: the exported functions take their
# arguments as written.

use strict;
use warnings;

use Test::Base -base;          # makes us a Test::Base subclass and the default class
use Test::More ();
use Test::Builder ();
use Test::Base::Filter ();
use List::Util qw(shuffle);
use Time::HiRes qw(sleep time);
use Test::Scenario::Util ();

our $VERSION = '0.01';

# Exported in addition to Test::Base's exports (plan, is, like, unlike,
# ok, is_deeply, diag, pass, fail, skip, blocks, ...).
our @EXPORT = qw(
    run_tests repeat_each no_shuffle no_long_string
    master_on master_off master_process_enabled workers worker_connections
    log_level env_to_nginx no_root_location server_name server_port
    server_root html_dir timeout check_accum_error_log
    add_block_preprocessor bail_out
);

# Runner state (package variables so tests may inspect them).
our $RepeatEach     = 1;
our $NoShuffle      = $ENV{TEST_NGINX_NO_SHUFFLE} ? 1 : 0;
our $NoLongString   = 0;
our $Timeout        = 3;
our $CheckAccumLog  = 0;
our @BlockPreprocessors;
our $RunTestsCalled = 0;
my  $LoadPid = $$;

my $Settings = Test::Scenario::Util::settings();

# Sections the runner understands.  Anything in %Unsupported (sections of
# Test::Nginx::Socket that we do not implement) makes the block fail
# loudly instead of passing vacuously; other unknown sections are ignored.
my %Unsupported = map { $_ => 1 } qw(
    pipelined_requests tcp_listen tcp_query tcp_query_len tcp_reply
    tcp_no_close tcp_shutdown udp_listen udp_query udp_reply stap stap_out
    stap_out_like stap_out_unlike access_log no_access_log
    response_body_filters response_body_json_sort curl http2 http3
    ignore_response skip_openssl skip_nginx2 skip_slave shutdown charset
    request_eval response_body_eval post_setup_server_root
    raw_response_headers_unlike_eval must_die error_log_file
    http09 server_addr_for_client
);

# ---------------------------------------------------------------------------
# Configuration functions (Test::Nginx::Socket-compatible names)
# ---------------------------------------------------------------------------

sub repeat_each {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub no_shuffle         { $NoShuffle = 1 }
sub no_long_string     { $NoLongString = 1 }
sub master_on          { $Settings->{master} = 1 }
sub master_off         { $Settings->{master} = 0 }
sub master_process_enabled {
    $Settings->{master} = shift if @_;
    return $Settings->{master};
}
sub no_root_location   { $Settings->{no_root_location} = 1 }
sub check_accum_error_log { $CheckAccumLog = 1 }

sub workers {
    $Settings->{workers} = shift if @_;
    return $Settings->{workers};
}

sub worker_connections {
    $Settings->{worker_connections} = shift if @_;
    return $Settings->{worker_connections};
}

# log_level('info'): error_log level of the generated nginx.conf (default
# $TEST_NGINX_LOG_LEVEL or debug).
sub log_level {
    $Settings->{log_level} = shift if @_;
    return $Settings->{log_level};
}

# env_to_nginx('FOO', 'BAR=1'): "env" directives in the main context.
sub env_to_nginx { push @{ $Settings->{env} }, @_ }

sub server_name {
    $Settings->{server_name} = shift if @_;
    return $Settings->{server_name};
}

sub server_port { return Test::Scenario::Util::nginx_port() }
sub server_root { return Test::Scenario::Util::nginx_servroot() }
sub html_dir    { return Test::Scenario::Util::nginx_html_dir() }

# timeout(N): default client timeout in seconds for all blocks.
sub timeout {
    $Timeout = shift if @_;
    return $Timeout;
}

# add_block_preprocessor(sub { my $block = shift; ... }): called for every
# block before it runs.
sub add_block_preprocessor { push @BlockPreprocessors, @_ }

sub bail_out { Test::More::BAIL_OUT(join '', @_) }

# ---------------------------------------------------------------------------
# Test::Base customisation
# ---------------------------------------------------------------------------

# Test::Base drops blocks with a SKIP section; we keep them so run_tests()
# can report their tests as skipped (they are still counted by blocks()).
# ONLY and LAST keep their Test::Base meaning.
sub _choose_blocks {
    my $self = shift;
    my @blocks;
    for my $hunk (@_) {
        my $block = $self->_make_block($hunk);
        if (exists $block->{ONLY}) {
            Test::More::diag("I found ONLY: maybe you're debugging?")
                unless $self->_no_diag_on_only;
            return [$block];
        }
        push @blocks, $block;
        last if exists $block->{LAST};
    }
    return \@blocks;
}

{
    # Our filter class: the "eval" filter records errors in the block
    # (Test::Base's would silently use the error text as the value).
    package Test::Scenario::Mini::Filter;
    our @ISA = ('Test::Base::Filter');

    sub eval {
        my $self = shift;
        my $code = shift;
        my @ret = CORE::eval($code);
        if ($@) {
            push @{ $self->current_block->{_scenario_errors} },
                "an eval section failed: $@";
            return '';
        }
        return @ret;
    }
}

# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

sub run_tests {
    my $tb = Test::More->builder;

    # plan() without arguments is a no-op in Test::Builder, but Test::Base's
    # wrapper records that a plan exists, which stops Test::Base's END
    # block from running run_compare() when the file uses done_testing
    # (or no plan at all, see the END block below).
    $tb->plan();
    $RunTestsCalled = 1;

    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        _run_block($block);
    }
    Test::Scenario::Util::stop_nginx() unless $ENV{TEST_NGINX_NO_CLEAN};
    return;
}

END {
    # A file without any plan gets done_testing() after its tests, so
    # "run_tests();" alone is a complete test file.
    if ($RunTestsCalled && $$ == $LoadPid && $? == 0) {
        my $tb = Test::More->builder;
        $tb->done_testing unless $tb->has_plan;
    }
}

# One test, honouring the block's mode: 'run' executes $code (which must
# emit exactly one test), 'skip' records a skip and 'fail' a failure that
# carries the reason the block could not run (reported once per block).
sub _t {
    my ($ctx, $desc, $code) = @_;
    my $tb = Test::More->builder;
    my $label = "$ctx->{name} - $desc";
    if ($ctx->{mode} eq 'skip') {
        $tb->skip("$label: $ctx->{reason}");
        return;
    }
    if ($ctx->{mode} eq 'fail') {
        $tb->ok(0, $label);
        $tb->diag($ctx->{reported}++
            ? '  (this block could not run, see its first failure)'
            : "  this block could not run:\n" . _indent($ctx->{reason}));
        return;
    }
    my $before = $tb->current_test;
    my $ok = eval { $code->($label); 1 };
    if (!$ok) {
        my $err = $@;
        # The check died (bad section value...): record it as a failure
        # unless it already emitted its test.
        $tb->ok(0, $label) if $tb->current_test == $before;
        $tb->diag(_indent("error: $err"));
    }
}

sub _indent {
    my ($text) = @_;
    $text //= '';
    $text =~ s/\n+\z//;
    $text =~ s/^/    /mg;
    return $text;
}

# Replace $TEST_NGINX_FOO with $ENV{TEST_NGINX_FOO} (dies if undefined).
sub _expand { return Test::Scenario::Util::expand_env(@_) }

# Expected values also expand $ServerPort like Test::Nginx.
sub _expand_expected {
    my ($text) = @_;
    return $text if !defined $text || ref $text;
    $text = _expand($text);
    my $port = Test::Scenario::Util::nginx_port();
    $text =~ s/\$ServerPort\b/$port/g;
    return $text;
}

# The value of an expectation for request $i: with several requests it must
# be an array ref with one entry per request.
sub _indexed {
    my ($ctx, $section, $value, $i) = @_;
    if ($ctx->{need_array}) {
        die "--- $section: the block sends several requests, so this section "
            . "must be an array ref with one entry per request\n"
            unless ref $value eq 'ARRAY';
        return $value->[$i];
    }
    return ref $value eq 'ARRAY' ? $value->[0] : $value;
}

# Parse "1.5", "2s" or "500ms" into seconds.
sub _parse_time {
    my ($v) = @_;
    return undef unless defined $v && $v =~ /\S/;
    return $1 / 1000 if $v =~ /^\s*(\d+(?:\.\d+)?)\s*ms\s*$/;
    return $1        if $v =~ /^\s*(\d+(?:\.\d+)?)\s*s?\s*$/;
    die "invalid time value \"$v\" (want N, Ns or Nms)\n";
}

# A list of log patterns: lines of a string (literal substrings), or a
# Regexp, or an array ref of Regexps / literal strings.
sub _patterns {
    my ($v) = @_;
    return () unless defined $v;
    return ($v) if ref $v eq 'Regexp';
    return grep { defined } @$v if ref $v eq 'ARRAY';
    my $s = $v;
    chomp $s;
    return grep { length } split /\n+/, $s;
}

sub _pat_match {
    my ($pat, $line) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub _fmt {
    my ($s) = @_;
    $s = "$s";
    chomp $s;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# Build the list of requests of a block: each is
# { pieces => [bytes...], delay => seconds, head => bool }.
sub _requests {
    my ($ctx) = @_;
    my $block = $ctx->{block};

    if (defined(my $raw = $block->raw_request)) {
        my @pieces = ref $raw eq 'ARRAY'
            ? map { ref $_ eq 'HASH' ? $_->{value} : $_ } @$raw
            : ($raw);
        @pieces = map { _expand($_) } @pieces;
        my $delay = _parse_time($block->raw_request_middle_delay) // 0.01;
        return ({ pieces => \@pieces, delay => $delay,
                  head => (join('', @pieces) =~ /\A\s*HEAD\s/ ? 1 : 0) });
    }

    my $request = $block->request;
    die "the block has no --- request or --- raw_request section\n"
        unless defined $request;
    my @list = ref $request eq 'ARRAY' ? @$request : ($request);
    die "--- request eval returned an empty list\n" unless @list;
    my $more = $block->more_headers;
    my @reqs;
    for my $i (0 .. $#list) {
        die "--- request: request $i must be a string (packet arrays are "
            . "not supported, use --- raw_request eval [pieces])\n"
            if ref $list[$i];
        my $mh = ref $more eq 'ARRAY'
            ? ($more->[$i] // die "--- more_headers lacks an entry for request $i\n")
            : ($more // '');
        push @reqs, _build_request(_expand($list[$i]), _expand($mh));
    }
    return @reqs;
}

# "METHOD /uri [HTTP/x.y]" on the first line, the body on the next lines.
sub _build_request {
    my ($text, $more_headers) = @_;
    $text =~ s/\A(?:[ \t]*#[^\n]*\n|\s+)+//;   # leading comments and blanks
    my ($first, $body) = split /\r?\n/, $text, 2;
    die "--- request: the request line is empty\n"
        unless defined $first && $first =~ /\S/;
    my ($method, $uri, $version, $extra) = split ' ', $first;
    die "--- request: invalid request line \"$first\"\n" if defined $extra;
    $uri     //= '/';
    $version //= 'HTTP/1.1';

    my (@headers, %have, $chunked);
    for my $line (split /\r?\n/, $more_headers // '') {
        next if $line =~ /^\s*(?:#|$)/;
        my ($k, $v) = split /:\s*/, $line, 2;
        $v //= '';
        $have{lc $k} = 1;
        $chunked = 1 if lc $k eq 'transfer-encoding' && $v =~ /chunked/i;
        push @headers, "$k: $v\r\n";
    }
    my $head = "$method $uri $version\r\n";
    $head .= "Host: $Settings->{server_name}\r\n" unless $have{host};
    $head .= "Connection: close\r\n"              unless $have{connection};
    $head .= join '', @headers;
    $body //= '';
    if (length $body && !$chunked && !$have{'content-length'}) {
        # Like Test::Nginx: surrounding whitespace of the body is dropped
        # when the harness computes Content-Length.
        $body =~ s/\A\s+|\s+\z//g;
        $head .= 'Content-Length: ' . length($body) . "\r\n";
    }
    return { pieces => ["$head\r\n$body"], delay => 0,
             head => (uc $method eq 'HEAD' ? 1 : 0) };
}

# Parse a --- response_headers value into [name, value-or-undef] pairs
# ("!Name" means the header must be absent).
sub _header_spec {
    my ($spec) = @_;
    return () unless defined $spec;
    return map { [$_, $spec->{$_}] } sort keys %$spec if ref $spec eq 'HASH';
    die "--- response_headers: expected a string or a hash ref\n" if ref $spec;
    my @out;
    for my $line (split /\n/, $spec) {
        next if $line =~ /^\s*(?:#|$)/;
        if ($line =~ /^\s*!\s*(\S+?)\s*:?\s*$/) {
            push @out, [$1, undef];
        } elsif ($line =~ /^\s*([^:\s]+)\s*:\s?(.*?)\s*$/) {
            push @out, [$1, $2];
        } else {
            die "--- response_headers: cannot parse line \"$line\"\n";
        }
    }
    return @out;
}

sub _nginx_version_cmp {
    my ($op, $want) = @_;
    my @have = Test::Scenario::Util::nginx_version();
    die "cannot determine the nginx version\n" unless @have;
    my $canon = sub { sprintf '%03d%03d%03d', (@_, 0, 0, 0)[0 .. 2] };
    my ($h, $w) = ($canon->(@have), $canon->(split /\./, $want));
    return $op eq '<'  ? $h lt $w : $op eq '<=' ? $h le $w
         : $op eq '>'  ? $h gt $w : $op eq '>=' ? $h ge $w
         : $op eq '==' ? $h eq $w : $op eq '!=' ? $h ne $w
         : die "skip_nginx: unknown operator $op\n";
}

# "--- skip_eval: N: perl-expr" and "--- skip_nginx: N: < 1.21.0" skip N
# tests (and do not run the block) when the condition holds.
sub _skip_count {
    my ($block) = @_;
    if (defined(my $v = $block->skip_eval)) {
        my ($n, $expr) = $v =~ /^\s*(\d+)\s*:\s*(.*)$/s
            or die "--- skip_eval: expected \"N: perl expression\"\n";
        my $r = eval "package main; no strict; $expr";
        die "--- skip_eval: $@" if $@;
        return ($n, "skip_eval: $expr") if $r;
    }
    if (defined(my $v = $block->skip_nginx)) {
        my ($n, $op, $ver) = $v =~ /^\s*(\d+)\s*:\s*([<>=!]=?)\s*(\d+(?:\.\d+)*)\s*$/
            or die "--- skip_nginx: expected \"N: OP VERSION\"\n";
        return ($n, "nginx $op $ver") if _nginx_version_cmp($op, $ver);
    }
    return;
}

sub _run_block {
    my ($block) = @_;
    my $tb = Test::More->builder;
    my $ctx = {
        block    => $block,
        name     => "$0 " . $block->name,
        mode     => 'run',
        reason   => undef,
        reported => 0,
        log_pos  => 0,
        started  => 0,
    };
    my $fail = sub {
        return if $ctx->{mode} ne 'run';
        @$ctx{qw(mode reason)} = ('fail', $_[0]);
    };

    if (exists $block->{SKIP}) {
        @$ctx{qw(mode reason)} = ('skip', 'SKIP section');
    } else {
        my @skip = eval { _skip_count($block) };
        if ($@) {
            $fail->($@);
        } elsif (@skip) {
            $tb->skip("$ctx->{name} - $skip[1]") for 1 .. $skip[0];
            return;
        }
    }

    if (my @unsupported = grep { $Unsupported{$_} } @{ $block->{_section_order}[0] || [] }) {
        $fail->("unsupported section(s) for Test::Scenario::Mini: @unsupported");
    }
    $fail->(join '', @{ $block->{_scenario_errors} }) if $block->{_scenario_errors};

    my @reqs = eval { _requests($ctx) };
    if ($@ || !@reqs) {
        $fail->($@ || 'no request');
        @reqs = ({});
    }
    $ctx->{need_array} = @reqs > 1;

    $ctx->{timeout} = eval { _parse_time($block->timeout) } // $Timeout;
    $fail->($@) if $@;
    my $wait = eval { _parse_time($block->wait) } // 0;
    $fail->($@) if $@;

    if ($ctx->{mode} eq 'run' && defined(my $init = $block->init)) {
        # Perl code run before nginx starts, in package main.
        eval "package main; no strict; $init; 1" or $fail->("--- init failed: $@");
    }

    if ($ctx->{mode} eq 'run') {
        my %conf = (name => $ctx->{name});
        eval {
            # Util expands $TEST_NGINX_* in these and in user_files.
            for my $s (qw(main_config post_main_config http_config config user_files)) {
                $conf{$s} = $block->$s if defined $block->$s;
            }
            $conf{log_level} = $block->log_level if defined $block->log_level;
            Test::Scenario::Util::start_nginx(\%conf);
            $ctx->{started} = 1;
            1;
        } or $fail->($@);
    }

    for my $rep (0 .. $RepeatEach - 1) {
        for my $i (0 .. $#reqs) {
            my $res;
            if ($ctx->{mode} eq 'run') {
                $res = _send($ctx, $reqs[$i]);
            }
            _check_response($ctx, $res, $i, $rep);
            if ($i < $#reqs) {
                sleep $wait if $wait && $ctx->{mode} eq 'run';
                _check_error_log($ctx, $rep);
            }
        }
        sleep $wait if $wait && $ctx->{mode} eq 'run';
        _check_error_log($ctx, $rep);
    }

    # Stop nginx after the block.  With TEST_NGINX_NO_CLEAN it keeps running
    # (the next block's start stops it), so the last one stays up for
    # inspection - unless the block checks what nginx logs on shutdown.
    my $shutdown_checks = defined $block->shutdown_error_log
        || defined $block->no_shutdown_error_log;
    if ($ctx->{started} && ($shutdown_checks || !$ENV{TEST_NGINX_NO_CLEAN})) {
        Test::Scenario::Util::stop_nginx();
    }
    _check_log_patterns($ctx, 'shutdown_error_log', 'no_shutdown_error_log', undef)
        if $shutdown_checks;
}

# Send one request and parse the response; reports a client timeout (and a
# broken chunked body) as an extra failure like Test::Nginx does, unless
# the block has --- abort.
sub _send {
    my ($ctx, $req) = @_;
    my $x = Test::Scenario::Util::http_exchange(
        $req->{pieces}, timeout => $ctx->{timeout}, delay => $req->{delay});
    my $res = Test::Scenario::Util::parse_http_response($x->{raw}, head => $req->{head});
    $res->{transport_error} = $x->{error};
    $res->{timed_out} = $x->{timed_out};
    $res->{request} = join '', @{ $req->{pieces} };
    my $abort = defined $ctx->{block}->abort;
    my $tb = Test::More->builder;
    if ($x->{connect_failed}) {
        $tb->ok(0, "$ctx->{name} - ERROR: $x->{error}");
    } elsif ($x->{timed_out} && !$abort) {
        $tb->ok(0, "$ctx->{name} - ERROR: client socket timed out after $ctx->{timeout}s");
        $tb->diag(_indent("received so far:\n" . _fmt_raw($x->{raw})));
    } elsif (defined $res->{error} && $res->{error} =~ /chunk/ && !$x->{timed_out}) {
        $tb->ok(0, "$ctx->{name} - ERROR: $res->{error}");
        $tb->diag(_indent("response:\n" . _fmt_raw($x->{raw})));
    }
    return $res;
}

sub _fmt_raw {
    my ($raw) = @_;
    $raw //= '';
    my $s = length $raw > 2000 ? substr($raw, 0, 2000) . '...(truncated)' : $raw;
    $s =~ s/([\x00-\x08\x0b-\x1f\x7f])/sprintf '\\x%02x', ord $1/ge;
    return length $s ? $s : '(nothing)';
}

sub _check_response {
    my ($ctx, $res, $i, $rep) = @_;
    my $block = $ctx->{block};
    my $tb = Test::More->builder;
    my $where = "(repeat $rep, req $i)";

    # Status: always one test per request.
    _t($ctx, "status code ok $where", sub {
        my ($label) = @_;
        my $got = $res && defined $res->{status} ? $res->{status} : '';
        my $ok;
        if (defined $block->error_code_like) {
            my $re = _indexed($ctx, 'error_code_like', $block->error_code_like, $i);
            $ok = Test::More::like($got, qr/$re/sm, $label);
        } else {
            my $want = defined $block->error_code
                ? _indexed($ctx, 'error_code', $block->error_code, $i) : 200;
            $ok = Test::More::is($got, $want, $label);
        }
        return if $ok || !$res;
        my $pid = Test::Scenario::Util::nginx_pid();
        $tb->diag(_indent("response:\n" . _fmt_raw($res->{raw})
            . (defined $res->{transport_error} ? "\nclient error: $res->{transport_error}" : '')
            . (defined $pid && !Test::Scenario::Util::_alive($pid)
               ? "\nnginx (pid $pid) is not running any more: did it crash?" : '')));
    });

    for my $kind (qw(like unlike)) {
        my $section = "raw_response_headers_$kind";
        next unless defined $block->$section;
        _t($ctx, "raw response headers $kind $where", sub {
            my ($label) = @_;
            my $re = _indexed($ctx, $section, $block->$section, $i);
            my $got = $res ? $res->{raw_headers} : '';
            $kind eq 'like' ? Test::More::like($got, qr/$re/s, $label)
                            : Test::More::unlike($got, qr/$re/s, $label);
        });
    }

    # Headers: one test per line of the spec (response_headers wins over
    # response_headers_like when both are present, as in Test::Nginx).
    my ($hsection) = grep { defined $block->$_ } qw(response_headers response_headers_like);
    if ($hsection) {
        my @spec = eval { _header_spec(_indexed($ctx, $hsection, $block->$hsection, $i)) };
        if (my $err = $@) {
            _t($ctx, "$hsection $where", sub { die $err });
        }
        for my $h (@spec) {
            my ($name, $want) = @$h;
            if ($hsection eq 'response_headers_like') {
                _t($ctx, "header $name like ok $where", sub {
                    die "--- response_headers_like: \"!$name\" is not supported\n"
                        unless defined $want;
                    my $got = $res ? Test::Scenario::Util::header_value($res, $name) : undef;
                    Test::More::like($got // '', qr/^$want$/, $_[0]);
                });
            } elsif (!defined $want) {
                _t($ctx, "header $name absent $where", sub {
                    my $got = $res ? $res->{raw_headers} : '';
                    Test::More::unlike($got, qr/^\s*\Q$name\E\s*:/mi, $_[0]);
                });
            } else {
                _t($ctx, "header $name ok $where", sub {
                    my $got = $res ? Test::Scenario::Util::header_value($res, $name) : undef;
                    Test::More::is($got // '', _expand_expected($want), $_[0]);
                });
            }
        }
    }

    my $body = $res ? $res->{body} : undef;
    if (defined $block->response_body) {
        _t($ctx, "response_body - response is expected $where", sub {
            my ($label) = @_;
            my $want = _expand_expected(_indexed($ctx, 'response_body', $block->response_body, $i));
            my $ok;
            if (ref $want eq 'Regexp') {
                $ok = Test::More::like($body, $want, $label);
            } elsif ($NoLongString || !eval { require Test::LongString; 1 }) {
                $ok = Test::Base::is($body, $want, $label);
            } else {
                $ok = Test::LongString::is_string($body, $want, $label);
            }
            $tb->diag("    note: $res->{error}") if !$ok && $res && defined $res->{error};
        });
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $kind = defined $block->response_body_like ? 'like' : 'unlike';
        my $section = "response_body_$kind";
        _t($ctx, "response_body_$kind - response is expected $where", sub {
            my ($label) = @_;
            my $re = _indexed($ctx, $section, $block->$section, $i);
            $re = _expand_expected($re) unless ref $re;
            $kind eq 'like' ? Test::More::like($body, qr/$re/s, $label)
                            : Test::More::unlike($body, qr/$re/s, $label);
        });
    }
}

# Lines appended to error.log since the previous check of this block.
sub _new_log_lines {
    my ($ctx) = @_;
    my $pos = $CheckAccumLog ? 0 : $ctx->{log_pos};
    my $data = Test::Scenario::Util::read_error_log(\$pos);
    $ctx->{log_pos} = $pos;
    return [split /^/m, $data];
}

sub _check_error_log {
    my ($ctx, $rep) = @_;
    my $block = $ctx->{block};
    my $lines;
    if ($ctx->{mode} eq 'run') {
        sleep 0.02;   # let nginx finish log-phase writes
        $lines = _new_log_lines($ctx);
    }

    if (defined(my $pat = $block->grep_error_log)) {
        _t($ctx, "grep_error_log_out (repeat $rep)", sub {
            my ($label) = @_;
            $pat = $pat->[$rep] if ref $pat eq 'ARRAY';
            $pat =~ s/\n\z// unless ref $pat;
            my $want = $block->grep_error_log_out;
            die "--- grep_error_log needs --- grep_error_log_out\n" unless defined $want;
            $want = $want->[$rep] if ref $want eq 'ARRAY';
            $want = _expand_expected($want);
            my $got = '';
            for my $line (@$lines) {
                if (ref $pat) {
                    $got .= "$&\n" if $line =~ $pat && $& !~ /\n/;
                } elsif (index($line, $pat) >= 0) {
                    $got .= "$pat\n";
                }
            }
            ref $want eq 'Regexp' ? Test::More::like($got, $want, $label)
                                  : Test::Base::is($got, $want, $label);
        });
    }

    _check_log_patterns($ctx, 'error_log', 'no_error_log', $rep, $lines);

    # Like Test::Nginx, point out alerts nobody asked about.
    if ($lines) {
        my $asked = join "\n", map { ref $_ ? "$_" : $_ }
            _patterns($block->error_log), _patterns($block->no_error_log);
        for my $level (qw(alert crit emerg)) {
            next if index($asked, "[$level") >= 0;
            for my $line (grep { /\[$level\]/ } @$lines) {
                Test::More::diag("WARNING: $ctx->{name} - " . _fmt($line));
            }
        }
    }
}

# Check "must match" and "must not match" pattern sections against the log
# lines ($lines, or the lines not read yet).  One test per pattern.
sub _check_log_patterns {
    my ($ctx, $yes_section, $no_section, $rep, $lines) = @_;
    my $block = $ctx->{block};
    my $tag = defined $rep ? " (repeat $rep)" : '';
    if ($ctx->{mode} eq 'run' && !$lines) {
        $lines = _new_log_lines($ctx);
    }

    my @yes = _patterns($block->$yes_section);
    if (@yes && $ctx->{mode} eq 'run') {
        # Give nginx up to a second to write lines we are waiting for.
        my $deadline = time + 1;
        while (time < $deadline) {
            my @missing = grep { my $p = $_; !grep { _pat_match($p, $_) } @$lines } @yes;
            last unless @missing;
            sleep 0.05;
            push @$lines, @{ _new_log_lines($ctx) };
        }
    }
    for my $pat (@yes) {
        my $p = _fmt($pat);
        _t($ctx, "$yes_section: pattern \"$p\" matches a line in error.log$tag", sub {
            my ($label) = @_;
            my $ok = Test::More::ok((grep { _pat_match($pat, $_) } @$lines) ? 1 : 0, $label);
            if (!$ok) {
                my @tail = @$lines > 20 ? @$lines[-20 .. -1] : @$lines;
                Test::More::diag(_indent("pattern not found in the "
                    . scalar(@$lines) . " new line(s) of error.log; last ones:\n"
                    . join('', @tail)));
            }
        });
    }

    for my $pat (_patterns($block->$no_section)) {
        my $p = _fmt($pat);
        _t($ctx, "$no_section: pattern \"$p\" does not match any line in error.log$tag", sub {
            my ($label) = @_;
            my @hits = grep { _pat_match($pat, $_) } @$lines;
            my $ok = Test::More::ok(!@hits, $label);
            Test::More::diag(_indent("matching line(s):\n" . join '', @hits[0 .. ($#hits > 4 ? 4 : $#hits)]))
                unless $ok;
        });
    }
}

1;

__END__

=head1 NAME

Test::Scenario::Mini - a small Test::Nginx::Socket-compatible runner

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Scenario;      # Test::Nginx::Socket if installed, else this
    repeat_each(1);
    plan tests => repeat_each() * (blocks() * 3);
    no_shuffle();
    run_tests();
    __DATA__
    === TEST 1: hello
    --- config
        location = /t { return 200 "hi\n"; }
    --- request
    GET /t
    --- response_body
    hi
    --- no_error_log
    [error]

=head1 FUNCTIONS

run_tests(), repeat_each([N]), no_shuffle(), no_long_string(), master_on(),
master_off(), master_process_enabled([bool]), workers([N]),
worker_connections([N]), log_level([level]), env_to_nginx(@names),
no_root_location(), server_name([name]), server_port(), server_root(),
html_dir(), timeout([seconds]), check_accum_error_log(),
add_block_preprocessor(sub {...}), bail_out(@msg); plus Test::Base's
exports (plan, blocks, is, like, unlike, ok, is_deeply, diag, pass, fail,
skip, ...).

=head1 SECTIONS

Configuration: main_config, post_main_config, http_config, config, init
(Perl run in package main before nginx starts), user_files, log_level.
Requests: request (string or C<eval> array: one connection per request),
raw_request (string or C<eval> array of pieces sent on one connection,
raw_request_middle_delay between them), more_headers (string or array per
request), timeout (idle client timeout, C<N>, C<Ns> or C<Nms>, default 3),
abort, wait.
Expectations: error_code (default 200), error_code_like, response_body,
response_body_like, response_body_unlike, response_headers (C<!Name> =
absent), response_headers_like (anchored regexes), raw_response_headers_like,
raw_response_headers_unlike, error_log, no_error_log, grep_error_log,
grep_error_log_out, shutdown_error_log, no_shutdown_error_log.
Control: ONLY, LAST, SKIP, skip_eval (C<N: expr>), skip_nginx (C<N: E<lt> 1.21.0>).
Any section may use Test::Base filters such as C<eval> or C<chomp>.

=head1 COUNTING

Per request: 1 (status) + 1 per raw_response_headers_(un)like + 1 per
response_headers line (or response_headers_like line) + 1 for the body
check (response_body, else response_body_like, else response_body_unlike).
Per request, after it: 1 for grep_error_log + 1 per error_log pattern + 1
per no_error_log pattern, checked against the lines logged since the
previous check.  Per block: 1 per shutdown_error_log / no_shutdown_error_log
pattern.  All of it times repeat_each.  A client timeout without
C<--- abort>, a refused connection or a broken chunked body add one failing
test.  A SKIP block emits the same number of skipped tests; a block that
cannot run (nginx fails to start, bad section) emits the same number of
failures.

=cut
