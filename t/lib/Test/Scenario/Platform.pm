package Test::Scenario::Platform;

# The nginx configuration of the platform's flow tests: the module pointed
# at the test Postgres and Redis, the API's locations (conf/ as it ships),
# and the model location pointed at the stand-in model server.  Options
# change the few things a test needs differently.

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(platform_conf);

sub platform_conf {
    my (%o) = @_;
    my $repo = $ENV{TEST_NGINX_REPO} or die "run me through scripts/test\n";
    my $stub = $ENV{TEST_NGINX_STUB_PORT} or die "no stand-in model server\n";
    my $timeout = $o{model_timeout} // '3s';
    my $read = $o{read_timeout} // '2s';
    # e.g. "proxy_set_header X-Stub-Reply-File /path;" (t/091-judge.t)
    my $model_headers = $o{model_headers} // '';
    # the chat's statements prepared per connection (scripts/test: on;
    # .ci/run's sanitizer pass: off, the unnamed path)
    my $prepare = $ENV{TEST_PG_PREPARE} // 'on';

    return {
        main_config => "thread_pool scenario_hash threads=2 max_queue=64;\n"
                     . "env SCENARIO_STUB_KEY=test-key;",
        http_config => ($o{http_config} // '') . <<"_EOC_",
    scenario_postgres "host=127.0.0.1 port=$ENV{TEST_NGINX_PG_PORT} dbname=scenario user=postgres";
    scenario_postgres_prepare $prepare;
    scenario_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
    scenario_model_api_key_env SCENARIO_STUB_KEY;
    scenario_model stand-in;
    scenario_model_timeout $timeout;
_EOC_
        config => <<"_EOC_" . ($o{config} // ''),
    include $repo/conf/scenario-api.conf;
    location = /_model {
        internal;
        proxy_pass http://127.0.0.1:$stub/v1/chat/completions;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_pass_request_headers off;
        proxy_set_header Content-Type application/json;
        proxy_set_header Authorization "Bearer \$scenario_model_api_key";
        proxy_read_timeout $read;
$model_headers
    }
_EOC_
        log_level => 'info',
        %{ $o{nginx} // {} },
    };
}

1;
