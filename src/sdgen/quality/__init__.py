"""What makes rows worth training on: the dedup index, online curation, label verification, the run report."""
