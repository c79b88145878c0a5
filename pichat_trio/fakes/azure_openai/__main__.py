"""``python -m pichat_trio.fakes.azure_openai``: run the fake (``cli.main``)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
