"""Looking at a run: the per-round figure (`plots`) and the one-page HTML report (`report`).
Reads run folders and evaluation results; trains nothing.
May import: everything below it (config, data, run, game, export, eval)."""
