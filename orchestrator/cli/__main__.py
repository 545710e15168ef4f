"""`python -m orchestrator.cli ROLE`: how `up` and the tests start each role."""

from orchestrator.cli import main

main()
