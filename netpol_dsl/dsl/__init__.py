"""What users write: typed, immutable builders that only record intent."""
