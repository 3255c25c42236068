// The --help text. Every magent flag appears with its short form first so that an
// operator moving a magent command line across can find each flag by its letter.
// Every option here also has a config file key (mcrelay.example.yml).

import { DEFAULTS } from './config.js';

/** workers: the default worker count on this machine, shown in the text */
export function helpText(workers: number): string {
  return `Usage: mcrelay [options] -s host:port [-s host:port ...] [-b host:port ...]
       mcrelay --config FILE [options]

mcrelay is a memcached proxy and a drop-in replacement for magent: it takes
magent's flags with magent's meaning. Writes go to a key's master and to its
backup; reads go to the master, and to the backup while the master is down.

Listening:
  -p, --port N              TCP port to listen on (default ${DEFAULTS.port}); 0 turns TCP
                            off and then needs -f
  -l, --listen ADDR         address to listen on (default ${DEFAULTS.host}).
                            Unlike magent, whose default was 0.0.0.0, mcrelay
                            listens on loopback only unless told otherwise:
                            pass -l 0.0.0.0 to serve other hosts
  -f, --unix-socket PATH    unix socket to listen on (default off). A file
                            that is not a socket, or a socket another process
                            answers on, is left alone and mcrelay does not
                            start; a stale socket is replaced
      --unix-socket-mode MODE
                            permissions of the unix socket, in octal (default
                            0${DEFAULTS.unixSocketMode.toString(8)}: the -u user and its group may connect)
  -n, --max-connections N   most client connections at once (default ${DEFAULTS.maxConnections})

TLS (toward clients):
      --tls-cert FILE       the listeners' certificate (PEM; with the chain
                            after it). Read again on SIGHUP: new connections
                            get the new one, open ones carry on
      --tls-key FILE        its private key (PEM, not encrypted)
      --tls-ca FILE         the CA that client certificates must chain to
      --tls-client-auth MODE
                            none (default), optional (a certificate presented
                            must verify) or require (a client without one the
                            CA signed is refused in the handshake)
      --tls-min-version V   TLSv1.2 (default) or TLSv1.3
      --tls-listen HOST:PORT
                            a TLS listener beside the plain ones; repeat for
                            each. Without it, every TCP listener (-l/-p)
                            speaks TLS and none plain. A unix socket stays plain

Servers:
  -s, --server HOST:PORT    a master memcached server; repeat for each one.
      --master HOST:PORT    The list order is part of the hash: give every proxy
                            the same list in the same order. PORT defaults to
                            ${DEFAULTS.port}; write IPv6 as [addr]:port
  -b, --backup HOST:PORT    a backup memcached server; repeat for each one
                            (default none). Every write also goes to the key's
                            backup; reads fall back to it while a master is down
  -k, --ketama              same as --distribution ketama
      --distribution NAME   how keys map to servers (default ${DEFAULTS.distribution}):
                              jump    jump consistent hash
                              ketama  md5 ketama ring as libketama and twemproxy
                                      build it (not magent -k's: see README)
                              magent  magent's default hash (without -k)
  -i, --connections-per-server N
                            pipelined connections each worker keeps to each
                            server (default ${DEFAULTS.connectionsPerServer}; magent's -i was the size of
                            its idle connection pool, default 20)
      --timeout MS          backend request timeout in ms (default ${DEFAULTS.timeoutMs})
      --failure-limit N     consecutive timeouts that mark a server down
                            (default ${DEFAULTS.failureLimit})
      --retry-interval MS   how often a down server is probed, in ms
                            (default ${DEFAULTS.retryIntervalMs})
      --max-item-size SIZE  largest value accepted, in bytes, or with a k or m
                            suffix as memcached's -I takes it (default 1m)
      --max-pending-bytes SIZE
                            most bytes held for values still arriving, over
                            all clients (split among the workers); a set past
                            it is refused with SERVER_ERROR out of memory
                            storing object (default 64m)
      --warmup-seconds N    how long a master that comes back is warmed from
                            the backup (misses read from the backup and copied
                            back); 0 turns warm-up off (default ${DEFAULTS.warmupSeconds})
      --warmup-done-ratio R warm-up ends early once fewer than this share of
                            the master's reads need the backup (default ${DEFAULTS.warmupDoneRatio})
      --journal-max-keys N  most keys remembered as written while a server is
                            unreachable, to invalidate when it returns
                            (default ${DEFAULTS.journalMaxKeys})
      --restore-keys-per-second N
                            a returning server gets every key of the other pool
                            back, copied at most this fast (default ${DEFAULTS.restoreKeysPerSecond})
      --restore-max-inflight N
                            copies in flight at once (default ${DEFAULTS.restoreMaxInflight})

Config file:
      --config FILE         read settings from a YAML file first (keys as in
                            mcrelay.example.yml); options given here override
                            it: -l, -p and -f replace parts of its first listen
                            address, -s, -b and -v replace its list or level.
                            SIGHUP reads the file again

Operations:
      --admin HOST:PORT|off HTTP listener for /metrics (Prometheus), /health,
                            /ready and /config (default ${DEFAULTS.admin.host}:${DEFAULTS.admin.port}); off
                            disables it
      --admin-token-file FILE
                            every admin endpoint but /health requires
                            "Authorization: Bearer <token>", the token read
                            from FILE (not readable by others; read again on
                            SIGHUP). Required for an admin address off
                            loopback, unless --admin-insecure
      --admin-insecure      allow an admin address off loopback without a token
      --admin-tls-cert FILE, --admin-tls-key FILE
                            serve the admin listener over HTTPS (PEM files,
                            read again on SIGHUP)
      --admin-tls-ca FILE   CA that client certificates are checked against
      --admin-tls-client-auth none|optional|require
                            ask for a client certificate (default none)
      --admin-tls-min-version TLSv1.2|TLSv1.3
                            oldest TLS version taken (default TLSv1.2)
      --backup-coverage-warn R
                            log a warning (at most once a minute) while a
                            backup holds less than this share of the keys its
                            masters hold, sampled from recent writes; /ready
                            then says redundancy is degraded (default ${DEFAULTS.backupCoverageWarn})
      --drain-seconds N     on SIGTERM or SIGINT, stop accepting and give
                            requests in flight up to N seconds to finish
                            (default ${DEFAULTS.drainSeconds})
      --switch-delay N      a reload that moves keys (servers added, removed,
                            re-ordered, another distribution) takes effect N
                            seconds after the first entry proxy's reload of
                            it, on every proxy that has reloaded by then
                            (default ${DEFAULTS.switchDelaySeconds})

Authentication (memcached -Y's; FILE holds user:password lines):
      --auth-file FILE      clients must first send the auth set (set <key> 0 0
                            <n>, data "user password") of a user in FILE;
                            others are answered as memcached -Y answers and
                            closed. Read again on SIGHUP
      --backend-auth-file FILE
                            send the first user of FILE as the auth set on
                            every connection to the servers (memcached -Y); a
                            server that refuses it is marked down
      --masters-auth-file FILE, --backups-auth-file FILE
                            the same for one pool, over --backend-auth-file

Commands:
  mcrelay ctl drain|undrain|status HOST:PORT [--admin HOST:PORT]
              [--admin-token-file FILE] [--admin-ca FILE]
              [--admin-cert FILE --admin-key FILE]
                            planned maintenance of a master, through a running
                            mcrelay's admin listener
  mcrelay plan --config NEW.yml [--current OLD.yml | --admin HOST:PORT]
               [--sample N] [--json]
                            before a change of the server pool: the keys each
                            server of NEW.yml would gain and lose, read from
                            the current backups (or masters, without backups);
                            the current pool from OLD.yml or a running
                            mcrelay's admin listener; --sample N reads at most
                            N keys per server and scales them up
  ctl and plan take the admin listener's token from --admin-token-file FILE;
  --admin-ca FILE makes them use HTTPS, checking its certificate against FILE,
  and --admin-cert and --admin-key give them a client certificate

Process:
      --workers N           worker threads, 1..256 (default: the number of CPUs,
                            ${workers} here)
  -u, --user USER           user to switch to after binding (when started as
                            root), by name or numeric id; supplementary groups
                            are dropped. The unix socket is given to this user
  -g, --group GROUP         group to switch to after binding (when started as
                            root), by name or numeric id (default: the -u
                            user's own group). An unknown user or group stops
                            the start before anything is bound (exit status 2)
  -D, --foreground          accepted for magent compatibility; mcrelay always
                            stays in the foreground (run it under a supervisor)
      --io fast|portable    how sockets are driven (default ${DEFAULTS.io}). fast: the
                            main thread accepts and hands each client to a
                            worker, which drives it through Node's internal
                            stream handles. portable: public APIs only
                            (net.Socket; each worker listens on the port with
                            reusePort), for a Node that lacks or refuses the
                            internals, as node --permission does; taken by
                            itself, with a warning, when they are missing.
                            portable serves no unix socket (-f) and cannot
                            switch user (-u, -g)
  -v, --verbose             log more; repeat (-vv) to log more still
  -h, --help                print this help and exit
  -V, --version             print the version and exit

Options take their value as -p 12000, -p12000, --port 12000 or --port=12000;
flags without a value can be grouped (-vD); -- ends the options.

Example (magent's command line, unchanged):
  mcrelay -u root -n 102400 -l 127.0.0.1 -p 12000 \\
          -s 127.0.0.1:11211 -s 127.0.0.1:11212 -b 127.0.0.1:12002
`;
}
