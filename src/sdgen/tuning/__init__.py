"""`sdgen tune`: learn a task from a few real rows. Pilot generations scored on held-out real rows decide
which proposed spec changes stay (`loop`); `profile` reads real against generated rows, `proposals`
turns that into changes, `score` measures a pilot, `result` holds what a run measured, `output` writes the
tuned spec and its log."""
