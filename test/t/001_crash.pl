# Crash safety: SIGKILL the backend in the middle of a large import and of a
# merge; after crash recovery no partial model is left, and the catalog
# passes soup.verify.
#
# "In the middle" is proven, not timed: with soup.pause_after_chunks the
# operation stops after writing that many chunks and waits for an advisory
# lock this test holds; the test kills it only once soup.progress shows it
# there, with chunks written and chunks still to come.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $big = $ENV{SOUP_CRASH_FILE} or plan skip_all => 'SOUP_CRASH_FILE not set';

# the key soup.pause_after_chunks waits on ('soup' in ASCII)
my $pause_key = 1936684400;
my $pause_at = 40;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_soup');

# Run $sql in its own session, held at chunk $pause_at; check from another
# session that it is there, SIGKILL it and wait for the server to come back.
sub kill_during
{
	my ($sql, $operation) = @_;

	my $holder = $node->background_psql('postgres');
	$holder->query_safe("SELECT pg_advisory_lock($pause_key)");

	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			'-c', "SET soup.pause_after_chunks = $pause_at", '-c', $sql
		],
		'>', \$out, '2>', \$err);

	# held at the pause point: waiting for the lock, $pause_at chunks done
	my $where =
	    "FROM soup.progress p JOIN pg_stat_activity a USING (pid) "
	  . "WHERE p.operation = '$operation' AND a.wait_event = 'advisory'";
	ok($node->poll_query_until('postgres', "SELECT count(*) $where", '1'),
		"the $operation stopped at the pause point");
	my ($pid, $done, $total) = split /\|/,
	  $node->safe_psql('postgres', "SELECT p.pid, p.chunks_done, p.chunks_total $where");
	ok($done == $pause_at && $total > $done,
		"the $operation is half-way: $done of $total chunks written");

	kill 'KILL', $pid;
	$h->finish;
	ok($err =~ /terminated|server closed|connection/i,
		"the $operation session was killed");
	# the crash restart ends the holder's session too
	eval { $holder->quit; };
	$node->poll_query_until('postgres', 'SELECT 1', '1');
	return;
}

# 1. import
kill_during(
	"SET soup.chunk_elems = 65536; SELECT soup.import_safetensors('$big', 'big')",
	'import');
is($node->safe_psql('postgres', "SELECT count(*) FROM soup.models WHERE name = 'big'"),
	'0', 'no partial model after a crash during import');
is($node->safe_psql('postgres', 'SELECT count(*) FROM soup.chunks'),
	'0', 'no chunks left by the killed import');

# 2. merge
$node->safe_psql('postgres',
	"SELECT soup.import_safetensors('$big', 'a'); SELECT soup.import_safetensors('$big', 'b')");
my $chunks = $node->safe_psql('postgres', 'SELECT count(*) FROM soup.chunks');
kill_during("SELECT soup.merge('ab', 'avg', ARRAY['a', 'b'])", 'merge');
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
