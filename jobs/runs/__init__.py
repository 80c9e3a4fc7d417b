"""Runs as the pages and the CLI see them: queueing one (``submit``: validate once → record →
send; A/B pairs, derived runs, resume), what the pages read (``views``), the server's limits on
them (``quotas``), how their values read to people (``format``) and the one normaliser for
names a person types (``names``)."""
