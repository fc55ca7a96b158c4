// Device certificates on the north API: the CAs an organization trusts (registered, or managed by TwinFlow),
// and each device's certificates (pinned, issued from a CSR, rotated, revoked) and credential policy.
import { X509Certificate } from 'node:crypto';
import type { Context } from 'hono';
import { z } from 'zod';
import { createAuthority, CsrError, fingerprintOf, isCurrent, signCsr } from '../../access/pki';
import type { CertificateAuthorityDoc, DeviceCertificateDoc } from '../../inventory/documents';
import { can, RouteGroup } from '../access/route-group';
import { audit } from '../audit';
import { type AppEnv, actorOf } from '../context';
import { ApiError } from '../errors';
import { deviceIdParam, patternParam } from '../validation';

export const authoritiesRoutes = new RouteGroup('/north/v1/certificate-authorities');
export const deviceCertificatesRoutes = new RouteGroup('/north/v1/devices/:deviceId');
const tag = 'Certificates';

const FINGERPRINT = patternParam(/^[0-9a-f]{64}$/, (raw) => `certificate ${raw} not found`);
const DEVICE_ID = deviceIdParam();
const pem = z.string().min(64).max(16_384);
const days = z.number().int().min(1).max(3_650);

const authoritySchema = z.union([
  z
    .object({
      name: z.string().min(1).max(100),
      certificate: pem,
      deviceIdFrom: z.enum(['cn', 'san-uri']).default('cn'),
      uriPrefix: z.string().min(1).max(200).optional(),
    })
    .strict(),
  z
    .object({ name: z.string().min(1).max(100), managed: z.literal(true), days: days.default(3_650) })
    .strict(),
]);
const issueSchema = z.union([
  z.object({ certificate: pem }).strict(),
  z.object({ csr: pem, days: days.default(365) }).strict(),
]);
const rotateSchema = z.object({ csr: pem, days: days.default(365) }).strict();
const policySchema = z.object({ certificatesOnly: z.boolean() }).strict();

const authorityView = (a: Omit<CertificateAuthorityDoc, 'keyPem'>) => ({
  id: a.fingerprint,
  name: a.name,
  subject: a.subject,
  managed: a.managed,
  deviceIdFrom: a.deviceIdFrom,
  ...(a.uriPrefix !== undefined ? { uriPrefix: a.uriPrefix } : {}),
  notBefore: a.notBefore.toISOString(),
  notAfter: a.notAfter.toISOString(),
  certificate: a.pem,
  createdAt: a.createdAt.toISOString(),
});

const certificateView = (d: DeviceCertificateDoc, pemText?: string) => ({
  fingerprint: d._id,
  deviceId: d.deviceId,
  source: d.source,
  ...(d.subject !== undefined ? { subject: d.subject } : {}),
  ...(d.issuer !== undefined ? { issuer: d.issuer } : {}),
  ...(d.serial !== undefined ? { serial: d.serial } : {}),
  ...(d.notBefore !== undefined ? { notBefore: d.notBefore.toISOString() } : {}),
  ...(d.notAfter !== undefined ? { notAfter: d.notAfter.toISOString() } : {}),
  createdAt: d.createdAt.toISOString(),
  ...(d.revokedAt !== undefined ? { revokedAt: d.revokedAt.toISOString() } : {}),
  ...(d.replacedBy !== undefined ? { replacedBy: d.replacedBy } : {}),
  ...(pemText !== undefined ? { certificate: pemText } : {}),
});

function parsePem(text: string, what: string): X509Certificate {
  try {
    return new X509Certificate(text);
  } catch {
    throw new ApiError('INVALID_ARGUMENT', `${what} is not a PEM certificate`);
  }
}

/** A CA document from a certificate (registered) or a new key pair (managed). */
async function newAuthority(
  c: Context<AppEnv>,
  body: z.output<typeof authoritySchema>,
): Promise<CertificateAuthorityDoc> {
  const principal = c.get('principal');
  const now = c.get('services').now();
  const made = 'managed' in body ? await createAuthority(body.name, body.days, now) : undefined;
  const cert = parsePem(made?.certPem ?? ('certificate' in body ? body.certificate : ''), 'certificate');
  if (!cert.ca)
    throw new ApiError('INVALID_ARGUMENT', 'the certificate is not a CA (basicConstraints CA:FALSE)');
  if (!isCurrent(cert, now))
    throw new ApiError('INVALID_ARGUMENT', 'the CA certificate is expired or not yet valid');
  const fingerprint = fingerprintOf(cert.raw);
  const rule = 'managed' in body ? { deviceIdFrom: 'cn' as const } : body;
  if (rule.deviceIdFrom === 'san-uri' && !('uriPrefix' in rule && rule.uriPrefix))
    throw new ApiError('INVALID_ARGUMENT', 'deviceIdFrom san-uri needs a uriPrefix (for example urn:dev:)');
  return {
    _id: `${principal.org}/${fingerprint}`,
    org: principal.org,
    fingerprint,
    name: body.name,
    subject: cert.subject,
    pem: cert.toString(),
    deviceIdFrom: rule.deviceIdFrom,
    ...('uriPrefix' in rule && rule.uriPrefix !== undefined ? { uriPrefix: rule.uriPrefix } : {}),
    managed: made !== undefined,
    ...(made ? { keyPem: made.keyPem } : {}),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    createdAt: new Date(now),
    createdBy: actorOf(principal),
  };
}

authoritiesRoutes.get(
  '/',
  can('certificates:read'),
  { summary: "List the organization's certificate authorities", tag },
  async (c) => {
    const list = await c.get('services').certificates.listAuthorities(c.get('principal').org);
    return c.json({ authorities: list.map(authorityView) });
  },
);

authoritiesRoutes.post(
  '/',
  can('authorities:manage'),
  {
    summary: 'Register a CA whose device certificates authenticate here, or create one TwinFlow manages',
    tag,
    body: authoritySchema,
    responses: [201, 409],
  },
  async (c, { body }) => {
    const services = c.get('services');
    const doc = await newAuthority(c, body);
    // One CA, one organization: a device certificate must never name a device in two.
    const sameSubject = await services.certificates.authoritiesBySubject(doc.subject);
    if (sameSubject.some((a) => a.fingerprint === doc.fingerprint && a.org !== doc.org))
      throw new ApiError('CONFLICT', 'this CA is registered by another organization');
    if (!(await services.certificates.insertAuthority(doc)))
      throw new ApiError('CONFLICT', `CA ${doc.fingerprint} is registered already`);
    await audit(c, 'authority.create', `certificate-authorities/${doc.fingerprint}`, {
      name: doc.name,
      managed: doc.managed,
    });
    const { keyPem: _key, ...view } = doc;
    return c.json(authorityView(view), 201);
  },
);

authoritiesRoutes.delete(
  '/:caId',
  can('authorities:manage'),
  {
    summary:
      'Stop trusting a CA (its device certificates stop working, and their connections close, within seconds)',
    tag,
    params: { caId: FINGERPRINT },
  },
  async (c, { params: { caId } }) => {
    const { org } = c.get('principal');
    if (!(await c.get('services').certificates.deleteAuthority(org, caId)))
      throw new ApiError('NOT_FOUND', `certificate authority ${caId} not found`);
    c.get('services').auth.forgetAllCertificates([`${org}/${caId}`]);
    await audit(c, 'authority.delete', `certificate-authorities/${caId}`);
    return c.body(null, 204);
  },
);

/** The device, which must exist in the caller's organization. */
async function deviceOr404(c: Context<AppEnv>, deviceId: string): Promise<void> {
  const device = await c.get('services').devices.get(c.get('principal').org, deviceId);
  if (!device) throw new ApiError('NOT_FOUND', `device ${deviceId} not found`);
}

/** Signs the device's CSR with the organization's managed CA. */
async function issueFromCsr(c: Context<AppEnv>, deviceId: string, csr: string, validDays: number) {
  const services = c.get('services');
  const ca = await services.certificates.managedAuthority(c.get('principal').org);
  if (!ca?.keyPem)
    throw new ApiError(
      'CONFLICT',
      'the organization has no managed CA: create one with POST /north/v1/certificate-authorities {"managed": true}',
    );
  try {
    return await signCsr({ certPem: ca.pem, keyPem: ca.keyPem }, csr, { id: deviceId, days: validDays });
  } catch (err) {
    if (err instanceof CsrError) throw new ApiError('INVALID_ARGUMENT', err.message);
    throw err;
  }
}

/** Records a certificate for the device; a fingerprint known already is a conflict. */
async function record(c: Context<AppEnv>, deviceId: string, pemText: string, source: 'pinned' | 'issued') {
  const services = c.get('services');
  const principal = c.get('principal');
  const cert = parsePem(pemText, 'certificate');
  if (cert.ca) throw new ApiError('INVALID_ARGUMENT', 'a CA certificate cannot be a device certificate');
  if (Date.parse(cert.validTo) < services.now())
    throw new ApiError('INVALID_ARGUMENT', 'the certificate has expired');
  const doc: DeviceCertificateDoc = {
    _id: fingerprintOf(cert.raw),
    org: principal.org,
    deviceId,
    source,
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    createdAt: new Date(services.now()),
    createdBy: actorOf(principal),
  };
  if (!(await services.certificates.insertCertificate(doc)))
    throw new ApiError('CONFLICT', `certificate ${doc._id} is known already`);
  return doc;
}

deviceCertificatesRoutes.get(
  '/certificates',
  can('certificates:read'),
  { summary: "List a device's certificates (pinned, issued, revoked)", tag, params: { deviceId: DEVICE_ID } },
  async (c, { params: { deviceId } }) => {
    await deviceOr404(c, deviceId);
    const list = await c.get('services').certificates.listCertificates(c.get('principal').org, deviceId);
    return c.json({ certificates: list.map((d) => certificateView(d)) });
  },
);

deviceCertificatesRoutes.post(
  '/certificates',
  can('certificates:manage'),
  {
    summary: "Pin a device's own certificate, or issue one from its CSR with the organization's managed CA",
    tag,
    params: { deviceId: DEVICE_ID },
    body: issueSchema,
    responses: [201, 409],
  },
  async (c, { params: { deviceId }, body }) => {
    await deviceOr404(c, deviceId);
    const issued = 'csr' in body ? await issueFromCsr(c, deviceId, body.csr, body.days) : undefined;
    const doc = await record(
      c,
      deviceId,
      issued ?? ('certificate' in body ? body.certificate : ''),
      issued ? 'issued' : 'pinned',
    );
    await audit(
      c,
      issued ? 'certificate.issue' : 'certificate.pin',
      `devices/${deviceId}/certificates/${doc._id}`,
    );
    return c.json(certificateView(doc, issued), 201);
  },
);

deviceCertificatesRoutes.post(
  '/certificates/:fingerprint/rotate',
  can('certificates:manage'),
  {
    summary: 'Issue a new certificate from a CSR and revoke this one (its connections close)',
    tag,
    params: { deviceId: DEVICE_ID, fingerprint: FINGERPRINT },
    body: rotateSchema,
    responses: [201],
  },
  async (c, { params: { deviceId, fingerprint }, body }) => {
    const services = c.get('services');
    await deviceOr404(c, deviceId);
    const { org } = c.get('principal');
    const old = await services.certificates.getCertificate(fingerprint);
    if (!old || old.org !== org || old.deviceId !== deviceId || old.revokedAt !== undefined)
      throw new ApiError('NOT_FOUND', `certificate ${fingerprint} of device ${deviceId} not found`);
    const issued = await issueFromCsr(c, deviceId, body.csr, body.days);
    // The new one first: a crash between the two leaves both working, never neither.
    const doc = await record(c, deviceId, issued, 'issued');
    await services.certificates.revoke(org, deviceId, fingerprint, new Date(services.now()), doc._id);
    services.auth.forgetCertificates([fingerprint]);
    await audit(c, 'certificate.rotate', `devices/${deviceId}/certificates/${fingerprint}`, {
      replacedBy: doc._id,
    });
    return c.json(certificateView(doc, issued), 201);
  },
);

deviceCertificatesRoutes.delete(
  '/certificates/:fingerprint',
  can('certificates:manage'),
  {
    summary:
      "Revoke a device's certificate at once (also one TwinFlow never saw, by its SHA-256 fingerprint)",
    tag,
    params: { deviceId: DEVICE_ID, fingerprint: FINGERPRINT },
  },
  async (c, { params: { deviceId, fingerprint } }) => {
    const services = c.get('services');
    await deviceOr404(c, deviceId);
    const { org } = c.get('principal');
    const revoked = await services.certificates.revoke(org, deviceId, fingerprint, new Date(services.now()));
    if (!revoked)
      throw new ApiError('NOT_FOUND', `no active certificate ${fingerprint} of device ${deviceId}`);
    services.auth.forgetCertificates([fingerprint]);
    await audit(c, 'certificate.revoke', `devices/${deviceId}/certificates/${fingerprint}`);
    const doc = await services.certificates.getCertificate(fingerprint);
    return c.json(doc ? certificateView(doc) : { fingerprint, deviceId, revoked: true });
  },
);

deviceCertificatesRoutes.put(
  '/credential-policy',
  can('certificates:manage'),
  {
    summary: 'Whether the device may still use API keys, or authenticates with certificates only',
    tag,
    params: { deviceId: DEVICE_ID },
    body: policySchema,
  },
  async (c, { params: { deviceId }, body }) => {
    const services = c.get('services');
    await deviceOr404(c, deviceId);
    const { org } = c.get('principal');
    await services.certificates.setPolicy(org, deviceId, body.certificatesOnly, new Date(services.now()));
    services.auth.forgetPolicy(org, deviceId);
    // Connections made with the device's keys close now, as when a key is revoked.
    if (body.certificatesOnly) services.auth.forget(await services.keys.announceDeviceKeys(org, deviceId));
    await audit(c, 'device.credential-policy', `devices/${deviceId}`, body);
    return c.json({ deviceId, certificatesOnly: body.certificatesOnly });
  },
);
