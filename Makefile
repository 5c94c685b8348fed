# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# BPF objects -> skeletons -> binaries, all under build/ (git-ignored).
#   make            build build/outriderd and build/outriderctl
#   make deps       install the Debian packages the build, tests and demo need
#   make test       unit + fuzz smoke + end-to-end tests (root, real kernel)
#   make demo       a local "cluster" of netns pods, traffic through outrider
#   make bench      direct vs outrider (kernel, proxy, mTLS, sidecar) vs HAProxy sidecars (<15 min)
#   make bench-quick  the same scenarios, shorter runs and fewer loads (<2 min)
#   make vmlinux    regenerate vmlinux/vmlinux.h from the running kernel

BUILD    ?= build
CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

CFLAGS   ?= -O2 -g
CFLAGS   += -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -std=gnu11 -D_GNU_SOURCE -pthread
CPPFLAGS += -Iinclude -Iuser -I$(BUILD)
LDLIBS   += -lbpf -lelf -lz -lyaml -lhttp_parser -lcurl -ljson-c -lssl -lcrypto -pthread

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Ivmlinux -Iinclude -Ibpf

# Sanitized builds for tests: make test SANITIZE=1
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
endif

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
BPF_DEPS  := $(wildcard bpf/lib/*.h) include/or_abi.h

# Agent sources; config/lb/log/addr are shared with outriderctl, tests and fuzz.
COMMON_SRCS := user/log.c user/config.c user/authz.c user/addr.c user/pinned.c
AGENT_SRCS  := user/outriderd.c user/agent.c user/ev.c user/sock.c user/netns.c user/overload.c \
	       user/lb.c user/proxy.c user/worker.c user/bpf_state.c user/routes.c \
	       user/enroll.c user/handover.c user/pod.c user/health.c user/breaker.c user/budget.c \
	       user/retry.c user/upstream.c user/http.c user/http_proxy.c user/metrics.c \
	       user/admin.c user/identity.c user/tls.c user/tunnel_proto.c user/tunnel_in.c user/tunnel_out.c user/tls_pump.c \
	       user/kubeconfig.c user/kube_watch.c user/kube_source.c user/k8s_objects.c user/cgroup_find.c \
	       $(COMMON_SRCS)
CTL_SRCS    := user/outriderctl.c $(COMMON_SRCS)

AGENT_OBJS := $(patsubst user/%.c,$(BUILD)/obj/%.o,$(AGENT_SRCS))
CTL_OBJS   := $(patsubst user/%.c,$(BUILD)/obj/%.o,$(CTL_SRCS))

FIXTURES := $(patsubst tests/fixtures/%.c,$(BUILD)/%,$(wildcard tests/fixtures/*.c))

.SECONDARY:
.PHONY: all deps test test-unit test-fuzz test-e2e demo bench bench-quick soak clean vmlinux fixtures
all: $(BUILD)/outriderd $(BUILD)/outriderctl

$(BUILD) $(BUILD)/obj:
	mkdir -p $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BPF_DEPS) | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $*_bpf > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: user/%.c $(wildcard user/*.h) include/or_abi.h | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Only the file that loads the programs needs their skeleton.
$(BUILD)/obj/bpf_state.o: $(SKELS)

$(BUILD)/outriderd: $(AGENT_OBJS)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/outriderctl: $(CTL_OBJS)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# Test fixtures: real servers and clients that run inside the netns pods.
fixtures: $(FIXTURES)
$(BUILD)/%: tests/fixtures/%.c | $(BUILD)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ -pthread

# Unit tests (Criterion), one binary per tests/unit/test_*.c
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
$(BUILD)/unit/test_config: tests/unit/test_config.c $(BUILD)/obj/config.o $(BUILD)/obj/authz.o $(BUILD)/obj/log.o $(BUILD)/obj/addr.o
$(BUILD)/unit/test_lb: tests/unit/test_lb.c $(BUILD)/obj/lb.o $(BUILD)/obj/config.o $(BUILD)/obj/authz.o $(BUILD)/obj/log.o $(BUILD)/obj/addr.o
$(BUILD)/unit/test_breaker: tests/unit/test_breaker.c $(BUILD)/obj/breaker.o $(BUILD)/obj/pinned.o $(BUILD)/obj/addr.o $(BUILD)/obj/log.o
$(BUILD)/unit/test_budget: tests/unit/test_budget.c $(BUILD)/obj/budget.o
$(BUILD)/unit/test_retry: tests/unit/test_retry.c $(BUILD)/obj/retry.o
$(BUILD)/unit/test_metrics: tests/unit/test_metrics.c $(BUILD)/obj/metrics.o $(BUILD)/obj/admin.o \
	$(BUILD)/obj/ev.o $(BUILD)/obj/sock.o $(BUILD)/obj/pinned.o $(BUILD)/obj/log.o $(BUILD)/obj/addr.o \
	$(BUILD)/obj/overload.o $(BUILD)/obj/cgroup_find.o
$(BUILD)/unit/test_http: tests/unit/test_http.c $(BUILD)/obj/http.o
$(BUILD)/unit/test_overload: tests/unit/test_overload.c $(BUILD)/obj/overload.o $(BUILD)/obj/metrics.o \
	$(BUILD)/obj/pinned.o $(BUILD)/obj/log.o $(BUILD)/obj/addr.o $(BUILD)/obj/cgroup_find.o
$(BUILD)/unit/test_identity: tests/unit/test_identity.c $(BUILD)/obj/identity.o $(BUILD)/obj/log.o $(BUILD)/obj/addr.o
$(BUILD)/unit/test_tunnel: tests/unit/test_tunnel.c $(BUILD)/obj/tunnel_proto.o $(BUILD)/obj/addr.o
$(BUILD)/unit/test_authz: tests/unit/test_authz.c $(BUILD)/obj/authz.o
$(BUILD)/unit/test_cgroup_find: tests/unit/test_cgroup_find.c $(BUILD)/obj/cgroup_find.o
$(BUILD)/unit/test_k8s_objects: tests/unit/test_k8s_objects.c $(BUILD)/obj/k8s_objects.o \
	$(BUILD)/obj/config.o $(BUILD)/obj/authz.o $(BUILD)/obj/log.o $(BUILD)/obj/addr.o
$(BUILD)/unit/test_kubeconfig: tests/unit/test_kubeconfig.c $(BUILD)/obj/kubeconfig.o $(BUILD)/obj/log.o
$(BUILD)/unit/%:
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $^ -o $@ -lcriterion $(LDLIBS) -ljson-c

# libFuzzer targets (clang), one per tests/fuzz/fuzz_*.c
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_SECONDS ?= 15
$(BUILD)/fuzz/fuzz_config: tests/fuzz/fuzz_config.c user/config.c user/authz.c user/log.c user/addr.c
$(BUILD)/fuzz/fuzz_tunnel: tests/fuzz/fuzz_tunnel.c user/tunnel_proto.c user/addr.c
$(BUILD)/fuzz/fuzz_k8s: tests/fuzz/fuzz_k8s.c user/k8s_objects.c user/addr.c user/config.c \
	user/authz.c user/log.c
$(BUILD)/fuzz/fuzz_http: tests/fuzz/fuzz_http.c user/http.c
$(BUILD)/fuzz/fuzz_handover: tests/fuzz/fuzz_handover.c user/handover.c user/ev.c user/log.c
# fuzz_admin.c includes admin.c itself, to reach its static request handling.
$(BUILD)/fuzz/fuzz_admin: tests/fuzz/fuzz_admin.c user/admin.c user/metrics.c user/pinned.c \
	user/ev.c user/sock.c user/log.c user/addr.c user/overload.c user/cgroup_find.c
	@mkdir -p $(dir $@)
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -D_GNU_SOURCE -std=gnu11 \
		$(CPPFLAGS) $(filter-out user/admin.c,$^) -o $@ -lyaml -lhttp_parser -lbpf -lelf -lz
$(BUILD)/fuzz/%:
	@mkdir -p $(dir $@)
	$(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -D_GNU_SOURCE -std=gnu11 \
		$(CPPFLAGS) $^ -o $@ -lyaml -lhttp_parser -lbpf -lelf -lz -lssl -lcrypto -ljson-c

deps:
	./tests/deps.sh

# The README's test command: installs what is missing, builds, runs everything.
test:
	./tests/deps.sh
	$(MAKE) all fixtures $(UNIT_BINS) $(FUZZ_BINS)
	./tests/run.sh

test-unit: $(UNIT_BINS)
	./tests/run.sh unit

test-fuzz: $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./tests/run.sh fuzz

test-e2e: all fixtures
	./tests/run.sh e2e

demo:
	./tests/deps.sh
	$(MAKE) all fixtures
	./deploy/local/demo.sh

bench:
	./tests/deps.sh
	$(MAKE) all fixtures
	./tests/bench/bench.sh full

bench-quick:
	./tests/deps.sh
	$(MAKE) all fixtures
	./tests/bench/bench.sh quick

# Ten minutes (SOAK_SECONDS) of mixed load with faults; fails on a leak.
soak:
	./tests/deps.sh
	$(MAKE) all fixtures
	./tests/soak/soak.sh

vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/vmlinux.h

clean:
	rm -rf $(BUILD)
