"""The game as a Ray job on a cluster: submitting, following and stopping jobs through the Jobs API.
May import: everything below it (config, data, run, game: placement checks, export, eval, inspect)."""
