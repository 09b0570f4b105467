"""`python -m pvg.cli`: what Ray jobs run (no console script needed on the cluster)."""
from pvg.cli.main import entrypoint

entrypoint()
