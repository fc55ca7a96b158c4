// Request bodies: the event as JSON, or what the forwarder's connector function (QuickJS sandbox) makes of it.
import type { FleetEvent } from '../events/event-types';
import type { FunctionSandbox } from '../functions/sandbox';
import type { ForwarderDoc } from '../inventory/forwarders.repo';

export type Shaped =
  { readonly ok: true; readonly body: string } | { readonly ok: false; readonly error: string };

/** The event as a receiver gets it when no connector shapes it. */
export const eventBody = (event: FleetEvent) => ({
  id: event.id,
  type: event.type,
  ...(event.deviceId !== undefined ? { deviceId: event.deviceId } : {}),
  at: event.at,
  body: event.body,
});

export class BodyShaper {
  /** The loaded key of each forwarder's connector, so a changed one replaces the old in the sandbox. */
  private readonly loaded = new Map<string, string>();

  constructor(private readonly sandbox: FunctionSandbox | undefined) {}

  /** Compiles a connector source without keeping it: the error, if any. */
  check(source: string): string | undefined {
    if (!this.sandbox) return 'connector functions are not available in this process';
    const checked = this.sandbox.check(source, 'connector');
    return checked.ok ? undefined : checked.error;
  }

  shape(fwd: Pick<ForwarderDoc, 'org' | 'id' | 'connector' | 'updatedAt'>, event: FleetEvent): Shaped {
    const plain = eventBody(event);
    if (fwd.connector === undefined) return { ok: true, body: JSON.stringify(plain) };
    if (!this.sandbox) return { ok: false, error: 'connector functions are not available in this process' };
    // The key names the version, so a changed connector is compiled afresh and the old one unloaded.
    const name = `forwarder/${fwd.org}/${fwd.id}`;
    const key = `${name}@${fwd.updatedAt}`;
    if (!this.sandbox.has(key)) {
      const loaded = this.sandbox.load(key, fwd.connector);
      if (!loaded.ok) return { ok: false, error: `connector: ${loaded.error}` };
      const old = this.loaded.get(name);
      if (old !== undefined && old !== key) this.sandbox.unload(old);
      this.loaded.set(name, key);
    }
    const out = this.sandbox.run(key, plain, { org: fwd.org, forwarderId: fwd.id });
    if (!out.ok) return { ok: false, error: `connector (${out.kind}): ${out.error}` };
    if (out.output === undefined) return { ok: false, error: 'connector: transform returned nothing' };
    return { ok: true, body: typeof out.output === 'string' ? out.output : JSON.stringify(out.output) };
  }
}
