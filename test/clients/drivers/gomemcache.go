// Matrix driver for github.com/bradfitz/gomemcache: argv host:port prefix phase.
// Prints one "name result" line per operation (test/clients/matrix.test.ts).
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

func main() {
	addr, p, phase := os.Args[1], os.Args[2], os.Args[3]
	m := memcache.New(addr)
	m.Timeout = 3 * time.Second
	out := func(name string, v interface{}) { fmt.Printf("%s %v\n", name, v) }
	ok := func(err error) string {
		if err == nil {
			return "true"
		}
		if err == memcache.ErrNotStored || err == memcache.ErrCacheMiss || err == memcache.ErrCASConflict {
			return "false"
		}
		return "error:" + err.Error()
	}
	get := func(k string) string {
		it, err := m.Get(k)
		if err == memcache.ErrCacheMiss {
			return "miss"
		}
		if err != nil {
			return "error:" + err.Error()
		}
		return string(it.Value)
	}
	set := func(k, v string) error { return m.Set(&memcache.Item{Key: k, Value: []byte(v)}) }
	switch phase {
	case "ops":
		out("flush", ok(m.FlushAll()))
		out("set_a", ok(set(p+"a", "alpha")))
		out("get_a", get(p+"a"))
		out("get_missing", get(p+"missing"))
		out("set_b", ok(set(p+"b", "beta")))
		r, err := m.GetMulti([]string{p + "a", p + "missing", p + "b"})
		if err != nil {
			out("multi", "error:"+err.Error())
		} else {
			var kv []string
			for k, it := range r {
				kv = append(kv, strings.TrimPrefix(k, p)+"="+string(it.Value))
			}
			sort.Strings(kv)
			out("multi", strings.Join(kv, ","))
		}
		out("add_existing", ok(m.Add(&memcache.Item{Key: p + "a", Value: []byte("x")})))
		out("add_new", ok(m.Add(&memcache.Item{Key: p + "c", Value: []byte("gamma")})))
		out("replace_missing", ok(m.Replace(&memcache.Item{Key: p + "missing", Value: []byte("x")})))
		out("replace", ok(m.Replace(&memcache.Item{Key: p + "c", Value: []byte("delta")})))
		// this gomemcache has no append or prepend: write what they would have made
		out("append", "n/a")
		out("prepend", "n/a")
		set(p+"c", "-delta+")
		out("get_c", get(p+"c"))
		out("set_n", ok(set(p+"n", "10")))
		num := func(n uint64, err error) string {
			if err != nil {
				return "error:" + err.Error()
			}
			return fmt.Sprint(n)
		}
		out("incr", num(m.Increment(p+"n", 5)))
		out("decr", num(m.Decrement(p+"n", 2)))
		_, err = m.Increment(p+"nothing", 1)
		if err == memcache.ErrCacheMiss {
			out("incr_missing", "miss")
		} else {
			out("incr_missing", ok(err))
		}
		it, _ := m.Get(p + "a")
		it.Value = []byte("alpha2")
		out("cas", ok(m.CompareAndSwap(it)))
		it.Value = []byte("alpha3")
		out("cas_stale", ok(m.CompareAndSwap(it)))
		out("get_a2", get(p+"a"))
		out("delete", ok(m.Delete(p+"a")))
		out("delete_missing", ok(m.Delete(p+"a")))
		out("get_deleted", get(p+"a"))
		out("touch", ok(m.Touch(p+"b", 100)))
		out("touch_missing", ok(m.Touch(p+"missing", 100)))
		out("version", "n/a")
		out("stats", "n/a")
		out("flush_all", ok(m.FlushAll()))
		out("get_flushed", get(p+"b"))
	case "write":
		c := 0
		for i := 0; i < 20; i++ {
			if set(fmt.Sprintf("%sp%d", p, i), fmt.Sprintf("v%d", i)) == nil {
				c++
			}
		}
		out("write", c)
	default:
		c := 0
		var keys []string
		for i := 0; i < 20; i++ {
			keys = append(keys, fmt.Sprintf("%sp%d", p, i))
			if get(keys[i]) == fmt.Sprintf("v%d", i) {
				c++
			}
		}
		out("read", c)
		r, _ := m.GetMulti(keys)
		c = 0
		for i, k := range keys {
			if it, found := r[k]; found && string(it.Value) == fmt.Sprintf("v%d", i) {
				c++
			}
		}
		out("read_multi", c)
	}
}
