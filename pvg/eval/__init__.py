"""Evaluations of a finished game (`pvg eval ...`): is the verifier really robust, is the helpful
prover really legible, and how do the game's models relate to independent checkers.

Each evaluation reads a run folder through `pvg.eval.store.EvalRun`, writes one JSON result (and a
figure) into `RUN_DIR/eval/`, and reuses that result on a second call when neither the run nor the
evaluation's parameters changed. `pvg report` shows whatever results it finds there.
"""
