#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Checks deploy/kubernetes: well-formed, and consistent across objects.

    tests/deploy/check_manifests.py [--dir DIR] [--outriderd BIN] [--readme FILE]

No cluster, no network: python3 + PyYAML. Prints every failed check as
"FAIL <file>: <what>" and exits 1 if any failed, else prints "ok" lines and
exits 0. When BIN (default build/outriderd) exists, the DaemonSet's own
command renders the ConfigMap's config (NODE_NAME substituted) and
`outriderd --config <rendered> --check` must accept it.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The Secret the operator creates (deploy/README.md); never committed.
DOCUMENTED_SECRETS = {"outrider-ca": "kubernetes.io/tls"}

API_VERSIONS = {
    "Namespace": "v1",
    "ServiceAccount": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "DaemonSet": "apps/v1",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
REQUIRED_KINDS = ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                  "ConfigMap", "DaemonSet"]

# Exactly this, nothing more.
ALLOWED_RULES = {(g, r, v)
                 for g, rs in (("", ("pods", "namespaces", "services")),
                               ("discovery.k8s.io", ("endpointslices",)))
                 for r in rs for v in ("get", "list", "watch")}

ADMIN_PORT = 15020
READY_PORT = 15021
# Dots: node names are DNS subdomains; the render must cope.
TEST_NODE = "ip-10-0-0-1.eu-west-1.compute.internal"


class Checker:
    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, cond, where, what):
        if cond:
            self.passed += 1
        else:
            self.failures.append(f"FAIL {where}: {what}")
        return bool(cond)


def get(obj, *path, default=None):
    for p in path:
        if isinstance(obj, dict) and p in obj:
            obj = obj[p]
        elif isinstance(obj, list) and isinstance(p, int) and -len(obj) <= p < len(obj):
            obj = obj[p]
        else:
            return default
    return obj


def hostport_port(s):
    m = re.fullmatch(r"(?:\[[^\]]*\]|[^:\[\]]*):(\d+)", str(s))
    return int(m.group(1)) if m else None


def hostport_host(s):
    return str(s).rsplit(":", 1)[0].strip("[]")


def load(c, d):
    """(objects as (file, obj), manifest file names)."""
    files = sorted(f for f in os.listdir(d)
                   if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
    objs = []
    for f in files:
        try:
            with open(os.path.join(d, f)) as fh:
                docs = list(yaml.safe_load_all(fh))
        except yaml.YAMLError as e:
            c.check(False, f, f"not valid YAML: {e}")
            continue
        docs = [x for x in docs if x is not None]
        c.check(docs, f, "holds no object")
        for i, o in enumerate(docs):
            where = f"{f}[{i}]"
            if not c.check(isinstance(o, dict), where, "document is not a mapping"):
                continue
            kind = o.get("kind")
            c.check(isinstance(o.get("apiVersion"), str) and o["apiVersion"], where,
                    "no apiVersion")
            c.check(isinstance(kind, str) and kind, where, "no kind")
            c.check(isinstance(get(o, "metadata", "name"), str) and o["metadata"]["name"],
                    where, "no metadata.name")
            if kind in API_VERSIONS:
                c.check(o.get("apiVersion") == API_VERSIONS[kind], where,
                        f"{kind} apiVersion is {o.get('apiVersion')!r}, "
                        f"expected {API_VERSIONS[kind]!r}")
            else:
                c.check(False, where, f"unexpected kind {kind!r}")
            objs.append((f, o))
    return objs, files


def check_kustomization(c, d, files):
    path = os.path.join(d, "kustomization.yaml")
    if not c.check(os.path.exists(path), "kustomization.yaml", "missing"):
        return
    with open(path) as fh:
        k = yaml.safe_load(fh) or {}
    c.check(k.get("kind") == "Kustomization", "kustomization.yaml", "kind is not Kustomization")
    res = k.get("resources") or []
    for r in res:
        c.check(os.path.exists(os.path.join(d, r)), "kustomization.yaml",
                f"lists {r}, which does not exist")
    for f in files:
        c.check(f in res, "kustomization.yaml", f"does not list {f}")
    c.check(len(res) == len(set(res)), "kustomization.yaml", "lists a file twice")


def check_rbac(c, by_kind):
    ns = by_kind["Namespace"][0][1]["metadata"]["name"]
    sa_f, sa = by_kind["ServiceAccount"][0]
    cr_f, cr = by_kind["ClusterRole"][0]
    crb_f, crb = by_kind["ClusterRoleBinding"][0]

    rules = cr.get("rules") or []
    got = set()
    for i, r in enumerate(rules):
        where = f"{cr_f}: rules[{i}]"
        c.check(not r.get("resourceNames"), where, "resourceNames: not expected")
        c.check(not r.get("nonResourceURLs"), where, "nonResourceURLs: not allowed")
        c.check(sorted(r.get("verbs") or []) == ["get", "list", "watch"], where,
                f"verbs {r.get('verbs')} are not exactly get, list, watch")
        for g in r.get("apiGroups") or []:
            for res in r.get("resources") or []:
                for v in r.get("verbs") or []:
                    got.add((g, res, v))
    extra = sorted(got - ALLOWED_RULES)
    missing = sorted(ALLOWED_RULES - got)
    c.check(not extra, cr_f, f"ClusterRole grants more than allowed: {extra}")
    c.check(not missing, cr_f, f"ClusterRole lacks: {missing}")

    ref = crb.get("roleRef") or {}
    c.check(ref.get("apiGroup") == "rbac.authorization.k8s.io" and ref.get("kind") == "ClusterRole",
            crb_f, f"roleRef {ref} is not a ClusterRole")
    c.check(ref.get("name") == cr["metadata"]["name"], crb_f,
            f"roleRef.name {ref.get('name')!r} != ClusterRole {cr['metadata']['name']!r}")
    subj = crb.get("subjects") or []
    want = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": ns}
    c.check(any(all(s.get(k) == v for k, v in want.items()) for s in subj), crb_f,
            f"no subject {want} (subjects: {subj})")
    c.check(len(subj) == 1, crb_f, f"{len(subj)} subjects, expected only the agent's")


def resolve_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_daemonset(c, by_kind, objs):
    ns = by_kind["Namespace"][0][1]["metadata"]["name"]
    sa = by_kind["ServiceAccount"][0][1]["metadata"]["name"]
    f, ds = by_kind["DaemonSet"][0]
    spec = ds.get("spec") or {}
    tpl = spec.get("template") or {}
    pod = tpl.get("spec") or {}
    labels = get(tpl, "metadata", "labels", default={}) or {}

    sel = get(spec, "selector", "matchLabels", default={}) or {}
    c.check(sel, f, "spec.selector.matchLabels is empty")
    for k, v in sel.items():
        c.check(labels.get(k) == v, f, f"selector {k}={v} does not match the template's labels")
    c.check(pod.get("serviceAccountName") == sa, f,
            f"serviceAccountName {pod.get('serviceAccountName')!r} != ServiceAccount {sa!r}")
    c.check(pod.get("automountServiceAccountToken", True) is not False, f,
            "automountServiceAccountToken is false: the agent has no token for the API")

    c.check(pod.get("hostNetwork") is True, f, "hostNetwork is not true")
    c.check(pod.get("hostPID") is True, f, "hostPID is not true")
    c.check(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", f,
            "dnsPolicy is not ClusterFirstWithHostNet")
    c.check(pod.get("priorityClassName") == "system-node-critical", f,
            "priorityClassName is not system-node-critical")
    c.check(isinstance(pod.get("terminationGracePeriodSeconds"), int), f,
            "terminationGracePeriodSeconds not set")
    c.check(any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect")
                for t in pod.get("tolerations") or []), f,
            "no toleration for every taint (operator: Exists, no key)")
    # Take-over: the new agent starts beside the old one and takes its sockets.
    c.check(get(spec, "updateStrategy", "type") == "RollingUpdate"
            and get(spec, "updateStrategy", "rollingUpdate", "maxSurge") == 1
            and get(spec, "updateStrategy", "rollingUpdate", "maxUnavailable") == 0, f,
            "updateStrategy is not RollingUpdate with maxSurge 1, maxUnavailable 0 (take-over)")

    ann = get(tpl, "metadata", "annotations", default={}) or {}
    c.check(ann.get("prometheus.io/scrape") == "true", f, "no prometheus.io/scrape: \"true\"")
    c.check(ann.get("prometheus.io/port") == str(ADMIN_PORT), f,
            f"prometheus.io/port is not \"{ADMIN_PORT}\"")

    volumes = pod.get("volumes") or []
    vnames = [v.get("name") for v in volumes]
    c.check(len(vnames) == len(set(vnames)), f, f"duplicate volume names: {vnames}")
    vols = {v.get("name"): v for v in volumes}
    names = {(o.get("kind"), get(o, "metadata", "name")) for _, o in objs}

    for v in volumes:
        if "configMap" in v:
            n = get(v, "configMap", "name")
            c.check(("ConfigMap", n) in names, f, f"volume {v['name']}: no ConfigMap {n!r}")
        if "secret" in v:
            n = get(v, "secret", "secretName")
            c.check(("Secret", n) in names or n in DOCUMENTED_SECRETS, f,
                    f"volume {v['name']}: Secret {n!r} is neither a manifest nor documented")

    containers = pod.get("containers") or []
    if not c.check(len(containers) == 1, f, f"{len(containers)} containers, expected 1"):
        return None
    ct = containers[0]
    mounts = ct.get("volumeMounts") or []
    for m in mounts + [m for ic in pod.get("initContainers") or []
                       for m in ic.get("volumeMounts") or []]:
        c.check(m.get("name") in vols, f, f"volumeMount {m.get('name')!r} has no volume")
    mounted = {m.get("name") for m in mounts}
    for n in vols:
        c.check(n in mounted, f, f"volume {n!r} is mounted nowhere")

    def host_mount(path):
        for m in mounts:
            v = vols.get(m.get("name")) or {}
            if get(v, "hostPath", "path") == path:
                return m
        return None

    bpf = host_mount("/sys/fs/bpf")
    if c.check(bpf, f, "no bpffs volume (hostPath /sys/fs/bpf) mounted"):
        c.check(bpf.get("mountPropagation") == "Bidirectional", f,
                "bpffs mount is not mountPropagation: Bidirectional")
    c.check(host_mount("/sys/fs/cgroup"), f, "no cgroup2 root (hostPath /sys/fs/cgroup) mounted")
    proc = host_mount("/proc")
    if c.check(proc, f, "no hostPath /proc mounted"):
        c.check(proc.get("mountPath") == "/host/proc" and proc.get("readOnly") is True, f,
                "host /proc is not mounted read-only at /host/proc")
    c.check(host_mount("/var/lib/outrider"), f, "no state dir (hostPath /var/lib/outrider) mounted")

    sc = ct.get("securityContext") or {}
    c.check(sc.get("privileged") is True, f, "container is not privileged")

    env = {e.get("name"): e for e in ct.get("env") or []}
    c.check(get(env, "NODE_NAME", "valueFrom", "fieldRef", "fieldPath") == "spec.nodeName", f,
            "env NODE_NAME is not from fieldRef spec.nodeName")

    # With hostNetwork a declared containerPort is a hostPort, and the
    # scheduler then never puts a surge pod on the node: no take-over.
    c.check(not ct.get("ports"), f,
            "container ports declared: with hostNetwork they are hostPorts, which forbid maxSurge")
    cmd = " ".join(ct.get("command") or []) + " " + " ".join(ct.get("args") or [])
    c.check("--when-replaced wait" in cmd, f,
            "outriderd without --when-replaced wait: a replaced agent's container would restart")
    rp = ct.get("readinessProbe") or {}
    c.check(get(rp, "httpGet", "path") == "/healthz/ready", f,
            "readinessProbe is not httpGet /healthz/ready")
    c.check(resolve_port(ct, get(rp, "httpGet", "port")) == READY_PORT, f,
            f"readinessProbe port {get(rp, 'httpGet', 'port')!r} is not the ready port {READY_PORT}")
    lp = ct.get("livenessProbe")
    if lp:
        c.check(resolve_port(ct, get(lp, "httpGet", "port")) in (ADMIN_PORT, READY_PORT), f,
                "livenessProbe port is not the admin or ready port")

    res = ct.get("resources") or {}
    c.check(get(res, "requests", "cpu") and get(res, "requests", "memory"), f,
            "no cpu/memory requests")
    c.check(get(res, "limits", "memory"), f, "no memory limit")
    return ct, mounts, vols


def check_config(c, by_kind, ds_info, outriderd):
    cf, cm = by_kind["ConfigMap"][0]
    data = cm.get("data") or {}
    if not c.check("config.yaml" in data, cf, "no data key config.yaml"):
        return
    text = data["config.yaml"]
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        c.check(False, cf, f"config.yaml is not valid YAML: {e}")
        return
    if not c.check(isinstance(cfg, dict), cf, "config.yaml is not a mapping"):
        return
    c.check(cfg.get("node") == "${NODE_NAME}", cf, "node is not the ${NODE_NAME} placeholder")
    kube = cfg.get("kubernetes")
    c.check(isinstance(kube, dict), cf, "kubernetes: is not a mapping: the agent would not watch the API")
    c.check(isinstance(kube, dict) and "kubeconfig" not in kube, cf,
            "kubernetes: names a kubeconfig; in a pod the agent uses its service account")
    c.check("pods" not in cfg or not cfg["pods"], cf,
            "pods: listed by hand; in a cluster they come from the API")
    for key, want in (("admin_address", ADMIN_PORT), ("ready_address", READY_PORT)):
        v = cfg.get(key)
        c.check(hostport_port(v) == want, cf, f"{key} {v!r}: port is not the container's {want}")
        c.check(v is not None and hostport_host(v) in ("0.0.0.0", "::"), cf,
                f"{key} {v!r} is not on every address (hostNetwork kubelet probes)")
    if ds_info is None:
        return
    ct, mounts, vols = ds_info
    f = by_kind["DaemonSet"][0][0]

    def mount_of(pred):
        return next((m for m in mounts if pred(vols.get(m.get("name")) or {})), None)

    sec = mount_of(lambda v: get(v, "secret", "secretName") in DOCUMENTED_SECRETS)
    if c.check(sec, f, "the CA Secret is not mounted"):
        base = sec["mountPath"].rstrip("/")
        c.check(get(cfg, "ca", "cert") == base + "/tls.crt" and get(cfg, "ca", "key") == base + "/tls.key",
                cf, f"ca is not {{cert: {base}/tls.crt, key: {base}/tls.key}}")
    st = mount_of(lambda v: get(v, "hostPath", "path") == "/var/lib/outrider")
    if st:
        c.check(cfg.get("state_dir") == st["mountPath"], cf,
                f"state_dir {cfg.get('state_dir')!r} is not the mounted {st['mountPath']}")
    bpf = mount_of(lambda v: get(v, "hostPath", "path") == "/sys/fs/bpf")
    if bpf:
        pin = cfg.get("pin_dir", "/sys/fs/bpf/outrider")
        c.check(str(pin).startswith(bpf["mountPath"].rstrip("/") + "/"), cf,
                f"pin_dir {pin!r} is not under the bpffs mount {bpf['mountPath']}")
    cg = mount_of(lambda v: get(v, "hostPath", "path") == "/sys/fs/cgroup")
    if cg:
        root = cfg.get("cgroup_root", "auto")
        c.check(root in ("auto", cg["mountPath"]), cf,
                f"cgroup_root {root!r} is not the mounted {cg['mountPath']}")

    # Run the container's own command, its paths moved into a temp dir, to
    # render the config exactly as the pod does.
    cmv = mount_of(lambda v: get(v, "configMap", "name") == cm["metadata"]["name"])
    if not c.check(cmv, f, "the ConfigMap is not mounted"):
        return
    cmd = ct.get("command") or []
    if not c.check(len(cmd) == 3 and cmd[0] == "/bin/sh" and cmd[1].startswith("-"), f,
                   "command is not [/bin/sh, -ec, SCRIPT]"):
        return
    script = cmd[2]
    src = cmv["mountPath"].rstrip("/") + "/config.yaml"
    c.check(src in script, f, f"command does not read {src}")
    m = re.search(r"exec outriderd --config (\S+)(?: --when-replaced \w+)?\s*$", script)
    if not c.check(m, f, "command does not end in: exec outriderd --config FILE [--when-replaced W]"):
        return
    rendered = m.group(1)
    run = next((x for x in mounts if rendered.startswith(x["mountPath"].rstrip("/") + "/")
                and "emptyDir" in (vols.get(x.get("name")) or {})), None)
    c.check(run, f, f"rendered config {rendered} is not on an emptyDir volume")
    with tempfile.TemporaryDirectory() as tmp:
        # Longest mount paths first, so nested ones map correctly.
        for mnt in sorted(mounts, key=lambda x: -len(x["mountPath"])):
            script = script.replace(mnt["mountPath"], tmp + "/m" + str(mounts.index(mnt)))
        for i, mnt in enumerate(mounts):
            os.makedirs(f"{tmp}/m{i}", exist_ok=True)
        with open(src.replace(cmv["mountPath"], tmp + "/m" + str(mounts.index(cmv))), "w") as fh:
            fh.write(text)
        have_bin = outriderd and os.access(outriderd, os.X_OK)
        tail = f"exec {shlex.quote(os.path.abspath(outriderd))} --check --config" if have_bin \
            else "exec true --config"
        script = re.sub(r"exec outriderd --config", lambda _: tail, script)
        p = subprocess.run(["/bin/sh", cmd[1], script], env={"NODE_NAME": TEST_NODE,
                           "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
        out_path = rendered.replace(run["mountPath"], tmp + "/m" + str(mounts.index(run))) if run else None
        c.check(p.returncode == 0, f, f"command failed (exit {p.returncode}): {p.stdout}{p.stderr}")
        if out_path and os.path.exists(out_path):
            with open(out_path) as fh:
                r = yaml.safe_load(fh)
            c.check(isinstance(r, dict) and r.get("node") == TEST_NODE, cf,
                    f"rendered node is {r.get('node') if isinstance(r, dict) else r!r}, "
                    f"expected {TEST_NODE}")
        else:
            c.check(False, f, "command rendered no config")
        if have_bin:
            print(f"outriderd --check: {(p.stdout + p.stderr).strip()}")
        else:
            print(f"note: {outriderd} not built; outriderd --check skipped")


def check_readme(c, readme):
    if not c.check(os.path.exists(readme), readme, "missing"):
        return
    with open(readme) as fh:
        text = fh.read()
    for n, t in DOCUMENTED_SECRETS.items():
        c.check(f"create secret tls {n}" in text, readme,
                f"does not document `kubectl create secret tls {n}` ({t})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=os.path.join(ROOT, "deploy/kubernetes"))
    ap.add_argument("--outriderd", default=os.path.join(ROOT, "build/outriderd"))
    ap.add_argument("--readme", default=os.path.join(ROOT, "deploy/README.md"))
    a = ap.parse_args()

    c = Checker()
    objs, files = load(c, a.dir)
    check_kustomization(c, a.dir, files)
    check_readme(c, a.readme)

    by_kind = {}
    for f, o in objs:
        by_kind.setdefault(o.get("kind"), []).append((f, o))
    seen = set()
    for f, o in objs:
        key = (o.get("kind"), get(o, "metadata", "namespace"), get(o, "metadata", "name"))
        c.check(key not in seen, f, f"duplicate object {key}")
        seen.add(key)
    ok = True
    for k in REQUIRED_KINDS:
        ok &= c.check(len(by_kind.get(k, [])) == 1, a.dir,
                      f"{len(by_kind.get(k, []))} {k} objects, expected 1")
    if ok:
        ns = by_kind["Namespace"][0][1]["metadata"]["name"]
        for f, o in objs:
            kind, meta = o.get("kind"), o.get("metadata") or {}
            if kind in CLUSTER_SCOPED:
                c.check("namespace" not in meta, f, f"{kind} is cluster-scoped but has a namespace")
            else:
                c.check(meta.get("namespace") == ns, f,
                        f"{kind} {meta.get('name')}: namespace {meta.get('namespace')!r} != {ns!r}")
        check_rbac(c, by_kind)
        info = check_daemonset(c, by_kind, objs)
        check_config(c, by_kind, info, a.outriderd)

    for line in c.failures:
        print(line)
    print(f"{c.passed} checks passed, {len(c.failures)} failed ({len(objs)} objects in "
          f"{len(files)} files)")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
