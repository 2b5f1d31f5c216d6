"""Shop endpoints under /v1: recommend, search, classify, score."""
