// deploy/kubernetes: every overlay rendered (by the test renderer, and cross-checked with `kubectl kustomize`
// where kubectl exists), validated offline with kubernetes-models / @kubernetes-models/prometheus-operator,
// and checked against the mucmux configuration they carry: probes, ports, mounts, shutdown timing; for the
// PostgreSQL variants also replicas, rollout, disruption budget, Secrets and the internal port's policy.
import { after, before, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parse, parseAllDocuments } from "yaml";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IStatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IPodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { ISecret } from "kubernetes-models/v1/Secret";
import type { IService } from "kubernetes-models/v1/Service";
import type { IPodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import type { IPrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { loadConfig, type Config } from "../../../src/config/index.js";
import { commandExists } from "../../support/proc.js";
import { keyOf, kustomize, readObjects, withoutNameHashes, type K8sObject } from "./kustomize.js";
import { typecheck, validateSchema } from "./k8s-models.js";
import { ROOT, RULES_FILE } from "./promql.js";
import { scratchDir, tool } from "./tools.js";

const K8S = path.join(ROOT, "deploy", "kubernetes");
/** Single replica with SQLite (Prosody example), and the PostgreSQL variants (several replicas). */
const SINGLE = ["native-sidecar", "legacy-sidecar"] as const;
const CLUSTERED = ["replicas", "ejabberd-sidecar"] as const;
const OVERLAYS = [...SINGLE, ...CLUSTERED] as const;
/** Example Secrets kept out of every kustomization (apply -k must never overwrite the real ones). */
const EXAMPLE_SECRETS = path.join(K8S, "cluster", "store-secret.example.yaml");
/** The placeholder password of the example store Secret. */
const PLACEHOLDER_PASSWORD = "REPLACE-ME";
/** The pod IP the downward API gives in the checks of the environment. */
const POD_IP = "10.1.2.3";
const SNAPSHOT = path.join(ROOT, "test", "unit", "deploy", "kubectl-kustomize.snapshot.json");
type Overlay = (typeof OVERLAYS)[number];
/** Time the example server (Prosody) is given to stop after SIGTERM, in the shutdown budget. */
const SERVER_STOP_SECONDS = 10;

const scratch = scratchDir("k8s");
after(() => scratch.remove());

const rendered = new Map<Overlay, K8sObject[]>();
before(() => {
  for (const o of OVERLAYS) rendered.set(o, kustomize(path.join(K8S, "overlays", o)));
});

function objects(overlay: Overlay): K8sObject[] {
  const objs = rendered.get(overlay);
  assert.ok(objs, overlay);
  return objs;
}

function find<T>(overlay: Overlay, kind: string, name?: string): T {
  const hits = objects(overlay).filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.equal(hits.length, 1, `${overlay}: expected one ${kind}${name ? ` ${name}` : ""}, found ${hits.length}`);
  return hits[0] as unknown as T;
}

const deployment = (o: Overlay) => find<IDeployment>(o, "Deployment", "xmpp");

/** The pods' controller: the Deployment, or the StatefulSet of the ejabberd sidecar variant. */
function workload(o: Overlay): IDeployment | IStatefulSet {
  const hits = objects(o).filter((x) => (x.kind === "Deployment" || x.kind === "StatefulSet") && x.metadata.name === "xmpp");
  assert.equal(hits.length, 1, `${o}: one Deployment or StatefulSet named xmpp`);
  return hits[0] as unknown as IDeployment | IStatefulSet;
}

const podSpec = (o: Overlay): IPodSpec => {
  const spec = workload(o).spec?.template.spec;
  assert.ok(spec, "pod template spec");
  return spec;
};

const podLabels = (o: Overlay): Record<string, string> => workload(o).spec?.template.metadata?.labels ?? {};

/** True when every matchLabels pair is on the pods (and there is at least one). */
function selectsPods(o: Overlay, matchLabels: Record<string, string> | undefined): boolean {
  const entries = Object.entries(matchLabels ?? {});
  return entries.length > 0 && entries.every(([k, v]) => podLabels(o)[k] === v);
}

const exampleSecrets = (): ISecret[] => readObjects(EXAMPLE_SECRETS) as unknown as ISecret[];

function container(o: Overlay, name: string): IContainer {
  const spec = podSpec(o);
  const all = [...(spec.initContainers ?? []), ...spec.containers].filter((c) => c.name === name);
  assert.equal(all.length, 1, `${o}: one container named ${name}`);
  return all[0] as IContainer;
}

function configMapFile(o: Overlay, name: string, key: string): string {
  const cm = find<{ data?: Record<string, string> }>(o, "ConfigMap", name);
  const text = cm.data?.[key];
  assert.ok(text, `${o}: ConfigMap ${name} has ${key}`);
  return text;
}

/** The mucmux configuration shipped in the ConfigMap, loaded and validated by mucmux's own loader. */
function mucmuxConfig(o: Overlay, env?: NodeJS.ProcessEnv): Config {
  const file = path.join(scratch.dir, `${o}-mucmux.yaml`);
  writeFileSync(file, configMapFile(o, "mucmux-config", "mucmux.yaml"));
  const warnings: string[] = [];
  const cfg = loadConfig({ file, env, onWarning: (w) => warnings.push(w) });
  assert.deepEqual(warnings, [], `${o}: the container's environment only holds known MUCMUX_* settings`);
  return cfg;
}

/**
 * The container's environment as the kubelet would build it: the downward API (pod IP, pod name), Secret
 * keys from the example Secrets, and $(VAR) references to variables defined earlier in the list.
 */
function containerEnv(c: IContainer): Record<string, string> {
  const secrets = new Map(exampleSecrets().map((x) => [x.metadata?.name, x.stringData ?? {}]));
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    let v: string | undefined;
    if (e.value !== undefined) {
      v = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (ref: string, name: string) => {
        assert.ok(env[name] !== undefined, `${c.name}: ${e.name} refers to $(${name}), which is not defined before it`);
        return env[name] ?? ref;
      });
    } else if (e.valueFrom?.fieldRef) {
      const field = e.valueFrom.fieldRef.fieldPath;
      v = field === "status.podIP" ? POD_IP : field === "metadata.name" ? "xmpp-0" : undefined;
    } else if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      v = secrets.get(ref.name)?.[ref.key];
      if (v === undefined && !ref.name?.startsWith("mucmux-")) v = "from-a-secret"; // the server's own Secrets
    }
    assert.ok(v !== undefined, `${c.name}: cannot resolve ${e.name} (${JSON.stringify(e.valueFrom)})`);
    env[e.name] = v;
  }
  return env;
}

function portNumber(c: IContainer, port: number | string | undefined): number {
  if (typeof port === "number") return port;
  const p = c.ports?.find((x) => x.name === port);
  assert.ok(p, `container ${c.name} has no port named ${String(port)}`);
  return p.containerPort;
}

/** Seconds a preStop `sleep N` hook takes (0 without a hook); other hooks are refused. */
function preStopSeconds(c: IContainer): number {
  const hook = c.lifecycle?.preStop;
  if (!hook) return 0;
  const cmd = hook.exec?.command ?? [];
  assert.ok(cmd.length === 2 && cmd[0] === "sleep" && /^\d+$/.test(cmd[1] ?? ""), `${c.name}: preStop must be ["sleep", "N"], got ${JSON.stringify(hook)}`);
  return Number(cmd[1]);
}

describe("deploy/kubernetes", () => {
  // kubectl's rendering is kept as a snapshot, so that the test renderer is checked against it on every
  // machine (CI has no kubectl); where kubectl exists, the snapshot is checked against kubectl itself.
  // After changing the manifests: MUCMUX_UPDATE_SNAPSHOTS=1 npm test -- test/unit/deploy (needs kubectl).
  it("renders exactly what kubectl kustomize rendered (snapshot; re-checked against kubectl where installed)", async () => {
    const update = process.env.MUCMUX_UPDATE_SNAPSHOTS === "1";
    const haveKubectl = await commandExists("kubectl");
    let snapshot = existsSync(SNAPSHOT) ? (JSON.parse(readFileSync(SNAPSHOT, "utf8")) as Record<string, K8sObject[]>) : {};
    if (haveKubectl) {
      const fresh: Record<string, K8sObject[]> = {};
      for (const o of OVERLAYS) {
        const r = await tool("kubectl", ["kustomize", path.join(K8S, "overlays", o)], { timeoutMs: 60_000 });
        assert.equal(r.code, 0, `kubectl kustomize ${o}: ${r.stderr}`);
        fresh[o] = withoutNameHashes(parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject));
      }
      if (update) {
        writeFileSync(SNAPSHOT, `${JSON.stringify(fresh, null, 1)}\n`);
        snapshot = fresh;
      }
      assert.deepEqual(fresh, snapshot, "kubectl's rendering differs from the snapshot: regenerate it (see above)");
    } else {
      assert.ok(!update, "MUCMUX_UPDATE_SNAPSHOTS=1 needs kubectl");
    }
    for (const o of OVERLAYS) {
      const theirs = snapshot[o];
      assert.ok(theirs, `${o}: no kubectl snapshot; regenerate it (see above)`);
      const ours = objects(o);
      assert.deepEqual(theirs.map(keyOf).sort(), ours.map(keyOf).sort(), `${o}: the same objects`);
      for (const obj of ours) {
        assert.deepEqual(theirs.find((x) => keyOf(x) === keyOf(obj)), obj, `${o}: ${keyOf(obj)} renders the same`);
      }
    }
  });

  it("validates every object with kubernetes-models (schema and fields)", () => {
    const all: { label: string; object: K8sObject }[] = [];
    for (const o of OVERLAYS) {
      for (const obj of objects(o)) {
        validateSchema(obj);
        all.push({ label: `${o}: ${obj.kind} ${obj.metadata.name}`, object: obj });
      }
    }
    for (const obj of readObjects(EXAMPLE_SECRETS)) {
      validateSchema(obj);
      all.push({ label: `${path.relative(K8S, EXAMPLE_SECRETS)}: ${obj.kind} ${obj.metadata.name}`, object: obj });
    }
    const kinds = new Set(all.map((x) => x.object.kind));
    for (const k of ["Deployment", "StatefulSet", "Service", "ConfigMap", "PersistentVolumeClaim", "PodDisruptionBudget",
      "NetworkPolicy", "Secret", "PodMonitor", "PrometheusRule"]) {
      assert.ok(kinds.has(k), `renders a ${k}`);
    }
    const problems = typecheck(all, scratch.dir);
    assert.deepEqual(problems, [], `manifests do not match the kubernetes-models types:\n${problems.join("\n")}`);
  });

  it("the type check catches an unknown field (the check works)", () => {
    const bad = structuredClone(objects("native-sidecar").find((x) => x.kind === "Deployment")) as K8sObject;
    const pod = (bad as unknown as IDeployment).spec?.template.spec;
    assert.ok(pod?.initContainers?.[0]);
    (pod.initContainers[0] as unknown as Record<string, unknown>).readinesProbe = {};
    const problems = typecheck([{ label: "bad", object: bad }], scratch.dir);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? "", /readinesProbe/);
  });

  it("native-sidecar: mucmux is an init container with restartPolicy Always; legacy: a regular container", () => {
    const native = podSpec("native-sidecar");
    assert.deepEqual(native.initContainers?.map((c) => [c.name, c.restartPolicy]), [["mucmux", "Always"]]);
    assert.deepEqual(native.containers.map((c) => c.name), ["prosody"]);

    const legacy = podSpec("legacy-sidecar");
    assert.equal(legacy.initContainers, undefined);
    assert.deepEqual(legacy.containers.map((c) => c.name), ["prosody", "mucmux"]);
    for (const c of legacy.containers) assert.equal(c.restartPolicy, undefined, `${c.name}: restartPolicy is for init containers only`);
  });

  for (const o of SINGLE) {
    describe(o, () => {
      it("the ConfigMap holds a valid mucmux configuration, and the container reads it from a directory mount", () => {
        const c = container(o, "mucmux");
        const args = c.args ?? [];
        const file = args[args.indexOf("--config") + 1];
        assert.ok(args.includes("--config") && file, "mucmux gets --config FILE");
        const mount = c.volumeMounts?.find((m) => m.mountPath === path.dirname(file));
        assert.ok(mount, `a volume is mounted at ${path.dirname(file)}`);
        const vol = podSpec(o).volumes?.find((v) => v.name === mount.name);
        assert.equal(vol?.configMap?.name, "mucmux-config");
        assert.equal(path.basename(file), "mucmux.yaml");
        const cfg = mucmuxConfig(o);
        assert.deepEqual(cfg.domains, ["example.test"]);
      });

      it("probes hit /healthz and /readyz on the admin port of the config, reachable on the pod IP", () => {
        const c = container(o, "mucmux");
        const cfg = mucmuxConfig(o);
        assert.ok(cfg.admin.host === "0.0.0.0" || cfg.admin.host === "::", `admin.host ${cfg.admin.host} must listen on the pod IP for the kubelet and Prometheus`);
        assert.equal(portNumber(c, "admin"), cfg.admin.port, "container port 'admin' is admin.port");
        const probes = { startupProbe: "/healthz", readinessProbe: "/readyz", livenessProbe: "/healthz" } as const;
        for (const [probe, p] of Object.entries(probes) as [keyof typeof probes, string][]) {
          const h = c[probe]?.httpGet;
          assert.ok(h, `${probe} is an httpGet probe`);
          assert.equal(h.path, p, `${probe} path`);
          assert.equal(portNumber(c, h.port), cfg.admin.port, `${probe} port is admin.port`);
        }
        // The startup probe gates the server's start (native sidecar): it must not wait for the server.
        assert.notEqual(c.startupProbe?.httpGet?.path, "/readyz");
      });

      it("the Service sends 5222 and 5223 to mucmux's STARTTLS and direct TLS listeners; admin stays off it", () => {
        const c = container(o, "mucmux");
        const cfg = mucmuxConfig(o);
        const svc = find<IService>(o, "Service", "xmpp");
        const pod = deployment(o).spec?.template.metadata?.labels ?? {};
        for (const [k, v] of Object.entries(svc.spec?.selector ?? {})) assert.equal(pod[k], v, `Service selector ${k} matches the pod`);
        const byPort = new Map((svc.spec?.ports ?? []).map((p) => [p.port, p]));
        assert.deepEqual([...byPort.keys()].sort(), [5222, 5223]);
        for (const [port, mode] of [[5222, "starttls"], [5223, "direct"]] as const) {
          const target = portNumber(c, byPort.get(port)?.targetPort);
          const listener = cfg.listeners.find((l) => l.port === target);
          assert.ok(listener, `Service port ${port} reaches a configured listener (container port ${target})`);
          assert.equal(listener.tls, mode, `Service port ${port} is the ${mode} listener`);
          assert.ok(["0.0.0.0", "::"].includes(listener.host), `listener ${target} listens on the pod IP`);
        }
        for (const l of cfg.listeners) assert.ok(c.ports?.some((p) => p.containerPort === l.port), `listener ${l.port} is a container port`);
        assert.ok(!(svc.spec?.ports ?? []).some((p) => portNumber(c, p.targetPort) === cfg.admin.port), "the admin port is not on the Service");
      });

      it("the certificate Secret is a directory mount (never subPath) at the configured paths", () => {
        const c = container(o, "mucmux");
        const cfg = mucmuxConfig(o);
        assert.ok(cfg.tls.cert && cfg.tls.key, "tls.cert and tls.key are configured");
        assert.equal(path.dirname(cfg.tls.cert), path.dirname(cfg.tls.key));
        const mount = c.volumeMounts?.find((m) => m.mountPath === path.dirname(cfg.tls.cert ?? ""));
        assert.ok(mount, `a volume is mounted at ${path.dirname(cfg.tls.cert)}`);
        const secret = podSpec(o).volumes?.find((v) => v.name === mount.name)?.secret;
        assert.ok(secret?.secretName, "the TLS mount is a Secret");
        // kubernetes.io/tls Secrets have the keys tls.crt and tls.key
        assert.deepEqual([path.basename(cfg.tls.cert), path.basename(cfg.tls.key)], ["tls.crt", "tls.key"]);
        for (const ct of [...(podSpec(o).initContainers ?? []), ...podSpec(o).containers]) {
          for (const m of ct.volumeMounts ?? []) assert.equal(m.subPath, undefined, `${ct.name}: ${m.mountPath} uses subPath, which never updates`);
        }
      });

      it("the SQLite store lives on the PersistentVolumeClaim; one pod, Recreate", () => {
        const c = container(o, "mucmux");
        const cfg = mucmuxConfig(o);
        const mount = c.volumeMounts?.find((m) => m.mountPath === path.dirname(cfg.store.path));
        assert.ok(mount, `a volume is mounted at ${path.dirname(cfg.store.path)}`);
        const claim = podSpec(o).volumes?.find((v) => v.name === mount.name)?.persistentVolumeClaim?.claimName;
        assert.ok(claim, "the store volume is a PersistentVolumeClaim");
        find(o, "PersistentVolumeClaim", claim);
        assert.equal(deployment(o).spec?.replicas, 1);
        assert.equal(deployment(o).spec?.strategy?.type, "Recreate");
      });

      it("mucmux runs as non-root with a read-only root filesystem and no capabilities", () => {
        const c = container(o, "mucmux");
        const sc = c.securityContext;
        assert.equal(sc?.runAsNonRoot, true);
        assert.ok((sc?.runAsUser ?? 0) > 0, "a numeric non-root runAsUser");
        assert.equal(sc?.readOnlyRootFilesystem, true);
        assert.equal(sc?.allowPrivilegeEscalation, false);
        assert.deepEqual(sc?.capabilities?.drop, ["ALL"]);
        assert.equal(sc?.capabilities?.add, undefined);
        assert.equal(podSpec(o).securityContext?.seccompProfile?.type, "RuntimeDefault");
        // Everything mucmux writes is on a volume: the store directory and /tmp.
        assert.ok(c.volumeMounts?.some((m) => m.mountPath === "/tmp"));
      });

      it("preStop hooks and terminationGracePeriodSeconds leave room for the SIGTERM drain", () => {
        const cfg = mucmuxConfig(o);
        const grace = podSpec(o).terminationGracePeriodSeconds ?? 30;
        const mux = preStopSeconds(container(o, "mucmux"));
        const server = preStopSeconds(container(o, "prosody"));
        const drain = cfg.drain.timeoutSeconds;
        if (o === "native-sidecar") {
          // Sidecars get SIGTERM after the main containers have exited: server preStop, server stop, then mucmux.
          assert.ok(server > 0, "the server's preStop lets the endpoints drop the pod first");
          assert.ok(grace >= server + SERVER_STOP_SECONDS + mux + drain,
            `grace ${grace} s < server preStop ${server} + stop ${SERVER_STOP_SECONDS} + mucmux preStop ${mux} + drain ${drain}`);
        } else {
          // Both get SIGTERM after their own preStop: mucmux must be drained before the server stops.
          assert.ok(mux > 0, "mucmux's preStop lets the endpoints drop the pod before the drain");
          assert.ok(server >= mux + drain, `server preStop ${server} s ends before mucmux's drain (${mux} + ${drain} s)`);
          assert.ok(grace >= server + SERVER_STOP_SECONDS, `grace ${grace} s < server preStop ${server} + stop ${SERVER_STOP_SECONDS}`);
        }
      });

      it("Prosody (the example server) serves c2s on the loopback port mucmux's upstream points at", () => {
        const cfg = mucmuxConfig(o);
        const lua = configMapFile(o, "prosody-config", "prosody.cfg.lua");
        const list = (key: string) => {
          const m = new RegExp(`^${key}\\s*=\\s*\\{([^}]*)\\}`, "m").exec(lua);
          assert.ok(m?.[1] !== undefined, `prosody.cfg.lua sets ${key}`);
          return m[1].split(/[,;]/).map((s) => s.trim().replace(/^"|"$/g, "")).filter(Boolean);
        };
        assert.deepEqual(list("c2s_ports"), [String(cfg.upstream.port)]);
        assert.deepEqual(list("c2s_interfaces"), [cfg.upstream.host]);
        assert.equal(cfg.upstream.host, "127.0.0.1");
        assert.deepEqual([...lua.matchAll(/^VirtualHost\s+"([^"]+)"/gm)].map((m) => m[1]), [...cfg.domains]);
        const c = container(o, "prosody");
        const args = c.args ?? [];
        const file = args[args.indexOf("--config") + 1] ?? "";
        const mount = c.volumeMounts?.find((m) => m.mountPath === path.dirname(file));
        assert.equal(podSpec(o).volumes?.find((v) => v.name === mount?.name)?.configMap?.name, "prosody-config");
        // Prosody exposes no port of its own in the pod: clients reach it only through mucmux.
        assert.equal(c.ports, undefined);
      });

      it("the PodMonitor scrapes /metrics on the admin port of these pods as job mucmux", () => {
        const pm = find<IPodMonitor>(o, "PodMonitor", "mucmux");
        const labels = deployment(o).spec?.template.metadata?.labels ?? {};
        for (const [k, v] of Object.entries(pm.spec.selector.matchLabels ?? {})) assert.equal(labels[k], v, `selector ${k}`);
        const ep = pm.spec.podMetricsEndpoints?.[0];
        assert.ok(ep && pm.spec.podMetricsEndpoints?.length === 1);
        assert.equal(ep.path, "/metrics");
        assert.equal(portNumber(container(o, "mucmux"), ep.port), mucmuxConfig(o).admin.port);
        assert.ok(ep.relabelings?.some((r) => r.targetLabel === "job" && r.replacement === "mucmux" && (r.action ?? "replace").toLowerCase() === "replace"));
      });

      it("the PrometheusRule carries exactly deploy/prometheus/mucmux.rules.yml", () => {
        const rule = find<IPrometheusRule>(o, "PrometheusRule", "mucmux");
        const file = parse(readFileSync(RULES_FILE, "utf8")) as { groups: unknown };
        assert.deepEqual(rule.spec.groups, file.groups,
          "deploy/kubernetes/monitoring/prometheusrule.yaml differs from deploy/prometheus/mucmux.rules.yml: copy the groups over");
      });
    });
  }

  /** Every postgres:// URL with a password in `text`, with that password. */
  const passwordsIn = (text: string) => [...text.matchAll(/postgres(?:ql)?:\/\/[^\s:@/"']+:([^\s@/"']+)@/g)].map((m) => m[1]);

  it("the example store Secret is outside every kustomization and carries only the marked placeholder password", () => {
    const [secret, ...rest] = exampleSecrets();
    assert.ok(secret && rest.length === 0, "one example Secret");
    assert.equal(secret.metadata?.name, "mucmux-store");
    const url = secret.stringData?.url;
    assert.ok(url, "the example Secret has the key url");
    assert.deepEqual(passwordsIn(url), [PLACEHOLDER_PASSWORD]);
    assert.match(readFileSync(EXAMPLE_SECRETS, "utf8"), /PLACEHOLDER/, "the placeholder is marked as one");
    for (const o of OVERLAYS) {
      assert.ok(!objects(o).some((x) => x.kind === "Secret"), `${o}: renders no Secret (apply -k must not overwrite the real ones)`);
    }
  });

  it("no plaintext password in any manifest or rendered object (only the example Secret's placeholder)", () => {
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]);
    for (const f of files(K8S)) {
      const found = passwordsIn(readFileSync(f, "utf8"));
      const allowed = f === EXAMPLE_SECRETS ? PLACEHOLDER_PASSWORD : undefined;
      assert.deepEqual(found.filter((p) => p !== allowed), [], `${path.relative(ROOT, f)} holds a database password`);
    }
    for (const o of OVERLAYS) {
      const text = JSON.stringify(objects(o));
      assert.deepEqual(passwordsIn(text), [], `${o}: a rendered object holds a database password`);
      assert.doesNotMatch(text, /postgres(ql)?:\/\//, `${o}: the store URL comes from a Secret only`);
    }
  });

  for (const o of CLUSTERED) {
    describe(o, () => {
      const mux = () => container(o, "mucmux");
      const env = () => containerEnv(mux());
      const cfg = () => mucmuxConfig(o, env());

      it("three replicas rolled out one at a time, never below three ready where a Deployment can surge", () => {
        const w = workload(o);
        assert.equal(w.spec?.replicas, 3);
        if (o === "replicas") {
          const d = deployment(o);
          assert.equal(d.spec?.strategy?.type, "RollingUpdate");
          assert.equal(d.spec?.strategy?.rollingUpdate?.maxUnavailable, 0);
          assert.equal(d.spec?.strategy?.rollingUpdate?.maxSurge, 1);
          // mucmux alone in its pod, with no volume claim: its store is PostgreSQL.
          assert.deepEqual(podSpec(o).containers.map((c) => c.name), ["mucmux"]);
          assert.ok(!objects(o).some((x) => x.kind === "PersistentVolumeClaim"));
        } else {
          const ss = find<IStatefulSet>(o, "StatefulSet", "xmpp");
          assert.equal(ss.spec?.updateStrategy?.type ?? "RollingUpdate", "RollingUpdate");
          // One mucmux per ejabberd pod, as a native sidecar talking to its own node on loopback.
          assert.deepEqual(podSpec(o).initContainers?.map((c) => [c.name, c.restartPolicy]), [["mucmux", "Always"]]);
          assert.deepEqual(podSpec(o).containers.map((c) => c.name), ["ejabberd"]);
          assert.equal(cfg().upstream.host, "127.0.0.1");
          const server = configMapFile(o, "ejabberd-config", "ejabberd.yml");
          const c2s = (parse(server) as { listen: { port: number; ip: string; module: string }[] }).listen
            .find((l) => l.module === "ejabberd_c2s");
          assert.deepEqual([c2s?.ip, c2s?.port], [cfg().upstream.host, cfg().upstream.port], "ejabberd's c2s listener is mucmux's upstream");
          find(o, "Service", ss.spec?.serviceName);
        }
      });

      it("a PodDisruptionBudget selects the workload's pods and lets at most one go at a time", () => {
        const pdb = find<IPodDisruptionBudget>(o, "PodDisruptionBudget");
        assert.ok(selectsPods(o, pdb.spec?.selector?.matchLabels), "the PDB selects the pods");
        assert.deepEqual(pdb.spec?.selector?.matchLabels, workload(o).spec?.selector.matchLabels, "the PDB selects what the workload selects");
        const replicas = workload(o).spec?.replicas ?? 1;
        const { minAvailable, maxUnavailable } = pdb.spec ?? {};
        assert.ok(minAvailable === 2 || maxUnavailable === 1, `minAvailable 2 or maxUnavailable 1 (got ${String(minAvailable)}/${String(maxUnavailable)})`);
        assert.ok(replicas - (typeof minAvailable === "number" ? minAvailable : replicas - Number(maxUnavailable)) === 1);
      });

      it("store.url comes from the Secret mucmux-store (secretKeyRef), and the configuration with it is valid", () => {
        const e = mux().env?.find((x) => x.name === "MUCMUX_STORE_URL");
        assert.ok(e, "MUCMUX_STORE_URL is set");
        assert.equal(e.value, undefined, "not a literal value");
        assert.deepEqual(e.valueFrom?.secretKeyRef, { name: "mucmux-store", key: "url" });
        assert.equal(exampleSecrets()[0]?.stringData?.url, cfg().store.url, "store.url is the Secret's url");
        assert.doesNotMatch(configMapFile(o, "mucmux-config", "mucmux.yaml"), /^\s*url:/m, "no store.url in the ConfigMap");
        for (const c of [...(podSpec(o).initContainers ?? []), ...podSpec(o).containers]) {
          for (const x of c.env ?? []) {
            if (/PASSWORD|COOKIE|SECRET|_URL$/.test(x.name)) assert.ok(x.valueFrom?.secretKeyRef, `${c.name}: ${x.name} comes from a Secret`);
          }
        }
      });

      it("cluster.advertise is the pod IP (downward API) and cluster.port, a container port named cluster", () => {
        const list = mux().env ?? [];
        const ip = list.findIndex((x) => x.name === "POD_IP");
        assert.equal(list[ip]?.valueFrom?.fieldRef?.fieldPath, "status.podIP");
        assert.ok(ip >= 0 && ip < list.findIndex((x) => x.name === "MUCMUX_CLUSTER_ADVERTISE"), "POD_IP is defined before it is referenced");
        const c = cfg();
        assert.equal(c.cluster.port, 5270);
        assert.ok(["0.0.0.0", "::"].includes(c.cluster.host), "the internal listener listens on the pod IP");
        assert.equal(c.cluster.advertise, `${POD_IP}:${c.cluster.port}`);
        assert.equal(portNumber(mux(), "cluster"), c.cluster.port);
        assert.equal(c.drain.timeoutSeconds, 10);
        assert.equal(c.cluster.leaseSeconds, 10);
      });

      it("the cluster certificate, key and CA are a Secret directory mount (never subPath) at the configured paths", () => {
        const c = cfg();
        const files = [c.cluster.cert, c.cluster.key, c.cluster.ca];
        assert.ok(files.every((f) => f !== undefined));
        const dir = path.dirname(c.cluster.cert ?? "");
        assert.ok(files.every((f) => path.dirname(f ?? "") === dir), "one directory");
        assert.deepEqual(files.map((f) => path.basename(f ?? "")), ["tls.crt", "tls.key", "ca.crt"]);
        const mount = mux().volumeMounts?.find((m) => m.mountPath === dir);
        assert.ok(mount, `a volume is mounted at ${dir}`);
        assert.equal(mount.subPath, undefined);
        assert.equal(podSpec(o).volumes?.find((v) => v.name === mount.name)?.secret?.secretName, "mucmux-cluster-tls");
        // The client certificate too, as in the single-replica variant.
        const tls = mux().volumeMounts?.find((m) => m.mountPath === path.dirname(c.tls.cert ?? ""));
        assert.equal(podSpec(o).volumes?.find((v) => v.name === tls?.name)?.secret?.secretName, "mucmux-tls");
        for (const ct of [...(podSpec(o).initContainers ?? []), ...podSpec(o).containers]) {
          for (const m of ct.volumeMounts ?? []) assert.equal(m.subPath, undefined, `${ct.name}: ${m.mountPath} uses subPath`);
        }
      });

      it("probes: /readyz for readiness, /healthz for startup and liveness, on the admin port", () => {
        const c = cfg();
        const probes = { startupProbe: "/healthz", readinessProbe: "/readyz", livenessProbe: "/healthz" } as const;
        for (const [probe, p] of Object.entries(probes) as [keyof typeof probes, string][]) {
          const h = mux()[probe]?.httpGet;
          assert.equal(h?.path, p, `${probe} path`);
          assert.equal(portNumber(mux(), h?.port), c.admin.port, `${probe} port is admin.port`);
        }
        assert.ok(["0.0.0.0", "::"].includes(c.admin.host));
      });

      it("terminationGracePeriodSeconds exceeds drain.timeoutSeconds and leaves room for the preStop hooks", () => {
        const drain = cfg().drain.timeoutSeconds;
        const grace = podSpec(o).terminationGracePeriodSeconds ?? 30;
        assert.ok(grace > drain, `grace ${grace} s > drain ${drain} s`);
        const mine = preStopSeconds(mux());
        if (o === "replicas") {
          assert.ok(mine > 0, "preStop lets the endpoints drop the pod before SIGTERM");
          assert.ok(grace > mine + drain, `grace ${grace} s > preStop ${mine} + drain ${drain} s`);
        } else {
          // Native sidecar: the server's preStop and stop come first, then mucmux gets SIGTERM.
          assert.equal(mine, 0);
          const server = preStopSeconds(container(o, "ejabberd"));
          assert.ok(server > 0);
          assert.ok(grace > server + SERVER_STOP_SECONDS + drain, `grace ${grace} s > ${server} + ${SERVER_STOP_SECONDS} + ${drain} s`);
        }
      });

      it("pod anti-affinity (preferred) spreads the pods over nodes", () => {
        const terms = podSpec(o).affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
        assert.ok(terms.some((t) => t.podAffinityTerm.topologyKey === "kubernetes.io/hostname" &&
          selectsPods(o, t.podAffinityTerm.labelSelector?.matchLabels)), "a preferred term on kubernetes.io/hostname selecting these pods");
        assert.equal(podSpec(o).affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution, undefined,
          "preferred, not required: fewer nodes than replicas must still schedule");
      });

      it("the NetworkPolicy admits port 5270 only from pods with the same app label; other ports stay reachable", () => {
        const np = find<INetworkPolicy>(o, "NetworkPolicy", "mucmux-cluster");
        assert.ok(selectsPods(o, np.spec?.podSelector.matchLabels), "the policy applies to these pods");
        assert.deepEqual(np.spec?.policyTypes, ["Ingress"]);
        const port = cfg().cluster.port;
        const app = podLabels(o)["app.kubernetes.io/name"];
        assert.ok(app, "the pods have an app label");
        const rules = np.spec?.ingress ?? [];
        const covers = (r: (typeof rules)[number], n: number) => (r.ports ?? [{}]).some((p) =>
          (p.protocol ?? "TCP") === "TCP" && (p.port === undefined || (typeof p.port === "number" && p.port <= n && n <= (p.endPort ?? p.port))));
        const for5270 = rules.filter((r) => covers(r, port));
        assert.equal(for5270.length, 1, "one rule admits the internal port");
        assert.deepEqual(for5270[0]?.from, [{ podSelector: { matchLabels: { "app.kubernetes.io/name": app } } }], "only from the same app's pods");
        for (const p of [...cfg().listeners.map((l) => l.port), cfg().admin.port]) {
          assert.ok(rules.some((r) => r.from === undefined && covers(r, p)), `port ${p} stays reachable from anywhere`);
        }
        // The Service keeps the internal and admin ports to itself.
        const svc = find<IService>(o, "Service", "xmpp");
        assert.ok(selectsPods(o, svc.spec?.selector));
        for (const p of svc.spec?.ports ?? []) {
          assert.ok(![port, cfg().admin.port].includes(portNumber(mux(), p.targetPort)), `Service port ${p.port} exposes an internal port`);
        }
      });

      it("mucmux runs as non-root with a read-only root filesystem and no capabilities", () => {
        const sc = mux().securityContext;
        assert.equal(sc?.runAsNonRoot, true);
        assert.equal(sc?.readOnlyRootFilesystem, true);
        assert.equal(sc?.allowPrivilegeEscalation, false);
        assert.deepEqual(sc?.capabilities?.drop, ["ALL"]);
        assert.equal(podSpec(o).securityContext?.seccompProfile?.type, "RuntimeDefault");
        assert.equal(podSpec(o).enableServiceLinks, false);
      });

      it("the PodMonitor scrapes these pods", () => {
        const pm = find<IPodMonitor>(o, "PodMonitor", "mucmux");
        assert.ok(selectsPods(o, pm.spec.selector.matchLabels));
        assert.equal(portNumber(mux(), pm.spec.podMetricsEndpoints?.[0]?.port), cfg().admin.port);
      });
    });
  }
});
