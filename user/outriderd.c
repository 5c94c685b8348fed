// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* outriderd: the node agent. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "agent.h"
#include "config.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: outriderd --config FILE [--log-level debug|info|warn|error] [--check]\n"
		   "                 [--sidecar NAMESPACE/NAME] [--when-replaced exit|wait]\n"
		   "\n"
		   "  --config FILE     agent configuration (YAML); SIGHUP reloads it\n"
		   "  --log-level LVL   logfmt on stderr at this level and above (default info)\n"
		   "  --check           validate FILE, print FILE:LINE: reason on error, exit\n"
		   "  --sidecar POD     sidecar mode: run inside POD's netns as its proxy, traffic\n"
		   "                    captured by iptables REDIRECT (deploy/sidecar); no BPF\n"
		   "  --when-replaced W after a new agent took over and the drain is done: exit\n"
		   "                    (default), or wait idle for SIGTERM (a DaemonSet pod,\n"
		   "                    whose container would otherwise be restarted)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "check", no_argument, NULL, 'k' },
		{ "sidecar", required_argument, NULL, 's' },
		{ "when-replaced", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *config = NULL, *sidecar = NULL;
	struct or_agent agent;
	bool check = false, wait_replaced = false;
	int opt, err;

	while ((opt = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'l':
			if (or_log_set_level(optarg)) {
				fprintf(stderr, "outriderd: unknown log level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'k':
			check = true;
			break;
		case 's':
			sidecar = optarg;
			if (!strchr(sidecar, '/') || sidecar[0] == '/' || !strchr(sidecar, '/')[1]) {
				fprintf(stderr, "outriderd: --sidecar wants NAMESPACE/NAME, not '%s'\n",
					sidecar);
				return 2;
			}
			break;
		case 'w':
			if (strcmp(optarg, "exit") && strcmp(optarg, "wait")) {
				fprintf(stderr, "outriderd: --when-replaced wants exit or wait, not '%s'\n",
					optarg);
				return 2;
			}
			wait_replaced = strcmp(optarg, "wait") == 0;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (check) {
		struct or_config *cfg;
		char msg[512];

		if (or_config_load_file(config, &cfg, msg, sizeof(msg))) {
			fprintf(stderr, "%s\n", msg);
			return 1;
		}
		printf("%s: ok (%zu pods, %zu services)\n", config, cfg->n_pods, cfg->n_services);
		or_config_free(cfg);
		return 0;
	}

	libbpf_set_print(or_log_libbpf);
	err = or_agent_start(&agent, config, sidecar, wait_replaced);
	if (err)
		return 1;
	err = or_agent_run(&agent);
	or_agent_stop(&agent);
	return err ? 1 : 0;
}
