#!/usr/bin/env python3
"""Writes crates/proxy/tests/data/kubernetes-schema.json, the field names and
types of the Kubernetes objects that packaging/kubernetes/ uses, for
crates/proxy/tests/deployment.rs (every YAML key must be a field of the API
version its object declares).

The core types come from the model classes of the `kubernetes` PyPI package
(generated from the API's OpenAPI document): read from the wheel without
importing it.

    pip download kubernetes==37.0.3 --no-deps -d /tmp/k8s
    scripts/kubernetes-schema.py /tmp/k8s/kubernetes-37.0.3-py2.py3-none-any.whl \\
        > crates/proxy/tests/data/kubernetes-schema.json

Two kinds are not in that package and are written out below: the Prometheus
operator's ServiceMonitor (monitoring.coreos.com/v1, from its CRD) and
kustomize's Kustomization (kustomize.config.k8s.io/v1beta1), with the fields
of theirs that matter here.
"""

import ast
import json
import re
import sys
import zipfile

# (apiVersion, kind) -> model class of the kubernetes package.
ROOTS = {
    "v1 ConfigMap": "V1ConfigMap",
    "v1 Secret": "V1Secret",
    "v1 Service": "V1Service",
    "apps/v1 Deployment": "V1Deployment",
    "apps/v1 DaemonSet": "V1DaemonSet",
    "autoscaling/v2 HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "policy/v1 PodDisruptionBudget": "V1PodDisruptionBudget",
    "monitoring.coreos.com/v1 ServiceMonitor": "MonitoringCoreosComV1ServiceMonitor",
    "kustomize.config.k8s.io/v1beta1 Kustomization": "KustomizeV1beta1Kustomization",
}

HAND_WRITTEN = {
    "MonitoringCoreosComV1ServiceMonitor": {
        "apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
        "spec": "MonitoringCoreosComV1ServiceMonitorSpec",
    },
    "MonitoringCoreosComV1ServiceMonitorSpec": {
        "endpoints": "List[MonitoringCoreosComV1Endpoint]",
        "selector": "V1LabelSelector",
        "namespaceSelector": "MonitoringCoreosComV1NamespaceSelector",
        "jobLabel": "str", "targetLabels": "List[str]", "podTargetLabels": "List[str]",
        "sampleLimit": "int", "targetLimit": "int", "attachMetadata": "object",
        "scrapeProtocols": "List[str]", "scrapeClass": "str",
    },
    "MonitoringCoreosComV1NamespaceSelector": {"any": "bool", "matchNames": "List[str]"},
    "MonitoringCoreosComV1Endpoint": {
        "port": "str", "targetPort": "object", "path": "str", "scheme": "str",
        "params": "Dict[str, List[str]]", "interval": "str", "scrapeTimeout": "str",
        "honorLabels": "bool", "honorTimestamps": "bool",
        "authorization": "MonitoringCoreosComV1SafeAuthorization",
        "bearerTokenSecret": "V1SecretKeySelector", "basicAuth": "object",
        "oauth2": "object", "tlsConfig": "object", "followRedirects": "bool",
        "enableHttp2": "bool", "filterRunning": "bool", "proxyUrl": "str",
        "relabelings": "List[object]", "metricRelabelings": "List[object]",
        "trackTimestampsStaleness": "bool",
    },
    "MonitoringCoreosComV1SafeAuthorization": {
        "type": "str", "credentials": "V1SecretKeySelector",
    },
    "KustomizeV1beta1Kustomization": {
        "apiVersion": "str", "kind": "str", "metadata": "object",
        "resources": "List[str]", "components": "List[str]",
        "namespace": "str", "namePrefix": "str", "nameSuffix": "str",
        "labels": "List[KustomizeV1beta1Label]",
        "commonLabels": "Dict[str, str]", "commonAnnotations": "Dict[str, str]",
        "images": "List[KustomizeV1beta1Image]", "replicas": "List[object]",
        "patches": "List[object]", "configMapGenerator": "List[object]",
        "secretGenerator": "List[object]", "generatorOptions": "object",
        "buildMetadata": "List[str]",
    },
    "KustomizeV1beta1Label": {
        "pairs": "Dict[str, str]", "includeSelectors": "bool", "includeTemplates": "bool",
        "fields": "List[object]",
    },
    "KustomizeV1beta1Image": {"name": "str", "newName": "str", "newTag": "str", "digest": "str"},
}


def dict_literal(node):
    return {ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(node.keys, node.values)}


def model_fields(wheel):
    """Every model class: {json key: type}."""
    models = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not re.match(r"kubernetes/client/models/v\w+\.py$", name):
                continue
            tree = ast.parse(z.read(name))
            for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
                found = {}
                for stmt in cls.body:
                    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
                        if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
                            found[target.id] = dict_literal(stmt.value)
                if len(found) == 2:
                    models[cls.name] = {
                        found["attribute_map"][attr]: typ for attr, typ in found["openapi_types"].items()
                    }
    return models


def main():
    models = model_fields(sys.argv[1])
    models.update(HAND_WRITTEN)
    wanted, queue = {}, list(ROOTS.values())
    while queue:
        name = queue.pop()
        if name in wanted:
            continue
        wanted[name] = models[name]
        for typ in wanted[name].values():
            queue.extend(t for t in re.findall(r"\w+", typ) if t in models)
    json.dump(
        {
            "source": "kubernetes " + re.search(r"kubernetes-([\d.]+)", sys.argv[1]).group(1)
            + " (PyPI) model classes; ServiceMonitor and Kustomization written out in scripts/kubernetes-schema.py",
            "roots": ROOTS,
            "types": dict(sorted(wanted.items())),
        },
        sys.stdout,
        indent=0,
        sort_keys=False,
    )
    sys.stdout.write("\n")


main()
