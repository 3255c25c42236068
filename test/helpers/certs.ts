// Certificates for TLS tests, made with the openssl command line (Debian's) in a
// temporary folder: a CA, a server certificate for 127.0.0.1, ::1 and localhost
// signed by it, a client certificate signed by it, an expired server
// certificate signed by it, and an unrelated CA for wrong-CA tests.
//
//   ca (CN mcrelay-test-ca) --signs--> server (serverAuth), client (clientAuth), expired
//   otherCa (CN mcrelay-test-other-ca): self-signed, signs nothing
//
// Keys are EC P-256 without a passphrase: quick to make, and every TLS client
// the suite uses takes them.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Certs {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** a server certificate for the same names, signed by the CA, whose validity ended before it began */
  readonly expiredCert: string;
  readonly expiredKey: string;
  readonly otherCaCert: string;
  readonly otherCaKey: string;
}

function openssl(args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err !== null) reject(new Error(`openssl ${args[0]} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl(['req', '-x509', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${cn}`, '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
}

/** A key and a certificate signed by ca.pem, with the extensions of section `ext` of ext.cnf; days < 0 makes it expired. */
async function makeLeaf(dir: string, name: string, cn: string, ext: string, days: number): Promise<void> {
  await openssl(['req', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', String(days), '-extfile', 'ext.cnf', '-extensions', ext, '-out', `${name}.pem`], dir);
}

const EXTENSIONS = `[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost

[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
`;

/**
 * Makes the certificates in dir (made if missing; a new temporary folder when not given) and
 * returns their paths, all PEM. The caller removes the folder.
 */
export async function makeCerts(dir?: string): Promise<Certs> {
  const at = dir ?? await mkdtemp(path.join(tmpdir(), 'mcrelay-certs-'));
  await mkdir(at, { recursive: true });
  await writeFile(path.join(at, 'ext.cnf'), EXTENSIONS);
  await Promise.all([makeCa(at, 'ca', 'mcrelay-test-ca'), makeCa(at, 'other-ca', 'mcrelay-test-other-ca')]);
  // One after another: -CAcreateserial writes ca.srl.
  await makeLeaf(at, 'server', 'localhost', 'server', 30);
  await makeLeaf(at, 'client', 'mcrelay-test-client', 'client', 30);
  await makeLeaf(at, 'expired', 'localhost', 'server', -1);
  const p = (f: string): string => path.join(at, f);
  return {
    dir: at,
    caCert: p('ca.pem'), caKey: p('ca.key'),
    serverCert: p('server.pem'), serverKey: p('server.key'),
    clientCert: p('client.pem'), clientKey: p('client.key'),
    expiredCert: p('expired.pem'), expiredKey: p('expired.key'),
    otherCaCert: p('other-ca.pem'), otherCaKey: p('other-ca.key'),
  };
}
