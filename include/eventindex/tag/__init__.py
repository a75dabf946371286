"""TAG services: what analysts ask of the events' attributes beyond where an event is. ``skim``: the events
passing a selection, with the attributes and references asked for, as a ROOT file (Athenaeum's extraction)."""
# ``histogram``: the distribution of one or two numeric record columns over a selection, optionally weighted by the
# MC event weight, as JSON or an ATLAS-style plot (Athenaeum's histogramming service, behind ELSSI).
