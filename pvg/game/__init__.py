"""The game itself: the orchestrator's rounds, the Ray actors per model role and their placement, PPO,
rewards, verifier training, the pool, sampling with the calculator, and the warm start.
May import: pvg.config, pvg.errors, pvg.progress, pvg.data, pvg.run."""
