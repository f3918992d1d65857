"""Planning: the dataset fingerprint and the heuristic rules that turn it into a plan."""
