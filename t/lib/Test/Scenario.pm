package Test::Scenario;

# Front door of the test harness.  "use Test::Scenario;" gives the .t file
# the real Test::Nginx::Socket when it is installed and our
# Test::Scenario::Mini otherwise, with the same exported functions, so the
# same data-driven .t files run under both.
#
# Both back ends are Test::Base (Spiffy) subclasses whose import() exports
# into caller().  We therefore jump into the back end's import with
# "goto &sub": the goto replaces our own stack frame, so the back end sees
# the .t file as its caller exactly as if the file had said
# "use Test::Nginx::Socket;" itself (Test::Base's source filter also lands
# on that file, as it would then).

use strict;
use warnings;

our $VERSION = '0.01';

# The back end chosen by the last import: 'Test::Nginx::Socket' or
# 'Test::Scenario::Mini'.
our $BACKEND;

# Pick the back end.  TEST_SCENARIO_MINI=1 forces ours even when
# Test::Nginx::Socket is installed (the harness self-test uses it).
sub backend {
    return $BACKEND if defined $BACKEND;
    if (!$ENV{TEST_SCENARIO_MINI}) {
        if (eval { require Test::Nginx::Socket; 1 }) {
            return $BACKEND = 'Test::Nginx::Socket';
        }
        # Fall back only when the module is absent; an installed but broken
        # Test::Nginx must not silently turn into a different runner.
        die $@ unless $@ =~ m{^Can't locate Test/Nginx/Socket\.pm in \@INC};
    }
    require Test::Scenario::Mini;
    return $BACKEND = 'Test::Scenario::Mini';
}

sub import {
    shift;                                  # our own class name
    my $target = backend();
    my $import = $target->can('import') or return;
    unshift @_, $target;                    # $target->import(@args)
    goto &$import;
}

1;

__END__

=head1 NAME

Test::Scenario - run Test::Nginx-style .t files with Test::Nginx::Socket
when available, else with Test::Scenario::Mini

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Scenario;
    plan tests => repeat_each() * (blocks() * 3);
    run_tests();
    __DATA__
    ...

=head1 ENVIRONMENT

TEST_SCENARIO_MINI=1 forces Test::Scenario::Mini.

=cut
