"""The mini-ATLAS world: a seeded, realistic stand-in for an experiment's output, written as real ROOT files."""
