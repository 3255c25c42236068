// Certificates for the tls scenario, made at run time with the openssl command
// line in the bench's temporary log folder: a CA, and a server certificate for
// 127.0.0.1 and localhost it signed (EC P-256, no passphrase). memcached -Z and
// mcrelay --tls-cert serve the same certificate; the load trusts the CA.
// (test/helpers/certs.ts makes a fuller set for the tests; the bench does not
// import test code.)
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BenchCerts {
  /** the CA the load is given (--cacert) */
  ca: string;
  /** the server's certificate and key, PEM */
  cert: string;
  key: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

const SERVER_EXTENSIONS = [
  'basicConstraints = CA:FALSE',
  'keyUsage = critical, digitalSignature',
  'extendedKeyUsage = serverAuth',
  'subjectAltName = IP:127.0.0.1, DNS:localhost',
  '',
].join('\n');

/** Makes the CA and the server certificate in `dir` (created if missing); throws with openssl's message. */
export function makeBenchCerts(dir: string): BenchCerts {
  mkdirSync(dir, { recursive: true });
  const run = (args: readonly string[]): void => {
    try {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      throw new Error(`the tls scenario's certificates: openssl ${args[0]} failed: ${e.stderr?.toString().trim() || e.message}`);
    }
  };
  writeFileSync(join(dir, 'server.cnf'), SERVER_EXTENSIONS);
  run(['req', '-x509', ...EC_KEY, '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=mcrelay-bench-ca', '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', ...EC_KEY, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', 'server.cnf', '-out', 'server.pem']);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}
