"""Matrix driver for Python clients: argv lib host:port prefix phase [binary].

lib is pylibmc, memcache (python-memcached) or pymemcache. Prints one
"name result" line per operation (test/clients/matrix.test.ts).
"""
import sys

lib, addr, p, phase = sys.argv[1:5]
binary = len(sys.argv) > 5 and sys.argv[5] == 'binary'
host, port = addr.split(':')


def out(name, v):
    if v is True:
        v = 'true'
    elif v is False:
        v = 'false'
    elif v is None:
        v = 'miss'
    elif isinstance(v, bytes):
        v = v.decode()
    print(name, v, flush=True)


def multi(r):
    return ','.join(sorted(k[len(p):] + '=' + (v.decode() if isinstance(v, bytes) else v) for k, v in r.items()))


if lib == 'pylibmc':
    import pylibmc
    m = pylibmc.Client([addr], binary=binary, behaviors={'cas': True, 'connect_timeout': 3000, 'receive_timeout': 3000000, 'send_timeout': 3000000})

    def incr(k, d):
        try:
            return m.incr(k, d)
        except pylibmc.NotFound:
            return None

    def decr(k, d):
        return m.decr(k, d)
    gets = m.gets
    cas = m.cas
    flush = m.flush_all
    version = lambda: 'n/a'  # pylibmc has no version call
    stats = lambda: 'ok' if 'pid' in m.get_stats()[0][1] else 'no pid'
    set_, get, add, replace, append, prepend, delete, touch, get_multi = m.set, m.get, m.add, m.replace, m.append, m.prepend, m.delete, m.touch, m.get_multi
elif lib == 'memcache':
    import memcache
    m = memcache.Client([addr], cache_cas=True, socket_timeout=3)
    incr, decr = m.incr, m.decr

    def flush():
        m.flush_all()  # returns nothing: an error raises
        return True

    def gets(k):
        return (m.gets(k), None)

    def cas(k, v, _token):
        # python-memcached keeps the token from gets itself (cache_cas)
        return m.cas(k, v)
    version = lambda: m.get_stats()[0][1]['version']
    stats = lambda: 'ok' if 'pid' in m.get_stats()[0][1] else 'no pid'
    set_, get, add, replace, append, prepend, delete, touch, get_multi = m.set, m.get, m.add, m.replace, m.append, m.prepend, m.delete, m.touch, m.get_multi
else:
    from pymemcache.client.base import Client
    m = Client((host, int(port)), default_noreply=False, connect_timeout=3, timeout=3)
    incr, decr, gets, cas = m.incr, m.decr, m.gets, m.cas
    flush = m.flush_all
    version = m.version
    stats = lambda: 'ok' if b'pid' in m.stats() else 'no pid'
    set_, get, add, replace, append, prepend, delete, touch, get_multi = m.set, m.get, m.add, m.replace, m.append, m.prepend, m.delete, m.touch, m.get_many

def b(f, *a):
    """f(*a) as a bool, or the exception a library raises for a refusal."""
    try:
        return bool(f(*a))
    except Exception as e:  # noqa: BLE001 -- the library's own error is the result
        return 'exc:' + type(e).__name__


if phase == 'ops':
    out('flush', b(flush))
    out('set_a', b(set_, p + 'a', 'alpha'))
    out('get_a', get(p + 'a'))
    out('get_missing', get(p + 'missing'))
    out('set_b', b(set_, p + 'b', 'beta'))
    out('multi', multi(get_multi([p + 'a', p + 'missing', p + 'b'])))
    out('add_existing', b(add, p + 'a', 'x'))
    out('add_new', b(add, p + 'c', 'gamma'))
    out('replace_missing', b(replace, p + 'missing', 'x'))
    out('replace', b(replace, p + 'c', 'delta'))
    out('append', b(append, p + 'c', '+'))
    out('prepend', b(prepend, p + 'c', '-'))
    out('get_c', get(p + 'c'))
    out('set_n', b(set_, p + 'n', '10'))
    out('incr', incr(p + 'n', 5))
    out('decr', decr(p + 'n', 2))
    out('incr_missing', incr(p + 'nothing', 1))
    _, token = gets(p + 'a')
    out('cas', b(cas, p + 'a', 'alpha2', token))
    out('cas_stale', b(cas, p + 'a', 'alpha3', token))
    out('get_a2', get(p + 'a'))
    out('delete', b(delete, p + 'a'))
    out('delete_missing', b(delete, p + 'a'))
    out('get_deleted', get(p + 'a'))
    out('touch', b(touch, p + 'b', 100))
    out('touch_missing', b(touch, p + 'missing', 100))
    out('version', version())
    out('stats', stats())
    out('flush_all', b(flush))
    out('get_flushed', get(p + 'b'))
elif phase == 'write':
    out('write', sum(1 for i in range(20) if set_(p + 'p%d' % i, 'v%d' % i)))
else:
    def s(v):
        return v.decode() if isinstance(v, bytes) else v
    out('read', sum(1 for i in range(20) if s(get(p + 'p%d' % i)) == 'v%d' % i))
    r = get_multi([p + 'p%d' % i for i in range(20)])
    out('read_multi', sum(1 for i in range(20) if s(r.get(p + 'p%d' % i)) == 'v%d' % i))
