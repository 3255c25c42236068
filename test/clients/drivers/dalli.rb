# Matrix driver for ruby-dalli (the binary protocol): argv host:port prefix phase.
# Prints one "name result" line per operation (test/clients/matrix.test.ts).
require 'dalli'

addr, p, phase = ARGV
# raw: values are the strings given (no Marshal), which append and incr need;
# dalli 3.0 reads it per request.
m = Dalli::Client.new(addr, raw: true, socket_timeout: 3, down_retry_delay: 0)
$stdout.sync = true
def out(name, v)
  puts "#{name} #{v.nil? ? 'miss' : v}"
end
def b(v)
  v ? 'true' : 'false'
end

case phase
when 'ops'
  out('flush', b(m.flush))
  out('set_a', b(m.set("#{p}a", 'alpha', nil, raw: true)))
  out('get_a', m.get("#{p}a"))
  out('get_missing', m.get("#{p}missing"))
  out('set_b', b(m.set("#{p}b", 'beta', nil, raw: true)))
  r = m.get_multi("#{p}a", "#{p}missing", "#{p}b")
  out('multi', r.map { |k, v| "#{k.delete_prefix(p)}=#{v}" }.sort.join(','))
  out('add_existing', b(m.add("#{p}a", 'x', nil, raw: true)))
  out('add_new', b(m.add("#{p}c", 'gamma', nil, raw: true)))
  out('replace_missing', b(m.replace("#{p}missing", 'x', nil, raw: true)))
  out('replace', b(m.replace("#{p}c", 'delta', nil, raw: true)))
  out('append', b(m.append("#{p}c", '+')))
  out('prepend', b(m.prepend("#{p}c", '-')))
  out('get_c', m.get("#{p}c"))
  out('set_n', b(m.set("#{p}n", '10', nil, raw: true)))
  out('incr', m.incr("#{p}n", 5))
  out('decr', m.decr("#{p}n", 2))
  out('incr_missing', m.incr("#{p}nothing", 1))
  _, token = m.get_cas("#{p}a")
  out('cas', b(m.set_cas("#{p}a", 'alpha2', token, nil, raw: true)))
  out('cas_stale', b(m.set_cas("#{p}a", 'alpha3', token, nil, raw: true)))
  out('get_a2', m.get("#{p}a"))
  out('delete', b(m.delete("#{p}a")))
  out('delete_missing', b(m.delete("#{p}a")))
  out('get_deleted', m.get("#{p}a"))
  out('touch', b(m.touch("#{p}b", 100)))
  out('touch_missing', b(m.touch("#{p}missing", 100)))
  out('version', m.version.values.join(','))
  s = m.stats.values.first
  out('stats', s && s['pid'] ? 'ok' : s.inspect)
  out('flush_all', b(m.flush))
  out('get_flushed', m.get("#{p}b"))
when 'write'
  out('write', (0...20).count { |i| m.set("#{p}p#{i}", "v#{i}", nil, raw: true) })
else
  out('read', (0...20).count { |i| m.get("#{p}p#{i}") == "v#{i}" })
  r = m.get_multi((0...20).map { |i| "#{p}p#{i}" })
  out('read_multi', (0...20).count { |i| r["#{p}p#{i}"] == "v#{i}" })
end
