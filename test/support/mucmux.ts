// Start mucmux in-process for integration tests, on ephemeral ports, in front of a given upstream.
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../../src/config/index.js";
import { createApp, type App } from "../../src/app.js";
import { createLogger } from "../../src/log.js";
import { testCertificate } from "./certs.js";
import { TEST_TMP } from "./certs.js";
import { mkdirSync } from "node:fs";
import { stringify } from "yaml";

export interface TestMucmux {
  app: App;
  starttlsPort: number;
  directPort: number;
  adminPort: number;
  configFile: string;
  stop(): Promise<void>;
}

export interface MucmuxOptions {
  upstreamPort: number;
  domains?: string[];
  /** Config sections merged over the generated ones (e.g. { limits: { handshakeSeconds: 1 } }). */
  extra?: Record<string, Record<string, unknown>>;
  logLevel?: string;
}

/** Writes a config file for mucmux in front of `upstreamPort`; used in-process and for real processes. */
export function writeTestConfig(opts: MucmuxOptions & { ports?: { starttls: number; direct: number; admin: number } }): string {
  mkdirSync(TEST_TMP, { recursive: true });
  const dir = mkdtempSync(path.join(TEST_TMP, "mucmux-"));
  const cert = testCertificate();
  const p = opts.ports ?? { starttls: 0, direct: 0, admin: 0 };
  const config: Record<string, unknown> = {
    domains: opts.domains ?? ["localhost"],
    listeners: [
      { host: "127.0.0.1", port: p.starttls, tls: "starttls" },
      { host: "127.0.0.1", port: p.direct, tls: "direct" },
    ],
    tls: { cert: cert.certFile, key: cert.keyFile },
    upstream: { host: "127.0.0.1", port: opts.upstreamPort, tls: "none", connectTimeoutSeconds: 5 },
    admin: { host: "127.0.0.1", port: p.admin },
    store: { path: path.join(dir, "mucmux.sqlite") },
    log: { level: opts.logLevel ?? process.env.MUCMUX_TEST_LOG ?? "silent" },
  };
  for (const [section, values] of Object.entries(opts.extra ?? {})) {
    config[section] = { ...(config[section] as Record<string, unknown> | undefined), ...values };
  }
  const file = path.join(dir, "mucmux.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

export async function startMucmux(opts: MucmuxOptions): Promise<TestMucmux> {
  const configFile = writeTestConfig(opts);
  const config = loadConfig({ file: configFile });
  const app = createApp({ config, log: createLogger(config.log.level), build: { version: "test", commit: "test" } });
  await app.start();
  const port = (mode: string) => app.listeners.find((l) => l.spec.tls === mode)?.port ?? 0;
  return {
    app,
    configFile,
    starttlsPort: port("starttls"),
    directPort: port("direct"),
    adminPort: app.adminPort ?? 0,
    stop: async () => {
      await app.drain();
      if (process.env.MUCMUX_TEST_KEEP !== "1") rmSync(path.dirname(configFile), { recursive: true, force: true });
    },
  };
}
