"""What a run keeps on disk: the dataset files (`files`) and the run state that makes them resumable (`runstate`)."""
