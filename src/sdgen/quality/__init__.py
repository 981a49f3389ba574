"""What makes rows worth training on: the dedup index, online curation, the online judge, evaluation against real data, the run report."""
