// X.509 for TwinFlow: the local CA and server certificate made on first start, the CAs TwinFlow manages for
// organizations, and device certificates signed from CSRs. Generation uses @peculiar/x509 (it builds and signs
// certificates and reads CSRs on Node's WebCrypto, with no native code); reading and checking certificates
// uses Node's own crypto.X509Certificate.
import 'reflect-metadata';
import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

// The library signs with WebCrypto: Node's own.
x509.cryptoProvider.set(webcrypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Certificates start a little in the past, so a clock slightly behind does not call them not yet valid. */
const BACKDATE_MS = 5 * 60_000;

export interface KeyPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/** SHA-256 of the DER certificate, lower-case hex without separators: how TwinFlow names certificates. */
export const fingerprintOf = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex');

/** Lower-case hex with colons, as openssl prints it (`openssl x509 -fingerprint -sha256`). */
export const colonFingerprint = (hex: string): string => hex.toUpperCase().replace(/(..)(?!$)/g, '$1:');

/** The PEM's certificate, or undefined when it is not one. */
export function parseCertificate(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** Whether `now` lies within the certificate's validity. */
export function isCurrent(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/** The value of the subject's CN, if it has one. */
export function commonNameOf(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/** The first URI subject alternative name starting with `prefix`, without the prefix. */
export function uriNameOf(cert: X509Certificate, prefix: string): string | undefined {
  for (const part of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (part.startsWith(`URI:${prefix}`)) return part.slice(4 + prefix.length);
  }
  return undefined;
}

const serial = () => {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return Buffer.from(bytes).toString('hex');
};

const pemOfKey = async (key: CryptoKey) =>
  x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');

async function importKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new Error('not a PEM private key');
  return webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
}

const newKeys = (): Promise<CryptoKeyPair> => webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);

/** A new self-signed CA (ECDSA P-256) for `days`. */
export async function createAuthority(name: string, days: number, now = Date.now()): Promise<KeyPair> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name.replace(/[,=+<>#;\\"]/g, ' ')}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + days * DAY_MS),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await pemOfKey(keys.privateKey) };
}

interface IssueOptions {
  readonly subject: string;
  readonly publicKey: x509.PublicKey | CryptoKey;
  readonly days: number;
  readonly usage: 'server' | 'client';
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  readonly uris?: readonly string[];
  readonly now?: number;
}

/** A certificate for `publicKey`, signed by the CA. */
async function issue(ca: KeyPair, o: IssueOptions): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const names: x509.JsonGeneralName[] = [
    ...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(o.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(o.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const now = o.now ?? Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: o.subject,
    issuer: caCert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + o.days * DAY_MS),
    publicKey: o.publicKey,
    signingKey: await importKey(ca.keyPem),
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        [o.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return cert.toString('pem');
}

/** A server certificate and key for these host names and addresses, signed by the CA. */
export async function createServerCertificate(
  ca: KeyPair,
  hosts: { dns: readonly string[]; ips: readonly string[] },
  days: number,
): Promise<KeyPair> {
  const keys = await newKeys();
  const certPem = await issue(ca, {
    subject: `CN=${hosts.dns[0] ?? 'localhost'}`,
    publicKey: keys.publicKey,
    days,
    usage: 'server',
    dns: hosts.dns,
    ips: hosts.ips,
  });
  return { certPem, keyPem: await pemOfKey(keys.privateKey) };
}

export class CsrError extends Error {}

/**
 * Signs a device's CSR with a CA TwinFlow manages. The subject is TwinFlow's, not the CSR's: the device id
 * goes in the CN and, with `uriPrefix`, in a URI SAN. Throws CsrError when the CSR is not a valid one.
 */
export async function signCsr(
  ca: KeyPair,
  csrPem: string,
  device: { id: string; days: number; uriPrefix?: string },
): Promise<string> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new CsrError('not a PEM certificate signing request');
  }
  if (!(await csr.verify().catch(() => false)))
    throw new CsrError('the CSR is not signed by its own key (its signature does not verify)');
  return issue(ca, {
    subject: `CN=${device.id}`,
    publicKey: csr.publicKey,
    days: device.days,
    usage: 'client',
    ...(device.uriPrefix !== undefined ? { uris: [`${device.uriPrefix}${device.id}`] } : {}),
  });
}

/** A device key pair and certificate signed by the CA, for tests and benchmarks that need a device. */
export async function createClientCertificate(
  ca: KeyPair,
  subjectCn: string,
  options: { days?: number; now?: number; uris?: readonly string[] } = {},
): Promise<KeyPair> {
  const keys = await newKeys();
  const certPem = await issue(ca, {
    subject: `CN=${subjectCn}`,
    publicKey: keys.publicKey,
    days: options.days ?? 30,
    usage: 'client',
    ...(options.now !== undefined ? { now: options.now } : {}),
    ...(options.uris !== undefined ? { uris: options.uris } : {}),
  });
  return { certPem, keyPem: await pemOfKey(keys.privateKey) };
}

/** A CSR for a new key, as `openssl req -new` would make; for tests and the README's flow. */
export async function createCsr(subjectCn: string): Promise<{ csrPem: string; keyPem: string }> {
  const keys = await newKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${subjectCn}`,
    keys,
    signingAlgorithm: EC,
  });
  return { csrPem: csr.toString('pem'), keyPem: await pemOfKey(keys.privateKey) };
}
