"""The speaker's own voice: who speaks (diarisation, speaker-change cuts), how they sound
(pitch, formants, speaker embedding), which available voice is closest, and moving the
synthesised voice towards them."""
