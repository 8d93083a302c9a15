# Crash safety: SIGKILL the backend in the middle of a large import and of a
# merge; after crash recovery no partial model is left, and the catalog
# passes soup.verify.
use strict;
use warnings;

use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $big = $ENV{SOUP_CRASH_FILE} or plan skip_all => 'SOUP_CRASH_FILE not set';

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_soup');

# Run $sql in its own session, wait until its backend is busy with it, then
# SIGKILL that backend and wait for the server to come back.
sub kill_during
{
	my ($sql, $pattern) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	my $pid = '';
	for (1 .. 600)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE query LIKE '%$pattern%' "
			  . "AND state = 'active' AND pid <> pg_backend_pid()");
		last if $pid ne '';
		usleep(50_000);
	}
	ok($pid ne '', "the $pattern session is running");
	usleep(700_000);    # let it write part of its rows
	kill 'KILL', $pid;
	$h->finish;
	ok($err =~ /terminated|server closed|connection/i,
		"the $pattern session was killed");
	$node->poll_query_until('postgres', 'SELECT 1', '1');
	return;
}

# 1. import
kill_during("SET soup.chunk_elems = 65536; SELECT soup.import_safetensors('$big', 'big')",
	'import_safetensors');
is($node->safe_psql('postgres', "SELECT count(*) FROM soup.models WHERE name = 'big'"),
	'0', 'no partial model after a crash during import');
is($node->safe_psql('postgres', 'SELECT count(*) FROM soup.chunks'),
	'0', 'no chunks left by the killed import');

# 2. merge
$node->safe_psql('postgres',
	"SELECT soup.import_safetensors('$big', 'a'); SELECT soup.import_safetensors('$big', 'b')");
my $chunks = $node->safe_psql('postgres', 'SELECT count(*) FROM soup.chunks');
kill_during("SELECT soup.merge('ab', 'avg', ARRAY['a', 'b'])", 'soup.merge');
is($node->safe_psql('postgres', "SELECT count(*) FROM soup.models WHERE name = 'ab'"),
	'0', 'no partial model after a crash during merge');
is($node->safe_psql('postgres', 'SELECT count(*) FROM soup.chunks'),
	$chunks, 'the sources keep all their chunks');
is( $node->safe_psql('postgres',
		'SELECT count(*) FROM soup.models m, LATERAL soup.verify(m.name)'),
	'0', 'every model passes soup.verify after recovery');

# and the catalog still works: the merge succeeds when left alone
$node->safe_psql('postgres', "SELECT soup.merge('ab', 'avg', ARRAY['a', 'b'])");
is($node->safe_psql('postgres', "SELECT count(*) FROM soup.verify('ab')"),
	'0', 'a merge after recovery is whole');

$node->stop;
done_testing();
