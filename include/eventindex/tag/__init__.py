"""TAG services: what analysts ask of the events' attributes beyond where an event is. ``skim``: the events
passing a selection, with the attributes and references asked for, as a ROOT file (Athenaeum's extraction)."""
