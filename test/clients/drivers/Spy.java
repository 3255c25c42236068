// Matrix driver for spymemcached: argv host:port prefix phase [binary].
// Prints one "name result" line per operation (test/clients/matrix.test.ts).
import java.util.*;
import net.spy.memcached.*;

public class Spy {
  static void out(String name, Object v) { System.out.println(name + " " + (v == null ? "miss" : v)); }

  public static void main(String[] a) throws Exception {
    String p = a[1], phase = a[2];
    ConnectionFactory f = a.length > 3 && a[3].equals("binary") ? new BinaryConnectionFactory() : new DefaultConnectionFactory();
    MemcachedClient m = new MemcachedClient(f, AddrUtil.getAddresses(a[0]));
    try {
      if (phase.equals("ops")) ops(m, p);
      else if (phase.equals("write")) {
        int n = 0;
        for (int i = 0; i < 20; i++) if (m.set(p + "p" + i, 0, "v" + i).get()) n++;
        out("write", n);
      } else {
        int n = 0;
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < 20; i++) { keys.add(p + "p" + i); if (("v" + i).equals(m.get(p + "p" + i))) n++; }
        out("read", n);
        Map<String, Object> r = m.getBulk(keys);
        n = 0;
        for (int i = 0; i < 20; i++) if (("v" + i).equals(r.get(p + "p" + i))) n++;
        out("read_multi", n);
      }
    } finally {
      m.shutdown();
    }
  }

  static void ops(MemcachedClient m, String p) throws Exception {
    out("flush", m.flush().get());
    out("set_a", m.set(p + "a", 0, "alpha").get());
    out("get_a", m.get(p + "a"));
    out("get_missing", m.get(p + "missing"));
    out("set_b", m.set(p + "b", 0, "beta").get());
    Map<String, Object> r = m.getBulk(p + "a", p + "missing", p + "b");
    List<String> kv = new ArrayList<>();
    for (Map.Entry<String, Object> e : r.entrySet()) kv.add(e.getKey().substring(p.length()) + "=" + e.getValue());
    Collections.sort(kv);
    out("multi", String.join(",", kv));
    out("add_existing", m.add(p + "a", 0, "x").get());
    out("add_new", m.add(p + "c", 0, "gamma").get());
    out("replace_missing", m.replace(p + "missing", 0, "x").get());
    out("replace", m.replace(p + "c", 0, "delta").get());
    out("append", m.append(0, p + "c", "+").get());
    out("prepend", m.prepend(0, p + "c", "-").get());
    out("get_c", m.get(p + "c"));
    out("set_n", m.set(p + "n", 0, "10").get());
    out("incr", m.incr(p + "n", 5));
    out("decr", m.decr(p + "n", 2));
    long im = m.incr(p + "nothing", 1);
    out("incr_missing", im == -1 ? null : im);
    CASValue<Object> g = m.gets(p + "a");
    out("cas", m.cas(p + "a", g.getCas(), "alpha2") == CASResponse.OK);
    out("cas_stale", m.cas(p + "a", g.getCas(), "alpha3") == CASResponse.OK);
    out("get_a2", m.get(p + "a"));
    out("delete", m.delete(p + "a").get());
    out("delete_missing", m.delete(p + "a").get());
    out("get_deleted", m.get(p + "a"));
    out("touch", m.touch(p + "b", 100).get());
    out("touch_missing", m.touch(p + "missing", 100).get());
    out("version", String.join(",", m.getVersions().values()));
    Map<java.net.SocketAddress, Map<String, String>> s = m.getStats();
    out("stats", s.size() == 1 && s.values().iterator().next().containsKey("pid") ? "ok" : s.toString());
    out("flush_all", m.flush().get());
    out("get_flushed", m.get(p + "b"));
  }
}
