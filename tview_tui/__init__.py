"""tview-tui: incrementally maintained JSONB read models for PostgreSQL, and their TUI."""
