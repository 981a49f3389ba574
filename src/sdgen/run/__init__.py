"""A generate run, in the order it happens: `state` (fresh or resumed), `feed` (requests), `settle` (each result
to the dataset), `finish` (conflicts, quotas, report); `generate` holds the run object that drives them."""
