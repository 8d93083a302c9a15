/*
 * yaml_json.c - a YAML file (a mergekit configuration) as JSON text, with
 * libyaml.
 *
 * Plain scalars are typed as mergekit's PyYAML (YAML 1.1) types them:
 * null and ~ are null; true/false/yes/no/on/off (three capitalisations)
 * are booleans; what reads fully as a finite number is a number; anything
 * else, and every quoted scalar, is a string (libyaml's loader does not
 * tell explicit tags from its defaults, so a tag changes nothing).
 * Aliases are expanded, within a size limit so that a hostile file cannot
 * blow up; duplicate keys and non-scalar keys are errors, as is a second
 * document.
 */
#include "client.h"

#include <math.h>
#include <yaml.h>

#include "safetensors.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_JSON (16 * 1024 * 1024)

typedef struct YamlJson
{
	const char *path;
	yaml_document_t *doc;
	StringInfoData out;
} YamlJson;

static pg_attribute_noreturn() void
yaml_fail(const YamlJson *y, const yaml_node_t *node, const char *msg)
{
	soup_fatal(EXIT_FILE, "%s:%lu: %s", y->path,
			   node ? (unsigned long) node->start_mark.line + 1 : 0UL, msg);
}

static bool
one_of(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (strcmp(s, *words) == 0)
			return true;
	return false;
}

/* A plain scalar's JSON: null, a boolean, a number, or a string. */
static void
plain_scalar(YamlJson *y, const yaml_node_t *node, const char *s)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
	char	   *end;
	double		d;

	if (one_of(s, nulls))
		appendStringInfoString(&y->out, "null");
	else if (one_of(s, trues))
		appendStringInfoString(&y->out, "true");
	else if (one_of(s, falses))
		appendStringInfoString(&y->out, "false");
	else if (strspn(s, "+-0123456789.eE") == strlen(s) && strpbrk(s, "0123456789") &&
			 (errno = 0, d = strtod(s, &end), *end == '\0'))
	{
		if (!isfinite(d) || errno == ERANGE)
			yaml_fail(y, node, psprintf("\"%s\" is not a finite number", s));
		/* the shortest form that reads back as the same double */
		appendStringInfo(&y->out, "%.17g", d);
	}
	else
		st_write_json_string(&y->out, s);
}

static void
node_json(YamlJson *y, yaml_node_t *node, int depth)
{
	if (depth > YAML_MAX_DEPTH)
		yaml_fail(y, node, "nested too deeply");
	if (y->out.len > YAML_MAX_JSON)
		yaml_fail(y, node, "too large once its aliases are expanded");
	switch (node->type)
	{
		case YAML_SCALAR_NODE:
			{
				char	   *s = pnstrdup((const char *) node->data.scalar.value, node->data.scalar.length);

				if (strlen(s) != node->data.scalar.length)
					yaml_fail(y, node, "a NUL byte in a scalar");
				/* libyaml's loader tags every scalar !!str: the style decides */
				if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
					plain_scalar(y, node, s);
				else
					st_write_json_string(&y->out, s);
				pfree(s);
				break;
			}
		case YAML_SEQUENCE_NODE:
			appendStringInfoChar(&y->out, '[');
			for (yaml_node_item_t *it = node->data.sequence.items.start;
				 it < node->data.sequence.items.top; it++)
			{
				if (it > node->data.sequence.items.start)
					appendStringInfoChar(&y->out, ',');
				node_json(y, yaml_document_get_node(y->doc, *it), depth + 1);
			}
			appendStringInfoChar(&y->out, ']');
			break;
		case YAML_MAPPING_NODE:
			appendStringInfoChar(&y->out, '{');
			for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
				 p < node->data.mapping.pairs.top; p++)
			{
				yaml_node_t *key = yaml_document_get_node(y->doc, p->key);

				if (key->type != YAML_SCALAR_NODE)
					yaml_fail(y, key, "a mapping key must be a plain value");
				for (yaml_node_pair_t *q = node->data.mapping.pairs.start; q < p; q++)
				{
					yaml_node_t *k2 = yaml_document_get_node(y->doc, q->key);

					if (k2->data.scalar.length == key->data.scalar.length &&
						memcmp(k2->data.scalar.value, key->data.scalar.value, key->data.scalar.length) == 0)
						yaml_fail(y, key, psprintf("duplicate key \"%.*s\"", (int) key->data.scalar.length,
												   (const char *) key->data.scalar.value));
				}
				if (p > node->data.mapping.pairs.start)
					appendStringInfoChar(&y->out, ',');
				{
					char	   *k = pnstrdup((const char *) key->data.scalar.value, key->data.scalar.length);

					st_write_json_string(&y->out, k);
					pfree(k);
				}
				appendStringInfoChar(&y->out, ':');
				node_json(y, yaml_document_get_node(y->doc, p->value), depth + 1);
			}
			appendStringInfoChar(&y->out, '}');
			break;
		default:
			yaml_fail(y, node, "an empty node");
	}
}

char *
soup_yaml_file_to_json(const char *path)
{
	size_t		len;
	char	   *text = soup_read_whole(path, YAML_MAX_JSON, &len);
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_document_t extra;
	YamlJson	y = {path, &doc};
	yaml_node_t *root;

	if (!yaml_parser_initialize(&parser))
		soup_fatal(EXIT_FILE, "could not start the YAML parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);
	if (!yaml_parser_load(&parser, &doc))
		soup_fatal(EXIT_FILE, "%s:%lu: %s%s%s", path, (unsigned long) parser.problem_mark.line + 1,
				   parser.problem ? parser.problem : "invalid YAML",
				   parser.context ? " " : "", parser.context ? parser.context : "");
	root = yaml_document_get_root_node(&doc);
	if (root == NULL)
		soup_fatal(EXIT_FILE, "%s: no configuration in the file", path);
	if (!yaml_parser_load(&parser, &extra))
		soup_fatal(EXIT_FILE, "%s:%lu: %s", path, (unsigned long) parser.problem_mark.line + 1,
				   parser.problem ? parser.problem : "invalid YAML");
	if (yaml_document_get_root_node(&extra) != NULL)
		soup_fatal(EXIT_FILE, "%s: more than one YAML document", path);
	yaml_document_delete(&extra);
	initStringInfo(&y.out);
	node_json(&y, root, 0);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	pfree(text);
	return y.out.data;
}
