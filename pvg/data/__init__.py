"""Problems and what is known about them: loading (JSONL, datasets), the synthetic generator, grading,
the role prompts, the tokenizers. Plain Python and `tokenizers`: no models, no Ray.
May import: pvg.config, pvg.errors, pvg.progress."""
