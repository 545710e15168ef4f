"""Event-sourced run orchestrator."""
