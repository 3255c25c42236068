# Matrix driver for Cache::Memcached::Fast: argv host:port prefix phase.
# Prints one "name result" line per operation (test/clients/matrix.test.ts).
use strict;
use warnings;
use Cache::Memcached::Fast;

my ($addr, $p, $phase) = @ARGV;
my $m = Cache::Memcached::Fast->new({ servers => [$addr], connect_timeout => 3, io_timeout => 3 });
$| = 1;
sub out { my ($n, $v) = @_; print "$n ", (defined $v ? $v : 'miss'), "\n"; }
sub b { return $_[0] ? 'true' : 'false'; }

if ($phase eq 'ops') {
  out('flush', b($m->flush_all));
  out('set_a', b($m->set("${p}a", 'alpha')));
  out('get_a', $m->get("${p}a"));
  out('get_missing', $m->get("${p}missing"));
  out('set_b', b($m->set("${p}b", 'beta')));
  my $r = $m->get_multi("${p}a", "${p}missing", "${p}b");
  out('multi', join(',', sort map { substr($_, length $p) . "=$r->{$_}" } keys %$r));
  out('add_existing', b($m->add("${p}a", 'x')));
  out('add_new', b($m->add("${p}c", 'gamma')));
  out('replace_missing', b($m->replace("${p}missing", 'x')));
  out('replace', b($m->replace("${p}c", 'delta')));
  out('append', b($m->append("${p}c", '+')));
  out('prepend', b($m->prepend("${p}c", '-')));
  out('get_c', $m->get("${p}c"));
  out('set_n', b($m->set("${p}n", '10')));
  out('incr', $m->incr("${p}n", 5));
  out('decr', $m->decr("${p}n", 2));
  # 0 but true... undef for a miss
  my $im = $m->incr("${p}nothing", 1);
  out('incr_missing', (defined $im && $im ne '') ? $im : undef);
  my $g = $m->gets("${p}a");
  out('cas', b($m->cas("${p}a", $g->[0], 'alpha2')));
  out('cas_stale', b($m->cas("${p}a", $g->[0], 'alpha3')));
  out('get_a2', $m->get("${p}a"));
  out('delete', b($m->delete("${p}a")));
  out('delete_missing', b($m->delete("${p}a")));
  out('get_deleted', $m->get("${p}a"));
  out('touch', b($m->touch("${p}b", 100)));
  out('touch_missing', b($m->touch("${p}missing", 100)));
  out('version', join(',', values %{ $m->server_versions }));
  out('stats', 'n/a');    # the library has no stats call
  out('flush_all', b($m->flush_all));
  out('get_flushed', $m->get("${p}b"));
} elsif ($phase eq 'write') {
  out('write', scalar grep { $m->set("${p}p$_", "v$_") } 0 .. 19);
} else {
  out('read', scalar grep { my $v = $m->get("${p}p$_"); defined $v && $v eq "v$_" } 0 .. 19);
  my $r = $m->get_multi(map { "${p}p$_" } 0 .. 19);
  out('read_multi', scalar grep { my $v = $r->{"${p}p$_"}; defined $v && $v eq "v$_" } 0 .. 19);
}
