"""Speaker embeddings: who is speaking, as a unit vector (voice matching, diarisation)."""
