"""Live calls: LiveDub in a WebRTC meeting room (a LiveKit SFU), dubbing each participant as they speak."""
