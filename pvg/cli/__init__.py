"""The `pvg` command line, one module a command group (`main` wires them; `common` holds the error and
--set handling every command shares). The only package that prints for a user.
May import: every other pvg package; none imports it."""
from pvg.cli.main import app, entrypoint

__all__ = ["app", "entrypoint"]
