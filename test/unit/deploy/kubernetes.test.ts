// deploy/kubernetes: both overlays rendered (by the test renderer, and cross-checked with `kubectl kustomize`
// where kubectl exists), validated offline with kubernetes-models / @kubernetes-models/prometheus-operator,
// and checked against the mucmux configuration they carry: probes, ports, mounts, shutdown timing.
import { after, before, describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parse, parseAllDocuments } from "yaml";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IService } from "kubernetes-models/v1/Service";
import type { IPodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import type { IPrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { loadConfig, type Config } from "../../../src/config/index.js";
import { commandExists } from "../../support/proc.js";
import { keyOf, kustomize, withoutNameHashes, type K8sObject } from "./kustomize.js";
import { typecheck, validateSchema } from "./k8s-models.js";
import { ROOT, RULES_FILE } from "./promql.js";
import { scratchDir, tool } from "./tools.js";

const K8S = path.join(ROOT, "deploy", "kubernetes");
const OVERLAYS = ["native-sidecar", "legacy-sidecar"] as const;
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
const podSpec = (o: Overlay) => {
  const spec = deployment(o).spec?.template.spec;
  assert.ok(spec, "pod template spec");
  return spec;
};

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
function mucmuxConfig(o: Overlay): Config {
  const file = path.join(scratch.dir, `${o}-mucmux.yaml`);
  writeFileSync(file, configMapFile(o, "mucmux-config", "mucmux.yaml"));
  return loadConfig({ file });
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
    const kinds = new Set(all.map((x) => x.object.kind));
    for (const k of ["Deployment", "Service", "ConfigMap", "PersistentVolumeClaim", "PodMonitor", "PrometheusRule"]) {
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

  for (const o of OVERLAYS) {
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
});
