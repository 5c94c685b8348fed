#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The stand-in Kubernetes API server (tests/fixtures/kube_apiserver.py,
# tests/e2e/lib/kube.bash) behaves as the agent's list+watch client will
# expect of a real one. curl only: no agent, no BPF, no root needed.

load lib/cluster
load lib/kube

POD_A_UID=0b7c2a3e-0001-4000-8000-00000000000a
POD_B_UID=0b7c2a3e-0002-4000-8000-00000000000b

setup_file()
{
	local cmd
	for cmd in openssl curl jq "$KUBE_PYTHON"; do
		command -v "$cmd" >/dev/null || { echo "$cmd is not installed" >&2; return 1; }
	done
	# zz_leaks.bats checks exactly the ids this bats run used.
	if [ -n "${BATS_RUN_TMPDIR:-}" ]; then
		export OR_IDS_FILE="$BATS_RUN_TMPDIR/outrider-ids"
	fi
	export KUBE_BOOKMARK_INTERVAL=0.3
	kube_init && kube_api_start || { cluster_cleanup; return 1; }
	{
		kube_namespace default | kube_apply &&
			kube_namespace shop outrider.io/mesh=enabled | kube_apply &&
			kube_pod web-a shop node-a 10.244.1.10 "$POD_A_UID" app=web | kube_apply &&
			kube_pod web-b shop node-b 10.244.2.10 "$POD_B_UID" app=web | kube_apply &&
			kube_pod db default node-a 10.244.1.20 "" app=db | kube_apply &&
			kube_service web shop 10.96.0.50 80 8080 app=web | kube_apply &&
			kube_slice web-x1 shop web 8080 10.244.1.10@node-a 10.244.2.10:notready@node-b |
			kube_apply
	} >/dev/null || { cluster_cleanup; return 1; }
}

teardown_file() { cluster_cleanup; }

teardown()
{
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -f "${OR_STATE:-}/kube/apiserver.log" ]; then
		echo "--- last 30 lines of $OR_STATE/kube/apiserver.log"
		tail -n 30 "$OR_STATE/kube/apiserver.log"
	fi
}

# watch_bg OUT QUERY [MAX_SECONDS]: curl -N of a watch into OUT (headers in
# OUT.headers), in the background: WATCH_PID. Call directly, not in $(...).
watch_bg()
{
	local out=$1 query=$2 max=${3:-10} d
	d=$(kube_dir)
	curl -sSN --max-time "$max" --cacert "$d/ca.crt" -H "Authorization: Bearer $(<"$d/token")" \
		-D "$out.headers" "$KUBE_API_URL$query" </dev/null >"$out" 2>"$out.err" 3>&- &
	WATCH_PID=$!
	_or_record_pid "$WATCH_PID" watch-curl
}

# watch_end: waits for the watch's curl; its exit status (0: the stream
# ended with its last chunk).
watch_end()
{
	local rc=0
	wait "$WATCH_PID" || rc=$?
	return "$rc"
}

stat_of() { kube_stats | jq -r "$1"; }
open_watches_is() { [ "$(stat_of .open_watches)" = "$1" ]; }
current_rv() { stat_of .rv; }

@test "kube api: 401 Status without the token or with a wrong one; /healthz is open" {
	run curl -sS --max-time 5 --cacert "$OR_STATE/kube/ca.crt" -w '\n%{http_code}' \
		"$KUBE_API_URL/api/v1/pods"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(tail -n1 <<<"$output")" = 401 ]
	head -n1 <<<"$output" | jq -e '.kind == "Status" and .apiVersion == "v1" and .code == 401
		and .reason == "Unauthorized" and .status == "Failure" and .message == "Unauthorized"'
	run curl -sS --max-time 5 --cacert "$OR_STATE/kube/ca.crt" -H 'Authorization: Bearer nope' \
		-o /dev/null -w '%{http_code}' "$KUBE_API_URL/version"
	[ "$output" = 401 ]
	run curl -sS --max-time 5 --cacert "$OR_STATE/kube/ca.crt" "$KUBE_API_URL/healthz"
	[ "$output" = ok ]
	run kube_curl /version
	jq -e '.major == "1" and (.gitVersion | startswith("v1."))' <<<"$output"
	run kube_curl /api/v1/nothing -w '\n%{http_code}'
	echo "$output"
	[ "$(tail -n1 <<<"$output")" = 404 ]
	head -n1 <<<"$output" | jq -e '.kind == "Status" and .code == 404 and .reason == "NotFound"'
}

@test "kube api: lists carry kind, apiVersion, the current rv; items sorted, no kind" {
	local rv
	rv=$(current_rv)
	run kube_curl /api/v1/pods -D "$BATS_TEST_TMPDIR/h"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -qi '^content-type: application/json' "$BATS_TEST_TMPDIR/h"
	jq -e --arg rv "$rv" '.kind == "PodList" and .apiVersion == "v1"
		and .metadata.resourceVersion == $rv and (.metadata | has("continue") | not)
		and ([.items[] | .metadata.namespace + "/" + .metadata.name]
			== ["default/db", "shop/web-a", "shop/web-b"])
		and all(.items[]; (has("kind") or has("apiVersion")) | not)
		and (.items[1].metadata.uid == "'"$POD_A_UID"'")
		and (.items[1].metadata.managedFields[0].manager == "kubectl-client-side-apply")
		and (.items[1].spec.nodeName == "node-a") and (.items[1].status.podIP == "10.244.1.10")' \
		<<<"$output"
	run kube_curl /apis/discovery.k8s.io/v1/endpointslices
	jq -e '.kind == "EndpointSliceList" and .apiVersion == "discovery.k8s.io/v1"
		and .items[0].metadata.labels["kubernetes.io/service-name"] == "web"
		and (.items[0].endpoints | map(.conditions.ready)) == [true, false]' <<<"$output"
	run kube_curl /api/v1/namespaces
	jq -e '.kind == "NamespaceList" and ([.items[].metadata.name] == ["default", "shop"])
		and .items[1].metadata.labels["kubernetes.io/metadata.name"] == "shop"' <<<"$output"
	run kube_curl /api/v1/services
	jq -e '.kind == "ServiceList" and .items[0].spec.clusterIP == "10.96.0.50"
		and .items[0].spec.ports[0].targetPort == 8080' <<<"$output"
}

@test "kube api: limit=1 pages through with continue; every page has the list's rv" {
	local page cont="" names="" rv="" n=0
	while :; do
		page=$(kube_curl "/api/v1/pods?limit=1${cont:+&continue=$cont}") || return 1
		echo "$page" | jq -c '.metadata'
		[ "$(jq '.items | length' <<<"$page")" = 1 ]
		[ -n "$rv" ] || rv=$(jq -r .metadata.resourceVersion <<<"$page")
		[ "$(jq -r .metadata.resourceVersion <<<"$page")" = "$rv" ]
		names+="$(jq -r '.items[0].metadata.name' <<<"$page") "
		# A change between pages does not show up in the rest of the list.
		[ "$n" != 0 ] || kube_pod web-c shop node-a 10.244.1.11 "" app=web | kube_apply >/dev/null
		n=$((n + 1))
		cont=$(jq -r '.metadata.continue // empty' <<<"$page")
		[ -n "$cont" ] || break
		[ "$n" -lt 10 ]
	done
	[ "$names" = "db web-a web-b " ]
	kube_delete Pod shop web-c >/dev/null
}

@test "kube api: a watch from the list's rv sees ADDED, MODIFIED, DELETED, then ends cleanly" {
	local rv out=$BATS_TEST_TMPDIR/watch
	rv=$(kube_curl /api/v1/pods | jq -r .metadata.resourceVersion)
	kube_pod web-d shop node-a 10.244.1.12 "" app=web | kube_apply >/dev/null
	watch_bg "$out" "/api/v1/pods?watch=true&resourceVersion=$rv&timeoutSeconds=2" 8
	kube_pod web-d shop node-a 10.244.1.12 "" app=web tier=2 | kube_apply >/dev/null
	kube_delete Pod shop web-d >/dev/null
	# Other resources' events are not in a pod watch.
	kube_namespace other | kube_apply >/dev/null
	kube_delete Namespace - other >/dev/null
	watch_end
	cat "$out"
	grep -qi '^transfer-encoding: chunked' "$out.headers"
	grep -qi '^content-type: application/json' "$out.headers"
	[ "$(jq -r .type "$out" | tr '\n' ' ')" = "ADDED MODIFIED DELETED " ]
	jq -se --arg rv "$rv" 'all(.[]; .object.kind == "Pod" and .object.apiVersion == "v1"
			and .object.metadata.name == "web-d")
		and ([.[].object.metadata.resourceVersion | tonumber]
			== [($rv | tonumber) + 1, ($rv | tonumber) + 2, ($rv | tonumber) + 3])
		and .[1].object.metadata.labels.tier == "2"' "$out"
}

@test "kube api: a watch from rv 0 starts with ADDED for every object" {
	local out=$BATS_TEST_TMPDIR/watch
	watch_bg "$out" "/api/v1/namespaces?watch=1&resourceVersion=0&timeoutSeconds=1" 6
	watch_end
	cat "$out"
	[ "$(jq -r '.type + " " + .object.metadata.name' "$out" | tr '\n' ,)" = "ADDED default,ADDED shop," ]
	jq -se 'all(.[]; .object.kind == "Namespace")' "$out"
}

@test "kube api: bookmarks with allowWatchBookmarks carry the current rv; none without" {
	local out=$BATS_TEST_TMPDIR/watch rv
	rv=$(current_rv)
	watch_bg "$out" "/apis/discovery.k8s.io/v1/endpointslices?watch=true&resourceVersion=$rv&allowWatchBookmarks=true&timeoutSeconds=1" 6
	watch_end
	cat "$out"
	[ "$(grep -c BOOKMARK "$out")" -ge 2 ]
	jq -se --arg rv "$rv" 'all(.[]; .type == "BOOKMARK" and .object.kind == "EndpointSlice"
		and .object.apiVersion == "discovery.k8s.io/v1"
		and .object.metadata.resourceVersion == $rv)' "$out"
	watch_bg "$out" "/api/v1/pods?watch=true&resourceVersion=$rv&timeoutSeconds=1" 6
	watch_end
	[ ! -s "$out" ]
}

@test "kube api: fieldSelector spec.nodeName filters lists and watches; unknown fields are 400" {
	local out=$BATS_TEST_TMPDIR/watch rv
	run kube_curl '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a'
	jq -e '[.items[].metadata.name] == ["db", "web-a"]' <<<"$output"
	rv=$(jq -r .metadata.resourceVersion <<<"$output")
	watch_bg "$out" "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dnode-a&resourceVersion=$rv&timeoutSeconds=2" 8
	kube_pod far shop node-b 10.244.2.30 "" | kube_apply >/dev/null
	kube_pod near shop node-a 10.244.1.30 "" | kube_apply >/dev/null
	# Moving off the node: DELETED for this watch.
	kube_pod near shop node-b 10.244.1.30 "" | kube_apply >/dev/null
	kube_delete Pod shop far >/dev/null
	kube_delete Pod shop near >/dev/null
	watch_end
	cat "$out"
	[ "$(jq -r '.type + " " + .object.metadata.name' "$out" | tr '\n' ,)" = "ADDED near,DELETED near," ]
	run kube_curl '/api/v1/pods?fieldSelector=status.hostIP%3D1.2.3.4' -w '\n%{http_code}'
	echo "$output"
	[ "$(tail -n1 <<<"$output")" = 400 ]
	head -n1 <<<"$output" | jq -e '.kind == "Status" and .code == 400 and .reason == "BadRequest"'
}

@test "kube api: after /compact a watch from an older rv gets one 410 ERROR event and ends" {
	local out=$BATS_TEST_TMPDIR/watch rv gone
	rv=$(current_rv)
	kube_pod web-e shop node-a 10.244.1.13 "" | kube_apply >/dev/null
	kube_delete Pod shop web-e >/dev/null
	gone=$(stat_of .gone)
	kube_ctl /compact >/dev/null
	watch_bg "$out" "/api/v1/pods?watch=true&resourceVersion=$rv&allowWatchBookmarks=true" 5
	watch_end
	cat "$out"
	[ "$(wc -l <"$out")" = 1 ]
	jq -e --arg rv "$rv" '.type == "ERROR" and .object.kind == "Status"
		and .object.apiVersion == "v1" and .object.code == 410 and .object.reason == "Expired"
		and (.object.message | startswith("too old resource version: " + $rv + " ("))' "$out"
	[ "$(stat_of .gone)" = $((gone + 1)) ]
	# From the current rv, the watch is fine.
	rv=$(current_rv)
	watch_bg "$out" "/api/v1/pods?watch=true&resourceVersion=$rv&timeoutSeconds=1" 5
	watch_end
	[ ! -s "$out" ]
}

@test "kube api: a restart keeps objects and the rv counter; streams end cleanly; history is gone" {
	local out=$BATS_TEST_TMPDIR/watch before rv uid
	before=$(kube_curl /api/v1/pods) || return 1
	rv=$(jq -r .metadata.resourceVersion <<<"$before")
	watch_bg "$out" "/api/v1/pods?watch=true&resourceVersion=$rv" 8
	wait_until 3000 open_watches_is 1
	kube_api_restart
	watch_end # the old server's stream ended with its last chunk
	[ "$(current_rv)" = "$rv" ]
	[ "$(stat_of .lists.pods)" = 0 ]
	run kube_curl /api/v1/pods
	[ "$output" = "$before" ]
	uid=$(kube_pod web-a shop node-a 10.244.1.10 "" app=web | kube_apply | jq -r .metadata.uid)
	[ "$uid" = "$POD_A_UID" ]
	[ "$(current_rv)" = $((rv + 1)) ]
	watch_bg "$out" "/api/v1/pods?watch=true&resourceVersion=$((rv - 1))" 5
	watch_end
	cat "$out"
	jq -e '.type == "ERROR" and .object.code == 410' "$out"
}

@test "kube api: /drop cuts an open watch without its last chunk" {
	local out=$BATS_TEST_TMPDIR/watch rc=0
	watch_bg "$out" "/api/v1/services?watch=true&resourceVersion=$(current_rv)" 8
	wait_until 3000 open_watches_is 1
	run kube_ctl /drop
	echo "$output"
	jq -e '.dropped == 1' <<<"$output"
	watch_end || rc=$?
	cat "$out.err"
	# 18: "transfer closed with outstanding read data remaining"
	[ "$rc" -eq 18 ] || [ "$rc" -eq 56 ]
	wait_until 3000 open_watches_is 0
}

@test "kube api: garbage: a list once, a 500 Status once, a malformed watch line" {
	local out=$BATS_TEST_TMPDIR/watch rv
	kube_ctl /garbage '{"target":"list","count":1}' >/dev/null
	run kube_curl /api/v1/namespaces -w '\n%{http_code}'
	echo "$output"
	[ "$(tail -n1 <<<"$output")" = 200 ]
	if head -n1 <<<"$output" | jq -e . >/dev/null 2>&1; then
		echo "the garbage list parsed"
		return 1
	fi
	run kube_curl /api/v1/namespaces
	jq -e '.kind == "NamespaceList"' <<<"$output"

	kube_ctl /garbage '{"target":"status","count":1}' >/dev/null
	run kube_curl /api/v1/pods -w '\n%{http_code}'
	echo "$output"
	[ "$(tail -n1 <<<"$output")" = 500 ]
	head -n1 <<<"$output" | jq -e '.kind == "Status" and .code == 500 and .reason == "InternalError"'
	run kube_curl /api/v1/pods
	jq -e '.kind == "PodList"' <<<"$output"

	rv=$(current_rv)
	watch_bg "$out" "/api/v1/pods?watch=true&resourceVersion=$rv&timeoutSeconds=2" 8
	wait_until 3000 open_watches_is 1
	kube_ctl /garbage '{"target":"watch"}' >/dev/null
	kube_pod web-f shop node-a 10.244.1.14 "" | kube_apply >/dev/null
	kube_delete Pod shop web-f >/dev/null
	watch_end
	cat "$out"
	[ "$(wc -l <"$out")" = 4 ]
	if head -n2 "$out" | jq -e . >/dev/null 2>&1; then
		echo "the garbage lines parsed"
		return 1
	fi
	[ "$(tail -n2 "$out" | jq -r .type | tr '\n' ' ')" = "ADDED DELETED " ]
}

@test "kube api: kube_kubeconfig points at the server with a relative CA path" {
	local kc=$BATS_TEST_TMPDIR/kubeconfig ca server token
	kube_kubeconfig "$kc"
	cat "$kc"
	grep -qx 'current-context: outrider-test' "$kc"
	ca=$(awk '$1 == "certificate-authority:" { print $2 }' "$kc")
	server=$(awk '$1 == "server:" { print $2 }' "$kc")
	token=$(awk '$1 == "token:" { print $2 }' "$kc")
	[ "$ca" = kube-ca.crt ]
	[ "$server" = "$KUBE_API_URL" ]
	run curl -sS --max-time 5 --cacert "$BATS_TEST_TMPDIR/$ca" \
		-H "Authorization: Bearer $token" "$server/api/v1/namespaces"
	jq -e '.kind == "NamespaceList"' <<<"$output"
}
