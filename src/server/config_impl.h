/* Internals of server/config shared by config.c (the table walk, the main
 * file) and config_agents.c (adapters, agents, schemas). Only those two
 * files include it. */
#ifndef HS_SERVER_CONFIG_IMPL_H
#define HS_SERVER_CONFIG_IMPL_H

#include "server/config.h"

#include "base/yaml.h"

#include <libfyaml.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- the tables --- */

enum hs_cfg_ftype {
    F_STR,         /* char *, owned; null/~/empty plain scalar = NULL */
    F_INT,         /* int in [min, max] */
    F_SIZE,        /* size_t in [min, max] */
    F_BOOL,        /* true / false */
    F_FLOAT,       /* float in [min, max], a plain decimal number */
    F_MAP,         /* a nested mapping described by sub (off moves the base) */
    F_MODELS,      /* the models list */
    F_ADAPTERS,    /* (issue 5) the adapters list */
    F_AGENTS,      /* (issue 5) the agents list */
    F_SCHEMAS,     /* (issue 5) the named schemas */
    F_AGENTS_FILE, /* (issue 5) the path of an agents file, loaded after this one */
    F_LORAS,       /* (issue 5) an agent's adapters; the base is the struct hs_agent */
    F_SCHEMA,      /* (issue 5) an agent's schema; the base is the struct hs_agent */
    F_MONITOR,     /* (issue 6) the monitor: section (ops/monitor.h reads it) */
    F_DRIFT,       /* (issue 6) the drift: section (ops/monitor.h reads it) */
    F_ALERTS,      /* (issue 6) the alerts: section (ops/alerts.h reads it from the whole text) */
    F_EXPERIMENTS, /* (issue 7) the experiments: list (ops/experiment.h reads each item) */
    F_SAFETY_RULES, /* (issue 6) safety.rules: an F_STR that also marks the path as given */
    F_UPSTREAM,    /* (issue 7) a model's upstream: a mapping, or a list of members */
};

struct hs_cfg_field {
    const char *key;
    enum hs_cfg_ftype type;
    size_t off;
    /* F_INT, F_SIZE, F_FLOAT: the range (whole numbers up to 2^53 are exact
       as doubles, so one pair serves integers and floats) */
    double min, max;
    const struct hs_cfg_field *sub; /* F_MAP: rows up to one with key NULL */
};

/* A `schemas` entry of the file being read. */
struct hs_cfg_schema {
    char *name;
    char *json; /* compact JSON text */
    int line;
};

/* What one file adds to the adapters and agents: built apart and appended to
 * the configuration only when the whole file has been read (a file that
 * fails adds nothing), because agents may name schemas written further down. */
struct hs_cfg_pending {
    struct hs_adapter_entry *adapters;
    int n_adapters;
    struct hs_agent *agents;
    int n_agents;
    char **schema_refs;    /* per agent: the `schemas` name it uses, or NULL */
    int *schema_ref_lines; /* per agent: that value's line */
    struct hs_cfg_schema *schemas;
    int n_schemas;
    char *agents_file; /* the main file's agents_file, loaded after it */
    int agents_file_line;
    char *cur_ref; /* set by F_SCHEMA while one agent is read */
    int cur_ref_line;
};

struct hs_cfg_walk {
    hs_yaml y; /* the file's name and whole text, and where errors go */
    struct hs_serve_config *c;
    struct hs_cfg_pending p;
};

/* --- helpers of the walk (config.c) --- */

/* Reads the mapping map into base following fields; path names it in
 * messages, line is its key's line. */
int hs_cfg_parse_mapping(struct hs_cfg_walk *w, struct fy_node *map, const struct hs_cfg_field *fields,
                         char *base, const char *path, int line);
/* Reads the text as a YAML document whose top level is a mapping of fields
 * (a blank document is fine). */
int hs_cfg_parse_doc(struct hs_cfg_walk *w, const struct hs_cfg_field *root, const char *root_hint);
/* Reads a file of at most 64 MiB into *out (NUL-terminated; hs_free);
 * regular_only refuses devices, FIFOs and folders. */
int hs_cfg_read_file(const char *path, bool regular_only, char **out, size_t *len, hs_err *err);
void hs_cfg_adapter_free(struct hs_adapter_entry *a);

/* --- adapters, agents, schemas (config_agents.c) --- */

extern const struct hs_cfg_field hs_cfg_agents_root[]; /* what an agents file holds */
int hs_cfg_parse_adapters(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line);
int hs_cfg_parse_agents(struct hs_cfg_walk *w, struct fy_node *seq, const char *path, int line);
int hs_cfg_parse_schemas(struct hs_cfg_walk *w, struct fy_node *map, const char *path, int line);
int hs_cfg_parse_loras(struct hs_cfg_walk *w, struct fy_node *seq, struct hs_agent *a, const char *path,
                       int line);
int hs_cfg_parse_schema(struct hs_cfg_walk *w, struct fy_node *v, struct hs_agent *a, const char *path,
                        int line);
/* Resolves schema names, checks names against the configuration and moves
 * what the file added into it. */
int hs_cfg_pending_commit(struct hs_cfg_walk *w);
void hs_cfg_pending_free(struct hs_cfg_pending *p);
/* The agents and adapters part of hs_serve_config_check. */
int hs_cfg_check_agents(const struct hs_serve_config *c, hs_err *err);

#endif
