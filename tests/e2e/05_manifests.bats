#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# deploy/kubernetes is well-formed and consistent (tests/deploy/check_manifests.py:
# no cluster, no network, no root); and the checker rejects broken copies.

ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
CHECK="$ROOT/tests/deploy/check_manifests.py"
# Debian's interpreter, where tests/deps.sh installs PyYAML (a python3 of
# another origin earlier on PATH may not have it).
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

# mutate PYTHON: a copy of deploy/kubernetes in $BATS_TEST_TMPDIR/k8s, with
# PYTHON run on `docs` (file -> list of objects) before writing it back.
mutate()
{
	cp -r "$ROOT/deploy/kubernetes" "$BATS_TEST_TMPDIR/k8s"
	"$PYTHON" - "$BATS_TEST_TMPDIR/k8s" "$1" <<'PY'
import os, sys, yaml
d, code = sys.argv[1], sys.argv[2]
docs = {f: list(yaml.safe_load_all(open(os.path.join(d, f))))
        for f in os.listdir(d) if f.endswith(".yaml")}
exec(code)
for f, objs in docs.items():
    with open(os.path.join(d, f), "w") as fh:
        yaml.safe_dump_all(objs, fh, sort_keys=False)
PY
}

@test "manifests: the checker accepts deploy/kubernetes" {
	run "$PYTHON" "$CHECK"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" 0 failed"* ]]
	if [ -x "$ROOT/build/outriderd" ]; then
		[[ "$output" == *"outriderd --check: "*": ok "* ]]
	fi
}

@test "manifests: an unchanged copy passes (the mutation harness itself)" {
	mutate "pass"
	run "$PYTHON" "$CHECK" --dir "$BATS_TEST_TMPDIR/k8s"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "manifests: a DaemonSet without the bpffs volume is rejected" {
	mutate '
ds = docs["daemonset.yaml"][0]["spec"]["template"]["spec"]
ds["volumes"] = [v for v in ds["volumes"] if v["name"] != "bpffs"]'
	run "$PYTHON" "$CHECK" --dir "$BATS_TEST_TMPDIR/k8s"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"volumeMount 'bpffs' has no volume"* ]]
	[[ "$output" == *"no bpffs volume"* ]]
}

@test "manifests: a ClusterRole that grants more is rejected" {
	mutate '
docs["clusterrole.yaml"][0]["rules"].append(
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]})'
	run "$PYTHON" "$CHECK" --dir "$BATS_TEST_TMPDIR/k8s"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"grants more than allowed"*"secrets"* ]]
}

@test "manifests: a ready_address off the container's port is rejected" {
	mutate '
cm = docs["configmap.yaml"][0]["data"]
cm["config.yaml"] = cm["config.yaml"].replace("0.0.0.0:15021", "0.0.0.0:15022")'
	run "$PYTHON" "$CHECK" --dir "$BATS_TEST_TMPDIR/k8s"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"ready_address"*"15021"* ]]
}

@test "manifests: a config without the kubernetes source, or a DaemonSet without a token, is rejected" {
	mutate '
cm = docs["configmap.yaml"][0]["data"]
cm["config.yaml"] = cm["config.yaml"].replace("kubernetes: {}", "")
ds = docs["daemonset.yaml"][0]["spec"]["template"]["spec"]
ds["automountServiceAccountToken"] = False'
	run "$PYTHON" "$CHECK" --dir "$BATS_TEST_TMPDIR/k8s"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the agent would not watch the API"* ]]
	[[ "$output" == *"automountServiceAccountToken is false"* ]]
}

@test "manifests: a DaemonSet that cannot take over (declared ports, no surge, no --when-replaced) is rejected" {
	mutate '
ds = docs["daemonset.yaml"][0]
ct = ds["spec"]["template"]["spec"]["containers"][0]
ct["ports"] = [{"name": "admin", "containerPort": 15020}]
ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxUnavailable": 1}
ct["command"][2] = ct["command"][2].replace(" --when-replaced wait", "")'
	run "$PYTHON" "$CHECK" --dir "$BATS_TEST_TMPDIR/k8s"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"they are hostPorts, which forbid maxSurge"* ]]
	[[ "$output" == *"maxSurge 1, maxUnavailable 0"* ]]
	[[ "$output" == *"without --when-replaced wait"* ]]
}
