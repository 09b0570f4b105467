"""The run folder: its layout and writer (`folder`), storage on local disks or buckets (`storage`), and a
read-only view of a live or finished run (`view`). Knows files, not models.
May import: pvg.config, pvg.errors, pvg.progress, pvg.data."""
