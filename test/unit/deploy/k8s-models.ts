// Offline validation of Kubernetes objects with kubernetes-models (and @kubernetes-models/prometheus-operator):
// the models' JSON-schema validation (types, enums, required fields) plus a TypeScript check of each object
// against the models' interfaces, which also refuses unknown fields (the schemas allow them).
import { writeFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import type { K8sObject } from "./kustomize.js";

interface Model { module: string; iface: string; validate(o: K8sObject): void }

const model = (module: string, iface: string, Cls: new (data: never) => { validate(): void }): Model =>
  ({ module, iface, validate: (o) => new Cls(o as never).validate() });

const MODELS: Record<string, Model> = {
  "v1 ConfigMap": model("kubernetes-models/v1/ConfigMap", "IConfigMap", ConfigMap),
  "v1 PersistentVolumeClaim": model("kubernetes-models/v1/PersistentVolumeClaim", "IPersistentVolumeClaim", PersistentVolumeClaim),
  "v1 Secret": model("kubernetes-models/v1/Secret", "ISecret", Secret),
  "v1 Service": model("kubernetes-models/v1/Service", "IService", Service),
  "apps/v1 Deployment": model("kubernetes-models/apps/v1/Deployment", "IDeployment", Deployment),
  "apps/v1 StatefulSet": model("kubernetes-models/apps/v1/StatefulSet", "IStatefulSet", StatefulSet),
  "networking.k8s.io/v1 NetworkPolicy":
    model("kubernetes-models/networking.k8s.io/v1/NetworkPolicy", "INetworkPolicy", NetworkPolicy),
  "policy/v1 PodDisruptionBudget": model("kubernetes-models/policy/v1/PodDisruptionBudget", "IPodDisruptionBudget", PodDisruptionBudget),
  "monitoring.coreos.com/v1 PodMonitor":
    model("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor", "IPodMonitor", PodMonitor),
  "monitoring.coreos.com/v1 PrometheusRule":
    model("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "IPrometheusRule", PrometheusRule),
};

function modelOf(o: K8sObject): Model {
  const m = MODELS[`${o.apiVersion} ${o.kind}`];
  if (!m) throw new Error(`no model for ${o.apiVersion} ${o.kind} (${o.metadata.name}): add it to MODELS`);
  return m;
}

/** Schema validation; throws with the model's message naming the object. */
export function validateSchema(o: K8sObject): void {
  try {
    modelOf(o).validate(o);
  } catch (e) {
    throw new Error(`${o.kind} ${o.metadata.name}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Type-checks the objects as object literals typed with the models' interfaces (excess property checks
 * catch misspelt or misplaced fields). Returns the TypeScript diagnostics, empty when all is well.
 */
export function typecheck(objects: { label: string; object: K8sObject }[], scratchDir: string): string[] {
  const file = path.join(scratchDir, "manifests.ts");
  const lines = objects.map(({ label, object }, i) => {
    const m = modelOf(object);
    return `// ${label}\nimport type { ${m.iface} as T${i} } from "${m.module}";\nexport const o${i}: T${i} = ${JSON.stringify(object, null, 2)};\n`;
  });
  writeFileSync(file, lines.join("\n"));
  const program = ts.createProgram([file], {
    strict: true, noEmit: true, skipLibCheck: true, types: [], target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, exactOptionalPropertyTypes: true,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (!d.file || !where) return text;
    // name the object the line belongs to
    const before = d.file.text.slice(0, d.start).split("\n").reverse().find((l) => l.startsWith("// ")) ?? "";
    return `${before.slice(3)} (manifests.ts:${where.line + 1}): ${text}`;
  });
}
