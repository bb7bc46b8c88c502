"""Non-WHIP inputs that write into a `Source` from a worker thread.

- `testsrc.TestInput`: built-in generators (colour bars with clock and tone, solid colour with a
  frame counter), generated directly as yuv420p.
- `pull.PullInput`: any URL or file FFmpeg opens (RTMP, SRT, RTSP, HLS, MP4 ...), demuxed and
  decoded in a worker, reconnecting with backoff. `pull.validate_pull_url` is the gate an API
  must pass a caller's URL through first.

Both follow one shape: ``start()`` starts a daemon thread; ``stop_sync()`` / ``async stop()``
set an Event and join with a timeout. Neither changes the source's state on stop: the owner
ends the source (``Source(on_close=input.stop)`` then ``await source.close()``).
"""

from media_server.inputs.pull import PullInput, validate_pull_url
from media_server.inputs.testsrc import TestInput

__all__ = ["PullInput", "TestInput", "validate_pull_url"]
