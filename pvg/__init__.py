"""pvg: prover-verifier games ("checkability training") for GSM-style math."""

__version__ = "0.1.0"
