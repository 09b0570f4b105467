"""pvg: prover-verifier games ("checkability training") for GSM-style math.

The packages follow the data flow, and each imports only those before it in this list:
`config`, `errors`, `progress` (modules) → `data` → `run` → `game` → `export` → `eval` → `inspect`
→ `cluster` → `cli`. tests/test_layout.py holds the code to that.
"""

__version__ = "0.1.0"
