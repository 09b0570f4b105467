"""A finished round's models as self-describing Hugging Face folders (`hf`), and scoring solutions with an
exported verifier exactly as the game does (`scoring`).
May import: pvg.config, pvg.errors, pvg.progress, pvg.data, pvg.run, pvg.game."""
