// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * /metrics and the admin endpoints: the exact Prometheus text for known
 * counters, label escaping, counters that add up under threads, the kernel
 * maps summed (when this process may create BPF maps), request parsing, and
 * the admin server itself over real sockets on 127.0.0.1: status codes,
 * partial requests, oversized requests, a client that stalls, a full port.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "admin.h"
#include "metrics.h"
#include "overload.h"

static const struct or_metrics_node no_maps = { .stats_map_fd = -1, .breakers_map_fd = -1 };

static char *render(const struct or_metrics_node *node)
{
	char *text = NULL;
	size_t len = 0;

	cr_assert_eq(or_metrics_render(node, &text, &len), 0, "or_metrics_render failed");
	cr_assert_not_null(text);
	cr_assert_eq(strlen(text), len, "length %zu does not match the text (%zu)", len,
		     strlen(text));
	return text;
}

/* True when text holds line as a whole line. */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

#define expect_line(text, line) \
	cr_expect(has_line(text, line), "missing line: %s\n--- got:\n%s", line, text)
#define expect_no_line(text, line) \
	cr_expect(!has_line(text, line), "unexpected line: %s", line)

Test(metrics, exact_text_for_one_service)
{
	static const char want[] =
		"# HELP outrider_tcp_connections_opened_total TCP connections accepted from applications.\n"
		"# TYPE outrider_tcp_connections_opened_total counter\n"
		"outrider_tcp_connections_opened_total{service=\"default/web\"} 12\n"
		"# HELP outrider_tcp_connections_closed_total TCP connections from applications that ended.\n"
		"# TYPE outrider_tcp_connections_closed_total counter\n"
		"outrider_tcp_connections_closed_total{service=\"default/web\"} 10\n"
		"# HELP outrider_requests_total HTTP requests by the response code sent to the application; 0: none sent.\n"
		"# TYPE outrider_requests_total counter\n"
		"outrider_requests_total{service=\"default/web\",response_code=\"0\"} 1\n"
		"outrider_requests_total{service=\"default/web\",response_code=\"200\"} 2\n"
		"outrider_requests_total{service=\"default/web\",response_code=\"503\"} 1\n"
		"# HELP outrider_retries_total Attempts after the first one, sent upstream.\n"
		"# TYPE outrider_retries_total counter\n"
		"outrider_retries_total{service=\"default/web\"} 4\n"
		"# HELP outrider_retry_budget_exhausted_total Retries not made because the retry budget was spent.\n"
		"# TYPE outrider_retry_budget_exhausted_total counter\n"
		"outrider_retry_budget_exhausted_total{service=\"default/web\"} 5\n"
		"# HELP outrider_ejections_total Endpoints ejected by outlier detection.\n"
		"# TYPE outrider_ejections_total counter\n"
		"outrider_ejections_total{service=\"default/web\"} 6\n"
		"# HELP outrider_upstream_connect_failures_total Upstream connects that failed: refused, timed out or unreachable.\n"
		"# TYPE outrider_upstream_connect_failures_total counter\n"
		"outrider_upstream_connect_failures_total{service=\"default/web\"} 7\n"
		"# HELP outrider_request_timeouts_total Requests that ran out of time (504 sent).\n"
		"# TYPE outrider_request_timeouts_total counter\n"
		"outrider_request_timeouts_total{service=\"default/web\"} 8\n"
		"# HELP outrider_circuit_breaker_overflow_total Connections, requests or retries refused because a circuit breaker limit was reached.\n"
		"# TYPE outrider_circuit_breaker_overflow_total counter\n"
		"outrider_circuit_breaker_overflow_total{service=\"default/web\",limit=\"max_connections\"} 1\n"
		"outrider_circuit_breaker_overflow_total{service=\"default/web\",limit=\"max_pending_requests\"} 2\n"
		"outrider_circuit_breaker_overflow_total{service=\"default/web\",limit=\"max_requests\"} 3\n"
		"outrider_circuit_breaker_overflow_total{service=\"default/web\",limit=\"max_retries\"} 4\n"
		"# HELP outrider_active_connections Connections from applications open now.\n"
		"# TYPE outrider_active_connections gauge\n"
		"outrider_active_connections{service=\"default/web\"} 2\n"
		"# HELP outrider_active_requests HTTP requests in flight now.\n"
		"# TYPE outrider_active_requests gauge\n"
		"outrider_active_requests{service=\"default/web\"} -1\n"
		"# HELP outrider_pending_requests Upstream connects in progress now.\n"
		"# TYPE outrider_pending_requests gauge\n"
		"outrider_pending_requests{service=\"default/web\"} 9\n"
		"# HELP outrider_tcp_sent_bytes_total Bytes sent to applications.\n"
		"# TYPE outrider_tcp_sent_bytes_total counter\n"
		"outrider_tcp_sent_bytes_total{service=\"default/web\"} 18446744073709551615\n"
		"# HELP outrider_tcp_received_bytes_total Bytes received from applications.\n"
		"# TYPE outrider_tcp_received_bytes_total counter\n"
		"outrider_tcp_received_bytes_total{service=\"default/web\"} 678\n"
		"# HELP outrider_kernel_decisions_total What the kernel programs did with a connect() or socket, by reason (or_stats).\n"
		"# TYPE outrider_kernel_decisions_total counter\n"
		"# HELP outrider_endpoints_ejected Endpoints ejected now: or_breakers entries open with the ejection not over.\n"
		"# TYPE outrider_endpoints_ejected gauge\n"
		"# HELP outrider_enrolled_pods Pods of this node enrolled in the mesh.\n"
		"# TYPE outrider_enrolled_pods gauge\n"
		"outrider_enrolled_pods 3\n"
		"# HELP outrider_config_reloads_total Configuration reloads, by whether the new config was taken.\n"
		"# TYPE outrider_config_reloads_total counter\n"
		"outrider_config_reloads_total{result=\"ok\"} 2\n"
		"outrider_config_reloads_total{result=\"failed\"} 1\n"
		"# HELP outrider_overload_total Work turned away or paused to protect the agent, by reason.\n"
		"# TYPE outrider_overload_total counter\n"
		"outrider_overload_total{reason=\"header_timeout\"} 1\n"
		"outrider_overload_total{reason=\"header_too_large\"} 2\n"
		"outrider_overload_total{reason=\"buffer_limit\"} 3\n"
		"outrider_overload_total{reason=\"emfile\"} 4\n"
		"outrider_overload_total{reason=\"memory\"} 5\n"
		"outrider_overload_total{reason=\"max_connections\"} 6\n"
		"# HELP outrider_buffered_bytes Bytes of connection buffers the agent holds now.\n"
		"# TYPE outrider_buffered_bytes gauge\n"
		"outrider_buffered_bytes 131072\n"
		"# HELP outrider_memory_working_set_bytes The agent's memory cgroup working set at the last reading (0: not read).\n"
		"# TYPE outrider_memory_working_set_bytes gauge\n"
		"outrider_memory_working_set_bytes 0\n"
		"# HELP outrider_memory_limit_bytes The tightest memory limit of the agent's cgroup and its ancestors (0: none).\n"
		"# TYPE outrider_memory_limit_bytes gauge\n"
		"outrider_memory_limit_bytes 0\n"
		"# HELP outrider_memory_shedding 1 while new connections are shed over the memory high-water mark.\n"
		"# TYPE outrider_memory_shedding gauge\n"
		"outrider_memory_shedding 0\n";
	struct or_metrics_node node = no_maps;
	struct or_svc_metrics *m = or_metrics_service("default/web");
	char *text;

	cr_assert_not_null(m);
	atomic_store(&m->tcp_opened, 12);
	atomic_store(&m->tcp_closed, 10);
	or_metrics_request(m, 200);
	or_metrics_request(m, 200);
	or_metrics_request(m, 503);
	or_metrics_request(m, 0);
	atomic_store(&m->retries, 4);
	atomic_store(&m->budget_exhausted, 5);
	atomic_store(&m->ejections, 6);
	atomic_store(&m->connect_failures, 7);
	atomic_store(&m->timeouts, 8);
	for (int l = 0; l < OR_CB_MAX; l++)
		atomic_store(&m->cb_overflow[l], l + 1);
	atomic_store(&m->active_connections, 2);
	atomic_store(&m->active_requests, -1); /* a gauge may dip while threads race */
	atomic_store(&m->pending, 9);
	atomic_store(&m->active_retries, 11); /* not exported */
	atomic_store(&m->bytes_sent, UINT64_MAX);
	atomic_store(&m->bytes_received, 678);
	node.enrolled_pods = 3;
	node.config_reloads_ok = 2;
	node.config_reloads_failed = 1;
	/* No cgroup to read: the memory gauges stay 0 whatever this process runs in. */
	or_overload_memcg_reset("/nonexistent/cgroup", "/nonexistent/mountinfo");
	for (int r = 0; r < OR_OVERLOAD_MAX; r++)
		atomic_store(&or_overload_stats.total[r], r + 1);
	or_overload_buffers(131072);

	text = render(&node);
	cr_expect_str_eq(text, want);
	or_overload_buffers(-131072);
	for (int r = 0; r < OR_OVERLOAD_MAX; r++)
		atomic_store(&or_overload_stats.total[r], 0);
	or_overload_memcg_reset(NULL, NULL);
	free(text);
	or_metrics_free_all();
}

Test(metrics, services_sorted_and_families_grouped)
{
	const char *names[] = { "zeta/z", "alpha/a", "mid/m" };
	char *text, *line, *save;
	char last_family[128] = "";
	char seen[64][128];
	size_t nseen = 0;
	const char *a, *m, *z;

	for (size_t i = 0; i < 3; i++)
		atomic_store(&or_metrics_service(names[i])->tcp_opened, i + 1);
	text = render(&no_maps);
	a = strstr(text, "outrider_tcp_connections_opened_total{service=\"alpha/a\"} 2\n");
	m = strstr(text, "outrider_tcp_connections_opened_total{service=\"mid/m\"} 3\n");
	z = strstr(text, "outrider_tcp_connections_opened_total{service=\"zeta/z\"} 1\n");
	cr_assert(a && m && z, "a sample is missing:\n%s", text);
	cr_expect(a < m && m < z, "services are not in name order");
	cr_expect(text[strlen(text) - 1] == '\n', "the text does not end with a newline");

	/* Every family once: HELP, then TYPE, then only its own samples. */
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], type[16];

		if (sscanf(line, "# HELP %127s", name) == 1) {
			for (size_t i = 0; i < nseen; i++)
				cr_expect_str_neq(seen[i], name, "family %s appears twice", name);
			cr_assert_lt(nseen, 64);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
			snprintf(last_family, sizeof(last_family), "%s", name);
			continue;
		}
		if (sscanf(line, "# TYPE %127s %15s", name, type) == 2) {
			cr_expect_str_eq(name, last_family, "TYPE %s not right after its HELP", name);
			cr_expect(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0,
				  "type %s", type);
			if (strcmp(type, "counter") == 0)
				cr_expect(strlen(name) > 6 &&
						  strcmp(name + strlen(name) - 6, "_total") == 0,
					  "counter %s does not end in _total", name);
			continue;
		}
		cr_expect(strncmp(line, last_family, strlen(last_family)) == 0 &&
				  (line[strlen(last_family)] == '{' ||
				   line[strlen(last_family)] == ' '),
			  "sample outside its family %s: %s", last_family, line);
	}
	cr_expect_eq(nseen, 23, "%zu families", nseen);
	free(text);
	or_metrics_free_all();
}

Test(metrics, response_codes)
{
	struct or_svc_metrics *m = or_metrics_service("ns/codes");
	char *text;

	or_metrics_request(m, 100);
	or_metrics_request(m, 599);
	or_metrics_request(m, 404);
	or_metrics_request(m, 404);
	/* Not real status codes: counted as "no response". */
	or_metrics_request(m, -1);
	or_metrics_request(m, 42);
	or_metrics_request(m, 600);
	or_metrics_request(m, 0);
	or_metrics_request(NULL, 200); /* a service whose counters could not be allocated */
	text = render(&no_maps);
	expect_line(text, "outrider_requests_total{service=\"ns/codes\",response_code=\"100\"} 1");
	expect_line(text, "outrider_requests_total{service=\"ns/codes\",response_code=\"404\"} 2");
	expect_line(text, "outrider_requests_total{service=\"ns/codes\",response_code=\"599\"} 1");
	expect_line(text, "outrider_requests_total{service=\"ns/codes\",response_code=\"0\"} 4");
	expect_no_line(text, "outrider_requests_total{service=\"ns/codes\",response_code=\"200\"} 1");
	cr_expect_null(strstr(text, "response_code=\"42\""));
	cr_expect_null(strstr(text, "response_code=\"600\""));
	free(text);
	or_metrics_free_all();
}

Test(metrics, label_values_escaped)
{
	char *text;

	atomic_store(&or_metrics_service("a\\b\"c\nd")->retries, 7);
	text = render(&no_maps);
	expect_line(text, "outrider_retries_total{service=\"a\\\\b\\\"c\\nd\"} 7");
	free(text);
	or_metrics_free_all();
}

Test(metrics, registry_keeps_one_entry_per_name)
{
	char long_a[80], long_b[80];
	struct or_svc_metrics *a, *b;

	a = or_metrics_service("ns/a");
	b = or_metrics_service("ns/b");
	cr_assert(a && b && a != b);
	cr_expect_eq(or_metrics_service("ns/a"), a);
	cr_expect_str_eq(a->name, "ns/a");

	/* Cut to OR_NAME_LEN - 1 bytes: two names that differ only past that share one entry. */
	memset(long_a, 'x', sizeof(long_a));
	long_a[sizeof(long_a) - 1] = 0;
	memcpy(long_b, long_a, sizeof(long_b));
	long_b[sizeof(long_b) - 2] = 'y';
	a = or_metrics_service(long_a);
	cr_assert_not_null(a);
	cr_expect_eq(strlen(a->name), OR_NAME_LEN - 1);
	cr_expect_eq(or_metrics_service(long_b), a);

	or_metrics_free_all();
	a = or_metrics_service("ns/a");
	cr_assert_not_null(a);
	cr_expect_eq(atomic_load(&a->tcp_opened), 0, "a fresh registry starts at zero");
	or_metrics_free_all();
}

#define THREADS 8
#define ROUNDS 200000

static atomic_bool stop_render;

static void *incrementer(void *arg)
{
	const char *names[] = { "ns/one", "ns/two" };

	for (int i = 0; i < ROUNDS; i++) {
		/* Lookups race with creation: both threads must get the same pointers. */
		struct or_svc_metrics *m = or_metrics_service(names[i & 1]);

		atomic_fetch_add_explicit(&m->tcp_opened, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&m->active_connections, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&m->active_connections, 1, memory_order_relaxed);
		or_metrics_request(m, 200 + (i % 3));
	}
	return arg;
}

static void *renderer(void *arg)
{
	size_t *renders = arg;

	while (!atomic_load(&stop_render)) {
		char *text;
		size_t len;

		if (or_metrics_render(&no_maps, &text, &len) == 0) {
			free(text);
			(*renders)++;
		}
	}
	return NULL;
}

Test(metrics, concurrent_increments_add_up)
{
	pthread_t th[THREADS], rt;
	size_t renders = 0;
	char *text, line[160];

	cr_assert_eq(pthread_create(&rt, NULL, renderer, &renders), 0);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, incrementer, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop_render, true);
	pthread_join(rt, NULL);
	cr_expect_gt(renders, 0, "the renderer never finished a pass");

	text = render(&no_maps);
	for (int s = 0; s < 2; s++) {
		const char *name = s ? "ns/two" : "ns/one";

		snprintf(line, sizeof(line),
			 "outrider_tcp_connections_opened_total{service=\"%s\"} %d", name,
			 THREADS * ROUNDS / 2);
		expect_line(text, line);
		snprintf(line, sizeof(line), "outrider_active_connections{service=\"%s\"} 0", name);
		expect_line(text, line);
	}
	/* 200, 201, 202 in turn over all rounds of all threads. */
	for (int code = 200; code < 203; code++) {
		uint64_t want = 0;

		for (int i = 0; i < ROUNDS; i++)
			want += (200 + i % 3 == code) && !(i & 1);
		snprintf(line, sizeof(line),
			 "outrider_requests_total{service=\"ns/one\",response_code=\"%d\"} %llu", code,
			 (unsigned long long)(want * THREADS));
		expect_line(text, line);
	}
	free(text);
	or_metrics_free_all();
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Maps shaped like or_stats and or_breakers; skips the test without the right to make them. */
static void make_maps(int *stats, int *breakers)
{
	*stats = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "or_stats", sizeof(__u32), sizeof(__u64),
				OR_REASON_MAX, NULL);
	if (*stats == -EPERM || *stats == -EACCES)
		cr_skip_test("creating BPF maps needs root or CAP_BPF");
	cr_assert_geq(*stats, 0, "or_stats: %s", strerror(-*stats));
	*breakers = bpf_map_create(BPF_MAP_TYPE_HASH, "or_breakers", sizeof(struct or_breaker_key),
				   sizeof(struct or_breaker_val), 64, NULL);
	cr_assert_geq(*breakers, 0, "or_breakers: %s", strerror(-*breakers));
}

Test(metrics, kernel_maps_summed_per_cpu)
{
	struct or_metrics_node node = no_maps;
	int ncpu = libbpf_num_possible_cpus(), stats, breakers;
	__u64 *vals, now = now_ns();
	char *text, line[160];
	struct {
		__u8 state;
		__u64 until_ns;
	} eps[] = {
		{ OR_BREAKER_OPEN, now + 60000000000ull },      /* ejected */
		{ OR_BREAKER_OPEN, now + 30000000000ull },      /* ejected */
		{ OR_BREAKER_OPEN, now - 1000000 },             /* ejection over */
		{ OR_BREAKER_HALF_OPEN, now + 60000000000ull }, /* probing, not ejected */
		{ OR_BREAKER_CLOSED, 0 },
	};

	cr_assert_gt(ncpu, 0);
	make_maps(&stats, &breakers);
	vals = calloc(ncpu, sizeof(*vals));
	cr_assert_not_null(vals);
	for (__u32 r = 0; r < OR_REASON_MAX; r++) {
		for (int c = 0; c < ncpu; c++)
			vals[c] = (r + 1) * (c + 1);
		cr_assert_eq(bpf_map_update_elem(stats, &r, vals, 0), 0);
	}
	for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
		struct or_breaker_key k = { .addr = { htonl(0x0a000001 + i) }, .port = 8080,
					    .family = OR_AF_INET };
		struct or_breaker_val v = { .state = eps[i].state, .until_ns = eps[i].until_ns };

		cr_assert_eq(bpf_map_update_elem(breakers, &k, &v, 0), 0);
	}
	node.stats_map_fd = stats;
	node.breakers_map_fd = breakers;

	text = render(&node);
	/* reason r counts (r + 1) * (1 + 2 + ... + ncpu) */
	snprintf(line, sizeof(line), "outrider_kernel_decisions_total{reason=\"redirected\"} %d",
		 ncpu * (ncpu + 1) / 2);
	expect_line(text, line);
	snprintf(line, sizeof(line), "outrider_kernel_decisions_total{reason=\"all_ejected\"} %d",
		 (OR_REASON_ALL_EJECTED + 1) * ncpu * (ncpu + 1) / 2);
	expect_line(text, line);
	snprintf(line, sizeof(line),
		 "outrider_kernel_decisions_total{reason=\"skipped_ejected\"} %d",
		 (OR_REASON_SKIPPED_EJECTED + 1) * ncpu * (ncpu + 1) / 2);
	expect_line(text, line);
	expect_line(text, "outrider_endpoints_ejected 2");
	free(text);
	free(vals);
	close(stats);
	close(breakers);
	or_metrics_free_all();
}

Test(metrics, unreadable_maps_leave_samples_out)
{
	struct or_metrics_node node = no_maps;
	int stats, breakers;
	char *text;

	make_maps(&stats, &breakers);
	/* Swapped: neither map has the shape its reader expects. */
	node.stats_map_fd = breakers;
	node.breakers_map_fd = stats;
	text = render(&node);
	cr_expect_null(strstr(text, "outrider_kernel_decisions_total{"), "%s", text);
	cr_expect_null(strstr(text, "\noutrider_endpoints_ejected "), "%s", text);
	expect_line(text, "# TYPE outrider_endpoints_ejected gauge");
	free(text);
	close(stats);
	close(breakers);
}

/* Request parsing. */

static enum or_admin_parse parse(const char *s, size_t n, struct or_admin_req *req)
{
	return or_admin_parse_request(s, n, req);
}

#define PARSE(lit, req) parse(lit, sizeof(lit) - 1, req)

Test(admin_parse, good_requests)
{
	struct or_admin_req r;

	cr_assert_eq(PARSE("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), OR_ADMIN_OK);
	cr_expect_str_eq(r.method, "GET");
	cr_expect_str_eq(r.path, "/metrics");
	cr_assert_eq(PARSE("HEAD /healthz/ready?verbose=1#x HTTP/1.0\r\n\r\n", &r), OR_ADMIN_OK);
	cr_expect_str_eq(r.method, "HEAD");
	cr_expect_str_eq(r.path, "/healthz/ready", "the query is not part of the path");
	cr_assert_eq(PARSE("GET /metrics HTTP/1.1\nHost: x\n\n", &r), OR_ADMIN_OK, "bare LF lines");
	/* A body, or a second request, after the head is not looked at. */
	cr_assert_eq(PARSE("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", &r), OR_ADMIN_OK);
	cr_expect_str_eq(r.method, "POST");
	cr_assert_eq(PARSE("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", &r), OR_ADMIN_OK);
	cr_expect_str_eq(r.path, "/a");
}

Test(admin_parse, every_prefix_is_incomplete)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
	struct or_admin_req r;

	for (size_t n = 0; n < sizeof(req) - 1; n++)
		cr_expect_eq(parse(req, n, &r), OR_ADMIN_INCOMPLETE, "prefix of %zu bytes", n);
	cr_expect_eq(parse(req, sizeof(req) - 1, &r), OR_ADMIN_OK);
}

Test(admin_parse, malformed_and_ambiguous_are_bad)
{
	static const struct {
		const char *what;
		const char *req;
		size_t len;
	} bad[] = {
#define BAD(what, s) { what, s, sizeof(s) - 1 }
		BAD("not http", "hello world\r\n\r\n"),
		BAD("a response", "HTTP/1.1 200 OK\r\n\r\n"),
		BAD("unknown method", "BREW /pot HTTP/1.1\r\n\r\n"),
		BAD("two Content-Length", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
		BAD("two equal Content-Length", "POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n"),
		BAD("CL and TE", "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
		BAD("TE and CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"),
		BAD("NUL in a value", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"),
		BAD("NUL in the target", "GET /a\0b HTTP/1.1\r\n\r\n"),
		BAD("bare CR in a value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"),
		BAD("bare CR ends a line", "GET / HTTP/1.1\rHost: a\r\n\r\n"),
		BAD("obs-fold SP", "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"),
		BAD("obs-fold HTAB", "GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n"),
		BAD("space before colon", "GET / HTTP/1.1\r\nHost : x\r\nX\r\n\r\n"),
		BAD("no version", "GET /\r\n\r\n"),
#undef BAD
	};
	struct or_admin_req r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(parse(bad[i].req, bad[i].len, &r), OR_ADMIN_BAD, "%s", bad[i].what);
		cr_expect(!r.method[0] && !r.path[0], "%s: fields left filled", bad[i].what);
	}
}

Test(admin_parse, size_bounds)
{
	char *big = malloc(20000), path[400];
	struct or_admin_req r;
	int n;

	cr_assert_not_null(big);
	/* A head that never ends within 8 KiB. */
	n = snprintf(big, 20000, "GET /metrics HTTP/1.1\r\nX-Big: ");
	memset(big + n, 'a', 20000 - n);
	cr_expect_eq(parse(big, 8191, &r), OR_ADMIN_INCOMPLETE);
	cr_expect_eq(parse(big, 8192, &r), OR_ADMIN_TOO_LARGE);
	cr_expect_eq(parse(big, 20000, &r), OR_ADMIN_TOO_LARGE);
	/* A complete head that only ends past 8 KiB. */
	memcpy(big + 9000, "\r\n\r\n", 4);
	cr_expect_eq(parse(big, 9004, &r), OR_ADMIN_TOO_LARGE);
	free(big);

	memset(path, 'p', sizeof(path));
	path[0] = '/';
	n = snprintf(big = malloc(600), 600, "GET %.*s HTTP/1.1\r\n\r\n", 255, path);
	cr_expect_eq(parse(big, n, &r), OR_ADMIN_OK, "a 255-byte path fits");
	cr_expect_eq(strlen(r.path), 255);
	n = snprintf(big, 600, "GET %.*s HTTP/1.1\r\n\r\n", 256, path);
	cr_expect_eq(parse(big, n, &r), OR_ADMIN_TOO_LARGE, "a 256-byte path does not");
	n = snprintf(big, 600, "GET /m?%.*s HTTP/1.1\r\n\r\n", 380, path);
	cr_expect_eq(parse(big, n, &r), OR_ADMIN_OK, "a long query is not part of the path");
	free(big);
}

/* The admin server on 127.0.0.1, its loop in a thread. */

struct server {
	struct ev_loop *loop;
	struct or_admin *admin;
	struct ev_io ctl; /* an eventfd: stop the server from the test thread */
	pthread_t thread;
	uint16_t admin_port, ready_port;
	atomic_bool ready;
	atomic_int node_calls;
	atomic_int node_bad_default; /* the hook saw map fds other than -1 */
};

static struct server srv;

static bool hook_ready(void *ctx)
{
	struct server *s = ctx;

	return atomic_load(&s->ready);
}

static void hook_node(void *ctx, struct or_metrics_node *out)
{
	struct server *s = ctx;

	/* No asserts off the test's thread: count what went wrong instead. */
	if (out->stats_map_fd != -1 || out->breakers_map_fd != -1)
		atomic_fetch_add(&s->node_bad_default, 1);
	out->enrolled_pods = 5;
	atomic_fetch_add(&s->node_calls, 1);
}

static void on_ctl(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct server *s = container_of(io, struct server, ctl);
	uint64_t v;

	if (read(io->fd, &v, sizeof(v)) != sizeof(v))
		return;
	or_admin_stop(s->admin);
	s->admin = NULL;
	ev_io_del(loop, io);
	ev_loop_stop(loop);
}

static void *serve(void *arg)
{
	struct server *s = arg;

	ev_run(s->loop);
	return NULL;
}

/* A port nobody listens on right now. */
static uint16_t free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void server_start(void)
{
	struct or_admin_hooks hooks = { .ready = hook_ready, .node_metrics = hook_node, .ctx = &srv };
	struct or_ip ip;
	int efd, err;

	signal(SIGPIPE, SIG_IGN);
	memset(&srv, 0, sizeof(srv));
	cr_assert_eq(or_ip_parse("127.0.0.1", &ip), 0);
	srv.loop = ev_loop_new();
	cr_assert_not_null(srv.loop);
	srv.admin_port = free_port();
	do
		srv.ready_port = free_port();
	while (srv.ready_port == srv.admin_port);
	err = or_admin_start(srv.loop, &ip, srv.admin_port, &ip, srv.ready_port, &hooks,
			     &srv.admin);
	cr_assert_eq(err, 0, "or_admin_start: %s", strerror(-err));
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(efd, 0);
	cr_assert_eq(ev_io_add(srv.loop, &srv.ctl, efd, EV_READ, on_ctl), 0);
	atomic_store(&or_metrics_service("default/web")->tcp_opened, 42);
	cr_assert_eq(pthread_create(&srv.thread, NULL, serve, &srv), 0);
}

static void server_stop(void)
{
	uint64_t one = 1;

	if (!srv.loop)
		return;
	cr_assert_eq(write(srv.ctl.fd, &one, sizeof(one)), sizeof(one));
	pthread_join(srv.thread, NULL);
	close(srv.ctl.fd);
	ev_loop_free(srv.loop);
	srv.loop = NULL;
	or_metrics_free_all();
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

/*
 * Reads until the server closes or timeout_ms pass. Returns the bytes
 * (NUL-terminated, *len without it); *closed_ms tells when EOF came.
 */
static char *read_all(int fd, int timeout_ms, size_t *len, long *closed_ms)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	struct timespec t0, t1;

	cr_assert_not_null(buf);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	*closed_ms = -1;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;
		long el;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= timeout_ms || poll(&p, 1, timeout_ms - el) <= 0)
			break;
		if (n + 4096 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		r = recv(fd, buf + n, cap - n - 1, 0);
		if (r <= 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			*closed_ms = (t1.tv_sec - t0.tv_sec) * 1000 +
				     (t1.tv_nsec - t0.tv_nsec) / 1000000;
			break;
		}
		n += r;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

struct reply {
	int status;
	char *raw;
	const char *body; /* into raw */
	long content_length;
	bool closed;
};

/* Sends req (len bytes) to port and reads the whole reply. */
static struct reply http(uint16_t port, const char *req, size_t len)
{
	struct reply r = { .status = -1, .content_length = -1 };
	int fd = connect_to(port);
	const char *cl, *end;
	size_t n;
	long closed_ms;

	cr_assert_eq(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	r.raw = read_all(fd, 3000, &n, &closed_ms);
	close(fd);
	r.closed = closed_ms >= 0;
	sscanf(r.raw, "HTTP/1.1 %d ", &r.status);
	end = strstr(r.raw, "\r\n\r\n");
	if (end) {
		r.body = end + 4;
		cl = strcasestr(r.raw, "\r\nContent-Length: ");
		if (cl && cl < end)
			r.content_length = strtol(cl + 18, NULL, 10);
	}
	return r;
}

#define HTTP(port, lit) http(port, lit, sizeof(lit) - 1)

static void expect_reply(struct reply *r, int status, const char *body)
{
	cr_expect_eq(r->status, status, "status %d, want %d:\n%s", r->status, status, r->raw);
	cr_expect(r->closed, "the server did not close the connection");
	cr_expect(strstr(r->raw, "\r\nConnection: close\r\n"), "no Connection: close");
	cr_assert_not_null(r->body, "no end of head:\n%s", r->raw);
	cr_expect_eq(r->content_length, (long)strlen(r->body), "Content-Length %ld, body %zu",
		     r->content_length, strlen(r->body));
	if (body)
		cr_expect_str_eq(r->body, body);
	free(r->raw);
}

TestSuite(admin, .init = server_start, .fini = server_stop, .timeout = 30);

Test(admin, metrics)
{
	struct reply r = HTTP(srv.admin_port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");

	cr_expect(strstr(r.raw, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
		  "content type:\n%s", r.raw);
	cr_expect(has_line(r.body, "outrider_tcp_connections_opened_total{service=\"default/web\"} 42"),
		  "%s", r.body);
	cr_expect(has_line(r.body, "outrider_enrolled_pods 5"), "the node hook was not used");
	cr_expect_eq(atomic_load(&srv.node_calls), 1);
	cr_expect_eq(atomic_load(&srv.node_bad_default), 0, "map fds not -1 before the hook");
	expect_reply(&r, 200, NULL);
}

Test(admin, head_has_length_and_no_body)
{
	struct reply get = HTTP(srv.admin_port, "GET /metrics HTTP/1.1\r\n\r\n");
	struct reply head = HTTP(srv.admin_port, "HEAD /metrics HTTP/1.1\r\n\r\n");

	cr_expect_eq(head.status, 200);
	cr_expect_eq(head.content_length, get.content_length);
	cr_expect_str_eq(head.body, "", "HEAD answered with a body");
	free(get.raw);
	free(head.raw);
	head = HTTP(srv.ready_port, "HEAD /healthz/ready HTTP/1.1\r\n\r\n");
	cr_expect_eq(head.status, 503);
	cr_expect_eq(head.content_length, 10);
	cr_expect_str_eq(head.body, "");
	free(head.raw);
}

Test(admin, ready)
{
	struct reply r = HTTP(srv.ready_port, "GET /healthz/ready HTTP/1.1\r\n\r\n");

	expect_reply(&r, 503, "not ready\n");
	atomic_store(&srv.ready, true);
	r = HTTP(srv.ready_port, "GET /healthz/ready HTTP/1.1\r\n\r\n");
	expect_reply(&r, 200, "ready\n");
	r = HTTP(srv.admin_port, "GET /healthz/ready HTTP/1.1\r\n\r\n");
	expect_reply(&r, 200, "ready\n");
}

Test(admin, not_found_and_wrong_method)
{
	struct reply r = HTTP(srv.ready_port, "GET /metrics HTTP/1.1\r\n\r\n");

	expect_reply(&r, 404, "not found\n");
	r = HTTP(srv.admin_port, "GET / HTTP/1.1\r\n\r\n");
	expect_reply(&r, 404, "not found\n");
	r = HTTP(srv.admin_port, "GET /metrics/ HTTP/1.1\r\n\r\n");
	expect_reply(&r, 404, "not found\n");
	r = HTTP(srv.admin_port, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
	cr_expect(strstr(r.raw, "\r\nAllow: GET, HEAD\r\n"), "405 without Allow");
	expect_reply(&r, 405, "method not allowed\n");
	r = HTTP(srv.ready_port, "DELETE /healthz/ready HTTP/1.1\r\n\r\n");
	expect_reply(&r, 405, "method not allowed\n");
}

Test(admin, bad_requests)
{
	static const char nul[] = "GET /metrics HTTP/1.1\r\nHost: a\0b\r\n\r\n";
	struct reply r = HTTP(srv.admin_port, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");

	expect_reply(&r, 400, "bad request\n");
	r = HTTP(srv.admin_port, "POST /metrics HTTP/1.1\r\nContent-Length: 4\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
	expect_reply(&r, 400, "bad request\n");
	r = http(srv.admin_port, nul, sizeof(nul) - 1);
	expect_reply(&r, 400, "bad request\n");
}

Test(admin, half_a_request_then_eof)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
	int fd = connect_to(srv.admin_port);
	struct reply r = { 0 };
	size_t n;
	long closed_ms;

	cr_assert_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
	shutdown(fd, SHUT_WR);
	r.raw = read_all(fd, 3000, &n, &closed_ms);
	close(fd);
	cr_expect_eq(strncmp(r.raw, "HTTP/1.1 400 ", 13), 0, "%s", r.raw);
	cr_expect_geq(closed_ms, 0, "not closed");
	free(r.raw);
}

Test(admin, request_in_pieces)
{
	static const char req[] = "GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = connect_to(srv.ready_port);
	char *raw;
	size_t n;
	long closed_ms;

	atomic_store(&srv.ready, true);
	for (size_t i = 0; i < sizeof(req) - 1; i++) {
		cr_assert_eq(send(fd, req + i, 1, 0), 1);
		usleep(2000);
	}
	raw = read_all(fd, 3000, &n, &closed_ms);
	close(fd);
	cr_expect_eq(strncmp(raw, "HTTP/1.1 200 ", 13), 0, "%s", raw);
	free(raw);
}

Test(admin, too_large_answered_not_reset)
{
	size_t len = 64 * 1024;
	char *req = malloc(len);
	struct reply r;
	int n;

	cr_assert_not_null(req);
	/* More than the 8 KiB the server reads: it answers 431 while bytes are still unread. */
	n = snprintf(req, len, "GET /metrics HTTP/1.1\r\nX-Big: ");
	memset(req + n, 'a', len - n);
	r = http(srv.admin_port, req, len);

	expect_reply(&r, 431, "request too large\n");
	free(req);
}

Test(admin, stalled_client_dropped_at_deadline)
{
	int fd = connect_to(srv.admin_port);
	char *raw;
	size_t n;
	long closed_ms;

	cr_assert_eq(send(fd, "G", 1, 0), 1);
	raw = read_all(fd, 8000, &n, &closed_ms);
	close(fd);
	cr_expect_eq(n, 0, "the server answered a stalled client: %s", raw);
	cr_expect(closed_ms >= 4500 && closed_ms <= 6500, "closed after %ld ms, want about 5000",
		  closed_ms);
	free(raw);
}

Test(admin, full_port_does_not_block_the_other)
{
	int fds[80], closed_now = 0;
	struct reply r;

	for (int i = 0; i < 80; i++) {
		fds[i] = connect_to(srv.admin_port);
		cr_assert_eq(send(fds[i], "GET", 3, 0), 3);
	}
	usleep(200000);
	for (int i = 0; i < 80; i++) {
		char c;
		ssize_t got = recv(fds[i], &c, 1, MSG_DONTWAIT);

		closed_now += got == 0 || (got == -1 && errno == ECONNRESET);
	}
	cr_expect_eq(closed_now, 80 - 64, "%d of 80 closed at once, want 16", closed_now);
	atomic_store(&srv.ready, true);
	r = HTTP(srv.ready_port, "GET /healthz/ready HTTP/1.1\r\n\r\n");
	expect_reply(&r, 200, "ready\n");
	for (int i = 0; i < 80; i++)
		close(fds[i]);
	usleep(100000);
	r = HTTP(srv.admin_port, "GET /healthz/ready HTTP/1.1\r\n\r\n");
	expect_reply(&r, 200, "ready\n");
}

Test(admin, stop_with_clients_connected)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(srv.admin_port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = connect_to(srv.admin_port), probe;
	char *raw;
	size_t n;
	long closed_ms;

	cr_assert_eq(send(fd, "GET /met", 8, 0), 8);
	usleep(100000);
	server_stop();
	raw = read_all(fd, 2000, &n, &closed_ms);
	cr_expect_geq(closed_ms, 0, "the client was not closed by or_admin_stop");
	cr_expect_eq(n, 0);
	free(raw);
	close(fd);
	probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(probe, 0);
	cr_expect_eq(connect(probe, (struct sockaddr *)&sin, sizeof(sin)), -1,
		     "the listener is still open");
	close(probe);
}

Test(admin, port_in_use_fails_cleanly, .init = NULL, .fini = NULL)
{
	struct or_admin_hooks hooks = { 0 };
	struct ev_loop *loop = ev_loop_new();
	struct or_admin *a = NULL, *b = NULL;
	uint16_t p1 = free_port(), p2;
	struct or_ip ip;
	int err;

	do
		p2 = free_port();
	while (p2 == p1);
	cr_assert_not_null(loop);
	or_ip_parse("127.0.0.1", &ip);
	cr_assert_eq(or_admin_start(loop, &ip, p1, &ip, p2, &hooks, &a), 0);
	err = or_admin_start(loop, &ip, p2, &ip, p1, &hooks, &b);
	cr_expect_eq(err, -EADDRINUSE, "second start: %d", err);
	cr_expect_null(b);
	or_admin_stop(a);
	ev_run_deferred(loop);

	/* The second listener fails: the first one must be closed again. */
	err = or_admin_start(loop, &ip, p1, &ip, p1, &hooks, &b);
	cr_expect_eq(err, -EADDRINUSE, "one port for both: %d", err);
	cr_assert_eq(or_admin_start(loop, &ip, p1, &ip, p2, &hooks, &a), 0,
		     "p1 still taken after a failed start");
	or_admin_stop(a);
	ev_run_deferred(loop);
	ev_loop_free(loop);
}
