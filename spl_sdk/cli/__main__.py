"""Allow ``python -m spl_sdk.cli``."""

from spl_sdk.cli import main

main()
