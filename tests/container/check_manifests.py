#!/usr/bin/env python3
"""Checks docker/compose.yaml and docker/k8s/*.yaml: every file parses, and
the deployment settings that docker/README.md promises are there and agree
with aecd's defaults and with each other (probes, grace period vs. drain
time, security context, resources, HPA target, nginx body limit).

Needs PyYAML (Debian: python3-yaml). Exit 0: all checks passed; 1: a check
failed (each is printed); 77: PyYAML is missing.
"""
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML is not installed (apt-get install python3-yaml)")
    sys.exit(77)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def load_all(rel):
    path = os.path.join(ROOT, rel)
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        failures.append(f"{rel}: does not parse: {e}")
        return []
    check(docs, f"{rel}: empty")
    return docs


def dig(obj, *keys):
    for k in keys:
        if isinstance(obj, dict):
            obj = obj.get(k)
        elif isinstance(obj, list) and isinstance(k, int) and k < len(obj):
            obj = obj[k]
        else:
            return None
    return obj


def size_bytes(s):
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)i?B?", str(s), re.I)
    if not m:
        return None
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()]


def k8s_mem(s):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?", str(s))
    if not m:
        return None
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
            "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2)]
    return int(m.group(1)) * mult


# aecd's defaults, read from the source so that a change there is noticed.
cfg_h = open(os.path.join(ROOT, "src/server/config.h")).read()
drain_default = int(re.search(r"#define AECD_DRAIN_SECONDS (\d+)", cfg_h).group(1))
cfg_c = open(os.path.join(ROOT, "src/server/config.c")).read()
max_body_default = int(re.search(r"cfg->max_body = (\d+)u << 20;", cfg_c).group(1)) << 20

# ---------------------------------------------------------------- k8s
docs = {}
for name in ("deployment", "service", "hpa", "pdb", "kustomization", "secret.example"):
    for d in load_all(f"docker/k8s/{name}.yaml"):
        docs[d.get("kind")] = d

dep = docs.get("Deployment")
if check(dep is not None, "docker/k8s/deployment.yaml: no Deployment"):
    check(dep.get("apiVersion") == "apps/v1", "Deployment: apiVersion apps/v1")
    pod = dig(dep, "spec", "template", "spec") or {}
    sel = dig(dep, "spec", "selector", "matchLabels") or {}
    labels = dig(dep, "spec", "template", "metadata", "labels") or {}
    check(sel and all(labels.get(k) == v for k, v in sel.items()),
          "Deployment: selector matches the pod labels")
    check("replicas" not in dep["spec"], "Deployment: no spec.replicas (the HPA owns it)")
    ctrs = pod.get("containers") or []
    check(len(ctrs) == 1, "Deployment: one container")
    c = ctrs[0] if ctrs else {}
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    drain = int(env.get("AEC_SHUTDOWN_TIMEOUT", drain_default))
    pre = dig(c, "lifecycle", "preStop", "exec", "command") or []
    pre_s = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace >= pre_s + drain + 5,
          f"Deployment: terminationGracePeriodSeconds {grace} >= preStop {pre_s} + drain {drain} + 5")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    check(ports.get("http") == 8080, "Deployment: containerPort 8080 named http")
    rp, lp = c.get("readinessProbe") or {}, c.get("livenessProbe") or {}
    check(dig(rp, "httpGet", "path") == "/readyz", "Deployment: readinessProbe GET /readyz")
    check(dig(lp, "httpGet", "path") == "/healthz", "Deployment: livenessProbe GET /healthz")
    check(dig(rp, "httpGet", "port") in ("http", 8080) and dig(lp, "httpGet", "port") in ("http", 8080),
          "Deployment: probes on the http port")
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check(dig(res, kind, r) is not None, f"Deployment: resources.{kind}.{r}")
    req_mem, lim_mem = k8s_mem(dig(res, "requests", "memory")), k8s_mem(dig(res, "limits", "memory"))
    check(req_mem and lim_mem and req_mem <= lim_mem, "Deployment: memory request <= limit")
    buffered = size_bytes(env.get("AEC_MAX_BUFFERED", "1G"))
    check(buffered and lim_mem and buffered < lim_mem / 2,
          "Deployment: AEC_MAX_BUFFERED well below the memory limit")
    work = size_bytes(env.get("AEC_MAX_MEMORY", "0"))
    check(work and lim_mem and work + buffered + (192 << 20) <= lim_mem,
          "Deployment: AEC_MAX_MEMORY + AEC_MAX_BUFFERED + 192 MiB (models, code) fit the memory"
          " limit")
    check("AEC_THREADS" in env and "AEC_BLAS_THREADS" in env,
          "Deployment: AEC_THREADS and AEC_BLAS_THREADS set (aecd would size for the node's cores)")
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True,
          "Deployment: securityContext runAsNonRoot")
    check(psc.get("runAsUser") == 10001, "Deployment: runAsUser 10001 (the image's user)")
    check(csc.get("readOnlyRootFilesystem") is True, "Deployment: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, "Deployment: allowPrivilegeEscalation false")
    check(dig(csc, "capabilities", "drop") == ["ALL"], "Deployment: capabilities drop ALL")

svc = docs.get("Service")
if check(svc is not None, "docker/k8s/service.yaml: no Service") and dep:
    check(dig(svc, "spec", "selector") == dig(dep, "spec", "selector", "matchLabels"),
          "Service: selector = the Deployment's")
    check(any(p.get("targetPort") in ("http", 8080) for p in dig(svc, "spec", "ports") or []),
          "Service: targets the http port")

hpa = docs.get("HorizontalPodAutoscaler")
if check(hpa is not None, "docker/k8s/hpa.yaml: no HorizontalPodAutoscaler"):
    check(hpa.get("apiVersion") == "autoscaling/v2", "HPA: apiVersion autoscaling/v2")
    check(dig(hpa, "spec", "scaleTargetRef", "kind") == "Deployment"
          and dig(hpa, "spec", "scaleTargetRef", "name") == dig(dep, "metadata", "name"),
          "HPA: targets the Deployment")
    m = (dig(hpa, "spec", "metrics") or [{}])[0]
    check(dig(m, "resource", "name") == "cpu" and dig(m, "resource", "target", "type") == "Utilization",
          "HPA: CPU utilization metric")
    check(1 <= dig(hpa, "spec", "minReplicas") <= dig(hpa, "spec", "maxReplicas"),
          "HPA: 1 <= minReplicas <= maxReplicas")

pdb = docs.get("PodDisruptionBudget")
check(pdb is not None and pdb.get("apiVersion") == "policy/v1", "pdb.yaml: policy/v1 PodDisruptionBudget")

kus = docs.get("Kustomization")
if check(kus is not None, "docker/k8s/kustomization.yaml: no Kustomization"):
    for r in kus.get("resources", []):
        check(os.path.exists(os.path.join(ROOT, "docker/k8s", r)), f"kustomization: {r} exists")

# ---------------------------------------------------------------- compose
comp = (load_all("docker/compose.yaml") or [{}])[0]
aecd = dig(comp, "services", "aecd") or {}
lb = dig(comp, "services", "lb") or {}
check(aecd and lb, "compose: services aecd and lb")
check(dig(aecd, "deploy", "replicas") and dig(aecd, "deploy", "replicas") >= 2,
      "compose: aecd deploy.replicas >= 2")
check("ports" not in aecd, "compose: aecd publishes no port (replicas would collide)")
check(dig(aecd, "healthcheck", "test", 1) == "aecd", "compose: aecd healthcheck runs aecd --check-health")
check(dig(lb, "depends_on", "aecd", "condition") == "service_healthy",
      "compose: lb depends on healthy aecd")
check(lb.get("healthcheck") is not None, "compose: lb healthcheck")
cenv = aecd.get("environment") or {}
cdrain = int(cenv.get("AEC_SHUTDOWN_TIMEOUT", drain_default))
gp = re.fullmatch(r"(\d+)s", str(aecd.get("stop_grace_period", "10s")))
check(gp and int(gp.group(1)) >= cdrain + 5,
      f"compose: aecd stop_grace_period >= AEC_SHUTDOWN_TIMEOUT ({cdrain}) + 5 s")

# ---------------------------------------------------------------- nginx
conf = open(os.path.join(ROOT, "docker/nginx/nginx.conf")).read()
m = re.search(r"client_max_body_size\s+(\w+);", conf)
body = size_bytes(m.group(1)) if m else None
aecd_body = size_bytes(cenv.get("AEC_MAX_BODY", max_body_default))
check(body == aecd_body, f"nginx: client_max_body_size ({body}) = aecd --max-body ({aecd_body})")
check(re.search(r"upstream aecd \{[^}]*least_conn;", conf), "nginx: least_conn upstream")
check(re.search(r"server aecd:8080 [^;]*max_fails=", conf), "nginx: server aecd:8080 with max_fails")
for d in ("proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"):
    check(re.search(rf"\b{d}\s+\d+s;", conf), f"nginx: {d}")

if failures:
    for f in failures:
        print(f"FAIL: {f}")
    sys.exit(1)
print("manifests OK: docker/compose.yaml, docker/k8s/*.yaml, docker/nginx/nginx.conf")
