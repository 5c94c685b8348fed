// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Config parsing and validation. Every rejected input must come back with
 * -EINVAL, no config, and "FILE:LINE: ..." naming the offending line; the
 * test's name stands in for the file name.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "or_abi.h"

static struct or_config *load_ok(const char *name, const char *yaml)
{
	struct or_config *cfg = (struct or_config *)0x1;
	char err[512] = "";
	int ret;

	ret = or_config_load_buf(name, yaml, strlen(yaml), &cfg, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s: expected success, got %d: %s", name, ret, err);
	cr_assert_not_null(cfg, "%s: no config returned", name);
	return cfg;
}

/* Expects rejection at `line` with `frag` somewhere in the message. */
static void load_bad(const char *name, const char *yaml, int line, const char *frag)
{
	struct or_config *cfg = (struct or_config *)0x1;
	char err[512] = "", prefix[128];
	int ret;

	ret = or_config_load_buf(name, yaml, strlen(yaml), &cfg, err, sizeof(err));
	cr_assert_eq(ret, -EINVAL, "%s: expected -EINVAL, got %d (%s)\n%s", name, ret, err, yaml);
	cr_assert_null(cfg, "%s: config returned on failure", name);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", name, line);
	cr_assert(strncmp(err, prefix, strlen(prefix)) == 0,
		  "%s: error should start with '%s': '%s'", name, prefix, err);
	cr_assert(strstr(err, frag) != NULL, "%s: error should mention '%s': '%s'", name, frag,
		  err);
}

static const char *ip_str(const struct or_ip *ip)
{
	static char buf[OR_IP_STRLEN];

	return or_ip_str(ip, buf, sizeof(buf));
}

/* Lines are numbered in the comments: error tests below depend on them. */
static const char full_yaml[] =
	"node: node-a\n"				/* 1 */
	"pin_dir: /sys/fs/bpf/test\n"			/* 2 */
	"cgroup_root: /sys/fs/cgroup/unified\n"		/* 3 */
	"selector: mesh=on\n"				/* 4 */
	"max_connections: 1000\n"			/* 5 */
	"workers: 4\n"					/* 6 */
	"namespaces:\n"					/* 7 */
	"  - name: shop\n"				/* 8 */
	"    labels: {mesh: \"on\", team: web}\n"	/* 9 */
	"pods:\n"					/* 10 */
	"  - name: client\n"				/* 11 */
	"    namespace: shop\n"				/* 12 */
	"    labels: {app: client, mesh: \"\"}\n"	/* 13 */
	"    ip: 10.244.1.2\n"				/* 14 */
	"    ip6: fd00::2\n"				/* 15 */
	"    netns: /run/netns/client\n"		/* 16 */
	"    cgroup: /sys/fs/cgroup/unified/or/client\n" /* 17 */
	"    service_account: client-sa\n"		/* 18 */
	"  - name: echo-1\n"				/* 19 */
	"    node: node-b\n"				/* 20 */
	"    labels: {app: echo}\n"			/* 21 */
	"    ip: 10.244.2.3\n"				/* 22 */
	"services:\n"					/* 23 */
	"  - name: echo\n"				/* 24 */
	"    vip: 10.96.0.10\n"				/* 25 */
	"    mode: kernel\n"				/* 26 */
	"    ports:\n"					/* 27 */
	"      - {port: 80, target_port: 8080, protocol: tcp}\n" /* 28 */
	"      - port: 443\n"				/* 29 */
	"    selector: {app: echo}\n"			/* 30 */
	"    policy:\n"					/* 31 */
	"      connect_timeout_ms: 250\n"		/* 32 */
	"      load_balancer: least_request\n"		/* 33 */
	"  - name: ext\n"				/* 34 */
	"    namespace: shop\n"				/* 35 */
	"    vip: fd00:96::1\n"				/* 36 */
	"    ports: [{port: 9000}]\n"			/* 37 */
	"    endpoints:\n"				/* 38 */
	"      - {ip: \"fd00::10\", port: 9001, node: node-b, weight: 5}\n" /* 39 */
	"      - ip: fd00::11\n";			/* 40 */

Test(config, full_valid_config)
{
	struct or_config *cfg = load_ok("full.yaml", full_yaml);
	const struct or_pod_cfg *p;
	const struct or_svc_cfg *s;

	cr_expect_str_eq(cfg->path, "full.yaml");
	cr_expect_str_eq(cfg->node, "node-a");
	cr_expect_str_eq(cfg->pin_dir, "/sys/fs/bpf/test");
	cr_expect_str_eq(cfg->cgroup_root, "/sys/fs/cgroup/unified");
	cr_expect_str_eq(cfg->selector_key, "mesh");
	cr_expect_str_eq(cfg->selector_value, "on");
	cr_expect_eq(cfg->max_connections, 1000);
	cr_expect_eq(cfg->workers, 4);

	cr_assert_eq(cfg->n_namespaces, 1);
	cr_expect_str_eq(cfg->namespaces[0].name, "shop");
	cr_expect_eq(cfg->namespaces[0].line, 8);
	cr_expect_str_eq(or_labels_get(&cfg->namespaces[0].labels, "mesh"), "on");
	cr_expect_str_eq(or_labels_get(&cfg->namespaces[0].labels, "team"), "web");

	cr_assert_eq(cfg->n_pods, 2);
	p = &cfg->pods[0];
	cr_expect_str_eq(p->name, "client");
	cr_expect_str_eq(p->namespace, "shop");
	cr_expect_str_eq(p->node, "node-a");
	cr_expect_eq(p->labels.n, 2);
	cr_expect_str_eq(or_labels_get(&p->labels, "app"), "client");
	cr_expect_str_eq(or_labels_get(&p->labels, "mesh"), "");
	cr_expect_eq(p->ip.family, AF_INET);
	cr_expect_str_eq(ip_str(&p->ip), "10.244.1.2");
	cr_expect_eq(p->ip6.family, AF_INET6);
	cr_expect_str_eq(ip_str(&p->ip6), "fd00::2");
	cr_expect_str_eq(p->netns, "/run/netns/client");
	cr_expect_str_eq(p->cgroup, "/sys/fs/cgroup/unified/or/client");
	cr_expect_str_eq(p->service_account, "client-sa");
	cr_expect_eq(p->line, 11);
	cr_expect(or_pod_local(cfg, p));

	p = &cfg->pods[1];
	cr_expect_str_eq(p->name, "echo-1");
	cr_expect_str_eq(p->namespace, "default");
	cr_expect_str_eq(p->node, "node-b");
	cr_expect_eq(p->ip6.family, 0);
	cr_expect_null(p->netns, "a remote pod needs no netns");
	cr_expect_null(p->cgroup);
	cr_expect_str_eq(p->service_account, "default");
	cr_expect_eq(p->line, 19);
	cr_expect_not(or_pod_local(cfg, p));

	cr_assert_eq(cfg->n_services, 2);
	s = &cfg->services[0];
	cr_expect_str_eq(s->name, "echo");
	cr_expect_str_eq(s->namespace, "default");
	cr_expect_str_eq(ip_str(&s->vip), "10.96.0.10");
	cr_expect_eq(s->mode, OR_SVC_KERNEL);
	cr_assert_eq(s->n_ports, 2);
	cr_expect_eq(s->ports[0].port, 80);
	cr_expect_eq(s->ports[0].target_port, 8080);
	cr_expect_eq(s->ports[0].protocol, OR_PROTOCOL_TCP);
	cr_expect_eq(s->ports[0].line, 28);
	cr_expect_eq(s->ports[1].port, 443);
	cr_expect_eq(s->ports[1].target_port, 443);
	cr_expect_eq(s->ports[1].line, 29);
	cr_expect(s->has_selector);
	cr_expect_str_eq(or_labels_get(&s->selector, "app"), "echo");
	cr_expect_eq(s->n_endpoints, 0);
	cr_expect_eq(s->policy.connect_timeout_ms, 250);
	cr_expect_eq(s->policy.load_balancer, OR_LB_LEAST_REQUEST);
	cr_expect_eq(s->line, 24);

	s = &cfg->services[1];
	cr_expect_str_eq(s->name, "ext");
	cr_expect_str_eq(s->namespace, "shop");
	cr_expect_eq(s->vip.family, AF_INET6);
	cr_expect_eq(s->mode, OR_SVC_PROXY);
	cr_expect_not(s->has_selector);
	cr_assert_eq(s->n_endpoints, 2);
	cr_expect_str_eq(ip_str(&s->endpoints[0].ip), "fd00::10");
	cr_expect_eq(s->endpoints[0].port, 9001);
	cr_expect_str_eq(s->endpoints[0].node, "node-b");
	cr_expect_eq(s->endpoints[0].weight, 5);
	cr_expect_eq(s->endpoints[0].line, 39);
	cr_expect_str_eq(ip_str(&s->endpoints[1].ip), "fd00::11");
	cr_expect_eq(s->endpoints[1].port, 0, "port 0 means the target port");
	cr_expect_null(s->endpoints[1].node);
	cr_expect_eq(s->endpoints[1].weight, 1);
	cr_expect_eq(s->endpoints[1].line, 40);
	cr_expect_eq(s->policy.connect_timeout_ms, OR_DEFAULT_CONNECT_TIMEOUT_MS);
	cr_expect_eq(s->policy.load_balancer, OR_LB_ROUND_ROBIN);

	or_config_free(cfg);
}

Test(config, top_level_defaults)
{
	struct or_config *cfg = load_ok("defaults.yaml", "node: n1\n");

	cr_expect_str_eq(cfg->node, "n1");
	cr_expect_str_eq(cfg->pin_dir, OR_DEFAULT_PIN_DIR);
	cr_expect_str_eq(cfg->cgroup_root, "auto");
	cr_expect_str_eq(cfg->selector_key, OR_DEFAULT_SELECTOR_KEY);
	cr_expect_str_eq(cfg->selector_value, OR_DEFAULT_SELECTOR_VALUE);
	cr_expect_eq(cfg->max_connections, OR_DEFAULT_MAX_CONNECTIONS);
	cr_expect_eq(cfg->workers, 0);
	cr_expect_eq(cfg->n_namespaces, 0);
	cr_expect_eq(cfg->n_pods, 0);
	cr_expect_eq(cfg->n_services, 0);
	or_config_free(cfg);
}

Test(config, item_defaults_and_nulls)
{
	/* A null value is an absent key; "node" may come after the pods. */
	struct or_config *cfg = load_ok("itemdefaults.yaml",
					"pods:\n"
					"  - name: p\n"
					"    ip: 10.0.0.1\n"
					"    ip6: ~\n"
					"    labels:\n"
					"    netns: /run/netns/p\n"
					"    cgroup: /sys/fs/cgroup/p\n"
					"services:\n"
					"  - name: s\n"
					"    vip: 10.96.0.1\n"
					"    ports: [{port: 53}]\n"
					"    selector: {}\n"
					"    endpoints: []\n"
					"    policy: {}\n"
					"node: late\n"
					"cgroup_root: auto\n");

	cr_expect_str_eq(cfg->pods[0].node, "late");
	cr_expect_str_eq(cfg->pods[0].namespace, "default");
	cr_expect_str_eq(cfg->pods[0].service_account, "default");
	cr_expect_eq(cfg->pods[0].ip6.family, 0);
	cr_expect_eq(cfg->pods[0].labels.n, 0);
	cr_expect_str_eq(cfg->services[0].namespace, "default");
	cr_expect_eq(cfg->services[0].mode, OR_SVC_PROXY);
	cr_expect_eq(cfg->services[0].ports[0].target_port, 53);
	cr_expect_not(cfg->services[0].has_selector, "an empty selector selects nothing");
	cr_expect_eq(cfg->services[0].policy.connect_timeout_ms, 1000);
	cr_expect_str_eq(cfg->cgroup_root, "auto");
	or_config_free(cfg);
}

Test(config, kernel_mode_ipv6_vip_and_aliases)
{
	const char *yaml = "node: n\n"
			   "pods:\n"
			   "  - {name: a, node: x, ip: 10.0.0.1, labels: &l {app: web}}\n"
			   "  - {name: b, node: x, ip: 10.0.0.2, labels: *l}\n"
			   "services:\n"
			   "  - {name: s, vip: 'fd00::1', mode: kernel, ports: [{port: 1}],\n"
			   "     selector: *l}\n";
	struct or_config *cfg = load_ok("alias.yaml", yaml);

	cr_expect_str_eq(or_labels_get(&cfg->pods[1].labels, "app"), "web");
	cr_expect_eq(cfg->services[0].mode, OR_SVC_KERNEL);
	cr_expect_eq(cfg->services[0].vip.family, AF_INET6);
	cr_expect(or_labels_match(&cfg->pods[0].labels, &cfg->services[0].selector));
	or_config_free(cfg);
}

Test(config, yaml_syntax_errors)
{
	load_bad("syntax.yaml", "node: a\nfoo: [a, b\nbar: c\n", 3,
		 "did not find expected ',' or ']'");
	load_bad("tab.yaml", "node: a\npods:\n  - name: x\n\tip: 1.2.3.4\n", 4, "tab");
	load_bad("indent.yaml", "node: a\n  b: c\n", 2, "mapping values are not allowed");
	load_bad("alias.yaml", "node: a\npods: *nope\n", 2, "undefined alias");
	load_bad("utf8.yaml", "node: a\nx: \"\xff\"\n", 2, "UTF-8");
}

Test(config, empty_document)
{
	load_bad("empty.yaml", "", 1, "no configuration");
	load_bad("comments.yaml", "# nothing here\n\n", 1, "no configuration");
	load_bad("dashes.yaml", "---\n", 1, "no configuration");
	load_bad("tilde.yaml", "~\n", 1, "no configuration");
}

Test(config, multiple_documents)
{
	load_bad("docs.yaml", "node: a\n---\nnode: b\n", 3, "more than one YAML document");
}

Test(config, unknown_keys)
{
	load_bad("top.yaml", "node: a\nnodes: b\n", 2, "unknown key 'nodes'");
	load_bad("ns.yaml", "node: a\nnamespaces:\n  - name: x\n    label: {}\n", 4,
		 "namespaces[0]: unknown key 'label'");
	load_bad("pod.yaml", "node: a\npods:\n  - name: x\n    ip: 10.0.0.1\n    nmae: y\n", 5,
		 "pods[0]: unknown key 'nmae'");
	load_bad("svc.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    port: 80\n", 5,
		 "services[0]: unknown key 'port'");
	load_bad("port.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports:\n"
		 "      - {port: 80, targetPort: 81}\n",
		 6, "services[0].ports[0]: unknown key 'targetPort'");
	load_bad("ep.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 80}]\n"
		 "    endpoints:\n      - ip: 10.0.0.2\n        wieght: 2\n",
		 8, "services[0].endpoints[0]: unknown key 'wieght'");
	load_bad("policy.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 80}]\n"
		 "    policy:\n      retry: 3\n",
		 7, "services[0].policy: unknown key 'retry'");
}

Test(config, unknown_key_lists_the_expected_ones)
{
	load_bad("hint.yaml", "node: a\nworker: 2\n", 2, "expected one of: node, pin_dir");
}

Test(config, duplicate_keys)
{
	load_bad("dupkey.yaml", "node: a\nworkers: 1\nworkers: 2\n", 3, "duplicate key 'workers'");
	load_bad("duplabel.yaml",
		 "node: a\npods:\n  - name: x\n    ip: 10.0.0.1\n    node: b\n"
		 "    labels:\n      app: x\n      app: y\n",
		 8, "duplicate label 'app' (first at line 7)");
}

Test(config, wrong_node_types)
{
	load_bad("root.yaml", "- node: a\n", 1, "expected a mapping at the top level, got a list");
	load_bad("rootscalar.yaml", "hello\n", 1, "expected a mapping at the top level");
	load_bad("nodemap.yaml", "node: {a: b}\n", 1, "node: expected a string, got a mapping");
	load_bad("podsscalar.yaml", "node: a\npods: many\n", 2,
		 "pods: expected a list, got a scalar");
	load_bad("podscalar.yaml", "node: a\npods:\n  - p1\n", 3,
		 "pods[0]: expected a mapping, got a scalar");
	load_bad("labelslist.yaml",
		 "node: a\npods:\n  - name: x\n    ip: 10.0.0.1\n    labels: [a]\n", 5,
		 "pods[0].labels: expected a mapping of labels, got a list");
	load_bad("labelval.yaml",
		 "node: a\npods:\n  - name: x\n    ip: 10.0.0.1\n    labels: {app: [a]}\n", 5,
		 "value of label 'app' must be a string, got a list");
	load_bad("portsmap.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: {port: 80}\n", 5,
		 "services[0].ports: expected a list, got a mapping");
	load_bad("policylist.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n"
		 "    policy: [round_robin]\n",
		 6, "services[0].policy: expected a mapping, got a list");
	load_bad("key.yaml", "node: a\n[x]: 1\n", 2, "keys must be strings");
	load_bad("ipmap.yaml", "node: a\npods:\n  - name: x\n    ip: {a: 1}\n", 4,
		 "expected an IP address, got a mapping");
	load_bad("intlist.yaml", "node: a\nworkers: [1]\n", 2, "expected an integer, got a list");
}

Test(config, bad_ip_addresses)
{
	load_bad("ip.yaml", "node: a\npods:\n  - name: x\n    ip: 10.0.0.256\n", 4,
		 "pods[0].ip: '10.0.0.256' is not an IP address");
	load_bad("ip6inip.yaml", "node: a\npods:\n  - name: x\n    ip: fd00::1\n", 4,
		 "pods[0].ip: fd00::1 is not an IPv4 address");
	load_bad("ip4inip6.yaml",
		 "node: a\npods:\n  - name: x\n    ip: 10.0.0.1\n    ip6: 10.0.0.2\n", 5,
		 "pods[0].ip6: 10.0.0.2 is not an IPv6 address");
	load_bad("vip.yaml", "node: a\nservices:\n  - name: s\n    vip: my-service\n", 4,
		 "services[0].vip: 'my-service' is not an IP address");
	load_bad("cidr.yaml", "node: a\nservices:\n  - name: s\n    vip: 10.96.0.0/16\n", 4,
		 "is not an IP address");
}

static void bad_port(const char *name, const char *value, const char *frag)
{
	char yaml[256];

	snprintf(yaml, sizeof(yaml),
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports:\n"
		 "      - port: %s\n",
		 value);
	load_bad(name, yaml, 6, frag);
}

Test(config, bad_ports)
{
	bad_port("port0.yaml", "0", "services[0].ports[0].port: 0 is not a port (1-65535)");
	bad_port("port65536.yaml", "65536", "65536 is not a port (1-65535)");
	bad_port("port70000.yaml", "70000", "70000 is not a port (1-65535)");
	bad_port("portabc.yaml", "abc", "'abc' is not an integer");
	bad_port("portquoted.yaml", "\"80\"", "'80' is not an integer");
	bad_port("portneg.yaml", "-1", "'-1' is not an integer");
	bad_port("portfloat.yaml", "1e3", "'1e3' is not an integer");
	bad_port("porthex.yaml", "0x10", "'0x10' is not an integer");
	bad_port("portoctal.yaml", "010", "'010' is not an integer");
	bad_port("portsuffix.yaml", "12abc", "'12abc' is not an integer");
	bad_port("portbig.yaml", "99999999999999999999999999", "is not a port");
	load_bad("target.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports:\n"
		 "      - {port: 80, target_port: 0}\n",
		 6, "target_port: 0 is not a port");
}

Test(config, bad_mode_protocol_and_policy)
{
	const char *head = "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n";
	char yaml[512];

	snprintf(yaml, sizeof(yaml), "%s    ports: [{port: 80}]\n    mode: ebpf\n", head);
	load_bad("mode.yaml", yaml, 6, "services[0].mode: 'ebpf' is not a mode (proxy, kernel)");
	snprintf(yaml, sizeof(yaml), "%s    ports:\n      - {port: 53, protocol: udp}\n", head);
	load_bad("proto.yaml", yaml, 6, "protocol 'udp' is not supported");
	snprintf(yaml, sizeof(yaml), "%s    ports: [{port: 80}]\n    policy:\n"
		 "      connect_timeout_ms: 0\n", head);
	load_bad("timeout0.yaml", yaml, 7, "connect_timeout_ms: 0 is out of range (1-600000)");
	snprintf(yaml, sizeof(yaml), "%s    ports: [{port: 80}]\n    policy:\n"
		 "      connect_timeout_ms: 600001\n", head);
	load_bad("timeoutbig.yaml", yaml, 7, "600001 is out of range");
	snprintf(yaml, sizeof(yaml), "%s    ports: [{port: 80}]\n    policy:\n"
		 "      load_balancer: maglev\n", head);
	load_bad("lb.yaml", yaml, 7,
		 "services[0].policy.load_balancer: 'maglev' is not a load balancer");
}

Test(config, tcp_in_any_case)
{
	struct or_config *cfg = load_ok("tcp.yaml", "node: a\nservices:\n  - name: s\n"
						    "    vip: 10.0.0.1\n"
						    "    ports: [{port: 80, protocol: TCP}]\n");

	cr_expect_eq(cfg->services[0].ports[0].protocol, OR_PROTOCOL_TCP);
	or_config_free(cfg);
}

Test(config, bad_selector_strings)
{
	load_bad("sel1.yaml", "node: a\nselector: \"=x\"\n", 2,
		 "selector: '=x' is not a label selector");
	load_bad("sel2.yaml", "node: a\nselector: x=\n", 2, "'x=' is not a label selector");
	load_bad("sel3.yaml", "node: a\nselector: nokv\n", 2, "'nokv' is not a label selector");
	load_bad("sel4.yaml", "node: a\nselector: a=b=c\n", 2, "'a=b=c' is not a label selector");
}

Test(config, bad_top_level_values)
{
	load_bad("emptynode.yaml", "node: \"\"\n", 1, "node: must not be empty");
	load_bad("pindir.yaml", "node: a\npin_dir: bpf/outrider\n", 2,
		 "pin_dir: 'bpf/outrider' is not an absolute path");
	load_bad("cgroot.yaml", "node: a\ncgroup_root: sys/fs/cgroup\n", 2,
		 "is not an absolute path");
	load_bad("maxconn0.yaml", "node: a\nmax_connections: 0\n", 2,
		 "max_connections: 0 is out of range (1-10000000)");
	load_bad("maxconnbig.yaml", "node: a\nmax_connections: 10000001\n", 2, "out of range");
	load_bad("workers.yaml", "node: a\nworkers: 257\n", 2,
		 "workers: 257 is out of range (0-256)");
}

Test(config, missing_required_fields)
{
	load_bad("nonode.yaml", "workers: 1\n", 1, "node is required");
	load_bad("nsname.yaml", "node: a\nnamespaces:\n  - labels: {}\n", 3,
		 "namespaces[0]: name is required");
	load_bad("podname.yaml", "node: a\npods:\n  - ip: 10.0.0.1\n", 3,
		 "pods[0]: name is required");
	load_bad("podip.yaml", "node: a\npods:\n  - name: x\n", 3, "pods[0]: ip is required");
	load_bad("netns.yaml", "node: a\npods:\n  - name: x\n    ip: 10.0.0.1\n    cgroup: /x\n", 3,
		 "pods[0]: netns is required for a pod on this node");
	load_bad("cgroup.yaml",
		 "node: a\npods:\n  - name: x\n    ip: 10.0.0.1\n    node: a\n    netns: /x\n", 3,
		 "pods[0]: cgroup is required");
	load_bad("svcname.yaml", "node: a\nservices:\n  - vip: 10.0.0.1\n    ports: [{port: 1}]\n",
		 3, "services[0]: name is required");
	load_bad("vip.yaml", "node: a\nservices:\n  - name: s\n    ports: [{port: 1}]\n", 3,
		 "services[0]: vip is required");
	load_bad("ports.yaml", "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n", 3,
		 "services[0]: ports is required");
	load_bad("portsempty.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: []\n", 5,
		 "services[0].ports: must not be empty");
	load_bad("port.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports:\n"
		 "      - protocol: tcp\n",
		 6, "services[0].ports[0]: port is required");
	load_bad("epip.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n"
		 "    endpoints:\n      - {port: 2}\n",
		 7, "services[0].endpoints[0]: ip is required");
}

Test(config, bad_dns_names)
{
	load_bad("upper.yaml", "node: a\npods:\n  - name: Client\n    ip: 10.0.0.1\n", 3,
		 "pods[0].name: 'Client' is not a DNS-1123 label");
	load_bad("dash.yaml", "node: a\npods:\n  - name: -x\n    ip: 10.0.0.1\n", 3,
		 "'-x' is not a DNS-1123 label");
	load_bad("dashend.yaml", "node: a\nservices:\n  - name: x-\n", 3, "'x-' is not a DNS-1123");
	load_bad("under.yaml", "node: a\npods:\n  - name: a\n    namespace: my_ns\n", 4,
		 "pods[0].namespace: 'my_ns' is not a DNS-1123 label");
	load_bad("nsdot.yaml", "node: a\nnamespaces:\n  - name: a.b\n", 3,
		 "'a.b' is not a DNS-1123");
	load_bad("long.yaml",
		 "node: a\npods:\n  - name: "
		 "a234567890123456789012345678901234567890123456789012345678901234\n",
		 3, "is not a DNS-1123 label");
	load_bad("sa.yaml", "node: a\npods:\n  - name: a\n    service_account: Bad_SA\n", 4,
		 "service_account: 'Bad_SA' is not a valid service account name");
}

Test(config, qualified_name_too_long)
{
	/* 20 + 1 + 27 = 48 characters: one more than fits. */
	load_bad("podlong.yaml",
		 "node: a\npods:\n  - name: abcdefghijklmnopqrstuvwxyz0\n"
		 "    namespace: abcdefghijklmnopqrst\n    ip: 10.0.0.1\n    node: b\n",
		 3, "is 48 characters, at most 47 fit");
	load_bad("svclong.yaml",
		 "node: a\nservices:\n  - name: abcdefghijklmnopqrstuvwxyz0\n"
		 "    namespace: abcdefghijklmnopqrst\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n",
		 3, "services[0]: 'abcdefghijklmnopqrst/abcdefghijklmnopqrstuvwxyz0' is 48");

	/* Exactly 47 fits. */
	struct or_config *cfg = load_ok("fits.yaml",
					"node: a\npods:\n  - name: abcdefghijklmnopqrstuvwxyz\n"
					"    namespace: abcdefghijklmnopqrst\n    ip: 10.0.0.1\n"
					"    node: b\n");
	or_config_free(cfg);
}

Test(config, duplicate_pods)
{
	load_bad("duppod.yaml",
		 "node: a\npods:\n"
		 "  - {name: x, ip: 10.0.0.1, node: b}\n"
		 "  - {name: y, ip: 10.0.0.2, node: b}\n"
		 "  - {name: x, namespace: default, ip: 10.0.0.3, node: b}\n",
		 5, "pods[2]: duplicate pod default/x (first at line 3)");
	/* Same name in another namespace is another pod. */
	struct or_config *cfg = load_ok("otherns.yaml",
					"node: a\npods:\n"
					"  - {name: x, ip: 10.0.0.1, node: b}\n"
					"  - {name: x, namespace: y, ip: 10.0.0.2, node: b}\n");
	or_config_free(cfg);
}

Test(config, duplicate_pod_ips)
{
	load_bad("dupip.yaml",
		 "node: a\npods:\n"
		 "  - {name: x, ip: 10.0.0.1, node: b}\n"
		 "  - {name: y, ip: 10.0.0.1, node: b}\n",
		 4, "pods[1]: ip 10.0.0.1 is already used by pods[0] at line 3");
	load_bad("dupip6.yaml",
		 "node: a\npods:\n"
		 "  - {name: x, ip: 10.0.0.1, ip6: 'fd00::1', node: b}\n"
		 "  - {name: y, ip: 10.0.0.2, ip6: 'fd00::1', node: b}\n",
		 4, "ip6 fd00::1 is already used by pods[0]");
}

Test(config, duplicate_namespaces_and_services)
{
	load_bad("dupns.yaml", "node: a\nnamespaces:\n  - name: x\n  - name: x\n", 4,
		 "namespaces[1]: duplicate namespace x (first at line 3)");
	load_bad("dupsvc.yaml",
		 "node: a\nservices:\n"
		 "  - {name: s, vip: 10.0.0.1, ports: [{port: 1}]}\n"
		 "  - {name: s, vip: 10.0.0.2, ports: [{port: 1}]}\n",
		 4, "services[1]: duplicate service default/s (first at line 3)");
}

Test(config, duplicate_vip_port)
{
	load_bad("dupvip.yaml",
		 "node: a\nservices:\n"
		 "  - name: s1\n    vip: 10.0.0.1\n    ports:\n      - port: 80\n"
		 "  - name: s2\n    vip: 10.0.0.1\n    ports:\n"
		 "      - port: 81\n      - port: 80\n",
		 11,
		 "services[1].ports[1]: 10.0.0.1 port 80 is already used by services[0].ports[0] at line 6");
	load_bad("dupvipone.yaml",
		 "node: a\nservices:\n"
		 "  - name: s1\n    vip: 10.0.0.1\n    ports:\n"
		 "      - port: 80\n      - port: 80\n",
		 7,
		 "services[0].ports[1]: 10.0.0.1 port 80 is already used by services[0].ports[0]");
	/* The same VIP on different ports, or the same port on another VIP, is fine. */
	struct or_config *cfg = load_ok("vipok.yaml",
					"node: a\nservices:\n"
					"  - {name: s1, vip: 10.0.0.1, ports: [{port: 80}]}\n"
					"  - {name: s2, vip: 10.0.0.1, ports: [{port: 81}]}\n"
					"  - {name: s3, vip: 10.0.0.2, ports: [{port: 80}]}\n");
	or_config_free(cfg);
}

Test(config, selector_and_endpoints)
{
	load_bad("both.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n"
		 "    selector: {app: s}\n    endpoints: [{ip: 10.0.0.2}]\n",
		 3, "services[0]: has both a selector and endpoints");
}

Test(config, endpoint_checks)
{
	const char *head = "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n"
			   "    ports: [{port: 1}]\n    endpoints:\n";
	char yaml[512];

	snprintf(yaml, sizeof(yaml), "%s      - ip: 10.0.0.2\n      - ip: fd00::2\n", head);
	load_bad("family.yaml", yaml, 8,
		 "services[0].endpoints[1]: fd00::2 and the VIP 10.0.0.1 are not the same address family");
	snprintf(yaml, sizeof(yaml), "%s      - {ip: 10.0.0.2, weight: 0}\n", head);
	load_bad("weight0.yaml", yaml, 7, "endpoints[0].weight: 0 is out of range (1-1000)");
	snprintf(yaml, sizeof(yaml), "%s      - {ip: 10.0.0.2, weight: 1001}\n", head);
	load_bad("weight1001.yaml", yaml, 7, "1001 is out of range (1-1000)");
	snprintf(yaml, sizeof(yaml), "%s      - {ip: 10.0.0.2, port: 65536}\n", head);
	load_bad("epport.yaml", yaml, 7, "endpoints[0].port: 65536 is not a port (0-65535)");
	snprintf(yaml, sizeof(yaml), "%s      - {ip: 10.0.0.2}\n      - {ip: 10.0.0.2}\n", head);
	load_bad("epdup.yaml", yaml, 8, "duplicate endpoint 10.0.0.2 port 0 (first at line 7)");
}

Test(config, too_many_endpoints)
{
	char yaml[8192];
	int o;

	o = snprintf(yaml, sizeof(yaml), "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n"
					 "    ports: [{port: 1}]\n    endpoints:\n");
	for (int i = 0; i <= OR_MAX_BACKENDS; i++)
		o += snprintf(yaml + o, sizeof(yaml) - o, "      - {ip: 10.1.0.%d}\n", i);
	load_bad("manyeps.yaml", yaml, 7, "65 endpoints, at most 64");
}

Test(config, aliased_labels_are_shared_linearly)
{
	struct or_config *cfg = NULL;
	char buf[4096], err[256];
	int o;

	/* A labels map aliased by many pods is fine: each pod gets its own copy. */
	o = snprintf(buf, sizeof(buf), "node: a\npods:\n"
		     "  - {name: p0, ip: 10.0.0.1, node: b, labels: &l {a: b}}\n");
	for (int i = 1; i < 50; i++)
		o += snprintf(buf + o, sizeof(buf) - o,
			      "  - {name: p%d, ip: 10.0.1.%d, node: b, labels: *l}\n", i, i);
	cr_assert_eq(or_config_load_buf("labels.yaml", buf, strlen(buf), &cfg, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_eq(cfg->n_pods, 50);
	cr_expect_str_eq(or_labels_get(&cfg->pods[49].labels, "a"), "b");
	or_config_free(cfg);
}

Test(config, alias_bomb_is_bounded, .timeout = 10)
{
	/*
	 * One pod with 2000 labels, aliased 2500 times: 5 million nodes to walk
	 * from 40 KB of text. The walk must stop with an error, not grind on.
	 */
	struct or_config *cfg = (struct or_config *)0x1;
	size_t cap = 1 << 17;
	char *buf = malloc(cap), err[256];
	int o, ret;

	cr_assert_not_null(buf);
	o = snprintf(buf, cap, "node: a\npods:\n  - &p\n    name: p\n    ip: 10.0.0.1\n"
			       "    node: b\n    labels:\n");
	for (int i = 0; i < 2000; i++)
		o += snprintf(buf + o, cap - o, "      k%d: v\n", i);
	for (int i = 0; i < 2500; i++)
		o += snprintf(buf + o, cap - o, "  - *p\n");
	cr_assert_lt((size_t)o, cap);
	ret = or_config_load_buf("bomb.yaml", buf, (size_t)o, &cfg, err, sizeof(err));
	free(buf);
	cr_expect_eq(ret, -EINVAL);
	cr_expect_null(cfg);
	/* The line is wherever the walk gave up, inside the aliased pod. */
	cr_expect(strncmp(err, "bomb.yaml:", 10) == 0, "%s", err);
	cr_expect(strstr(err, "configuration too large") != NULL, "%s", err);
}

Test(config, nested_alias_bomb_in_schema)
{
	/*
	 * ports: a list aliased into many services, each aliasing another list:
	 * the walk would visit billions of nodes; it must stop with an error.
	 */
	char buf[4096];
	int o = snprintf(buf, sizeof(buf),
			 "node: a\nnamespaces:\n  - &n {name: a, labels: &m {k: v}}\n");

	o += snprintf(buf + o, sizeof(buf) - o, "pods:\n");
	o += snprintf(buf + o, sizeof(buf) - o,
		      "  - &p {name: p, ip: 10.0.0.1, node: b, labels: &L0 {a: b, c: d}}\n");
	o += snprintf(buf + o, sizeof(buf) - o, "services:\n  - name: s\n    vip: 10.0.0.1\n");
	o += snprintf(buf + o, sizeof(buf) - o, "    ports: &P0 [{port: 1}, {port: 2}]\n");
	for (int i = 1; i <= 12; i++)
		o += snprintf(buf + o, sizeof(buf) - o,
			      "  - {name: s%d, vip: 10.0.0.%d, ports: [*P0, *P0]}\n", i, i + 1);
	struct or_config *cfg = NULL;
	char err[256];
	int ret = or_config_load_buf("nested.yaml", buf, strlen(buf), &cfg, err, sizeof(err));

	/* Port items must be mappings, so nested aliases are rejected quickly. */
	cr_expect_eq(ret, -EINVAL);
	cr_expect_null(cfg);
	cr_expect(strstr(err, "expected a mapping, got a list") != NULL, "%s", err);
}

Test(config, many_aliased_services_hit_the_service_limit)
{
	/* 5 ports x 1000 services > OR_MAX_SERVICES; each has its own VIP so no dup. */
	size_t cap = 1 << 17;
	char *buf = malloc(cap);
	int o;

	cr_assert_not_null(buf);
	o = snprintf(buf, cap,
		     "node: a\nservices:\n  - {name: s0, vip: 10.0.0.1, ports: &P "
		     "[{port: 1}, {port: 2}, {port: 3}, {port: 4}, {port: 5}]}\n");
	for (int i = 1; i < 1000; i++)
		o += snprintf(buf + o, cap - o, "  - {name: s%d, vip: 10.1.%d.%d, ports: *P}\n", i,
			      i / 256, i % 256);
	/*
	 * Service 819 holds ports 4095..4099: its ports[1] is the first too many.
	 * Aliased ports keep the anchor's line, 3.
	 */
	load_bad("limit.yaml", buf, 3,
		 "services[819].ports[1]: 5000 service ports, at most 4096 fit");
	free(buf);
}

Test(config, nul_in_string)
{
	load_bad("nul.yaml", "node: \"a\\0b\"\n", 1, "node: contains a NUL character");
}

Test(config, error_buffer_is_small)
{
	struct or_config *cfg = NULL;
	char err[8];
	int ret;

	memset(err, 'x', sizeof(err));
	ret = or_config_load_buf("small.yaml", "nope: 1\n", 8, &cfg, err, sizeof(err));
	cr_expect_eq(ret, -EINVAL);
	cr_expect_null(cfg);
	cr_expect_eq(err[sizeof(err) - 1], '\0');
	cr_expect_str_eq(err, "small.y");
	/* No buffer at all must not crash either. */
	ret = or_config_load_buf("small.yaml", "nope: 1\n", 8, &cfg, NULL, 0);
	cr_expect_eq(ret, -EINVAL);
}

Test(config, not_nul_terminated_input)
{
	/* len, not a NUL, ends the input: the tail here must never be read. */
	const char yaml[] = "node: a\nworkers: 2GARBAGE";
	struct or_config *cfg = NULL;
	char err[256];

	cr_assert_eq(or_config_load_buf("len.yaml", yaml, strlen("node: a\nworkers: 2"), &cfg, err,
					 sizeof(err)),
		     0, "%s", err);
	cr_expect_eq(cfg->workers, 2);
	or_config_free(cfg);
}

Test(config, load_file)
{
	char path[] = "/tmp/or_test_config_XXXXXX";
	struct or_config *cfg = NULL;
	char err[256];
	int fd, ret;

	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, full_yaml, strlen(full_yaml)), (ssize_t)strlen(full_yaml));
	close(fd);
	ret = or_config_load_file(path, &cfg, err, sizeof(err));
	unlink(path);
	cr_assert_eq(ret, 0, "%s", err);
	cr_expect_str_eq(cfg->path, path);
	cr_expect_eq(cfg->n_services, 2);
	or_config_free(cfg);

	ret = or_config_load_file("/nonexistent/outrider.yaml", &cfg, err, sizeof(err));
	cr_expect_eq(ret, -ENOENT);
	cr_expect_null(cfg);
	cr_expect(strstr(err, "/nonexistent/outrider.yaml") != NULL, "%s", err);

	ret = or_config_load_file("/tmp", &cfg, err, sizeof(err));
	cr_expect_eq(ret, -EISDIR, "%d: %s", ret, err);
	cr_expect_null(cfg);
}

Test(config, bad_file_names_its_path)
{
	char path[] = "/tmp/or_test_bad_XXXXXX";
	struct or_config *cfg = NULL;
	char err[256], want[128];
	int fd, ret;

	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "node: a\n\nworkers: x\n", 20), 20);
	close(fd);
	ret = or_config_load_file(path, &cfg, err, sizeof(err));
	unlink(path);
	snprintf(want, sizeof(want), "%s:3: workers:", path);
	cr_expect_eq(ret, -EINVAL);
	cr_expect(strncmp(err, want, strlen(want)) == 0, "%s", err);
}

/* ---- policy ------------------------------------------------------------- */

/* Every policy test starts with these 6 lines; the policy body starts at line 7. */
#define POLICY_HEAD                                                             \
	"node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 80}]\n" \
	"    policy:\n"

static struct or_config *policy_ok(const char *name, const char *body)
{
	char yaml[2048];

	snprintf(yaml, sizeof(yaml), "%s%s", POLICY_HEAD, body);
	return load_ok(name, yaml);
}

static void policy_bad(const char *name, const char *body, int line, const char *frag)
{
	char yaml[2048];

	snprintf(yaml, sizeof(yaml), "%s%s", POLICY_HEAD, body);
	load_bad(name, yaml, line, frag);
}

static void expect_default_policy(const struct or_policy_cfg *p)
{
	const struct or_retry_cfg *r = &p->retries;

	cr_expect_eq(p->connect_timeout_ms, 1000);
	cr_expect_eq(p->timeout_ms, 15000);
	cr_expect_eq(p->idle_timeout_ms, 3600000);
	cr_expect_eq(p->load_balancer, OR_LB_ROUND_ROBIN);
	cr_expect_eq(r->attempts, 2);
	cr_expect_eq(r->retry_on, OR_RETRY_ON_ALL);
	cr_expect_eq(r->retry_on,
		     OR_RETRY_ON_CONNECT_FAILURE | OR_RETRY_ON_RESET | OR_RETRY_ON_5XX |
			     OR_RETRY_ON_GATEWAY_ERROR | OR_RETRY_ON_RETRIABLE_STATUS);
	cr_expect_eq(r->n_retriable_status_codes, 1);
	cr_expect_eq(r->retriable_status_codes[0], 503);
	cr_expect_eq(r->per_try_timeout_ms, 0);
	cr_expect_eq(r->backoff_base_ms, 25);
	cr_expect_eq(r->backoff_max_ms, 250);
	cr_expect_eq(r->budget_percent, 20);
	cr_expect_eq(r->budget_min_retries_per_s, 10);
	cr_expect_eq(r->max_body_bytes, 65536);
	cr_expect_eq(p->circuit_breaker.max_connections, 1024);
	cr_expect_eq(p->circuit_breaker.max_pending_requests, 1024);
	cr_expect_eq(p->circuit_breaker.max_requests, 1024);
	cr_expect_eq(p->circuit_breaker.max_retries, 3);
	cr_expect_eq(p->outlier_detection.consecutive_5xx, 5);
	cr_expect_eq(p->outlier_detection.consecutive_connect_failures, 5);
	cr_expect_eq(p->outlier_detection.interval_ms, 10000);
	cr_expect_eq(p->outlier_detection.base_ejection_time_ms, 30000);
	cr_expect_eq(p->outlier_detection.max_ejection_percent, 50);
}

Test(policy, defaults_function)
{
	struct or_policy_cfg p;

	memset(&p, 0xa5, sizeof(p));
	or_policy_defaults(&p);
	expect_default_policy(&p);
}

Test(policy, every_service_gets_the_defaults)
{
	struct or_config *cfg = load_ok("pdefaults.yaml",
					"node: a\nservices:\n"
					"  - {name: a, vip: 10.0.0.1, ports: [{port: 1}]}\n"
					"  - {name: b, vip: 10.0.0.2, ports: [{port: 1}],\n"
					"     policy: {}}\n"
					"  - {name: c, vip: 10.0.0.3, ports: [{port: 1}],\n"
					"     policy: ~}\n"
					"  - name: d\n    vip: 10.0.0.4\n    ports: [{port: 1}]\n"
					"    policy:\n      retries:\n      circuit_breaker: {}\n"
					"      outlier_detection: ~\n");

	cr_assert_eq(cfg->n_services, 4);
	for (size_t i = 0; i < cfg->n_services; i++)
		expect_default_policy(&cfg->services[i].policy);
	or_config_free(cfg);
}

/* The issue's example, every key given and none at its default. */
static const char issue_policy[] =
	"      connect_timeout_ms: 2000\n"			/* 7 */
	"      timeout_ms: 30000\n"				/* 8 */
	"      idle_timeout_ms: 0\n"				/* 9 */
	"      load_balancer: random\n"				/* 10 */
	"      retries:\n"					/* 11 */
	"        attempts: 4\n"					/* 12 */
	"        retry_on: [connect-failure, gateway-error, retriable-status-codes]\n"
	"        retriable_status_codes: [429, 503, 599, 100]\n"	/* 14 */
	"        per_try_timeout_ms: 30000\n"			/* 15 */
	"        backoff: {base_ms: 10, max_ms: 1000}\n"	/* 16 */
	"        budget: {percent: 0, min_retries_per_s: 100000}\n"
	"        max_body_bytes: 0\n"				/* 18 */
	"      circuit_breaker: {max_connections: 10000000, max_pending_requests: 1,\n"
	"                        max_requests: 7, max_retries: 0}\n"
	"      outlier_detection:\n"				/* 21 */
	"        consecutive_5xx: 0\n"				/* 22 */
	"        consecutive_connect_failures: 1\n"		/* 23 */
	"        interval_ms: 3600000\n"			/* 24 */
	"        base_ejection_time_ms: 86400000\n"		/* 25 */
	"        max_ejection_percent: 100\n";			/* 26 */

Test(policy, every_key)
{
	struct or_config *cfg = policy_ok("pfull.yaml", issue_policy);
	const struct or_policy_cfg *p = &cfg->services[0].policy;
	const struct or_retry_cfg *r = &p->retries;

	cr_expect_eq(p->connect_timeout_ms, 2000);
	cr_expect_eq(p->timeout_ms, 30000);
	cr_expect_eq(p->idle_timeout_ms, 0);
	cr_expect_eq(p->load_balancer, OR_LB_RANDOM);
	cr_expect_eq(r->attempts, 4);
	cr_expect_eq(r->retry_on, OR_RETRY_ON_CONNECT_FAILURE | OR_RETRY_ON_GATEWAY_ERROR |
					  OR_RETRY_ON_RETRIABLE_STATUS);
	cr_assert_eq(r->n_retriable_status_codes, 4);
	cr_expect_eq(r->retriable_status_codes[0], 429);
	cr_expect_eq(r->retriable_status_codes[1], 503);
	cr_expect_eq(r->retriable_status_codes[2], 599);
	cr_expect_eq(r->retriable_status_codes[3], 100);
	cr_expect_eq(r->per_try_timeout_ms, 30000, "equal to timeout_ms is allowed");
	cr_expect_eq(r->backoff_base_ms, 10);
	cr_expect_eq(r->backoff_max_ms, 1000);
	cr_expect_eq(r->budget_percent, 0);
	cr_expect_eq(r->budget_min_retries_per_s, 100000);
	cr_expect_eq(r->max_body_bytes, 0);
	cr_expect_eq(p->circuit_breaker.max_connections, 10000000);
	cr_expect_eq(p->circuit_breaker.max_pending_requests, 1);
	cr_expect_eq(p->circuit_breaker.max_requests, 7);
	cr_expect_eq(p->circuit_breaker.max_retries, 0);
	cr_expect_eq(p->outlier_detection.consecutive_5xx, 0);
	cr_expect_eq(p->outlier_detection.consecutive_connect_failures, 1);
	cr_expect_eq(p->outlier_detection.interval_ms, 3600000);
	cr_expect_eq(p->outlier_detection.base_ejection_time_ms, 86400000);
	cr_expect_eq(p->outlier_detection.max_ejection_percent, 100);
	or_config_free(cfg);
}

Test(policy, partial_blocks_keep_the_other_defaults)
{
	struct or_config *cfg = policy_ok("ppartial.yaml",
					  "      retries: {attempts: 0, budget: {percent: 50}}\n"
					  "      outlier_detection: {max_ejection_percent: 10}\n");
	struct or_policy_cfg want;
	const struct or_policy_cfg *p = &cfg->services[0].policy;

	or_policy_defaults(&want);
	cr_expect_eq(p->retries.attempts, 0);
	cr_expect_eq(p->retries.budget_percent, 50);
	cr_expect_eq(p->retries.budget_min_retries_per_s, 10);
	cr_expect_eq(p->retries.retry_on, OR_RETRY_ON_ALL);
	cr_expect_eq(p->retries.n_retriable_status_codes, 1);
	cr_expect_eq(p->outlier_detection.max_ejection_percent, 10);
	cr_expect_eq(p->outlier_detection.consecutive_5xx, 5);
	want.retries.attempts = 0;
	want.retries.budget_percent = 50;
	want.outlier_detection.max_ejection_percent = 10;
	cr_expect(memcmp(p, &want, sizeof(want)) == 0, "nothing else changed");
	or_config_free(cfg);
}

Test(policy, retry_on_lists)
{
	struct or_config *cfg = policy_ok("pron.yaml", "      retries: {retry_on: [5xx, reset]}\n");

	cr_expect_eq(cfg->services[0].policy.retries.retry_on, OR_RETRY_ON_5XX | OR_RETRY_ON_RESET);
	or_config_free(cfg);

	/* An empty list retries on nothing; it does not fall back to the default. */
	cfg = policy_ok("pronempty.yaml",
			"      retries: {retry_on: [], retriable_status_codes: []}\n");
	cr_expect_eq(cfg->services[0].policy.retries.retry_on, 0);
	cr_expect_eq(cfg->services[0].policy.retries.n_retriable_status_codes, 0);
	or_config_free(cfg);

	cfg = policy_ok("pronall.yaml",
			"      retries:\n        retry_on:\n          - retriable-status-codes\n"
			"          - gateway-error\n          - 5xx\n          - reset\n"
			"          - connect-failure\n");
	cr_expect_eq(cfg->services[0].policy.retries.retry_on, OR_RETRY_ON_ALL);
	or_config_free(cfg);
}

Test(policy, sixteen_status_codes_fit)
{
	struct or_config *cfg = policy_ok(
		"p16.yaml", "      retries:\n        retriable_status_codes: [500, 501, 502, 503, "
			    "504, 505, 506, 507, 508, 509, 510, 511, 512, 513, 514, 515]\n");

	cr_expect_eq(cfg->services[0].policy.retries.n_retriable_status_codes, 16);
	cr_expect_eq(cfg->services[0].policy.retries.retriable_status_codes[15], 515);
	or_config_free(cfg);
}

Test(policy, backoff_max_defaults_to_ten_times_base)
{
	struct or_config *cfg = policy_ok("pbo.yaml", "      retries: {backoff: {base_ms: 100}}\n");

	cr_expect_eq(cfg->services[0].policy.retries.backoff_base_ms, 100);
	cr_expect_eq(cfg->services[0].policy.retries.backoff_max_ms, 1000);
	or_config_free(cfg);

	cfg = policy_ok("pbomax.yaml", "      retries: {backoff: {base_ms: 60000}}\n");
	cr_expect_eq(cfg->services[0].policy.retries.backoff_max_ms, 600000, "capped");
	or_config_free(cfg);

	cfg = policy_ok("pboeq.yaml", "      retries: {backoff: {base_ms: 7, max_ms: 7}}\n");
	cr_expect_eq(cfg->services[0].policy.retries.backoff_max_ms, 7, "max == base is fine");
	or_config_free(cfg);

	cfg = policy_ok("pbomaxonly.yaml", "      retries: {backoff: {max_ms: 30}}\n");
	cr_expect_eq(cfg->services[0].policy.retries.backoff_base_ms, 25);
	cr_expect_eq(cfg->services[0].policy.retries.backoff_max_ms, 30);
	or_config_free(cfg);
}

Test(policy, per_try_timeout_against_timeout)
{
	struct or_config *cfg;

	/* timeout_ms 0 means none: any per-try timeout fits. */
	cfg = policy_ok("ppt0.yaml",
			"      timeout_ms: 0\n      retries: {per_try_timeout_ms: 600000}\n");
	cr_expect_eq(cfg->services[0].policy.timeout_ms, 0);
	cr_expect_eq(cfg->services[0].policy.retries.per_try_timeout_ms, 600000);
	or_config_free(cfg);
	cfg = policy_ok("ppt1.yaml",
			"      timeout_ms: 1\n      retries: {per_try_timeout_ms: 0}\n");
	or_config_free(cfg);

	policy_bad("pptlong.yaml",
		   "      timeout_ms: 1000\n      retries:\n        per_try_timeout_ms: 1001\n", 9,
		   "services[0].policy.retries.per_try_timeout_ms: 1001 is longer than timeout_ms 1000 (line 7)");
	/* Order in the file does not matter; the per-try line is named. */
	policy_bad("pptafter.yaml",
		   "      retries:\n        per_try_timeout_ms: 5000\n      timeout_ms: 4000\n", 8,
		   "per_try_timeout_ms: 5000 is longer than timeout_ms 4000 (line 9)");
	policy_bad("pptdefault.yaml", "      retries: {per_try_timeout_ms: 15001}\n", 7,
		   "15001 is longer than timeout_ms 15000 (the default)");
}

Test(policy, protocol_http_in_any_case)
{
	struct or_config *cfg = load_ok("http.yaml",
					"node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n"
					"    ports:\n      - {port: 80, protocol: http}\n"
					"      - {port: 81, protocol: HTTP}\n"
					"      - {port: 82, protocol: Http}\n"
					"      - {port: 83, protocol: tCp}\n"
					"      - {port: 84}\n");

	cr_expect_eq(cfg->services[0].ports[0].protocol, OR_PROTOCOL_HTTP);
	cr_expect_eq(cfg->services[0].ports[1].protocol, OR_PROTOCOL_HTTP);
	cr_expect_eq(cfg->services[0].ports[2].protocol, OR_PROTOCOL_HTTP);
	cr_expect_eq(cfg->services[0].ports[3].protocol, OR_PROTOCOL_TCP);
	cr_expect_eq(cfg->services[0].ports[4].protocol, OR_PROTOCOL_TCP, "tcp by default");
	or_config_free(cfg);

	load_bad("https.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports:\n"
		 "      - {port: 443, protocol: https}\n",
		 6, "services[0].ports[0].protocol: protocol 'https' is not supported (tcp, http)");
	load_bad("http2.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports:\n"
		 "      - {port: 443, protocol: [http]}\n",
		 6, "protocol: expected a string, got a list");
}

Test(policy, shared_through_an_alias)
{
	struct or_config *cfg = load_ok(
		"palias.yaml", "node: a\nservices:\n"
			       "  - {name: a, vip: 10.0.0.1, ports: [{port: 1}],\n"
			       "     policy: &p {retries: {attempts: 7, retry_on: [reset]}}}\n"
			       "  - {name: b, vip: 10.0.0.2, ports: [{port: 1}], policy: *p}\n");

	for (int i = 0; i < 2; i++) {
		cr_expect_eq(cfg->services[i].policy.retries.attempts, 7);
		cr_expect_eq(cfg->services[i].policy.retries.retry_on, OR_RETRY_ON_RESET);
		cr_expect_eq(cfg->services[i].policy.retries.backoff_max_ms, 250);
	}
	or_config_free(cfg);
}

Test(policy, unknown_keys_and_types)
{
	policy_bad("pk1.yaml", "      retries:\n        attempt: 3\n", 8,
		   "services[0].policy.retries: unknown key 'attempt' (expected one of: attempts, retry_on");
	policy_bad("pk2.yaml", "      retries: {backoff: {base: 1}}\n", 7,
		   "services[0].policy.retries.backoff: unknown key 'base'");
	policy_bad("pk3.yaml", "      retries: {budget: {min_retries: 1}}\n", 7,
		   "services[0].policy.retries.budget: unknown key 'min_retries'");
	policy_bad("pk4.yaml", "      circuit_breaker:\n        max_conns: 1\n", 8,
		   "services[0].policy.circuit_breaker: unknown key 'max_conns'");
	policy_bad("pk5.yaml",
		   "      outlier_detection:\n\n        consecutive_gateway_failure: 1\n", 9,
		   "services[0].policy.outlier_detection: unknown key 'consecutive_gateway_failure'");
	policy_bad("pk6.yaml", "      retries: {attempts: 1, attempts: 2}\n", 7,
		   "duplicate key 'attempts'");

	policy_bad("pt1.yaml", "      retries: 3\n", 7,
		   "services[0].policy.retries: expected a mapping, got a scalar");
	policy_bad("pt2.yaml", "      retries:\n        retry_on: 5xx\n", 8,
		   "services[0].policy.retries.retry_on: expected a list, got a scalar");
	policy_bad("pt3.yaml",
		   "      retries:\n        retry_on:\n          - reset\n          - [5xx]\n", 10,
		   "services[0].policy.retries.retry_on[1]: expected a string, got a list");
	policy_bad("pt4.yaml", "      retries: {retriable_status_codes: 503}\n", 7,
		   "retriable_status_codes: expected a list, got a scalar");
	policy_bad("pt5.yaml", "      retries: {retriable_status_codes: [\"503\"]}\n", 7,
		   "retriable_status_codes[0]: '503' is not an integer");
	policy_bad("pt6.yaml", "      retries: {backoff: [1, 2]}\n", 7,
		   "retries.backoff: expected a mapping, got a list");
	policy_bad("pt7.yaml", "      circuit_breaker: 5\n", 7,
		   "policy.circuit_breaker: expected a mapping, got a scalar");
	policy_bad("pt8.yaml", "      outlier_detection: [5]\n", 7,
		   "policy.outlier_detection: expected a mapping, got a list");
	policy_bad("pt9.yaml", "      timeout_ms: 1.5\n", 7,
		   "policy.timeout_ms: '1.5' is not an integer");
	policy_bad("pt10.yaml", "      retries: {budget: 20}\n", 7,
		   "retries.budget: expected a mapping, got a scalar");
}

struct range_case {
	const char *body;  /* one line, at line 7 */
	const char *frag;
};

Test(policy, out_of_range)
{
	static const struct range_case cases[] = {
		{ "timeout_ms: 86400001",
		  "policy.timeout_ms: 86400001 is out of range (0-86400000)" },
		{ "idle_timeout_ms: 86400001", "policy.idle_timeout_ms: 86400001 is out of range" },
		{ "retries: {attempts: 11}", "retries.attempts: 11 is out of range (0-10)" },
		{ "retries: {per_try_timeout_ms: 600001}",
		  "retries.per_try_timeout_ms: 600001 is out of range (0-600000)" },
		{ "retries: {backoff: {base_ms: 0}}",
		  "backoff.base_ms: 0 is out of range (1-60000)" },
		{ "retries: {backoff: {base_ms: 60001}}", "base_ms: 60001 is out of range" },
		{ "retries: {backoff: {max_ms: 600001}}",
		  "backoff.max_ms: 600001 is out of range (1-600000)" },
		{ "retries: {budget: {percent: 101}}",
		  "budget.percent: 101 is out of range (0-100)" },
		{ "retries: {budget: {min_retries_per_s: 100001}}",
		  "budget.min_retries_per_s: 100001 is out of range (0-100000)" },
		{ "retries: {max_body_bytes: 16777217}",
		  "retries.max_body_bytes: 16777217 is out of range (0-16777216)" },
		{ "retries: {retriable_status_codes: [99]}",
		  "retriable_status_codes[0]: 99 is not an HTTP status code (100-599)" },
		{ "retries: {retriable_status_codes: [503, 600]}",
		  "retriable_status_codes[1]: 600 is not an HTTP status code (100-599)" },
		{ "circuit_breaker: {max_connections: 0}",
		  "circuit_breaker.max_connections: 0 is out of range (1-10000000)" },
		{ "circuit_breaker: {max_connections: 10000001}", "10000001 is out of range" },
		{ "circuit_breaker: {max_pending_requests: 0}",
		  "circuit_breaker.max_pending_requests: 0 is out of range (1-10000000)" },
		{ "circuit_breaker: {max_requests: 0}",
		  "circuit_breaker.max_requests: 0 is out of range (1-10000000)" },
		{ "circuit_breaker: {max_retries: 10000001}",
		  "circuit_breaker.max_retries: 10000001 is out of range (0-10000000)" },
		{ "outlier_detection: {consecutive_5xx: 10000001}",
		  "outlier_detection.consecutive_5xx: 10000001 is out of range (0-10000000)" },
		{ "outlier_detection: {consecutive_connect_failures: 10000001}",
		  "consecutive_connect_failures: 10000001 is out of range" },
		{ "outlier_detection: {interval_ms: 0}",
		  "outlier_detection.interval_ms: 0 is out of range (1-3600000)" },
		{ "outlier_detection: {interval_ms: 3600001}", "3600001 is out of range" },
		{ "outlier_detection: {base_ejection_time_ms: 0}",
		  "base_ejection_time_ms: 0 is out of range (1-86400000)" },
		{ "outlier_detection: {base_ejection_time_ms: 86400001}",
		  "86400001 is out of range" },
		{ "outlier_detection: {max_ejection_percent: 101}",
		  "max_ejection_percent: 101 is out of range (0-100)" },
		{ "retries: {attempts: -1}", "retries.attempts: '-1' is not an integer" },
	};
	char body[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "      %s\n", cases[i].body);
		policy_bad(cases[i].body, body, 7, cases[i].frag);
	}
}

Test(policy, range_edges_are_accepted)
{
	struct or_config *cfg = policy_ok(
		"pedges.yaml",
		"      connect_timeout_ms: 600000\n      timeout_ms: 86400000\n"
		"      idle_timeout_ms: 86400000\n"
		"      retries: {attempts: 10, per_try_timeout_ms: 1, max_body_bytes: 16777216,\n"
		"                backoff: {base_ms: 1, max_ms: 600000},\n"
		"                budget: {percent: 100, min_retries_per_s: 0},\n"
		"                retriable_status_codes: [100, 599]}\n"
		"      circuit_breaker: {max_connections: 1, max_retries: 10000000}\n"
		"      outlier_detection: {consecutive_5xx: 10000000, interval_ms: 1,\n"
		"                          base_ejection_time_ms: 1, max_ejection_percent: 0}\n");
	const struct or_policy_cfg *p = &cfg->services[0].policy;

	cr_expect_eq(p->retries.attempts, 10);
	cr_expect_eq(p->retries.backoff_max_ms, 600000);
	cr_expect_eq(p->retries.budget_percent, 100);
	cr_expect_eq(p->circuit_breaker.max_retries, 10000000);
	cr_expect_eq(p->outlier_detection.max_ejection_percent, 0);
	or_config_free(cfg);
}

Test(policy, list_rules)
{
	policy_bad("pdupron.yaml",
		   "      retries:\n        retry_on:\n          - 5xx\n          - reset\n"
		   "          - 5xx\n",
		   11, "services[0].policy.retries.retry_on[2]: duplicate retry_on entry '5xx' (first at line 9)");
	policy_bad("pbadron.yaml", "      retries: {retry_on: [5xx, connect_failure]}\n", 7,
		   "retry_on[1]: 'connect_failure' is not a retry_on condition (connect-failure, reset");
	policy_bad("pcaseron.yaml", "      retries: {retry_on: [5XX]}\n", 7,
		   "'5XX' is not a retry_on condition");
	policy_bad("pdupcode.yaml",
		   "      retries:\n        retriable_status_codes:\n          - 503\n"
		   "          - 429\n          - 503\n",
		   11, "retriable_status_codes[2]: duplicate status code 503 (first at line 9)");
	policy_bad("p17codes.yaml",
		   "      retries:\n        retriable_status_codes: [500, 501, 502, 503, 504, 505, "
		   "506, 507, 508, 509, 510, 511, 512, 513, 514, 515, 516]\n",
		   8, "retries.retriable_status_codes: 17 status codes, at most 16");
}

Test(policy, backoff_max_below_base)
{
	policy_bad("pbolow.yaml",
		   "      retries:\n        backoff:\n"
		   "          base_ms: 100\n          max_ms: 99\n",
		   10, "services[0].policy.retries.backoff: max_ms 99 is less than base_ms 100");
	/* The default base counts too; the message says it was the default. */
	policy_bad("pbolowdef.yaml", "      retries: {backoff: {max_ms: 24}}\n", 7,
		   "backoff: max_ms 24 is less than base_ms 25 (the default)");
	/* max_ms before base_ms in the file: still the max_ms line. */
	policy_bad("pbolowrev.yaml",
		   "      retries:\n        backoff:\n          max_ms: 5\n          base_ms: 6\n",
		   9, "max_ms 5 is less than base_ms 6");
}

/* ---- admin and ready addresses ------------------------------------------ */

Test(listeners, defaults)
{
	struct or_config *cfg = load_ok("ldef.yaml", "node: a\n");

	cr_expect_eq(cfg->admin_ip.family, AF_INET);
	cr_expect_str_eq(ip_str(&cfg->admin_ip), "127.0.0.1");
	cr_expect_eq(cfg->admin_port, 15020);
	cr_expect_eq(cfg->ready_ip.family, AF_INET);
	cr_expect_str_eq(ip_str(&cfg->ready_ip), "127.0.0.1");
	cr_expect_eq(cfg->ready_port, 15021);
	or_config_free(cfg);
}

Test(listeners, given)
{
	struct or_config *cfg = load_ok("lgiven.yaml", "node: a\n"
						       "admin_address: 0.0.0.0:25020\n"
						       "ready_address: \"[::1]:25021\"\n");

	cr_expect_str_eq(ip_str(&cfg->admin_ip), "0.0.0.0");
	cr_expect_eq(cfg->admin_port, 25020);
	cr_expect_eq(cfg->ready_ip.family, AF_INET6);
	cr_expect_str_eq(ip_str(&cfg->ready_ip), "::1");
	cr_expect_eq(cfg->ready_port, 25021);
	or_config_free(cfg);

	/* A second agent on the same machine: same ports, another address. */
	cfg = load_ok("lsecond.yaml", "node: a\nadmin_address: 127.0.0.2:15020\n"
				      "ready_address: 127.0.0.2:15021\n");
	cr_expect_str_eq(ip_str(&cfg->admin_ip), "127.0.0.2");
	or_config_free(cfg);

	/* The two defaults swapped. */
	cfg = load_ok("lone.yaml", "node: a\nadmin_address: 127.0.0.1:15021\n"
				   "ready_address: 127.0.0.1:15020\n");
	cr_expect_eq(cfg->admin_port, 15021);
	cr_expect_eq(cfg->ready_port, 15020);
	or_config_free(cfg);

	/* Only the admin address moves; ready keeps its default. */
	cfg = load_ok("lv6.yaml", "node: a\nadmin_address: '[fd00::1]:65535'\n");
	cr_expect_eq(cfg->admin_port, 65535);
	cr_expect_eq(cfg->ready_port, 15021);
	or_config_free(cfg);
}

Test(listeners, bad_addresses)
{
	load_bad("l1.yaml", "node: a\nadmin_address: 127.0.0.1\n", 2,
		 "admin_address: '127.0.0.1': not an address (IP:PORT or [IPv6]:PORT)");
	load_bad("l2.yaml", "node: a\nready_address: localhost:15021\n", 2,
		 "ready_address: 'localhost:15021': not an address");
	load_bad("l3.yaml", "node: a\nadmin_address: 127.0.0.1:0\n", 2,
		 "'127.0.0.1:0': the port is not 1-65535");
	load_bad("l4.yaml", "node: a\nadmin_address: 127.0.0.1:65536\n", 2,
		 "the port is not 1-65535");
	load_bad("l5.yaml", "node: a\nadmin_address: 127.0.0.1:080\n", 2,
		 "the port is not 1-65535");
	load_bad("l6.yaml", "node: a\nadmin_address: \"127.0.0.1:\"\n", 2,
		 "the port is not 1-65535");
	load_bad("l7.yaml", "node: a\nadmin_address: 127.0.0.1:8x\n", 2, "the port is not 1-65535");
	load_bad("l8.yaml", "node: a\nadmin_address: \"::1:15020\"\n", 2,
		 "an IPv6 address needs brackets");
	load_bad("l9.yaml", "node: a\nadmin_address: \"[127.0.0.1]:15020\"\n", 2,
		 "brackets are for IPv6 addresses only");
	load_bad("l10.yaml", "node: a\nadmin_address: \"[::1]\"\n", 2, "not an address");
	load_bad("l11.yaml", "node: a\nadmin_address: \"[::1:80\"\n", 2, "not an address");
	load_bad("l12.yaml", "node: a\nadmin_address: \":80\"\n", 2, "not an address");
	load_bad("l13.yaml", "node: a\nadmin_address: \"[]:80\"\n", 2, "not an address");
	load_bad("l14.yaml", "node: a\nadmin_address: [127.0.0.1, 80]\n", 2,
		 "admin_address: expected an address, got a list");
	load_bad("l15.yaml", "node: a\nadmin_address: \"127.0.0.1:80\\0\"\n", 2, "not an address");
	load_bad("l16.yaml", "node: a\nadmin_address: 127.0.0.1:99999999999999999999\n", 2,
		 "the port is not 1-65535");
}

Test(listeners, must_differ)
{
	load_bad("lsame.yaml",
		 "node: a\nadmin_address: 10.0.0.1:9000\nworkers: 1\nready_address: 10.0.0.1:9000\n",
		 4, "ready_address: 10.0.0.1 port 9000 overlaps admin_address 10.0.0.1 port 9000 (line 2); they must differ");
	/* The later key is the one named, whichever it is. */
	load_bad("lsamerev.yaml",
		 "node: a\nready_address: 10.0.0.1:9000\nadmin_address: 10.0.0.1:9000\n", 3,
		 "admin_address: 10.0.0.1 port 9000 overlaps ready_address 10.0.0.1 port 9000 (line 2)");
	load_bad("lsamedef.yaml", "node: a\nready_address: 127.0.0.1:15020\n", 2,
		 "ready_address: 127.0.0.1 port 15020 overlaps admin_address 127.0.0.1 port 15020 (the default)");
	load_bad("lsamedef2.yaml", "node: a\n\nadmin_address: 127.0.0.1:15021\n", 3,
		 "admin_address: 127.0.0.1 port 15021 overlaps ready_address 127.0.0.1 port 15021 (the default)");
	/* A wildcard address shares its port with every address. */
	load_bad("lwild.yaml", "node: a\nadmin_address: 0.0.0.0:15021\n", 2,
		 "overlaps ready_address 127.0.0.1 port 15021");
	load_bad("lwild6.yaml", "node: a\nready_address: '[::]:15020'\n", 2,
		 "ready_address: :: port 15020 overlaps admin_address 127.0.0.1");
	load_bad("lsame6.yaml",
		 "node: a\nready_address: '[fd00::1]:1'\nadmin_address: '[fd00:0::1]:1'\n", 3,
		 "overlaps ready_address fd00::1 port 1");

	/* Same address, other port; or same port, other specific address: fine. */
	struct or_config *cfg = load_ok("lok.yaml", "node: a\nadmin_address: 10.0.0.1:1\n"
						    "ready_address: 10.0.0.2:1\n");
	or_config_free(cfg);
}

/* ---- enrollment and labels ---------------------------------------------- */

static const char enroll_yaml[] =
	"node: n1\n"
	"namespaces:\n"
	"  - {name: on, labels: {outrider.io/mode: enabled}}\n"
	"  - {name: off, labels: {team: x}}\n"
	"pods:\n"
	"  - {name: labelled, ip: 10.0.0.1, netns: /n, cgroup: /c,\n"
	"     labels: {outrider.io/mode: enabled}}\n"
	"  - {name: plain, ip: 10.0.0.2, netns: /n, cgroup: /c}\n"
	"  - {name: in-ns, namespace: on, ip: 10.0.0.3, netns: /n, cgroup: /c}\n"
	"  - {name: opt-out, namespace: on, ip: 10.0.0.4, netns: /n, cgroup: /c,\n"
	"     labels: {outrider.io/mode: disabled}}\n"
	"  - {name: remote, namespace: on, node: n2, ip: 10.0.0.5,\n"
	"     labels: {outrider.io/mode: enabled}}\n"
	"  - {name: in-off-ns, namespace: off, ip: 10.0.0.6, netns: /n, cgroup: /c}\n"
	"  - {name: other-value, namespace: on, ip: 10.0.0.7, netns: /n, cgroup: /c,\n"
	"     labels: {outrider.io/mode: sometimes}}\n"
	"  - {name: label-in-off, namespace: off, ip: 10.0.0.8, netns: /n, cgroup: /c,\n"
	"     labels: {outrider.io/mode: enabled}}\n";

static const struct or_pod_cfg *pod_named(const struct or_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_pods; i++)
		if (strcmp(cfg->pods[i].name, name) == 0)
			return &cfg->pods[i];
	cr_assert_fail("no pod %s", name);
	return NULL;
}

Test(config, pod_enrollment)
{
	struct or_config *cfg = load_ok("enroll.yaml", enroll_yaml);

	cr_expect(or_pod_enrolled(cfg, pod_named(cfg, "labelled")), "pod label enrolls");
	cr_expect_not(or_pod_enrolled(cfg, pod_named(cfg, "plain")),
		      "no label, no namespace label");
	cr_expect(or_pod_enrolled(cfg, pod_named(cfg, "in-ns")), "namespace label enrolls");
	cr_expect_not(or_pod_enrolled(cfg, pod_named(cfg, "opt-out")), "disabled opts out");
	cr_expect_not(or_pod_enrolled(cfg, pod_named(cfg, "remote")), "other node's pod");
	cr_expect_not(or_pod_enrolled(cfg, pod_named(cfg, "in-off-ns")), "namespace not labelled");
	cr_expect(or_pod_enrolled(cfg, pod_named(cfg, "other-value")),
		  "only 'disabled' opts out of an enabled namespace");
	cr_expect(or_pod_enrolled(cfg, pod_named(cfg, "label-in-off")));
	or_config_free(cfg);
}

Test(config, pod_enrollment_custom_selector)
{
	char yaml[2048];
	struct or_config *cfg;

	/* With another selector the default label means nothing. */
	snprintf(yaml, sizeof(yaml), "selector: mesh=yes\n%s", enroll_yaml);
	cfg = load_ok("selector.yaml", yaml);
	cr_expect_not(or_pod_enrolled(cfg, pod_named(cfg, "labelled")));
	cr_expect_not(or_pod_enrolled(cfg, pod_named(cfg, "in-ns")));
	or_config_free(cfg);

	cfg = load_ok("selector2.yaml",
		      "node: n1\nselector: mesh=yes\n"
		      "namespaces: [{name: m, labels: {mesh: 'yes'}}]\n"
		      "pods:\n"
		      "  - {name: a, ip: 10.0.0.1, netns: /n, cgroup: /c, labels: {mesh: 'yes'}}\n"
		      "  - {name: b, namespace: m, ip: 10.0.0.2, netns: /n, cgroup: /c}\n"
		      "  - {name: c, namespace: m, ip: 10.0.0.3, netns: /n, cgroup: /c,\n"
		      "     labels: {mesh: disabled}}\n");
	cr_expect(or_pod_enrolled(cfg, pod_named(cfg, "a")));
	cr_expect(or_pod_enrolled(cfg, pod_named(cfg, "b")));
	cr_expect_not(or_pod_enrolled(cfg, pod_named(cfg, "c")));
	or_config_free(cfg);
}

Test(config, labels_match_and_get)
{
	struct or_label have_v[] = { { "app", "web" }, { "tier", "front" }, { "empty", "" } };
	struct or_label sel_v[] = { { "app", "web" }, { "tier", "front" } };
	struct or_label miss_v[] = { { "app", "web" }, { "zone", "a" } };
	struct or_label wrong_v[] = { { "app", "db" } };
	struct or_label empty_v[] = { { "empty", "" } };
	struct or_labels have = { have_v, 3 }, sel = { sel_v, 2 }, miss = { miss_v, 2 },
			 wrong = { wrong_v, 1 }, none = { NULL, 0 }, empty = { empty_v, 1 };

	cr_expect(or_labels_match(&have, &sel));
	cr_expect_not(or_labels_match(&have, &miss), "a selector label is missing");
	cr_expect_not(or_labels_match(&have, &wrong), "a value differs");
	cr_expect(or_labels_match(&have, &none), "an empty selector matches everything");
	cr_expect(or_labels_match(&have, &empty), "empty values compare too");
	cr_expect_not(or_labels_match(&none, &sel));
	cr_expect_str_eq(or_labels_get(&have, "tier"), "front");
	cr_expect_null(or_labels_get(&have, "nope"));
	cr_expect_null(or_labels_get(&none, "app"));
}

Test(config, lb_algo_names)
{
	cr_expect_str_eq(or_lb_algo_name(OR_LB_ROUND_ROBIN), "round_robin");
	cr_expect_str_eq(or_lb_algo_name(OR_LB_LEAST_REQUEST), "least_request");
	cr_expect_str_eq(or_lb_algo_name(OR_LB_RANDOM), "random");
}

/* ---- identity: trust domain, state directory, CA, SVID lifetime ----------- */

Test(identity, defaults)
{
	struct or_config *cfg = load_ok("iddef.yaml", "node: a\n");

	cr_expect_str_eq(cfg->trust_domain, OR_DEFAULT_TRUST_DOMAIN);
	cr_expect_str_eq(cfg->trust_domain, "cluster.local");
	cr_expect_str_eq(cfg->state_dir, OR_DEFAULT_STATE_DIR);
	cr_expect_str_eq(cfg->state_dir, "/var/lib/outrider");
	cr_expect_null(cfg->ca_cert, "no ca: the CA in state_dir");
	cr_expect_null(cfg->ca_key);
	cr_expect_eq(cfg->svid_ttl_s, 86400);
	or_config_free(cfg);
}

Test(identity, given)
{
	struct or_config *cfg = load_ok("idgiven.yaml",
					"node: a\n"
					"trust_domain: prod.example-1_x\n"
					"state_dir: /run/outrider/node-a\n"
					"ca:\n"
					"  cert: /etc/outrider/ca/tls.crt\n"
					"  key: /etc/outrider/ca/tls.key\n"
					"svid_ttl_s: 60\n");

	cr_expect_str_eq(cfg->trust_domain, "prod.example-1_x");
	cr_expect_str_eq(cfg->state_dir, "/run/outrider/node-a");
	cr_expect_str_eq(cfg->ca_cert, "/etc/outrider/ca/tls.crt");
	cr_expect_str_eq(cfg->ca_key, "/etc/outrider/ca/tls.key");
	cr_expect_eq(cfg->svid_ttl_s, 60);
	or_config_free(cfg);

	cfg = load_ok("idmax.yaml", "node: a\nsvid_ttl_s: 31536000\nca: {}\nstate_dir: /\n");
	cr_expect_eq(cfg->svid_ttl_s, 31536000);
	cr_expect_null(cfg->ca_cert, "an empty ca: is no ca:");
	cr_expect_str_eq(cfg->state_dir, "/");
	or_config_free(cfg);

	/* Both keys may name one PEM file holding the certificate and the key. */
	cfg = load_ok("idsame.yaml", "node: a\nca: {cert: /ca.pem, key: /ca.pem}\n");
	cr_expect_str_eq(cfg->ca_cert, "/ca.pem");
	cr_expect_str_eq(cfg->ca_key, "/ca.pem");
	or_config_free(cfg);
}

Test(identity, bad_trust_domains)
{
	load_bad("td1.yaml", "node: a\ntrust_domain: Cluster.local\n", 2,
		 "trust_domain: 'Cluster.local' is not a SPIFFE trust domain");
	load_bad("td2.yaml", "node: a\ntrust_domain: \"\"\n", 2, "is not a SPIFFE trust domain");
	load_bad("td3.yaml", "node: a\ntrust_domain: cluster.local/ns\n", 2,
		 "'cluster.local/ns' is not a SPIFFE trust domain");
	load_bad("td4.yaml", "node: a\ntrust_domain: spiffe://cluster.local\n", 2,
		 "is not a SPIFFE trust domain");
	load_bad("td5.yaml", "node: a\ntrust_domain: \"a b\"\n", 2, "is not a SPIFFE trust domain");
	load_bad("td6.yaml", "node: a\ntrust_domain: td:8443\n", 2, "is not a SPIFFE trust domain");
	load_bad("td7.yaml", "node: a\ntrust_domain: [a]\n", 2,
		 "trust_domain: expected a string, got a list");

	char yaml[512];

	snprintf(yaml, sizeof(yaml), "node: a\ntrust_domain: %0256d\n", 0);
	load_bad("td256.yaml", yaml, 2, "1-255 characters");
	snprintf(yaml, sizeof(yaml), "node: a\ntrust_domain: %0255d\n", 0);
	or_config_free(load_ok("td255.yaml", yaml));
}

Test(identity, bad_paths_and_ttls)
{
	load_bad("sd.yaml", "node: a\nstate_dir: var/lib/outrider\n", 2,
		 "state_dir: 'var/lib/outrider' is not an absolute path");
	load_bad("sdempty.yaml", "node: a\nstate_dir: \"\"\n", 2, "is not an absolute path");
	load_bad("cacert.yaml", "node: a\nca:\n  cert: ca.crt\n  key: /ca.key\n", 3,
		 "ca.cert: 'ca.crt' is not an absolute path");
	load_bad("cakey.yaml", "node: a\nca:\n  cert: /ca.crt\n  key: ./ca.key\n", 4,
		 "ca.key: './ca.key' is not an absolute path");
	load_bad("caonlycert.yaml", "node: a\nca:\n  cert: /ca.crt\n", 3,
		 "ca: cert is given without key: give both, or neither");
	load_bad("caonlykey.yaml", "node: a\nca: {key: /ca.key}\n", 2,
		 "ca: key is given without cert");
	load_bad("canullkey.yaml", "node: a\nca: {cert: /ca.crt, key: ~}\n", 2,
		 "cert is given without key");
	load_bad("caunknown.yaml", "node: a\nca:\n  cert: /c\n  key: /k\n  bundle: /b\n", 5,
		 "ca: unknown key 'bundle' (expected one of: cert, key)");
	load_bad("cascalar.yaml", "node: a\nca: /etc/ca.pem\n", 2,
		 "ca: expected a mapping, got a scalar");
	load_bad("ttl59.yaml", "node: a\nsvid_ttl_s: 59\n", 2,
		 "svid_ttl_s: 59 is out of range (60-31536000)");
	load_bad("ttlbig.yaml", "node: a\nsvid_ttl_s: 31536001\n", 2, "is out of range");
	load_bad("ttl0.yaml", "node: a\nsvid_ttl_s: 0\n", 2, "0 is out of range");
	load_bad("ttlunit.yaml", "node: a\nsvid_ttl_s: 24h\n", 2, "'24h' is not an integer");
}

Test(identity, pod_spiffe_id_must_fit)
{
	/* 9 + 230 + 4 + 7 + 4 + 7 = 261 > 255; the trust domain comes after the pods. */
	char yaml[1024];

	snprintf(yaml, sizeof(yaml),
		 "node: a\n"
		 "pods:\n"
		 "  - {name: p, ip: 10.0.0.1, node: b}\n"
		 "  - {name: q, ip: 10.0.0.2, node: b, service_account: default}\n"
		 "trust_domain: %0230d\n",
		 0);
	load_bad("idlong.yaml", yaml, 3, "pods[0]: SPIFFE ID spiffe://");
	load_bad("idlong2.yaml", yaml, 3, "would be 261 characters, at most 255");

	/* 9 + 224 + 4 + 7 + 4 + 7 = 255: fits. */
	snprintf(yaml, sizeof(yaml),
		 "node: a\npods:\n  - {name: p, ip: 10.0.0.1, node: b}\ntrust_domain: %0224d\n",
		 0);
	or_config_free(load_ok("idfits.yaml", yaml));
}

/* ---- mtls modes ------------------------------------------------------------ */

static const char mtls_yaml[] =
	"node: a\n"					/* 1 */
	"namespaces:\n"					/* 2 */
	"  - {name: locked, mtls: strict}\n"		/* 3 */
	"  - {name: legacy, mtls: disabled}\n"		/* 4 */
	"  - {name: plain}\n"				/* 5 */
	"  - {name: open, mtls: permissive}\n"		/* 6 */
	"services:\n"					/* 7 */
	"  - {name: s1, namespace: locked, vip: 10.96.0.1, ports: [{port: 80}]}\n"
	"  - {name: s2, namespace: locked, vip: 10.96.0.2, ports: [{port: 80}], mtls: permissive}\n"
	"  - {name: s3, namespace: legacy, vip: 10.96.0.3, ports: [{port: 80}]}\n"
	"  - {name: s4, namespace: legacy, vip: 10.96.0.4, ports: [{port: 80}], mtls: strict}\n"
	"  - {name: s5, namespace: plain, vip: 10.96.0.5, ports: [{port: 80}]}\n"
	"  - {name: s6, namespace: nowhere, vip: 10.96.0.6, ports: [{port: 80}]}\n"
	"  - {name: s7, vip: 10.96.0.7, ports: [{port: 80}], mtls: disabled}\n"
	"  - {name: s8, namespace: open, vip: 10.96.0.8, ports: [{port: 80}]}\n";

Test(mtls, namespace_and_service_modes)
{
	struct or_config *cfg = load_ok("mtls.yaml", mtls_yaml);
	static const enum or_mtls_mode want[] = {
		OR_MTLS_STRICT,	    OR_MTLS_PERMISSIVE, OR_MTLS_DISABLED, OR_MTLS_STRICT,
		OR_MTLS_PERMISSIVE, OR_MTLS_PERMISSIVE, OR_MTLS_DISABLED, OR_MTLS_PERMISSIVE,
	};

	cr_assert_eq(cfg->n_namespaces, 4);
	cr_expect_eq(cfg->namespaces[0].mtls, OR_MTLS_STRICT);
	cr_expect_eq(cfg->namespaces[1].mtls, OR_MTLS_DISABLED);
	cr_expect_eq(cfg->namespaces[2].mtls, OR_MTLS_PERMISSIVE, "the namespace default");
	cr_expect_eq(cfg->namespaces[3].mtls, OR_MTLS_PERMISSIVE);
	cr_assert_eq(cfg->n_services, 8);
	for (size_t i = 0; i < 8; i++)
		cr_expect_eq(or_svc_mtls(cfg, &cfg->services[i]), want[i], "services[%zu] (%s): %s",
			     i, cfg->services[i].name,
			     or_mtls_mode_name(or_svc_mtls(cfg, &cfg->services[i])));
	cr_expect_not(cfg->services[0].mtls_set, "inherited");
	cr_expect(cfg->services[1].mtls_set);
	cr_expect_eq(cfg->services[1].mtls, OR_MTLS_PERMISSIVE);
	cr_expect_eq(cfg->services[0].mtls, OR_MTLS_PERMISSIVE, "unset reads as permissive");
	or_config_free(cfg);
}

Test(mtls, mode_names)
{
	cr_expect_str_eq(or_mtls_mode_name(OR_MTLS_DISABLED), "disabled");
	cr_expect_str_eq(or_mtls_mode_name(OR_MTLS_PERMISSIVE), "permissive");
	cr_expect_str_eq(or_mtls_mode_name(OR_MTLS_STRICT), "strict");
	cr_expect_str_eq(or_mtls_mode_name((enum or_mtls_mode)7), "unknown");
}

Test(mtls, bad_values)
{
	load_bad("nsmtls.yaml", "node: a\nnamespaces:\n  - name: x\n    mtls: STRICT\n", 4,
		 "namespaces[0].mtls: 'STRICT' is not an mtls mode (disabled, permissive, strict)");
	load_bad("nsmtls2.yaml", "node: a\nnamespaces:\n  - {name: x, mtls: true}\n", 3,
		 "'true' is not an mtls mode");
	load_bad("svcmtls.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n"
		 "    mtls: mutual\n",
		 6, "services[0].mtls: 'mutual' is not an mtls mode");
	load_bad("svcmtlslist.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n"
		 "    mtls: [strict]\n",
		 6, "services[0].mtls: expected a string, got a list");
	load_bad("nsmtlsunknown.yaml", "node: a\nnamespaces:\n  - {name: x, mTLS: strict}\n", 3,
		 "unknown key 'mTLS' (expected one of: name, labels, mtls, on_agent_down)");
}

Test(mtls, null_is_absent)
{
	struct or_config *cfg = load_ok("mtlsnull.yaml",
					"node: a\nnamespaces:\n  - {name: x, mtls: strict}\n"
					"services:\n  - {name: s, namespace: x, vip: 10.0.0.1,\n"
					"     ports: [{port: 1}], mtls: ~}\n");

	cr_expect_not(cfg->services[0].mtls_set);
	cr_expect_eq(or_svc_mtls(cfg, &cfg->services[0]), OR_MTLS_STRICT);
	or_config_free(cfg);
}

/* ---- authorization --------------------------------------------------------- */

static const char authz_yaml[] =
	"node: a\n"							/* 1 */
	"services:\n"							/* 2 */
	"  - name: api\n"						/* 3 */
	"    namespace: shop\n"						/* 4 */
	"    vip: 10.96.0.10\n"						/* 5 */
	"    ports: [{port: 80}, {port: 9090}]\n"			/* 6 */
	"    mtls: strict\n"						/* 7 */
	"    authorization:\n"						/* 8 */
	"      - action: deny\n"					/* 9 */
	"        from: {namespace: untrusted}\n"			/* 10 */
	"      - action: allow\n"					/* 11 */
	"        from: {spiffe: \"spiffe://cluster.local/ns/shop/sa/web\"}\n" /* 12 */
	"        ports: [80]\n"						/* 13 */
	"      - action: allow\n"					/* 14 */
	"        from: {spiffe_prefix: \"spiffe://cluster.local/ns/ops/\"}\n" /* 15 */
	"        ports: [80, 9090]\n"					/* 16 */
	"      - {action: deny, ports: [9090]}\n"			/* 17 */
	"      - action: allow\n"					/* 18 */
	"        from: ~\n"						/* 19 */
	"  - name: plain\n"						/* 20 */
	"    vip: 10.96.0.11\n"						/* 21 */
	"    ports: [{port: 80}]\n"					/* 22 */
	"    authorization: []\n";					/* 23 */

Test(authorization, every_kind_of_rule)
{
	struct or_config *cfg = load_ok("authz.yaml", authz_yaml);
	const struct or_svc_cfg *s = &cfg->services[0];
	const struct or_authz_rule *r = s->authz;

	cr_assert_eq(s->n_authz, 5);
	cr_expect_eq(r[0].action, OR_AUTHZ_DENY);
	cr_expect_eq(r[0].match, OR_AUTHZ_NAMESPACE);
	cr_expect_str_eq(r[0].value, "untrusted");
	cr_expect_eq(r[0].n_ports, 0);
	cr_expect_eq(r[0].line, 9);

	cr_expect_eq(r[1].action, OR_AUTHZ_ALLOW);
	cr_expect_eq(r[1].match, OR_AUTHZ_EXACT);
	cr_expect_str_eq(r[1].value, "spiffe://cluster.local/ns/shop/sa/web");
	cr_assert_eq(r[1].n_ports, 1);
	cr_expect_eq(r[1].ports[0], 80);
	cr_expect_eq(r[1].line, 11);

	cr_expect_eq(r[2].match, OR_AUTHZ_PREFIX);
	cr_expect_str_eq(r[2].value, "spiffe://cluster.local/ns/ops/");
	cr_assert_eq(r[2].n_ports, 2);
	cr_expect_eq(r[2].ports[0], 80);
	cr_expect_eq(r[2].ports[1], 9090);
	cr_expect_eq(r[2].line, 14);

	cr_expect_eq(r[3].action, OR_AUTHZ_DENY);
	cr_expect_eq(r[3].match, OR_AUTHZ_ANY, "no from: any peer");
	cr_expect_null(r[3].value);
	cr_expect_eq(r[3].n_ports, 1);
	cr_expect_eq(r[3].line, 17);

	cr_expect_eq(r[4].action, OR_AUTHZ_ALLOW);
	cr_expect_eq(r[4].match, OR_AUTHZ_ANY, "from: ~ is no from");
	cr_expect_eq(r[4].line, 18);

	cr_expect_eq(cfg->services[1].n_authz, 0);
	cr_expect_null(cfg->services[1].authz);
	or_config_free(cfg);
}

Test(authorization, default_is_no_rules)
{
	struct or_config *cfg = load_ok("noauthz.yaml", full_yaml);

	for (size_t i = 0; i < cfg->n_services; i++) {
		cr_expect_eq(cfg->services[i].n_authz, 0);
		cr_expect_null(cfg->services[i].authz);
		cr_expect_not(cfg->services[i].mtls_set);
	}
	or_config_free(cfg);
}

Test(authorization, shared_through_an_alias)
{
	struct or_config *cfg = load_ok(
		"authzalias.yaml",
		"node: a\nservices:\n"
		"  - {name: a, vip: 10.0.0.1, ports: [{port: 1}], authorization: &rules [\n"
		"      {action: allow, from: {namespace: shop}, ports: [1, 2]},\n"
		"      {action: deny, from: {spiffe: 'spiffe://td/x'}}]}\n"
		"  - {name: b, vip: 10.0.0.2, ports: [{port: 1}], authorization: *rules}\n");

	cr_assert_eq(cfg->services[1].n_authz, 2);
	cr_expect_str_eq(cfg->services[1].authz[0].value, "shop");
	cr_expect_str_eq(cfg->services[1].authz[1].value, "spiffe://td/x");
	cr_expect_neq(cfg->services[0].authz[0].value, cfg->services[1].authz[0].value,
		      "each service owns its copy");
	cr_expect_eq(cfg->services[1].authz[0].n_ports, 2);
	or_config_free(cfg);
}

Test(authorization, sixteen_ports_fit)
{
	struct or_config *cfg = load_ok(
		"authz16.yaml",
		"node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n"
		"    authorization:\n      - action: allow\n"
		"        ports: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 65535]\n");

	cr_assert_eq(cfg->services[0].authz[0].n_ports, OR_AUTHZ_MAX_PORTS);
	cr_expect_eq(cfg->services[0].authz[0].ports[15], 65535);
	or_config_free(cfg);
}

/* A service whose authorization: block is `body` (indented six spaces), from line 7. */
static void authz_bad(const char *name, const char *body, int line, const char *frag)
{
	char yaml[2048];

	snprintf(yaml, sizeof(yaml),
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n"
		 "    authorization:\n%s",
		 body);
	load_bad(name, yaml, line, frag);
}

Test(authorization, rule_errors)
{
	authz_bad("noaction.yaml", "      - from: {namespace: x}\n", 7,
		  "services[0].authorization[0]: action is required (allow, deny)");
	authz_bad("badaction.yaml", "      - action: permit\n", 7,
		  "authorization[0].action: 'permit' is not an action (allow, deny)");
	authz_bad("caseaction.yaml", "      - action: ALLOW\n", 7, "'ALLOW' is not an action");
	authz_bad("listaction.yaml", "      - action: [allow]\n", 7,
		  "action: expected a string, got a list");
	authz_bad("unknownrule.yaml", "      - action: allow\n        to: {port: 80}\n", 8,
		  "authorization[0]: unknown key 'to' (expected one of: action, from, ports)");
	authz_bad("rulescalar.yaml", "      - allow\n", 7,
		  "authorization[0]: expected a mapping, got a scalar");
	authz_bad("second.yaml", "      - action: allow\n      - action: nope\n", 8,
		  "services[0].authorization[1].action: 'nope'");
	load_bad("authzmap.yaml",
		 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n    ports: [{port: 1}]\n"
		 "    authorization: {action: allow}\n",
		 6, "services[0].authorization: expected a list, got a mapping");
}

Test(authorization, from_errors)
{
	authz_bad("fromunknown.yaml",
		  "      - action: allow\n        from: {principal: 'spiffe://td/x'}\n", 8,
		  "authorization[0].from: unknown key 'principal' (expected one of: spiffe, "
		  "spiffe_prefix, namespace)");
	authz_bad("fromtwo.yaml",
		  "      - action: allow\n        from:\n          spiffe: 'spiffe://td/a'\n"
		  "          namespace: shop\n",
		  10, "'spiffe' and 'namespace' in one rule; use one per rule");
	authz_bad("fromempty.yaml", "      - action: allow\n        from: {}\n", 8,
		  "authorization[0].from: needs one of spiffe, spiffe_prefix, namespace");
	authz_bad("fromnullval.yaml", "      - action: deny\n        from: {spiffe: ~}\n", 8,
		  "needs one of spiffe, spiffe_prefix, namespace");
	authz_bad("fromlist.yaml", "      - action: deny\n        from: [a]\n", 8,
		  "from: expected a mapping, got a list");
	authz_bad("fromns.yaml", "      - action: deny\n        from: {namespace: Shop}\n", 8,
		  "from.namespace: 'Shop' is not a DNS-1123 label");
	authz_bad("fromnsempty.yaml", "      - action: deny\n        from: {namespace: ''}\n", 8,
		  "is not a DNS-1123 label");
}

static void bad_spiffe(const char *name, const char *key, const char *value, const char *frag)
{
	char body[1024];

	snprintf(body, sizeof(body), "      - action: deny\n        from:\n          %s: '%s'\n",
		 key, value);
	authz_bad(name, body, 9, frag);
}

Test(authorization, bad_spiffe_ids)
{
	bad_spiffe("sp1.yaml", "spiffe", "http://cluster.local/ns/a/sa/b",
		   "from.spiffe: 'http://cluster.local/ns/a/sa/b' is not a SPIFFE ID: it does not "
		   "start with spiffe://");
	bad_spiffe("sp2.yaml", "spiffe", "SPIFFE://cluster.local/ns/a", "does not start with");
	bad_spiffe("sp3.yaml", "spiffe", "spiffe://Cluster.local/ns/a", "bad trust domain");
	bad_spiffe("sp4.yaml", "spiffe", "spiffe:///ns/a", "bad trust domain");
	bad_spiffe("sp5.yaml", "spiffe", "spiffe://cluster.local", "has no path");
	bad_spiffe("sp6.yaml", "spiffe", "spiffe://cluster.local/", "ends with '/'");
	bad_spiffe("sp7.yaml", "spiffe", "spiffe://cluster.local/ns/a/", "ends with '/'");
	bad_spiffe("sp8.yaml", "spiffe", "spiffe://cluster.local/ns//a", "empty path segment");
	bad_spiffe("sp9.yaml", "spiffe", "spiffe://cluster.local/ns/../a", "'.' or '..'");
	bad_spiffe("sp10.yaml", "spiffe", "spiffe://cluster.local/./a", "'.' or '..'");
	bad_spiffe("sp11.yaml", "spiffe", "spiffe://cluster.local/ns/a%20b", "a character other");
	bad_spiffe("sp12.yaml", "spiffe", "spiffe://cluster.local/ns/a?x=1", "a character other");
	bad_spiffe("sp13.yaml", "spiffe", "spiffe://cluster.local:443/ns/a", "bad trust domain");
	bad_spiffe("sp14.yaml", "spiffe", "spiffe://user@cluster.local/ns/a", "bad trust domain");
	bad_spiffe("sp15.yaml", "spiffe", "spiffe://cluster.local/ns/a#frag", "a character other");
	bad_spiffe("sp16.yaml", "spiffe", "", "does not start with");

	bad_spiffe("pre1.yaml", "spiffe_prefix", "spiffe://cluster.local",
		   "from.spiffe_prefix: 'spiffe://cluster.local' is not a SPIFFE ID prefix: it has "
		   "no '/' after the trust domain");
	bad_spiffe("pre2.yaml", "spiffe_prefix", "spiffe://", "no '/' after the trust domain");
	bad_spiffe("pre3.yaml", "spiffe_prefix", "spiffe://CL/ns/", "bad trust domain");
	bad_spiffe("pre4.yaml", "spiffe_prefix", "spiffe://td/ns//", "empty path segment");
	bad_spiffe("pre5.yaml", "spiffe_prefix", "spiffe://td/../x", "'.' or '..'");
	bad_spiffe("pre6.yaml", "spiffe_prefix", "spiffe://td/ns/*", "a character other");
	bad_spiffe("pre7.yaml", "spiffe_prefix", "cluster.local/ns/", "does not start with");

	char id[400];

	snprintf(id, sizeof(id), "spiffe://td/%0244d", 0); /* 256 characters */
	bad_spiffe("splong.yaml", "spiffe", id, "is longer than 255 characters");
}

Test(authorization, good_spiffe_ids)
{
	static const char *const ok[][2] = {
		{ "spiffe", "spiffe://cluster.local/ns/shop/sa/web" },
		{ "spiffe", "spiffe://td/x" },
		{ "spiffe", "spiffe://a_b-c.1/Path/With.Dots/a..b/.hidden/_-" },
		{ "spiffe_prefix", "spiffe://cluster.local/" },
		{ "spiffe_prefix", "spiffe://cluster.local/ns/shop/" },
		{ "spiffe_prefix", "spiffe://cluster.local/ns/sh" },
		{ "spiffe_prefix", "spiffe://cluster.local/ns/shop/sa/web" },
		{ "spiffe_prefix", "spiffe://cluster.local/ns/." },
	};
	char yaml[1024];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct or_config *cfg;

		snprintf(yaml, sizeof(yaml),
			 "node: a\nservices:\n  - name: s\n    vip: 10.0.0.1\n"
			 "    ports: [{port: 1}]\n    authorization:\n"
			 "      - {action: allow, from: {%s: '%s'}}\n",
			 ok[i][0], ok[i][1]);
		cfg = load_ok("goodspiffe.yaml", yaml);
		cr_expect_str_eq(cfg->services[0].authz[0].value, ok[i][1]);
		or_config_free(cfg);
	}
}

Test(authorization, port_errors)
{
	authz_bad("p0.yaml", "      - action: allow\n        ports: [0]\n", 8,
		  "authorization[0].ports[0]: 0 is not a port (1-65535)");
	authz_bad("pbig.yaml", "      - action: allow\n        ports: [80, 65536]\n", 8,
		  "ports[1]: 65536 is not a port");
	authz_bad("pstr.yaml", "      - action: allow\n        ports: [http]\n", 8,
		  "'http' is not an integer");
	authz_bad("pempty.yaml", "      - action: allow\n        ports: []\n", 8,
		  "authorization[0].ports: must not be empty (leave ports out for any port)");
	authz_bad("pscalar.yaml", "      - action: allow\n        ports: 80\n", 8,
		  "authorization[0].ports: expected a list, got a scalar");
	authz_bad("pdup.yaml", "      - action: allow\n        ports:\n          - 80\n"
			       "          - 443\n          - 80\n",
		  11, "ports[2]: duplicate port 80 (first at line 9)");
	authz_bad("p17.yaml",
		  "      - action: allow\n"
		  "        ports: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]\n",
		  8, "authorization[0].ports: 17 ports, at most 16");
}

Test(config, kubernetes_source)
{
	struct or_config *cfg = load_ok("k0.yaml", "node: n1\n");

	cr_expect_not(cfg->kubernetes);
	cr_expect_null(cfg->kube_config);
	or_config_free(cfg);

	/* {}: in-cluster credentials. */
	cfg = load_ok("k1.yaml", "node: n1\nkubernetes: {}\n");
	cr_expect(cfg->kubernetes);
	cr_expect_null(cfg->kube_config);
	cr_expect_null(cfg->kube_context);
	or_config_free(cfg);

	cfg = load_ok("k2.yaml", "node: n1\nkubernetes:\n  kubeconfig: /etc/kube/config\n"
				 "  context: prod\n");
	cr_expect(cfg->kubernetes);
	cr_expect_str_eq(cfg->kube_config, "/etc/kube/config");
	cr_expect_str_eq(cfg->kube_context, "prod");
	or_config_free(cfg);

	load_bad("k3.yaml", "node: n1\nkubernetes:\n  kubeconfig: kube/config\n", 3, "absolute");
	load_bad("k4.yaml", "node: n1\nkubernetes:\n  context: prod\n", 3,
		 "context is given without kubeconfig");
	load_bad("k5.yaml", "node: n1\nkubernetes:\n  server: https://x\n", 3, "unknown key 'server'");
	load_bad("k6.yaml", "node: n1\nkubernetes: yes\n", 2, "expected a mapping");
}

/* The text is kept, so the config in force can be parsed again unchanged. */
Test(config, keeps_its_text)
{
	static const char yaml[] = "node: n1\nkubernetes: {}\n";
	struct or_config *cfg = load_ok("t.yaml", yaml), *again;

	cr_assert_eq(cfg->text_len, strlen(yaml));
	cr_expect_str_eq(cfg->text, yaml);
	again = load_ok(cfg->path, cfg->text);
	cr_expect(again->kubernetes);
	cr_expect_str_eq(again->path, "t.yaml");
	or_config_free(again);
	or_config_free(cfg);
}

/* Issue 7: drain_timeout_ms, limits:, namespaces' on_agent_down. */
Test(config, reliability_knobs)
{
	struct or_config *cfg = load_ok("r0.yaml", "node: n1\n");

	cr_expect_eq(cfg->drain_timeout_ms, OR_DEFAULT_DRAIN_TIMEOUT_MS);
	cr_expect_eq(cfg->header_timeout_ms, OR_DEFAULT_HEADER_TIMEOUT_MS);
	cr_expect_eq(cfg->buffer_bytes, OR_DEFAULT_BUFFER_BYTES);
	or_config_free(cfg);

	cfg = load_ok("r1.yaml", "node: n1\n"
				 "drain_timeout_ms: 0\n"
				 "limits: {header_timeout_ms: 2500, buffer_bytes: 262144}\n"
				 "namespaces:\n"
				 "  - name: shop\n"
				 "    on_agent_down: fail-open\n"
				 "  - name: bank\n"
				 "    mtls: strict\n"
				 "    on_agent_down: fail-closed\n"
				 "  - name: plain\n");
	cr_expect_eq(cfg->drain_timeout_ms, 0, "0 is a valid drain (exit at once)");
	cr_expect_eq(cfg->header_timeout_ms, 2500);
	cr_expect_eq(cfg->buffer_bytes, 262144);
	cr_expect_eq(or_config_namespace(cfg, "shop")->on_agent_down, OR_AGENT_DOWN_FAIL_OPEN);
	cr_expect_eq(or_config_namespace(cfg, "bank")->on_agent_down, OR_AGENT_DOWN_FAIL_CLOSED);
	cr_expect_eq(or_config_namespace(cfg, "plain")->on_agent_down, OR_AGENT_DOWN_FAIL_CLOSED,
		     "fail-closed is the default");
	cr_expect_null(or_config_namespace(cfg, "nowhere"));
	cr_expect_str_eq(or_agent_down_name(OR_AGENT_DOWN_FAIL_OPEN), "fail-open");
	or_config_free(cfg);

	load_bad("r2.yaml", "node: n1\nnamespaces:\n  - name: bank\n    mtls: strict\n"
			    "    on_agent_down: fail-open\n", 3,
		 "namespace bank: on_agent_down: fail-open is not allowed with mtls: strict");
	load_bad("r3.yaml", "node: n1\nnamespaces:\n  - name: a\n    on_agent_down: open\n", 4,
		 "'open' is not an on_agent_down mode (fail-closed, fail-open)");
	load_bad("r4.yaml", "node: n1\ndrain_timeout_ms: 3600001\n", 2, "out of range");
	load_bad("r5.yaml", "node: n1\nlimits: {header_timeout_ms: 10}\n", 2, "out of range");
	load_bad("r6.yaml", "node: n1\nlimits:\n  buffer_bytes: 1024\n", 3, "out of range");
	load_bad("r7.yaml", "node: n1\nlimits: {max_headers: 5}\n", 2, "unknown key 'max_headers'");
}
