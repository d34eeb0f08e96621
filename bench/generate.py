"""``python bench/generate.py OUT.jsonl --events N``: a synthetic stream with a known answer.

The generator lives in ``promise_tracker/synthetic.py`` (the demo uses it too).
"""

from __future__ import annotations

from promise_tracker.synthetic import VERSION, generate, main

__all__ = ["VERSION", "generate", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
