/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* libyaml document nodes as outrider's parsers report them in messages. */
#ifndef OR_YAML_NODE_H
#define OR_YAML_NODE_H

#include <yaml.h>

/* 1-based, as editors count. */
static inline int node_line(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

static inline const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

#endif
