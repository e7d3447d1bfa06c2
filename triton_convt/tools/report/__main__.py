"""``python -m triton_convt.tools.report``: the same as ``triton-convt-report``."""

from .cli import main

raise SystemExit(main())
