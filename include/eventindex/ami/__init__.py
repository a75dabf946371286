"""AMI-like derived quantities: run periods as selections, lumi blocks lost by a reprocessing, provenance."""
