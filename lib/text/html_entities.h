/* The HTML5 named character references, as tables generated from Python's
 * html.entities.html5 (see lib/text/html_entities.c). */
#ifndef KNND_TEXT_HTML_ENTITIES_H
#define KNND_TEXT_HTML_ENTITIES_H

struct html_entity {
	const char *name;  /* without the '&'; ends in ';' or is a legacy name */
	const char *value; /* UTF-8, one to three code points */
};

/* Sorted by strcmp of name. */
extern const struct html_entity html5_entities[];
extern const int html5_entity_count;
extern const struct html_entity ftfy_upper_entities[];
extern const int ftfy_upper_entity_count;

#endif
