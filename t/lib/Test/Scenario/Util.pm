package Test::Scenario::Util;

# Low-level helpers of the Test::Scenario test harness:
#
#   * the nginx.conf generator and the nginx process manager (start, wait
#     for the port, stop with QUIT/TERM/KILL), shared by the data-driven
#     runner Test::Scenario::Mini and by flow tests written in plain Perl;
#   * a raw HTTP/1.1 client over IO::Socket::INET (no LWP), with a response
#     parser that de-chunks bodies and keeps 101 upgrade bytes;
#   * a small WebSocket client built on Protocol::WebSocket;
#   * psql / redis-cli wrappers and JSON helpers for flow tests.
#
# This module deliberately does not load Test::Base, so a flow test that
# only uses it is an ordinary Test::More script.

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA ();
use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Spec;
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();
use Time::HiRes qw(sleep time);

our $VERSION = '0.01';

our @EXPORT = qw(
    start_nginx stop_nginx http ws_connect
    pg_exec redis_cmd json_decode json_encode
);

our @EXPORT_OK = qw(
    make_token make_user make_session expand_env http_raw error_log_data nginx_pid nginx_port nginx_servroot
    nginx_html_dir nginx_binary gen_nginx_conf parse_http_response
    ws_events ws_say
);

our %EXPORT_TAGS = (all => [@EXPORT, @EXPORT_OK]);

# ---------------------------------------------------------------------------
# Environment defaults
# ---------------------------------------------------------------------------

# TEST_NGINX_PORT is the port nginx listens on (127.0.0.1 only);
# TEST_NGINX_SERVER_PORT is always made equal to it so that configs written
# for Test::Nginx (which use $TEST_NGINX_SERVER_PORT) work unchanged.
$ENV{TEST_NGINX_PORT} = 1984
    unless defined $ENV{TEST_NGINX_PORT} && $ENV{TEST_NGINX_PORT} =~ /^\d+$/;
$ENV{TEST_NGINX_SERVER_PORT} = $ENV{TEST_NGINX_PORT};

# The server root is made absolute once, so that a chdir in a test does not
# move it, and exported for configs that want to refer to it.
$ENV{TEST_NGINX_SERVROOT} = File::Spec->rel2abs(
    defined $ENV{TEST_NGINX_SERVROOT} && length $ENV{TEST_NGINX_SERVROOT}
        ? $ENV{TEST_NGINX_SERVROOT} : 't/servroot');
$ENV{TEST_NGINX_SERVROOT} =~ s{/+\z}{};
$ENV{TEST_NGINX_HTML_DIR} = "$ENV{TEST_NGINX_SERVROOT}/html";

# Global defaults for the generated nginx.conf.  Test::Scenario::Mini's
# master_on(), workers(), log_level() ... change these; start_nginx()'s hash
# ref argument can override any of them for one start.
our %Settings = (
    master             => 0,
    workers            => 1,
    worker_connections => 1024,
    log_level          => $ENV{TEST_NGINX_LOG_LEVEL} || 'debug',
    env                => [],
    server_name        => 'localhost',
    no_root_location   => 0,
);

sub settings { return \%Settings }

sub nginx_port     { return $ENV{TEST_NGINX_PORT} }
sub nginx_servroot { return $ENV{TEST_NGINX_SERVROOT} }
sub nginx_html_dir { return nginx_servroot() . '/html' }
sub error_log_path { return nginx_servroot() . '/logs/error.log' }
sub conf_path      { return nginx_servroot() . '/conf/nginx.conf' }
sub pid_path       { return nginx_servroot() . '/logs/nginx.pid' }

# Absolute path of the nginx binary, or undef when it cannot be found.
# TEST_NGINX_BINARY may be a path or a bare name looked up in PATH.
sub nginx_binary {
    my $bin = $ENV{TEST_NGINX_BINARY};
    $bin = 'nginx' unless defined $bin && length $bin;
    if ($bin !~ m{/}) {
        for my $dir (split /:/, $ENV{PATH} // '') {
            next unless length $dir;
            return "$dir/$bin" if -f "$dir/$bin" && -x _;
        }
        return undef;
    }
    return (-f $bin && -x _) ? File::Spec->rel2abs($bin) : undef;
}

# Output of "nginx -V", cached per binary.
my %NginxV;
sub nginx_V {
    my $bin = nginx_binary() // return '';
    # "nginx -V" prints on stderr.
    return $NginxV{$bin} //= _capture_stderr($bin, '-V');
}

# nginx version as a list (1, 22, 1), or () when unknown.
sub nginx_version {
    my ($v) = nginx_V() =~ m{nginx version: \S+?/(\d+(?:\.\d+)*)};
    return defined $v ? split(/\./, $v) : ();
}

sub _capture_stderr {
    my @cmd = @_;
    my $tmp = File::Spec->catfile(File::Spec->tmpdir, "scenario-stderr-$$.txt");
    my $pid = fork;
    return '' unless defined $pid;
    if (!$pid) {
        open STDIN,  '<', '/dev/null';
        open STDOUT, '>', $tmp;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $out = _slurp($tmp) // '';
    unlink $tmp;
    return $out;
}

sub _slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    binmode $fh;
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data // '';
}

sub _spew {
    my ($path, $data) = @_;
    open my $fh, '>', $path or croak "cannot write $path: $!";
    binmode $fh;
    print {$fh} $data;
    close $fh or croak "cannot write $path: $!";
}

# ---------------------------------------------------------------------------
# nginx.conf generation
# ---------------------------------------------------------------------------

# expand_env($text) replaces every $TEST_NGINX_FOO with $ENV{TEST_NGINX_FOO}
# and dies on an undefined one.  Non-strings are returned unchanged.
sub expand_env {
    my ($text) = @_;
    return $text if !defined $text || ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        defined $ENV{$1} ? $ENV{$1} : die "environment variable $1 is not defined\n"
    }ge;
    return $text;
}

# gen_nginx_conf(\%c) returns the text of nginx.conf.  %c holds the snippets
# (main_config, post_main_config, http_config, config) and optionally any
# key of %Settings to override it.  $TEST_NGINX_* variables in the
# snippets are expanded.
sub gen_nginx_conf {
    my ($c) = @_;
    $c ||= {};
    my %o = (%Settings, %$c);
    $o{$_} = expand_env($o{$_}) for qw(main_config post_main_config http_config config);
    my $root = nginx_servroot();
    my $port = nginx_port();
    my $http_config = $o{http_config} // '';
    my $nginx_V = nginx_V();

    my @conf;
    push @conf, '# Generated by Test::Scenario::Util'
        . (defined $o{name} ? " for $o{name}" : '') . '.';

    for my $mod (split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '') {
        push @conf, 'load_module ' . File::Spec->rel2abs($mod) . ';';
    }

    push @conf, 'daemon on;';
    if ($o{master}) {
        push @conf, 'master_process on;', "worker_processes $o{workers};";
        # Workers would otherwise run as "nobody" and could not use the
        # root-owned server root; the directive is an error for non-root.
        if ($> == 0) {
            my $group = getgrgid(0) // 'root';
            push @conf, "user root $group;";
        }
    } else {
        push @conf, 'master_process off;';
    }
    push @conf,
        "pid $root/logs/nginx.pid;",
        "lock_file $root/logs/nginx.lock;",
        "error_log $root/logs/error.log $o{log_level};";
    push @conf, "env $_;" for @{ $o{env} || [] };
    push @conf, '', '# main_config', $o{main_config} if defined $o{main_config};

    push @conf, '', 'events {', "    worker_connections $o{worker_connections};", '}';

    # Temp paths live in the server root: the compiled-in defaults
    # (/var/lib/nginx/...) may not exist.  A path set in http_config wins.
    my @temp;
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if $t ne 'client_body' && $t ne 'proxy'
            && $nginx_V =~ /--without-http_${t}_module/;
        next if $http_config =~ /\b${t}_temp_path\b/;
        push @temp, "    ${t}_temp_path $root/${t}_temp;";
    }

    push @conf, '', 'http {',
        "    access_log $root/logs/access.log;",
        '    default_type text/plain;',
        '    keepalive_timeout 68;',
        @temp,
        '',
        '    # http_config',
        $http_config,
        '',
        '    server {',
        "        listen 127.0.0.1:$port;",
        "        server_name $o{server_name};",
        '        client_max_body_size 30M;',
        '',
        '        # config',
        $o{config} // '';
    push @conf, '',
        '        location / {',
        "            root $root/html;",
        '            index index.html index.htm;',
        '        }'
        unless $o{no_root_location};
    push @conf, '    }', '}';
    push @conf, '', '# post_main_config', $o{post_main_config}
        if defined $o{post_main_config};
    return join("\n", @conf) . "\n";
}

# ---------------------------------------------------------------------------
# Server root and user files
# ---------------------------------------------------------------------------

# Recreate the server root.  Only the directories the harness itself creates
# are removed, so a TEST_NGINX_SERVROOT pointing somewhere unexpected cannot
# wipe foreign data.
# Under SANITIZE=1 the sanitizers write to the workers' stderr, which is
# error.log: its reports are kept before the log is cleaned away.
sub save_sanitizer_reports {
    my $dir = $ENV{TEST_NGINX_SANITIZE_DIR} or return;
    open my $in, '<', error_log_path() or return;
    my @hit = grep { /runtime error:|ERROR: AddressSanitizer|^\s+#\d+ 0x/ } <$in>;
    close $in;
    return unless @hit;
    open my $out, '>>', "$dir/report.$$" or return;
    print $out "== $0\n", @hit;
    close $out;
}

sub prepare_servroot {
    my $root = nginx_servroot();
    save_sanitizer_reports() if -d $root;
    make_path($root) unless -d $root;
    remove_tree(map { "$root/$_" } qw(conf logs html),
                glob("$root/*_temp"), glob("$root/*_cache"));
    make_path(map { "$root/$_" } qw(conf logs html));
    _spew("$root/html/index.html",
          "<html><head><title>It works!</title></head><body>It works!</body></html>");
}

# Parse user files given as the text of a "--- user_files" section
# (">>> name [CCYYMMDDhhmm[.ss]]" lines followed by the content), as an
# array ref of [name, content, date] or as a hash ref {name => content}.
sub parse_user_files {
    my ($files) = @_;
    return [] unless defined $files;
    if (ref $files eq 'HASH') {
        return [map { [$_, $files->{$_}] } sort keys %$files];
    }
    if (ref $files eq 'ARRAY') {
        return [map { ref $_ eq 'ARRAY' ? $_ : croak "user_files: bad entry $_" } @$files];
    }
    croak "user_files: expected a string, an array or a hash ref" if ref $files;
    my @out;
    for my $line (split /^/m, $files) {
        if ($line =~ /^>>> (\S+)(?:\s+(\S+))?\s*$/) {
            push @out, [$1, '', $2];
        } elsif (@out) {
            $out[-1][1] .= $line;
        } elsif ($line =~ /\S/) {
            croak "user_files: content before the first '>>> name' line: $line";
        }
    }
    return \@out;
}

# Write user files under the html root (relative names only, no "..");
# $TEST_NGINX_* variables in their content are expanded.
sub write_user_files {
    my ($files) = @_;
    my $html = nginx_html_dir();
    for my $f (@{ parse_user_files($files) }) {
        my ($name, $body, $date) = @$f;
        croak "user_files: '$name' must be a relative path without '..'"
            if $name =~ m{^/} || $name =~ m{(?:^|/)\.\.(?:/|$)};
        my $path = "$html/$name";
        (my $dir = $path) =~ s{/[^/]+\z}{};
        make_path($dir) unless -d $dir;
        _spew($path, expand_env($body // ''));
        if (defined $date) {
            # touch -t style [CC]YYMMDDhhmm[.ss], interpreted as UTC.
            my ($y, $mo, $d, $h, $mi, $s) =
                $date =~ /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(?:\.(\d\d))?$/
                or croak "user_files: bad date '$date' (want CCYYMMDDhhmm[.ss])";
            require Time::Local;
            my $t = Time::Local::timegm($s // 0, $mi, $h, $d, $mo - 1, $y);
            utime $t, $t, $path or croak "utime $path: $!";
        }
    }
}

# ---------------------------------------------------------------------------
# nginx process management
# ---------------------------------------------------------------------------

our $NginxPid;          # pid of the nginx we started (master or single)
my $OwnerPid;           # the perl process that started it
my $ErrLogStartPos = 0; # error.log size when it was started
my $SignalsInstalled;

sub nginx_pid { return $NginxPid }

# A process counts as alive when it exists and is not a zombie (the
# daemonised nginx is not our child, and PID 1 may be slow to reap it).
sub _alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh> // '';
        close $fh;
        return 0 if $stat =~ /\)\s+[ZX]\s/;
    }
    return 1;
}

sub _children_of {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // '';
        close $fh;
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) / && $2 == $ppid;
    }
    return @kids;
}

sub _wait_gone {
    my ($timeout, @pids) = @_;
    my $deadline = time + $timeout;
    while (grep { _alive($_) } @pids) {
        return 0 if time > $deadline;
        sleep 0.02;
    }
    return 1;
}

# Stop a whole nginx (master + workers): QUIT, then TERM, then KILL.
sub _terminate {
    my ($pid) = @_;
    return 1 unless _alive($pid);
    my @kids = _children_of($pid);
    kill 'QUIT', $pid;
    return 1 if _wait_gone(5, $pid, @kids);
    @kids = (@kids, _children_of($pid));
    kill 'TERM', $pid, @kids;
    return 1 if _wait_gone(2, $pid, @kids);
    kill 'KILL', $pid, @kids;
    return _wait_gone(2, $pid, @kids);
}

sub _read_pid_file {
    my $data = _slurp(pid_path()) // return undef;
    return $data =~ /^\s*(\d+)/ ? $1 : undef;
}

# An nginx left running from an earlier run in this server root (for
# instance with TEST_NGINX_NO_CLEAN) would hold the port: stop it.
sub _kill_stale_nginx {
    my $pid = _read_pid_file() // return;
    return unless _alive($pid);
    my $cmdline = _slurp("/proc/$pid/cmdline") // '';
    return unless $cmdline =~ /nginx/;
    _terminate($pid);
}

# Is something listening on 127.0.0.1:$port (or *:$port)?  Reads
# /proc/net/tcp so that the check itself opens no connection (a probe
# connection would leave "client closed connection" lines in error.log).
# Returns undef when /proc is not readable.
sub _port_listening {
    my ($port) = @_;
    open my $fh, '<', '/proc/net/tcp' or return undef;
    my $hex = sprintf '%04X', $port;
    while (my $line = <$fh>) {
        return 1 if $line =~ /^\s*\d+:\s+(?:0100007F|00000000):$hex\s+\S+\s+0A\s/;
    }
    return 0;
}

sub _log_tail {
    my ($path, $max_lines) = @_;
    my $data = _slurp($path) // return "(no $path)";
    my @lines = split /^/m, $data;
    @lines = @lines[-$max_lines .. -1] if @lines > $max_lines;
    return join '', @lines;
}

# start_nginx(\%c) writes nginx.conf from the snippets in %c, (re)creates
# the server root, starts nginx and waits until it listens.  Croaks with
# the startup output and the error.log tail when it does not come up.
# Extra keys: user_files (see parse_user_files), keep_servroot (do not wipe
# the server root), name (a label written into nginx.conf).
sub start_nginx {
    my ($c) = @_;
    $c ||= {};
    croak 'start_nginx: the argument must be a hash ref' unless ref $c eq 'HASH';

    stop_nginx();
    my $bin = nginx_binary()
        // croak 'nginx binary not found (TEST_NGINX_BINARY='
             . ($ENV{TEST_NGINX_BINARY} // 'unset, looked for nginx in PATH') . ')';

    _kill_stale_nginx();
    prepare_servroot() unless $c->{keep_servroot};
    my $root = nginx_servroot();
    make_path("$root/conf", "$root/logs", "$root/html");
    _spew(conf_path(), gen_nginx_conf($c));
    write_user_files($c->{user_files}) if defined $c->{user_files};

    $ErrLogStartPos = -s error_log_path() || 0;
    _install_signal_handlers();

    # With "daemon on" the foreground process exits once the listening
    # sockets are open and the daemon has been forked.
    my $startup_log = "$root/logs/startup.log";
    my @cmd = ($bin, '-p', "$root/", '-c', conf_path());
    my $pid = fork;
    croak "fork failed: $!" unless defined $pid;
    if (!$pid) {
        open STDIN,  '<', '/dev/null';
        open STDOUT, '>', $startup_log;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $?;
    $OwnerPid = $$;

    my $fail = sub {
        my ($why) = @_;
        croak "nginx failed to start: $why\n"
            . "command: @cmd\n"
            . "--- startup output ---\n" . (_slurp($startup_log) // '')
            . "--- tail of $root/logs/error.log ---\n"
            . _log_tail(error_log_path(), 30);
    };
    $fail->('exit status ' . ($rc >> 8) . ($rc & 127 ? ', signal ' . ($rc & 127) : ''))
        if $rc != 0;

    # Wait (up to ~5 s) for the pid file, then for the listening socket.
    my $deadline = time + 5;
    my $npid;
    until (defined($npid = _read_pid_file()) && _alive($npid)) {
        $fail->('no running process in ' . pid_path()) if time > $deadline;
        sleep 0.01;
    }
    $NginxPid = $npid;
    my $port = nginx_port();
    while (1) {
        my $l = _port_listening($port);
        if (!defined $l) {   # no /proc: fall back to a probe connection
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $port, Timeout => 1);
            $l = $s ? 1 : 0;
            close $s if $s;
        }
        last if $l;
        $fail->("nginx (pid $npid) exited") unless _alive($npid);
        if (time > $deadline) {
            _terminate($npid);
            undef $NginxPid;
            $fail->("port 127.0.0.1:$port is not listening after 5 s");
        }
        sleep 0.01;
    }
    return $npid;
}

# stop_nginx() stops the nginx started by start_nginx (QUIT, then TERM,
# then KILL after timeouts).  Returns 1 if one was running.
sub stop_nginx {
    my $pid = $NginxPid;
    return 0 unless defined $pid;
    return 0 unless defined $OwnerPid && $OwnerPid == $$;   # not in forks
    undef $NginxPid;
    _terminate($pid)
        or warn "WARNING: nginx (pid $pid) could not be stopped\n";
    return 1;
}

# error_log_data() returns what nginx wrote to error.log since the last
# start_nginx() (including what a stop_nginx() since then added).
sub error_log_data {
    my $pos = $ErrLogStartPos;
    return read_error_log(\$pos);
}

# read_error_log(\$pos) returns the error.log text after byte offset $pos
# and advances $pos.  A shrunken file is read from its start.
sub read_error_log {
    my ($posref) = @_;
    open my $fh, '<', error_log_path() or return '';
    binmode $fh;
    my $size = -s $fh;
    $$posref = 0 if $$posref > $size;
    seek $fh, $$posref, 0;
    local $/;
    my $data = <$fh> // '';
    $$posref = tell $fh;
    close $fh;
    return $data;
}

sub _install_signal_handlers {
    return if $SignalsInstalled++;
    for my $sig (qw(INT TERM HUP)) {
        next if defined $SIG{$sig} && $SIG{$sig} ne 'DEFAULT' && $SIG{$sig} ne '';
        $SIG{$sig} = sub {
            stop_nginx() unless $ENV{TEST_NGINX_NO_CLEAN};
            $SIG{$sig} = 'DEFAULT';
            kill $sig, $$;
        };
    }
}

END {
    # Never leave nginx behind, even when the test died.
    if (defined $NginxPid && defined $OwnerPid && $OwnerPid == $$
        && !$ENV{TEST_NGINX_NO_CLEAN})
    {
        local $?;
        stop_nginx();
    }
    save_sanitizer_reports() if defined $OwnerPid && $OwnerPid == $$;
}

# ---------------------------------------------------------------------------
# HTTP client
# ---------------------------------------------------------------------------

sub _connect {
    my (%o) = @_;
    my $host = $o{host} // '127.0.0.1';
    my $port = $o{port} // nginx_port();
    my $sock = IO::Socket::INET->new(
        PeerAddr => $host,
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => $o{timeout} // 3,
    );
    return (undef, "cannot connect to $host:$port: " . ($@ || $!)) unless $sock;
    binmode $sock;
    $sock->blocking(0);
    return ($sock, undef);
}

# Write all of $data to a non-blocking socket; returns an error or undef.
sub _write_all {
    my ($sock, $data, $timeout) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $sel = IO::Select->new($sock);
    my $off = 0;
    while ($off < length $data) {
        return 'timeout while sending the request' unless $sel->can_write($timeout);
        my $n = syswrite $sock, $data, length($data) - $off, $off;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
            return "send failed: $!";
        }
        $off += $n;
    }
    return undef;
}

# http_exchange($request, %opts) sends $request (a string, or an array ref
# of pieces sent with $opts{delay} seconds between them) on a new
# connection and reads until the server closes it or nothing arrives for
# $opts{timeout} seconds (an idle timeout, default 3).  Returns
# { raw, timed_out, error, connect_failed }.
sub http_exchange {
    my ($request, %o) = @_;
    my $timeout = $o{timeout} // 3;
    my %r = (raw => '', timed_out => 0, error => undef, connect_failed => 0);
    my ($sock, $err) = _connect(%o, timeout => $timeout);
    if (!$sock) {
        @r{qw(error connect_failed)} = ($err, 1);
        return \%r;
    }
    my @pieces = ref $request eq 'ARRAY' ? @$request : ($request);
    # Character strings (e.g. "\x{263a}") are sent UTF-8 encoded.
    utf8::is_utf8($_) && utf8::encode($_) for @pieces;
    for my $i (0 .. $#pieces) {
        sleep $o{delay} if $i && $o{delay};
        if (my $e = _write_all($sock, $pieces[$i], $timeout)) {
            $r{error} = $e;   # still read: the server may have answered
            last;
        }
    }
    my $sel = IO::Select->new($sock);
    my $hard_deadline = time + ($o{max_time} // 60);
    while (1) {
        if (!$sel->can_read($timeout) || time > $hard_deadline) {
            $r{timed_out} = 1;
            last;
        }
        my $n = sysread $sock, my $buf, 65536;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
            $r{error} //= "read failed: $!";   # e.g. reset: keep what we got
            last;
        }
        last if $n == 0;
        $r{raw} .= $buf;
    }
    close $sock;
    return \%r;
}

# Decode a chunked body.  Returns (body, bytes after it, error, trailers).
sub _dechunk {
    my ($data) = @_;
    my ($pos, $body, @trailers) = (0, '');
    while (1) {
        my $eol = index $data, "\r\n", $pos;
        return ($body, '', 'incomplete chunked body: no last chunk') if $eol < 0;
        my $line = substr $data, $pos, $eol - $pos;
        return ($body, '', "invalid chunk size line \"$line\"")
            unless $line =~ /^[ \t]*([0-9A-Fa-f]+)[ \t]*(?:;.*)?$/;
        my $size = hex $1;
        $pos = $eol + 2;
        if ($size == 0) {
            while (1) {
                my $e = index $data, "\r\n", $pos;
                return ($body, '', 'incomplete chunked body: unterminated trailer')
                    if $e < 0;
                my $t = substr $data, $pos, $e - $pos;
                $pos = $e + 2;
                last if $t eq '';
                push @trailers, $t;
            }
            return ($body, substr($data, $pos), undef, \@trailers);
        }
        if (length($data) < $pos + $size + 2) {
            $body .= substr $data, $pos;
            return ($body, '', "incomplete chunked body: chunk of $size bytes truncated");
        }
        $body .= substr $data, $pos, $size;
        $pos += $size;
        return ($body, '', 'invalid chunked body: missing CRLF after chunk data')
            unless substr($data, $pos, 2) eq "\r\n";
        $pos += 2;
    }
}

# parse_http_response($raw, head => 1?) parses one HTTP/1.x response.
# Returns a hash ref:
#   status, reason, protocol   from the status line (undef if missing)
#   raw_headers                status line + header lines, each ending in CRLF
#   header_list                [[Name, value], ...] in received order
#   headers                    {lowercased name => value, or [values] if repeated}
#   body                       de-chunked body; for 101 all bytes after the head
#   left                       bytes after the end of the body
#   trailers                   chunked trailer lines
#   error                      a framing problem (incomplete head, bad chunks...)
sub parse_http_response {
    my ($raw, %o) = @_;
    $raw //= '';
    my %res = (raw => $raw, status => undef, reason => undef, protocol => undef,
               raw_headers => '', header_list => [], headers => {}, body => '',
               left => '', trailers => [], error => undef);
    my $end = index $raw, "\r\n\r\n";
    my $head = $end >= 0 ? substr($raw, 0, $end + 2) : $raw;
    if ($head =~ m{\A(HTTP/\d+(?:\.\d+)?)[ \t]+(\d{3})(?:[ \t]+([^\r\n]*))?}) {
        @res{qw(protocol status reason)} = ($1, $2 + 0, $3 // '');
    }
    if ($end < 0) {
        $res{error} = length $raw ? 'incomplete response head (no CRLFCRLF)' : 'empty response';
        return \%res;
    }
    $res{error} = 'invalid status line' unless defined $res{status};
    $res{raw_headers} = $head;
    my ($status_line, @lines) = split /\r\n/, $head;
    for my $l (@lines) {
        if ($l =~ /^[ \t]+(.*)$/ && @{ $res{header_list} }) {   # obsolete folding
            $res{header_list}[-1][1] .= " $1";
            next;
        }
        next unless $l =~ /^([^:\s]+)[ \t]*:[ \t]*(.*?)[ \t]*$/;
        push @{ $res{header_list} }, [$1, $2];
    }
    for my $h (@{ $res{header_list} }) {
        my $k = lc $h->[0];
        if (!exists $res{headers}{$k}) {
            $res{headers}{$k} = $h->[1];
        } elsif (ref $res{headers}{$k}) {
            push @{ $res{headers}{$k} }, $h->[1];
        } else {
            $res{headers}{$k} = [$res{headers}{$k}, $h->[1]];
        }
    }

    my $rest = substr $raw, $end + 4;
    my $status = $res{status} // 0;
    my $te = header_value(\%res, 'Transfer-Encoding');
    my $cl = header_value(\%res, 'Content-Length');
    if ($status == 101) {
        $res{body} = $rest;                  # the upgraded stream
    } elsif ($o{head} || ($status >= 100 && $status < 200)
             || $status == 204 || $status == 304) {
        $res{left} = $rest;
    } elsif (defined $te && $te =~ /\bchunked\s*$/i) {
        my ($body, $left, $err, $trailers) = _dechunk($rest);
        @res{qw(body left error trailers)} = ($body, $left, $err, $trailers || []);
    } elsif (defined $cl && $cl =~ /^\s*(\d+)\s*$/) {
        my $len = $1;
        if (length $rest < $len) {
            $res{body} = $rest;
            $res{error} = "body truncated: got " . length($rest) . " of $len bytes";
        } else {
            $res{body} = substr $rest, 0, $len;
            $res{left} = substr $rest, $len;
        }
    } else {
        $res{body} = $rest;                  # delimited by connection close
    }
    return \%res;
}

# header_value($res, $name): all values of a header joined with ", ", or
# undef when absent (case-insensitive).
sub header_value {
    my ($res, $name) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $res->{header_list} || [] };
    return @v ? join(', ', @v) : undef;
}

# Normalise a headers argument (hash ref or array ref of pairs) into a
# list of [name, value] pairs; array values give repeated headers.
sub _header_pairs {
    my ($h) = @_;
    return () unless defined $h;
    my @kv = ref $h eq 'HASH' ? (map { ($_, $h->{$_}) } sort keys %$h)
           : ref $h eq 'ARRAY' ? @$h
           : croak 'headers must be a hash ref or an array ref of pairs';
    my @pairs;
    while (my ($k, $v) = splice @kv, 0, 2) {
        push @pairs, map { [$k, $_] } ref $v eq 'ARRAY' ? @$v : ($v);
    }
    return @pairs;
}

# http($method, $path, \%headers, $body, \%opts) sends one HTTP/1.1 request
# on a new connection to 127.0.0.1:$TEST_NGINX_PORT and returns
#   { status, reason, headers => {lc name => value | [values]}, body, raw,
#     raw_headers, header_list, timed_out, error }
# Host: <server_name> and Connection: close are added unless given, and
# Content-Length when $body is defined (and no Transfer-Encoding is given).
# %opts: timeout (idle, seconds, default 3), port, host (peer address).
sub http {
    my ($method, $path, $headers, $body, $opts) = @_;
    croak 'http: method and path are required' unless defined $method && defined $path;
    $opts ||= {};
    my @pairs = _header_pairs($headers);
    my %have = map { (lc $_->[0] => 1) } @pairs;
    my $req = "$method $path HTTP/1.1\r\n";
    $req .= "Host: $Settings{server_name}\r\n" unless $have{host};
    $req .= "Connection: close\r\n" unless $have{connection};
    $req .= "$_->[0]: $_->[1]\r\n" for @pairs;
    $req .= 'Content-Length: ' . length($body) . "\r\n"
        if defined $body && !$have{'content-length'} && !$have{'transfer-encoding'};
    $req .= "\r\n";
    $req .= $body if defined $body;
    return http_raw($req, { %$opts, head => uc($method) eq 'HEAD' });
}

# http_raw($bytes_or_pieces, \%opts): like http() but sends exact bytes.
# %opts: timeout, delay (between pieces), head (parse as a HEAD response).
sub http_raw {
    my ($request, $opts) = @_;
    $opts ||= {};
    my $x = http_exchange($request, %$opts);
    my $res = parse_http_response($x->{raw}, head => $opts->{head});
    $res->{timed_out} = $x->{timed_out};
    $res->{error} = $x->{error} if defined $x->{error};
    $res->{connect_failed} = $x->{connect_failed};
    return $res;
}

# ---------------------------------------------------------------------------
# WebSocket client
# ---------------------------------------------------------------------------

# ws_connect($path, \%headers, \%opts) opens a connection, performs the
# WebSocket handshake and returns a Test::Scenario::Util::WebSocket object.
# It croaks only when the TCP connection fails; check $ws->status (101)
# or $ws->handshake_ok for the outcome of the upgrade.
sub ws_connect {
    my ($path, $headers, $opts) = @_;
    return Test::Scenario::Util::WebSocket->connect($path, $headers, $opts);
}

# ws_events($ws, $secs, $stop) reads the JSON text frames of a chat or watch
# socket until $stop->($event) is true or $secs pass; returns the events,
# the last one the one that stopped it (if any did).
sub ws_events {
    my ($ws, $secs, $stop) = @_;
    my @got;
    my $deadline = Time::HiRes::time() + $secs;
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        my $f = $ws->recv_frame($left) or last;
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        push @got, $ev;
        last if $stop->($ev);
    }
    return @got;
}

# ws_say($ws, $client_msg_id, $content) sends a trainee's user_message.
sub ws_say {
    my ($ws, $id, $text) = @_;
    $ws->send_text(json_encode({ type => 'user_message',
                                 client_msg_id => $id, content => $text }));
}

# ---------------------------------------------------------------------------
# PostgreSQL / Redis / JSON
# ---------------------------------------------------------------------------

sub _run_cmd {
    my ($cmd, $stdin) = @_;
    require IPC::Run3;
    my ($out, $err) = ('', '');
    IPC::Run3::run3($cmd, defined $stdin ? \$stdin : \undef, \$out, \$err);
    return ($?, $out, $err);
}

# pg_exec($sql, @params) runs $sql with psql (connection from PGHOST,
# PGPORT, PGUSER, PGDATABASE, PGPASSWORD) in unaligned tuples-only mode
# with ON_ERROR_STOP.  Parameters become psql variables v1, v2, ...; refer
# to them as :'v1' (literal) or :"v1" (identifier) so that psql quotes
# them.  The SQL is fed on stdin because psql does not interpolate
# variables in -c.  Returns the output (chomped) in scalar context, the
# output lines in list context; croaks with psql's stderr on failure.
sub pg_exec {
    my ($sql, @params) = @_;
    croak 'pg_exec: SQL is required' unless defined $sql;
    my @cmd = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At');
    for my $i (0 .. $#params) {
        croak 'pg_exec: parameter ' . ($i + 1) . ' is undef (psql variables cannot carry NULL)'
            unless defined $params[$i];
        push @cmd, '-v', 'v' . ($i + 1) . "=$params[$i]";
    }
    my ($rc, $out, $err) = _run_cmd(\@cmd, $sql);
    croak 'pg_exec failed (exit ' . ($rc >> 8) . "): $err" if $rc != 0;
    chomp $out;
    return wantarray ? split(/\n/, $out) : $out;
}

# redis_cmd(@args) runs redis-cli against TEST_NGINX_REDIS_HOST (default
# 127.0.0.1) and TEST_NGINX_REDIS_PORT (default 6379) and returns its raw
# output, chomped.  (redis-cli reads a password from REDISCLI_AUTH.)
sub redis_cmd {
    my @args = @_;
    my @cmd = ('redis-cli',
               '-h', $ENV{TEST_NGINX_REDIS_HOST} || '127.0.0.1',
               '-p', $ENV{TEST_NGINX_REDIS_PORT} || 6379, @args);
    my ($rc, $out, $err) = _run_cmd(\@cmd, undef);
    croak 'redis_cmd failed (exit ' . ($rc >> 8) . "): $err" if $rc != 0;
    chomp $out;
    return $out;
}

# make_token($user_id, $ttl) creates a live session the way the module's
# login does and returns its token: 32 random bytes as unpadded base64url
# (43 characters); Redis keeps "sess:" . hex(SHA-256(token)) => $user_id,
# expiring after $ttl seconds (default 86400, the module's default TTL).
sub make_token {
    my ($user_id, $ttl) = @_;
    croak 'make_token: a numeric user id is required'
        unless defined $user_id && $user_id =~ /^\d+$/;
    $ttl //= 86400;
    open my $rnd, '<:raw', '/dev/urandom' or croak "make_token: /dev/urandom: $!";
    read($rnd, my $raw, 32) == 32 or croak 'make_token: short read from /dev/urandom';
    close $rnd;
    my $token = MIME::Base64::encode_base64url($raw);
    my $key = 'sess:' . Digest::SHA::sha256_hex($token);
    my $reply = redis_cmd('SET', $key, $user_id, 'EX', $ttl);
    croak "make_token: redis SET $key failed: $reply" unless $reply eq 'OK';
    return $token;
}

# make_user($label, $name) inserts a user whose email is unique to this run
# ("$label-<time>-<pid>-<n>@example.com"; its password hash is a dummy, so it
# cannot log in) and returns its id.
my $UserSeq = 0;
sub make_user {
    my ($label, $name) = @_;
    croak 'make_user: a label is required' unless defined $label;
    $UserSeq++;
    return pg_exec(q{INSERT INTO users (email, password_hash, display_name)
        VALUES (:'v1' || '@example.com', 'x', :'v2') RETURNING id},
        join('-', $label, int(time()), $$, $UserSeq), $name // $label);
}

# make_session($user_id, $slug) starts a session of the scenario $slug
# (default the refund scenario) for $user_id and returns its id.
sub make_session {
    my ($user_id, $slug) = @_;
    $slug //= 'refund-angry-customer';
    return pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        SELECT :'v1', id FROM scenarios WHERE slug = :'v2' RETURNING id},
        $user_id, $slug);
}

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

# json_encode($data): UTF-8 encoded JSON bytes with sorted keys.
sub json_encode { return $JSON->encode($_[0]) }

# json_decode($bytes): decodes UTF-8 JSON bytes.
sub json_decode { return $JSON->decode($_[0]) }

# ===========================================================================
package Test::Scenario::Util::WebSocket;
# ===========================================================================
#
# A small blocking WebSocket client for tests.  Outgoing frames are built
# with Protocol::WebSocket::Frame (masked, as a client must); incoming
# frames are decoded one by one so that fin, rsv and opcode of every frame
# (fragments included) can be asserted.

use strict;
use warnings;

use Carp qw(croak);
use IO::Select;
use Protocol::WebSocket::Frame;
use Protocol::WebSocket::Request;
use Time::HiRes qw(time);

my %OPCODES = (continuation => 0, text => 1, binary => 2, close => 8, ping => 9, pong => 10);

sub connect {
    my ($class, $path, $headers, $opts) = @_;
    $opts ||= {};
    croak 'ws_connect: path is required' unless defined $path;
    my $timeout = $opts->{timeout} // 3;
    my ($sock, $err) = Test::Scenario::Util::_connect(%$opts, timeout => $timeout);
    croak "ws_connect: $err" unless $sock;

    my $self = bless { sock => $sock, timeout => $timeout, buf => '',
                       closed => 0, timed_out => 0 }, $class;

    # Build the handshake with Protocol::WebSocket::Request; Host, Origin
    # and Sec-WebSocket-Protocol given by the caller replace its defaults.
    my $req = Protocol::WebSocket::Request->new;
    $req->resource_name($path);
    $req->host($Test::Scenario::Util::Settings{server_name});
    my @extra;
    for my $p (Test::Scenario::Util::_header_pairs($headers)) {
        my $k = lc $p->[0];
        if    ($k eq 'host')                   { $req->host($p->[1]) }
        elsif ($k eq 'origin')                 { $req->origin($p->[1]) }
        elsif ($k eq 'sec-websocket-protocol') { $req->subprotocol($p->[1]) }
        else                                   { push @extra, @$p }
    }
    $req->{headers} = \@extra;
    my $key = MIME::Base64::encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    $req->key($key);
    # bytes sent in the same write as the handshake (frames behind it)
    $self->{request} = $req->to_string . ($opts->{behind} // '');

    if (my $e = Test::Scenario::Util::_write_all($sock, $self->{request}, $timeout)) {
        $self->{error} = $e;
    }

    # Read the response head; bytes after it are the first frames.
    my $raw = '';
    my $sel = IO::Select->new($sock);
    while (index($raw, "\r\n\r\n") < 0) {
        if (!$sel->can_read($timeout)) { $self->{timed_out} = 1; last }
        my $n = sysread $sock, my $chunk, 65536;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
            $self->{error} //= "read failed: $!";
            $self->{closed} = 1;
            last;
        }
        if ($n == 0) { $self->{closed} = 1; last }
        $raw .= $chunk;
    }
    my $res = Test::Scenario::Util::parse_http_response($raw);
    $self->{response} = $res;
    $self->{buf} = $res->{status} && $res->{status} == 101 ? $res->{body} : '';
    my $accept = MIME::Base64::encode_base64(
        Digest::SHA::sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
    $self->{handshake_ok} = ($res->{status} // 0) == 101
        && (Test::Scenario::Util::header_value($res, 'Sec-WebSocket-Accept') // '') eq $accept;
    return $self;
}

# Accessors for the handshake outcome.
sub status       { $_[0]{response}{status} }
sub headers      { $_[0]{response}{headers} }
sub response     { $_[0]{response} }
sub handshake_ok { $_[0]{handshake_ok} }
sub is_closed    { $_[0]{closed} }
sub timed_out    { $_[0]{timed_out} }
sub error        { $_[0]{error} }

# send_raw_bytes($bytes): writes bytes as they are (e.g. a malformed frame).
sub send_raw_bytes {
    my ($self, $bytes) = @_;
    croak 'WebSocket is not connected' unless $self->{sock};
    my $e = Test::Scenario::Util::_write_all($self->{sock}, $bytes, $self->{timeout});
    croak "WebSocket send failed: $e" if $e;
    return 1;
}

# send_frame(opcode => N | type => 'text'..., payload => $bytes, fin => 0|1,
#            masked => 0|1 (default 1), rsv => [r1, r2, r3])
sub send_frame {
    my ($self, %f) = @_;
    my $opcode = $f{opcode} // $OPCODES{ $f{type} // 'text' }
        // croak "unknown frame type $f{type}";
    my $frame = Protocol::WebSocket::Frame->new(
        buffer           => $f{payload} // '',
        opcode           => $opcode,
        fin              => $f{fin} // 1,
        masked           => $f{masked} // 1,
        max_payload_size => 0,
        (defined $f{rsv} ? (rsv => $f{rsv}) : ()),
    );
    return $self->send_raw_bytes($frame->to_bytes);
}

sub send_text   { my ($self, $t) = @_; $self->send_frame(opcode => 1, payload => $t) }
sub send_binary { my ($self, $b) = @_; $self->send_frame(opcode => 2, payload => $b) }
sub send_ping   { my ($self, $p) = @_; $self->send_frame(opcode => 9, payload => $p) }
sub send_pong   { my ($self, $p) = @_; $self->send_frame(opcode => 10, payload => $p) }

# Decode one frame from the front of $self->{buf}; undef if incomplete.
sub _take_frame {
    my ($self) = @_;
    my $b = \$self->{buf};
    return undef if length $$b < 2;
    my ($b1, $b2) = unpack 'CC', $$b;
    my ($len, $off) = ($b2 & 0x7f, 2);
    if ($len == 126) {
        return undef if length $$b < 4;
        ($len, $off) = (unpack('n', substr $$b, 2, 2), 4);
    } elsif ($len == 127) {
        return undef if length $$b < 10;
        my ($hi, $lo) = unpack 'NN', substr $$b, 2, 8;
        ($len, $off) = ($hi * 4294967296 + $lo, 10);
    }
    my $masked = $b2 >> 7;
    my $mask = '';
    if ($masked) {
        return undef if length $$b < $off + 4;
        $mask = substr $$b, $off, 4;
        $off += 4;
    }
    return undef if length $$b < $off + $len;
    my $payload = substr $$b, $off, $len;
    substr($$b, 0, $off + $len) = '';
    if ($masked) {
        my $m = $mask x (int($len / 4) + 1);
        $payload ^= substr $m, 0, $len;
    }
    my %f = (fin => $b1 >> 7, rsv => ($b1 >> 4) & 7, opcode => $b1 & 0x0f,
             masked => $masked, payload => $payload);
    if ($f{opcode} == 8 && length $payload >= 2) {
        $f{close_code}   = unpack 'n', $payload;
        $f{close_reason} = substr $payload, 2;
    }
    return \%f;
}

# recv_frame($timeout) returns the next frame as
#   { opcode, fin, rsv, masked, payload, close_code, close_reason }
# (payload as raw bytes; close_* only for close frames with a body), or
# undef when nothing complete arrives within $timeout seconds (default: the
# connection's timeout) or the server closed the connection (see
# is_closed / timed_out).
sub recv_frame {
    my ($self, $timeout) = @_;
    $timeout //= $self->{timeout};
    $self->{timed_out} = 0;
    my $deadline = time + $timeout;
    while (1) {
        my $f = $self->_take_frame;
        return $f if $f;
        return undef if $self->{closed} || !$self->{sock};
        my $left = $deadline - time;
        if ($left <= 0 || !IO::Select->new($self->{sock})->can_read($left)) {
            $self->{timed_out} = 1;
            return undef;
        }
        my $n = sysread $self->{sock}, my $chunk, 65536;
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
            $self->{error} = "read failed: $!";
            $self->{closed} = 1;
            next;
        }
        if ($n == 0) { $self->{closed} = 1; next }
        $self->{buf} .= $chunk;
    }
}

# close($code, $reason): sends a close frame (no body when $code is undef),
# waits for the server's close frame (skipping other frames) and closes the
# socket.  Returns the server's close frame, or undef if none arrived.
sub close {
    my ($self, $code, $reason) = @_;
    return undef unless $self->{sock};
    my $payload = defined $code ? pack('n', $code) . ($reason // '') : '';
    eval { $self->send_frame(opcode => 8, payload => $payload); 1 };
    my $reply;
    while (my $f = $self->recv_frame) {
        if ($f->{opcode} == 8) { $reply = $f; last }
    }
    $self->disconnect;
    return $reply;
}

# disconnect(): drops the TCP connection without a close handshake.
sub disconnect {
    my ($self) = @_;
    CORE::close $self->{sock} if $self->{sock};
    delete $self->{sock};
    $self->{closed} = 1;
    return 1;
}

sub DESTROY { $_[0]->disconnect if $_[0]{sock} }

1;

__END__

=head1 NAME

Test::Scenario::Util - nginx process management, HTTP/WebSocket clients and
service helpers for the project's tests

=head1 SYNOPSIS

    use Test::More;
    use lib 't/lib';
    use Test::Scenario::Util;

    start_nginx({ config => 'location = /t { return 200 "hi\n"; }' });
    my $res = http(GET => '/t');
    is $res->{status}, 200;
    is $res->{body}, "hi\n";
    stop_nginx();
    done_testing;

=head1 EXPORTED BY DEFAULT

start_nginx(\%c), stop_nginx(), http($method, $path, \%headers, $body,
\%opts), ws_connect($path, \%headers, \%opts), pg_exec($sql, @params),
redis_cmd(@args), json_encode($data), json_decode($bytes).

=head1 EXPORTABLE

make_token($user_id, $ttl), http_raw($bytes_or_pieces, \%opts),
error_log_data(), nginx_pid(),
nginx_port(), nginx_servroot(), nginx_html_dir(), nginx_binary(),
gen_nginx_conf(\%c), parse_http_response($raw, head => $bool),
expand_env($text); C<:all>
exports everything.

=head1 start_nginx KEYS

main_config, post_main_config, http_config, config (snippets, with
$TEST_NGINX_* expanded), user_files
(">>> name" text, [[name, content, date]], or {name => content}), master,
workers, worker_connections, log_level, env ([names]), server_name,
no_root_location, keep_servroot, name.

=head1 ENVIRONMENT

TEST_NGINX_BINARY, TEST_NGINX_PORT (default 1984), TEST_NGINX_SERVER_PORT
(set equal to TEST_NGINX_PORT), TEST_NGINX_SERVROOT (default t/servroot,
made absolute), TEST_NGINX_HTML_DIR (set), TEST_NGINX_LOG_LEVEL (default
debug), TEST_NGINX_LOAD_MODULES, TEST_NGINX_NO_CLEAN (leave nginx running
at exit), TEST_NGINX_REDIS_HOST, TEST_NGINX_REDIS_PORT, PGHOST, PGPORT,
PGUSER, PGDATABASE.

=cut
