<?php
// Matrix driver for PHP's memcached extension (libmemcached): argv host:port prefix phase [binary].
// Prints one "name result" line per operation (test/clients/matrix.test.ts).
[$_, $addr, $p, $phase] = $argv;
$binary = ($argv[4] ?? '') === 'binary';
[$host, $port] = explode(':', $addr);
$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, $binary);
// append/prepend are refused with compression on; values are short anyway.
$m->setOption(Memcached::OPT_COMPRESSION, false);
$m->setOption(Memcached::OPT_CONNECT_TIMEOUT, 3000);
$m->setOption(Memcached::OPT_RECV_TIMEOUT, 3000000);
$m->setOption(Memcached::OPT_SEND_TIMEOUT, 3000000);
$m->addServer($host, (int)$port);
function out($name, $v) {
  if ($v === true) $v = 'true';
  elseif ($v === false) $v = 'false';
  elseif ($v === null) $v = 'miss';
  echo "$name $v\n";
}
function val($m, $v) { return $v === false && $m->getResultCode() === Memcached::RES_NOTFOUND ? null : $v; }
function multi($r, $p) {
  if (!is_array($r)) return var_export($r, true);
  $o = [];
  foreach ($r as $k => $v) $o[] = substr($k, strlen($p)) . "=$v";
  sort($o);
  return implode(',', $o);
}
if ($phase === 'ops') {
  out('flush', $m->flush());
  out('set_a', $m->set("{$p}a", 'alpha'));
  out('get_a', val($m, $m->get("{$p}a")));
  out('get_missing', val($m, $m->get("{$p}missing")));
  out('set_b', $m->set("{$p}b", 'beta'));
  out('multi', multi($m->getMulti(["{$p}a", "{$p}missing", "{$p}b"]), $p));
  out('add_existing', $m->add("{$p}a", 'x'));
  out('add_new', $m->add("{$p}c", 'gamma'));
  out('replace_missing', $m->replace("{$p}missing", 'x'));
  out('replace', $m->replace("{$p}c", 'delta'));
  out('append', $m->append("{$p}c", '+'));
  out('prepend', $m->prepend("{$p}c", '-'));
  out('get_c', val($m, $m->get("{$p}c")));
  out('set_n', $m->set("{$p}n", '10'));
  out('incr', $m->increment("{$p}n", 5));
  out('decr', $m->decrement("{$p}n", 2));
  out('incr_missing', val($m, $m->increment("{$p}nothing", 1)));
  $g = $m->get("{$p}a", null, Memcached::GET_EXTENDED);
  out('cas', $m->cas($g['cas'], "{$p}a", 'alpha2'));
  out('cas_stale', $m->cas($g['cas'], "{$p}a", 'alpha3'));
  out('get_a2', val($m, $m->get("{$p}a")));
  out('delete', $m->delete("{$p}a"));
  out('delete_missing', $m->delete("{$p}a"));
  out('get_deleted', val($m, $m->get("{$p}a")));
  out('touch', $m->touch("{$p}b", 100));
  out('touch_missing', $m->touch("{$p}missing", 100));
  $v = $m->getVersion();
  out('version', is_array($v) ? implode(',', $v) : $v);
  $s = $m->getStats();
  out('stats', is_array($s) && isset(array_values($s)[0]['pid']) ? 'ok' : var_export($s, true) . ' ' . $m->getResultMessage());
  out('flush_all', $m->flush());
  out('get_flushed', val($m, $m->get("{$p}b")));
} elseif ($phase === 'write') {
  $n = 0;
  for ($i = 0; $i < 20; $i++) if ($m->set("{$p}p$i", "v$i")) $n++;
  out('write', $n);
} else {
  $n = 0;
  $keys = [];
  for ($i = 0; $i < 20; $i++) { $keys[] = "{$p}p$i"; if ($m->get("{$p}p$i") === "v$i") $n++; }
  out('read', $n);
  $r = $m->getMulti($keys);
  $n = 0;
  for ($i = 0; $i < 20; $i++) if (is_array($r) && ($r["{$p}p$i"] ?? null) === "v$i") $n++;
  out('read_multi', $n);
}
