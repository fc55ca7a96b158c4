// The server's TLS certificate and key: the files the configuration names, or, with none named, a local CA and a
// server certificate TwinFlow makes under the data directory on first start (and reuses afterwards).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { colonFingerprint, createAuthority, createServerCertificate, fingerprintOf } from '../access/pki';
import type { Config } from './config';

/** A certificate or key file TwinFlow cannot use; the message names the file and what is wrong with it. */
export class TlsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsFileError';
  }
}

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** The local CA TwinFlow made (its certificate file and SHA-256 fingerprint), when it made one. */
  readonly localCa?: { readonly file: string; readonly fingerprint: string };
  /** The server certificate's file, for the banner. */
  readonly certFile: string;
}

/** How TwinFlow's TLS listeners (HTTPS and MQTT) accept connections: TLS 1.2 or newer, client certificates asked for. */
export function serverTlsOptions(material: TlsMaterial): tls.TlsOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: 'TLSv1.2',
    // Asked for, not required: devices with keys connect too, and TwinFlow checks a certificate against the
    // CAs and pins of the organization it names, which no one static CA list could express.
    requestCert: true,
    rejectUnauthorized: false,
  };
}

const read = (file: string, variable: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new TlsFileError(`${variable} (${file}) cannot be read: ${code}`);
  }
};

/** Checks a certificate and its key belong together and the certificate is current; throws TlsFileError. */
export function checkPair(cert: string, key: string, files: { cert: string; key: string }, now = Date.now()) {
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(cert);
  } catch {
    throw new TlsFileError(`TWINFLOW_TLS_CERT (${files.cert}) is not a PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TlsFileError(`TWINFLOW_TLS_KEY (${files.key}) is not a PEM private key`);
  }
  if (!parsed.checkPrivateKey(privateKey))
    throw new TlsFileError(`TWINFLOW_TLS_KEY (${files.key}) is not the key of ${files.cert}`);
  if (Date.parse(parsed.validTo) < now)
    throw new TlsFileError(`TWINFLOW_TLS_CERT (${files.cert}) expired on ${parsed.validTo}`);
  if (Date.parse(parsed.validFrom) > now)
    throw new TlsFileError(`TWINFLOW_TLS_CERT (${files.cert}) is not valid before ${parsed.validFrom}`);
  try {
    tls.createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (err) {
    throw new TlsFileError(`TWINFLOW_TLS_CERT (${files.cert}) cannot serve TLS: ${(err as Error).message}`);
  }
}

/** The names the local server certificate covers: this machine by name and loopback, and the configured host. */
function serverNames(host: string): { dns: string[]; ips: string[] } {
  const dns = ['localhost', os.hostname()];
  const ips = ['127.0.0.1', '::1'];
  if (/^[\d.]+$|:/.test(host)) {
    if (host !== '0.0.0.0' && host !== '::' && !ips.includes(host)) ips.push(host);
  } else if (!dns.includes(host)) dns.push(host);
  return { dns, ips };
}

/** Makes the local CA and server certificate on first start; later starts reuse the files. */
async function localMaterial(config: Config): Promise<TlsMaterial> {
  const dir = path.join(config.dataDir, 'tls');
  const files = {
    ca: path.join(dir, 'ca.pem'),
    caKey: path.join(dir, 'ca-key.pem'),
    cert: path.join(dir, 'server.pem'),
    key: path.join(dir, 'server-key.pem'),
  };
  if (!existsSync(files.cert) || !existsSync(files.key) || !existsSync(files.ca)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ca = await createAuthority('TwinFlow local CA', 3650);
    const server = await createServerCertificate(ca, serverNames(config.api.host), 825);
    writeFileSync(files.caKey, ca.keyPem, { mode: 0o600 });
    writeFileSync(files.key, server.keyPem, { mode: 0o600 });
    writeFileSync(files.ca, ca.certPem);
    writeFileSync(files.cert, server.certPem);
  }
  const cert = read(files.cert, 'the local server certificate');
  const key = read(files.key, 'the local server key');
  checkPair(cert, key, files);
  const caDer = new X509Certificate(read(files.ca, 'the local CA')).raw;
  return { cert, key, certFile: files.cert, localCa: { file: files.ca, fingerprint: fingerprintOf(caDer) } };
}

/** The TLS material to serve with; throws TlsFileError naming the file when one cannot be used. */
export async function loadTlsMaterial(config: Config): Promise<TlsMaterial> {
  const { certFile, keyFile } = config.tls;
  if (certFile === undefined || keyFile === undefined) return localMaterial(config);
  const cert = read(certFile, 'TWINFLOW_TLS_CERT');
  const key = read(keyFile, 'TWINFLOW_TLS_KEY');
  checkPair(cert, key, { cert: certFile, key: keyFile });
  return { cert, key, certFile };
}

/** The banner line naming the local CA to trust, with its fingerprint as openssl prints it. */
export const localCaLine = (ca: NonNullable<TlsMaterial['localCa']>): string =>
  `  TLS CA:          ${ca.file} (SHA-256 ${colonFingerprint(ca.fingerprint)})`;
