// The security options (issue 18; README "Security"): TLS toward clients and
// the pools' servers, the admin listener's token and TLS, and the password
// files. Their part of the option table and of the draft, and what each flag
// does to it; config/options.ts holds the rest and builds the one-line errors.
//
//   --tls-* --> draft.tls (config/tls.ts reads the files)
//   --admin-token-file, --admin-insecure, --admin-tls-* --> draft.admin* (argv.ts checks them)
//   --auth-file, --backend-auth-file, --masters-/--backups-auth-file --> draft.auth (config/auth-file.ts)

import { parseListenAddress } from './config.js';
import type { AuthPaths } from './file.js';
import {
  CLIENT_AUTH_EXPECTED, emptyTlsDraft, parseClientAuth, parseTlsVersion, TLS_VERSION_EXPECTED,
  type ClientAuth, type ServerTlsDraft, type TlsDraft, type TlsVersion,
} from './tls.js';

export type SecurityOptionId =
  | 'tlsCert' | 'tlsKey' | 'tlsCa' | 'tlsClientAuth' | 'tlsMinVersion' | 'tlsListen'
  | 'adminTokenFile' | 'adminInsecure' | 'adminTlsCert' | 'adminTlsKey' | 'adminTlsCa' | 'adminTlsClientAuth' | 'adminTlsMinVersion'
  | 'authFile' | 'backendAuthFile' | 'mastersAuthFile' | 'backupsAuthFile';

export const SECURITY_OPTIONS: ReadonlyArray<{ id: SecurityOptionId; short: null; long: readonly string[]; takesValue: boolean }> = [
  { id: 'tlsCert', short: null, long: ['tls-cert'], takesValue: true },
  { id: 'tlsKey', short: null, long: ['tls-key'], takesValue: true },
  { id: 'tlsCa', short: null, long: ['tls-ca'], takesValue: true },
  { id: 'tlsClientAuth', short: null, long: ['tls-client-auth'], takesValue: true },
  { id: 'tlsMinVersion', short: null, long: ['tls-min-version'], takesValue: true },
  { id: 'tlsListen', short: null, long: ['tls-listen'], takesValue: true },
  { id: 'adminTokenFile', short: null, long: ['admin-token-file'], takesValue: true },
  { id: 'adminInsecure', short: null, long: ['admin-insecure'], takesValue: false },
  { id: 'adminTlsCert', short: null, long: ['admin-tls-cert'], takesValue: true },
  { id: 'adminTlsKey', short: null, long: ['admin-tls-key'], takesValue: true },
  { id: 'adminTlsCa', short: null, long: ['admin-tls-ca'], takesValue: true },
  { id: 'adminTlsClientAuth', short: null, long: ['admin-tls-client-auth'], takesValue: true },
  { id: 'adminTlsMinVersion', short: null, long: ['admin-tls-min-version'], takesValue: true },
  { id: 'authFile', short: null, long: ['auth-file'], takesValue: true },
  { id: 'backendAuthFile', short: null, long: ['backend-auth-file'], takesValue: true },
  { id: 'mastersAuthFile', short: null, long: ['masters-auth-file'], takesValue: true },
  { id: 'backupsAuthFile', short: null, long: ['backups-auth-file'], takesValue: true },
];

/** The security settings as they accumulate (options.ts's Draft extends this). */
export interface SecurityDraft {
  /** the client listeners' TLS (config/tls.ts), files not read yet */
  tls: TlsDraft;
  /** set while tls.listen is still the file's: the first --tls-listen replaces it */
  tlsListenFromFile: boolean;
  /** the pools' TLS toward their servers (the file's masters_tls, backups_tls) */
  mastersTls: ServerTlsDraft | null;
  backupsTls: ServerTlsDraft | null;
  // The admin listener's security, as given (paths made absolute by argv.ts); admin_tls field by field.
  adminTokenFile: string | null;
  adminInsecure: boolean;
  adminTlsCert: string | null;
  adminTlsKey: string | null;
  adminTlsCa: string | null;
  adminTlsClientAuth: ClientAuth | null;
  adminTlsMinVersion: TlsVersion | null;
  /** password file paths as given (read once the settings are all known) */
  auth: AuthPaths;
}

export function securityDraft(): SecurityDraft {
  return {
    tls: emptyTlsDraft(),
    tlsListenFromFile: false,
    mastersTls: null,
    backupsTls: null,
    adminTokenFile: null,
    adminInsecure: false,
    adminTlsCert: null,
    adminTlsKey: null,
    adminTlsCa: null,
    adminTlsClientAuth: null,
    adminTlsMinVersion: null,
    auth: {},
  };
}

/** Applies one security option; returns null, or what was expected instead of `v` (options.ts words the error). */
export function applySecurity(draft: SecurityDraft, id: SecurityOptionId, v: string): string | null {
  switch (id) {
    case 'tlsClientAuth':
    case 'adminTlsClientAuth': {
      const a = parseClientAuth(v);
      if (a === null) return CLIENT_AUTH_EXPECTED;
      if (id === 'tlsClientAuth') draft.tls.clientAuth = a;
      else draft.adminTlsClientAuth = a;
      return null;
    }
    case 'tlsMinVersion':
    case 'adminTlsMinVersion': {
      const t = parseTlsVersion(v);
      if (t === null) return TLS_VERSION_EXPECTED;
      if (id === 'tlsMinVersion') draft.tls.minVersion = t;
      else draft.adminTlsMinVersion = t;
      return null;
    }
    case 'tlsListen': {
      const a = parseListenAddress(v, false);
      if (typeof a === 'string') return a;
      if (draft.tlsListenFromFile || draft.tls.listen === null) draft.tls.listen = [];
      draft.tlsListenFromFile = false;
      if (!draft.tls.listen.some((l) => l.port === a.port && l.host.toLowerCase() === a.host.toLowerCase())) draft.tls.listen.push(a);
      return null;
    }
    case 'adminInsecure':
      draft.adminInsecure = true;
      return null;
    case 'authFile':
    case 'backendAuthFile':
    case 'mastersAuthFile':
    case 'backupsAuthFile':
      if (v === '') return 'expected the path of a user:password file';
      draft.auth[id] = v;
      return null;
    default:
      if (v === '') return 'expected a file path';
      if (id === 'tlsCert') draft.tls.cert = v;
      else if (id === 'tlsKey') draft.tls.key = v;
      else if (id === 'tlsCa') draft.tls.ca = v;
      else if (id === 'adminTokenFile') draft.adminTokenFile = v;
      else if (id === 'adminTlsCert') draft.adminTlsCert = v;
      else if (id === 'adminTlsKey') draft.adminTlsKey = v;
      else draft.adminTlsCa = v;
      return null;
  }
}
